# One image for all five AstraLisp OS services; compose.yaml picks the service by command.
# DENO_IMAGE defaults to the official image of the pinned Deno; where no registry is reachable,
# `./astra image` makes a local one and points compose at it through .env.
ARG DENO_IMAGE=denoland/deno:2.9.6
FROM ${DENO_IMAGE}

ENV DENO_DIR=/deno-dir \
    DENO_NO_UPDATE_CHECK=1 \
    ASTRA_DATA_DIR=/data
WORKDIR /app

COPY deno.json deno.lock ./
COPY lib ./lib
COPY gen ./gen
COPY services ./services
COPY cli/healthcheck.ts ./cli/healthcheck.ts

# Exec form throughout: the local base image has no shell.
RUN ["deno", "install", "--frozen", "--entrypoint", \
     "services/machine/main.ts", "services/pmm/main.ts", "services/vmm/main.ts", \
     "services/storage/main.ts", "services/sched/main.ts", "cli/healthcheck.ts"]

ENTRYPOINT ["deno"]
CMD ["run", "--allow-net", "--allow-env", "--allow-read=/app", "cli/healthcheck.ts"]

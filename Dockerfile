# One image for all five AstraLisp OS services; compose.yaml picks the service by command.
# DENO_IMAGE defaults to the official image of the pinned Deno; where no registry is reachable,
# `./astra image` makes a local one and points compose at it through .env.
ARG DENO_IMAGE=denoland/deno:2.9.6
FROM ${DENO_IMAGE}

ENV DENO_DIR=/deno-dir \
    DENO_NO_UPDATE_CHECK=1 \
    ASTRA_DATA_DIR=/data
WORKDIR /app

# The shared runtime (and with it every npm dependency) first, so that a change to a service
# rebuilds only the last layers. Exec form throughout: the local base image has no shell.
COPY deno.json deno.lock ./
COPY lib ./lib
COPY gen ./gen
COPY cli/healthcheck.ts ./cli/healthcheck.ts
RUN ["deno", "install", "--frozen", "--entrypoint", "lib/host.ts", "cli/healthcheck.ts"]

COPY services ./services
RUN ["deno", "install", "--frozen", "--entrypoint", \
     "services/machine/main.ts", "services/pmm/main.ts", "services/vmm/main.ts", \
     "services/storage/main.ts", "services/sched/main.ts"]

ENTRYPOINT ["deno"]
CMD ["run", "--allow-net", "--allow-env", "--allow-sys=uid,gid", "--allow-read=/app", "cli/healthcheck.ts"]

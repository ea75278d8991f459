// Container integration: compose.yaml brought up with testcontainers, five healthy containers, a
// call from the host into pmm that itself calls the machine (zeroing the frame it hands out), the
// spans of both services linked in one trace, and a crashed container healthy again.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { trace } from "@opentelemetry/api";
import { DockerComposeEnvironment, type StartedDockerComposeEnvironment, Wait } from "testcontainers";
import { fileURLToPath } from "node:url";
import { BOOT_ORDER, DEFAULT_PORTS } from "../../lib/config.ts";
import { checkHealth, GrpcTransport } from "../../lib/grpc.ts";
import { client } from "../../lib/rpc.ts";
import { initTracing } from "../../lib/tracing.ts";
import { PmmService } from "../../gen/astra/pmm/v1/pmm_pb.ts";
import { MachineService } from "../../gen/astra/machine/v1/machine_pb.ts";
import { ObservabilityService } from "../../gen/astra/common/v1/observability_pb.ts";
import { dockerMissing } from "../requirements.ts";

const REPO = fileURLToPath(new URL("../..", import.meta.url));
const skip = dockerMissing();

function docker(...args: string[]): string {
  const out = new Deno.Command("docker", { args }).outputSync();
  if (!out.success) throw new Error(`docker ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  return new TextDecoder().decode(out.stdout).trim();
}

function baseImage(): string | undefined {
  try {
    return /^ASTRA_DENO_IMAGE=(.+)$/m.exec(Deno.readTextFileSync(`${REPO}/.env`))?.[1];
  } catch {
    return undefined;
  }
}

async function waitFor<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 60_000,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const value = await Promise.resolve().then(probe).catch(() => undefined);
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Health logs and recent output of every compose container still around, for a failed start. */
function diagnostics(): string {
  const ids = docker("ps", "-aq", "--filter", "label=com.docker.compose.service").split("\n").filter(Boolean);
  return ids.map((id) => {
    const name = docker("inspect", "-f", "{{.Name}} {{.State.Status}} restarts={{.RestartCount}}", id);
    const health = docker("inspect", "-f", "{{json .State.Health}}", id);
    const logs = new TextDecoder().decode(
      new Deno.Command("docker", { args: ["logs", "--tail", "30", id] }).outputSync().stderr,
    );
    return `--- ${name}\nhealth: ${health}\n${logs}`;
  }).join("\n");
}

describe.skipIf(skip)(`containers${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let env: StartedDockerComposeEnvironment;
  let project: string;

  beforeAll(async () => {
    await initTracing();
    const image = baseImage();
    const environment = new DockerComposeEnvironment(REPO, "compose.yaml")
      .withBuild()
      .withEnvironment(image ? { ASTRA_DENO_IMAGE: image } : {})
      // Each service logs "up" once its boot step is done. Health is awaited below, where a
      // restart in between (see the README's known problems) is ridden through, not fatal.
      .withDefaultWaitStrategy(Wait.forLogMessage(/"msg":"up"/).withStartupTimeout(300_000));
    try {
      env = await environment.up();
    } catch (e) {
      throw new Error(`${e instanceof Error ? e.message : e}\n${diagnostics()}`);
    }
    project = docker("ps", "-q", "--filter", "label=com.docker.compose.service=pmm").split("\n")
      .map((id) => docker("inspect", "-f", '{{index .Config.Labels "com.docker.compose.project"}}', id))[0];
  }, 600_000);

  afterAll(async () => {
    await env?.down({ removeVolumes: true, timeout: 10_000 });
  }, 120_000);

  function containerOf(service: string): string {
    return docker(
      "ps",
      "-q",
      "--filter",
      `label=com.docker.compose.project=${project}`,
      "--filter",
      `label=com.docker.compose.service=${service}`,
    );
  }

  it("brings all five services up healthy, each in its own container", async () => {
    const ids = new Set<string>();
    for (const name of BOOT_ORDER) {
      const id = containerOf(name);
      expect(id).not.toBe("");
      ids.add(id);
      await waitFor(
        `${name} healthy`,
        () => docker("inspect", "-f", "{{.State.Health.Status}}", id) === "healthy" ? true : undefined,
        120_000,
      );
      expect(await checkHealth(`127.0.0.1:${DEFAULT_PORTS[name]}`)).toBe("SERVING");
    }
    expect(ids.size).toBe(5);
  });

  it("links the spans of a host call into pmm and pmm's call into the machine in one trace", async () => {
    const pmm = new GrpcTransport(`127.0.0.1:${DEFAULT_PORTS.pmm}`);
    const machine = new GrpcTransport(`127.0.0.1:${DEFAULT_PORTS.machine}`);
    try {
      const { traceId, address } = await trace.getTracer("test").startActiveSpan(
        "test.root",
        async (root) => {
          // pmm may still be coming up; AllocFrame has side effects, so the transport does not retry
          // it: the test does.
          const frame = await waitFor(
            "pmm to answer AllocFrame",
            () =>
              client(PmmService, pmm, "test").allocFrame({ zero: true, owner: "test", site: "containers" }),
            60_000,
          );
          root.end();
          return { traceId: root.spanContext().traceId, address: frame.address };
        },
      );
      // The frame really is zero in the machine's memory.
      const bytes = await client(MachineService, machine).readPhysical({ address, length: 4096n });
      expect(bytes.data.every((b) => b === 0)).toBe(true);

      const spansAt = (t: GrpcTransport) => client(ObservabilityService, t).listSpans({ traceId });
      const pmmSpans = (await spansAt(pmm)).spans;
      const machineSpans = await waitFor("machine spans", async () => {
        const s = (await spansAt(machine)).spans;
        return s.length ? s : undefined;
      });
      const pmmServer = pmmSpans.find((s) => s.kind === "server" && s.name.endsWith("/AllocFrame"))!;
      const pmmClient = pmmSpans.find((s) => s.kind === "client" && s.parentSpanId === pmmServer.spanId)!;
      const machineServer = machineSpans.find((s) => s.kind === "server")!;
      expect(pmmServer.service).toBe("pmm");
      expect(pmmClient.name.startsWith("astra.machine.v1.")).toBe(true);
      expect(machineServer.service).toBe("machine");
      expect(machineServer.parentSpanId).toBe(pmmClient.spanId);
      expect(machineServer.traceId).toBe(traceId);
    } finally {
      pmm.close();
      machine.close();
    }
  });

  it("restarts a crashed container, which becomes healthy again", async () => {
    const id = containerOf("vmm");
    const restartsBefore = Number(docker("inspect", "-f", "{{.RestartCount}}", id));
    Deno.kill(Number(docker("inspect", "-f", "{{.State.Pid}}", id)), "SIGKILL");
    await waitFor(
      "the restart",
      () => Number(docker("inspect", "-f", "{{.RestartCount}}", id)) > restartsBefore ? true : undefined,
    );
    await waitFor(
      "health",
      () => docker("inspect", "-f", "{{.State.Health.Status}}", id) === "healthy" ? true : undefined,
      120_000,
    );
    expect(await checkHealth(`127.0.0.1:${DEFAULT_PORTS.vmm}`)).toBe("SERVING");
  }, 180_000);
});

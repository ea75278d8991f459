// Running services: all of them in one process over the in-process transport (embedded), or one
// of them as a standalone gRPC server whose peers are remote (process mode, containers).
import {
  BOOT_ORDER,
  BUSY_POLL_VAR,
  DEFAULT_BUSY_POLL_MICROS,
  DEFAULT_PORTS,
  peerEnvVar,
  readEnv,
  type ServiceName,
  SUPERVISOR_PID_VAR,
} from "./config.ts";
import { startBusyPoll } from "./busy_poll.ts";
import { AstraError, Code } from "./errors.ts";
import { GrpcServer, GrpcTransport } from "./grpc.ts";
import { InProcessRouter } from "./inproc.ts";
import { logger } from "./log.ts";
import { peersFrom, type ServiceFactory, type ServiceModule, type SystemConfig } from "./module.ts";
import { observabilityService } from "./observability.ts";
import { initTracing, shutdownTracing } from "./tracing.ts";

export type FactoryLoader = (name: ServiceName) => Promise<ServiceFactory>;

export interface EmbeddedSystem {
  readonly modules: ReadonlyMap<ServiceName, ServiceModule>;
  readonly router: InProcessRouter;
  /** The public gRPC address serving every service, if one was asked for. */
  readonly gatewayAddress?: string;
  shutdown(): Promise<void>;
}

/**
 * Boots every service in one process, in boot order, wired by the in-process transport; with
 * `gateway`, also serves all of them on one gRPC port for outside clients.
 */
export async function bootEmbedded(
  load: FactoryLoader,
  config: SystemConfig,
  opts: { gateway?: string; onStep?: (name: ServiceName, line: string) => void } = {},
): Promise<EmbeddedSystem> {
  await initTracing();
  const router = new InProcessRouter();
  const transport = router.transport();
  const peers = peersFrom(() => transport);
  const modules = new Map<ServiceName, ServiceModule>();
  for (const name of BOOT_ORDER) {
    const module = (await load(name))(peers, config);
    module.bound.forEach((b) => router.add(b));
    modules.set(name, module);
  }
  router.add(observabilityService("embedded"));
  const started: ServiceModule[] = [];
  const stopAll = async () => {
    for (const m of started.reverse()) await m.stop();
  };
  try {
    for (const name of BOOT_ORDER) {
      const module = modules.get(name)!;
      const line = await module.start();
      started.push(module);
      opts.onStep?.(name, line);
    }
  } catch (e) {
    await stopAll();
    throw e;
  }
  let gateway: GrpcServer | undefined;
  let gatewayAddress: string | undefined;
  if (opts.gateway) {
    gateway = new GrpcServer("embedded");
    for (const m of modules.values()) m.bound.forEach((b) => gateway!.add(b));
    gateway.add(observabilityService("embedded"));
    gatewayAddress = await gateway.listen(opts.gateway);
    gateway.setServing(true);
  }
  return {
    modules,
    router,
    gatewayAddress,
    async shutdown() {
      await gateway?.shutdown();
      await stopAll();
      await shutdownTracing();
    },
  };
}

/** Peer addresses: `--peer name=addr` flags, then ASTRA_<NAME>_ADDRESS, then 127.0.0.1:<default port>. */
export function peerAddresses(
  overrides: Partial<Record<ServiceName, string>> = {},
): Record<ServiceName, string> {
  return Object.fromEntries(
    BOOT_ORDER.map((n) => [n, overrides[n] ?? readEnv(peerEnvVar(n)) ?? `127.0.0.1:${DEFAULT_PORTS[n]}`]),
  ) as Record<ServiceName, string>;
}

/**
 * Runs one service as a gRPC server until SIGTERM/SIGINT. Its boot step is retried while a peer
 * is not reachable yet (containers start in any order); health answers NOT_SERVING until then.
 */
export async function serveStandalone(
  name: ServiceName,
  factory: ServiceFactory,
  config: SystemConfig,
  listen: string,
  peerAddress: Record<ServiceName, string>,
): Promise<void> {
  await initTracing();
  const log = logger(name);
  const peers = peersFrom((n) => new GrpcTransport(peerAddress[n]));
  const module = factory(peers, config);
  const server = new GrpcServer(name);
  module.bound.forEach((b) => server.add(b));
  server.add(observabilityService(name));
  const address = await server.listen(listen);
  log.info("listening", { address });

  let stopping = false;
  const stopped = new Promise<void>((resolve) => {
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info("shutting down", { signal });
      await server.shutdown();
      await module.stop();
      Object.values(peers).forEach((t) => t.close());
      await shutdownTracing();
      resolve();
    };
    Deno.addSignalListener("SIGTERM", () => stop("SIGTERM"));
    Deno.addSignalListener("SIGINT", () => stop("SIGINT"));
    watchSupervisor(() => {
      // Peers may be gone with the supervisor: a stop that waits on them must not last forever.
      setTimeout(() => {
        log.warn("stop did not finish after the supervisor died; exiting", { graceMs: ORPHAN_STOP_MS });
        Deno.exit(1);
      }, ORPHAN_STOP_MS);
      stop("supervisor gone");
    });
  });

  for (let attempt = 1; !stopping; attempt++) {
    try {
      const line = await module.start();
      server.setServing(true);
      log.info("up", { step: line });
      break;
    } catch (e) {
      const retryable = e instanceof AstraError &&
        (e.code === Code.UNAVAILABLE || e.code === Code.DEADLINE_EXCEEDED);
      if (!retryable) {
        log.error("boot step failed", { error: e instanceof AstraError ? e.describe() : String(e) });
        await server.shutdown(100);
        throw e;
      }
      log.info("waiting for peers", { attempt, error: e.describe() });
      await new Promise((r) => setTimeout(r, Math.min(2000, 100 * attempt)));
    }
  }
  await stopped;
}

/** How often a supervised service checks that its supervisor is still there. */
const SUPERVISOR_CHECK_MS = 1000;
/** How long an orphaned service may take to stop. */
const ORPHAN_STOP_MS = 5000;

/**
 * A supervised service (ASTRA_SUPERVISOR_PID set) stops when its supervisor dies without stopping
 * it (killed, crashed): an orphan would hold its port or socket and run on for nothing.
 */
function watchSupervisor(onGone: () => void): void {
  const supervisor = Number(readEnv(SUPERVISOR_PID_VAR));
  if (!supervisor) return;
  const timer = setInterval(() => {
    if (Deno.ppid === supervisor) return;
    clearInterval(timer);
    onGone();
  }, SUPERVISOR_CHECK_MS);
  Deno.unrefTimer(timer);
}

/**
 * The entry of `services/<name>/main.ts`: flags `--listen HOST:PORT` (default 127.0.0.1 and the
 * service's port), `--peer NAME=HOST:PORT` (repeatable) and the machine configuration flags.
 */
export async function runServiceMain(
  name: ServiceName,
  factory: ServiceFactory,
  args: string[],
): Promise<void> {
  const { parseArgs } = await import("node:util");
  const { values } = parseArgs({
    args,
    options: {
      listen: { type: "string" },
      peer: { type: "string", multiple: true },
      memory: { type: "string" },
      numa: { type: "string" },
      cpus: { type: "string" },
      "data-dir": { type: "string" },
    },
  });
  const overrides: Partial<Record<ServiceName, string>> = {};
  for (const p of values.peer ?? []) {
    const [peer, address] = p.split("=", 2);
    if (!BOOT_ORDER.includes(peer as ServiceName) || !address) {
      throw new Error(`--peer takes NAME=HOST:PORT with NAME one of ${BOOT_ORDER.join(", ")}, not ${p}`);
    }
    overrides[peer as ServiceName] = address;
  }
  const { systemConfigFrom } = await import("./config.ts");
  const config = systemConfigFrom(values as Record<string, string | undefined>);
  const busyPoll = Number(readEnv(BUSY_POLL_VAR) ?? DEFAULT_BUSY_POLL_MICROS);
  if (!Number.isFinite(busyPoll) || busyPoll < 0) {
    throw new Error(`${BUSY_POLL_VAR} takes microseconds (0: off), not ${readEnv(BUSY_POLL_VAR)}`);
  }
  startBusyPoll(busyPoll);
  await serveStandalone(
    name,
    factory,
    config,
    values.listen ?? `127.0.0.1:${DEFAULT_PORTS[name]}`,
    peerAddresses(overrides),
  );
  // Stopped: whatever is still pending (a guest's read of an inherited stdin, a peer's retry
  // timer) must not keep the process alive.
  Deno.exit(0);
}

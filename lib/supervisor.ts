// Process mode: each service a child process on loopback, started in boot order, restarted with
// exponential backoff when it dies; every exit is logged with its cause.
import { fileURLToPath } from "node:url";
import {
  BOOT_ORDER,
  DEFAULT_PORTS,
  peerEnvVar,
  type ServiceName,
  servicePermissions,
  SUPERVISOR_PID_VAR,
} from "./config.ts";
import { HealthProbe } from "./grpc.ts";
import { logger } from "./log.ts";

const log = logger("supervisor");
const BACKOFF_START_MS = 250;
const BACKOFF_MAX_MS = 10_000;
/** A child that ran this long is considered healthy again: its backoff starts over. */
const STABLE_AFTER_MS = 30_000;

interface Child {
  name: ServiceName;
  address: string;
  process?: Deno.ChildProcess;
  startedAt: number;
  backoffMs: number;
  restarts: number;
  restartTimer?: ReturnType<typeof setTimeout>;
  /** Health checks over one connection for the child's whole life (and its restarts). */
  probe?: HealthProbe;
}

export interface SupervisorOptions {
  dataDir: string;
  /** Extra flags given to every service (machine configuration). */
  serviceArgs?: string[];
  host?: string;
  ports?: Partial<Record<ServiceName, number>>;
  /** Whole addresses ("unix:/path" or "host:port") that replace host and port for a service. */
  addresses?: Partial<Record<ServiceName, string>>;
  /** Host folders a service may read and write beyond its own (`astra run --root DIR` for storage). */
  extraReadWrite?: Partial<Record<ServiceName, string[]>>;
  /** "inherit" gives a service the supervisor's stdin (storage serving the guest's stdin); default none. */
  stdio?: Partial<Record<ServiceName, "inherit" | "null">>;
}

export class Supervisor {
  private readonly children = new Map<ServiceName, Child>();
  private stopping = false;
  private readonly repoDir = fileURLToPath(new URL("..", import.meta.url)).replace(/\/$/, "");

  constructor(private readonly opts: SupervisorOptions) {
    const host = opts.host ?? "127.0.0.1";
    for (const name of BOOT_ORDER) {
      const port = opts.ports?.[name] ?? DEFAULT_PORTS[name];
      this.children.set(name, {
        name,
        address: opts.addresses?.[name] ?? `${host}:${port}`,
        startedAt: 0,
        backoffMs: BACKOFF_START_MS,
        restarts: 0,
      });
    }
  }

  address(name: ServiceName): string {
    return this.children.get(name)!.address;
  }

  restarts(name: ServiceName): number {
    return this.children.get(name)!.restarts;
  }

  pid(name: ServiceName): number | undefined {
    return this.children.get(name)!.process?.pid;
  }

  /** Starts every service in boot order, each once the previous one answers SERVING. */
  async start(onStep?: (name: ServiceName, address: string) => void, timeoutMs = 30_000): Promise<void> {
    for (const name of BOOT_ORDER) {
      this.spawn(this.children.get(name)!);
      await this.waitServing(name, timeoutMs);
      onStep?.(name, this.address(name));
    }
  }

  /** Resolves when `name` answers SERVING; rejects after `timeoutMs`. */
  async waitServing(name: ServiceName, timeoutMs = 30_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    let last = "";
    while (Date.now() < until) {
      const child = this.children.get(name)!;
      child.probe ??= new HealthProbe(child.address);
      try {
        last = await child.probe.check("", 500);
        if (last === "SERVING") return;
      } catch (e) {
        last = String(e instanceof Error ? e.message : e);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${name} did not become SERVING within ${timeoutMs} ms (last answer: ${last})`);
  }

  private spawn(child: Child): void {
    const env: Record<string, string> = { [SUPERVISOR_PID_VAR]: String(Deno.pid) };
    for (const [n, c] of this.children) env[peerEnvVar(n)] = c.address;
    const args = [
      "run",
      ...servicePermissions(
        child.name,
        this.repoDir,
        this.opts.dataDir,
        this.opts.extraReadWrite?.[child.name],
      ),
      `${this.repoDir}/services/${child.name}/main.ts`,
      "--listen",
      child.address,
      ...(this.opts.serviceArgs ?? []),
    ];
    child.process = new Deno.Command(Deno.execPath(), {
      args,
      env,
      stdin: this.opts.stdio?.[child.name] ?? "null",
      stdout: "inherit",
      stderr: "inherit",
    })
      .spawn();
    child.startedAt = Date.now();
    const process = child.process;
    process.status.then((status) => this.exited(child, process, status));
  }

  private exited(child: Child, process: Deno.ChildProcess, status: Deno.CommandStatus): void {
    if (this.stopping || child.process !== process) return;
    if (Date.now() - child.startedAt > STABLE_AFTER_MS) child.backoffMs = BACKOFF_START_MS;
    const cause = status.signal ? `killed by ${status.signal}` : `exited with code ${status.code}`;
    log.warn("service died; restarting", {
      service: child.name,
      pid: process.pid,
      cause,
      backoffMs: child.backoffMs,
    });
    child.restartTimer = setTimeout(() => {
      child.restarts++;
      this.spawn(child);
    }, child.backoffMs);
    child.backoffMs = Math.min(child.backoffMs * 2, BACKOFF_MAX_MS);
  }

  /**
   * SIGKILL to every service at once, for a system whose state is thrown away (`astra run` when its
   * program has ended): nothing is flushed.
   */
  async kill(): Promise<void> {
    this.stopping = true;
    await Promise.all([...this.children.values()].map(async (child) => {
      clearTimeout(child.restartTimer);
      const p = child.process;
      if (!p) return;
      try {
        p.kill("SIGKILL");
      } catch {
        // Already gone.
      }
      await p.status;
    }));
    this.closeProbes();
  }

  /** Health connections close only once their servers are gone: no GOAWAY reaches a live service. */
  private closeProbes(): void {
    for (const child of this.children.values()) {
      child.probe?.close();
      child.probe = undefined;
    }
  }

  /** SIGTERM to every service in reverse boot order; SIGKILL to any still running after `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    this.stopping = true;
    for (const name of [...BOOT_ORDER].reverse()) {
      const child = this.children.get(name)!;
      clearTimeout(child.restartTimer);
      // The probe goes first: a server shutting down says GOAWAY to its clients, this process too.
      child.probe?.close();
      child.probe = undefined;
      const p = child.process;
      if (!p) continue;
      try {
        p.kill("SIGTERM");
      } catch {
        continue; // already gone
      }
      const timer = setTimeout(() => {
        log.warn("service ignored SIGTERM; killing", { service: name });
        try {
          p.kill("SIGKILL");
        } catch {
          // exited meanwhile
        }
      }, graceMs);
      await p.status;
      clearTimeout(timer);
    }
  }
}

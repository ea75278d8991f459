// `astra run`: boot the system, mount a host folder as the guest's root, run one static ppc64le
// program on it with the caller's stdin, stdout and stderr, and exit with the program's status —
// what qemu-user does for one program, with every system call travelling to the service that owns
// it. Each run has its own data folder and, over gRPC, its own Unix sockets: runs never share
// ports or state, so any number may run side by side.
import process from "node:process";
import { ObservabilityService, type Span } from "../gen/astra/common/v1/observability_pb.ts";
import { MachineService } from "../gen/astra/machine/v1/machine_pb.ts";
import { ChildOutcome, SchedService } from "../gen/astra/sched/v1/sched_pb.ts";
import { VfsService } from "../gen/astra/storage/v1/vfs_pb.ts";
import { BOOT_ORDER, readEnv, type ServiceName, systemConfigFrom } from "../lib/config.ts";
import { GrpcTransport } from "../lib/grpc.ts";
import { setLogLevel } from "../lib/log.ts";
import { client, type Transport } from "../lib/rpc.ts";
import { Supervisor } from "../lib/supervisor.ts";
import { signalName } from "../lib/linux/signals.ts";
import { SPAN_RING_CAPACITY, TRACE_KERNEL_CALLS_VAR } from "../lib/tracing.ts";
import { renderTraces } from "./trace.ts";

interface RunOptions {
  root: string;
  /** Trace every system call and print the calls when the program ends. */
  trace: boolean;
  transport: "embedded" | "grpc";
  env: string[];
  clearEnv: boolean;
  machine: Record<string, string>;
  program: string;
  args: string[];
}

const VALUE_FLAGS = new Set(["--root", "--transport", "--env", "--memory", "--cpus", "--numa"]);

/** Options come before PROGRAM; everything from PROGRAM on belongs to the guest. */
function parseRunArgs(args: string[]): RunOptions | string {
  const options: RunOptions = {
    root: Deno.cwd(),
    trace: false,
    transport: readEnv("ASTRA_TRANSPORT") === "grpc" ? "grpc" : "embedded",
    env: [],
    clearEnv: false,
    machine: {},
    program: "",
    args: [],
  };
  let i = 0;
  for (; i < args.length && args[i].startsWith("--"); i++) {
    const [flag, inline] = args[i].includes("=") && VALUE_FLAGS.has(args[i].slice(0, args[i].indexOf("=")))
      ? [args[i].slice(0, args[i].indexOf("=")), args[i].slice(args[i].indexOf("=") + 1)]
      : [args[i], undefined];
    if (flag === "--") {
      i++;
      break;
    }
    if (flag === "--clear-env") {
      options.clearEnv = true;
      continue;
    }
    if (flag === "--trace") {
      options.trace = true;
      continue;
    }
    if (!VALUE_FLAGS.has(flag)) return `unknown option ${flag}`;
    const value = inline ?? args[++i];
    if (value === undefined) return `${flag} needs a value`;
    switch (flag) {
      case "--root":
        options.root = value;
        break;
      case "--transport":
        if (value !== "embedded" && value !== "grpc") {
          return `--transport must be embedded or grpc, not ${value}`;
        }
        options.transport = value;
        break;
      case "--env":
        if (!value.includes("=")) return `--env takes K=V, not ${value}`;
        options.env.push(value);
        break;
      default:
        options.machine[flag.slice(2)] = value;
    }
  }
  if (i >= args.length) return "run needs a PROGRAM";
  options.program = args[i];
  options.args = args.slice(i + 1);
  return options;
}

/** The guest's environment: the caller's (as qemu-user passes it) unless cleared, then --env. */
function guestEnvironment(options: RunOptions): Uint8Array[] {
  const env = new Map<string, string>(options.clearEnv ? [] : Object.entries(Deno.env.toObject()));
  for (const pair of options.env) {
    const at = pair.indexOf("=");
    env.set(pair.slice(0, at), pair.slice(at + 1));
  }
  const encoder = new TextEncoder();
  return [...env].map(([k, v]) => encoder.encode(`${k}=${v}`));
}

/**
 * The caller's identity, which the guest gets as qemu-user passes the host's through: user, group
 * and supplementary groups (from /proc/self/status, where Linux lists them).
 */
async function callerCredentials() {
  const uid = Deno.uid() ?? 0, gid = Deno.gid() ?? 0;
  const status = await Deno.readTextFile("/proc/self/status").catch(() => "");
  const listed = /^Groups:[ \t]*(.*)$/m.exec(status)?.[1].trim();
  const groups = listed === undefined ? [gid] : listed === "" ? [] : listed.split(/\s+/).map(Number);
  return { uid, gid, euid: uid, egid: gid, suid: uid, sgid: gid, groups };
}

/** The caller's file mode creation mask (reading it means setting it: put straight back). */
function callerUmask(): number {
  const mask = process.umask(0);
  process.umask(mask);
  return mask;
}

interface BootedSystem {
  transport(name: ServiceName): Transport;
  shutdown(): Promise<void>;
}

async function bootEmbeddedForRun(config: ReturnType<typeof systemConfigFrom>): Promise<BootedSystem> {
  const { bootEmbedded } = await import("../lib/host.ts");
  const { loadFactory } = await import("../services/index.ts");
  const system = await bootEmbedded(loadFactory, config);
  const transport = system.router.transport();
  return { transport: () => transport, shutdown: () => system.shutdown() };
}

/** Five service processes on Unix sockets in the run's data folder; storage gets the caller's stdio. */
async function bootProcessesForRun(
  config: ReturnType<typeof systemConfigFrom>,
  machineArgs: string[],
  root: string,
): Promise<BootedSystem> {
  const addresses = Object.fromEntries(
    BOOT_ORDER.map((name) => [name, `unix:${config.dataDir}/${name}.sock`]),
  ) as Record<ServiceName, string>;
  const supervisor = new Supervisor({
    dataDir: config.dataDir,
    serviceArgs: ["--data-dir", config.dataDir, ...machineArgs],
    addresses,
    // Unix sockets are files: every service reads and writes the run's folder.
    extraReadWrite: Object.fromEntries(
      BOOT_ORDER.map((name) => [name, name === "storage" ? [config.dataDir, root] : [config.dataDir]]),
    ),
    stdio: { storage: "inherit" },
  });
  await supervisor.start();
  const transports = new Map(BOOT_ORDER.map((name) => [name, new GrpcTransport(addresses[name])]));
  return {
    transport: (name) => transports.get(name)!,
    async shutdown() {
      // The run's state is thrown away with its folder; guest writes to the root are already in
      // the host's files, so the services go at once.
      await supervisor.kill();
      for (const t of transports.values()) t.close();
    },
  };
}

/**
 * The traced system calls, as trees with what their owners did for them, on stderr. Each service
 * keeps its last SPAN_RING_CAPACITY spans: a long run shows its last calls.
 */
async function printKernelCalls(system: BootedSystem): Promise<void> {
  const spans: Span[] = [];
  for (const name of BOOT_ORDER) {
    const observability = client(ObservabilityService, system.transport(name), "astra-run");
    spans.push(...(await observability.listSpans({ limit: SPAN_RING_CAPACITY })).spans);
  }
  const calls = new Set(spans.filter((s) => s.name.startsWith("sys.")).map((s) => s.traceId));
  const traced = spans.filter((s) => calls.has(s.traceId));
  console.error(`astra run: ${calls.size} system calls traced`);
  if (traced.length > 0) console.error(renderTraces(traced, Infinity));
}

export async function run(args: string[]): Promise<number> {
  const parsed = parseRunArgs(args);
  if (typeof parsed === "string") {
    console.error(`astra run: ${parsed} (./astra help shows the usage)`);
    return 2;
  }
  const root = await Deno.realPath(parsed.root).catch(() => undefined);
  if (!root || !(await Deno.stat(root)).isDirectory) {
    console.error(`astra run: --root ${parsed.root} is not a folder`);
    return 2;
  }
  // The guest owns stdout and stderr: the services say only what went wrong, unless asked.
  if (!readEnv("ASTRA_LOG_LEVEL")) {
    setLogLevel("error");
    Deno.env.set("ASTRA_LOG_LEVEL", "error");
  }
  // Read by the machine's trap path (embedded) and inherited by the service processes (gRPC).
  if (parsed.trace) Deno.env.set(TRACE_KERNEL_CALLS_VAR, "1");
  const dataDir = await Deno.makeTempDir({ prefix: "astra-run-" });
  const config = systemConfigFrom({ ...parsed.machine, "data-dir": dataDir });
  const machineArgs = Object.entries(parsed.machine).flatMap(([k, v]) => [`--${k}`, v]);
  let system: BootedSystem | undefined;
  try {
    system = parsed.transport === "embedded"
      ? await bootEmbeddedForRun(config)
      : await bootProcessesForRun(config, machineArgs, root);
    const vfs = client(VfsService, system.transport("storage"), "astra-run");
    const sched = client(SchedService, system.transport("sched"), "astra-run");
    await vfs.mountHostFolder({ hostPath: root, mountPoint: new TextEncoder().encode("/") });
    const encoder = new TextEncoder();
    const { pid } = await sched.createProcess({
      programPath: parsed.program,
      argv: [parsed.program, ...parsed.args].map((a) => encoder.encode(a)),
      envp: guestEnvironment(parsed),
      credentials: await callerCredentials(),
      umask: callerUmask(),
    });
    const outcome = await sched.wait({ callerPid: 0, pid });
    // Nothing runs any more: the CPUs stop before the services do, so no kernel call reaches a
    // service that is already gone.
    const machine = client(MachineService, system.transport("machine"), "astra-run");
    for (const cpu of (await machine.listCpus({})).cpus) await machine.stopCpu({ cpu: cpu.cpu });
    if (parsed.trace) await printKernelCalls(system);
    switch (outcome.outcome) {
      case ChildOutcome.EXITED:
        return outcome.exitCode;
      case ChildOutcome.KILLED:
      case ChildOutcome.DUMPED:
        console.error(
          `astra run: ${parsed.program} terminated by signal ${outcome.signal} (${
            signalName(outcome.signal)
          })${outcome.outcome === ChildOutcome.DUMPED ? ", core dumped" : ""}`,
        );
        return 128 + outcome.signal;
      default:
        console.error(
          `astra run: ${parsed.program} ended with wait status 0x${outcome.waitStatus.toString(16)}`,
        );
        return 1;
    }
  } finally {
    await system?.shutdown();
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
}

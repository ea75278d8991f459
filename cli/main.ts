// The `astra` command line. Every user-facing command goes through here (via ./astra).
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import {
  DEFAULT_GATEWAY_ADDRESS,
  isServiceName,
  readEnv,
  SERVICE_NAMES,
  servicePermissions,
  systemConfigFrom,
} from "../lib/config.ts";
import { AstraError } from "../lib/errors.ts";
import { Supervisor } from "../lib/supervisor.ts";
import { call, listMethods } from "./call.ts";
import { gen } from "./gen.ts";
import { fsck, kv, KV_USAGE, mkfs } from "./kv.ts";
import { makeBaseImage } from "./image.ts";

const REPO = fileURLToPath(new URL("..", import.meta.url)).replace(/\/$/, "");

const USAGE = `AstraLisp OS — an operating system for an emulated 64-bit POWER machine, as services.

usage: ./astra <command> [options]

  boot [--transport embedded|grpc] [--listen ADDR] [--memory 1G] [--numa N] [--cpus N] [--data-dir DIR]
        boot all five services: in one process (embedded, default; one gRPC port for clients,
        default ${DEFAULT_GATEWAY_ADDRESS}) or each as its own supervised process (grpc, ports 7701-7705)
  run [--root DIR] [--transport embedded|grpc] [--env K=V]... [--clear-env] [--memory 1G] [--cpus N]
      [--trace] PROGRAM [ARGS...]
        run a static ppc64le Linux program with DIR (default: the current folder) as its root
        and the caller's stdin/stdout/stderr; exits with its status (128+N if killed by signal N);
        --trace prints every system call, with what its owner did for it, when the program ends
  serve NAME [--listen HOST:PORT] [--peer NAME=HOST:PORT]...
        run one service alone (NAME: ${SERVICE_NAMES.join(", ")})
  call SERVICE METHOD [JSON] [--endpoint ADDR] [--timeout MS]
        call any RPC by name (protobuf JSON in and out); streaming requests from stdin, one per line
  call --list [SERVICE]
        list every service and method
  trace [--trace ID] [--last N] [--endpoint ADDR]
        the last N calls (default 10) as trees of spans across services, with durations
${KV_USAGE}
  storage devices | read DEV LBA COUNT > FILE | write DEV LBA < FILE  [--endpoint ADDR]
        the block devices the AHCI and NVMe drivers found, and raw block I/O
  machine disk list | attach LOCATION [--image PATH] [--size SIZE] | detach LOCATION [--surprise]
  machine fault inject KIND LOCATION [--lba FIRST] [--blocks N] [--count N] | clear [LOCATION] [--id ID]
        hot-plug the machine's disks and make them fail (./astra machine --help for the kinds)
  test [VITEST ARGS]
        contracts, type, lint and format checks, then the whole test suite
  gen [--check]
        lint the contracts and regenerate gen/ (--check: fail if gen/ is stale)
  image
        make the local Deno base image for machines whose Docker cannot pull images
`;

const MACHINE_FLAGS = {
  memory: { type: "string" },
  numa: { type: "string" },
  cpus: { type: "string" },
  "data-dir": { type: "string" },
} as const;

function machineArgs(values: Record<string, unknown>): string[] {
  return Object.keys(MACHINE_FLAGS).flatMap((k) =>
    values[k] !== undefined ? [`--${k}`, String(values[k])] : []
  );
}

async function boot(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { transport: { type: "string" }, listen: { type: "string" }, ...MACHINE_FLAGS },
  });
  const transport = values.transport ?? readEnv("ASTRA_TRANSPORT") ?? "embedded";
  const config = systemConfigFrom(values);
  const t0 = performance.now();
  const stamp = () => `[${((performance.now() - t0) / 1000).toFixed(3)}s]`;
  console.log(`AstraLisp OS booting (${transport})`);
  let stop: () => Promise<void>;
  if (transport === "embedded") {
    const { bootEmbedded } = await import("../lib/host.ts");
    const { loadFactory } = await import("../services/index.ts");
    const system = await bootEmbedded(loadFactory, config, {
      gateway: values.listen ?? DEFAULT_GATEWAY_ADDRESS,
      onStep: (name, line) => console.log(`${stamp()} ${name.padEnd(7)} ${line}`),
    });
    console.log(`${stamp()} ready: all five services on ${system.gatewayAddress} (Ctrl-C to stop)`);
    stop = () => system.shutdown();
  } else if (transport === "grpc") {
    const supervisor = new Supervisor({ dataDir: config.dataDir, serviceArgs: machineArgs(values) });
    await supervisor.start((name, address) =>
      console.log(`${stamp()} ${name.padEnd(7)} serving on ${address}`)
    );
    console.log(`${stamp()} ready: five supervised service processes on loopback (Ctrl-C to stop)`);
    stop = () => supervisor.stop();
  } else {
    console.error(`--transport must be embedded or grpc, not ${transport}`);
    return 2;
  }
  await new Promise<void>((resolve) => {
    const onSignal = async () => {
      console.log("shutting down");
      await stop();
      resolve();
    };
    Deno.addSignalListener("SIGINT", onSignal);
    Deno.addSignalListener("SIGTERM", onSignal);
  });
  return 0;
}

/** Runs one service as a child process with only the permissions that service needs. */
async function serve(args: string[]): Promise<number> {
  const name = args[0];
  if (!name || !isServiceName(name)) {
    console.error(`serve needs a service name: ${SERVICE_NAMES.join(", ")}`);
    return 2;
  }
  const { values } = parseArgs({ args: args.slice(1), options: { ...MACHINE_FLAGS }, strict: false });
  const dataDir = systemConfigFrom(values as Record<string, string>).dataDir;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...servicePermissions(name, REPO, dataDir),
      `${REPO}/services/${name}/main.ts`,
      ...args.slice(1),
    ],
    stdin: "inherit",
  }).spawn();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => child.kill(signal));
  }
  const status = await child.status;
  return status.code;
}

async function callCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { endpoint: { type: "string" }, timeout: { type: "string" }, list: { type: "boolean" } },
  });
  if (values.list) {
    console.log(await listMethods(positionals[0]));
    return 0;
  }
  if (positionals.length < 2) {
    console.error("usage: ./astra call SERVICE METHOD [JSON]   (./astra call --list shows them all)");
    return 2;
  }
  return await call({
    service: positionals[0],
    method: positionals[1],
    json: positionals[2],
    endpoint: values.endpoint,
    timeoutMs: values.timeout ? Number(values.timeout) : undefined,
  });
}

async function test(args: string[]): Promise<number> {
  if (await gen(true)) return 1;
  const run = async (cmdArgs: string[]) =>
    (await new Deno.Command(Deno.execPath(), { args: cmdArgs, cwd: REPO }).spawn().status).code;
  if (
    await run([
      "check",
      "cli/main.ts",
      ...SERVICE_NAMES.map((n) => `services/${n}/main.ts`),
      "bench/",
      "test/",
    ])
  ) {
    return 1;
  }
  if (await run(["lint", "--quiet"]) || await run(["fmt", "--check", "--quiet"])) return 1;
  return await run(["run", "-A", "npm:vitest@3.2.7", "run", ...args]);
}

async function traceCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { endpoint: { type: "string" }, trace: { type: "string" }, last: { type: "string" } },
  });
  const { trace } = await import("./trace.ts");
  return await trace({ endpoint: values.endpoint, traceId: values.trace, traces: Number(values.last ?? 10) });
}

const commands: Record<string, (args: string[]) => Promise<number>> = {
  boot,
  serve,
  call: callCommand,
  trace: traceCommand,
  kv,
  mkfs,
  fsck,
  run: async (args) => (await import("./run.ts")).run(args),
  storage: async (args) => (await import("./storage.ts")).storageCommand(args),
  machine: async (args) => (await import("./machine.ts")).machineCommand(args),
  test,
  gen: (args) => gen(args.includes("--check")),
  image: async () => {
    await makeBaseImage();
    return 0;
  },
};

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === "help" || command === "--help" || command === "-h") {
    console.log(USAGE);
    return command ? 0 : 2;
  }
  const run = commands[command];
  if (!run) {
    console.error(`unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
    return 2;
  }
  try {
    return await run(rest);
  } catch (e) {
    console.error(
      `astra ${command}: ${e instanceof AstraError ? e.describe() : e instanceof Error ? e.message : e}`,
    );
    return 1;
  }
}

Deno.exit(await main(Deno.args));

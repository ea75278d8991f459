// Names, ports and limits shared by the CLI, the services and the tests.

export const SERVICE_NAMES = ["machine", "pmm", "vmm", "storage", "sched"] as const;
export type ServiceName = typeof SERVICE_NAMES[number];

export function isServiceName(name: string): name is ServiceName {
  return (SERVICE_NAMES as readonly string[]).includes(name);
}

/** Boot order from the design: hardware, memory, address spaces, disks, processes. */
export const BOOT_ORDER: readonly ServiceName[] = SERVICE_NAMES;

/** The embedded system's single public gRPC port. */
export const DEFAULT_GATEWAY_ADDRESS = "127.0.0.1:7700";

/** Per-service ports in process mode and in containers (machine 7701 ... sched 7705). */
export const DEFAULT_PORTS: Record<ServiceName, number> = {
  machine: 7701,
  pmm: 7702,
  vmm: 7703,
  storage: 7704,
  sched: 7705,
};

/** Largest message either transport accepts in either direction. */
export const DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

/**
 * Microseconds a service process keeps a CPU awake after each gRPC message (lib/busy_poll.ts); 0
 * turns busy polling off.
 */
export const BUSY_POLL_VAR = "ASTRA_BUSY_POLL_US";
export const DEFAULT_BUSY_POLL_MICROS = 200;

/** Set by the supervisor in its children's environment: the process whose death ends them. */
export const SUPERVISOR_PID_VAR = "ASTRA_SUPERVISOR_PID";

/** Environment variable naming a peer's address, e.g. ASTRA_PMM_ADDRESS=pmm:7702. */
export function peerEnvVar(name: ServiceName): string {
  return `ASTRA_${name.toUpperCase()}_ADDRESS`;
}

export function readEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined;
  }
}

const SIZE_UNITS: Record<string, number> = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/** "2G", "512M", "65536" → bytes. */
export function parseSize(text: string): number {
  const m = /^(\d+)([KMGT]?)(i?B)?$/i.exec(text.trim());
  if (!m) throw new Error(`not a size: ${JSON.stringify(text)} (use e.g. 512M or 2G)`);
  return Number(m[1]) * SIZE_UNITS[m[2].toUpperCase()];
}

/** Default machine: 1 GiB of RAM in one NUMA node, 2 CPUs, state under ./var. */
export function systemConfigFrom(flags: Record<string, string | undefined>) {
  const pick = (flag: string, env: string, fallback: string) => flags[flag] ?? readEnv(env) ?? fallback;
  const config = {
    memoryBytes: parseSize(pick("memory", "ASTRA_MEMORY", "1G")),
    numaNodes: Number(pick("numa", "ASTRA_NUMA_NODES", "1")),
    cpus: Number(pick("cpus", "ASTRA_CPUS", "2")),
    dataDir: pick("data-dir", "ASTRA_DATA_DIR", "var"),
  };
  if (!Number.isInteger(config.numaNodes) || config.numaNodes < 1 || config.numaNodes > 8) {
    throw new Error(`--numa must be 1..8, not ${config.numaNodes}`);
  }
  if (!Number.isInteger(config.cpus) || config.cpus < 1 || config.cpus > 64) {
    throw new Error(`--cpus must be 1..64, not ${config.cpus}`);
  }
  if (config.memoryBytes < 16 * 1024 ** 2 * config.numaNodes || config.memoryBytes > 64 * 1024 ** 3) {
    throw new Error(`--memory must be at least 16M per NUMA node and at most 64G`);
  }
  return config;
}

/**
 * The Deno permissions a standalone service runs with: network for gRPC, environment for its
 * configuration, read access to its own code; the machine and storage also read and write their
 * data folder (disk images, volumes), and any service the folders in `extraReadWrite` (Unix
 * sockets, the root folder of `astra run`).
 */
export function servicePermissions(
  name: ServiceName,
  repoDir: string,
  dataDir: string,
  extraReadWrite: readonly string[] = [],
): string[] {
  // setPriority: the busy-polling thread takes the lowest priority.
  const perms = ["--allow-net", "--allow-env", "--allow-sys=hostname,osRelease,cpus,uid,gid,setPriority"];
  const own = [...(name === "machine" || name === "storage" ? [dataDir] : []), ...extraReadWrite];
  perms.push(own.length ? `--allow-read=${repoDir},${own.join(",")}` : `--allow-read=${repoDir}`);
  if (own.length) perms.push(`--allow-write=${own.join(",")}`);
  return perms;
}

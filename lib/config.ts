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

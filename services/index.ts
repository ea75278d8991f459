// Where each service's code lives; loaded on demand so a host only loads the services it runs.
import type { ServiceName } from "../lib/config.ts";
import type { ServiceFactory } from "../lib/module.ts";

export async function loadFactory(name: ServiceName): Promise<ServiceFactory> {
  switch (name) {
    case "machine":
      return (await import("./machine/server.ts")).createMachine;
    case "pmm":
      return (await import("./pmm/server.ts")).createPmm;
    case "vmm":
      return (await import("./vmm/server.ts")).createVmm;
    case "storage":
      return (await import("./storage/server.ts")).createStorage;
    case "sched":
      return (await import("./sched/server.ts")).createSched;
  }
}

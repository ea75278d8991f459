// What a service is to the hosts that run it (embedded boot, standalone process, container): its
// bound contracts and its boot step. A service reaches its peers only through `Peers`, whatever
// the transport underneath.
import { SERVICE_NAMES, type ServiceName } from "./config.ts";
import type { Transport } from "./rpc.ts";
import type { BoundService } from "./server.ts";

export type Peers = Readonly<Record<ServiceName, Transport>>;

export function peersFrom(make: (name: ServiceName) => Transport): Peers {
  const peers = {} as Record<ServiceName, Transport>;
  for (const name of SERVICE_NAMES) peers[name] = make(name);
  return peers;
}

/** Machine configuration; each service reads the part it owns. */
export interface SystemConfig {
  /** Guest RAM in bytes. */
  memoryBytes: number;
  numaNodes: number;
  cpus: number;
  /** Host folder for disk images and other persistent state. */
  dataDir: string;
}

export interface ServiceModule {
  readonly name: ServiceName;
  readonly bound: readonly BoundService[];
  /**
   * The service's boot step; peers earlier in the boot order are already serving. Resolves with
   * the one line the boot log shows for this step.
   */
  start(): Promise<string>;
  stop(): Promise<void>;
}

export type ServiceFactory = (peers: Peers, config: SystemConfig) => ServiceModule;

// Shared fixtures for the driver tests: a device machine (the machine's AHCI and NVMe models,
// interrupt controller and memory in this process), a machine behind a gRPC port as in process mode,
// and data patterns that name where they differ.
import { expect } from "vitest";
import { AstraError, type Code, type Errno } from "../../../lib/errors.ts";
import { GrpcServer, GrpcTransport } from "../../../lib/grpc.ts";
import { InProcessRouter } from "../../../lib/inproc.ts";
import { peersFrom, type SystemConfig } from "../../../lib/module.ts";
import type { Transport } from "../../../lib/rpc.ts";
import { createMachine } from "../../../services/machine/server.ts";
import { createPmm } from "../../../services/pmm/server.ts";
import { DiskImage } from "../../../services/machine/devices/diskimage.ts";
import { DeviceMachine, ServiceHardware } from "../../../services/storage/hardware.ts";
import { storageModule } from "../../../services/storage/server.ts";

type StorageModule = ReturnType<typeof storageModule>;

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

/** Bytes that differ with position and seed, so a misplaced block shows. */
export function pattern(bytes: number, seed: number): Uint8Array {
  const out = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) out[i] = (i * 13 + seed * 71 + (i >> 9) * 7 + (i >> 12)) & 0xff;
  return out;
}

/** Compares byte arrays; a failure names the first differing offset instead of dumping both. */
export function expectBytes(actual: Uint8Array, expected: Uint8Array): void {
  let at = actual.length === expected.length ? -1 : Math.min(actual.length, expected.length);
  for (let i = 0; at < 0 && i < actual.length; i++) if (actual[i] !== expected[i]) at = i;
  expect(at, `buffers differ at byte ${at} (lengths ${actual.length} and ${expected.length})`).toBe(-1);
}

/** Awaits `promise`, expecting an AstraError with these code and errno; returns it. */
export async function expectFailure(
  promise: Promise<unknown>,
  code: Code,
  errno: Errno,
): Promise<AstraError> {
  let caught: unknown;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  expect(caught, "expected the call to fail").toBeInstanceOf(AstraError);
  const err = caught as AstraError;
  expect({ code: err.code, errno: err.errno, message: err.message }).toMatchObject({ code, errno });
  return err;
}

export interface NvmeMachineOptions {
  namespaces?: { nsid: number; bytes: number; lbaSize: 512 | 4096 }[];
  vectors?: number;
  maxQueueEntries?: number;
  maxTransferLog2?: number;
  doorbellStride?: number;
  cpus?: number;
}

/** A machine with an NVMe controller over memory disks (512 B and 4 KiB namespaces by default). */
export function nvmeMachine(
  options: NvmeMachineOptions = {},
): { machine: DeviceMachine; disks: Map<number, DiskImage> } {
  const disks = new Map<number, DiskImage>();
  for (
    const ns of options.namespaces ?? [
      { nsid: 1, bytes: 64 * MiB, lbaSize: 512 },
      { nsid: 2, bytes: 32 * MiB, lbaSize: 4096 },
    ]
  ) {
    disks.set(ns.nsid, DiskImage.memory({ sizeBytes: ns.bytes, lbaSize: ns.lbaSize }));
  }
  const machine = new DeviceMachine({
    cpus: options.cpus,
    nvme: {
      namespaces: [...disks].map(([nsid, disk]) => ({ nsid, disk })),
      vectors: options.vectors,
      maxQueueEntries: options.maxQueueEntries,
      maxTransferLog2: options.maxTransferLog2,
      doorbellStride: options.doorbellStride,
    },
  });
  return { machine, disks };
}

/** A machine with an AHCI HBA of `ports` ports and disks on some of them. */
export function ahciMachine(
  options: { ports?: number; disks?: { port: number; bytes: number; lbaSize?: 512 | 4096 }[] } = {},
): { machine: DeviceMachine; disks: Map<number, DiskImage> } {
  const disks = new Map<number, DiskImage>();
  for (const d of options.disks ?? [{ port: 0, bytes: 64 * MiB }]) {
    disks.set(d.port, DiskImage.memory({ sizeBytes: d.bytes, lbaSize: d.lbaSize ?? 512 }));
  }
  const machine = new DeviceMachine({
    ahci: {
      ports: options.ports ?? 4,
      disks: [...disks].map(([port, disk]) => ({ port, disk })),
    },
  });
  return { machine, disks };
}

/** A machine and pmm reachable only through a gRPC port, and a storage module driving them over it. */
export interface RemoteMachine {
  /** The machine's and pmm's own in-process router, for calls that need not cross the port. */
  local: Transport;
  /** A storage module whose every register access, DMA transfer and interrupt crosses the port. */
  storage: StorageModule;
  /** Stops all of it and removes `dataDir`. */
  stop(): Promise<void>;
}

/** What process mode does to the drivers: their machine (in `config.dataDir`) behind a gRPC port. */
export async function remoteMachine(config: SystemConfig): Promise<RemoteMachine> {
  const router = new InProcessRouter();
  const local = router.transport();
  const peers = peersFrom(() => local);
  const machine = createMachine(peers, config);
  const pmm = createPmm(peers);
  const server = new GrpcServer("machine");
  for (const m of [machine, pmm]) {
    m.bound.forEach((b) => router.add(b));
    m.bound.forEach((b) => server.add(b));
  }
  await machine.start();
  await pmm.start();
  const remote = new GrpcTransport(await server.listen("127.0.0.1:0"));
  server.setServing(true);
  const storage = storageModule(new ServiceHardware(remote, remote), config.dataDir);
  return {
    local,
    storage,
    async stop() {
      await storage.stop();
      remote.close();
      await server.shutdown();
      await pmm.stop();
      await machine.stop();
      await Deno.remove(config.dataDir, { recursive: true });
    },
  };
}

// Shared fixtures for the driver tests: a device machine (the machine's AHCI and NVMe models,
// interrupt controller and memory in this process) and data patterns that name where they differ.
import { expect } from "vitest";
import { AstraError, type Code, type Errno } from "../../../lib/errors.ts";
import { DiskImage } from "../../../services/machine/devices/diskimage.ts";
import { DeviceMachine } from "../../../services/storage/hardware.ts";

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

// The translation batch against a recording machine: page contents, then HPTE writes reach guest
// memory (in as few AccessDevices calls as the limits allow) before the TLBs are invalidated, and
// frames are released only after both; adjacent entries go in one write, invalidations as few
// requests as cover them, reads see everything pending, and a failed step loses nothing.
import { describe, expect, it } from "vitest";
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  type DeviceAccessSchema,
  MachineService,
  TlbScope,
} from "../../../gen/astra/machine/v1/machine_pb.ts";
import { AstraError, Code, Errno } from "../../../lib/errors.ts";
import type { Client } from "../../../lib/rpc.ts";
import { MachineMemory, MachineTlb, TranslationBatch } from "../../../services/vmm/remote.ts";

type Event =
  | { kind: "write"; address: number; bytes: number[] }
  | { kind: "fill"; address: number; length: number; value: number }
  | { kind: "read"; address: number; length: number }
  | { kind: "invalidate"; scope: TlbScope; vsid: number; ea: number }
  | { kind: "release"; frame: number };

interface Recording {
  machine: Client<typeof MachineService>;
  /** The accesses of each AccessDevices call. */
  calls: number[];
}

/** Sparse guest memory in 1 MiB chunks, zero where never written. */
class SparseMemory {
  readonly #chunks = new Map<number, Uint8Array>();

  #each(
    address: number,
    length: number,
    visit: (chunk: Uint8Array, offset: number, done: number, n: number) => void,
  ) {
    for (let done = 0; done < length;) {
      const at = address + done;
      const index = Math.floor(at / MIB);
      let chunk = this.#chunks.get(index);
      if (!chunk) this.#chunks.set(index, chunk = new Uint8Array(MIB));
      const n = Math.min(MIB - (at % MIB), length - done);
      visit(chunk, at % MIB, done, n);
      done += n;
    }
  }

  write(address: number, data: Uint8Array): void {
    this.#each(
      address,
      data.length,
      (chunk, offset, done, n) => chunk.set(data.subarray(done, done + n), offset),
    );
  }

  fill(address: number, length: number, value: number): void {
    this.#each(address, length, (chunk, offset, _done, n) => chunk.fill(value, offset, offset + n));
  }

  read(address: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    this.#each(
      address,
      length,
      (chunk, offset, done, n) => out.set(chunk.subarray(offset, offset + n), done),
    );
    return out;
  }
}

const MIB = 1024 * 1024;

/**
 * The machine calls a batch makes, recorded in order (AccessDevices access by access, with bulky
 * writes recorded by their first 64 bytes); `failWrites` makes that many AccessDevices calls fail.
 */
function recordingMachine(
  events: Event[],
  options: { failWrites?: number; tlb?: "unimplemented" } = {},
): Recording {
  let failures = options.failWrites ?? 0;
  const memory = new SparseMemory();
  const calls: number[] = [];
  const machine = {
    accessDevices: (req: { accesses: MessageInitShape<typeof DeviceAccessSchema>[] }) => {
      if (failures > 0) {
        failures--;
        return Promise.reject(new AstraError(Code.UNAVAILABLE, Errno.EAGAIN, "machine restarting"));
      }
      calls.push(req.accesses.length);
      const results = req.accesses.map((access) => {
        const a = access.access!;
        switch (a.case) {
          case "writePhysical": {
            const address = Number(a.value.address);
            const data = a.value.data!;
            memory.write(address, data);
            events.push({ kind: "write", address, bytes: [...data.subarray(0, 64)] });
            return {};
          }
          case "fillPhysical": {
            const [address, length, value] = [
              Number(a.value.address),
              Number(a.value.length),
              a.value.value!,
            ];
            memory.fill(address, length, value);
            events.push({ kind: "fill", address, length, value });
            return {};
          }
          case "readPhysical": {
            const [address, length] = [Number(a.value.address), Number(a.value.length)];
            events.push({ kind: "read", address, length });
            return { result: { case: "data", value: memory.read(address, length) } };
          }
          default:
            throw new Error(`unexpected access ${a.case}`);
        }
      });
      return Promise.resolve({ results });
    },
    invalidateTlb: (req: { scope: TlbScope; vsid: bigint; effectiveAddress: bigint }) => {
      if (options.tlb === "unimplemented") {
        return Promise.reject(new AstraError(Code.UNIMPLEMENTED, Errno.ENOSYS, "no CPU yet"));
      }
      events.push({
        kind: "invalidate",
        scope: req.scope,
        vsid: Number(req.vsid),
        ea: Number(req.effectiveAddress),
      });
      return Promise.resolve({ entriesInvalidated: 1n });
    },
  };
  return { machine: machine as unknown as Client<typeof MachineService>, calls };
}

function entry(value: number): Uint8Array {
  return new Uint8Array(16).fill(value);
}

describe("TranslationBatch", () => {
  it("writes entries, then invalidates, then releases, coalescing each", async () => {
    const events: Event[] = [];
    const { machine, calls } = recordingMachine(events);
    const batch = new TranslationBatch(machine, new MachineTlb(machine));
    batch.write(0x2000_0010, entry(1));
    batch.write(0x2000_0000, entry(2));
    batch.write(0x2000_0010, entry(3));
    batch.write(0x2000_0100, entry(4));
    batch.invalidate({ scope: "page", vsid: 7, ea: 0x1000, pageShift: 12 });
    batch.invalidate({ scope: "page", vsid: 7, ea: 0x1000, pageShift: 12 });
    for (let page = 0; page < 17; page++) {
      batch.invalidate({ scope: "page", vsid: 9, ea: page * 4096, pageShift: 12 });
    }
    batch.afterInvalidation(() => {
      events.push({ kind: "release", frame: 0x80_0000 });
      return Promise.resolve();
    });
    await batch.commit();

    expect(events.map((e) => e.kind)).toEqual(["write", "write", "invalidate", "invalidate", "release"]);
    expect(calls).toEqual([2]);
    expect(events[0]).toEqual({ kind: "write", address: 0x2000_0000, bytes: [...entry(2), ...entry(3)] });
    expect(events[1]).toEqual({ kind: "write", address: 0x2000_0100, bytes: [...entry(4)] });
    expect(events.slice(2, 4)).toEqual([
      { kind: "invalidate", scope: TlbScope.PAGE, vsid: 7, ea: 0x1000 },
      { kind: "invalidate", scope: TlbScope.SEGMENT, vsid: 9, ea: 0 },
    ]);

    events.length = 0;
    batch.invalidate({ scope: "segment", vsid: 3 });
    batch.invalidate({ scope: "all" });
    await batch.commit();
    expect(events).toEqual([{ kind: "invalidate", scope: TlbScope.ALL, vsid: 0, ea: 0 }]);
  });

  it("keeps everything for the next commit when a write fails, and releases nothing before it lands", async () => {
    const events: Event[] = [];
    const { machine } = recordingMachine(events, { failWrites: 1 });
    const batch = new TranslationBatch(machine, new MachineTlb(machine));
    const memory = new MachineMemory(batch);
    memory.fill(0x8000, 4096, 0);
    batch.write(0x3000, entry(5));
    batch.invalidate({ scope: "page", vsid: 1, ea: 0x4000, pageShift: 12 });
    batch.afterInvalidation(() => {
      events.push({ kind: "release", frame: 0x9000 });
      return Promise.resolve();
    });
    await expect(batch.commit()).rejects.toThrow(/machine restarting/);
    expect(events).toEqual([]);
    batch.write(0x3000, entry(6));
    await batch.commit();
    expect(events).toEqual([
      { kind: "fill", address: 0x8000, length: 4096, value: 0 },
      { kind: "write", address: 0x3000, bytes: [...entry(6)] },
      { kind: "invalidate", scope: TlbScope.PAGE, vsid: 1, ea: 0x4000 },
      { kind: "release", frame: 0x9000 },
    ]);
  });

  it("writes a page's contents, then the entry that maps it, and reads the entry back, in one call", async () => {
    const events: Event[] = [];
    const { machine, calls } = recordingMachine(events);
    const batch = new TranslationBatch(machine, new MachineTlb(machine));
    const memory = new MachineMemory(batch);
    const fileBytes = new Uint8Array(100).fill(9);
    memory.fill(0x1_0000, 4096, 0);
    memory.write(0x1_0000, fileBytes);
    batch.write(0x2000_0040, entry(7));
    expect(events).toEqual([]);

    expect([...await memory.read(0x2000_0040, 16)]).toEqual([...entry(7)]);
    expect(calls).toEqual([4]);
    expect(events).toEqual([
      { kind: "fill", address: 0x1_0000, length: 4096, value: 0 },
      { kind: "write", address: 0x1_0000, bytes: [...fileBytes.subarray(0, 64)] },
      { kind: "write", address: 0x2000_0040, bytes: [...entry(7)] },
      { kind: "read", address: 0x2000_0040, length: 16 },
    ]);
    // Nothing is left for the commit at the end of the call.
    await batch.commit();
    expect(calls).toEqual([4]);
  });

  it("reads after pending invalidations, before pending releases", async () => {
    const events: Event[] = [];
    const { machine, calls } = recordingMachine(events);
    const batch = new TranslationBatch(machine, new MachineTlb(machine));
    const memory = new MachineMemory(batch);
    batch.write(0x3000, entry(1));
    batch.invalidate({ scope: "page", vsid: 2, ea: 0x5000, pageShift: 12 });
    batch.afterInvalidation(() => {
      events.push({ kind: "release", frame: 0x7000 });
      return Promise.resolve();
    });
    expect([...await memory.read(0x3000, 16)]).toEqual([...entry(1)]);
    expect(events.map((e) => e.kind)).toEqual(["write", "invalidate", "read", "release"]);
    expect(calls).toEqual([1, 1]);
  });

  it("splits what exceeds one AccessDevices call, keeping the order", async () => {
    const events: Event[] = [];
    const { machine, calls } = recordingMachine(events);
    const batch = new TranslationBatch(machine, new MachineTlb(machine));
    const memory = new MachineMemory(batch);
    const big = new Uint8Array(9 * 1024 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = i % 251;
    memory.write(0x10_0000, big);
    for (let i = 0; i < 4100; i++) memory.fill(0x100 + i, 1, 1);
    const back = await memory.read(0x10_0000, big.length);
    expect(back.length === big.length && back.every((byte, i) => byte === big[i])).toBe(true);
    // 8 MiB + 1 MiB written, 4100 fills, 8 MiB + 1 MiB read: never more than a call may carry.
    expect(calls).toEqual([1, 4096, 6, 1]);
    expect(events.filter((e) => e.kind === "read")).toEqual([
      { kind: "read", address: 0x10_0000, length: 8 * 1024 * 1024 },
      { kind: "read", address: 0x90_0000, length: 1024 * 1024 },
    ]);
  });

  it("counts a machine without a software TLB as having nothing to invalidate", async () => {
    const { machine } = recordingMachine([], { tlb: "unimplemented" });
    const tlb = new MachineTlb(machine);
    expect(await tlb.invalidate({ scope: "all" })).toBe(0n);
    expect(tlb.requests).toBe(1);
  });
});

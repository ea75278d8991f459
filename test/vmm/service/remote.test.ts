// The translation batch against a recording machine: HPTE writes reach guest memory before the
// TLBs are invalidated, and frames are released only after both; adjacent entries go in one
// write, invalidations as few requests as cover them, and a failed step loses nothing.
import { describe, expect, it } from "vitest";
import { MachineService, TlbScope } from "../../../gen/astra/machine/v1/machine_pb.ts";
import { AstraError, Code, Errno } from "../../../lib/errors.ts";
import type { Client } from "../../../lib/rpc.ts";
import { MachineTlb, TranslationBatch } from "../../../services/vmm/remote.ts";

type Event =
  | { kind: "write"; address: number; bytes: number[] }
  | { kind: "invalidate"; scope: TlbScope; vsid: number; ea: number }
  | { kind: "release"; frame: number };

/** The two machine calls a batch makes, recorded in order; `failWrites` makes writes fail. */
function recordingMachine(events: Event[], options: { failWrites?: number; tlb?: "unimplemented" } = {}) {
  let failures = options.failWrites ?? 0;
  const machine = {
    writePhysical: (req: { address: bigint; data: Uint8Array }) => {
      if (failures > 0) {
        failures--;
        return Promise.reject(new AstraError(Code.UNAVAILABLE, Errno.EAGAIN, "machine restarting"));
      }
      events.push({ kind: "write", address: Number(req.address), bytes: [...req.data] });
      return Promise.resolve({});
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
  return machine as unknown as Client<typeof MachineService>;
}

function entry(value: number): Uint8Array {
  return new Uint8Array(16).fill(value);
}

describe("TranslationBatch", () => {
  it("writes entries, then invalidates, then releases, coalescing each", async () => {
    const events: Event[] = [];
    const machine = recordingMachine(events);
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
    const machine = recordingMachine(events, { failWrites: 1 });
    const batch = new TranslationBatch(machine, new MachineTlb(machine));
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
      { kind: "write", address: 0x3000, bytes: [...entry(6)] },
      { kind: "invalidate", scope: TlbScope.PAGE, vsid: 1, ea: 0x4000 },
      { kind: "release", frame: 0x9000 },
    ]);
  });

  it("counts a machine without a software TLB as having nothing to invalidate", async () => {
    const machine = recordingMachine([], { tlb: "unimplemented" });
    const tlb = new MachineTlb(machine);
    expect(await tlb.invalidate({ scope: "all" })).toBe(0n);
    expect(tlb.requests).toBe(1);
  });
});

import { describe, expect, it } from "vitest";
import { Code, Errno } from "../../lib/errors.ts";
import {
  describeMemoryMap,
  type FirmwareMemoryEntry,
  MemoryType,
  normalizeMemoryMap,
} from "../../services/pmm/memmap.ts";
import { expectAstraError, P } from "./helpers.ts";

const { USABLE, RESERVED, ACPI_RECLAIMABLE, ACPI_NVS, BAD, DEVICE } = MemoryType;

// Regions as [start frame, end frame, type, node] for compact expectations.
function frames(entries: FirmwareMemoryEntry[]): [number, number, MemoryType, number][] {
  return normalizeMemoryMap(entries).map((r) => [r.firstFrame, r.firstFrame + r.frameCount, r.type, r.node]);
}

describe("normalizeMemoryMap", () => {
  it("sorts entries, merges adjacent ranges of one type and node, and keeps holes", () => {
    expect(frames([
      { base: 20 * P, length: 10 * P, type: USABLE },
      { base: 0, length: 5 * P, type: USABLE },
      { base: 5 * P, length: 5 * P, type: USABLE },
      { base: 40 * P, length: 2 * P, type: RESERVED },
    ])).toEqual([
      [0, 10, USABLE, 0],
      [20, 30, USABLE, 0],
      [40, 42, RESERVED, 0],
    ]);
  });

  it("does not merge neighbours of different nodes or types", () => {
    expect(frames([
      { base: 0, length: 4 * P, type: USABLE, node: 0 },
      { base: 4 * P, length: 4 * P, type: USABLE, node: 1 },
      { base: 8 * P, length: 4 * P, type: ACPI_RECLAIMABLE, node: 1 },
    ])).toEqual([
      [0, 4, USABLE, 0],
      [4, 8, USABLE, 1],
      [8, 12, ACPI_RECLAIMABLE, 1],
    ]);
  });

  it("resolves overlaps in favour of the more restrictive type", () => {
    expect(frames([
      { base: 0, length: 100 * P, type: USABLE },
      { base: 10 * P, length: 10 * P, type: RESERVED },
      { base: 15 * P, length: 10 * P, type: BAD },
      { base: 50 * P, length: 10 * P, type: ACPI_NVS },
      { base: 55 * P, length: 10 * P, type: DEVICE },
      { base: 80 * P, length: 10 * P, type: RESERVED },
      { base: 80 * P, length: 15 * P, type: ACPI_RECLAIMABLE },
    ])).toEqual([
      [0, 10, USABLE, 0],
      [10, 15, RESERVED, 0],
      [15, 25, BAD, 0],
      [25, 50, USABLE, 0],
      [50, 55, ACPI_NVS, 0],
      [55, 65, DEVICE, 0],
      [65, 80, USABLE, 0],
      [80, 90, RESERVED, 0],
      [90, 95, ACPI_RECLAIMABLE, 0],
      [95, 100, USABLE, 0],
    ]);
  });

  it("gives an overlap of one type on two nodes to the lower node", () => {
    expect(frames([
      { base: 0, length: 10 * P, type: USABLE, node: 1 },
      { base: 5 * P, length: 10 * P, type: USABLE, node: 0 },
    ])).toEqual([
      [0, 5, USABLE, 1],
      [5, 15, USABLE, 0],
    ]);
  });

  it("shrinks usable ranges inward and widens the others outward to whole frames", () => {
    const regions = normalizeMemoryMap([
      { base: 100, length: 3 * P - 50, type: USABLE },
      { base: 5 * P + 10, length: 10, type: RESERVED },
      { base: 4 * P, length: 3 * P, type: USABLE },
    ]);
    expect(regions.map((r) => [r.base, r.length, r.type])).toEqual([
      [BigInt(P), BigInt(2 * P), USABLE],
      [BigInt(4 * P), BigInt(P), USABLE],
      [BigInt(5 * P), BigInt(P), RESERVED],
      [BigInt(6 * P), BigInt(P), USABLE],
    ]);
  });

  it("drops usable memory smaller than a frame, leaving a hole", () => {
    expect(frames([
      { base: 0, length: 2 * P, type: USABLE },
      { base: 2 * P + 1, length: P, type: USABLE },
    ])).toEqual([[0, 2, USABLE, 0]]);
  });

  it("gives a frame shared by two widened ranges to the more restrictive one", () => {
    expect(frames([
      { base: 0, length: P + 100, type: ACPI_NVS },
      { base: P + 100, length: 2 * P - 100, type: RESERVED },
    ])).toEqual([
      [0, 2, ACPI_NVS, 0],
      [2, 3, RESERVED, 0],
    ]);
  });

  it("keeps device ranges above 2^53 exactly and ignores empty entries", () => {
    const high = 1n << 60n;
    const regions = normalizeMemoryMap([
      { base: 0, length: 0, type: USABLE },
      { base: 0, length: 16 * P, type: USABLE },
      { base: high, length: 1n << 20n, type: DEVICE, node: 0 },
    ]);
    expect(regions).toHaveLength(2);
    expect(regions[1].base).toBe(high);
    expect(regions[1].firstFrame).toBe(2 ** 48);
    expect(regions[1].frameCount).toBe(256);
  });

  it("rejects malformed entries naming the entry and field", () => {
    expectAstraError(
      () => normalizeMemoryMap([{ base: -1, length: P, type: USABLE }]),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "entries[0].base",
    );
    expectAstraError(
      () =>
        normalizeMemoryMap([{ base: 0, length: P, type: USABLE }, {
          base: 1n << 63n,
          length: (1n << 63n) + 1n,
          type: DEVICE,
        }]),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "entries[1].length",
    );
    expectAstraError(
      () => normalizeMemoryMap([{ base: 0, length: P, type: MemoryType.UNSPECIFIED }]),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "entries[0].type",
    );
    expectAstraError(
      () => normalizeMemoryMap([{ base: 0, length: P, type: 42 as MemoryType }]),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "entries[0].type",
    );
    expectAstraError(
      () => normalizeMemoryMap([{ base: 0, length: P, type: USABLE, node: 1.5 }]),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "entries[0].node",
    );
    expectAstraError(
      () => normalizeMemoryMap([{ base: 0.5, length: P, type: USABLE }]),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "entries[0].base",
    );
  });
});

describe("describeMemoryMap", () => {
  it("prints one line per region with inclusive ends", () => {
    const regions = normalizeMemoryMap([
      { base: 0, length: 10 * P, type: USABLE },
      { base: 20 * P, length: 10 * P, type: ACPI_RECLAIMABLE, node: 1 },
    ]);
    expect(describeMemoryMap(regions)).toEqual([
      "[0x0000000000000000-0x0000000000009fff] usable node 0",
      "[0x0000000000014000-0x000000000001dfff] acpi-reclaimable node 1",
    ]);
  });
});

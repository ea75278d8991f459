// The firmware memory map (the seed's multiboot map) as the machine publishes it at power-on, and
// its normalisation into the sorted, disjoint, frame-aligned regions pmm manages.
//
// Addresses here are bigint: the map is firmware data in uint64 (device ranges may sit above
// 2^53). Frame numbers always fit a number (2^64 / 4096 = 2^52), so regions carry both.
import { invalidArgument } from "../../lib/errors.ts";
import { MemoryType } from "../../gen/astra/pmm/v1/pmm_pb.ts";

export { MemoryType };

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;

const PAGE_BIG = BigInt(PAGE_SIZE);
const ADDRESS_LIMIT = 1n << 64n;

/** One entry of the firmware memory map, as the machine reports it. */
export interface FirmwareMemoryEntry {
  base: bigint | number;
  length: bigint | number;
  type: MemoryType;
  /** NUMA node of the range; 0 when the machine has a single node. */
  node?: number;
}

/** A normalised region: frame-aligned, disjoint from every other region. */
export interface MemoryRegion {
  base: bigint;
  length: bigint;
  type: MemoryType;
  node: number;
  /** base / PAGE_SIZE. */
  firstFrame: number;
  /** length / PAGE_SIZE. */
  frameCount: number;
}

/** RAM types: pmm keeps a bitmap for these (only USABLE frames start out free). */
export function isRam(type: MemoryType): boolean {
  return type === MemoryType.USABLE || type === MemoryType.RESERVED ||
    type === MemoryType.ACPI_RECLAIMABLE || type === MemoryType.ACPI_NVS;
}

// Where ranges overlap, the more restrictive type wins. ACPI-reclaimable RAM is freed once its
// tables are parsed, plain reserved RAM never is, NVS must even survive sleep, device ranges
// are not RAM at all, and bad memory must never be touched whatever else claims it.
const RESTRICTIVENESS: Record<MemoryType, number> = {
  [MemoryType.UNSPECIFIED]: -1,
  [MemoryType.USABLE]: 0,
  [MemoryType.ACPI_RECLAIMABLE]: 1,
  [MemoryType.RESERVED]: 2,
  [MemoryType.ACPI_NVS]: 3,
  [MemoryType.DEVICE]: 4,
  [MemoryType.BAD]: 5,
};

interface Range {
  start: bigint;
  end: bigint;
  type: MemoryType;
  node: number;
}

/**
 * Validates the firmware map and normalises it: overlaps are resolved in favour of the more
 * restrictive type (equal types: the lower node), usable ranges shrink inward to whole frames
 * while the others widen outward (a frame that is partly reserved is not usable), adjacent
 * ranges of the same type and node merge, and holes stay holes. Zero-length entries are ignored.
 */
export function normalizeMemoryMap(entries: readonly FirmwareMemoryEntry[]): MemoryRegion[] {
  const ranges: Range[] = entries.map(validateEntry).filter((r) => r.end > r.start);
  const aligned = resolveOverlaps(ranges).map(alignToFrames).filter((r) => r.end > r.start);
  // Widening can make two non-usable neighbours share a frame: resolve once more at frame grain.
  return mergeAdjacent(resolveOverlaps(aligned)).map(toRegion);
}

/** One line per region, for the boot log: `[0x0000000000000000-0x000000000009ffff] usable node 0`. */
export function describeMemoryMap(regions: readonly MemoryRegion[]): string[] {
  return regions.map((r) => {
    const last = r.base + r.length - 1n;
    const type = MemoryType[r.type].toLowerCase().replace("_", "-");
    return `[0x${r.base.toString(16).padStart(16, "0")}-0x${last.toString(16).padStart(16, "0")}] ` +
      `${type} node ${r.node}`;
  });
}

function validateEntry(entry: FirmwareMemoryEntry, index: number): Range {
  const where = `entries[${index}]`;
  const start = toUint64(entry.base, `${where}.base`);
  const length = toUint64(entry.length, `${where}.length`);
  if (start + length > ADDRESS_LIMIT) {
    throw invalidArgument(`${where}.length`, `memory map entry ${index} runs past the 64-bit address space`);
  }
  if (!(entry.type in RESTRICTIVENESS) || entry.type === MemoryType.UNSPECIFIED) {
    throw invalidArgument(`${where}.type`, `memory map entry ${index} has unknown type ${entry.type}`);
  }
  const node = entry.node ?? 0;
  if (!Number.isInteger(node) || node < 0 || node > 0xffff) {
    throw invalidArgument(`${where}.node`, `memory map entry ${index} has invalid NUMA node ${node}`);
  }
  return { start, end: start + length, type: entry.type, node };
}

function toUint64(value: bigint | number, argument: string): bigint {
  if (typeof value === "number" && !Number.isSafeInteger(value)) {
    throw invalidArgument(argument, `${argument} must be an integer, got ${value}`);
  }
  const big = BigInt(value);
  if (big < 0n || big >= ADDRESS_LIMIT) {
    throw invalidArgument(argument, `${argument} must be a 64-bit unsigned value, got ${big}`);
  }
  return big;
}

function wins(a: Range, b: Range): boolean {
  const ra = RESTRICTIVENESS[a.type];
  const rb = RESTRICTIVENESS[b.type];
  return ra !== rb ? ra > rb : a.node < b.node;
}

// Cuts the line at every range boundary and gives each elementary piece to the winning range.
// Maps have tens of entries, so the quadratic sweep costs nothing and stays obviously right.
function resolveOverlaps(ranges: readonly Range[]): Range[] {
  const cuts = [...new Set(ranges.flatMap((r) => [r.start, r.end]))].sort((
    a,
    b,
  ) => (a < b ? -1 : a > b ? 1 : 0));
  const pieces: Range[] = [];
  for (let i = 0; i + 1 < cuts.length; i++) {
    const start = cuts[i];
    const end = cuts[i + 1];
    let winner: Range | undefined;
    for (const r of ranges) {
      if (r.start <= start && r.end >= end && (winner === undefined || wins(r, winner))) winner = r;
    }
    if (winner) pieces.push({ start, end, type: winner.type, node: winner.node });
  }
  return pieces;
}

function alignToFrames(r: Range): Range {
  if (r.type === MemoryType.USABLE) {
    const start = (r.start + PAGE_BIG - 1n) / PAGE_BIG * PAGE_BIG;
    const end = r.end / PAGE_BIG * PAGE_BIG;
    return { ...r, start, end: end > start ? end : start };
  }
  const start = r.start / PAGE_BIG * PAGE_BIG;
  const end = (r.end + PAGE_BIG - 1n) / PAGE_BIG * PAGE_BIG;
  return { ...r, start, end: end < ADDRESS_LIMIT ? end : ADDRESS_LIMIT };
}

function mergeAdjacent(ranges: readonly Range[]): Range[] {
  const merged: Range[] = [];
  for (const r of ranges) {
    const last = merged[merged.length - 1];
    if (last && last.end === r.start && last.type === r.type && last.node === r.node) last.end = r.end;
    else merged.push({ ...r });
  }
  return merged;
}

function toRegion(r: Range): MemoryRegion {
  const length = r.end - r.start;
  return {
    base: r.start,
    length,
    type: r.type,
    node: r.node,
    firstFrame: Number(r.start / PAGE_BIG),
    frameCount: Number(length / PAGE_BIG),
  };
}

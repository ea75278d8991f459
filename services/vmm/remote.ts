// vmm's hands on the machine, over MachineService whatever the transport: guest physical memory
// (frames are filled and copied there), the hashed page table's bytes, and TLB shootdowns.
//
// Changes to the table are gathered into a TranslationBatch, as Linux's mmu_gather does, and a
// commit at the end of each vmm call applies them in the only safe order: the changed HPTEs are
// written (one WritePhysical per run of adjacent entries), then the TLBs drop what those entries
// used to translate, and only then do frames that lost their last translation go back to pmm.
import { MachineService, TlbScope } from "../../gen/astra/machine/v1/machine_pb.ts";
import { AstraError, Code } from "../../lib/errors.ts";
import type { Client } from "../../lib/rpc.ts";
import type { GuestMemory } from "./aspace.ts";
import type { HptWriter } from "./hpt.ts";

type Machine = Client<typeof MachineService>;

/** MachineService moves at most 16 MiB per ReadPhysical/WritePhysical. */
const MAX_TRANSFER = 16 * 1024 * 1024;
/** Beyond this many pages of one segment in one batch, one segment-wide invalidation is cheaper. */
const PAGE_INVALIDATIONS_PER_SEGMENT = 16;
const TIMEOUT_MS = 10_000;

/** Guest physical memory through ReadPhysical, WritePhysical and FillPhysical. */
export class MachineMemory implements GuestMemory {
  constructor(private readonly machine: Machine) {}

  async read(address: number, length: number): Promise<Uint8Array> {
    if (length <= MAX_TRANSFER) return await this.readChunk(address, length);
    const bytes = new Uint8Array(length);
    for (let done = 0; done < length; done += MAX_TRANSFER) {
      bytes.set(await this.readChunk(address + done, Math.min(MAX_TRANSFER, length - done)), done);
    }
    return bytes;
  }

  private async readChunk(address: number, length: number): Promise<Uint8Array> {
    const reply = await this.machine.readPhysical({ address: BigInt(address), length: BigInt(length) }, {
      timeoutMs: TIMEOUT_MS,
    });
    return reply.data;
  }

  async write(address: number, bytes: Uint8Array): Promise<void> {
    for (let done = 0; done < bytes.length; done += MAX_TRANSFER) {
      await this.machine.writePhysical({
        address: BigInt(address + done),
        data: bytes.subarray(done, Math.min(done + MAX_TRANSFER, bytes.length)),
      }, { timeoutMs: TIMEOUT_MS });
    }
  }

  async fill(address: number, length: number, value: number): Promise<void> {
    await this.machine.fillPhysical({ address: BigInt(address), length: BigInt(length), value }, {
      timeoutMs: TIMEOUT_MS,
    });
  }
}

/** What a TLB invalidation drops: one page's translation, a whole virtual segment's, or all. */
export type TlbInvalidation =
  | { scope: "page"; vsid: number; ea: number; pageShift: number }
  | { scope: "segment"; vsid: number }
  | { scope: "all" };

/** TLB shootdowns through the machine's InvalidateTlb (tlbie; tlbiel when CPUs are named). */
export class MachineTlb {
  /** Invalidation requests sent. */
  requests = 0;

  constructor(private readonly machine: Machine) {}

  /** Sends one invalidation; returns the number of TLB entries the machine dropped. */
  async invalidate(invalidation: TlbInvalidation, cpus: readonly number[] = []): Promise<bigint> {
    this.requests++;
    try {
      const reply = await this.machine.invalidateTlb({
        scope: invalidation.scope === "page"
          ? TlbScope.PAGE
          : invalidation.scope === "segment"
          ? TlbScope.SEGMENT
          : TlbScope.ALL,
        vsid: invalidation.scope === "all" ? 0n : BigInt(invalidation.vsid),
        effectiveAddress: invalidation.scope === "page" ? BigInt(invalidation.ea) : 0n,
        pageShift: invalidation.scope === "page" ? invalidation.pageShift : 0,
        cpus: [...cpus],
      }, { timeoutMs: TIMEOUT_MS });
      return reply.entriesInvalidated;
    } catch (error) {
      // A machine whose CPUs have not arrived has no software TLB and answers UNIMPLEMENTED:
      // there is nothing cached to drop.
      if (error instanceof AstraError && error.code === Code.UNIMPLEMENTED) return 0n;
      throw error;
    }
  }
}

/** Invalidations as few requests as cover them: ALL swallows everything, a segment its pages. */
function coalesce(invalidations: readonly TlbInvalidation[]): TlbInvalidation[] {
  if (invalidations.some((i) => i.scope === "all")) return [{ scope: "all" }];
  const pagesBySegment = new Map<number, Map<number, TlbInvalidation>>();
  const segments = new Set<number>();
  for (const invalidation of invalidations) {
    if (invalidation.scope === "segment") {
      segments.add(invalidation.vsid);
    } else if (invalidation.scope === "page") {
      let pages = pagesBySegment.get(invalidation.vsid);
      if (!pages) pagesBySegment.set(invalidation.vsid, pages = new Map());
      pages.set(invalidation.ea, invalidation);
    }
  }
  const out: TlbInvalidation[] = [];
  for (const [vsid, pages] of pagesBySegment) {
    if (pages.size > PAGE_INVALIDATIONS_PER_SEGMENT) segments.add(vsid);
    else if (!segments.has(vsid)) out.push(...pages.values());
  }
  for (const vsid of segments) out.push({ scope: "segment", vsid });
  return out;
}

/** Adjacent HPTE writes as one run each: [address, bytes] pairs sorted by address. */
function runsOf(writes: ReadonlyMap<number, Uint8Array>): { address: number; bytes: Uint8Array }[] {
  const sorted = [...writes].sort((a, b) => a[0] - b[0]);
  const runs: { address: number; parts: Uint8Array[]; end: number }[] = [];
  for (const [address, bytes] of sorted) {
    const last = runs[runs.length - 1];
    if (last && last.end === address) {
      last.parts.push(bytes);
      last.end += bytes.length;
    } else {
      runs.push({ address, parts: [bytes], end: address + bytes.length });
    }
  }
  return runs.map(({ address, parts, end }) => {
    const bytes = new Uint8Array(end - address);
    let offset = 0;
    for (const part of parts) {
      bytes.set(part, offset);
      offset += part.length;
    }
    return { address, bytes };
  });
}

/**
 * The pending changes to translations: HPTE writes (the latest bytes per entry), TLB
 * invalidations, and releases that must wait until both reached the machine.
 */
export class TranslationBatch implements HptWriter {
  private writes = new Map<number, Uint8Array>();
  private invalidations: TlbInvalidation[] = [];
  private releases: (() => Promise<void>)[] = [];
  private committing: Promise<void> = Promise.resolve();

  constructor(private readonly machine: Machine, private readonly tlb: MachineTlb) {}

  write(address: number, bytes: Uint8Array): void {
    this.writes.set(address, bytes);
  }

  invalidate(invalidation: TlbInvalidation): void {
    this.invalidations.push(invalidation);
  }

  /** Runs `release` after the writes and invalidations pending now have reached the machine. */
  afterInvalidation(release: () => Promise<void>): void {
    this.releases.push(release);
  }

  /**
   * Applies everything pending. Commits run one after another, so when a caller's commit
   * resolves, everything it queued before calling has been applied. A failed step puts its work
   * back for the next commit (writes and invalidations are idempotent) and throws.
   */
  commit(): Promise<void> {
    const run = this.committing.then(() => this.apply());
    this.committing = run.catch(() => undefined);
    return run;
  }

  private async apply(): Promise<void> {
    const writes = this.writes;
    const invalidations = this.invalidations;
    const releases = this.releases;
    this.writes = new Map();
    this.invalidations = [];
    this.releases = [];
    try {
      await Promise.all(
        runsOf(writes).map(({ address, bytes }) =>
          this.machine.writePhysical({ address: BigInt(address), data: bytes }, { timeoutMs: TIMEOUT_MS })
        ),
      );
    } catch (error) {
      for (const [address, bytes] of writes) if (!this.writes.has(address)) this.writes.set(address, bytes);
      this.invalidations.unshift(...invalidations);
      this.releases.unshift(...releases);
      throw error;
    }
    try {
      await Promise.all(coalesce(invalidations).map((i) => this.tlb.invalidate(i)));
    } catch (error) {
      this.invalidations.unshift(...invalidations);
      this.releases.unshift(...releases);
      throw error;
    }
    await Promise.all(releases.map((release) => release()));
  }
}

// vmm's hands on the machine, over MachineService whatever the transport: guest physical memory
// (frames are filled and copied there), the hashed page table's bytes, and TLB shootdowns.
//
// Changes are gathered into a TranslationBatch, as Linux's mmu_gather does, and a commit at the
// end of each vmm call applies them in the only safe order: the memory writes first (the contents
// vmm gave frames — zeros, file bytes, copies — in the order it gave them, then the changed HPTEs,
// one run per group of adjacent entries), all in as few AccessDevices calls as the machine's
// limits allow (one for a page fault); then the TLBs drop what those entries used to translate,
// and only then do frames that lost their last translation go back to pmm. A page's contents so
// reach memory before the entry that maps it, in the same call. A read of guest memory sees
// everything vmm did before it: it comes after the pending writes and invalidations (in the
// writes' call when no invalidation is pending), before the pending releases.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { type DeviceAccessSchema, MachineService, TlbScope } from "../../gen/astra/machine/v1/machine_pb.ts";
import { MAX_BATCH_ACCESSES, MAX_BATCH_BYTES } from "../../lib/access_devices.ts";
import { AstraError, Code } from "../../lib/errors.ts";
import type { Client } from "../../lib/rpc.ts";
import type { GuestMemory } from "./aspace.ts";
import type { HptWriter } from "./hpt.ts";

type Machine = Client<typeof MachineService>;
type Access = MessageInitShape<typeof DeviceAccessSchema>;

/** Beyond this many pages of one segment in one batch, one segment-wide invalidation is cheaper. */
const PAGE_INVALIDATIONS_PER_SEGMENT = 16;
const TIMEOUT_MS = 10_000;

/** A write vmm made to guest memory: bytes, or `length` bytes of one value. */
type MemoryWrite =
  | { address: number; bytes: Uint8Array }
  | { address: number; length: number; value: number };

/** A write as AccessDevices accesses: bytes cut to what one call may carry. */
function writeAccesses(write: MemoryWrite, out: Access[]): void {
  if (!("bytes" in write)) {
    out.push({
      access: {
        case: "fillPhysical",
        value: { address: BigInt(write.address), length: BigInt(write.length), value: write.value },
      },
    });
    return;
  }
  const { address, bytes } = write;
  for (let done = 0; done < bytes.length; done += MAX_BATCH_BYTES) {
    out.push({
      access: {
        case: "writePhysical",
        value: { address: BigInt(address + done), data: bytes.subarray(done, done + MAX_BATCH_BYTES) },
      },
    });
  }
}

/** A read as AccessDevices accesses, each no more than one call may carry. */
function readAccesses(address: number, length: number, out: Access[]): void {
  for (let done = 0; done < length; done += MAX_BATCH_BYTES) {
    const n = Math.min(MAX_BATCH_BYTES, length - done);
    out.push({
      access: { case: "readPhysical", value: { address: BigInt(address + done), length: BigInt(n) } },
    });
  }
}

/** Bytes an access sends and asks back, against AccessDevices' limits. */
function transferOf(access: Access): { written: number; read: number } {
  const a = access.access;
  if (a?.case === "writePhysical") return { written: a.value.data?.length ?? 0, read: 0 };
  if (a?.case === "readPhysical") return { written: 0, read: Number(a.value.length ?? 0n) };
  return { written: 0, read: 0 };
}

/** Guest physical memory as vmm's calls see it: writes and fills go into the batch, reads after them. */
export class MachineMemory implements GuestMemory {
  constructor(private readonly batch: TranslationBatch) {}

  read(address: number, length: number): Promise<Uint8Array> {
    return this.batch.read(address, length);
  }

  write(address: number, bytes: Uint8Array): void {
    // A copy: the caller may reuse its buffer before the batch commits.
    if (bytes.length > 0) this.batch.post({ address, bytes: bytes.slice() });
  }

  fill(address: number, length: number, value: number): void {
    if (length > 0) this.batch.post({ address, length, value });
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
 * The pending changes to guest memory and translations: memory writes (in order), HPTE writes
 * (the latest bytes per entry), TLB invalidations, and releases that must wait until all of them
 * reached the machine.
 */
export class TranslationBatch implements HptWriter {
  private memoryWrites: MemoryWrite[] = [];
  private writes = new Map<number, Uint8Array>();
  private invalidations: TlbInvalidation[] = [];
  private releases: (() => Promise<void>)[] = [];
  private committing: Promise<void> = Promise.resolve();

  constructor(private readonly machine: Machine, private readonly tlb: MachineTlb) {}

  /** An HPTE's new bytes. */
  write(address: number, bytes: Uint8Array): void {
    this.writes.set(address, bytes);
  }

  /** A write to guest memory, made before every HPTE write of the same commit. */
  post(write: MemoryWrite): void {
    this.memoryWrites.push(write);
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
   * back for the next commit (the writes are made again, as are the invalidations) and throws.
   */
  commit(): Promise<void> {
    return this.serially(() => this.apply(undefined)).then(() => undefined);
  }

  /** Guest memory after everything pending has been written and invalidated (see commit). */
  read(address: number, length: number): Promise<Uint8Array> {
    if (length === 0) return this.commit().then(() => new Uint8Array(0));
    return this.serially(() => this.apply({ address, length }));
  }

  private serially<T>(step: () => Promise<T>): Promise<T> {
    const run = this.committing.then(step);
    this.committing = run.then(() => undefined, () => undefined);
    return run;
  }

  private async apply(read: { address: number; length: number } | undefined): Promise<Uint8Array> {
    const memoryWrites = this.memoryWrites;
    const writes = this.writes;
    const invalidations = this.invalidations;
    const releases = this.releases;
    this.memoryWrites = [];
    this.writes = new Map();
    this.invalidations = [];
    this.releases = [];
    const accesses: Access[] = [];
    for (const write of memoryWrites) writeAccesses(write, accesses);
    for (const run of runsOf(writes)) writeAccesses(run, accesses);
    // Nothing to invalidate between the writes and the read: one call makes both.
    const readWithWrites = read !== undefined && invalidations.length === 0;
    if (readWithWrites) readAccesses(read.address, read.length, accesses);
    let data: Uint8Array[];
    try {
      data = await this.send(accesses);
    } catch (error) {
      this.memoryWrites.unshift(...memoryWrites);
      for (const [address, bytes] of writes) if (!this.writes.has(address)) this.writes.set(address, bytes);
      this.invalidations.unshift(...invalidations);
      this.releases.unshift(...releases);
      throw error;
    }
    try {
      await Promise.all(coalesce(invalidations).map((i) => this.tlb.invalidate(i)));
      if (read !== undefined && !readWithWrites) {
        const reads: Access[] = [];
        readAccesses(read.address, read.length, reads);
        data = await this.send(reads);
      }
    } catch (error) {
      this.invalidations.unshift(...invalidations);
      this.releases.unshift(...releases);
      throw error;
    }
    await Promise.all(releases.map((release) => release()));
    return concat(data);
  }

  /**
   * Makes `accesses` in order, in as few AccessDevices calls as the limits allow; the data of the
   * reads among them, in order.
   */
  private async send(accesses: readonly Access[]): Promise<Uint8Array[]> {
    const data: Uint8Array[] = [];
    let start = 0;
    while (start < accesses.length) {
      let end = start;
      let written = 0;
      let read = 0;
      while (end < accesses.length && end - start < MAX_BATCH_ACCESSES) {
        const transfer = transferOf(accesses[end]);
        if (written + transfer.written > MAX_BATCH_BYTES || read + transfer.read > MAX_BATCH_BYTES) break;
        written += transfer.written;
        read += transfer.read;
        end++;
      }
      const slice = accesses.slice(start, end);
      const { results } = await this.machine.accessDevices({ accesses: slice }, { timeoutMs: TIMEOUT_MS });
      slice.forEach((access, i) => {
        if (access.access?.case !== "readPhysical") return;
        const result = results[i]?.result;
        data.push(result?.case === "data" ? result.value : new Uint8Array(0));
      });
      start = end;
    }
    return data;
  }
}

/** Pieces of a read as one array. */
function concat(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

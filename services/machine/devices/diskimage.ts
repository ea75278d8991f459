// A disk as the controllers see it: logical blocks of 512 or 4096 bytes on a host image file
// (created sparse, kept across restarts) or in memory, behind a volatile write-back cache like a
// real drive's. A write completes once it is in the cache; a flush, or a FUA write, puts the
// cache on the medium and fsyncs the host file before it completes. A power cut drops the cache
// but lets a chosen or random prefix of the unflushed writes reach the medium first, optionally
// tearing the last sector of the last one — the states a drive losing power can be left in. Faults
// can be injected: media errors and commands that never complete on an LBA range, and surprise
// removal.
import { AstraError, Code, Errno, invalidArgument, outOfRange } from "../../../lib/errors.ts";

export type LbaSize = 512 | 4096;

/** Cache size above which the oldest unflushed writes are written back on the drive's own. */
export const DEFAULT_CACHE_LIMIT_BYTES = 64 * 1024 * 1024;

const MEMORY_CHUNK = 64 * 1024;

export type DiskFaultKind = "media-error" | "command-timeout";

export interface InjectFaultOptions {
  kind: DiskFaultKind;
  lbaFirst: number;
  lbaCount: number;
  /** Fail only this many matching commands, then clear itself (a transient fault); 0 or absent: until cleared. */
  count?: number;
}

export interface DiskFault {
  id: number;
  kind: DiskFaultKind;
  lbaFirst: number;
  lbaCount: number;
  /** Matching commands still to fail; 0: until cleared. */
  remaining: number;
  /** Matching commands failed so far. */
  triggered: number;
}

/** Which unflushed writes reach the medium: none, all, the first N, or a random-length prefix. */
export type PowerCutKeep = "none" | "all" | "random" | number;

export interface PowerCutOptions {
  keep: PowerCutKeep;
  /** Seed of the random choices (prefix length, tear point); drawn and reported when absent. */
  seed?: number;
  /** Tear the last surviving write: only a random part of its last sector reaches the medium. */
  tearSector?: boolean;
}

export interface PowerCutResult {
  writesPersisted: number;
  writesLost: number;
  torn: boolean;
  /** The LBA torn, when `torn`. */
  tornLba: number;
  /** Bytes of the torn sector that reached the medium. */
  tornBytes: number;
  seed: number;
}

export interface DiskStatistics {
  reads: number;
  writes: number;
  flushes: number;
  /** Commands failed by media errors. */
  errors: number;
  /** Commands that were accepted and will never complete (command-timeout faults). */
  timeouts: number;
  sectorsRead: number;
  sectorsWritten: number;
  /** Host fsyncs issued. */
  syncs: number;
  unflushedWrites: number;
  unflushedBytes: number;
}

/** A command failed on the medium: `lba` is the first block that could not be read or written. */
export class DiskMediaError extends AstraError {
  constructor(readonly operation: "read" | "write", readonly lba: number) {
    super(Code.DATA_LOSS, Errno.EIO, `unrecovered ${operation} error at LBA ${lba}`, {
      argument: "lba",
      facts: { lba: String(lba), operation },
    });
    this.name = "DiskMediaError";
  }
}

/** The medium under the cache: byte-addressed, synchronous transfers, asynchronous sync. */
interface Medium {
  readonly sizeBytes: number;
  /** Fills `targets` in order from `offset` on (a scatter list). */
  readInto(offset: number, targets: readonly Uint8Array[]): void;
  write(offset: number, data: Uint8Array): void;
  sync(): Promise<void>;
  close(): void;
}

/**
 * A host image file. Transfers use the file's shared offset synchronously (seek, then read or
 * write), so no two can interleave between the seek and the transfer; the fsync is asynchronous so
 * a slow disk does not stall the machine.
 */
class FileMedium implements Medium {
  constructor(
    private readonly file: Deno.FsFile,
    readonly sizeBytes: number,
    private readonly path: string,
  ) {}

  readInto(offset: number, targets: readonly Uint8Array[]): void {
    this.file.seekSync(offset, Deno.SeekMode.Start);
    let at = offset;
    for (const target of targets) {
      let done = 0;
      while (done < target.length) {
        const n = this.file.readSync(done === 0 ? target : target.subarray(done));
        if (n === null || n === 0) {
          throw new AstraError(
            Code.DATA_LOSS,
            Errno.EIO,
            `${this.path}: image ends early at byte ${at + done}`,
          );
        }
        done += n;
      }
      at += done;
    }
  }

  write(offset: number, data: Uint8Array): void {
    this.file.seekSync(offset, Deno.SeekMode.Start);
    let done = 0;
    while (done < data.length) done += this.file.writeSync(data.subarray(done));
  }

  sync(): Promise<void> {
    return this.file.sync();
  }

  close(): void {
    this.file.close();
  }
}

/** A sparse medium in memory: 64 KiB chunks allocated on first write. */
class MemoryMedium implements Medium {
  private readonly chunks = new Map<number, Uint8Array>();

  constructor(readonly sizeBytes: number) {}

  readInto(offset: number, targets: readonly Uint8Array[]): void {
    let at = offset;
    for (const target of targets) {
      let done = 0;
      while (done < target.length) {
        const index = Math.floor(at / MEMORY_CHUNK);
        const within = at - index * MEMORY_CHUNK;
        const n = Math.min(MEMORY_CHUNK - within, target.length - done);
        const chunk = this.chunks.get(index);
        if (chunk) target.set(chunk.subarray(within, within + n), done);
        else target.fill(0, done, done + n);
        done += n;
        at += n;
      }
    }
  }

  write(offset: number, data: Uint8Array): void {
    let done = 0;
    while (done < data.length) {
      const at = offset + done;
      const index = Math.floor(at / MEMORY_CHUNK);
      const within = at - index * MEMORY_CHUNK;
      const n = Math.min(MEMORY_CHUNK - within, data.length - done);
      let chunk = this.chunks.get(index);
      if (!chunk) {
        chunk = new Uint8Array(MEMORY_CHUNK);
        this.chunks.set(index, chunk);
      }
      chunk.set(data.subarray(done, done + n), within);
      done += n;
    }
  }

  sync(): Promise<void> {
    return Promise.resolve();
  }

  close(): void {
    this.chunks.clear();
  }
}

interface CachedWrite {
  seq: number;
  lba: number;
  data: Uint8Array;
}

interface CachedSector {
  seq: number;
  data: Uint8Array;
}

/** Copies `data` to byte `offset` of the concatenation of `targets`. */
function copyInto(targets: readonly Uint8Array[], offset: number, data: Uint8Array): void {
  let skip = offset;
  let done = 0;
  for (const target of targets) {
    if (skip >= target.length) {
      skip -= target.length;
      continue;
    }
    const n = Math.min(target.length - skip, data.length - done);
    target.set(n === data.length ? data : data.subarray(done, done + n), skip);
    done += n;
    skip = 0;
    if (done === data.length) return;
  }
}

/** mulberry32: a small, well-mixed PRNG, so a power cut can be replayed from its seed. */
function seededRandom(seed: number): () => number {
  let state = (seed ^ Math.floor(seed / 0x1_0000_0000)) >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 0x1_0000_0000;
  };
}

function checkLbaSize(lbaSize: number): asserts lbaSize is LbaSize {
  if (lbaSize !== 512 && lbaSize !== 4096) {
    throw invalidArgument("lbaSize", `the logical block size must be 512 or 4096, not ${lbaSize}`);
  }
}

function checkSize(sizeBytes: number, lbaSize: LbaSize): void {
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes % lbaSize !== 0) {
    throw invalidArgument(
      "sizeBytes",
      `a disk of ${sizeBytes} bytes is not a positive multiple of ${lbaSize}`,
    );
  }
}

export interface OpenImageOptions {
  path: string;
  /** Size of a new image; for an existing one absent or equal to its size. */
  sizeBytes?: number;
  lbaSize?: LbaSize;
  cacheLimitBytes?: number;
}

export interface MemoryDiskOptions {
  sizeBytes: number;
  lbaSize?: LbaSize;
  cacheLimitBytes?: number;
}

export class DiskImage {
  readonly lbaCount: number;
  readonly #medium: Medium;
  readonly #cacheLimit: number;
  /** Unflushed writes in completion order. */
  /**
   * The unflushed writes in completion order: `#log[#logHead..]`. Written-back entries are skipped
   * by moving the head, not removed one by one, which would move the whole log on every write once
   * the cache is full.
   */
  #log: CachedWrite[] = [];
  #logHead = 0;
  /** The newest cached copy of each block, a view into its write's data. */
  readonly #cachedSectors = new Map<number, CachedSector>();
  #cachedBytes = 0;
  #nextSeq = 1;
  #faults: DiskFault[] = [];
  #nextFaultId = 1;
  /** Commands parked by command-timeout faults: rejected only when the disk goes away. */
  readonly #stalled = new Set<(reason: AstraError) => void>();
  #removed = false;
  #closed = false;
  readonly #stats = {
    reads: 0,
    writes: 0,
    flushes: 0,
    errors: 0,
    timeouts: 0,
    sectorsRead: 0,
    sectorsWritten: 0,
    syncs: 0,
  };

  private constructor(
    medium: Medium,
    readonly lbaSize: LbaSize,
    readonly path: string | null,
    cacheLimitBytes: number,
  ) {
    this.#medium = medium;
    this.lbaCount = medium.sizeBytes / lbaSize;
    this.#cacheLimit = cacheLimitBytes;
  }

  /** Opens the image at `path`, creating it sparse at `sizeBytes` when it does not exist. */
  static async open(options: OpenImageOptions): Promise<DiskImage> {
    const lbaSize = options.lbaSize ?? 512;
    checkLbaSize(lbaSize);
    const cacheLimit = DiskImage.#cacheLimitOf(options.cacheLimitBytes);
    let file: Deno.FsFile;
    let created = false;
    try {
      file = await Deno.open(options.path, { read: true, write: true });
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
      if (options.sizeBytes === undefined) {
        throw new AstraError(
          Code.NOT_FOUND,
          Errno.ENOENT,
          `no image ${options.path}, and no size to create it at`,
          {
            argument: "sizeBytes",
          },
        );
      }
      checkSize(options.sizeBytes, lbaSize);
      file = await Deno.open(options.path, { read: true, write: true, createNew: true });
      created = true;
    }
    try {
      if (created) await file.truncate(options.sizeBytes);
      const { size } = await file.stat();
      if (options.sizeBytes !== undefined && options.sizeBytes !== 0 && options.sizeBytes !== size) {
        throw invalidArgument(
          "sizeBytes",
          `${options.path} is ${size} bytes, not the ${options.sizeBytes} asked for (pass 0 to keep its size)`,
        );
      }
      checkSize(size, lbaSize);
      return new DiskImage(new FileMedium(file, size, options.path), lbaSize, options.path, cacheLimit);
    } catch (err) {
      file.close();
      throw err;
    }
  }

  /** A disk in memory, for tests: sparse, lost when dropped. */
  static memory(options: MemoryDiskOptions): DiskImage {
    const lbaSize = options.lbaSize ?? 512;
    checkLbaSize(lbaSize);
    checkSize(options.sizeBytes, lbaSize);
    return new DiskImage(
      new MemoryMedium(options.sizeBytes),
      lbaSize,
      null,
      DiskImage.#cacheLimitOf(options.cacheLimitBytes),
    );
  }

  static #cacheLimitOf(bytes: number | undefined): number {
    const limit = bytes ?? DEFAULT_CACHE_LIMIT_BYTES;
    if (!Number.isSafeInteger(limit) || limit < 0) {
      throw invalidArgument("cacheLimitBytes", `a cache limit must be a whole number of bytes, not ${bytes}`);
    }
    return limit;
  }

  get sizeBytes(): number {
    return this.#medium.sizeBytes;
  }

  /** Commands held by command-timeout faults: they settle only if the disk goes away. */
  get stalledCommands(): number {
    return this.#stalled.size;
  }

  /** Surprise-removed: every command fails with ENODEV. */
  get removed(): boolean {
    return this.#removed;
  }

  statistics(): DiskStatistics {
    return { ...this.#stats, unflushedWrites: this.#unflushed, unflushedBytes: this.#cachedBytes };
  }

  // ---- commands ----

  /** Reads `count` blocks from `lba`: the newest data, cached or on the medium. */
  read(lba: number, count: number): Promise<Uint8Array> {
    try {
      this.#checkUsable();
      this.#checkRange(lba, count);
      if (!this.#admit("read", lba, count)) return this.#stall();
      const out = new Uint8Array(count * this.lbaSize);
      this.#readIn(lba, count, [out]);
      return Promise.resolve(out);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * read() into buffers the caller has: `targets`, filled in order, hold exactly the blocks (a
   * scatter list), so a controller can move them straight into guest memory. The transfer is made
   * before this returns, or not at all (a failed or stalled command leaves the targets alone).
   */
  readInto(lba: number, count: number, targets: readonly Uint8Array[]): Promise<void> {
    try {
      this.#checkUsable();
      this.#checkRange(lba, count);
      let bytes = 0;
      for (const t of targets) bytes += t.length;
      if (bytes !== count * this.lbaSize) {
        throw invalidArgument("targets", `${count} blocks are ${count * this.lbaSize} bytes, not ${bytes}`);
      }
      if (!this.#admit("read", lba, count)) return this.#stall();
      this.#readIn(lba, count, targets);
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** The medium's blocks with the cache's newer copies over them. */
  #readIn(lba: number, count: number, targets: readonly Uint8Array[]): void {
    this.#medium.readInto(lba * this.lbaSize, targets);
    if (this.#cachedSectors.size > 0) {
      for (let i = 0; i < count; i++) {
        const cached = this.#cachedSectors.get(lba + i);
        if (cached) copyInto(targets, i * this.lbaSize, cached.data);
      }
    }
    this.#stats.reads++;
    this.#stats.sectorsRead += count;
  }

  /**
   * Writes whole blocks from `lba`. Without FUA the write completes in the cache; with FUA it
   * completes once on the medium, which this drive does by flushing its whole cache (stronger
   * than FUA needs, and never weaker).
   */
  write(lba: number, data: Uint8Array, options: { fua?: boolean } = {}): Promise<void> {
    try {
      this.#checkUsable();
      if (data.length === 0 || data.length % this.lbaSize !== 0) {
        throw invalidArgument("data", `a write must be a whole number of ${this.lbaSize}-byte blocks`);
      }
      const count = data.length / this.lbaSize;
      this.#checkRange(lba, count);
      if (!this.#admit("write", lba, count)) return this.#stall();
      const write: CachedWrite = { seq: this.#nextSeq++, lba, data: data.slice() };
      this.#log.push(write);
      this.#cachedBytes += data.length;
      for (let i = 0; i < count; i++) {
        this.#cachedSectors.set(lba + i, {
          seq: write.seq,
          data: write.data.subarray(i * this.lbaSize, (i + 1) * this.lbaSize),
        });
      }
      this.#stats.writes++;
      this.#stats.sectorsWritten += count;
      if (this.#cachedBytes > this.#cacheLimit) this.#writeBack(this.#oldestBeyondLimit());
      if (options.fua) return this.flush();
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Puts every write completed before the call on the medium and fsyncs the host file. */
  async flush(): Promise<void> {
    this.#checkUsable();
    this.#writeBack(this.#unflushed);
    this.#stats.syncs++;
    await this.#medium.sync();
    this.#stats.flushes++;
  }

  // ---- power and faults ----

  /**
   * Cuts the power: the first writes chosen by `keep` reach the medium in completion order (the
   * last one torn when asked), the rest of the cache is lost, and the host file is fsynced so the
   * image holds exactly that state. The disk stays usable, as after power returns.
   */
  async powerCut(options: PowerCutOptions): Promise<PowerCutResult> {
    this.#checkOpen();
    const seed = options.seed ?? crypto.getRandomValues(new Uint32Array(1))[0];
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw invalidArgument("seed", `a power-cut seed must be a non-negative whole number, not ${seed}`);
    }
    const random = seededRandom(seed);
    const unflushed = this.#unflushed;
    let keep: number;
    if (options.keep === "none") keep = 0;
    else if (options.keep === "all") keep = unflushed;
    else if (options.keep === "random") keep = Math.floor(random() * (unflushed + 1));
    else if (Number.isSafeInteger(options.keep) && options.keep >= 0) {
      keep = Math.min(options.keep, unflushed);
    } else {throw invalidArgument(
        "keep",
        `keep must be "none", "all", "random" or a count, not ${options.keep}`,
      );}

    const survivors = this.#log.slice(this.#logHead, this.#logHead + keep);
    const result: PowerCutResult = {
      writesPersisted: keep,
      writesLost: unflushed - keep,
      torn: false,
      tornLba: 0,
      tornBytes: 0,
      seed,
    };
    survivors.forEach((write, i) => {
      const last = i === survivors.length - 1;
      if (!(last && options.tearSector)) {
        this.#medium.write(write.lba * this.lbaSize, write.data);
        return;
      }
      const whole = write.data.length - this.lbaSize;
      if (whole > 0) this.#medium.write(write.lba * this.lbaSize, write.data.subarray(0, whole));
      const tornBytes = 1 + Math.floor(random() * (this.lbaSize - 1));
      const tornLba = write.lba + whole / this.lbaSize;
      this.#medium.write(tornLba * this.lbaSize, write.data.subarray(whole, whole + tornBytes));
      Object.assign(result, { torn: true, tornLba, tornBytes });
    });
    this.#dropCache();
    this.#stats.syncs++;
    await this.#medium.sync();
    return result;
  }

  /** Makes commands touching an LBA range fail on the medium or never complete. Returns the fault. */
  injectFault(options: InjectFaultOptions): DiskFault {
    this.#checkOpen();
    if (options.kind !== "media-error" && options.kind !== "command-timeout") {
      throw invalidArgument(
        "kind",
        `a disk fault is "media-error" or "command-timeout", not ${options.kind}`,
      );
    }
    this.#checkRange(options.lbaFirst, options.lbaCount);
    const count = options.count ?? 0;
    if (!Number.isSafeInteger(count) || count < 0) {
      throw invalidArgument("count", `a fault count must be a whole number >= 0, not ${count}`);
    }
    const fault: DiskFault = {
      id: this.#nextFaultId++,
      kind: options.kind,
      lbaFirst: options.lbaFirst,
      lbaCount: options.lbaCount,
      remaining: count,
      triggered: 0,
    };
    this.#faults.push(fault);
    return { ...fault };
  }

  /** Removes one fault, or all of them; returns how many went. Stalled commands stay stalled. */
  clearFaults(faultId?: number): number {
    const before = this.#faults.length;
    this.#faults = faultId === undefined ? [] : this.#faults.filter((f) => f.id !== faultId);
    return before - this.#faults.length;
  }

  faults(): DiskFault[] {
    return this.#faults.map((f) => ({ ...f }));
  }

  /**
   * The disk is pulled out: its cache is lost (it has no power), stalled commands fail, and every
   * command after fails with ENODEV. The image file stays as the medium last had it.
   */
  surpriseRemove(): void {
    if (this.#removed || this.#closed) return;
    this.#removed = true;
    this.#dropCache();
    this.#rejectStalled(new AstraError(Code.UNAVAILABLE, Errno.ENODEV, "the disk was removed"));
  }

  /** Detaches the disk: flushes the cache (unless removed), fails stalled commands, closes the image. */
  async close(): Promise<void> {
    if (this.#closed) return;
    if (!this.#removed) await this.flush();
    this.#closed = true;
    this.#rejectStalled(new AstraError(Code.CANCELLED, Errno.ECANCELED, "the disk was detached"));
    this.#medium.close();
  }

  // ---- internals ----

  #checkOpen(): void {
    if (this.#closed) throw new AstraError(Code.FAILED_PRECONDITION, Errno.EBADF, "the disk is detached");
  }

  #checkUsable(): void {
    this.#checkOpen();
    if (this.#removed) throw new AstraError(Code.UNAVAILABLE, Errno.ENODEV, "the disk was removed");
  }

  #checkRange(lba: number, count: number): void {
    if (!Number.isSafeInteger(lba) || lba < 0 || !Number.isSafeInteger(count) || count < 1) {
      throw invalidArgument("lba", `invalid block range: LBA ${lba}, count ${count}`);
    }
    if (lba + count > this.lbaCount) {
      throw outOfRange(
        "lba",
        `blocks ${lba}..${lba + count - 1} lie beyond the disk's ${this.lbaCount} blocks`,
        Errno.ENXIO,
      );
    }
  }

  /**
   * Whether a command on the range goes ahead: false if a command-timeout fault holds it (it is
   * to stall); a media-error fault fails it.
   */
  #admit(operation: "read" | "write", lba: number, count: number): boolean {
    const fault = this.#matchFault(lba, count);
    if (fault?.kind === "command-timeout") return false;
    if (fault?.kind === "media-error") {
      this.#stats.errors++;
      throw new DiskMediaError(operation, Math.max(lba, fault.lbaFirst));
    }
    return true;
  }

  #matchFault(lba: number, count: number): DiskFault | null {
    const fault = this.#faults.find((f) => f.lbaFirst < lba + count && lba < f.lbaFirst + f.lbaCount);
    if (!fault) return null;
    fault.triggered++;
    if (fault.remaining > 0 && --fault.remaining === 0) {
      this.#faults = this.#faults.filter((f) => f !== fault);
    }
    return fault;
  }

  #stall<T>(): Promise<T> {
    this.#stats.timeouts++;
    return new Promise<T>((_, reject) => {
      this.#stalled.add(reject);
    });
  }

  #rejectStalled(reason: AstraError): void {
    for (const reject of this.#stalled) reject(reason);
    this.#stalled.clear();
  }

  /** How many of the oldest writes must leave the cache to bring it under its limit. */
  #oldestBeyondLimit(): number {
    let bytes = this.#cachedBytes;
    let n = 0;
    while (bytes > this.#cacheLimit && n < this.#unflushed) {
      bytes -= this.#log[this.#logHead + n++].data.length;
    }
    return n;
  }

  get #unflushed(): number {
    return this.#log.length - this.#logHead;
  }

  /** Writes the oldest `n` cached writes to the medium, in order, and drops them from the cache. */
  #writeBack(n: number): void {
    if (n === 0) return;
    const log = this.#log;
    const start = this.#logHead;
    this.#logHead += n;
    // The skipped entries go once they are most of the log: amortized constant time per write.
    if (this.#logHead > 1024 && this.#logHead * 2 > this.#log.length) {
      this.#log = this.#log.slice(this.#logHead);
      this.#logHead = 0;
    }
    for (let k = start; k < start + n; k++) {
      const write = log[k];
      this.#medium.write(write.lba * this.lbaSize, write.data);
      this.#cachedBytes -= write.data.length;
      const blocks = write.data.length / this.lbaSize;
      for (let i = 0; i < blocks; i++) {
        if (this.#cachedSectors.get(write.lba + i)?.seq === write.seq) {
          this.#cachedSectors.delete(write.lba + i);
        }
      }
    }
  }

  #dropCache(): void {
    this.#log = [];
    this.#logHead = 0;
    this.#cachedSectors.clear();
    this.#cachedBytes = 0;
  }
}

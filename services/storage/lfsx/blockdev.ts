// The block device LFSX runs on: fixed 4 KiB blocks, asynchronous reads and writes, and a flush
// that returns only once everything written before it is on stable storage. Two
// implementations: a host image file (what `astra mkfs --image` and the benchmark use) and a
// memory device with a volatile write-back cache that can simulate a power cut, which is what
// the crash tests run on. The block layer's devices (AHCI, NVMe) serve the same interface through
// blocklayer.ts.
import { AstraError, Code, Errno, invalidArgument, outOfRange } from "../../../lib/errors.ts";

export const BLOCK_SIZE = 4096;
export const SECTOR_SIZE = 512;

export interface BlockDevice {
  readonly blockSize: number;
  readonly blockCount: number;
  /** Reads `count` blocks starting at `first` into a new buffer. */
  readBlocks(first: number, count: number): Promise<Uint8Array>;
  /** Writes whole blocks starting at `first`; durable only after the next flush. */
  writeBlocks(first: number, data: Uint8Array): Promise<void>;
  /** Makes every write issued before it durable. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

export interface DeviceStatistics {
  reads: number;
  writes: number;
  flushes: number;
  blocksRead: number;
  blocksWritten: number;
}

function checkRange(device: BlockDevice, first: number, count: number): void {
  if (!Number.isInteger(first) || first < 0 || !Number.isInteger(count) || count < 1) {
    throw invalidArgument("block", `invalid block range: first ${first}, count ${count}`);
  }
  if (first + count > device.blockCount) {
    throw outOfRange(
      "block",
      `blocks ${first}..${first + count - 1} lie beyond the device's ${device.blockCount} blocks`,
      Errno.ENXIO,
    );
  }
}

function blocksIn(data: Uint8Array): number {
  if (data.length === 0 || data.length % BLOCK_SIZE !== 0) {
    throw invalidArgument("data", `a write must be a whole number of ${BLOCK_SIZE}-byte blocks`);
  }
  return data.length / BLOCK_SIZE;
}

function ioError(message: string): AstraError {
  return new AstraError(Code.UNAVAILABLE, Errno.EIO, message);
}

/**
 * A block device over a host image file. Requests use the file's shared offset (seek, then
 * read or write) synchronously, so no two requests can interleave between the seek and the
 * transfer. Flush is fdatasync, also synchronous: on these machines Deno's blocking
 * fdatasync costs about half of the thread-pool round trip of the asynchronous one, and group
 * commit still batches every commit that queued up behind a flush.
 */
export class FileBlockDevice implements BlockDevice {
  readonly blockSize = BLOCK_SIZE;
  readonly stats: DeviceStatistics = { reads: 0, writes: 0, flushes: 0, blocksRead: 0, blocksWritten: 0 };
  #closed = false;

  private constructor(
    readonly path: string,
    private readonly file: Deno.FsFile,
    readonly blockCount: number,
    readonly readOnly: boolean,
  ) {}

  /** Creates (or replaces) a sparse image file of `blockCount` blocks. */
  static async create(path: string, blockCount: number): Promise<FileBlockDevice> {
    if (!Number.isInteger(blockCount) || blockCount < 1) {
      throw invalidArgument("blockCount", `an image needs at least one block, not ${blockCount}`);
    }
    const file = await Deno.open(path, { read: true, write: true, create: true, truncate: true });
    await file.truncate(blockCount * BLOCK_SIZE);
    return new FileBlockDevice(path, file, blockCount, false);
  }

  /** Opens an existing image file; its size must be a whole number of blocks. */
  static async open(path: string, options: { readOnly?: boolean } = {}): Promise<FileBlockDevice> {
    const readOnly = options.readOnly ?? false;
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true, write: !readOnly });
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) {
        throw new AstraError(Code.NOT_FOUND, Errno.ENOENT, `no image file ${path}`, { argument: "path" });
      }
      throw err;
    }
    const { size } = await file.stat();
    if (size === 0 || size % BLOCK_SIZE !== 0) {
      file.close();
      throw invalidArgument(
        "path",
        `${path} is ${size} bytes, not a whole number of ${BLOCK_SIZE}-byte blocks`,
      );
    }
    return new FileBlockDevice(path, file, size / BLOCK_SIZE, readOnly);
  }

  // deno-lint-ignore require-await
  async readBlocks(first: number, count: number): Promise<Uint8Array> {
    this.#checkOpen();
    checkRange(this, first, count);
    const buf = new Uint8Array(count * BLOCK_SIZE);
    this.file.seekSync(first * BLOCK_SIZE, Deno.SeekMode.Start);
    let done = 0;
    while (done < buf.length) {
      const n = this.file.readSync(buf.subarray(done));
      if (n === null || n === 0) throw ioError(`${this.path}: unexpected end of file at block ${first}`);
      done += n;
    }
    this.stats.reads++;
    this.stats.blocksRead += count;
    return buf;
  }

  // deno-lint-ignore require-await
  async writeBlocks(first: number, data: Uint8Array): Promise<void> {
    this.#checkOpen();
    if (this.readOnly) {
      throw new AstraError(Code.FAILED_PRECONDITION, Errno.EROFS, `${this.path} is open read-only`);
    }
    const count = blocksIn(data);
    checkRange(this, first, count);
    this.file.seekSync(first * BLOCK_SIZE, Deno.SeekMode.Start);
    let done = 0;
    while (done < data.length) done += this.file.writeSync(data.subarray(done));
    this.stats.writes++;
    this.stats.blocksWritten += count;
  }

  // deno-lint-ignore require-await
  async flush(): Promise<void> {
    this.#checkOpen();
    if (!this.readOnly) this.file.syncDataSync();
    this.stats.flushes++;
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.file.close();
    }
    return Promise.resolve();
  }

  #checkOpen(): void {
    if (this.#closed) throw new AstraError(Code.FAILED_PRECONDITION, Errno.EBADF, `${this.path} is closed`);
  }
}

/** The durable contents of a memory device: block number → 4096 bytes; absent blocks read as zeros. */
export type DiskImage = Map<number, Uint8Array>;

export interface PowerCutOptions {
  /**
   * Which unflushed writes reach the media: the first `count` in issue order ("prefix", the
   * default), or each one independently with probability 1/2 ("subset": a drive whose cache
   * reorders writes).
   */
  order?: "prefix" | "subset";
  /** For "prefix": how many of the unflushed writes persist; random when omitted. */
  count?: number;
  /**
   * Also tear one write that did not persist: a random subset of its 512-byte sectors reaches
   * the media, and one of those only partly (a prefix of its new bytes over the old ones).
   */
  tear?: boolean;
  /** Random source in [0, 1); Math.random when omitted. */
  random?: () => number;
}

interface PendingWrite {
  first: number;
  blocks: Uint8Array[];
}

type FaultyOperation = "read" | "write" | "flush";

/**
 * A block device in memory with a volatile write-back cache. Writes land in the cache and are
 * visible to reads at once; a flush moves them to the durable image in issue order. A power
 * cut keeps the durable image plus a chosen or random part of the unflushed writes, optionally
 * tearing one — exactly the states a real disk can be left in.
 */
export class MemoryBlockDevice implements BlockDevice {
  readonly blockSize = BLOCK_SIZE;
  readonly stats: DeviceStatistics = { reads: 0, writes: 0, flushes: 0, blocksRead: 0, blocksWritten: 0 };
  /** Called at the start of every flush, while its writes are still volatile. */
  onFlush?: (device: MemoryBlockDevice) => void;
  /** Called after every write request has entered the cache. */
  onWrite?: (device: MemoryBlockDevice) => void;

  #durable: DiskImage;
  #cached = new Map<number, Uint8Array>();
  #pending: PendingWrite[] = [];
  #faults = new Map<FaultyOperation, number>();
  readonly #flushDelayMs: number;

  constructor(readonly blockCount: number, options: { image?: DiskImage; flushDelayMs?: number } = {}) {
    if (!Number.isInteger(blockCount) || blockCount < 1) {
      throw invalidArgument("blockCount", `a device needs at least one block, not ${blockCount}`);
    }
    this.#durable = new Map(options.image ?? []);
    this.#flushDelayMs = options.flushDelayMs ?? 0;
  }

  /** Unflushed write requests in the cache. */
  get pendingWrites(): number {
    return this.#pending.length;
  }

  // deno-lint-ignore require-await
  async readBlocks(first: number, count: number): Promise<Uint8Array> {
    checkRange(this, first, count);
    this.#maybeFail("read", first);
    const buf = new Uint8Array(count * BLOCK_SIZE);
    for (let i = 0; i < count; i++) {
      const block = this.#cached.get(first + i) ?? this.#durable.get(first + i);
      if (block) buf.set(block, i * BLOCK_SIZE);
    }
    this.stats.reads++;
    this.stats.blocksRead += count;
    return buf;
  }

  // deno-lint-ignore require-await
  async writeBlocks(first: number, data: Uint8Array): Promise<void> {
    const count = blocksIn(data);
    checkRange(this, first, count);
    this.#maybeFail("write", first);
    const blocks: Uint8Array[] = [];
    for (let i = 0; i < count; i++) {
      const copy = data.slice(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE);
      blocks.push(copy);
      this.#cached.set(first + i, copy);
    }
    this.#pending.push({ first, blocks });
    this.stats.writes++;
    this.stats.blocksWritten += count;
    this.onWrite?.(this);
  }

  async flush(): Promise<void> {
    this.#maybeFail("flush", 0);
    this.onFlush?.(this);
    const flushing = this.#pending.length;
    if (this.#flushDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.#flushDelayMs));
    const done = this.#pending.splice(0, flushing);
    for (const write of done) {
      write.blocks.forEach((block, i) => this.#durable.set(write.first + i, block));
    }
    this.#rebuildCache();
    this.stats.flushes++;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /** A copy of what is durable now. */
  durableImage(): DiskImage {
    return new Map(this.#durable);
  }

  /** The durable image a power cut at this moment would leave; the device itself is unchanged. */
  crashImage(options: PowerCutOptions = {}): DiskImage {
    const random = options.random ?? Math.random;
    const image = new Map(this.#durable);
    const n = this.#pending.length;
    const persisted = new Array<boolean>(n).fill(false);
    let torn = -1;
    if ((options.order ?? "prefix") === "prefix") {
      const count = Math.min(n, options.count ?? Math.floor(random() * (n + 1)));
      for (let i = 0; i < count; i++) persisted[i] = true;
      if (options.tear && count < n) torn = count;
    } else {
      for (let i = 0; i < n; i++) persisted[i] = random() < 0.5;
      const lost = persisted.flatMap((kept, i) => (kept ? [] : [i]));
      if (options.tear && lost.length > 0) torn = lost[Math.floor(random() * lost.length)];
    }
    for (let i = 0; i < n; i++) {
      const write = this.#pending[i];
      if (persisted[i]) {
        write.blocks.forEach((block, j) => image.set(write.first + j, block));
      } else if (i === torn) {
        this.#tear(image, write, random);
      }
    }
    return image;
  }

  /** Cuts the power: the device keeps what `crashImage` would return and its cache is empty. */
  powerCut(options: PowerCutOptions = {}): void {
    this.#durable = this.crashImage(options);
    this.#pending = [];
    this.#cached.clear();
  }

  /** Flips the bits of `mask` in byte `offset` of `block`, on the media and in the cache. */
  corrupt(block: number, offset: number, mask = 0x01): void {
    checkRange(this, block, 1);
    for (const store of [this.#durable, this.#cached]) {
      const current = store.get(block);
      const copy = current ? current.slice() : new Uint8Array(BLOCK_SIZE);
      copy[offset] ^= mask;
      if (current || store === this.#durable) store.set(block, copy);
    }
  }

  /** Makes the next `count` operations of kind `op` fail with EIO. */
  failNext(op: FaultyOperation, count = 1): void {
    this.#faults.set(op, (this.#faults.get(op) ?? 0) + count);
  }

  #maybeFail(op: FaultyOperation, block: number): void {
    const left = this.#faults.get(op) ?? 0;
    if (left > 0) {
      this.#faults.set(op, left - 1);
      throw ioError(`injected ${op} error at block ${block}`);
    }
  }

  #tear(image: DiskImage, write: PendingWrite, random: () => number): void {
    const sectorsPerBlock = BLOCK_SIZE / SECTOR_SIZE;
    const total = write.blocks.length * sectorsPerBlock;
    const halfWritten = Math.floor(random() * total);
    write.blocks.forEach((block, j) => {
      const old = image.get(write.first + j) ?? new Uint8Array(BLOCK_SIZE);
      const result = old.slice();
      for (let s = 0; s < sectorsPerBlock; s++) {
        const start = s * SECTOR_SIZE;
        if (j * sectorsPerBlock + s === halfWritten) {
          const cut = 1 + Math.floor(random() * (SECTOR_SIZE - 1));
          result.set(block.subarray(start, start + cut), start);
        } else if (random() < 0.5) {
          result.set(block.subarray(start, start + SECTOR_SIZE), start);
        }
      }
      image.set(write.first + j, result);
    });
  }

  #rebuildCache(): void {
    this.#cached.clear();
    for (const write of this.#pending) {
      write.blocks.forEach((block, i) => this.#cached.set(write.first + i, block));
    }
  }
}

// Free-space map of the data region. LFSX never overwrites a block that the last checkpoint's
// image still uses, so a block has three states beyond "free": used by the checkpointed image,
// "fresh" (allocated since that checkpoint: invisible to recovery, safe to overwrite), and
// "pending free" (released since that checkpoint but still part of its image). Pending blocks
// become free only once the next checkpoint's superblock is durable; fresh blocks that are
// released go straight back to the free pool.
//
// The map is not stored on disk: mount rebuilds it from the node table, which names every block
// in use.
import { resourceExhausted } from "../../../lib/errors.ts";
import { Errno } from "../../../lib/errors.ts";

const FULL = 0xffffffff;

export class SpaceMap {
  readonly #used: Uint32Array;
  readonly #fresh: Uint32Array;
  #freshBlocks: number[] = [];
  #pending: number[] = [];
  #free: number;
  #cursor: number;

  /** Blocks below `firstDataBlock` (superblocks, journal) are never handed out. */
  constructor(readonly blockCount: number, readonly firstDataBlock: number) {
    const words = Math.ceil(blockCount / 32);
    this.#used = new Uint32Array(words);
    this.#fresh = new Uint32Array(words);
    this.#free = blockCount - firstDataBlock;
    this.#cursor = firstDataBlock;
    for (let b = 0; b < firstDataBlock; b++) this.#set(this.#used, b);
    // Bits past the end of the device read as used so that scans never hand them out.
    for (let b = blockCount; b < words * 32; b++) this.#set(this.#used, b);
  }

  get freeBlocks(): number {
    return this.#free;
  }

  get pendingFreeBlocks(): number {
    return this.#pending.length;
  }

  get usedBlocks(): number {
    return this.blockCount - this.#free;
  }

  isUsed(block: number): boolean {
    return (this.#used[block >>> 5] & (1 << (block & 31))) !== 0;
  }

  isFresh(block: number): boolean {
    return (this.#fresh[block >>> 5] & (1 << (block & 31))) !== 0;
  }

  /** Blocks released since the last checkpoint that its image still uses. */
  pendingBlocks(): readonly number[] {
    return this.#pending;
  }

  /**
   * Marks blocks of the checkpointed image as used while mounting. Returns false if one of them
   * is already used or outside the data region: two owners of one block mean corruption.
   */
  claim(start: number, count: number): boolean {
    if (start < this.firstDataBlock || start + count > this.blockCount) return false;
    for (let b = start; b < start + count; b++) if (this.isUsed(b)) return false;
    for (let b = start; b < start + count; b++) this.#set(this.#used, b);
    this.#free -= count;
    return true;
  }

  /** Allocates one fresh block. */
  allocate(): number {
    const block = this.#findFree();
    this.#take(block, 1);
    return block;
  }

  /**
   * Allocates a run of contiguous fresh blocks: `want` of them if such a run exists, otherwise
   * the longest run there is (at least one block).
   */
  allocateRun(want: number): { start: number; count: number } {
    if (this.#free === 0) throw this.#full(want);
    let bestStart = -1;
    let bestCount = 0;
    let runStart = -1;
    for (let b = this.firstDataBlock; b < this.blockCount; b++) {
      if ((b & 31) === 0 && this.#used[b >>> 5] === FULL) {
        runStart = -1;
        b += 31;
        continue;
      }
      if (this.isUsed(b)) {
        runStart = -1;
        continue;
      }
      if (runStart < 0) runStart = b;
      const length = b - runStart + 1;
      if (length > bestCount) {
        bestStart = runStart;
        bestCount = length;
        if (bestCount === want) break;
      }
    }
    this.#take(bestStart, bestCount);
    return { start: bestStart, count: bestCount };
  }

  /**
   * Releases blocks: fresh ones are free at once, blocks of the checkpointed image wait for the
   * next checkpoint.
   */
  release(start: number, count: number): void {
    for (let b = start; b < start + count; b++) {
      if (this.isFresh(b)) {
        this.#clear(this.#fresh, b);
        this.#clear(this.#used, b);
        this.#free++;
      } else {
        this.#pending.push(b);
      }
    }
  }

  /** The new checkpoint is durable: pending blocks are free, fresh blocks belong to its image. */
  checkpointCompleted(): void {
    for (const b of this.#pending) this.#clear(this.#used, b);
    this.#free += this.#pending.length;
    this.#pending = [];
    for (const b of this.#freshBlocks) this.#clear(this.#fresh, b);
    this.#freshBlocks = [];
  }

  #take(start: number, count: number): void {
    for (let b = start; b < start + count; b++) {
      this.#set(this.#used, b);
      this.#set(this.#fresh, b);
      this.#freshBlocks.push(b);
    }
    this.#free -= count;
    this.#cursor = start + count >= this.blockCount ? this.firstDataBlock : start + count;
  }

  #findFree(): number {
    if (this.#free === 0) throw this.#full(1);
    const words = this.#used.length;
    let word = this.#cursor >>> 5;
    for (let scanned = 0; scanned <= words; scanned++) {
      const bits = this.#used[word];
      if (bits !== FULL) {
        for (let bit = 0; bit < 32; bit++) {
          const b = word * 32 + bit;
          if ((bits & (1 << bit)) === 0 && b >= this.firstDataBlock && b < this.blockCount) return b;
        }
      }
      word = word + 1 === words ? 0 : word + 1;
    }
    throw this.#full(1);
  }

  #full(wanted: number) {
    return resourceExhausted(
      `the volume is full: ${wanted} block(s) wanted, ${this.#free} free, ${this.#pending.length} waiting for the next checkpoint`,
      { freeBlocks: String(this.#free), pendingFreeBlocks: String(this.#pending.length) },
      Errno.ENOSPC,
    );
  }

  #set(bits: Uint32Array, b: number): void {
    bits[b >>> 5] |= 1 << (b & 31);
  }

  #clear(bits: Uint32Array, b: number): void {
    bits[b >>> 5] &= ~(1 << (b & 31));
  }
}

// A driver's DMA memory: physically contiguous chunks taken from the hardware (pmm) a few at a
// time and carved into page runs, so that a command's data buffers and PRP lists cost no call
// to pmm — only the occasional growth does. Chunks are kept until the pool is destroyed; the
// driver's owner tag lets pmm reclaim them all if the storage service dies.
import { invalidArgument } from "../../lib/errors.ts";
import { type DmaRegion, type Hardware, PAGE_BYTES } from "./hardware.ts";

/** Chunks are aligned to this, so carved runs can be aligned up to it. */
const CHUNK_ALIGNMENT = 64 * 1024;
export const DEFAULT_CHUNK_BYTES = 2 * 1024 * 1024;

interface Chunk {
  base: number;
  pages: number;
  /** 1 for a page in use. */
  used: Uint8Array;
  free: number;
  /** Every page below this one is in use: searches start here. */
  firstFree: number;
}

export interface DmaPoolStatistics {
  /** Bytes taken from the hardware, and bytes handed out now. */
  heldBytes: number;
  inUseBytes: number;
  chunks: number;
}

export class DmaPool {
  readonly #chunks: Chunk[] = [];
  /** Regions larger than a chunk, taken from the hardware on their own. */
  readonly #dedicated = new Map<number, DmaRegion>();
  #growing: Promise<void> | null = null;
  #inUse = 0;

  constructor(
    private readonly hw: Hardware,
    readonly owner: string,
    readonly chunkBytes = DEFAULT_CHUNK_BYTES,
  ) {
    if (chunkBytes % CHUNK_ALIGNMENT !== 0) {
      throw invalidArgument("chunkBytes", `a DMA chunk is a multiple of ${CHUNK_ALIGNMENT} bytes`);
    }
  }

  /** One physically contiguous run of at least `bytes`, aligned to `alignment` (a power of two). */
  async alloc(bytes: number, alignment = PAGE_BYTES): Promise<DmaRegion> {
    if (!Number.isInteger(bytes) || bytes < 1) throw invalidArgument("bytes", `bad DMA size ${bytes}`);
    const pages = Math.ceil(bytes / PAGE_BYTES);
    const alignPages = Math.max(1, alignment / PAGE_BYTES);
    if (pages * PAGE_BYTES > this.chunkBytes / 2 || alignment > CHUNK_ALIGNMENT) {
      const region = await this.hw.allocDma(pages * PAGE_BYTES, Math.max(alignment, PAGE_BYTES), this.owner);
      this.#dedicated.set(region.address, region);
      this.#inUse += region.bytes;
      return region;
    }
    for (;;) {
      const found = this.#take(pages, alignPages);
      if (found) return found;
      await this.#grow();
    }
  }

  /**
   * `bytes` of page-granular memory as few runs as the pool can give: one run when a chunk has
   * room for it, else pieces from several chunks (a scatter-gather list).
   */
  async allocRuns(bytes: number): Promise<DmaRegion[]> {
    for (;;) {
      const runs = this.takeRuns(bytes);
      if (runs) return runs;
      if (Math.ceil(bytes / PAGE_BYTES) * PAGE_BYTES > this.chunkBytes) return [await this.alloc(bytes)];
      await this.#grow();
    }
  }

  /** allocRuns without growing the pool: null when the chunks held now have too little room. */
  takeRuns(bytes: number): DmaRegion[] | null {
    if (!Number.isInteger(bytes) || bytes < 1) throw invalidArgument("bytes", `bad DMA size ${bytes}`);
    const pages = Math.ceil(bytes / PAGE_BYTES);
    if (pages * PAGE_BYTES > this.chunkBytes) return null;
    const whole = this.#take(pages, 1);
    if (whole) return [whole];
    const free = this.#chunks.reduce((n, c) => n + c.free, 0);
    return free >= pages ? this.#gather(pages) : null;
  }

  free(region: DmaRegion): void {
    const dedicated = this.#dedicated.get(region.address);
    if (dedicated) {
      this.#dedicated.delete(region.address);
      this.#inUse -= dedicated.bytes;
      this.hw.freeDma(dedicated).catch(() => {
        // pmm still holds it under our owner tag; destroy() releases it.
      });
      return;
    }
    const chunk = this.#chunks.find((c) =>
      region.address >= c.base && region.address < c.base + c.pages * PAGE_BYTES
    );
    if (!chunk) throw invalidArgument("region", `0x${region.address.toString(16)} is not from this DMA pool`);
    const first = (region.address - chunk.base) / PAGE_BYTES;
    const pages = Math.ceil(region.bytes / PAGE_BYTES);
    for (let i = first; i < first + pages; i++) {
      if (chunk.used[i]) {
        chunk.used[i] = 0;
        chunk.free++;
        this.#inUse -= PAGE_BYTES;
      }
    }
    if (first < chunk.firstFree) chunk.firstFree = first;
  }

  freeAll(regions: readonly DmaRegion[]): void {
    for (const r of regions) this.free(r);
  }

  statistics(): DmaPoolStatistics {
    let held = this.#chunks.length * this.chunkBytes;
    for (const r of this.#dedicated.values()) held += r.bytes;
    return { heldBytes: held, inUseBytes: this.#inUse, chunks: this.#chunks.length };
  }

  /** Gives every chunk back. Nothing the pool handed out may be in use by a device any more. */
  async destroy(): Promise<void> {
    const regions = [
      ...this.#chunks.map((c) => ({ address: c.base, bytes: c.pages * PAGE_BYTES })),
      ...this.#dedicated.values(),
    ];
    this.#chunks.length = 0;
    this.#dedicated.clear();
    this.#inUse = 0;
    await Promise.allSettled(regions.map((r) => this.hw.freeDma(r)));
  }

  #take(pages: number, alignPages: number): DmaRegion | null {
    for (const chunk of this.#chunks) {
      if (chunk.free < pages) continue;
      let start = Math.ceil(chunk.firstFree / alignPages) * alignPages;
      while (start + pages <= chunk.pages) {
        let clash = -1;
        for (let i = start + pages - 1; i >= start; i--) {
          if (chunk.used[i]) {
            clash = i;
            break;
          }
        }
        if (clash < 0) {
          chunk.used.fill(1, start, start + pages);
          chunk.free -= pages;
          this.#inUse += pages * PAGE_BYTES;
          this.#skipUsed(chunk);
          return { address: chunk.base + start * PAGE_BYTES, bytes: pages * PAGE_BYTES };
        }
        start = Math.ceil((clash + 1) / alignPages) * alignPages;
      }
    }
    return null;
  }

  #gather(pages: number): DmaRegion[] {
    const runs: DmaRegion[] = [];
    let needed = pages;
    for (const chunk of this.#chunks) {
      let i = chunk.firstFree;
      while (needed > 0 && i < chunk.pages) {
        if (chunk.used[i]) {
          i++;
          continue;
        }
        let end = i;
        while (end < chunk.pages && !chunk.used[end] && end - i < needed) end++;
        chunk.used.fill(1, i, end);
        chunk.free -= end - i;
        needed -= end - i;
        this.#inUse += (end - i) * PAGE_BYTES;
        runs.push({ address: chunk.base + i * PAGE_BYTES, bytes: (end - i) * PAGE_BYTES });
        i = end;
      }
      this.#skipUsed(chunk);
      if (needed === 0) break;
    }
    return runs;
  }

  #skipUsed(chunk: Chunk): void {
    while (chunk.firstFree < chunk.pages && chunk.used[chunk.firstFree]) chunk.firstFree++;
  }

  #grow(): Promise<void> {
    this.#growing ??= this.hw.allocDma(this.chunkBytes, CHUNK_ALIGNMENT, this.owner).then(
      (region) => {
        const pages = region.bytes / PAGE_BYTES;
        this.#chunks.push({
          base: region.address,
          pages,
          used: new Uint8Array(pages),
          free: pages,
          firstFree: 0,
        });
      },
    ).finally(() => {
      this.#growing = null;
    });
    return this.#growing;
  }
}

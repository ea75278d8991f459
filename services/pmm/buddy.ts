// The heap's buddy allocator (seed 1.3): blocks of 2^order pages, orders 0..11 (4 KiB..8 MiB),
// carved from naturally aligned runs of frames ("chunks") that it takes from the frame allocator
// on demand and gives back when they are wholly free. Split on allocation, coalesce with the
// buddy on free, first fit per order (the lowest order with a free block wins).
//
// Block bookkeeping lives in typed arrays indexed by "slot index": each 8 MiB-aligned window of
// physical memory that holds a chunk gets a slot of 2048 entries, so metadata is proportional
// to the heap, not to physical memory, and a buddy is found with one XOR.
import { AstraError, Code, Errno, invalidArgument, resourceExhausted } from "../../lib/errors.ts";
import { MAX_ORDER, type OrderFragmentation, orderFragmentation, type RunRequest } from "./frames.ts";
import { PAGE_SIZE } from "./memmap.ts";

export { MAX_ORDER };

/** Where the buddy allocator gets its chunks: the frame allocator, structurally. */
export interface FrameSource {
  allocFrames(request: RunRequest): number;
  freeFrames(address: number, count: number): void;
}

export interface BuddyOptions {
  /** Owner tag of the chunks in the frame allocator. */
  owner?: string;
  /** Wholly free chunks kept rather than returned at once (hysteresis against churn). */
  spareChunks?: number;
}

export interface BuddyBlock {
  address: number;
  order: number;
  allocated: boolean;
}

export interface BuddyStatistics {
  totalPages: number;
  freePages: number;
  allocatedPages: number;
  chunks: number;
  /** Free blocks per order 0..MAX_ORDER. */
  freeBlocks: number[];
  orders: OrderFragmentation[];
}

/** Owner tag of the heap's chunks in the frame allocator. */
export const HEAP_CHUNK_OWNER = "pmm:heap";

const WINDOW_SHIFT = MAX_ORDER;
const WINDOW_FRAMES = 1 << WINDOW_SHIFT;
// #state values: NOT_HEAD, a free block's order (0..11), or ALLOCATED + order.
const NOT_HEAD = -1;
const ALLOCATED = 16;

const hex = (n: number) => `0x${n.toString(16)}`;

export class BuddyAllocator {
  readonly #source: FrameSource;
  readonly #owner: string;
  readonly #spareChunks: number;
  // Per slot index g = slot * 2048 + (frame - window * 2048):
  #chunkOrder = new Int8Array(0); // order of the chunk holding the frame, -1 if none
  #state = new Int8Array(0);
  #next = new Int32Array(0); // free-list links, -1 terminated
  #prev = new Int32Array(0);
  readonly #slotWindow: number[] = [];
  readonly #slotFrames: number[] = [];
  readonly #windows = new Map<number, number>();
  readonly #freeSlots: number[] = [];
  readonly #freeHead = new Int32Array(MAX_ORDER + 1).fill(-1);
  readonly #freeCount = new Array<number>(MAX_ORDER + 1).fill(0);
  #wholeFreeChunks = 0;
  #chunks = 0;
  #totalPages = 0;
  #freePages = 0;

  constructor(source: FrameSource, options: BuddyOptions = {}) {
    this.#source = source;
    this.#owner = options.owner ?? HEAP_CHUNK_OWNER;
    this.#spareChunks = options.spareChunks ?? 1;
  }

  get totalPages(): number {
    return this.#totalPages;
  }

  get freePages(): number {
    return this.#freePages;
  }

  /** Allocates a block of 2^order pages, taking a chunk from the frame source if needed. */
  alloc(order: number): number {
    if (!Number.isInteger(order) || order < 0 || order > MAX_ORDER) {
      throw invalidArgument("order", `buddy order must be 0..${MAX_ORDER}, got ${order}`);
    }
    let g = this.#take(order);
    if (g < 0) {
      this.#grow(order);
      g = this.#take(order);
    }
    return this.#addressOf(g);
  }

  /** Frees an allocated block by its address; returns its order. */
  free(address: number): number {
    const g = this.#index(address);
    if (g < 0 || address % PAGE_SIZE !== 0 || this.#state[g] < ALLOCATED) {
      throw new AstraError(
        Code.FAILED_PRECONDITION,
        Errno.EINVAL,
        `${hex(address)} is not an allocated buddy block`,
        { argument: "address" },
      );
    }
    const order = this.#state[g] - ALLOCATED;
    this.#state[g] = NOT_HEAD;
    this.#coalesce(g, order);
    return order;
  }

  /** The block (free or allocated) containing `address`, or undefined if the heap does not hold it. */
  blockAt(address: number): BuddyBlock | undefined {
    const g = this.#index(address);
    if (g < 0) return undefined;
    const limit = this.#chunkOrder[g];
    for (let order = 0; order <= limit; order++) {
      const head = g & ~((1 << order) - 1);
      const state = this.#state[head];
      if (state === NOT_HEAD) continue;
      const headOrder = state >= ALLOCATED ? state - ALLOCATED : state;
      if (head + (1 << headOrder) > g) {
        return { address: this.#addressOf(head), order: headOrder, allocated: state >= ALLOCATED };
      }
    }
    return undefined;
  }

  /** Allocated blocks in slot order (for consistency checks and listings). */
  allocatedBlocks(): BuddyBlock[] {
    const blocks: BuddyBlock[] = [];
    for (let g = 0; g < this.#state.length; g++) {
      const state = this.#state[g];
      if (state >= ALLOCATED) {
        blocks.push({ address: this.#addressOf(g), order: state - ALLOCATED, allocated: true });
      }
    }
    return blocks;
  }

  /** Returns every wholly free chunk to the frame source; answers the frames returned. */
  releaseFreeChunks(): number {
    let frames = 0;
    for (let order = 0; order <= MAX_ORDER; order++) {
      let g = this.#freeHead[order];
      while (g >= 0) {
        const next = this.#next[g];
        if (this.#chunkOrder[g] === order) {
          this.#returnChunk(g, order);
          frames += 1 << order;
        }
        g = next;
      }
    }
    return frames;
  }

  statistics(): BuddyStatistics {
    const freeBlocks = [...this.#freeCount];
    return {
      totalPages: this.#totalPages,
      freePages: this.#freePages,
      allocatedPages: this.#totalPages - this.#freePages,
      chunks: this.#chunks,
      freeBlocks,
      orders: orderFragmentation(freeBlocks),
    };
  }

  /** Largest free block's order, or -1 when nothing is free. */
  largestFreeOrder(): number {
    for (let order = MAX_ORDER; order >= 0; order--) if (this.#freeHead[order] >= 0) return order;
    return -1;
  }

  /**
   * Cross-checks free lists, block states and counters; also that no two free buddies of the
   * same order were left uncoalesced. Returns the disagreements (none when healthy).
   */
  checkConsistency(): string[] {
    const problems: string[] = [];
    let freePages = 0;
    for (let order = 0; order <= MAX_ORDER; order++) {
      let n = 0;
      let prev = -1;
      for (let g = this.#freeHead[order]; g >= 0; g = this.#next[g]) {
        n++;
        if (this.#prev[g] !== prev) {
          problems.push(`order ${order}: broken back link at ${hex(this.#addressOf(g))}`);
        }
        if (this.#state[g] !== order) {
          problems.push(`order ${order}: listed block has state ${this.#state[g]}`);
        }
        if (order > this.#chunkOrder[g]) problems.push(`order ${order}: block larger than its chunk`);
        if ((g & ((1 << order) - 1)) !== 0) problems.push(`order ${order}: misaligned free block`);
        if (order < this.#chunkOrder[g] && this.#state[g ^ (1 << order)] === order) {
          problems.push(`order ${order}: free buddies at ${hex(this.#addressOf(g))} not coalesced`);
        }
        prev = g;
        if (n > this.#state.length) {
          problems.push(`order ${order}: free list cycles`);
          break;
        }
      }
      if (n !== this.#freeCount[order]) {
        problems.push(`order ${order}: ${n} listed, ${this.#freeCount[order]} counted`);
      }
      freePages += n * (1 << order);
    }
    if (freePages !== this.#freePages) problems.push(`free pages ${freePages}, counted ${this.#freePages}`);
    let chunkFrames = 0;
    let covered = 0;
    for (let g = 0; g < this.#state.length; g++) {
      if (this.#chunkOrder[g] >= 0) chunkFrames++;
      const state = this.#state[g];
      if (state !== NOT_HEAD) covered += 1 << (state >= ALLOCATED ? state - ALLOCATED : state);
    }
    if (chunkFrames !== this.#totalPages) {
      problems.push(`chunk frames ${chunkFrames}, total ${this.#totalPages}`);
    }
    if (covered !== this.#totalPages) problems.push(`blocks cover ${covered} pages of ${this.#totalPages}`);
    return problems;
  }

  // --- internals -----------------------------------------------------------------------------

  #take(order: number): number {
    for (let o = order; o <= MAX_ORDER; o++) {
      const g = this.#freeHead[o];
      if (g < 0) continue;
      this.#unlink(g, o);
      if (o === this.#chunkOrder[g]) this.#wholeFreeChunks--;
      while (o > order) {
        o--;
        this.#push(g + (1 << o), o);
      }
      this.#state[g] = ALLOCATED + order;
      return g;
    }
    return -1;
  }

  #coalesce(g: number, order: number): void {
    const limit = this.#chunkOrder[g];
    while (order < limit) {
      const buddy = g ^ (1 << order);
      if (this.#state[buddy] !== order) break;
      this.#unlink(buddy, order);
      this.#state[buddy] = NOT_HEAD;
      g = g < buddy ? g : buddy;
      order++;
    }
    this.#push(g, order);
    if (order === limit && ++this.#wholeFreeChunks > this.#spareChunks) this.#returnChunk(g, order);
  }

  // Takes a chunk big enough for `order`: a full 8 MiB window if the frame allocator has one,
  // otherwise the largest smaller aligned run that still serves the request.
  #grow(order: number): void {
    let failure: AstraError | undefined;
    for (let chunkOrder = MAX_ORDER; chunkOrder >= order; chunkOrder--) {
      const frames = 1 << chunkOrder;
      try {
        const address = this.#source.allocFrames({
          count: frames,
          alignment: frames,
          owner: this.#owner,
          site: `buddy chunk order ${chunkOrder}`,
        });
        this.#addChunk(address / PAGE_SIZE, chunkOrder);
        return;
      } catch (err) {
        if (!(err instanceof AstraError) || err.code !== Code.RESOURCE_EXHAUSTED) throw err;
        failure = err;
      }
    }
    throw resourceExhausted(
      `heap out of memory: no free buddy block of order ${order} and no aligned run of ${
        1 << order
      } frames ` +
        `to grow by (${failure?.message ?? "frame allocator exhausted"})`,
      {
        ...failure?.detail.facts,
        requested_order: String(order),
        heap_pages: String(this.#totalPages),
        heap_free_pages: String(this.#freePages),
        heap_largest_free_order: String(this.largestFreeOrder()),
      },
    );
  }

  #addChunk(frame: number, order: number): void {
    const window = Math.floor(frame / WINDOW_FRAMES);
    let slot = this.#windows.get(window);
    if (slot === undefined) {
      slot = this.#freeSlots.pop() ?? this.#newSlot();
      this.#windows.set(window, slot);
      this.#slotWindow[slot] = window;
      this.#slotFrames[slot] = 0;
    }
    const g = slot * WINDOW_FRAMES + (frame - window * WINDOW_FRAMES);
    const frames = 1 << order;
    this.#chunkOrder.fill(order, g, g + frames);
    this.#slotFrames[slot] += frames;
    this.#totalPages += frames;
    this.#chunks++;
    this.#push(g, order);
    this.#wholeFreeChunks++;
  }

  #returnChunk(g: number, order: number): void {
    const frames = 1 << order;
    const address = this.#addressOf(g);
    this.#unlink(g, order);
    this.#state[g] = NOT_HEAD;
    this.#wholeFreeChunks--;
    this.#chunkOrder.fill(-1, g, g + frames);
    this.#totalPages -= frames;
    this.#chunks--;
    const slot = g >>> WINDOW_SHIFT;
    this.#slotFrames[slot] -= frames;
    if (this.#slotFrames[slot] === 0) {
      this.#windows.delete(this.#slotWindow[slot]);
      this.#slotWindow[slot] = -1;
      this.#freeSlots.push(slot);
    }
    this.#source.freeFrames(address, frames);
  }

  #newSlot(): number {
    const slot = this.#slotWindow.length;
    const needed = (slot + 1) * WINDOW_FRAMES;
    if (needed > this.#state.length) {
      const size = Math.max(needed, this.#state.length * 2);
      this.#chunkOrder = grow(this.#chunkOrder, new Int8Array(size), -1);
      this.#state = grow(this.#state, new Int8Array(size), NOT_HEAD);
      this.#next = grow(this.#next, new Int32Array(size), -1);
      this.#prev = grow(this.#prev, new Int32Array(size), -1);
    }
    this.#slotWindow.push(-1);
    this.#slotFrames.push(0);
    return slot;
  }

  #push(g: number, order: number): void {
    const head = this.#freeHead[order];
    this.#state[g] = order;
    this.#next[g] = head;
    this.#prev[g] = -1;
    if (head >= 0) this.#prev[head] = g;
    this.#freeHead[order] = g;
    this.#freeCount[order]++;
    this.#freePages += 1 << order;
  }

  #unlink(g: number, order: number): void {
    const prev = this.#prev[g];
    const next = this.#next[g];
    if (prev >= 0) this.#next[prev] = next;
    else this.#freeHead[order] = next;
    if (next >= 0) this.#prev[next] = prev;
    this.#freeCount[order]--;
    this.#freePages -= 1 << order;
  }

  // Slot index of the page holding `address`, or -1 if no chunk covers it.
  #index(address: number): number {
    if (!Number.isSafeInteger(address) || address < 0) return -1;
    const frame = Math.floor(address / PAGE_SIZE);
    const window = Math.floor(frame / WINDOW_FRAMES);
    const slot = this.#windows.get(window);
    if (slot === undefined) return -1;
    const g = slot * WINDOW_FRAMES + (frame - window * WINDOW_FRAMES);
    return this.#chunkOrder[g] >= 0 ? g : -1;
  }

  #addressOf(g: number): number {
    return (this.#slotWindow[g >>> WINDOW_SHIFT] * WINDOW_FRAMES + (g & (WINDOW_FRAMES - 1))) * PAGE_SIZE;
  }
}

function grow<T extends Int8Array | Int32Array>(old: T, bigger: T, fill: number): T {
  bigger.fill(fill, old.length);
  bigger.set(old);
  return bigger;
}

// Guest physical memory. RAM is allocated lazily in 64 KiB chunks (zero-filled on first touch), so a
// machine with gigabytes of RAM costs only what the guest uses. Every access is checked against the
// firmware map: a hole, a BAD range or a device range is not RAM and faults.
//
// The CPUs read and write RAM directly through views of its chunks (their software TLBs hold
// them), so a chunk handed out as a view stays the same host memory for the machine's life. Writes
// made through write() and fill() (DMA, the kernel side's copies, WritePhysical) are reported to
// the observers, which drop instructions the CPUs decoded from the bytes that changed.
import { AstraError, Code, Errno } from "../../lib/errors.ts";
import type { FirmwareRegion } from "./firmware.ts";

export const CHUNK_SHIFT = 16;
export const CHUNK_SIZE = 1 << CHUNK_SHIFT;
/** The smallest page the MMU maps: a chunk view is checked page by page. */
const PAGE_BYTES = 4096;

interface RamRange {
  start: number;
  end: number;
}

function hex(n: number): string {
  return "0x" + n.toString(16);
}

/** Told of every write() and fill(): [address, address + length) changed. */
export type WriteObserver = (address: number, length: number) => void;

export class PhysicalMemory {
  private readonly chunks = new Map<number, Uint8Array>();
  /** Views of the chunks the CPUs access directly; such a chunk is never released. */
  private readonly views = new Map<number, DataView>();
  private readonly observers: WriteObserver[] = [];
  private readonly ram: RamRange[];

  constructor(map: readonly FirmwareRegion[]) {
    // BAD ranges punch holes in the RAM they overlap: firmware reported them as failed.
    const bad = map.filter((r) => r.type === "bad");
    const ranges: RamRange[] = [];
    for (const r of map.filter((r) => r.type !== "bad" && r.type !== "device")) {
      let pieces: RamRange[] = [{ start: r.base, end: r.base + r.length }];
      for (const b of bad) {
        pieces = pieces.flatMap((p) => {
          const bs = b.base, be = b.base + b.length;
          if (be <= p.start || bs >= p.end) return [p];
          return [{ start: p.start, end: Math.max(p.start, bs) }, { start: Math.min(be, p.end), end: p.end }]
            .filter((q) => q.end > q.start);
        });
      }
      ranges.push(...pieces);
    }
    this.ram = ranges.sort((a, b) => a.start - b.start);
  }

  /** Bytes of RAM actually backed on the host (touched chunks). */
  get residentBytes(): number {
    return this.chunks.size * CHUNK_SIZE;
  }

  /** Throws EFAULT unless [address, address+length) lies within one RAM range. */
  check(address: number, length: number): void {
    if (!Number.isSafeInteger(address) || address < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new AstraError(Code.INVALID_ARGUMENT, Errno.EINVAL, `bad physical range ${address}+${length}`, {
        argument: "address",
      });
    }
    let lo = 0, hi = this.ram.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = this.ram[mid];
      if (address < r.start) hi = mid - 1;
      else if (address >= r.end) lo = mid + 1;
      else {
        if (address + length <= r.end) return;
        throw new AstraError(
          Code.OUT_OF_RANGE,
          Errno.EFAULT,
          `physical range ${hex(address)}+${hex(length)} runs past the RAM range ending at ${hex(r.end)}`,
          { argument: "length" },
        );
      }
    }
    throw new AstraError(
      Code.OUT_OF_RANGE,
      Errno.EFAULT,
      `physical address ${hex(address)} is not RAM (a hole, a bad range or a device range in the memory map)`,
      { argument: "address" },
    );
  }

  /** Adds a write observer (see the file comment). */
  observeWrites(observer: WriteObserver): void {
    this.observers.push(observer);
  }

  /**
   * A view of the 64 KiB chunk holding RAM address `address`, for direct access; throws EFAULT
   * unless the whole 4 KiB page holding it is RAM. The same view for every call on the chunk.
   */
  chunkView(address: number): DataView {
    this.check(address - (address % PAGE_BYTES), PAGE_BYTES);
    const index = Math.floor(address / CHUNK_SIZE);
    let view = this.views.get(index);
    if (!view) {
      const bytes = this.chunk(index);
      view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      this.views.set(index, view);
    }
    return view;
  }

  private chunk(index: number): Uint8Array {
    let c = this.chunks.get(index);
    if (!c) {
      c = new Uint8Array(CHUNK_SIZE);
      this.chunks.set(index, c);
    }
    return c;
  }

  /** Calls `visit` for each chunk-sized piece of [address, address+length), in order. */
  private eachPiece(
    address: number,
    length: number,
    visit: (index: number, offset: number, size: number, done: number) => void,
  ): void {
    let done = 0;
    while (done < length) {
      const a = address + done;
      const index = Math.floor(a / CHUNK_SIZE);
      const offset = a - index * CHUNK_SIZE;
      const size = Math.min(CHUNK_SIZE - offset, length - done);
      visit(index, offset, size, done);
      done += size;
    }
  }

  read(address: number, length: number): Uint8Array {
    this.check(address, length);
    const out = new Uint8Array(length);
    this.eachPiece(address, length, (index, offset, size, done) => {
      const c = this.chunks.get(index);
      if (c) out.set(c.subarray(offset, offset + size), done);
    });
    return out;
  }

  /**
   * The RAM behind [address, address+length) as views, one per chunk it spans, in order: a device
   * transfers into them in place (DMA without a bounce buffer), then reports the bytes it changed
   * with `written`, as write() reports its own. Used at once: a view is not kept.
   */
  dmaViews(address: number, length: number): Uint8Array[] {
    this.check(address, length);
    const views: Uint8Array[] = [];
    this.eachPiece(address, length, (index, offset, size) => {
      views.push(this.chunk(index).subarray(offset, offset + size));
    });
    return views;
  }

  /** Reports a change made through dmaViews to the write observers. */
  written(address: number, length: number): void {
    this.notify(address, length);
  }

  write(address: number, data: Uint8Array): void {
    this.check(address, data.length);
    this.eachPiece(address, data.length, (index, offset, size, done) => {
      this.chunk(index).set(data.subarray(done, done + size), offset);
    });
    this.notify(address, data.length);
  }

  fill(address: number, length: number, value: number): void {
    this.check(address, length);
    this.eachPiece(address, length, (index, offset, size) => {
      // A zeroed chunk needs no backing, unless a CPU holds a view of it.
      if (value === 0 && size === CHUNK_SIZE && !this.views.has(index)) this.chunks.delete(index);
      else if (value !== 0 || this.chunks.has(index)) this.chunk(index).fill(value, offset, offset + size);
    });
    this.notify(address, length);
  }

  private notify(address: number, length: number): void {
    if (length === 0) return;
    for (const observer of this.observers) observer(address, length);
  }
}

// Guest memory for code that runs without an operating system: one flat little-endian window at a
// fixed address, everything else faulting. The benchmark and the CPU tests run programs in it;
// with a software TLB, pages are installed from the slow path as a real memory does.
import { type CpuMemory, MemoryFault } from "./access.ts";
import { SoftwareTlb, TLB_PAGE_BYTES } from "./tlb.ts";

export class FlatMemory implements CpuMemory {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  readonly tlb: SoftwareTlb | undefined;
  /** Accesses that took the slow path (every access without a TLB). */
  slowAccesses = 0;

  constructor(readonly base: number, size: number, options: { tlbEntries?: number } = {}) {
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer);
    this.tlb = options.tlbEntries ? new SoftwareTlb(options.tlbEntries) : undefined;
  }

  protected offset(address: number, size: number, access: "read" | "write" | "execute"): number {
    this.slowAccesses++;
    const offset = address - this.base;
    if (offset < 0 || offset + size > this.bytes.length) throw new MemoryFault(BigInt(address), access);
    if (this.tlb) {
      // Writable entries only from the store path (see tlb.ts).
      const page = offset - (offset % TLB_PAGE_BYTES);
      this.tlb.install(this.base + page, this.view, page, access === "write");
    }
    return offset;
  }

  load8(a: number) {
    return this.view.getUint8(this.offset(a, 1, "read"));
  }
  load16(a: number) {
    return this.view.getUint16(this.offset(a, 2, "read"), true);
  }
  load32(a: number) {
    return this.view.getInt32(this.offset(a, 4, "read"), true);
  }
  load64(a: number, target: Int32Array, index: number) {
    const o = this.offset(a, 8, "read");
    target[index] = this.view.getInt32(o, true);
    target[index + 1] = this.view.getInt32(o + 4, true);
  }
  store8(a: number, v: number) {
    this.view.setUint8(this.offset(a, 1, "write"), v);
  }
  store16(a: number, v: number) {
    this.view.setUint16(this.offset(a, 2, "write"), v, true);
  }
  store32(a: number, v: number) {
    this.view.setInt32(this.offset(a, 4, "write"), v, true);
  }
  store64(a: number, lo: number, hi: number) {
    const o = this.offset(a, 8, "write");
    this.view.setInt32(o, lo, true);
    this.view.setInt32(o + 4, hi, true);
  }
  fetch(a: number) {
    return this.view.getInt32(this.offset(a, 4, "execute"), true);
  }
}

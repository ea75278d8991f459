// A stand-in for the machine's side of the trap path: a flat guest memory, the copy-in the
// machine does from VFS_KERNEL_CALLS' per-call table before sending a call, and the copy-out of
// the reply's outputs. Kernel calls made through it exercise the table as the machine uses it.
import { Buffer } from "node:buffer";
import { IOC_WRITE, ioctlDirection, ioctlSize } from "../../../lib/linux/ioctl.ts";
import { PATH_MAX } from "../../../lib/linux/limits.ts";
import {
  type InputSpec,
  MAX_IO_BYTES,
  SELECT_MAX_DESCRIPTORS,
  VFS_KERNEL_CALLS,
} from "../../../lib/linux/vfs_calls.ts";
import {
  type GuestBytes,
  type KernelCallResult,
  runKernelCall,
} from "../../../services/storage/vfs/syscalls.ts";
import type { Vfs } from "../../../services/storage/vfs/vfs.ts";

const BASE = 0x10000n;
const SIZE = 4 * 1024 * 1024;
/** Bytes around each copied input inside its allocation. */
const MESSAGE_PADDING = 24;

export class FakeGuest {
  readonly bytes = new Uint8Array(SIZE);
  #next = 0;

  constructor(readonly vfs: Vfs, readonly pid: number) {}

  /** Reserves `size` bytes (zeroed), 16-aligned; returns their guest address. */
  alloc(size: number): bigint {
    const at = this.#next;
    this.#next = (at + Math.max(size, 1) + 15) & ~15;
    if (this.#next > SIZE) throw new Error("fake guest memory exhausted");
    return BASE + BigInt(at);
  }

  put(data: Uint8Array): bigint {
    const address = this.alloc(data.length);
    this.bytes.set(data, Number(address - BASE));
    return address;
  }

  string(text: string): bigint {
    const encoded = new TextEncoder().encode(text);
    const data = new Uint8Array(encoded.length + 1);
    data.set(encoded);
    return this.put(data);
  }

  read(address: bigint, length: number): Uint8Array {
    const at = Number(address - BASE);
    return this.bytes.slice(at, at + length);
  }

  /**
   * Copies what readable memory holds at [address, address + length), stopping at the end of
   * memory. The copy is a Node Buffer in the middle of a larger allocation, as the bytes of a
   * request gRPC decoded are: code that takes a Uint8Array to start its buffer, or slice() to copy,
   * fails here as it would there.
   */
  #copy(address: bigint, length: number): GuestBytes | undefined {
    if (address < BASE || address >= BASE + BigInt(SIZE)) return undefined;
    const at = Number(address - BASE);
    const bytes = this.bytes.subarray(at, Math.min(SIZE, at + length));
    const pool = new Uint8Array(bytes.length + 2 * MESSAGE_PADDING);
    pool.set(bytes, MESSAGE_PADDING);
    return { address, data: Buffer.from(pool.buffer, MESSAGE_PADDING, bytes.length) };
  }

  /** All of [address, address + length), or nothing when any of it is outside memory (EFAULT). */
  #copyWhole(address: bigint, length: number): GuestBytes[] {
    if (length === 0) return [];
    const copy = this.#copy(address, length);
    return copy && copy.data.length === length ? [copy] : [];
  }

  /** What the machine copies for one input of the per-call table. */
  #inputs(spec: InputSpec, args: readonly bigint[]): GuestBytes[] {
    const address = args[spec.arg];
    if (address === 0n) return [];
    switch (spec.kind) {
      case "path": {
        const copy = this.#copy(address, PATH_MAX);
        if (!copy) return [];
        const end = copy.data.indexOf(0);
        return [{ address, data: end >= 0 ? copy.data.slice(0, end + 1) : copy.data }];
      }
      case "buffer": {
        const length = Math.min(Number(BigInt.asUintN(64, args[spec.lengthArg])), MAX_IO_BYTES);
        const copy = this.#copy(address, length);
        return copy ? [copy] : [];
      }
      case "iovec": {
        const count = Number(BigInt.asIntN(32, args[spec.countArg]));
        if (count <= 0 || count > 1024) return [];
        const array = this.#copy(address, count * 16);
        if (!array) return [];
        const out = [array];
        if (spec.buffers) {
          const view = new DataView(array.data.buffer, array.data.byteOffset, array.data.byteLength);
          let budget = MAX_IO_BYTES;
          for (let i = 0; i < count && i * 16 + 16 <= array.data.length; i++) {
            const base = view.getBigUint64(i * 16, true);
            const length = Math.min(Number(view.getBigUint64(i * 16 + 8, true)), budget);
            budget -= length;
            const copy = length ? this.#copy(base, length) : undefined;
            if (copy) out.push(copy);
          }
        }
        return out;
      }
      case "ioctl": {
        const request = Number(BigInt.asUintN(32, args[spec.requestArg]));
        if (!(ioctlDirection(request) & IOC_WRITE)) return [];
        const copy = this.#copy(address, ioctlSize(request));
        return copy ? [copy] : [];
      }
      case "struct":
        return this.#copyWhole(address, spec.bytes);
      case "array": {
        const count = Math.min(Number(BigInt.asUintN(32, args[spec.countArg])), spec.maxCount);
        return this.#copyWhole(address, count * spec.elementBytes);
      }
      case "bitmap": {
        const count = Number(BigInt.asIntN(32, args[spec.countArg]));
        const bits = Math.min(Math.max(count, 0), SELECT_MAX_DESCRIPTORS);
        return this.#copyWhole(address, Math.ceil(bits / 64) * 8);
      }
    }
  }

  /** One system call: copy in, run, copy out. */
  async call(number: number, ...args: (number | bigint)[]): Promise<KernelCallResult> {
    const registers = [...args, 0, 0, 0, 0, 0, 0].slice(0, 6).map((a) => BigInt.asUintN(64, BigInt(a)));
    const spec = VFS_KERNEL_CALLS.get(number);
    const inputs = spec ? spec.inputs.flatMap((input) => this.#inputs(input, registers)) : [];
    const result = await runKernelCall(this.vfs, { pid: this.pid, number, args: registers, inputs });
    for (const output of result.outputs) this.bytes.set(output.data, Number(output.address - BASE));
    return result;
  }
}

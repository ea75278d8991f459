// Guest memory as a kernel call sees it. sched cannot read the caller's memory itself: it answers
// FETCH with the ranges it needs and the machine sends the call again with their bytes. A handler
// reads through a GuestReader over the bytes received so far; a read of anything else throws
// FetchNeeded, the handler is abandoned and re-run from the start once the bytes arrive, so a
// handler reads everything it needs before it changes anything. Strings and pointer arrays of
// unknown length are fetched a page at a time, never across a page the guest may not have mapped.
import { AstraError, Code, Errno } from "../../lib/errors.ts";

export interface GuestBytes {
  address: bigint;
  data: Uint8Array;
}

export interface GuestRange {
  address: bigint;
  length: bigint;
}

const PAGE = 4096n;
const ADDRESS_LIMIT = 1n << 64n;

/** Thrown by a read the call's inputs do not hold yet. */
export class FetchNeeded {
  constructor(readonly ranges: GuestRange[]) {}
}

export function badAddress(address: bigint, argument: string): AstraError {
  return new AstraError(Code.INVALID_ARGUMENT, Errno.EFAULT, `bad address 0x${address.toString(16)}`, {
    argument,
  });
}

export class GuestReader {
  constructor(private readonly inputs: readonly GuestBytes[]) {}

  #find(address: bigint, length: bigint): Uint8Array | null {
    for (const input of this.inputs) {
      const end = input.address + BigInt(input.data.length);
      if (address >= input.address && address + length <= end) {
        const start = Number(address - input.address);
        return input.data.subarray(start, start + Number(length));
      }
    }
    return null;
  }

  #check(address: bigint, length: bigint, argument: string): void {
    // Page zero is never mapped (vm.mmap_min_addr): no need to ask the machine.
    if (address < PAGE || address + length > ADDRESS_LIMIT) throw badAddress(address, argument);
  }

  /** `length` bytes at `address`. */
  read(address: bigint, length: number, argument: string): Uint8Array {
    if (length === 0) return new Uint8Array(0);
    this.#check(address, BigInt(length), argument);
    const bytes = this.#find(address, BigInt(length));
    if (!bytes) throw new FetchNeeded([{ address, length: BigInt(length) }]);
    return bytes;
  }

  /** Several reads at once: one FETCH round for all that are missing. */
  readAll(requests: ReadonlyArray<{ address: bigint; length: number; argument: string }>): Uint8Array[] {
    const missing: GuestRange[] = [];
    const out = requests.map(({ address, length, argument }) => {
      if (length === 0) return new Uint8Array(0);
      this.#check(address, BigInt(length), argument);
      const bytes = this.#find(address, BigInt(length));
      if (!bytes) missing.push({ address, length: BigInt(length) });
      return bytes ?? new Uint8Array(0);
    });
    if (missing.length > 0) throw new FetchNeeded(missing);
    return out;
  }

  readU32(address: bigint, argument: string): number {
    const bytes = this.read(address, 4, argument);
    return new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, true);
  }

  readU64(address: bigint, argument: string): bigint {
    const bytes = this.read(address, 8, argument);
    return new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  }

  /**
   * A NUL-terminated string of at most `max` bytes (without the NUL), read up to page ends;
   * `tooLong` is the error when no NUL comes within `max` bytes.
   */
  readString(address: bigint, max: number, argument: string, tooLong: () => AstraError): Uint8Array {
    const parts: Uint8Array[] = [];
    let total = 0;
    let at = address;
    for (;;) {
      const pageLeft = PAGE - (at % PAGE);
      const wanted = BigInt(max + 1 - total);
      const chunk = Number(pageLeft < wanted ? pageLeft : wanted);
      const bytes = this.read(at, chunk, argument);
      const nul = bytes.indexOf(0);
      if (nul >= 0) {
        parts.push(bytes.subarray(0, nul));
        break;
      }
      parts.push(bytes);
      total += bytes.length;
      if (total > max) throw tooLong();
      at += BigInt(chunk);
    }
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let offset = 0;
    for (const part of parts) {
      out.set(part, offset);
      offset += part.length;
    }
    return out;
  }

  /** A NULL-terminated array of 64-bit pointers (argv, envp) of at most `max` entries. */
  readPointerArray(address: bigint, max: number, argument: string, tooLong: () => AstraError): bigint[] {
    const pointers: bigint[] = [];
    let at = address;
    for (;;) {
      const room = Number((PAGE - (at % PAGE)) / 8n) || 1;
      const bytes = this.read(at, room * 8, argument);
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      for (let i = 0; i < room; i++) {
        const pointer = view.getBigUint64(i * 8, true);
        if (pointer === 0n) return pointers;
        if (pointers.length >= max) throw tooLong();
        pointers.push(pointer);
      }
      at += BigInt(room * 8);
    }
  }
}

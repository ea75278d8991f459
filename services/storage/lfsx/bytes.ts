// Byte arrays the engine hands out (copies of values, keys as bytes) are carved out of shared
// 8 KiB slabs, as Node's Buffer pool does for small buffers: in this runtime creating a typed
// array with its own ArrayBuffer costs about 0.5 µs, a view into a slab about 25 ns. Each array
// is its own range of a slab and a private copy, but its `.buffer` is shared: read it through
// its own byteOffset and length, never the whole buffer.
import type { Key } from "./keys.ts";

const SLAB_SIZE = 8192;
/** Larger arrays get their own buffer. */
const POOLED_LIMIT = 1024;

let slab = new Uint8Array(SLAB_SIZE);
let used = 0;

/** A zero-filled array of `length` bytes. */
export function allocateBytes(length: number): Uint8Array {
  if (length > POOLED_LIMIT) return new Uint8Array(length);
  if (used + length > SLAB_SIZE) {
    slab = new Uint8Array(SLAB_SIZE);
    used = 0;
  }
  const out = slab.subarray(used, used + length);
  // Keep every array 8-byte aligned, so DataView access to its start is cheap.
  used += (length + 7) & ~7;
  return out;
}

/** A private copy of `source`. */
export function copyBytes(source: Uint8Array): Uint8Array {
  const out = allocateBytes(source.length);
  out.set(source);
  return out;
}

/** The bytes of a binary-string key. */
export function keyBytes(key: Key): Uint8Array {
  const out = allocateBytes(key.length);
  for (let i = 0; i < key.length; i++) out[i] = key.charCodeAt(i);
  return out;
}

// Inside the engine a key is a "binary string": one UTF-16 code unit in 0..255 per byte.
// JavaScript compares such strings code unit by code unit, which is exactly the bytewise
// (memcmp) order of the underlying bytes, and strings serve directly as Map keys; both make the
// tree, the lock table and the version store faster than comparing Uint8Arrays.

/** A key as a binary string (see the module comment). */
export type Key = string;

const CHUNK = 8192;

export function keyFromBytes(bytes: Uint8Array): Key {
  if (bytes.length <= CHUNK) {
    return String.fromCharCode.apply(null, bytes as unknown as number[]);
  }
  let out = "";
  for (let i = 0; i < bytes.length; i += CHUNK) {
    out += String.fromCharCode.apply(null, bytes.subarray(i, i + CHUNK) as unknown as number[]);
  }
  return out;
}

export function keyToBytes(key: Key): Uint8Array {
  const out = new Uint8Array(key.length);
  for (let i = 0; i < key.length; i++) out[i] = key.charCodeAt(i);
  return out;
}

/** Writes `key` into `buf` at `offset`; returns the offset after it. */
export function writeKey(buf: Uint8Array, offset: number, key: Key): number {
  for (let i = 0; i < key.length; i++) buf[offset + i] = key.charCodeAt(i);
  return offset + key.length;
}

/**
 * The shortest key s with left < s <= right (requires left < right): the prefix of `right` one
 * byte longer than the common prefix. Short separators make internal nodes hold more children
 * (suffix truncation).
 */
export function shortestSeparator(left: Key, right: Key): Key {
  const limit = Math.min(left.length, right.length);
  let common = 0;
  while (common < limit && left.charCodeAt(common) === right.charCodeAt(common)) common++;
  return right.slice(0, common + 1);
}

/** Index of the first key >= `key` in the sorted array. */
export function lowerBound(keys: readonly Key[], key: Key): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keys[mid] < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Index of the first key > `key` in the sorted array. */
export function upperBound(keys: readonly Key[], key: Key): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keys[mid] <= key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** A printable form of a key for messages: text when it is printable ASCII, hex otherwise. */
export function describeKey(key: Key): string {
  const shown = key.length > 64 ? key.slice(0, 64) : key;
  const suffix = key.length > 64 ? `… (${key.length} bytes)` : "";
  if (/^[\x20-\x7e]*$/.test(shown)) return JSON.stringify(shown) + suffix;
  let hex = "";
  for (let i = 0; i < shown.length; i++) hex += shown.charCodeAt(i).toString(16).padStart(2, "0");
  return `0x${hex}${suffix}`;
}

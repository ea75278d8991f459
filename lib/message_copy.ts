// Copies of protobuf-es messages for the in-process transport, with a bound on their wire size.
// Crossing through the wire encoding made each message cost ~3 µs (64-bit fields encode through
// BigInt), more than the rest of a stream round trip; a structural copy costs a fraction of that.
// Messages are plain objects of scalars, bigints, strings, Uint8Arrays, arrays and nested
// messages; defaults of explicit-presence fields live on the prototype, which the copy keeps.

/**
 * What a field can cost on the wire beyond its payload: a tag (≤ 5 bytes) and a varint value or
 * length (≤ 10 bytes).
 */
const FIELD_OVERHEAD = 16;

/** A deep copy of `message` and an upper bound of its encoded size in bytes. */
export function copyMessage<T>(message: T): { copy: T; sizeBound: number } {
  let size = 0;
  const copy = (value: unknown): unknown => {
    size += FIELD_OVERHEAD;
    if (typeof value === "string") {
      size += value.length * 3;
      return value;
    }
    if (typeof value !== "object" || value === null) return value;
    if (value instanceof Uint8Array) {
      size += value.length;
      return value.slice();
    }
    if (Array.isArray(value)) {
      const out = new Array(value.length);
      for (let i = 0; i < value.length; i++) out[i] = copy(value[i]);
      return out;
    }
    const out = Object.create(Object.getPrototypeOf(value));
    for (const key of Object.keys(value)) out[key] = copy((value as Record<string, unknown>)[key]);
    return out;
  };
  return { copy: copy(message) as T, sizeBound: size };
}

// HPACK header compression (RFC 7541). The decoder is complete: it follows whatever the peer's
// encoder does with the dynamic table. The encoder never adds to the dynamic table, so it keeps
// no state that the peer has to mirror beyond one table size update.

import { bytesToLatin1, HpackError, huffmanDecode, huffmanEncode, huffmanEncodedLength } from "./huffman.ts";

export { HpackError };

/** Header fields in order; names and values are latin1 strings, one character per byte. */
export type HeaderList = [name: string, value: string][];

/** RFC 7541 Appendix A; entry i is index i + 1. */
export const STATIC_TABLE: readonly (readonly [name: string, value: string])[] = [
  [":authority", ""],
  [":method", "GET"],
  [":method", "POST"],
  [":path", "/"],
  [":path", "/index.html"],
  [":scheme", "http"],
  [":scheme", "https"],
  [":status", "200"],
  [":status", "204"],
  [":status", "206"],
  [":status", "304"],
  [":status", "400"],
  [":status", "404"],
  [":status", "500"],
  ["accept-charset", ""],
  ["accept-encoding", "gzip, deflate"],
  ["accept-language", ""],
  ["accept-ranges", ""],
  ["accept", ""],
  ["access-control-allow-origin", ""],
  ["age", ""],
  ["allow", ""],
  ["authorization", ""],
  ["cache-control", ""],
  ["content-disposition", ""],
  ["content-encoding", ""],
  ["content-language", ""],
  ["content-length", ""],
  ["content-location", ""],
  ["content-range", ""],
  ["content-type", ""],
  ["cookie", ""],
  ["date", ""],
  ["etag", ""],
  ["expect", ""],
  ["expires", ""],
  ["from", ""],
  ["host", ""],
  ["if-match", ""],
  ["if-modified-since", ""],
  ["if-none-match", ""],
  ["if-range", ""],
  ["if-unmodified-since", ""],
  ["last-modified", ""],
  ["link", ""],
  ["location", ""],
  ["max-forwards", ""],
  ["proxy-authenticate", ""],
  ["proxy-authorization", ""],
  ["range", ""],
  ["referer", ""],
  ["refresh", ""],
  ["retry-after", ""],
  ["server", ""],
  ["set-cookie", ""],
  ["strict-transport-security", ""],
  ["transfer-encoding", ""],
  ["user-agent", ""],
  ["vary", ""],
  ["via", ""],
  ["www-authenticate", ""],
];

/** An entry's size in the dynamic table: its octets plus an estimated overhead (RFC 7541 §4.1). */
const ENTRY_OVERHEAD = 32;

const NO_BYTES: Uint8Array = new Uint8Array(0);

/** The largest integer either end accepts; anything larger is an attack or a bug. */
const MAX_INTEGER = 2 ** 31 - 1;

/**
 * The dynamic table (RFC 7541 §2.3.2, §4): a ring of entries, newest at index 0, evicted
 * oldest-first to keep the total size within the capacity the peer's encoder chose.
 */
class DynamicTable {
  #ring: ([name: string, value: string] | undefined)[] = new Array(16);
  /** Slot of the newest entry. */
  #newest = 0;
  length = 0;
  /** Sum of the entries' sizes. */
  size = 0;

  constructor(public capacity: number) {}

  /** Entry `i`, 0 being the newest; `i` must be below `length`. */
  get(i: number): [name: string, value: string] {
    return this.#ring[(this.#newest - i) & (this.#ring.length - 1)]!;
  }

  add(name: string, value: string): void {
    const size = name.length + value.length + ENTRY_OVERHEAD;
    // An entry larger than the whole table empties it and is not added (§4.4).
    this.#evictTo(this.capacity - size);
    if (size > this.capacity) return;
    if (this.length === this.#ring.length) this.#grow();
    this.#newest = (this.#newest + 1) & (this.#ring.length - 1);
    this.#ring[this.#newest] = [name, value];
    this.length++;
    this.size += size;
  }

  resize(capacity: number): void {
    this.capacity = capacity;
    this.#evictTo(capacity);
  }

  #evictTo(size: number): void {
    while (this.size > size && this.length > 0) {
      const slot = (this.#newest - this.length + 1) & (this.#ring.length - 1);
      const [name, value] = this.#ring[slot]!;
      this.size -= name.length + value.length + ENTRY_OVERHEAD;
      this.#ring[slot] = undefined; // for the collector
      this.length--;
    }
  }

  /** Doubles the ring (its length stays a power of two), oldest entry first in the new one. */
  #grow(): void {
    const ring: ([string, string] | undefined)[] = new Array(this.#ring.length * 2);
    for (let i = 0; i < this.length; i++) ring[i] = this.get(this.length - 1 - i);
    this.#ring = ring;
    this.#newest = this.length - 1;
  }
}

export interface HpackDecoderOptions {
  /**
   * The most header list bytes one block may decode to, counted as in SETTINGS_MAX_HEADER_LIST_SIZE
   * (RFC 9113 §6.5.2: each field's name and value octets plus 32). Default 64 KiB.
   */
  maxHeaderListSize?: number;
}

/** Decodes the header blocks one peer sends on one connection, in the order it sent them. */
export class HpackDecoder {
  readonly #table: DynamicTable;
  /** The SETTINGS_HEADER_TABLE_SIZE this end advertised: no table size update may exceed it. */
  #limit: number;
  /** Once the limit drops below the table's capacity: what the next block must first resize it to at most. */
  #updateRequiredTo = -1;
  readonly #maxHeaderListSize: number;
  #block = NO_BYTES;
  #pos = 0;

  /**
   * `maxTableSize` is the dynamic table's size before any SETTINGS change it: in HTTP/2 the protocol
   * default 4096, whatever this end is about to advertise.
   */
  constructor(maxTableSize = 4096, options: HpackDecoderOptions = {}) {
    this.#limit = maxTableSize;
    this.#table = new DynamicTable(maxTableSize);
    this.#maxHeaderListSize = options.maxHeaderListSize ?? 64 * 1024;
  }

  /**
   * Sets the SETTINGS_HEADER_TABLE_SIZE this end advertised, once the peer has acknowledged it:
   * blocks sent before the peer saw a lower value may still use the old one. A limit below the
   * table's current capacity obliges the peer to start its next block with a size update that
   * brings the table within it (RFC 7541 §4.2).
   */
  set maxTableSize(bytes: number) {
    this.#limit = bytes;
    if (bytes < this.#table.capacity) {
      this.#updateRequiredTo = this.#updateRequiredTo < 0 ? bytes : Math.min(this.#updateRequiredTo, bytes);
    }
  }

  get maxTableSize(): number {
    return this.#limit;
  }

  /** The dynamic table's entries, newest (index 62) first. */
  get dynamicTable(): HeaderList {
    const entries: HeaderList = [];
    for (let i = 0; i < this.#table.length; i++) {
      const [name, value] = this.#table.get(i);
      entries.push([name, value]);
    }
    return entries;
  }

  /** The dynamic table's size in octets, entries counted with their 32-octet overhead. */
  get dynamicTableSize(): number {
    return this.#table.size;
  }

  /**
   * Decodes one complete header block (a HEADERS or PUSH_PROMISE fragment and its CONTINUATIONs).
   * After an HpackError the dynamic table may be half updated: the connection cannot go on.
   */
  decode(block: Uint8Array): HeaderList {
    this.#block = block;
    this.#pos = 0;
    const headers: HeaderList = [];
    let listSize = 0;
    // Table size updates come before the first field (RFC 7541 §4.2).
    while (this.#pos < block.length && (block[this.#pos] & 0xe0) === 0x20) {
      const capacity = this.#integer(5);
      if (capacity > this.#limit) {
        throw new HpackError(`dynamic table size update to ${capacity} exceeds the limit ${this.#limit}`);
      }
      if (capacity <= this.#updateRequiredTo) this.#updateRequiredTo = -1;
      this.#table.resize(capacity);
    }
    if (this.#updateRequiredTo >= 0) {
      throw new HpackError(
        `expected a dynamic table size update to at most ${this.#updateRequiredTo} at the start of the block`,
      );
    }
    while (this.#pos < block.length) {
      const first = block[this.#pos];
      let name: string, value: string;
      if (first & 0x80) {
        // Indexed field (§6.1).
        [name, value] = this.#entry(this.#integer(7));
      } else if (first & 0x40) {
        // Literal with incremental indexing (§6.2.1).
        const index = this.#integer(6);
        name = index === 0 ? this.#string() : this.#entry(index)[0];
        value = this.#string();
        this.#table.add(name, value);
      } else if (first & 0x20) {
        throw new HpackError("dynamic table size update after the first field of the block");
      } else {
        // Literal without indexing (§6.2.2) or never indexed (§6.2.3): the same to a decoder.
        const index = this.#integer(4);
        name = index === 0 ? this.#string() : this.#entry(index)[0];
        value = this.#string();
      }
      listSize += name.length + value.length + ENTRY_OVERHEAD;
      if (listSize > this.#maxHeaderListSize) {
        throw new HpackError(`header list is larger than the limit of ${this.#maxHeaderListSize} bytes`);
      }
      headers.push([name, value]);
    }
    this.#block = NO_BYTES;
    return headers;
  }

  #entry(index: number): readonly [name: string, value: string] {
    if (index === 0) throw new HpackError("index 0 is not a table entry");
    if (index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1];
    const dynamic = index - STATIC_TABLE.length - 1;
    if (dynamic >= this.#table.length) {
      throw new HpackError(
        `index ${index} is past the end of the table (${STATIC_TABLE.length + this.#table.length})`,
      );
    }
    return this.#table.get(dynamic);
  }

  /** An integer with an N-bit prefix (RFC 7541 §5.1), starting at the current byte. */
  #integer(prefixBits: number): number {
    const block = this.#block;
    const max = (1 << prefixBits) - 1;
    let value = block[this.#pos++] & max;
    if (value < max) return value;
    // At most 5 continuation bytes: enough for MAX_INTEGER, and a bound on what a peer can make us read.
    for (let shift = 0; shift <= 28; shift += 7) {
      if (this.#pos >= block.length) throw new HpackError("header block ends inside an integer");
      const byte = block[this.#pos++];
      value += (byte & 0x7f) * 2 ** shift;
      if (value > MAX_INTEGER) throw new HpackError("integer in header block exceeds 2^31 - 1");
      if ((byte & 0x80) === 0) return value;
    }
    throw new HpackError("integer in header block has more than 5 continuation bytes");
  }

  /** A string literal (RFC 7541 §5.2). */
  #string(): string {
    const block = this.#block;
    if (this.#pos >= block.length) throw new HpackError("header block ends before a string");
    const huffman = block[this.#pos] & 0x80;
    const length = this.#integer(7);
    const start = this.#pos, end = start + length;
    if (end > block.length) throw new HpackError("header block ends inside a string");
    this.#pos = end;
    return huffman ? huffmanDecode(block, start, end) : bytesToLatin1(block, start, end);
  }
}

/** For each static table name: its first index, and the index of each value it appears with. */
const STATIC_INDEX = new Map<string, { name: number; values: Map<string, number> }>();
STATIC_TABLE.forEach(([name, value], i) => {
  let entry = STATIC_INDEX.get(name);
  if (!entry) STATIC_INDEX.set(name, entry = { name: i + 1, values: new Map() });
  entry.values.set(value, i + 1);
});

/** A dynamic table size update to 0 (RFC 7541 §6.3). */
const TABLE_SIZE_ZERO = 0x20;

/**
 * Blocks are carved out of shared slabs: a view costs a tenth of what an array with a buffer of
 * its own does, and a block is made for every call.
 */
const SLAB_BYTES = 64 * 1024;
let slab = new Uint8Array(SLAB_BYTES);
let slabUsed = 0;

/**
 * Encodes header blocks for one connection. Fields in the static table are sent as its index;
 * everything else as a literal that is not indexed, Huffman-coded where that is shorter.
 */
export class HpackEncoder {
  #tableEmptied = false;

  /**
   * Encodes `headers` (latin1 strings; a character above 0xff is a TypeError). The block is a view
   * into a buffer that other blocks share: copy it or send it, never transfer its buffer. The
   * connection must send the blocks in the order they were encoded.
   */
  encode(headers: HeaderList): Uint8Array {
    // Room for the worst case: a size update, then per field two bytes of index or opcode, and
    // each string raw (Huffman is used only when shorter) after a length of up to 5 bytes.
    let bound = 1;
    for (let i = 0; i < headers.length; i++) bound += headers[i][0].length + headers[i][1].length + 12;
    if (slab.length - slabUsed < bound) {
      slab = new Uint8Array(Math.max(bound, SLAB_BYTES));
      slabUsed = 0;
    }
    const out = slab, start = slabUsed;
    let o = start;
    // The peer's decoder keeps a table of the size it advertised, and some decoders insist on a
    // size update whenever that setting shrinks below the table's current size. A table emptied
    // once, with the first block, never needs another.
    if (!this.#tableEmptied) out[o++] = TABLE_SIZE_ZERO;
    for (let i = 0; i < headers.length; i++) {
      const [name, value] = headers[i];
      const known = STATIC_INDEX.get(name);
      if (known) {
        const index = known.values.get(value);
        if (index !== undefined) {
          o = writeInteger(out, o, 0x80, 7, index);
          continue;
        }
        o = writeInteger(out, o, 0x00, 4, known.name);
      } else {
        out[o++] = 0x00;
        o = writeString(out, o, name);
      }
      o = writeString(out, o, value);
    }
    this.#tableEmptied = true;
    slabUsed = o;
    return out.subarray(start, o);
  }
}

/** Writes `value` with an N-bit prefix (RFC 7541 §5.1) whose other bits are `flags`. */
function writeInteger(out: Uint8Array, o: number, flags: number, prefixBits: number, value: number): number {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    out[o++] = flags | value;
    return o;
  }
  out[o++] = flags | max;
  value -= max;
  while (value >= 0x80) {
    out[o++] = (value & 0x7f) | 0x80;
    value = Math.floor(value / 0x80);
  }
  out[o++] = value;
  return o;
}

function writeString(out: Uint8Array, o: number, s: string): number {
  const huffmanLength = huffmanEncodedLength(s);
  if (huffmanLength < s.length) {
    o = writeInteger(out, o, 0x80, 7, huffmanLength);
    return huffmanEncode(s, out, o);
  }
  o = writeInteger(out, o, 0x00, 7, s.length);
  for (let i = 0; i < s.length; i++) out[o++] = s.charCodeAt(i);
  return o;
}

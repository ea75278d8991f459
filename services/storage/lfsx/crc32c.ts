// CRC-32C (Castagnoli), the checksum of every LFSX block and journal record. Table-driven with
// slicing-by-8: eight 256-entry tables let the inner loop consume eight bytes per step.

const POLYNOMIAL = 0x82f63b78; // 0x1EDC6F41 bit-reversed

/** TABLES[k * 256 + b]: the CRC register after byte b followed by k zero bytes. */
const TABLES = buildTables();

function buildTables(): Uint32Array {
  const tables = new Uint32Array(8 * 256);
  for (let b = 0; b < 256; b++) {
    let crc = b;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ POLYNOMIAL : crc >>> 1;
    tables[b] = crc;
  }
  for (let b = 0; b < 256; b++) {
    let crc = tables[b];
    for (let k = 1; k < 8; k++) {
      crc = tables[crc & 0xff] ^ (crc >>> 8);
      tables[k * 256 + b] = crc;
    }
  }
  return tables;
}

/**
 * CRC-32C of `data`. Passing the CRC of a previous buffer as `previous` continues it:
 * crc32c(b, crc32c(a)) === crc32c(a ++ b).
 */
export function crc32c(data: Uint8Array, previous = 0): number {
  const t = TABLES;
  let crc = ~previous >>> 0;
  let i = 0;
  const end8 = data.length - (data.length & 7);
  while (i < end8) {
    const lo = crc ^ (data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24));
    const hi = data[i + 4] | (data[i + 5] << 8) | (data[i + 6] << 16) | (data[i + 7] << 24);
    crc = t[1792 + (lo & 0xff)] ^ t[1536 + ((lo >>> 8) & 0xff)] ^ t[1280 + ((lo >>> 16) & 0xff)] ^
      t[1024 + (lo >>> 24)] ^ t[768 + (hi & 0xff)] ^ t[512 + ((hi >>> 8) & 0xff)] ^
      t[256 + ((hi >>> 16) & 0xff)] ^ t[hi >>> 24];
    i += 8;
  }
  while (i < data.length) crc = t[(crc ^ data[i++]) & 0xff] ^ (crc >>> 8);
  return ~crc >>> 0;
}

const ZERO_WORD = new Uint8Array(4);

/**
 * CRC-32C of `data` with the four bytes at `holeOffset` read as zero: a block's checksum field
 * lies inside the bytes it covers.
 */
export function crc32cWithHole(data: Uint8Array, holeOffset: number, previous = 0): number {
  let crc = crc32c(data.subarray(0, holeOffset), previous);
  crc = crc32c(ZERO_WORD, crc);
  return crc32c(data.subarray(holeOffset + 4), crc);
}

/**
 * A checksum seed derived from a block number. Seeding a block's checksum with its own address
 * makes a block written to the wrong place (or a stale copy read from it) fail verification.
 */
export function blockSeed(block: number): number {
  const bytes = new Uint8Array(8);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, block >>> 0, true);
  view.setUint32(4, Math.floor(block / 0x1_0000_0000), true);
  return crc32c(bytes);
}

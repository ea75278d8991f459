import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { blockSeed, crc32c, crc32cWithHole } from "../../services/storage/lfsx/crc32c.ts";

const ascii = (s: string) => new TextEncoder().encode(s);

describe("crc32c", () => {
  it("matches the published CRC-32C check value and the RFC 3720 vectors", () => {
    expect(crc32c(ascii("123456789"))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i))).toBe(0x46dd794e);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i))).toBe(0x113fdb5c);
    expect(crc32c(new Uint8Array(0))).toBe(0);
  });

  it("agrees with a bitwise reference on every length and alignment", () => {
    const reference = (data: Uint8Array) => {
      let crc = 0xffffffff;
      for (const byte of data) {
        crc ^= byte;
        for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
      }
      return (crc ^ 0xffffffff) >>> 0;
    };
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(7), (data, skip) => {
        const view = data.subarray(Math.min(skip, data.length));
        expect(crc32c(view)).toBe(reference(view));
      }),
    );
  });

  it("continues a running checksum across buffers", () => {
    fc.assert(
      fc.property(fc.uint8Array(), fc.uint8Array(), (a, b) => {
        const joined = new Uint8Array(a.length + b.length);
        joined.set(a);
        joined.set(b, a.length);
        expect(crc32c(b, crc32c(a))).toBe(crc32c(joined));
      }),
    );
  });

  it("reads the checksum field as zero and seeds by block number", () => {
    const block = Uint8Array.from({ length: 64 }, (_, i) => i * 7);
    const zeroed = block.slice();
    zeroed.fill(0, 20, 24);
    expect(crc32cWithHole(block, 20, 5)).toBe(crc32c(zeroed, 5));
    expect(blockSeed(1)).not.toBe(blockSeed(2));
    expect(crc32c(block, blockSeed(1))).not.toBe(crc32c(block, blockSeed(2)));
  });
});

import { describe, expect, it } from "vitest";
import fc from "fast-check";
import http2 from "node:http2";
import net from "node:net";
import {
  type HeaderList,
  HpackDecoder,
  HpackEncoder,
  HpackError,
  STATIC_TABLE,
} from "../../../lib/h2/hpack.ts";
import { HUFFMAN_CODE, huffmanDecode, huffmanEncode, huffmanEncodedLength } from "../../../lib/h2/huffman.ts";

function hex(s: string): Uint8Array {
  return Uint8Array.from(s.replace(/\s+/g, "").match(/../g) ?? [], (b) => parseInt(b, 16));
}

function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function huffman(s: string): Uint8Array {
  const out = new Uint8Array(huffmanEncodedLength(s));
  expect(huffmanEncode(s, out, 0)).toBe(out.length);
  return out;
}

/** An HPACK integer (RFC 7541 §5.1), written independently of the encoder under test. */
function integer(flags: number, prefixBits: number, value: number): number[] {
  const max = 2 ** prefixBits - 1;
  if (value < max) return [flags | value];
  const bytes = [flags | max];
  for (value -= max; value >= 128; value = Math.floor(value / 128)) bytes.push(0x80 | (value % 128));
  bytes.push(value);
  return bytes;
}

/** A raw string literal. */
function literal(s: string): number[] {
  return [...integer(0, 7, s.length), ...Array.from(s, (c) => c.charCodeAt(0))];
}

function latin1Up(maxLength: number): fc.Arbitrary<string> {
  return fc.uint8Array({ maxLength }).map((bytes) => String.fromCharCode(...bytes));
}
const latin1 = latin1Up(300);

// The strings RFC 7541 Appendix C.4 and C.6 Huffman-code.
const HUFFMAN_EXAMPLES: [string, string][] = [
  ["www.example.com", "f1e3 c2e5 f23a 6ba0 ab90 f4ff"],
  ["no-cache", "a8eb 1064 9cbf"],
  ["custom-key", "25a8 49e9 5ba9 7d7f"],
  ["custom-value", "25a8 49e9 5bb8 e8b4 bf"],
  ["302", "6402"],
  ["307", "640e ff"],
  ["private", "aec3 771a 4b"],
  ["Mon, 21 Oct 2013 20:13:21 GMT", "d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff"],
  ["Mon, 21 Oct 2013 20:13:22 GMT", "d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff"],
  ["https://www.example.com", "9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3"],
  ["gzip", "9bd9 ab"],
  [
    "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
    `94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587
     3160 65c0 03ed 4ee5 b106 3d50 07`,
  ],
];

describe("Huffman code", () => {
  it("is the canonical, complete prefix code of RFC 7541 Appendix B", () => {
    expect(HUFFMAN_CODE.length).toBe(2 * 257);
    const lengths = Array.from({ length: 257 }, (_, sym) => HUFFMAN_CODE[2 * sym + 1]);
    // Kraft: the sum of 2^-length is exactly 1, so every bit string starts with some code.
    expect(lengths.reduce((sum, l) => sum + 2 ** (30 - l), 0)).toBe(2 ** 30);
    // Codes sorted by (length, symbol) count up, shifting left where the length grows: that makes
    // the code prefix-free, and is how Appendix B was built.
    const order = lengths.map((_, sym) => sym).sort((a, b) => lengths[a] - lengths[b] || a - b);
    let next = 0, length = lengths[order[0]];
    for (const sym of order) {
      next *= 2 ** (lengths[sym] - length);
      length = lengths[sym];
      expect(HUFFMAN_CODE[2 * sym], `code of symbol ${sym}`).toBe(next++);
    }
    expect([HUFFMAN_CODE[2 * 256], HUFFMAN_CODE[2 * 256 + 1]]).toEqual([0x3fffffff, 30]);
  });

  it("codes every byte as Appendix B does", () => {
    // Bytes 0 to 255 in order, as an independent implementation (python-hyper/hpack) codes them:
    // the checks above cannot tell two symbols' codes of one length apart.
    const coded = hex(`
    ffc7fffd8fffffe2fffffe3fffffe4fffffe5fffffe6fffffe7fffffe8ffffeafffffff3fffffa7fffffabffffffdfff
    ffebfffffecfffffedfffffeefffffefffffff0ffffff1ffffff2fffffffbfffffcffffffd3fffffd7fffffdbfffffdf
    fffffe3fffffe7fffffebfffffed4fe3f9ffaffcabf1febfafefe7fdfd2cbb00089969b71d79fb9f7fff20ffbff3ff50
    ddbd7f061c58f265cd9f469d5af66dddbf871e5f9cff7ff7fffc3ff9ffe45fff4719242cb34e6e9d68a6a3d7dac426de
    fe3cfaf7fffbfe7ffbffdffffffcfffe6ffff4bfff9ffffa3fffd3ffff53fffd5ffffb3fffeb7fffdaffffb7ffff73ff
    feeffffdeffffebffffbfffffd9ffffdbfffebffffe0ffffeeffffc3ffff8bffff1ffffe4fffee7fffb1ffff97fffd9f
    fffcdffff9fffffbffffdafffeeffff4ffffb7fffee7fffe8ffffd3fffdeffffd5fffeeffffbdffffe1fffdfffff7fff
    ff5ffffecffff07fff87fffe0ffff17fffedffff87ffff77fffeffffeaffff8bfffe3ffff93ffff87fffcbffff37ffff
    1fffff83ffffe1fffebfffe3ffff3fffff2ffffa3ffffd9fffff17ffffc7fffff27ffffdefffffbffffff2fffff8ffff
    fb7fff97fff8fffffe6fffffc1fffff87ffffe7fffffc5ffffe5fffe4ffff2fffffd1fffff4ffffffefffffe3fffffc9
    fffff97fffb3ffffcffffb7fffcdffff4ffff9ffffd1ffffcffffeaffffafffffddffffeffffff4fffff5fffffabffff
    a7ffffd7fffff9bffffecfffffb7fffff3fffffe8fffffd3fffffabfffff5fffffff7ffffecfffffdbfffffbbfffff7f
    fffff0fffffbbf
    `);
    const all = String.fromCharCode(...Array.from({ length: 256 }, (_, i) => i));
    expect(toHex(huffman(all))).toBe(toHex(coded));
    expect(huffmanDecode(coded, 0, coded.length)).toBe(all);
  });

  it("codes the strings of RFC 7541 C.4 and C.6 as the RFC does", () => {
    for (const [s, coded] of HUFFMAN_EXAMPLES) {
      expect(toHex(huffman(s)), s).toBe(toHex(hex(coded)));
      const bytes = hex(`00 ${coded} 00`);
      expect(huffmanDecode(bytes, 1, bytes.length - 1)).toBe(s);
    }
  });

  it("round-trips any byte string", () => {
    fc.assert(fc.property(latin1, (s) => {
      const coded = huffman(s);
      expect(huffmanDecode(coded, 0, coded.length)).toBe(s);
    }));
    // Longer than what the decoder converts to a string in one piece.
    const long = String.fromCharCode(...Array.from({ length: 256 * 20 }, (_, i) => i % 256));
    const coded = huffman(long);
    expect(huffmanDecode(coded, 0, coded.length)).toBe(long);
  });

  it("rejects EOS, padding longer than 7 bits, and padding that is not all ones", () => {
    const decode = (h: string) => huffmanDecode(hex(h), 0, hex(h).length);
    expect(decode("")).toBe("");
    expect(decode("7f")).toBe("9"); // 011111 then two bits of padding
    expect(() => decode("ffff ffff")).toThrow(/contains EOS/);
    expect(() => decode("07ff ffff ff")).toThrow(/contains EOS/); // "0", EOS, 5 bits of padding
    expect(() => decode("ff")).toThrow(/longer than 7 bits/);
    expect(() => decode("07ff")).toThrow(/longer than 7 bits/); // "0" then 11 ones
    expect(() => decode("00")).toThrow(/not a prefix of EOS/); // "0" then 000
    expect(() => decode("fe")).toThrow(/not a prefix of EOS/);
    expect(() => decode("00")).toThrow(HpackError);
  });

  it("refuses characters above 0xff", () => {
    expect(() => huffmanEncodedLength("Ā")).toThrow(TypeError);
    expect(() => huffmanEncodedLength("€")).toThrow(TypeError);
  });
});

type Step = { block: string; headers: HeaderList; table: HeaderList; size: number };

function decodeSeries(decoder: HpackDecoder, steps: Step[]): void {
  for (const [i, step] of steps.entries()) {
    expect(decoder.decode(hex(step.block)), `block ${i}`).toEqual(step.headers);
    expect(decoder.dynamicTable, `table after block ${i}`).toEqual(step.table);
    expect(decoder.dynamicTableSize, `table size after block ${i}`).toBe(step.size);
  }
}

const REQUESTS: HeaderList[] = [
  [[":method", "GET"], [":scheme", "http"], [":path", "/"], [":authority", "www.example.com"]],
  [
    [":method", "GET"],
    [":scheme", "http"],
    [":path", "/"],
    [":authority", "www.example.com"],
    ["cache-control", "no-cache"],
  ],
  [
    [":method", "GET"],
    [":scheme", "https"],
    [":path", "/index.html"],
    [":authority", "www.example.com"],
    ["custom-key", "custom-value"],
  ],
];
const REQUEST_TABLES: HeaderList[] = [
  [[":authority", "www.example.com"]],
  [["cache-control", "no-cache"], [":authority", "www.example.com"]],
  [["custom-key", "custom-value"], ["cache-control", "no-cache"], [":authority", "www.example.com"]],
];
const REQUEST_SIZES = [57, 110, 164];

const COOKIE = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";
const RESPONSES: HeaderList[] = [
  [
    [":status", "302"],
    ["cache-control", "private"],
    ["date", "Mon, 21 Oct 2013 20:13:21 GMT"],
    ["location", "https://www.example.com"],
  ],
  [
    [":status", "307"],
    ["cache-control", "private"],
    ["date", "Mon, 21 Oct 2013 20:13:21 GMT"],
    ["location", "https://www.example.com"],
  ],
  [
    [":status", "200"],
    ["cache-control", "private"],
    ["date", "Mon, 21 Oct 2013 20:13:22 GMT"],
    ["location", "https://www.example.com"],
    ["content-encoding", "gzip"],
    ["set-cookie", COOKIE],
  ],
];
const RESPONSE_TABLES: HeaderList[] = [
  [
    ["location", "https://www.example.com"],
    ["date", "Mon, 21 Oct 2013 20:13:21 GMT"],
    ["cache-control", "private"],
    [":status", "302"],
  ],
  [
    [":status", "307"],
    ["location", "https://www.example.com"],
    ["date", "Mon, 21 Oct 2013 20:13:21 GMT"],
    ["cache-control", "private"],
  ],
  [["set-cookie", COOKIE], ["content-encoding", "gzip"], ["date", "Mon, 21 Oct 2013 20:13:22 GMT"]],
];
const RESPONSE_SIZES = [222, 222, 215];

function series(blocks: string[], headers: HeaderList[], tables: HeaderList[], sizes: number[]): Step[] {
  return blocks.map((block, i) => ({ block, headers: headers[i], table: tables[i], size: sizes[i] }));
}

describe("HpackDecoder: the examples of RFC 7541 Appendix C", () => {
  it("C.2.1 literal field with indexing", () => {
    decodeSeries(new HpackDecoder(), [{
      block: "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
      headers: [["custom-key", "custom-header"]],
      table: [["custom-key", "custom-header"]],
      size: 55,
    }]);
  });

  it("C.2.2 literal field without indexing", () => {
    decodeSeries(new HpackDecoder(), [{
      block: "040c 2f73 616d 706c 652f 7061 7468",
      headers: [[":path", "/sample/path"]],
      table: [],
      size: 0,
    }]);
  });

  it("C.2.3 literal field never indexed", () => {
    decodeSeries(new HpackDecoder(), [{
      block: "1008 7061 7373 776f 7264 0673 6563 7265 74",
      headers: [["password", "secret"]],
      table: [],
      size: 0,
    }]);
  });

  it("C.2.4 indexed field", () => {
    decodeSeries(new HpackDecoder(), [{ block: "82", headers: [[":method", "GET"]], table: [], size: 0 }]);
  });

  it("C.3 requests without Huffman coding", () => {
    decodeSeries(
      new HpackDecoder(),
      series(
        [
          "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
          "8286 84be 5808 6e6f 2d63 6163 6865",
          "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
        ],
        REQUESTS,
        REQUEST_TABLES,
        REQUEST_SIZES,
      ),
    );
  });

  it("C.4 requests with Huffman coding", () => {
    decodeSeries(
      new HpackDecoder(),
      series(
        [
          "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
          "8286 84be 5886 a8eb 1064 9cbf",
          "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
        ],
        REQUESTS,
        REQUEST_TABLES,
        REQUEST_SIZES,
      ),
    );
  });

  it("C.5 responses without Huffman coding, evicting from a 256-byte table", () => {
    decodeSeries(
      new HpackDecoder(256),
      series(
        [
          `4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
           2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
           6c65 2e63 6f6d`,
          "4803 3330 37c1 c0bf",
          `88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
           54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
           5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
           3d31`,
        ],
        RESPONSES,
        RESPONSE_TABLES,
        RESPONSE_SIZES,
      ),
    );
  });

  it("C.6 responses with Huffman coding, evicting from a 256-byte table", () => {
    decodeSeries(
      new HpackDecoder(256),
      series(
        [
          `4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
           2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3`,
          "4883 640e ffc1 c0bf",
          `88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
           77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
           9587 3160 65c0 03ed 4ee5 b106 3d50 07`,
        ],
        RESPONSES,
        RESPONSE_TABLES,
        RESPONSE_SIZES,
      ),
    );
  });
});

describe("HpackDecoder", () => {
  const fails = (block: string | number[], message: RegExp, decoder = new HpackDecoder()) => {
    const bytes = typeof block === "string" ? hex(block) : Uint8Array.from(block);
    expect(() => decoder.decode(bytes)).toThrow(HpackError);
    expect(() => decoder.decode(bytes)).toThrow(message);
  };

  it("decodes an empty block to no fields", () => {
    expect(new HpackDecoder().decode(new Uint8Array(0))).toEqual([]);
  });

  it("rejects index 0 and indexes past the table", () => {
    fails("80", /index 0/);
    fails("bf", /index 63 is past the end of the table \(61\)/);
    fails("7e 00", /index 62 is past the end/); // a literal's name
    const decoder = new HpackDecoder();
    decoder.decode(Uint8Array.from([0x40, ...literal("a"), ...literal("b")]));
    expect(decoder.decode(hex("be"))).toEqual([["a", "b"]]);
    fails("bf", /index 63 is past the end of the table \(62\)/, decoder);
  });

  it("rejects a block that ends inside an integer or a string", () => {
    fails("ff", /ends inside an integer/);
    fails("ff 80 80", /ends inside an integer/);
    fails("40", /ends before a string/);
    fails("04", /ends before a string/);
    fails("40 05 6162", /ends inside a string/);
    fails("04 85 6402", /ends inside a string/);
    fails("40 7f", /ends inside an integer/);
  });

  it("rejects integers above 2^31 - 1 and integers of more than 5 continuation bytes", () => {
    // A string 2^31 - 1 bytes long passes the integer check and fails only for want of bytes.
    fails([0x04, ...integer(0, 7, 2 ** 31 - 1)], /ends inside a string/);
    fails([0x04, ...integer(0, 7, 2 ** 31)], /exceeds 2\^31 - 1/);
    fails("04 7f ff ff ff ff 0f", /exceeds 2\^31 - 1/);
    fails("ff 80 80 80 80 80 00", /more than 5 continuation bytes/);
  });

  it("rejects bad Huffman padding and EOS inside a string", () => {
    fails("04 81 00", /Huffman padding is not a prefix of EOS/);
    fails("04 81 ff", /Huffman padding is longer than 7 bits/);
    fails("04 84 ffff ffff", /contains EOS/);
  });

  it("takes table size updates at the start of a block only, up to the advertised limit", () => {
    const decoder = new HpackDecoder();
    decoder.decode(Uint8Array.from([0x40, ...literal("a"), ...literal("b")]));
    fails("82 20", /size update after the first field/, decoder);
    fails("3f e2 1f", /size update to 4097 exceeds the limit 4096/, decoder);
    expect(decoder.decode(hex("3f e1 1f 82"))).toEqual([[":method", "GET"]]); // 4096
    expect(decoder.dynamicTable).toEqual([["a", "b"]]);
    expect(decoder.decode(hex("20 3f 11"))).toEqual([]); // 0 empties the table; then 48
    expect(decoder.dynamicTable).toEqual([]);
    decoder.decode(Uint8Array.from([0x40, ...literal("a"), ...literal("b")]));
    expect(decoder.dynamicTable).toEqual([["a", "b"]]);
    // Non-minimal integers are fine within 5 continuation bytes.
    expect(decoder.decode(hex("3f 80 80 80 80 00 82"))).toEqual([[":method", "GET"]]); // 31
    expect(decoder.dynamicTable).toEqual([]);
    fails("3f 80 80 80 80 80 00", /more than 5 continuation bytes/, decoder);
  });

  it("after the limit drops below the table size, demands a size update within it first", () => {
    const decoder = new HpackDecoder();
    decoder.decode(Uint8Array.from([0x40, ...literal("a"), ...literal("b")]));
    decoder.maxTableSize = 100;
    expect(decoder.maxTableSize).toBe(100);
    fails("82", /expected a dynamic table size update to at most 100/, decoder);
    fails("3f 46 82", /exceeds the limit 100/, decoder); // 101
    expect(decoder.decode(hex("3f 45 82"))).toEqual([[":method", "GET"]]); // 100
    expect(decoder.dynamicTable).toEqual([["a", "b"]]);
    expect(decoder.decode(hex("82"))).toEqual([[":method", "GET"]]);

    // Lowered twice before the next block: the smaller must be signalled, then the final one.
    decoder.maxTableSize = 30;
    decoder.maxTableSize = 90;
    fails("3f 3b 82", /expected a dynamic table size update to at most 30/, decoder); // 90
    expect(decoder.decode(hex("3e 3f 3b 82"))).toEqual([[":method", "GET"]]); // 30, 90
    expect(decoder.dynamicTable).toEqual([]);
    // Raising the limit demands nothing.
    decoder.maxTableSize = 8192;
    expect(decoder.decode(hex("82"))).toEqual([[":method", "GET"]]);
  });

  it("decodes strings longer than fromCharCode takes at once", () => {
    const decoder = new HpackDecoder(4096, { maxHeaderListSize: Infinity });
    const raw = "\xe9".repeat(300_000);
    expect(decoder.decode(Uint8Array.from([0x00, ...literal("a"), ...literal(raw)]))).toEqual([["a", raw]]);
    const coded = huffman("0".repeat(300_000));
    const block = Uint8Array.from([0x00, ...literal("a"), ...integer(0x80, 7, coded.length), ...coded]);
    expect(decoder.decode(block)).toEqual([["a", "0".repeat(300_000)]]);
  });

  it("limits the decoded header list size", () => {
    const block = (valueLength: number) =>
      Uint8Array.from([0x00, ...literal("a"), ...literal("x".repeat(valueLength))]);
    const decoder = new HpackDecoder(4096, { maxHeaderListSize: 100 });
    expect(decoder.decode(block(67))).toEqual([["a", "x".repeat(67)]]); // 1 + 67 + 32 = 100
    expect(() => decoder.decode(block(68))).toThrow(
      new HpackError("header list is larger than the limit of 100 bytes"),
    );
    // Indexed fields count too: :method GET is 7 + 3 + 32 = 42 bytes.
    expect(decoder.decode(hex("8282"))).toHaveLength(2);
    expect(() => decoder.decode(hex("828282"))).toThrow(/larger than the limit of 100 bytes/);
    const big = new HpackDecoder();
    const huge = Uint8Array.from([0x00, ...literal("a"), ...literal("x".repeat(64 * 1024))]);
    expect(() => big.decode(huge)).toThrow(/larger than the limit of 65536 bytes/);
  });

  it("keeps its dynamic table in step with a model through insertions, evictions and resizes", () => {
    const entrySize = ([name, value]: [string, string]) => name.length + value.length + 32;
    const insert = fc.tuple(latin1Up(40), latin1Up(120));
    const resize = fc.integer({ min: 0, max: 2000 });
    const property = fc.property(fc.array(fc.oneof(insert, resize), { maxLength: 200 }), (ops) => {
      const decoder = new HpackDecoder(2000);
      let capacity = 2000;
      // Newest first, as the decoder reports it.
      const model: HeaderList = [];
      const evict = () => {
        let size = model.reduce((n, e) => n + entrySize(e), 0);
        while (size > capacity) size -= entrySize(model.pop()!);
      };
      for (const op of ops) {
        if (typeof op === "number") {
          expect(decoder.decode(Uint8Array.from(integer(0x20, 5, op)))).toEqual([]);
          capacity = op;
          evict();
        } else {
          // An entry larger than the table empties it and is not added: evict() pops it too.
          model.unshift(op);
          evict();
          // The new entry, then every dynamic entry by index.
          const block = [0x40, ...literal(op[0]), ...literal(op[1])];
          model.forEach((_, i) => block.push(...integer(0x80, 7, 62 + i)));
          expect(decoder.decode(Uint8Array.from(block))).toEqual([op, ...model]);
        }
        expect(decoder.dynamicTable).toEqual(model);
        expect(decoder.dynamicTableSize).toBe(model.reduce((n, e) => n + entrySize(e), 0));
      }
    });
    // Among them, one that fills the table with 60 small entries, all different.
    const small = Array.from({ length: 70 }, (_, i): [string, string] => [String.fromCharCode(i), ""]);
    fc.assert(property, { examples: [[small]] });
  });
});

describe("HpackEncoder", () => {
  it("empties the peer's dynamic table with its first block and never uses it", () => {
    const encoder = new HpackEncoder();
    expect(toHex(encoder.encode([[":method", "GET"]]))).toBe("2082");
    expect(toHex(encoder.encode([[":method", "GET"]]))).toBe("82");
    expect(toHex(encoder.encode([]))).toBe("");
  });

  it("sends static table entries as their index, static names with a literal value", () => {
    const encoder = new HpackEncoder();
    encoder.encode([]);
    expect(toHex(encoder.encode([[":method", "POST"], [":scheme", "https"], [":status", "500"]]))).toBe(
      "83878e",
    );
    // :path is index 4; "/a" Huffman-coded takes 11 bits, 2 bytes, which is not shorter.
    expect(toHex(encoder.encode([[":path", "/a"]]))).toBe("04022f61");
    // www.example.com: Huffman (12 bytes) is shorter than raw (15).
    expect(toHex(encoder.encode([[":authority", "www.example.com"]]))).toBe(
      "018c" + toHex(hex("f1e3 c2e5 f23a 6ba0 ab90 f4ff")),
    );
    // An unknown name: a literal name too ("te" raw; "trailers" in 6 bytes of Huffman).
    expect(toHex(encoder.encode([["te", "trailers"]]))).toBe("00027465" + "86" + toHex(huffman("trailers")));
    // A name that appears more than once goes by its first index.
    expect(toHex(encoder.encode([[":status", "201"]]))).toBe("0882" + toHex(huffman("201")));
    // A length of 127 or more takes continuation bytes.
    const value = "\xff".repeat(200);
    expect(toHex(encoder.encode([["x", value]]))).toBe(
      "000178" + "7f49" + toHex(Uint8Array.from(value, (c) => c.charCodeAt(0))),
    );
  });

  it("encodes any header list so that it decodes back identically", () => {
    const names = fc.oneof(latin1, fc.constantFrom(...STATIC_TABLE.map(([name]) => name)));
    const values = fc.oneof(latin1, fc.constantFrom(...STATIC_TABLE.map(([, value]) => value)));
    const encoder = new HpackEncoder();
    const decoder = new HpackDecoder(4096, { maxHeaderListSize: Infinity });
    fc.assert(fc.property(fc.array(fc.tuple(names, values), { maxLength: 20 }), (headers) => {
      expect(decoder.decode(encoder.encode(headers))).toEqual(headers);
      expect(decoder.dynamicTableSize).toBe(0);
    }));
  });

  it("refuses strings that are not latin1", () => {
    const encoder = new HpackEncoder();
    expect(() => encoder.encode([["x-name", "caf\u00e9 \u20ac"]])).toThrow(TypeError);
    expect(() => encoder.encode([["\u0100", ""]])).toThrow(TypeError);
    // A block that failed was never sent: the next one still carries the table size update.
    expect(toHex(encoder.encode([[":method", "GET"]]))).toBe("2082");
  });
});

/** HEADERS blocks (joined with their CONTINUATIONs) found in a byte stream of HTTP/2 frames. */
class HeaderBlocks {
  #buf = new Uint8Array(0);
  #pending: Uint8Array[] = [];
  blocks: Uint8Array[] = [];

  constructor(private skip: number) {}

  push(data: Uint8Array): void {
    const buf = new Uint8Array(this.#buf.length + data.length);
    buf.set(this.#buf);
    buf.set(data, this.#buf.length);
    let p = Math.min(this.skip, buf.length);
    this.skip -= p;
    while (p + 9 <= buf.length) {
      const length = (buf[p] << 16) | (buf[p + 1] << 8) | buf[p + 2];
      if (p + 9 + length > buf.length) break;
      const type = buf[p + 3], flags = buf[p + 4];
      let payload = buf.subarray(p + 9, p + 9 + length);
      p += 9 + length;
      if (type !== 0x1 && type !== 0x9) continue;
      if (type === 0x1) {
        const padding = flags & 0x8 ? payload[0] : 0;
        payload = payload.subarray(flags & 0x8 ? 1 : 0, payload.length - padding);
        if (flags & 0x20) payload = payload.subarray(5);
      }
      this.#pending.push(payload);
      if (flags & 0x4) {
        const block = new Uint8Array(this.#pending.reduce((n, b) => n + b.length, 0));
        let o = 0;
        for (const part of this.#pending) {
          block.set(part, o);
          o += part.length;
        }
        this.blocks.push(block);
        this.#pending = [];
      }
    }
    this.#buf = buf.slice(p);
  }
}

function frame(type: number, flags: number, streamId: number, payload: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(9 + payload.length);
  bytes.set([payload.length >> 16, payload.length >> 8, payload.length, type, flags]);
  new DataView(bytes.buffer).setUint32(5, streamId);
  bytes.set(payload, 9);
  return bytes;
}

const PREFACE = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
const SETTINGS = frame(0x4, 0, 0, new Uint8Array(0));

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; !condition(); i++) {
    if (i > 500) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 10));
  }
}

// node:http2 has its own HPACK (it indexes, and codes with Huffman); each side of the connection is
// checked against it.
describe("HPACK interoperability with node:http2", () => {
  it("decodes the header blocks node:http2 sends", async () => {
    const received = new HeaderBlocks(PREFACE.length);
    const server = net.createServer((socket) => {
      socket.write(SETTINGS);
      socket.on("data", (data: Uint8Array) => received.push(new Uint8Array(data)));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as net.AddressInfo;
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", () => {});
    const requests: HeaderList[] = [
      [
        [":method", "POST"],
        [":path", "/astra.Echo/Say"],
        ["content-type", "application/grpc"],
        [
          "te",
          "trailers",
        ],
        ["grpc-timeout", "10S"],
        ["x-request-id", "abc-123"],
      ],
      [[":method", "POST"], [":path", "/astra.Echo/Say"], ["content-type", "application/grpc"], [
        "te",
        "trailers",
      ], ["x-request-id", "abc-124"]],
      [[":method", "GET"], [":path", "/"], ["x-latin1", "caf\xe9 \xa0\xff"], ["x-request-id", "abc-124"]],
    ];
    try {
      for (const [i, headers] of requests.entries()) {
        const stream = session.request(Object.fromEntries(headers), { endStream: true });
        stream.on("error", () => {});
        await until(() => received.blocks.length > i);
      }
      const decoder = new HpackDecoder();
      for (const [i, block] of received.blocks.entries()) {
        const decoded = decoder.decode(block);
        for (const field of requests[i]) expect(decoded).toContainEqual(field);
        expect(decoded).toContainEqual([":authority", `127.0.0.1:${port}`]);
      }
      // It used the dynamic table, or this would prove less.
      expect(decoder.dynamicTableSize).toBeGreaterThan(0);
    } finally {
      session.destroy();
      server.close();
    }
  });

  it("sends header blocks node:http2 decodes, and decodes its responses", async () => {
    const seen: HeaderList[] = [];
    const server = http2.createServer();
    server.on("stream", (stream: http2.ServerHttp2Stream, _h: unknown, _f: unknown, raw: string[]) => {
      seen.push(raw.flatMap((s, i) => i % 2 ? [] : [[s, raw[i + 1]] as [string, string]]));
      stream.respond({ ":status": 200, "content-type": "application/grpc", "x-reply": "one two three" });
      stream.end();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as net.AddressInfo;
    const socket = net.connect(port, "127.0.0.1");
    const responses = new HeaderBlocks(0);
    socket.on("data", (data: Uint8Array) => responses.push(new Uint8Array(data)));
    await new Promise((resolve) => socket.on("connect", resolve));
    const requests: HeaderList[] = [
      [
        [":method", "POST"],
        [":scheme", "http"],
        [":path", "/astra.Echo/Say"],
        [":authority", `127.0.0.1:${port}`],
        ["content-type", "application/grpc"],
        ["te", "trailers"],
        ["grpc-timeout", "10S"],
      ],
      [
        [":method", "GET"],
        [":scheme", "https"],
        [":path", "/index.html"],
        [":authority", "x".repeat(300)],
        ["accept-encoding", "gzip, deflate"],
        ["x-latin1", "caf\xe9 \xa0\xff"],
        ["x-empty", ""],
      ],
    ];
    try {
      const encoder = new HpackEncoder();
      socket.write(PREFACE);
      socket.write(SETTINGS);
      for (const [i, headers] of requests.entries()) {
        socket.write(frame(0x1, 0x4 | 0x1, 1 + 2 * i, encoder.encode(headers)));
      }
      await until(() => seen.length === requests.length && responses.blocks.length === requests.length);
      expect(seen).toEqual(requests);
      const decoder = new HpackDecoder();
      for (const block of responses.blocks) {
        const decoded = decoder.decode(block);
        expect(decoded.slice(0, 1)).toEqual([[":status", "200"]]);
        expect(decoded).toContainEqual(["content-type", "application/grpc"]);
        expect(decoded).toContainEqual(["x-reply", "one two three"]);
      }
    } finally {
      socket.destroy();
      server.close();
    }
  });
});

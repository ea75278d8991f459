// The LFSX value limit against the message limit of the transports: every message that carries a
// value fits with the largest key and value, a value of the largest size is put, committed, read,
// scanned and read at its version over both transports, and one byte more is refused with
// INVALID_ARGUMENT/E2BIG naming the field.
import { create, type DescMessage, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import {
  GetResponseSchema,
  GetVersionResponseSchema,
  LfsxService,
  PutRequestSchema,
  ScanResponseSchema,
} from "../../../gen/astra/storage/v1/lfsx_pb.ts";
import { DEFAULT_MAX_MESSAGE_BYTES } from "../../../lib/config.ts";
import { Code, Errno } from "../../../lib/errors.ts";
import { client } from "../../../lib/rpc.ts";
import { MAX_KEY_LENGTH } from "../../../services/storage/lfsx/node.ts";
import { MAX_VALUE_LENGTH } from "../../../services/storage/lfsx/overflow.ts";
import { bytes, failure, SuiteSystem } from "./helpers.ts";

const U64_MAX = 2n ** 64n - 1n;

/** A value whose every position differs from its neighbours, so a misplaced byte shows. */
function valueOf(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + (i >>> 12) * 7 + seed) & 0xff;
  return out;
}

function encodedSize<D extends DescMessage>(schema: D, init: MessageInitShape<D>): number {
  return toBinary(schema, create(schema, init)).length;
}

function sameBytes(actual: Uint8Array, expected: Uint8Array): boolean {
  if (actual.length !== expected.length) return false;
  for (let i = 0; i < actual.length; i++) if (actual[i] !== expected[i]) return false;
  return true;
}

describe("the LFSX value limit", () => {
  it("leaves room in every message that carries a value for the largest key beside it", () => {
    expect(MAX_VALUE_LENGTH).toBe(16 * 1024 * 1024 - 4096);
    const key = new Uint8Array(MAX_KEY_LENGTH).fill(0xff);
    const value = new Uint8Array(MAX_VALUE_LENGTH);
    const sizes = [
      encodedSize(PutRequestSchema, { transactionId: U64_MAX, key, value }),
      encodedSize(GetResponseSchema, { found: true, value }),
      encodedSize(ScanResponseSchema, { entries: [{ key, value }], continuation: key }),
      encodedSize(GetVersionResponseSchema, { found: true, value, version: U64_MAX, readAt: U64_MAX }),
    ];
    for (const size of sizes) expect(size).toBeLessThanOrEqual(DEFAULT_MAX_MESSAGE_BYTES);
    // The envelope is not needlessly large either: the largest is a one-entry Scan page.
    expect(Math.max(...sizes) - MAX_VALUE_LENGTH).toBeGreaterThan(2048);
  });

  const suite = new SuiteSystem("astra-lfsx-limits-");

  for (const [kind, transport] of suite.transports) {
    it(`puts and reads a value of the largest size over ${kind}, and refuses one byte more`, async () => {
      const lfsx = client(LfsxService, transport());
      const key = new Uint8Array(MAX_KEY_LENGTH).fill(kind.length);
      const value = valueOf(MAX_VALUE_LENGTH, kind.length);
      const writer = await lfsx.begin({ volume: "root" });
      await lfsx.put({ transactionId: writer.transactionId, key, value });
      const tooLarge = await failure(
        lfsx.put({
          transactionId: writer.transactionId,
          key: bytes("next"),
          value: new Uint8Array(MAX_VALUE_LENGTH + 1),
        }),
        Code.INVALID_ARGUMENT,
        Errno.E2BIG,
      );
      expect(tooLarge.detail.argument).toBe("value");
      expect(tooLarge.message).toContain(`exceeds the ${MAX_VALUE_LENGTH}-byte limit`);
      await failure(
        lfsx.put({
          transactionId: writer.transactionId,
          key: new Uint8Array(MAX_KEY_LENGTH + 1),
          value: bytes("v"),
        }),
        Code.INVALID_ARGUMENT,
        Errno.EINVAL,
      );
      // The refusals left the transaction as it was.
      const { version } = await lfsx.commit({ transactionId: writer.transactionId });

      const read = await lfsx.get({ scope: { case: "volume", value: "root" }, key });
      expect(read.found).toBe(true);
      expect(sameBytes(read.value, value), "the value read back differs").toBe(true);
      const page = await lfsx.scan({ scope: { case: "volume", value: "root" }, start: key, limit: 1 });
      expect(page.entries.length).toBe(1);
      expect(sameBytes(page.entries[0].key, key)).toBe(true);
      expect(sameBytes(page.entries[0].value, value), "the value scanned differs").toBe(true);
      const reader = await lfsx.begin({ volume: "root" });
      const atVersion = await lfsx.getVersion({ transactionId: reader.transactionId, key });
      expect(atVersion.readAt).toBeGreaterThanOrEqual(version);
      expect(sameBytes(atVersion.value, value), "the value at its version differs").toBe(true);
      await lfsx.commit({ transactionId: reader.transactionId });
    }, 60_000);
  }
});

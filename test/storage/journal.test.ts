import { describe, expect, it } from "vitest";
import { Code } from "../../lib/errors.ts";
import { MemoryBlockDevice } from "../../services/storage/lfsx/blockdev.ts";
import {
  Journal,
  JOURNAL_PAYLOAD_PER_BLOCK,
  RECORD_HEADER_SIZE,
} from "../../services/storage/lfsx/journal.ts";

const REGION_START = 2;
const REGION_BLOCKS = 64;
const first = { salt: 0x1234abcd, start: 0 };

const payload = (text: string) => new TextEncoder().encode(text);
const texts = (list: Uint8Array[]) => list.map((p) => new TextDecoder().decode(p));

function journalOn(device: MemoryBlockDevice, generation = first): Journal {
  return new Journal(device, REGION_START, REGION_BLOCKS, generation, 1);
}

function recover(device: MemoryBlockDevice, generation = first) {
  return Journal.recover(device, REGION_START, REGION_BLOCKS, generation, 1);
}

describe("journal", () => {
  it("recovers exactly the committed transactions, in commit order", async () => {
    const device = new MemoryBlockDevice(128);
    const journal = journalOn(device);
    journal.begin(1);
    journal.begin(2);
    journal.begin(3);
    journal.update(1, payload("one-a"));
    journal.update(2, payload("two-a"));
    journal.update(3, payload("three-a"));
    journal.update(1, payload("one-b"));
    journal.abort(3);
    await journal.commit(2, payload("c2"));
    journal.begin(4);
    journal.update(4, payload("four"));
    await journal.commit(1, payload("c1"));
    // Transaction 4 never commits: its records are on disk with transaction 1's group.
    const recovered = await recover(device);
    expect(recovered.transactions.map((t) => t.txid)).toEqual([2, 1]);
    expect(texts(recovered.transactions[0].updates)).toEqual(["two-a"]);
    expect(texts(recovered.transactions[1].updates)).toEqual(["one-a", "one-b"]);
    expect(texts([recovered.transactions[1].commitPayload])).toEqual(["c1"]);
    expect(recovered.discardedTransactions).toBe(2);
    expect(recovered.tail).toBeUndefined();
    expect(recovered.highestTransaction).toBe(4);
    expect(recovered.nextSequence).toBe(journal.nextSequence);
    const stats = journal.statistics();
    expect(stats.commits).toBe(2);
    expect(stats.aborts).toBe(1);
    expect(stats.groups).toBe(2);
  });

  it("carries records larger than a block and flushes before acknowledging", async () => {
    const device = new MemoryBlockDevice(128);
    const journal = journalOn(device);
    const big = Uint8Array.from({ length: 3 * JOURNAL_PAYLOAD_PER_BLOCK + 100 }, (_, i) => i % 256);
    await journal.appendTransaction(7, [big, payload("small")], payload("done"));
    // Everything acknowledged survives a power cut that keeps none of the unflushed writes.
    const crashed = new MemoryBlockDevice(128, { image: device.crashImage({ count: 0 }) });
    const recovered = await recover(crashed);
    expect(recovered.transactions).toHaveLength(1);
    expect(recovered.transactions[0].updates[0]).toEqual(big);
    // begin, two updates and a commit: four record headers plus the payloads, packed into blocks.
    const logged = 4 * RECORD_HEADER_SIZE + big.length + "small".length + "done".length;
    expect(journal.statistics().blocksWritten).toBe(Math.ceil(logged / JOURNAL_PAYLOAD_PER_BLOCK));
  });

  it("discards a torn last group and keeps everything acknowledged before it", async () => {
    for (let trial = 0; trial < 40; trial++) {
      const device = new MemoryBlockDevice(128);
      const journal = journalOn(device);
      await journal.appendTransaction(1, [payload("kept")], payload("v1"));
      let image: Map<number, Uint8Array> | undefined;
      device.onFlush = (d) => {
        image ??= d.crashImage({ order: trial % 2 ? "subset" : "prefix", tear: true });
      };
      await journal.appendTransaction(
        2,
        [new Uint8Array(2 * JOURNAL_PAYLOAD_PER_BLOCK).fill(trial)],
        payload("v2"),
      );
      const recovered = await recover(new MemoryBlockDevice(128, { image }));
      const ids = recovered.transactions.map((t) => t.txid);
      // The unacknowledged transaction is either complete or absent, never partial.
      expect(ids[0]).toBe(1);
      expect(
        ids.length === 1 ||
          (ids.length === 2 && recovered.transactions[1].updates[0].length === 2 * JOURNAL_PAYLOAD_PER_BLOCK),
      )
        .toBe(true);
    }
  });

  it("stops at the stale tail of an earlier generation without replaying it", async () => {
    const device = new MemoryBlockDevice(128);
    const old = journalOn(device);
    for (let i = 1; i <= 5; i++) await old.appendTransaction(i, [payload(`old ${i}`)], payload("c"));
    const next = { salt: 0x0badf00d, start: REGION_BLOCKS };
    old.startGeneration(next, payload("checkpoint 2"));
    await old.appendTransaction(6, [payload("new")], payload("c"));
    const recovered = await recover(device, next);
    expect(recovered.transactions.map((t) => t.txid)).toEqual([6]);
    expect(texts([recovered.checkpointPayload!])).toEqual(["checkpoint 2"]);
    expect(recovered.tail).toBeUndefined();
    // Read as the old generation, the log has lost its first block while later groups of that
    // generation survive: that is lost acknowledged data, not an empty log.
    await expect(recover(device, first)).rejects.toMatchObject({ code: Code.DATA_LOSS });
  });

  it("refuses with DATA_LOSS when an acknowledged group is damaged and later groups exist", async () => {
    const device = new MemoryBlockDevice(128);
    const journal = journalOn(device);
    for (let i = 1; i <= 4; i++) await journal.appendTransaction(i, [payload(`value ${i}`)], payload("c"));
    // Group 2 sits in the region's second block; flip a bit in its record.
    device.corrupt(REGION_START + 1, 60, 0x04);
    const failure = recover(device);
    await expect(failure).rejects.toMatchObject({ code: Code.DATA_LOSS });
    await expect(failure).rejects.toThrow(`corrupt block ${REGION_START + 1}`);
  });

  it("treats damage to the last group as a torn tail", async () => {
    const device = new MemoryBlockDevice(128);
    const journal = journalOn(device);
    for (let i = 1; i <= 3; i++) await journal.appendTransaction(i, [payload(`value ${i}`)], payload("c"));
    device.corrupt(REGION_START + 2, 60, 0x04);
    const recovered = await recover(device);
    expect(recovered.transactions.map((t) => t.txid)).toEqual([1, 2]);
    expect(recovered.tail).toContain("record checksum mismatch");
  });

  it("groups commits that arrive while a flush is in progress", async () => {
    const device = new MemoryBlockDevice(128, { flushDelayMs: 5 });
    const journal = journalOn(device);
    const commits = Array.from(
      { length: 20 },
      (_, i) => journal.appendTransaction(i + 1, [payload(`v${i}`)], payload("c")),
    );
    await Promise.all(commits);
    const stats = journal.statistics();
    expect(stats.commits).toBe(20);
    expect(stats.groups).toBeLessThan(5);
    expect(stats.largestGroup).toBeGreaterThanOrEqual(10);
    expect(stats.groupSizeHistogram.reduce((a, b) => a + b, 0)).toBe(stats.groups);
    expect(device.stats.flushes).toBe(stats.groups);
    expect((await recover(device)).transactions).toHaveLength(20);
  });

  it("knows when it is full, refuses to overflow and to rotate with open transactions", async () => {
    const device = new MemoryBlockDevice(128);
    const journal = journalOn(device);
    expect(journal.hasRoom(REGION_BLOCKS * JOURNAL_PAYLOAD_PER_BLOCK)).toBe(true);
    expect(journal.hasRoom(REGION_BLOCKS * JOURNAL_PAYLOAD_PER_BLOCK + 1)).toBe(false);
    await journal.appendTransaction(1, [new Uint8Array(60 * JOURNAL_PAYLOAD_PER_BLOCK)], payload("c"));
    expect(journal.hasRoom(4 * JOURNAL_PAYLOAD_PER_BLOCK)).toBe(false);
    await expect(journal.appendTransaction(2, [new Uint8Array(5 * JOURNAL_PAYLOAD_PER_BLOCK)], payload("c")))
      .rejects.toMatchObject({ code: Code.RESOURCE_EXHAUSTED });
    const fresh = journalOn(new MemoryBlockDevice(128));
    fresh.begin(9);
    expect(() => fresh.startGeneration({ salt: 1, start: REGION_BLOCKS }, payload(""))).toThrow(/open/);
  });
});

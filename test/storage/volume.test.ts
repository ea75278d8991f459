import { describe, expect, it } from "vitest";
import { Code, Errno } from "../../lib/errors.ts";
import { FileBlockDevice, MemoryBlockDevice } from "../../services/storage/lfsx/blockdev.ts";
import { IsolationLevel } from "../../services/storage/lfsx/txn.ts";
import { Volume } from "../../services/storage/lfsx/volume.ts";
import { bytes, commitAll, dump, formattedVolume, text } from "./helpers.ts";

describe("volume", () => {
  it("keeps committed data across unmount and remount of an image file", async () => {
    const imagePath = Deno.makeTempFileSync({ suffix: ".img" });
    try {
      await persistsOnImage(imagePath);
    } finally {
      Deno.removeSync(imagePath);
    }
  });

  async function persistsOnImage(imagePath: string) {
    const device = await FileBlockDevice.create(imagePath, 4096);
    const format = await Volume.format(device, { label: "root" });
    expect(format.journalBlocks).toBe(512);
    let volume = await Volume.mount(device);
    for (let i = 0; i < 20; i++) {
      await commitAll(volume, Array.from({ length: 50 }, (_, j) => [`key${i * 50 + j}`, `value ${i}.${j}`]));
    }
    await commitAll(volume, [["key7", null]]);
    const generation = volume.statistics().generation;
    await volume.unmount();
    await device.close();

    const reopened = await FileBlockDevice.open(imagePath);
    expect((await Volume.check(reopened)).problems).toEqual([]);
    volume = await Volume.mount(reopened);
    const stats = volume.statistics();
    expect(stats.label).toBe("root");
    expect(stats.uuid).toBe(format.uuid);
    expect(stats.generation).toBeGreaterThan(generation);
    expect(stats.tree.entries).toBe(999);
    expect(stats.recovery.recoveredTransactions).toBe(0);
    expect(text(await volume.read(bytes("key500")))).toBe("value 10.0");
    expect(await volume.read(bytes("key7"))).toBeUndefined();
    expect((await dump(volume)).size).toBe(999);
    await volume.unmount();
    await reopened.close();
  }

  it("recovers acknowledged commits from the journal after a power cut", async () => {
    const { device, volume } = await formattedVolume(2048);
    const big = "B".repeat(30_000);
    await commitAll(volume, [["small", "s"], ["big", big]]);
    await commitAll(volume, [["small", "s2"]]);
    device.powerCut({ count: 0 });
    const recovered = await Volume.mount(device);
    expect(recovered.mountReport.recoveredTransactions).toBe(2);
    expect(recovered.mountReport.replayedUpdates).toBe(3);
    expect(Object.fromEntries(await dump(recovered))).toEqual({ small: "s2", big });
    expect((await recovered.fsck()).problems).toEqual([]);
    await recovered.unmount();
  });

  it("checkpoints by itself when the journal fills and keeps every commit", async () => {
    const { device, volume } = await formattedVolume(2048, { journalBlocks: 16 });
    for (let i = 0; i < 60; i++) await commitAll(volume, [[`k${i}`, "v".repeat(2000)]]);
    const stats = volume.statistics();
    expect(stats.checkpoints.count).toBeGreaterThan(2);
    expect(stats.journal.usedBlocks).toBeLessThanOrEqual(16);
    expect(stats.journal.commits).toBeGreaterThan(0);
    device.powerCut({ count: 0 });
    const recovered = await Volume.mount(device);
    expect((await dump(recovered)).size).toBe(60);
    await recovered.unmount();
  });

  it("mounts read-only without writing and refuses writes", async () => {
    const { device, volume } = await formattedVolume(1024);
    await commitAll(volume, [["a", "1"]]);
    device.powerCut({ count: 0 });
    const before = device.durableImage();
    const readOnly = await Volume.mount(device, { readOnly: true });
    expect(readOnly.mountReport.recoveredTransactions).toBe(1);
    expect(text(await readOnly.read(bytes("a")))).toBe("1");
    const t = readOnly.begin().id;
    await expect(readOnly.put(t, bytes("b"), bytes("2"))).rejects.toMatchObject({ errno: Errno.EROFS });
    await expect(readOnly.checkpoint()).rejects.toMatchObject({ errno: Errno.EROFS });
    await readOnly.unmount();
    expect(device.pendingWrites).toBe(0);
    expect(device.durableImage()).toEqual(before);
  });

  it("refuses a commit that does not fit with ENOSPC and stays usable", async () => {
    const { volume } = await formattedVolume(400, { journalBlocks: 64 });
    let committed = 0;
    let refusal: unknown;
    for (let i = 0; i < 200 && !refusal; i++) {
      try {
        await commitAll(volume, [[`fill${i}`, "x".repeat(20_000)]]);
        committed++;
      } catch (err) {
        refusal = err;
      }
    }
    expect(refusal).toMatchObject({ code: Code.RESOURCE_EXHAUSTED, errno: Errno.ENOSPC });
    expect(committed).toBeGreaterThan(5);
    await commitAll(volume, [["fill0", null], ["fill1", null], ["fill2", null]]);
    await volume.checkpoint();
    await commitAll(volume, [["after", "ok"]]);
    expect(text(await volume.read(bytes("after")))).toBe("ok");
    expect((await volume.fsck()).problems).toEqual([]);
    // A transaction bigger than the whole journal is refused the same way.
    const t = volume.begin().id;
    for (let i = 0; i < 20; i++) await volume.put(t, bytes(`big${i}`), new Uint8Array(16_000));
    await expect(volume.commit(t)).rejects.toMatchObject({ errno: Errno.ENOSPC });
  });

  it("keeps old versions exactly as long as a snapshot needs them", async () => {
    const { volume } = await formattedVolume(1024);
    await commitAll(volume, [["k", "v0"]]);
    const reader = volume.begin({ isolation: IsolationLevel.RepeatableRead }).id;
    expect(text(await volume.get(reader, bytes("k")))).toBe("v0");
    const versions: number[] = [];
    for (let i = 1; i <= 5; i++) versions.push(await commitAll(volume, [["k", `v${i}`]]));
    expect(volume.statistics().transactions.versions.chains).toBe(1);
    expect(volume.statistics().transactions.versions.versions).toBe(6);
    expect(text(await volume.get(reader, bytes("k")))).toBe("v0");
    const atSnapshot = await volume.getVersion(reader, bytes("k"));
    expect(text(atSnapshot.value)).toBe("v0");
    await expect(volume.getVersion(reader, bytes("k"), versions[2])).rejects.toMatchObject({
      code: Code.INVALID_ARGUMENT,
    });
    await volume.commit(reader);
    const stats = volume.statistics().transactions.versions;
    expect(stats.chains).toBe(0);
    expect(stats.versionsCollected).toBe(6);
  });

  it("reads a retained older version and refuses one that was collected", async () => {
    const { volume } = await formattedVolume(1024);
    const v1 = await commitAll(volume, [["k", "one"]]);
    const old = volume.begin({ isolation: IsolationLevel.RepeatableRead }).id;
    expect(text(await volume.get(old, bytes("k")))).toBe("one");
    const v2 = await commitAll(volume, [["k", "two"]]);
    const recent = volume.begin({ isolation: IsolationLevel.RepeatableRead }).id;
    expect(text(await volume.get(recent, bytes("k")))).toBe("two");
    const back = await volume.getVersion(recent, bytes("k"), v1);
    expect([text(back.value), back.readAt]).toEqual(["one", v1]);
    expect((await volume.getVersion(recent, bytes("k"))).version).toBe(v2);
    await volume.commit(old);
    await expect(volume.getVersion(recent, bytes("k"), v1)).rejects.toMatchObject({ errno: Errno.ESTALE });
  });

  it("pages through scans in both directions, merging the transaction's own changes", async () => {
    const { volume } = await formattedVolume(2048);
    await commitAll(volume, Array.from({ length: 30 }, (_, i) => [`k${String(i).padStart(2, "0")}`, `${i}`]));
    const t = volume.begin({ isolation: IsolationLevel.RepeatableRead }).id;
    await volume.delete(t, bytes("k05"));
    await volume.put(t, bytes("k05a"), bytes("mine"));
    // A concurrent commit after the snapshot is invisible to the transaction's scans.
    await volume.get(t, bytes("k00"));
    await commitAll(volume, [["k10", null], ["k20b", "theirs"]]);
    const pages = async (direction: "forward" | "backward") => {
      const keys: string[] = [];
      let continuation: Uint8Array | undefined;
      do {
        const page = await volume.scan(t, {
          start: bytes("k03"),
          end: bytes("k25"),
          limit: 4,
          direction,
          continuation,
        });
        keys.push(...page.entries.map((e) => text(e.key)!));
        continuation = page.continuation;
      } while (continuation);
      return keys;
    };
    const expected = [
      "k03",
      "k04",
      "k05a",
      ...Array.from({ length: 19 }, (_, i) => `k${String(i + 6).padStart(2, "0")}`),
    ];
    expect(await pages("forward")).toEqual(expected);
    expect(await pages("backward")).toEqual([...expected].reverse());
    await volume.commit(t);
  });

  it("fails stop on an I/O error during a commit and recovers on the next mount", async () => {
    const { device, volume } = await formattedVolume(1024);
    await commitAll(volume, [["safe", "1"]]);
    device.failNext("flush");
    await expect(commitAll(volume, [["doomed", "2"]])).rejects.toMatchObject({ code: Code.UNAVAILABLE });
    await expect(volume.read(bytes("safe"))).rejects.toMatchObject({ code: Code.UNAVAILABLE });
    expect(() => volume.begin()).toThrow(/failed/);
    await volume.unmount();
    device.powerCut({ count: 0 });
    const recovered = await Volume.mount(device);
    expect(text(await recovered.read(bytes("safe")))).toBe("1");
    await recovered.unmount();
  });

  it("groups concurrent commits into shared flushes", async () => {
    const device = new MemoryBlockDevice(2048, { flushDelayMs: 3 });
    await Volume.format(device);
    const volume = await Volume.mount(device);
    const flushesBefore = device.stats.flushes;
    await Promise.all(Array.from({ length: 30 }, (_, i) => commitAll(volume, [[`g${i}`, "v"]])));
    const journal = volume.statistics().journal;
    expect(journal.commits).toBe(30);
    expect(journal.largestGroup).toBeGreaterThan(5);
    expect(device.stats.flushes - flushesBefore).toBeLessThan(10);
    await volume.unmount();
  });

  it("aborts open transactions on unmount and refuses work afterwards", async () => {
    const { volume } = await formattedVolume(1024);
    const t = volume.begin().id;
    await volume.put(t, bytes("k"), bytes("v"));
    expect(await volume.unmount()).toEqual({ transactionsAborted: 1 });
    expect(() => volume.begin()).toThrow(/not mounted/);
    await expect(volume.read(bytes("k"))).rejects.toMatchObject({ errno: Errno.ENODEV });
  });

  it("reads blocks handed back as views into larger buffers, as reads through DMA memory come", async () => {
    // The block layer returns a read as a window of the buffer its DMA transfer landed in.
    const memory = new MemoryBlockDevice(4096);
    const device = {
      blockSize: memory.blockSize,
      blockCount: memory.blockCount,
      readBlocks: async (first: number, count: number) => {
        const data = await memory.readBlocks(first, count);
        const larger = new Uint8Array(data.length + 4096 + 24);
        larger.set(data, 24);
        return larger.subarray(24, 24 + data.length);
      },
      writeBlocks: (first: number, data: Uint8Array) => memory.writeBlocks(first, data),
      flush: () => memory.flush(),
      close: () => memory.close(),
    };
    await Volume.format(device);
    let volume = await Volume.mount(device);
    const large = "overflow ".repeat(3000);
    await commitAll(
      volume,
      Array.from({ length: 300 }, (_, i) => [`key${i}`, i % 100 === 5 ? large : `value ${i}`]),
    );
    await volume.unmount();
    volume = await Volume.mount(device);
    expect(text(await volume.read(bytes("key205")))).toBe(large);
    expect(text(await volume.read(bytes("key299")))).toBe("value 299");
    expect((await volume.fsck()).problems).toEqual([]);
    await volume.unmount();
    expect((await Volume.check(device)).problems).toEqual([]);
  });

  it("refuses to format a device too small for its journal, and to mount one that is not LFSX", async () => {
    await expect(Volume.format(new MemoryBlockDevice(40), { journalBlocks: 16 })).rejects.toMatchObject({
      code: Code.INVALID_ARGUMENT,
    });
    await expect(Volume.mount(new MemoryBlockDevice(1024))).rejects.toMatchObject({ code: Code.DATA_LOSS });
  });
});

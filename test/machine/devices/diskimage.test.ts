import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { DiskImage, DiskMediaError } from "../../../services/machine/devices/diskimage.ts";
import { AstraError, Errno } from "../../../lib/errors.ts";
import { rejection } from "../../rejection.ts";

const MIB = 1024 * 1024;

function pattern(bytes: number, seed: number): Uint8Array {
  const out = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) out[i] = (i * 31 + seed * 97 + (i >> 9)) & 0xff;
  return out;
}

/** What the host file holds at a block, read past the disk's cache. */
async function onFile(path: string, lba: number, count: number, lbaSize = 512): Promise<Uint8Array> {
  const file = await Deno.readFile(path);
  return file.subarray(lba * lbaSize, (lba + count) * lbaSize);
}

let dir: string;
beforeEach(async () => {
  dir = await Deno.makeTempDir({ prefix: "astra-disk-" });
});
afterEach(async () => {
  vi.restoreAllMocks();
  await Deno.remove(dir, { recursive: true });
});

describe("disk image on a host file", () => {
  it("is created sparse at its size, and data flushed before closing is there after reopening", async () => {
    const path = `${dir}/a.img`;
    const disk = await DiskImage.open({ path, sizeBytes: 1024 * MIB, lbaSize: 512 });
    expect(disk.lbaCount).toBe(2 * 1024 * 1024);
    const stat = await Deno.stat(path);
    expect(stat.size).toBe(1024 * MIB);
    // Sparse: far fewer 512-byte blocks allocated than the size.
    expect((stat.blocks ?? 0) * 512).toBeLessThan(MIB);

    const data = pattern(8 * 512, 1);
    await disk.write(1000, data);
    await disk.flush();
    await disk.close();

    const again = await DiskImage.open({ path, lbaSize: 512 });
    expect(again.lbaCount).toBe(2 * 1024 * 1024);
    expect(await again.read(1000, 8)).toEqual(data);
    expect(await again.read(999, 1)).toEqual(new Uint8Array(512));
    await again.close();
  });

  it("keeps writes in its cache until a flush, which fsyncs the file", async () => {
    const path = `${dir}/b.img`;
    const sync = vi.spyOn(Deno.FsFile.prototype, "sync");
    const disk = await DiskImage.open({ path, sizeBytes: 4 * MIB, lbaSize: 4096 });
    const data = pattern(2 * 4096, 2);
    await disk.write(3, data);
    expect(await disk.read(3, 2)).toEqual(data);
    expect(await onFile(path, 3, 2, 4096)).toEqual(new Uint8Array(2 * 4096));
    expect(disk.statistics()).toMatchObject({ unflushedWrites: 1, unflushedBytes: 8192 });
    expect(sync).not.toHaveBeenCalled();

    await disk.flush();
    expect(sync).toHaveBeenCalledTimes(1);
    expect(await onFile(path, 3, 2, 4096)).toEqual(data);
    expect(disk.statistics()).toMatchObject({ unflushedWrites: 0, flushes: 1, syncs: 1 });
    await disk.close();
  });

  it("makes a FUA write durable before it completes", async () => {
    const path = `${dir}/c.img`;
    const sync = vi.spyOn(Deno.FsFile.prototype, "sync");
    const disk = await DiskImage.open({ path, sizeBytes: MIB });
    const data = pattern(512, 3);
    await disk.write(7, data, { fua: true });
    expect(sync).toHaveBeenCalledTimes(1);
    expect(await onFile(path, 7, 1)).toEqual(data);
    expect(disk.statistics().unflushedWrites).toBe(0);
    await disk.close();
  });

  it("writes the oldest cached writes back by itself when the cache is over its limit", async () => {
    const path = `${dir}/d.img`;
    const disk = await DiskImage.open({ path, sizeBytes: MIB, cacheLimitBytes: 2048 });
    for (let i = 0; i < 6; i++) await disk.write(i * 10, pattern(512, i));
    expect(disk.statistics().unflushedWrites).toBe(4);
    expect(await onFile(path, 0, 1)).toEqual(pattern(512, 0));
    expect(await onFile(path, 10, 1)).toEqual(pattern(512, 1));
    expect(await onFile(path, 20, 1)).toEqual(new Uint8Array(512));
    await disk.close();
  });

  it("refuses an existing image of another size or a bad block size", async () => {
    const path = `${dir}/e.img`;
    await (await DiskImage.open({ path, sizeBytes: MIB })).close();
    expect((await rejection(DiskImage.open({ path, sizeBytes: 2 * MIB }))).errno).toBe(Errno.EINVAL);
    expect((await rejection(DiskImage.open({ path: `${dir}/none.img` }))).errno).toBe(Errno.ENOENT);
    expect(() => DiskImage.memory({ sizeBytes: MIB, lbaSize: 1024 as 512 })).toThrow(AstraError);
    expect(() => DiskImage.memory({ sizeBytes: 1000 })).toThrow(AstraError);
  });
});

describe("disk image: reads into the caller's buffers", () => {
  for (const where of ["file", "memory"] as const) {
    it(`fills a scatter list from the ${where} medium with the cache's newer blocks over it`, async () => {
      const disk = where === "file"
        ? await DiskImage.open({ path: `${dir}/r.img`, sizeBytes: MIB })
        : DiskImage.memory({ sizeBytes: MIB });
      const old = pattern(16 * 512, 1);
      await disk.write(100, old);
      await disk.flush();
      // Cached, unflushed: blocks 103 and 108..109, the latter across two targets.
      await disk.write(103, pattern(512, 2));
      await disk.write(108, pattern(1024, 3));
      const expected = await disk.read(100, 16);
      expect(expected.subarray(0, 3 * 512)).toEqual(old.subarray(0, 3 * 512));
      const targets = [
        new Uint8Array(300),
        new Uint8Array(4096 - 300),
        new Uint8Array(600),
        new Uint8Array(3496),
      ]
        .map((t) => t.fill(0xee));
      await disk.readInto(100, 16, targets);
      let at = 0;
      for (const t of targets) {
        expect(t).toEqual(expected.subarray(at, at + t.length));
        at += t.length;
      }
      // Beyond what was ever written, the medium reads as zeros, whatever the buffer held.
      const blank = new Uint8Array(1024).fill(0xee);
      await disk.readInto(2000, 2, [blank]);
      expect(blank).toEqual(new Uint8Array(1024));
      expect(disk.statistics()).toMatchObject({ reads: 3, sectorsRead: 34 });
      await disk.close();
    });
  }

  it("refuses buffers of the wrong size, and leaves them alone when the command fails or stalls", async () => {
    const disk = DiskImage.memory({ sizeBytes: MIB });
    await disk.write(0, pattern(4096, 4));
    expect((await rejection(disk.readInto(0, 8, [new Uint8Array(4000)]))).errno).toBe(Errno.EINVAL);
    disk.injectFault({ kind: "media-error", lbaFirst: 2, lbaCount: 1 });
    const failed = new Uint8Array(4096).fill(0xee);
    expect(await rejection(disk.readInto(0, 8, [failed]))).toBeInstanceOf(DiskMediaError);
    expect(failed).toEqual(new Uint8Array(4096).fill(0xee));
    disk.clearFaults();
    disk.injectFault({ kind: "command-timeout", lbaFirst: 0, lbaCount: 1 });
    const stalled = new Uint8Array(512).fill(0xee);
    let settled = false;
    disk.readInto(0, 1, [stalled]).finally(() => {
      settled = true;
    }).catch(() => {});
    await new Promise((r) => setTimeout(r, 10));
    expect(settled).toBe(false);
    expect(stalled).toEqual(new Uint8Array(512).fill(0xee));
    disk.surpriseRemove();
  });
});

describe("disk image: power cuts", () => {
  async function fourWrites(path: string) {
    const disk = await DiskImage.open({ path, sizeBytes: MIB });
    const base = pattern(4 * 512, 9);
    await disk.write(100, base);
    await disk.flush();
    const writes = [0, 1, 2, 3].map((i) => pattern(512, 20 + i));
    for (let i = 0; i < 4; i++) await disk.write(100 + i, writes[i]);
    return { disk, base, writes };
  }

  it("keeps exactly the chosen prefix of the unflushed writes", async () => {
    const path = `${dir}/p.img`;
    const { disk, base, writes } = await fourWrites(path);
    const result = await disk.powerCut({ keep: 2, seed: 1 });
    expect(result).toMatchObject({ writesPersisted: 2, writesLost: 2, torn: false });
    const file = await onFile(path, 100, 4);
    expect(file.subarray(0, 512)).toEqual(writes[0]);
    expect(file.subarray(512, 1024)).toEqual(writes[1]);
    expect(file.subarray(1024)).toEqual(base.subarray(1024));
    // The cache is gone: reads see the medium.
    expect(await disk.read(102, 1)).toEqual(base.subarray(1024, 1536));
    expect(disk.statistics().unflushedWrites).toBe(0);
    await disk.close();
  });

  it("keeps nothing or everything on request", async () => {
    const none = await fourWrites(`${dir}/n.img`);
    expect((await none.disk.powerCut({ keep: "none" })).writesLost).toBe(4);
    expect(await onFile(`${dir}/n.img`, 100, 4)).toEqual(none.base);
    await none.disk.close();

    const all = await fourWrites(`${dir}/all.img`);
    expect((await all.disk.powerCut({ keep: "all" })).writesPersisted).toBe(4);
    const file = await onFile(`${dir}/all.img`, 100, 4);
    all.writes.forEach((w, i) => expect(file.subarray(i * 512, (i + 1) * 512)).toEqual(w));
    await all.disk.close();
  });

  it("keeps the older of two overlapping writes when only the first survives", async () => {
    const disk = DiskImage.memory({ sizeBytes: MIB });
    await disk.write(5, pattern(512, 1));
    await disk.write(5, pattern(512, 2));
    expect(await disk.read(5, 1)).toEqual(pattern(512, 2));
    await disk.powerCut({ keep: 1, seed: 3 });
    expect(await disk.read(5, 1)).toEqual(pattern(512, 1));
  });

  it("draws a random prefix that the same seed reproduces", async () => {
    const counts: number[] = [];
    for (const name of ["r1", "r2"]) {
      const { disk } = await fourWrites(`${dir}/${name}.img`);
      const result = await disk.powerCut({ keep: "random", seed: 424242 });
      expect(result.seed).toBe(424242);
      counts.push(result.writesPersisted);
      await disk.close();
    }
    expect(counts[0]).toBe(counts[1]);
    expect(await onFile(`${dir}/r1.img`, 100, 4)).toEqual(await onFile(`${dir}/r2.img`, 100, 4));
    const { disk } = await fourWrites(`${dir}/r3.img`);
    const drawn = await disk.powerCut({ keep: "random" });
    expect(Number.isSafeInteger(drawn.seed)).toBe(true);
    await disk.close();
  });

  it("tears the last sector of the last surviving write", async () => {
    const disk = DiskImage.memory({ sizeBytes: MIB, lbaSize: 4096 });
    const old = pattern(3 * 4096, 1);
    await disk.write(10, old);
    await disk.flush();
    const first = pattern(4096, 2);
    const second = pattern(2 * 4096, 3);
    await disk.write(10, first);
    await disk.write(11, second);
    const result = await disk.powerCut({ keep: 2, seed: 77, tearSector: true });
    expect(result.torn).toBe(true);
    expect(result.tornLba).toBe(12);
    expect(result.tornBytes).toBeGreaterThan(0);
    expect(result.tornBytes).toBeLessThan(4096);
    expect(await disk.read(10, 1)).toEqual(first);
    expect(await disk.read(11, 1)).toEqual(second.subarray(0, 4096));
    const torn = await disk.read(12, 1);
    expect(torn.subarray(0, result.tornBytes)).toEqual(second.subarray(4096, 4096 + result.tornBytes));
    expect(torn.subarray(result.tornBytes)).toEqual(old.subarray(2 * 4096 + result.tornBytes));
  });
});

describe("disk image: faults", () => {
  it("fails commands touching a media-error range with the first bad LBA, transiently or until cleared", async () => {
    const disk = DiskImage.memory({ sizeBytes: MIB });
    const fault = disk.injectFault({ kind: "media-error", lbaFirst: 50, lbaCount: 5, count: 1 });
    const err = await rejection(disk.read(48, 4));
    expect(err).toBeInstanceOf(DiskMediaError);
    expect((err as DiskMediaError).lba).toBe(50);
    expect(err.errno).toBe(Errno.EIO);
    // Transient: the retry succeeds.
    expect(await disk.read(48, 4)).toEqual(new Uint8Array(2048));
    expect(disk.faults()).toEqual([]);

    const persistent = disk.injectFault({ kind: "media-error", lbaFirst: 60, lbaCount: 1 });
    expect(persistent.id).toBeGreaterThan(fault.id);
    for (let i = 0; i < 3; i++) {
      expect(((await rejection(disk.write(60, pattern(512, 1)))) as DiskMediaError).operation).toBe("write");
    }
    expect(disk.faults()[0].triggered).toBe(3);
    expect(await disk.read(61, 1)).toEqual(new Uint8Array(512));
    expect(disk.clearFaults()).toBe(1);
    await disk.write(60, pattern(512, 1));
    expect(disk.statistics().errors).toBe(4);
  });

  it("never completes a command in a timeout range, until the disk is pulled", async () => {
    const disk = DiskImage.memory({ sizeBytes: MIB });
    await disk.write(2, pattern(512, 5));
    disk.injectFault({ kind: "command-timeout", lbaFirst: 0, lbaCount: 1 });
    let settled = false;
    const hung = disk.read(0, 1).finally(() => {
      settled = true;
    });
    await new Promise((r) => setTimeout(r, 20));
    expect(settled).toBe(false);
    expect(disk.statistics().timeouts).toBe(1);

    disk.surpriseRemove();
    expect((await rejection(hung)).errno).toBe(Errno.ENODEV);
    expect((await rejection(disk.read(2, 1))).errno).toBe(Errno.ENODEV);
    expect(disk.removed).toBe(true);
    expect(disk.statistics().unflushedWrites).toBe(0);
  });

  it("loses its cache on surprise removal but keeps what was flushed", async () => {
    const path = `${dir}/s.img`;
    const disk = await DiskImage.open({ path, sizeBytes: MIB });
    await disk.write(1, pattern(512, 1));
    await disk.flush();
    await disk.write(2, pattern(512, 2));
    disk.surpriseRemove();
    await disk.close();
    const again = await DiskImage.open({ path });
    expect(await again.read(1, 1)).toEqual(pattern(512, 1));
    expect(await again.read(2, 1)).toEqual(new Uint8Array(512));
    await again.close();
  });

  it("refuses ranges beyond the disk", async () => {
    const disk = DiskImage.memory({ sizeBytes: 8 * 512 });
    expect((await rejection(disk.read(7, 2))).errno).toBe(Errno.ENXIO);
    expect((await rejection(disk.write(0, new Uint8Array(100)))).errno).toBe(Errno.EINVAL);
    expect(() => disk.injectFault({ kind: "media-error", lbaFirst: 8, lbaCount: 1 })).toThrow(AstraError);
  });
});

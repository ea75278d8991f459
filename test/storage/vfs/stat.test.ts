// fstat, newfstatat and statx: what they report, compared with the host's own stat of the same
// node, and the ppc64 struct stat and struct statx bytes read back field by field.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { encodeStat, encodeStatx } from "../../../services/storage/vfs/layouts.ts";
import {
  AT_EMPTY_PATH,
  AT_FDCWD,
  AT_STATX_SYNC_TYPE,
  AT_SYMLINK_NOFOLLOW,
  deviceMajor,
  deviceMinor,
  makeDevice,
  O_PATH,
  O_RDONLY,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
  STATX_ATTR_MOUNT_ROOT,
  STATX_BASIC_STATS,
  STATX_MNT_ID,
  STATX_RESERVED,
} from "../../../services/storage/vfs/linux.ts";
import { Errno, errnoOf, type Fixture, fixture, parseStat, parseStatx } from "./helpers.ts";

let f: Fixture;

beforeEach(() => {
  f = fixture();
  Deno.writeTextFileSync(f.host("file"), "twelve bytes");
  Deno.mkdirSync(f.host("dir"));
  Deno.symlinkSync("file", f.host("link"));
});

afterEach(() => f.remove());

function expectLikeHost(stat: ReturnType<typeof parseStat>, hostPath: string) {
  const host = Deno.lstatSync(hostPath);
  expect(stat.dev).toBe(host.dev);
  expect(stat.ino).toBe(host.ino);
  expect(stat.nlink).toBe(host.nlink);
  expect(stat.mode).toBe(host.mode);
  expect(stat.uid).toBe(host.uid);
  expect(stat.gid).toBe(host.gid);
  expect(stat.rdev).toBe(host.rdev);
  expect(stat.size).toBe(host.size);
  expect(stat.blksize).toBe(host.blksize);
  expect(stat.blocks).toBe(host.blocks);
  expect(stat.mtime[0]).toBe(Math.floor(host.mtime!.getTime() / 1000));
  expect(stat.mtime[1]).toBe((host.mtime!.getTime() % 1000) * 1_000_000);
  expect(stat.atime[0]).toBe(Math.floor(host.atime!.getTime() / 1000));
  expect(stat.pad).toBe(0);
  expect(stat.unused).toEqual([0, 0, 0]);
}

describe("struct stat", () => {
  it("reports what the host reports, for files, directories and links", () => {
    const st = (path: string, flags = 0) =>
      parseStat(encodeStat(f.vfs.fstatat(f.pid, AT_FDCWD, path, flags)));
    expectLikeHost(st("file"), f.host("file"));
    expectLikeHost(st("dir"), f.host("dir"));
    expectLikeHost(st("link", AT_SYMLINK_NOFOLLOW), f.host("link"));
    expectLikeHost(st("link"), f.host("file"));
    expect(st("link", AT_SYMLINK_NOFOLLOW).mode & S_IFMT).toBe(S_IFLNK);
  });

  it("reports the same through fstat of an open descriptor, even after the name is gone", () => {
    const fd = f.vfs.openat(f.pid, AT_FDCWD, "file", O_RDONLY, 0);
    const before = parseStat(encodeStat(f.vfs.fstat(f.pid, fd)));
    expectLikeHost(before, f.host("file"));
    Deno.removeSync(f.host("file"));
    const after = parseStat(encodeStat(f.vfs.fstat(f.pid, fd)));
    expect(after.ino).toBe(before.ino);
    expect(after.nlink).toBe(0);
  });

  it("stats the descriptor itself with AT_EMPTY_PATH and an empty path", () => {
    const fd = f.vfs.openat(f.pid, AT_FDCWD, "dir", O_PATH, 0);
    expect(f.vfs.fstatat(f.pid, fd, "", AT_EMPTY_PATH).mode & S_IFMT).toBe(S_IFDIR);
    expect(f.vfs.fstatat(f.pid, AT_FDCWD, "", AT_EMPTY_PATH).inode).toBe(Deno.statSync(f.root).ino);
    expect(errnoOf(() => f.vfs.fstatat(f.pid, fd, "", 0))).toBe(Errno.ENOENT);
    expect(f.vfs.fstatat(f.pid, 1, "", AT_EMPTY_PATH).mode & S_IFMT).toBe(S_IFIFO);
  });

  it("refuses unknown flags with EINVAL and unknown descriptors with EBADF", () => {
    expect(errnoOf(() => f.vfs.fstatat(f.pid, AT_FDCWD, "file", 0x2))).toBe(Errno.EINVAL);
    expect(errnoOf(() => f.vfs.fstat(f.pid, 33))).toBe(Errno.EBADF);
    expect(errnoOf(() => f.vfs.fstatat(f.pid, 33, "", AT_EMPTY_PATH))).toBe(Errno.EBADF);
  });

  it("lays the fields out at ppc64's offsets", () => {
    const bytes = encodeStat({
      device: 0x0102030405,
      inode: 0x1122334455,
      mode: 0o100644,
      links: 3,
      uid: 1000,
      gid: 100,
      rdev: makeDevice(8, 1),
      size: 2 ** 40 + 7,
      blockSize: 4096,
      blocks: 9,
      accessTime: { seconds: 1_700_000_000, nanoseconds: 1 },
      modifyTime: { seconds: 1_700_000_001, nanoseconds: 2 },
      changeTime: { seconds: 1_700_000_002, nanoseconds: 3 },
      mountId: 5,
      mountRoot: false,
    });
    const v = new DataView(bytes.buffer);
    expect(bytes.length).toBe(144);
    expect(v.getBigUint64(0, true)).toBe(0x0102030405n);
    expect(v.getBigUint64(8, true)).toBe(0x1122334455n);
    expect(v.getBigUint64(16, true)).toBe(3n);
    expect(v.getUint32(24, true)).toBe(0o100644);
    expect(v.getUint32(28, true)).toBe(1000);
    expect(v.getUint32(32, true)).toBe(100);
    expect(v.getBigUint64(40, true)).toBe(0x801n);
    expect(v.getBigInt64(48, true)).toBe(2n ** 40n + 7n);
    expect(v.getBigUint64(56, true)).toBe(4096n);
    expect(v.getBigUint64(64, true)).toBe(9n);
    expect([72, 80, 88, 96, 104, 112].map((at) => v.getBigUint64(at, true))).toEqual([
      1_700_000_000n,
      1n,
      1_700_000_001n,
      2n,
      1_700_000_002n,
      3n,
    ]);
  });
});

describe("struct statx", () => {
  it("reports the basic stats, the mount and no birth time the host lacks", () => {
    const { stat, mask } = f.vfs.statx(f.pid, AT_FDCWD, "file", 0, STATX_BASIC_STATS);
    const sx = parseStatx(encodeStatx(stat, mask));
    const host = Deno.lstatSync(f.host("file"));
    expect(sx.mask & (STATX_BASIC_STATS | STATX_MNT_ID)).toBe(STATX_BASIC_STATS | STATX_MNT_ID);
    expect(sx.ino).toBe(host.ino);
    expect(sx.size).toBe(12);
    expect(sx.mode).toBe(host.mode);
    expect(sx.nlink).toBe(host.nlink);
    expect(sx.uid).toBe(host.uid);
    expect(sx.gid).toBe(host.gid);
    expect(sx.blocks).toBe(host.blocks);
    expect(sx.blksize).toBe(host.blksize);
    expect(sx.devMajor).toBe(deviceMajor(host.dev));
    expect(sx.devMinor).toBe(deviceMinor(host.dev));
    expect(sx.mtime[0]).toBe(Math.floor(host.mtime!.getTime() / 1000));
    expect(sx.mtime[2]).toBe(0);
    expect(sx.mountId).toBe(f.vfs.statistics().mounts.find((m) => m.mountPoint === "/")!.id);
    expect(sx.attributes).toBe(0);
    expect(sx.attributesMask).toBe(STATX_ATTR_MOUNT_ROOT);
    expect(sx.spare0).toBe(0);
    expect(sx.tail.every((b) => b === 0)).toBe(true);
    if (host.birthtime) expect(sx.btime[0]).toBe(Math.floor(host.birthtime.getTime() / 1000));
  });

  it("marks the roots of mounts", () => {
    const root = f.vfs.statx(f.pid, AT_FDCWD, "/", 0, 0);
    expect(parseStatx(encodeStatx(root.stat, root.mask)).attributes).toBe(STATX_ATTR_MOUNT_ROOT);
    const proc = f.vfs.statx(f.pid, AT_FDCWD, "/proc", 0, 0);
    expect(parseStatx(encodeStatx(proc.stat, proc.mask)).attributes).toBe(STATX_ATTR_MOUNT_ROOT);
    const dir = f.vfs.statx(f.pid, AT_FDCWD, "/dir", 0, 0);
    expect(parseStatx(encodeStatx(dir.stat, dir.mask)).attributes).toBe(0);
  });

  it("splits device numbers into major and minor", () => {
    const { stat, mask } = f.vfs.statx(f.pid, AT_FDCWD, "/dev/null", 0, 0);
    const sx = parseStatx(encodeStatx(stat, mask));
    expect(sx.mode).toBe(S_IFCHR | 0o666);
    expect([sx.rdevMajor, sx.rdevMinor]).toEqual([1, 3]);
    const big = encodeStatx({ ...stat, rdev: makeDevice(259, 0x12345) }, mask);
    expect([parseStatx(big).rdevMajor, parseStatx(big).rdevMinor]).toEqual([259, 0x12345]);
  });

  it("refuses bad flags and the reserved mask bit with EINVAL", () => {
    expect(errnoOf(() => f.vfs.statx(f.pid, AT_FDCWD, "file", AT_STATX_SYNC_TYPE, 0))).toBe(Errno.EINVAL);
    expect(errnoOf(() => f.vfs.statx(f.pid, AT_FDCWD, "file", 0x1, 0))).toBe(Errno.EINVAL);
    expect(errnoOf(() => f.vfs.statx(f.pid, AT_FDCWD, "file", 0, STATX_RESERVED))).toBe(Errno.EINVAL);
    expect(f.vfs.statx(f.pid, AT_FDCWD, "link", AT_SYMLINK_NOFOLLOW | 0x2000, 0).stat.mode & S_IFMT).toBe(
      S_IFLNK,
    );
  });
});

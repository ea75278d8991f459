// chmod, chown and utimensat and their relatives through the trap path: on the host folder (where
// the host kernel has the last word), on /dev and /proc (whose attributes the VFS keeps), on pipes
// and on the standard streams.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  AT_EMPTY_PATH,
  AT_FDCWD,
  AT_SYMLINK_NOFOLLOW,
  O_PATH,
  O_RDONLY,
  O_WRONLY,
  S_IFCHR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  SYS,
  UTIME_NOW,
  UTIME_OMIT,
} from "../../../services/storage/vfs/linux.ts";
import { FakeGuest } from "./guest.ts";
import {
  Errno,
  errnoOf,
  failed,
  type Fixture,
  fixture,
  makeImmutable,
  ok,
  parseStat,
  timePairs,
} from "./helpers.ts";

let f: Fixture;
let g: FakeGuest;
const root = Deno.uid() === 0;
const MINUS_ONE = 0xffffffff;

beforeEach(() => {
  f = fixture();
  g = new FakeGuest(f.vfs, f.pid);
  Deno.writeTextFileSync(f.host("file"), "0123456789");
  Deno.mkdirSync(f.host("dir"));
  Deno.writeTextFileSync(f.host("dir/inner"), "inner");
  Deno.symlinkSync("file", f.host("link"));
});

afterEach(() => f.remove());

/** struct stat of a guest path, as the guest reads it back. */
async function stat(path: string, call: number = SYS.stat) {
  const buf = g.alloc(144);
  ok(await g.call(call, g.string(path), buf));
  return parseStat(g.read(buf, 144));
}

const hostMode = (path: string) => Deno.lstatSync(f.host(path)).mode! & 0o7777;
const open = async (path: string, flags: number) =>
  ok(await g.call(SYS.openat, AT_FDCWD, g.string(path), flags, 0));

describe("chmod, fchmod and fchmodat on the host folder", () => {
  it("set the permission bits and set-user-ID, set-group-ID and sticky, which stat reads back", async () => {
    ok(await g.call(SYS.chmod, g.string("file"), 0o4751));
    expect(hostMode("file")).toBe(0o4751);
    expect((await stat("file")).mode).toBe(S_IFREG | 0o4751);
    ok(await g.call(SYS.chmod, g.string("file"), S_IFCHR | 0o640));
    expect((await stat("file")).mode).toBe(S_IFREG | 0o640);
    const dir = await open("dir", O_RDONLY);
    ok(await g.call(SYS.fchmod, dir, 0o1700));
    expect(hostMode("dir")).toBe(0o1700);
    ok(await g.call(SYS.fchmodat, dir, g.string("inner"), 0o600));
    expect(hostMode("dir/inner")).toBe(0o600);
    ok(await g.call(SYS.fchmodat, AT_FDCWD, g.string("link"), 0o604));
    expect(hostMode("file")).toBe(0o604);
    expect((await stat("link", SYS.lstat)).mode & S_IFMT).toBe(S_IFLNK);
  });

  it("fail as Linux does", async () => {
    expect(failed(await g.call(SYS.chmod, g.string("missing"), 0o600))).toBe(Errno.ENOENT);
    expect(failed(await g.call(SYS.chmod, g.string("file/x"), 0o600))).toBe(Errno.ENOTDIR);
    expect(failed(await g.call(SYS.chmod, g.string(""), 0o600))).toBe(Errno.ENOENT);
    expect(failed(await g.call(SYS.chmod, 0, 0o600))).toBe(Errno.EFAULT);
    expect(failed(await g.call(SYS.chmod, 0xdead_0000_0000n, 0o600))).toBe(Errno.EFAULT);
    expect(failed(await g.call(SYS.fchmod, 99, 0o600))).toBe(Errno.EBADF);
    expect(failed(await g.call(SYS.fchmod, await open("file", O_PATH), 0o600))).toBe(Errno.EBADF);
    expect(failed(await g.call(SYS.fchmodat, 99, g.string("x"), 0o600))).toBe(Errno.EBADF);
    const file = await open("file", O_RDONLY);
    expect(failed(await g.call(SYS.fchmodat, file, g.string("x"), 0o600))).toBe(Errno.ENOTDIR);
  });

  it("take fchmodat2's flags: a symbolic link's mode cannot change (EOPNOTSUPP)", async () => {
    expect(errnoOf(() => f.vfs.fchmodat(f.pid, AT_FDCWD, "link", 0o600, AT_SYMLINK_NOFOLLOW)))
      .toBe(Errno.ENOTSUP);
    f.vfs.fchmodat(f.pid, AT_FDCWD, "file", 0o640, AT_SYMLINK_NOFOLLOW);
    expect(hostMode("file")).toBe(0o640);
    const path = await open("file", O_PATH);
    f.vfs.fchmodat(f.pid, path, "", 0o444, AT_EMPTY_PATH);
    expect(hostMode("file")).toBe(0o444);
    expect(errnoOf(() => f.vfs.fchmodat(f.pid, AT_FDCWD, "file", 0o600, 0x8))).toBe(Errno.EINVAL);
    expect(errnoOf(() => f.vfs.fchmodat(f.pid, AT_FDCWD, "", 0o600, 0))).toBe(Errno.ENOENT);
  });

  it("answer EROFS on a read-only mount", async () => {
    Deno.mkdirSync(f.host("ro"));
    f.vfs.mountHostFolder(f.host("dir"), "/ro", true);
    expect(failed(await g.call(SYS.chmod, g.string("/ro/inner"), 0o600))).toBe(Errno.EROFS);
    expect(failed(await g.call(SYS.fchmod, await open("/ro/inner", O_RDONLY), 0o600))).toBe(Errno.EROFS);
    expect(failed(await g.call(SYS.chown, g.string("/ro/inner"), MINUS_ONE, MINUS_ONE))).toBe(Errno.EROFS);
    expect(failed(await g.call(SYS.utimensat, AT_FDCWD, g.string("/ro/inner"), 0, 0))).toBe(Errno.EROFS);
    expect(hostMode("dir/inner")).toBe(0o644);
  });

  it("answer ESTALE through a descriptor whose file is no longer at its path", async () => {
    const fd = await open("file", O_RDONLY);
    Deno.renameSync(f.host("file"), f.host("moved"));
    expect(failed(await g.call(SYS.fchmod, fd, 0o600))).toBe(Errno.ESTALE);
    Deno.writeTextFileSync(f.host("file"), "another file");
    expect(failed(await g.call(SYS.fchown, fd, MINUS_ONE, MINUS_ONE))).toBe(Errno.ESTALE);
  });
});

describe("chown, lchown, fchown and fchownat on the host folder", () => {
  it("succeed changing to the current owner and group, or leaving both (-1)", async () => {
    const { uid, gid } = Deno.statSync(f.host("file"));
    ok(await g.call(SYS.chown, g.string("file"), uid!, gid!));
    ok(await g.call(SYS.chown, g.string("file"), MINUS_ONE, MINUS_ONE));
    ok(await g.call(SYS.lchown, g.string("link"), uid!, MINUS_ONE));
    ok(await g.call(SYS.fchown, await open("file", O_RDONLY), MINUS_ONE, gid!));
    ok(await g.call(SYS.fchownat, AT_FDCWD, g.string("dir"), uid!, gid!, 0));
    ok(await g.call(SYS.fchownat, await open("link", O_PATH), g.string(""), uid!, gid!, AT_EMPTY_PATH));
    expect((await stat("file")).uid).toBe(uid);
  });

  it.skipIf(!root)("change the host file's owner, lchown the link itself", async () => {
    ok(await g.call(SYS.chown, g.string("file"), 1234, 5678));
    expect(Deno.statSync(f.host("file"))).toMatchObject({ uid: 1234, gid: 5678 });
    expect(await stat("file")).toMatchObject({ uid: 1234, gid: 5678 });
    ok(await g.call(SYS.lchown, g.string("link"), 4321, MINUS_ONE));
    expect(Deno.lstatSync(f.host("link")).uid).toBe(4321);
    expect(Deno.statSync(f.host("file")).uid).toBe(1234);
    ok(await g.call(SYS.fchownat, AT_FDCWD, g.string("link"), 42, 42, AT_SYMLINK_NOFOLLOW));
    expect(Deno.lstatSync(f.host("link"))).toMatchObject({ uid: 42, gid: 42 });
  });

  it.skipIf(!root)("drop set-user-ID from a file whose owner changes, as the host kernel does", async () => {
    ok(await g.call(SYS.chmod, g.string("file"), 0o4755));
    ok(await g.call(SYS.chown, g.string("file"), MINUS_ONE, MINUS_ONE));
    expect(hostMode("file")).toBe(0o755);
  });

  it("answer the host's EPERM, and Linux's errors before it", async () => {
    const undo = makeImmutable(f.host("file"));
    if (undo) {
      try {
        expect(failed(await g.call(SYS.chown, g.string("file"), MINUS_ONE, MINUS_ONE))).toBe(Errno.EPERM);
        expect(failed(await g.call(SYS.chmod, g.string("file"), 0o600))).toBe(Errno.EPERM);
        const times = g.put(timePairs([1, 0], [2, 0]));
        expect(failed(await g.call(SYS.utimensat, AT_FDCWD, g.string("file"), times, 0))).toBe(Errno.EPERM);
      } finally {
        undo();
      }
    } else if (!root) {
      expect(failed(await g.call(SYS.chown, g.string("file"), 0, 0))).toBe(Errno.EPERM);
    }
    expect(failed(await g.call(SYS.fchownat, AT_FDCWD, g.string("file"), 0, 0, 0x8))).toBe(Errno.EINVAL);
    expect(failed(await g.call(SYS.fchownat, AT_FDCWD, g.string(""), 0, 0, 0))).toBe(Errno.ENOENT);
    expect(failed(await g.call(SYS.chown, g.string("missing"), 0, 0))).toBe(Errno.ENOENT);
    expect(failed(await g.call(SYS.chown, g.string("file/"), 0, 0))).toBe(Errno.ENOTDIR);
    expect(failed(await g.call(SYS.lchown, 0, 0, 0))).toBe(Errno.EFAULT);
    expect(failed(await g.call(SYS.fchown, 77, 0, 0))).toBe(Errno.EBADF);
    expect(failed(await g.call(SYS.fchown, await open("file", O_PATH), 0, 0))).toBe(Errno.EBADF);
  });
});

describe("utimensat, utimes, futimesat and utime on the host folder", () => {
  const times = (path: string) => {
    const info = Deno.lstatSync(f.host(path));
    return [info.atime!.getTime(), info.mtime!.getTime()];
  };

  it("set both times, or one with UTIME_OMIT, to the millisecond the host keeps", async () => {
    ok(
      await g.call(
        SYS.utimensat,
        AT_FDCWD,
        g.string("file"),
        g.put(timePairs([1000, 250_000_000], [2000, 0])),
        0,
      ),
    );
    expect(times("file")).toEqual([1_000_250, 2_000_000]);
    const back = await stat("file");
    expect([back.atime, back.mtime]).toEqual([[1000, 250_000_000], [2000, 0]]);
    ok(
      await g.call(
        SYS.utimensat,
        AT_FDCWD,
        g.string("file"),
        g.put(timePairs([5, UTIME_OMIT], [3000, 7_000_000])),
        0,
      ),
    );
    expect(times("file")).toEqual([1_000_250, 3_000_007]);
    ok(
      await g.call(
        SYS.utimensat,
        AT_FDCWD,
        g.string("file"),
        g.put(timePairs([4000, 0], [0, UTIME_OMIT])),
        0,
      ),
    );
    expect(times("file")).toEqual([4_000_000, 3_000_007]);
    ok(await g.call(SYS.utimensat, AT_FDCWD, g.string("file"), g.put(timePairs([-100, 0], [0, 0])), 0));
    expect(times("file")).toEqual([-100_000, 0]);
  });

  it("set the current time for NULL times and UTIME_NOW", async () => {
    ok(await g.call(SYS.utimensat, AT_FDCWD, g.string("file"), g.put(timePairs([1, 0], [1, 0])), 0));
    const before = Date.now() - 1000;
    ok(await g.call(SYS.utimensat, AT_FDCWD, g.string("file"), 0, 0));
    expect(times("file").every((t) => t >= before)).toBe(true);
    ok(await g.call(SYS.utimensat, AT_FDCWD, g.string("file"), g.put(timePairs([1, 0], [1, 0])), 0));
    ok(
      await g.call(
        SYS.utimensat,
        AT_FDCWD,
        g.string("file"),
        g.put(timePairs([0, UTIME_NOW], [0, UTIME_OMIT])),
        0,
      ),
    );
    const [atime, mtime] = times("file");
    expect(atime).toBeGreaterThanOrEqual(before);
    expect(mtime).toBe(1000);
  });

  it("change a descriptor's file for a NULL path (futimens), and a link itself with AT_SYMLINK_NOFOLLOW", async () => {
    const fd = await open("file", O_WRONLY);
    ok(await g.call(SYS.utimensat, fd, 0, g.put(timePairs([10, 0], [20, 0])), 0));
    expect(times("file")).toEqual([10_000, 20_000]);
    const pairs = g.put(timePairs([30, 0], [40, 0]));
    ok(await g.call(SYS.utimensat, AT_FDCWD, g.string("link"), pairs, AT_SYMLINK_NOFOLLOW));
    expect(times("link")).toEqual([30_000, 40_000]);
    expect(times("file")).toEqual([10_000, 20_000]);
    const path = await open("link", O_PATH);
    ok(await g.call(SYS.utimensat, path, g.string(""), g.put(timePairs([50, 0], [60, 0])), AT_EMPTY_PATH));
    expect(times("file")).toEqual([50_000, 60_000]);
  });

  it("do nothing, not even look the path up, when both times are UTIME_OMIT", async () => {
    const omit = g.put(timePairs([0, UTIME_OMIT], [0, UTIME_OMIT]));
    ok(await g.call(SYS.utimensat, AT_FDCWD, g.string("missing"), omit, 0));
    ok(await g.call(SYS.utimensat, 99, 0, omit, 0x7777));
  });

  it("fail as Linux does", async () => {
    const good = g.put(timePairs([1, 0], [2, 0]));
    const call = (dirFd: number, path: bigint | number, times: bigint | number, flags: number) =>
      g.call(SYS.utimensat, dirFd, path, times, flags);
    expect(failed(await call(AT_FDCWD, g.string("file"), g.put(timePairs([1, 1_000_000_000], [2, 0])), 0)))
      .toBe(Errno.EINVAL);
    expect(failed(await call(AT_FDCWD, g.string("file"), g.put(timePairs([1, -1], [2, 0])), 0))).toBe(
      Errno.EINVAL,
    );
    expect(failed(await call(AT_FDCWD, g.string("file"), good, 0x4))).toBe(Errno.EINVAL);
    expect(failed(await call(AT_FDCWD, g.string("missing"), good, 0))).toBe(Errno.ENOENT);
    expect(failed(await call(AT_FDCWD, g.string("file/x"), good, 0))).toBe(Errno.ENOTDIR);
    expect(failed(await call(AT_FDCWD, g.string("file"), 0xdead_0000_0000n, 0))).toBe(Errno.EFAULT);
    expect(failed(await call(AT_FDCWD, 0, good, 0))).toBe(Errno.EFAULT);
    expect(failed(await call(99, 0, good, 0))).toBe(Errno.EBADF);
    const fd = await open("file", O_RDONLY);
    expect(failed(await call(fd, 0, good, AT_SYMLINK_NOFOLLOW))).toBe(Errno.EINVAL);
    expect(failed(await call(await open("file", O_PATH), 0, good, 0))).toBe(Errno.EBADF);
  });

  it("take struct timeval (utimes, futimesat) and struct utimbuf (utime)", async () => {
    ok(await g.call(SYS.utimes, g.string("file"), g.put(timePairs([100, 500_000], [200, 999_999]))));
    expect(times("file")).toEqual([100_500, 200_999]);
    const dir = await open("dir", O_RDONLY);
    ok(await g.call(SYS.futimesat, dir, g.string("inner"), g.put(timePairs([300, 0], [400, 0]))));
    expect(times("dir/inner")).toEqual([300_000, 400_000]);
    ok(await g.call(SYS.futimesat, await open("file", O_RDONLY), 0, g.put(timePairs([7, 0], [8, 0]))));
    expect(times("file")).toEqual([7000, 8000]);
    const utimbuf = new Uint8Array(16);
    new DataView(utimbuf.buffer).setBigInt64(0, 500n, true);
    new DataView(utimbuf.buffer).setBigInt64(8, 600n, true);
    ok(await g.call(SYS.utime, g.string("file"), g.put(utimbuf)));
    expect(times("file")).toEqual([500_000, 600_000]);
    ok(await g.call(SYS.utime, g.string("file"), 0));
    expect(times("file")[1]).toBeGreaterThan(Date.now() - 60_000);
    expect(failed(await g.call(SYS.utimes, g.string("file"), g.put(timePairs([1, 1_000_000], [2, 0])))))
      .toBe(Errno.EINVAL);
    expect(failed(await g.call(SYS.utimes, g.string("missing"), g.put(timePairs([1, -1], [2, 0])))))
      .toBe(Errno.EINVAL);
    expect(failed(await g.call(SYS.utime, g.string("file"), 0xdead_0000_0000n))).toBe(Errno.EFAULT);
  });
});

describe("the attributes /dev keeps in memory", () => {
  it("change for root, and stat shows them", async () => {
    f.vfs.credentials.uid = 0;
    ok(await g.call(SYS.chmod, g.string("/dev/null"), 0o600));
    ok(await g.call(SYS.chown, g.string("/dev/null"), 7, 8));
    ok(await g.call(SYS.utimensat, AT_FDCWD, g.string("/dev/zero"), g.put(timePairs([77, 5], [88, 6])), 0));
    expect(await stat("/dev/null")).toMatchObject({ mode: S_IFCHR | 0o600, uid: 7, gid: 8 });
    const zero = await stat("/dev/zero");
    expect([zero.atime, zero.mtime]).toEqual([[77, 5], [88, 6]]);
    const fd = await open("/dev/null", O_WRONLY);
    ok(await g.call(SYS.fchmod, fd, 0o666));
    expect((await stat("/dev/null")).mode).toBe(S_IFCHR | 0o666);
  });

  it("are root's to change; anyone may touch what they may write (EACCES otherwise)", async () => {
    f.vfs.credentials.uid = 1000;
    f.vfs.credentials.gid = 1000;
    expect(failed(await g.call(SYS.chmod, g.string("/dev/null"), 0o600))).toBe(Errno.EPERM);
    expect(failed(await g.call(SYS.chown, g.string("/dev/null"), 0, 0))).toBe(Errno.EPERM);
    const explicit = g.put(timePairs([1, 0], [2, 0]));
    expect(failed(await g.call(SYS.utimensat, AT_FDCWD, g.string("/dev/null"), explicit, 0))).toBe(
      Errno.EPERM,
    );
    ok(await g.call(SYS.utimensat, AT_FDCWD, g.string("/dev/null"), 0, 0));
    expect(failed(await g.call(SYS.utimensat, AT_FDCWD, g.string("/dev/console"), 0, 0))).toBe(Errno.EACCES);
    expect(failed(await g.call(SYS.lchown, g.string("/dev/stdin"), 0, 0))).toBe(Errno.EPERM);
    expect((await stat("/dev/null")).mode).toBe(S_IFCHR | 0o666);
  });
});

describe("/proc, pipes and the standard streams", () => {
  it("/proc: a mode never changes; its owners are the processes'", async () => {
    expect(failed(await g.call(SYS.chmod, g.string("/proc/self"), 0o700))).toBe(Errno.EPERM);
    expect(failed(await g.call(SYS.chmod, g.string("/proc/1/fd"), 0o700))).toBe(Errno.EPERM);
    const { uid, gid } = f.vfs.credentials;
    ok(await g.call(SYS.chown, g.string("/proc/1"), uid, gid));
    f.vfs.credentials.uid = 1000;
    expect(failed(await g.call(SYS.chown, g.string("/proc"), 1000, MINUS_ONE))).toBe(Errno.EPERM);
    expect(failed(await g.call(SYS.utimensat, AT_FDCWD, g.string("/proc"), 0, 0))).toBe(Errno.EACCES);
  });

  it("a pipe keeps its mode and owner, and only its owner changes them", async () => {
    const fds = g.alloc(8);
    ok(await g.call(SYS.pipe2, fds, 0));
    const [read, write] = [0, 4].map((at) => new DataView(g.read(fds, 8).buffer).getInt32(at, true));
    ok(await g.call(SYS.fchmod, read, 0o640));
    const buf = g.alloc(144);
    ok(await g.call(SYS.fstat, write, buf));
    expect(parseStat(g.read(buf, 144)).mode).toBe(S_IFIFO | 0o640);
    ok(await g.call(SYS.utimensat, read, 0, g.put(timePairs([9, 0], [10, 0])), 0));
    ok(await g.call(SYS.fstat, write, buf));
    expect(parseStat(g.read(buf, 144)).mtime).toEqual([10, 0]);
    f.vfs.credentials.uid = 1000;
    expect(failed(await g.call(SYS.fchown, read, 1000, MINUS_ONE))).toBe(Errno.EPERM);
    expect(failed(await g.call(SYS.fchmod, read, 0o600))).toBe(Errno.EPERM);
  });

  it("the standard streams are the host's, which the guest does not change (EPERM)", async () => {
    expect(failed(await g.call(SYS.fchmod, 1, 0o600))).toBe(Errno.EPERM);
    expect(failed(await g.call(SYS.fchown, 0, MINUS_ONE, MINUS_ONE))).toBe(Errno.EPERM);
  });
});

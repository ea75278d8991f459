// The trap path: system calls as registers and guest memory, through the per-call copy-in table,
// answered with r3 or an errno and the memory to write back.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  AT_EMPTY_PATH,
  AT_FDCWD,
  AT_REMOVEDIR,
  F_DUPFD,
  F_GETFD,
  FIONBIO,
  O_CLOEXEC,
  O_CREAT,
  O_NONBLOCK,
  O_RDONLY,
  O_RDWR,
  O_WRONLY,
  RENAME_NOREPLACE,
  S_IFDIR,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  SEEK_END,
  STATX_BASIC_STATS,
  SYS,
  TCGETS,
  TCSETS,
  TIOCGWINSZ,
} from "../../../services/storage/vfs/linux.ts";
import { Terminal } from "../../../services/storage/vfs/streams.ts";
import { VFS_KERNEL_CALLS } from "../../../services/storage/vfs/syscalls.ts";
import { FakeGuest } from "./guest.ts";
import {
  decode,
  encode,
  Errno,
  type Fixture,
  fixture,
  parseDirents,
  parseStat,
  parseStatx,
} from "./helpers.ts";

let f: Fixture;
let g: FakeGuest;

beforeEach(() => {
  f = fixture({ input: ["from stdin"] });
  g = new FakeGuest(f.vfs, f.pid);
  Deno.writeTextFileSync(f.host("file"), "0123456789");
  Deno.mkdirSync(f.host("dir"));
  Deno.symlinkSync("file", f.host("link"));
});

afterEach(() => f.remove());

const ok = (r: { result: bigint; errno?: Errno }) => {
  expect(r.errno).toBeUndefined();
  return Number(r.result);
};
const failed = (r: { errno?: Errno }) => r.errno;

describe("the per-call table", () => {
  it("names every call it serves with its Linux ppc64 number", () => {
    for (const [name, number] of Object.entries(SYS)) expect(VFS_KERNEL_CALLS.get(number)?.name).toBe(name);
    expect(VFS_KERNEL_CALLS.size).toBe(Object.keys(SYS).length);
  });

  it("answers a number it does not serve with ENOSYS", async () => {
    expect(failed(await g.call(999))).toBe(Errno.ENOSYS);
  });
});

describe("paths from guest memory", () => {
  it("opens by a NUL-terminated path", async () => {
    const fd = ok(await g.call(SYS.openat, AT_FDCWD, g.string("file"), O_RDONLY, 0));
    expect(fd).toBe(3);
    expect(ok(await g.call(SYS.open, g.string("/dir"), O_RDONLY, 0))).toBe(4);
  });

  it("fails with EFAULT when the path is NULL or outside memory", async () => {
    expect(failed(await g.call(SYS.openat, AT_FDCWD, 0, O_RDONLY, 0))).toBe(Errno.EFAULT);
    expect(failed(await g.call(SYS.openat, AT_FDCWD, 0xdead_0000_0000n, O_RDONLY, 0))).toBe(Errno.EFAULT);
  });

  it("fails with ENAMETOOLONG when no NUL comes within PATH_MAX", async () => {
    const long = g.put(new Uint8Array(5000).fill(0x61));
    expect(failed(await g.call(SYS.openat, AT_FDCWD, long, O_RDONLY, 0))).toBe(Errno.ENAMETOOLONG);
  });

  it("creates with creat(2) as O_CREAT | O_WRONLY | O_TRUNC", async () => {
    const fd = ok(await g.call(SYS.creat, g.string("made"), 0o600));
    expect(ok(await g.call(SYS.write, fd, g.put(encode("abc")), 3))).toBe(3);
    expect(Deno.readTextFileSync(f.host("made"))).toBe("abc");
    expect(Deno.statSync(f.host("made")).mode! & 0o777).toBe(0o600);
  });
});

describe("data", () => {
  it("reads into the buffer and writes from it", async () => {
    const fd = ok(await g.call(SYS.openat, AT_FDCWD, g.string("file"), O_RDWR, 0));
    const buf = g.alloc(16);
    expect(ok(await g.call(SYS.read, fd, buf, 4))).toBe(4);
    expect(decode(g.read(buf, 4))).toBe("0123");
    expect(ok(await g.call(SYS.pread64, fd, buf, 3, 7))).toBe(3);
    expect(decode(g.read(buf, 3))).toBe("789");
    expect(ok(await g.call(SYS.pwrite64, fd, g.put(encode("XY")), 2, 0))).toBe(2);
    expect(ok(await g.call(SYS.lseek, fd, -2, SEEK_END))).toBe(8);
    expect(ok(await g.call(SYS.ftruncate, fd, 5))).toBe(0);
    expect(Deno.readTextFileSync(f.host("file"))).toBe("XY234");
    expect(failed(await g.call(SYS.read, fd, 0, 4))).toBe(Errno.EFAULT);
    expect(ok(await g.call(SYS.read, 0, buf, 16))).toBe(10);
    expect(decode(g.read(buf, 10))).toBe("from stdin");
  });

  it("spreads readv over the vectors and gathers writev from them", async () => {
    const fd = ok(await g.call(SYS.openat, AT_FDCWD, g.string("file"), O_RDWR, 0));
    const a = g.alloc(3);
    const b = g.alloc(20);
    const iov = g.put(iovecs([[a, 3], [0n, 0], [b, 20]]));
    expect(ok(await g.call(SYS.readv, fd, iov, 3))).toBe(10);
    expect(decode(g.read(a, 3))).toBe("012");
    expect(decode(g.read(b, 7))).toBe("3456789");
    const out = g.put(iovecs([[g.put(encode("ab")), 2], [g.put(encode("cde")), 3]]));
    expect(ok(await g.call(SYS.writev, fd, out, 2))).toBe(5);
    expect(ok(await g.call(SYS.pwritev, fd, out, 1, 0))).toBe(2);
    expect(ok(await g.call(SYS.preadv, fd, iov, 1, 13))).toBe(2);
    expect(decode(g.read(a, 2))).toBe("de");
    expect(Deno.readTextFileSync(f.host("file"))).toBe("ab23456789abcde");
    expect(failed(await g.call(SYS.readv, fd, iov, 1025))).toBe(Errno.EINVAL);
    expect(failed(await g.call(SYS.readv, fd, iov, -1))).toBe(Errno.EINVAL);
    expect(failed(await g.call(SYS.writev, fd, 0, 2))).toBe(Errno.EFAULT);
    expect(ok(await g.call(SYS.writev, fd, 0, 0))).toBe(0);
  });

  it("writes to stdout and stderr", async () => {
    expect(ok(await g.call(SYS.write, 1, g.put(encode("hello\n")), 6))).toBe(6);
    expect(ok(await g.call(SYS.write, 2, g.put(encode("oops")), 4))).toBe(4);
    expect(f.captured.text("stdout")).toBe("hello\n");
    expect(f.captured.text("stderr")).toBe("oops");
    expect(failed(await g.call(SYS.write, 1, 0, 6))).toBe(Errno.EFAULT);
    expect(ok(await g.call(SYS.write, 1, 0, 0))).toBe(0);
  });
});

describe("metadata into guest structures", () => {
  it("fills struct stat for stat, lstat, fstat and newfstatat", async () => {
    const buf = g.alloc(144);
    expect(ok(await g.call(SYS.stat, g.string("link"), buf))).toBe(0);
    expect(parseStat(g.read(buf, 144)).mode & S_IFMT).toBe(S_IFREG);
    expect(parseStat(g.read(buf, 144)).size).toBe(10);
    ok(await g.call(SYS.lstat, g.string("link"), buf));
    expect(parseStat(g.read(buf, 144)).mode & S_IFMT).toBe(S_IFLNK);
    const fd = ok(await g.call(SYS.openat, AT_FDCWD, g.string("dir"), O_RDONLY, 0));
    ok(await g.call(SYS.fstat, fd, buf));
    expect(parseStat(g.read(buf, 144)).ino).toBe(Deno.statSync(f.host("dir")).ino);
    ok(await g.call(SYS.newfstatat, fd, g.string(""), buf, AT_EMPTY_PATH));
    expect(parseStat(g.read(buf, 144)).mode & S_IFMT).toBe(S_IFDIR);
    expect(failed(await g.call(SYS.fstat, fd, 0))).toBe(Errno.EFAULT);
    expect(failed(await g.call(SYS.stat, g.string("missing"), buf))).toBe(Errno.ENOENT);
  });

  it("fills struct statx, taking a NULL path with AT_EMPTY_PATH", async () => {
    const buf = g.alloc(256);
    ok(await g.call(SYS.statx, AT_FDCWD, g.string("file"), 0, STATX_BASIC_STATS, buf));
    const sx = parseStatx(g.read(buf, 256));
    expect(sx.size).toBe(10);
    expect(sx.ino).toBe(Deno.statSync(f.host("file")).ino);
    const fd = ok(await g.call(SYS.openat, AT_FDCWD, g.string("dir"), O_RDONLY, 0));
    ok(await g.call(SYS.statx, fd, 0, AT_EMPTY_PATH, STATX_BASIC_STATS, buf));
    expect(parseStatx(g.read(buf, 256)).mode & S_IFMT).toBe(S_IFDIR);
    expect(failed(await g.call(SYS.statx, fd, 0, 0, STATX_BASIC_STATS, buf))).toBe(Errno.EFAULT);
  });

  it("fills linux_dirent64 records with getdents64", async () => {
    const fd = ok(await g.call(SYS.openat, AT_FDCWD, g.string("/"), O_RDONLY, 0));
    const buf = g.alloc(4096);
    const n = ok(await g.call(SYS.getdents64, fd, buf, 4096));
    const names = parseDirents(g.read(buf, n)).map((e) => e.name);
    expect(names).toEqual(expect.arrayContaining([".", "..", "file", "dir", "link", "dev", "proc"]));
    expect(ok(await g.call(SYS.getdents64, fd, buf, 4096))).toBe(0);
    const again = ok(await g.call(SYS.openat, AT_FDCWD, g.string("/"), O_RDONLY, 0));
    expect(failed(await g.call(SYS.getdents64, again, buf, 10))).toBe(Errno.EINVAL);
    expect(failed(await g.call(SYS.getdents64, again, 0, 4096))).toBe(Errno.EFAULT);
  });

  it("reads links with readlink, truncating silently to the buffer", async () => {
    const buf = g.alloc(16);
    expect(ok(await g.call(SYS.readlink, g.string("link"), buf, 16))).toBe(4);
    expect(decode(g.read(buf, 4))).toBe("file");
    expect(ok(await g.call(SYS.readlinkat, AT_FDCWD, g.string("link"), buf, 2))).toBe(2);
    expect(failed(await g.call(SYS.readlink, g.string("link"), buf, 0))).toBe(Errno.EINVAL);
    expect(failed(await g.call(SYS.readlink, g.string("file"), buf, 16))).toBe(Errno.EINVAL);
  });

  it("answers getcwd with the path and its NUL, or ERANGE", async () => {
    ok(await g.call(SYS.chdir, g.string("dir")));
    const buf = g.alloc(64);
    expect(ok(await g.call(SYS.getcwd, buf, 64))).toBe(5);
    expect(g.read(buf, 5)).toEqual(encode("/dir\0"));
    expect(failed(await g.call(SYS.getcwd, buf, 4))).toBe(Errno.ERANGE);
    expect(failed(await g.call(SYS.getcwd, buf, 0))).toBe(Errno.ERANGE);
    const dir = ok(await g.call(SYS.openat, AT_FDCWD, g.string("/"), O_RDONLY, 0));
    ok(await g.call(SYS.fchdir, dir));
    expect(ok(await g.call(SYS.getcwd, buf, 64))).toBe(2);
  });

  it("checks access", async () => {
    expect(ok(await g.call(SYS.access, g.string("file"), 4))).toBe(0);
    expect(failed(await g.call(SYS.access, g.string("missing"), 0))).toBe(Errno.ENOENT);
    expect(ok(await g.call(SYS.faccessat, AT_FDCWD, g.string("dir"), 1))).toBe(0);
    expect(ok(await g.call(SYS.faccessat2, AT_FDCWD, g.string("link"), 0, 0x100))).toBe(0);
    expect(failed(await g.call(SYS.faccessat2, AT_FDCWD, g.string("file"), 8, 0))).toBe(Errno.EINVAL);
  });
});

describe("names", () => {
  it("makes, renames and removes", async () => {
    ok(await g.call(SYS.mkdir, g.string("new"), 0o755));
    ok(await g.call(SYS.mkdirat, AT_FDCWD, g.string("new/inner"), 0o755));
    ok(await g.call(SYS.rename, g.string("file"), g.string("new/file")));
    ok(await g.call(SYS.renameat, AT_FDCWD, g.string("new/file"), AT_FDCWD, g.string("moved")));
    expect(
      failed(
        await g.call(
          SYS.renameat2,
          AT_FDCWD,
          g.string("moved"),
          AT_FDCWD,
          g.string("link"),
          RENAME_NOREPLACE,
        ),
      ),
    )
      .toBe(Errno.EEXIST);
    ok(await g.call(SYS.unlink, g.string("moved")));
    ok(await g.call(SYS.rmdir, g.string("new/inner")));
    ok(await g.call(SYS.unlinkat, AT_FDCWD, g.string("new"), AT_REMOVEDIR));
    expect([...Deno.readDirSync(f.root)].map((e) => e.name).sort()).toEqual(["dir", "link"]);
    expect(ok(await g.call(SYS.umask, 0o077))).toBe(0o022);
    expect(ok(await g.call(SYS.umask, 0o022))).toBe(0o077);
  });
});

describe("descriptors", () => {
  it("duplicates, pipes and controls", async () => {
    expect(ok(await g.call(SYS.dup, 1))).toBe(3);
    expect(ok(await g.call(SYS.dup2, 1, 9))).toBe(9);
    expect(ok(await g.call(SYS.dup3, 1, 9, O_CLOEXEC))).toBe(9);
    expect(ok(await g.call(SYS.fcntl, 9, F_GETFD, 0))).toBe(1);
    expect(ok(await g.call(SYS.fcntl, 1, F_DUPFD, 5))).toBe(5);
    expect(failed(await g.call(SYS.fcntl, 1, F_DUPFD, -1))).toBe(Errno.EINVAL);
    const fds = g.alloc(8);
    ok(await g.call(SYS.pipe2, fds, O_NONBLOCK));
    const view = new DataView(g.read(fds, 8).buffer);
    const [r, w] = [view.getInt32(0, true), view.getInt32(4, true)];
    expect([r, w]).toEqual([4, 6]);
    ok(await g.call(SYS.write, w, g.put(encode("piped")), 5));
    const buf = g.alloc(8);
    expect(ok(await g.call(SYS.read, r, buf, 8))).toBe(5);
    expect(failed(await g.call(SYS.read, r, buf, 8))).toBe(Errno.EAGAIN);
    ok(await g.call(SYS.pipe, fds));
    expect(failed(await g.call(SYS.pipe, 0))).toBe(Errno.EFAULT);
    ok(await g.call(SYS.close, w));
    expect(failed(await g.call(SYS.close, w))).toBe(Errno.EBADF);
    ok(await g.call(SYS.fsync, ok(await g.call(SYS.openat, AT_FDCWD, g.string("file"), O_WRONLY, 0))));
    ok(await g.call(SYS.fdatasync, ok(await g.call(SYS.openat, AT_FDCWD, g.string("file"), O_WRONLY, 0))));
  });
});

describe("ioctl", () => {
  it("copies in what the request's direction says and writes back what it fills", async () => {
    const nonblocking = g.put(new Uint8Array([1, 0, 0, 0]));
    ok(await g.call(SYS.ioctl, 0, FIONBIO, nonblocking));
    expect(ok(await g.call(SYS.fcntl, 0, 3, 0))).toBe(O_RDONLY | O_NONBLOCK);
    const buf = g.alloc(64);
    expect(failed(await g.call(SYS.ioctl, 1, TCGETS, buf))).toBe(Errno.ENOTTY);
    expect(failed(await g.call(SYS.ioctl, 0, FIONBIO, 0))).toBe(Errno.EFAULT);
  });

  it("answers terminal requests on a terminal", async () => {
    const t = fixture({ terminal: new Terminal() });
    try {
      const tg = new FakeGuest(t.vfs, t.pid);
      const termios = tg.alloc(44);
      ok(await tg.call(SYS.ioctl, 1, TCGETS, termios));
      const changed = tg.read(termios, 44);
      changed[12] = 0;
      ok(await tg.call(SYS.ioctl, 1, TCSETS, tg.put(changed)));
      const back = tg.alloc(44);
      ok(await tg.call(SYS.ioctl, 2, TCGETS, back));
      expect(tg.read(back, 44)).toEqual(changed);
      const size = tg.alloc(8);
      ok(await tg.call(SYS.ioctl, 1, TIOCGWINSZ, size));
      expect(new DataView(tg.read(size, 8).buffer).getUint16(2, true)).toBe(80);
      expect(failed(await tg.call(SYS.ioctl, 1, TIOCGWINSZ, 0))).toBe(Errno.EFAULT);
    } finally {
      t.remove();
    }
  });
});

describe("reads that wait", () => {
  it("answer calls out of order: a waiting pipe read holds up nothing", async () => {
    const fds = g.alloc(8);
    ok(await g.call(SYS.pipe2, fds, 0));
    const view = new DataView(g.read(fds, 8).buffer);
    const [r, w] = [view.getInt32(0, true), view.getInt32(4, true)];
    const buf = g.alloc(8);
    const pending = g.call(SYS.read, r, buf, 8);
    expect(ok(await g.call(SYS.openat, AT_FDCWD, g.string("file"), O_RDONLY | O_CREAT, 0o644))).toBe(5);
    ok(await g.call(SYS.write, w, g.put(encode("late")), 4));
    expect(ok(await pending)).toBe(4);
    expect(decode(g.read(buf, 4))).toBe("late");
  });
});

function iovecs(vectors: [bigint, number][]): Uint8Array {
  const bytes = new Uint8Array(vectors.length * 16);
  const view = new DataView(bytes.buffer);
  vectors.forEach(([base, length], i) => {
    view.setBigUint64(i * 16, base, true);
    view.setBigUint64(i * 16 + 8, BigInt(length), true);
  });
  return bytes;
}

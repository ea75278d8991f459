// statfs, fallocate, the advice and sync calls, extended attributes, close_range and the calls
// that copy between descriptors, through the trap path.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  AT_FDCWD,
  CLOSE_RANGE_CLOEXEC,
  CLOSE_RANGE_UNSHARE,
  DEVPTS_SUPER_MAGIC,
  F_GETFD,
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  O_APPEND,
  O_CREAT,
  O_PATH,
  O_RDONLY,
  O_RDWR,
  O_WRONLY,
  PIPEFS_MAGIC,
  PROC_SUPER_MAGIC,
  ST_RDONLY,
  ST_VALID,
  STATFS_BYTES,
  SYS,
  TMPFS_MAGIC,
  XATTR_CREATE,
} from "../../../services/storage/vfs/linux.ts";
import { Terminal } from "../../../services/storage/vfs/streams.ts";
import { FakeGuest } from "./guest.ts";
import { decode, encode, Errno, failed, type Fixture, fixture, ok } from "./helpers.ts";

let f: Fixture;
let g: FakeGuest;

beforeEach(() => {
  f = fixture();
  g = new FakeGuest(f.vfs, f.pid);
  Deno.writeTextFileSync(f.host("file"), "0123456789");
  Deno.mkdirSync(f.host("dir"));
  Deno.symlinkSync("file", f.host("link"));
});

afterEach(() => f.remove());

const open = async (path: string, flags: number, mode = 0) =>
  ok(await g.call(SYS.openat, AT_FDCWD, g.string(path), flags, mode));

async function pipe(): Promise<[number, number]> {
  const fds = g.alloc(8);
  ok(await g.call(SYS.pipe2, fds, 0));
  const view = new DataView(g.read(fds, 8).buffer);
  return [view.getInt32(0, true), view.getInt32(4, true)];
}

/** struct statfs read back: f_type, f_bsize, f_blocks, f_fsid, f_namelen, f_frsize, f_flags. */
function parseStatfs(bytes: Uint8Array) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const word = (at: number) => Number(view.getBigInt64(at, true));
  return {
    type: word(0),
    blockSize: word(8),
    blocks: word(16),
    id: [view.getUint32(56, true), view.getUint32(60, true)],
    nameMax: word(64),
    fragmentSize: word(72),
    flags: word(80),
    spare: bytes.slice(88),
  };
}

describe("statfs and fstatfs", () => {
  async function statfs(path: string) {
    const buf = g.alloc(STATFS_BYTES);
    ok(await g.call(SYS.statfs, g.string(path), buf));
    return parseStatfs(g.read(buf, STATFS_BYTES));
  }

  it("report the host file system under the folder, and /proc's and /dev's own", async () => {
    const folder = await statfs("file");
    expect(folder).toMatchObject({ nameMax: 255, flags: ST_VALID, spare: new Uint8Array(32) });
    expect(folder.blockSize).toBeGreaterThan(0);
    expect(folder.blocks).toBeGreaterThan(0);
    expect(await statfs("/proc/self")).toMatchObject({ type: PROC_SUPER_MAGIC, blocks: 0, nameMax: 255 });
    expect(await statfs("/dev/null")).toMatchObject({
      type: TMPFS_MAGIC,
      blockSize: 4096,
      fragmentSize: 4096,
    });
    Deno.mkdirSync(f.host("ro"));
    f.vfs.mountHostFolder(f.host("dir"), "/ro", true);
    expect((await statfs("/ro")).flags).toBe(ST_VALID | ST_RDONLY);
  });

  it("fstatfs answers for descriptors, O_PATH ones and pipes included", async () => {
    const buf = g.alloc(STATFS_BYTES);
    ok(await g.call(SYS.fstatfs, await open("file", O_PATH), buf));
    expect(parseStatfs(g.read(buf, STATFS_BYTES)).type).toBe((await statfs(".")).type);
    const [read] = await pipe();
    ok(await g.call(SYS.fstatfs, read, buf));
    expect(parseStatfs(g.read(buf, STATFS_BYTES)).type).toBe(PIPEFS_MAGIC);
    ok(await g.call(SYS.fstatfs64, read, STATFS_BYTES, buf));
    expect(failed(await g.call(SYS.fstatfs64, read, 88, buf))).toBe(Errno.EINVAL);
    expect(failed(await g.call(SYS.statfs64, g.string("."), 121, buf))).toBe(Errno.EINVAL);
    expect(failed(await g.call(SYS.fstatfs, 99, buf))).toBe(Errno.EBADF);
    expect(failed(await g.call(SYS.fstatfs, read, 0))).toBe(Errno.EFAULT);
    expect(failed(await g.call(SYS.statfs, g.string("missing"), buf))).toBe(Errno.ENOENT);
    expect(failed(await g.call(SYS.statfs, 0, buf))).toBe(Errno.EFAULT);
  });

  it("judges a standard stream by what the host descriptor is", async () => {
    const buf = g.alloc(STATFS_BYTES);
    ok(await g.call(SYS.fstatfs, 1, buf));
    expect(parseStatfs(g.read(buf, STATFS_BYTES)).type).toBe(PIPEFS_MAGIC);
    const t = fixture({ terminal: new Terminal() });
    try {
      const tg = new FakeGuest(t.vfs, t.pid);
      ok(await tg.call(SYS.fstatfs, 0, buf));
      expect(parseStatfs(tg.read(buf, STATFS_BYTES)).type).toBe(DEVPTS_SUPER_MAGIC);
    } finally {
      t.remove();
    }
  });
});

describe("fallocate, fadvise64, readahead and the sync calls", () => {
  it("fallocate grows a file to the range, or only reserves with FALLOC_FL_KEEP_SIZE", async () => {
    const fd = await open("file", O_RDWR);
    ok(await g.call(SYS.fallocate, fd, 0, 5, 20));
    expect(Deno.statSync(f.host("file")).size).toBe(25);
    ok(await g.call(SYS.fallocate, fd, 0, 0, 10));
    ok(await g.call(SYS.fallocate, fd, FALLOC_FL_KEEP_SIZE, 0, 100));
    expect(Deno.readFileSync(f.host("file"))).toEqual(
      new Uint8Array([...encode("0123456789"), ...new Uint8Array(15)]),
    );
    expect(failed(await g.call(SYS.fallocate, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 1)))
      .toBe(Errno.ENOTSUP);
    expect(failed(await g.call(SYS.fallocate, fd, FALLOC_FL_PUNCH_HOLE, 0, 1))).toBe(Errno.ENOTSUP);
    expect(failed(await g.call(SYS.fallocate, await open("file", O_RDONLY), 0, 0, 1))).toBe(Errno.EBADF);
    expect(failed(await g.call(SYS.fallocate, 1, 0, 0, 1))).toBe(Errno.ESPIPE);
    expect(failed(await g.call(SYS.fallocate, await open("/dev/null", O_WRONLY), 0, 0, 1))).toBe(
      Errno.ENODEV,
    );
  });

  it("fadvise64 and readahead are checked and accepted", async () => {
    const fd = await open("file", O_RDONLY);
    ok(await g.call(SYS.fadvise64, fd, 0, 100, 4));
    expect(failed(await g.call(SYS.fadvise64, fd, 0, 100, 6))).toBe(Errno.EINVAL);
    expect(failed(await g.call(SYS.fadvise64, 0, 0, 100, 0))).toBe(Errno.ESPIPE);
    expect(failed(await g.call(SYS.fadvise64, await open("file", O_PATH), 0, 100, 0))).toBe(Errno.EBADF);
    ok(await g.call(SYS.readahead, fd, 0, 4096));
    expect(failed(await g.call(SYS.readahead, await open("file", O_WRONLY), 0, 4096))).toBe(Errno.EBADF);
    expect(failed(await g.call(SYS.readahead, await open("dir", O_RDONLY), 0, 4096))).toBe(Errno.EINVAL);
  });

  it("sync, syncfs and sync_file_range2 reach the descriptor", async () => {
    const fd = await open("file", O_WRONLY);
    expect(ok(await g.call(SYS.sync))).toBe(0);
    ok(await g.call(SYS.syncfs, fd));
    expect(failed(await g.call(SYS.syncfs, 42))).toBe(Errno.EBADF);
    ok(await g.call(SYS.sync_file_range2, fd, 7, 0, 0));
    expect(failed(await g.call(SYS.sync_file_range2, fd, 8, 0, 0))).toBe(Errno.EINVAL);
    expect(failed(await g.call(SYS.sync_file_range2, 1, 2, 0, 0))).toBe(Errno.ESPIPE);
  });
});

describe("extended attributes, which no file system here keeps", () => {
  const name = () => g.string("user.comment");
  const value = () => g.put(encode("v"));

  it("are absent: get and set answer EOPNOTSUPP, a list is empty", async () => {
    const buf = g.alloc(64);
    expect(failed(await g.call(SYS.getxattr, g.string("file"), name(), buf, 64))).toBe(Errno.ENOTSUP);
    expect(failed(await g.call(SYS.getxattr, g.string("dir"), g.string("security.selinux"), buf, 64)))
      .toBe(Errno.ENOTSUP);
    expect(failed(await g.call(SYS.setxattr, g.string("file"), name(), value(), 1, XATTR_CREATE)))
      .toBe(Errno.ENOTSUP);
    expect(failed(await g.call(SYS.removexattr, g.string("file"), name()))).toBe(Errno.ENOTSUP);
    expect(failed(await g.call(SYS.fgetxattr, await open("file", O_RDONLY), name(), buf, 64))).toBe(
      Errno.ENOTSUP,
    );
    expect(ok(await g.call(SYS.listxattr, g.string("file"), buf, 64))).toBe(0);
    expect(ok(await g.call(SYS.llistxattr, g.string("link"), 0, 0))).toBe(0);
    expect(ok(await g.call(SYS.flistxattr, 0, buf, 64))).toBe(0);
  });

  it("follow xattr_permission's namespace rules first", async () => {
    const buf = g.alloc(64);
    expect(failed(await g.call(SYS.lgetxattr, g.string("link"), name(), buf, 64))).toBe(Errno.ENODATA);
    expect(failed(await g.call(SYS.lsetxattr, g.string("link"), name(), value(), 1, 0))).toBe(Errno.EPERM);
    expect(failed(await g.call(SYS.fgetxattr, 1, name(), buf, 64))).toBe(Errno.ENODATA);
    expect(failed(await g.call(SYS.getxattr, g.string("file"), g.string("system.posix_acl_access"), buf, 64)))
      .toBe(Errno.ENOTSUP);
    f.vfs.credentials.uid = 1000;
    expect(failed(await g.call(SYS.getxattr, g.string("file"), g.string("trusted.x"), buf, 64)))
      .toBe(Errno.ENODATA);
    expect(failed(await g.call(SYS.setxattr, g.string("file"), g.string("trusted.x"), value(), 1, 0)))
      .toBe(Errno.EPERM);
    expect(failed(await g.call(SYS.setxattr, g.string("file"), g.string("security.x"), value(), 1, 0)))
      .toBe(Errno.EPERM);
    Deno.chmodSync(f.host("file"), 0o600);
    Deno.chownSync(f.host("file"), 0, 0);
    expect(failed(await g.call(SYS.getxattr, g.string("file"), name(), buf, 64))).toBe(Errno.EACCES);
    expect(failed(await g.call(SYS.setxattr, g.string("file"), name(), value(), 1, 0))).toBe(Errno.EACCES);
  });

  it("check flags, name and size before the file, and EROFS before the rules", async () => {
    const buf = g.alloc(64);
    expect(failed(await g.call(SYS.setxattr, g.string("missing"), name(), value(), 1, 4))).toBe(Errno.EINVAL);
    expect(failed(await g.call(SYS.setxattr, g.string("missing"), g.string(""), value(), 1, 0))).toBe(
      Errno.ERANGE,
    );
    expect(failed(await g.call(SYS.setxattr, g.string("missing"), name(), value(), 65537, 0))).toBe(
      Errno.E2BIG,
    );
    expect(failed(await g.call(SYS.setxattr, g.string("missing"), name(), 0, 1, 0))).toBe(Errno.EFAULT);
    expect(failed(await g.call(SYS.setxattr, g.string("missing"), name(), value(), 1, 0))).toBe(Errno.ENOENT);
    const long = g.string(`user.${"x".repeat(300)}`);
    expect(failed(await g.call(SYS.getxattr, g.string("missing"), long, buf, 64))).toBe(Errno.ERANGE);
    expect(failed(await g.call(SYS.fremovexattr, 99, name()))).toBe(Errno.EBADF);
    expect(failed(await g.call(SYS.fgetxattr, await open("file", O_PATH), name(), buf, 64))).toBe(
      Errno.EBADF,
    );
    expect(failed(await g.call(SYS.getxattr, g.string("file"), 0, buf, 64))).toBe(Errno.EFAULT);
    Deno.mkdirSync(f.host("ro"));
    f.vfs.mountHostFolder(f.host("dir"), "/ro", true);
    expect(failed(await g.call(SYS.setxattr, g.string("/ro"), name(), value(), 1, 0))).toBe(Errno.EROFS);
    expect(failed(await g.call(SYS.removexattr, g.string("/ro"), name()))).toBe(Errno.EROFS);
  });
});

describe("close_range", () => {
  it("closes a range, or marks it close-on-exec, and can unshare a shared table first", async () => {
    const fds = [await open("file", O_RDONLY), await open("file", O_RDONLY), await open("file", O_RDONLY)];
    ok(await g.call(SYS.close_range, fds[1], 0xffffffff, CLOSE_RANGE_CLOEXEC));
    expect(ok(await g.call(SYS.fcntl, fds[2], F_GETFD, 0))).toBe(1);
    expect(ok(await g.call(SYS.fcntl, fds[0], F_GETFD, 0))).toBe(0);
    f.vfs.attachProcess(2, { parentPid: f.pid, inheritance: "share" });
    const child = new FakeGuest(f.vfs, 2);
    ok(await child.call(SYS.close_range, fds[0], fds[2], CLOSE_RANGE_UNSHARE));
    expect(failed(await child.call(SYS.fcntl, fds[0], F_GETFD, 0))).toBe(Errno.EBADF);
    expect(ok(await g.call(SYS.fcntl, fds[0], F_GETFD, 0))).toBe(0);
    ok(await g.call(SYS.close_range, fds[0], fds[2], 0));
    expect(failed(await g.call(SYS.fcntl, fds[1], F_GETFD, 0))).toBe(Errno.EBADF);
    expect(failed(await g.call(SYS.close_range, 5, 4, 0))).toBe(Errno.EINVAL);
    expect(failed(await g.call(SYS.close_range, 0, 4, 1))).toBe(Errno.EINVAL);
  });
});

describe("sendfile and copy_file_range", () => {
  it("sendfile moves a file into a pipe, waiting for room, and updates the offset it is given", async () => {
    const bytes = new Uint8Array(70_000).map((_, i) => i % 251);
    Deno.writeFileSync(f.host("big"), bytes);
    const input = await open("big", O_RDONLY);
    const [read, write] = await pipe();
    const sending = g.call(SYS.sendfile, write, input, 0, bytes.length);
    const buf = g.alloc(bytes.length);
    let got = 0;
    while (got < bytes.length) got += ok(await g.call(SYS.read, read, buf + BigInt(got), bytes.length - got));
    expect(ok(await sending)).toBe(bytes.length);
    // (Compared byte by byte: a deep equality of this many elements is slow.)
    expect(g.read(buf, bytes.length).every((byte, i) => byte === bytes[i])).toBe(true);
    const offset = g.put(new Uint8Array(8));
    new DataView(g.bytes.buffer).setBigInt64(Number(offset - 0x10000n), 69_990n, true);
    expect(ok(await g.call(SYS.sendfile, 1, input, offset, 100))).toBe(10);
    expect(new DataView(g.read(offset, 8).buffer).getBigInt64(0, true)).toBe(70_000n);
    expect(f.captured.stdout.length).toBe(1);
    expect(failed(await g.call(SYS.sendfile, write, input, 0xdead_0000_0000n, 1))).toBe(Errno.EFAULT);
  });

  it("copy_file_range copies between files, from the file offsets or the ones it is given", async () => {
    const input = await open("file", O_RDONLY);
    const output = await open("copy", O_RDWR | O_CREAT, 0o644);
    expect(ok(await g.call(SYS.copy_file_range, input, 0, output, 0, 4, 0))).toBe(4);
    const at = g.put(new Uint8Array(8));
    new DataView(g.bytes.buffer).setBigInt64(Number(at - 0x10000n), 8n, true);
    expect(ok(await g.call(SYS.copy_file_range, input, at, output, 0, 100, 0))).toBe(2);
    expect(new DataView(g.read(at, 8).buffer).getBigInt64(0, true)).toBe(10n);
    expect(decode(Deno.readFileSync(f.host("copy")))).toBe("012389");
    expect(ok(await g.call(SYS.lseek, input, 0, 1))).toBe(4);
    const append = await open("copy", O_WRONLY | O_APPEND);
    expect(failed(await g.call(SYS.copy_file_range, input, 0, append, 0, 1, 0))).toBe(Errno.EBADF);
    expect(failed(await g.call(SYS.copy_file_range, input, 0, await open("/dev/null", O_WRONLY), 0, 1, 0)))
      .toBe(Errno.EINVAL);
  });
});

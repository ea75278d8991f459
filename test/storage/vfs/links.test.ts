// symlink, link, mknod and truncate through the trap path: names made on the host folder with
// Linux's checks, and the answers of /dev and /proc, which make none.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  AT_EMPTY_PATH,
  AT_FDCWD,
  AT_SYMLINK_FOLLOW,
  O_PATH,
  O_RDONLY,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFREG,
  S_IFSOCK,
  SYS,
} from "../../../services/storage/vfs/linux.ts";
import { FakeGuest } from "./guest.ts";
import { decode, Errno, failed, type Fixture, fixture, ok } from "./helpers.ts";

let f: Fixture;
let g: FakeGuest;
const root = Deno.uid() === 0;

beforeEach(() => {
  f = fixture();
  g = new FakeGuest(f.vfs, f.pid);
  Deno.writeTextFileSync(f.host("file"), "0123456789");
  Deno.mkdirSync(f.host("dir"));
  Deno.symlinkSync("file", f.host("link"));
});

afterEach(() => f.remove());

const open = async (path: string, flags: number) =>
  ok(await g.call(SYS.openat, AT_FDCWD, g.string(path), flags, 0));

describe("symlink and symlinkat", () => {
  it("make a link whose target is kept as given", async () => {
    ok(await g.call(SYS.symlink, g.string("file"), g.string("new")));
    expect(Deno.readLinkSync(f.host("new"))).toBe("file");
    const dir = await open("dir", O_RDONLY);
    ok(await g.call(SYS.symlinkat, g.string("/nowhere/at all"), dir, g.string("dangling")));
    expect(Deno.readLinkSync(f.host("dir/dangling"))).toBe("/nowhere/at all");
    const buf = g.alloc(64);
    expect(ok(await g.call(SYS.readlink, g.string("dir/dangling"), buf, 64))).toBe(15);
    expect(decode(g.read(buf, 15))).toBe("/nowhere/at all");
    const text = g.alloc(16);
    expect(ok(await g.call(SYS.read, await open("new", O_RDONLY), text, 16))).toBe(10);
  });

  it("fail as Linux does", async () => {
    const make = async (target: string | number, path: string | number) =>
      failed(
        await g.call(
          SYS.symlink,
          typeof target === "string" ? g.string(target) : target,
          typeof path === "string" ? g.string(path) : path,
        ),
      );
    expect(await make("", "new")).toBe(Errno.ENOENT);
    expect(await make("file", "file")).toBe(Errno.EEXIST);
    expect(await make("file", "link")).toBe(Errno.EEXIST);
    expect(await make("file", "dir/")).toBe(Errno.EEXIST);
    expect(await make("file", "new/")).toBe(Errno.ENOENT);
    expect(await make("file", ".")).toBe(Errno.EEXIST);
    expect(await make("file", "missing/new")).toBe(Errno.ENOENT);
    expect(await make("file", "file/new")).toBe(Errno.ENOTDIR);
    expect(await make(0, "new")).toBe(Errno.EFAULT);
    expect(await make("file", 0)).toBe(Errno.EFAULT);
    expect(await make("file", "/dev/new")).toBe(Errno.EACCES);
    expect(failed(await g.call(SYS.symlinkat, g.string("x"), 99, g.string("new")))).toBe(Errno.EBADF);
  });
});

describe("link and linkat", () => {
  it("give a file another name; a symbolic link is linked itself unless AT_SYMLINK_FOLLOW", async () => {
    ok(await g.call(SYS.link, g.string("file"), g.string("dir/hard")));
    expect(Deno.statSync(f.host("dir/hard")).ino).toBe(Deno.statSync(f.host("file")).ino);
    expect(Deno.statSync(f.host("file")).nlink).toBe(2);
    ok(await g.call(SYS.linkat, AT_FDCWD, g.string("link"), AT_FDCWD, g.string("link2"), 0));
    expect(Deno.lstatSync(f.host("link2")).isSymlink).toBe(true);
    ok(
      await g.call(SYS.linkat, AT_FDCWD, g.string("link"), AT_FDCWD, g.string("followed"), AT_SYMLINK_FOLLOW),
    );
    expect(Deno.lstatSync(f.host("followed")).ino).toBe(Deno.statSync(f.host("file")).ino);
  });

  it.skipIf(!root)("link a descriptor's own file with AT_EMPTY_PATH (root's)", async () => {
    const fd = await open("file", O_RDONLY);
    ok(await g.call(SYS.linkat, fd, g.string(""), AT_FDCWD, g.string("again"), AT_EMPTY_PATH));
    expect(Deno.statSync(f.host("again")).ino).toBe(Deno.statSync(f.host("file")).ino);
  });

  it("fail as Linux does", async () => {
    const link = async (from: string, to: string, flags = 0) =>
      failed(await g.call(SYS.linkat, AT_FDCWD, g.string(from), AT_FDCWD, g.string(to), flags));
    expect(await link("dir", "dir2")).toBe(Errno.EPERM);
    expect(await link("missing", "new")).toBe(Errno.ENOENT);
    expect(await link("file", "link")).toBe(Errno.EEXIST);
    expect(await link("file", "new/")).toBe(Errno.ENOENT);
    expect(await link("file/", "new")).toBe(Errno.ENOTDIR);
    expect(await link("file", "/dev/new")).toBe(Errno.EXDEV);
    expect(await link("/dev/null", "new")).toBe(Errno.EXDEV);
    expect(await link("file", "new", 0x8)).toBe(Errno.EINVAL);
    f.vfs.credentials.uid = 1000;
    expect(await link("", "new", AT_EMPTY_PATH)).toBe(Errno.ENOENT);
  });
});

describe("mknod and mknodat", () => {
  it("make a regular file with the umask applied", async () => {
    ok(await g.call(SYS.mknod, g.string("plain"), S_IFREG | 0o666));
    expect(Deno.statSync(f.host("plain"))).toMatchObject({ isFile: true, size: 0 });
    expect(Deno.statSync(f.host("plain")).mode! & 0o7777).toBe(0o644);
    ok(await g.call(SYS.mknodat, await open("dir", O_RDONLY), g.string("zero-type"), 0o600));
    expect(Deno.statSync(f.host("dir/zero-type")).mode! & 0o7777).toBe(0o600);
  });

  it("make no FIFOs, sockets or devices (EPERM, after Linux's own checks) and refuse directories", async () => {
    const mknod = async (path: string, mode: number) => failed(await g.call(SYS.mknod, g.string(path), mode));
    expect(await mknod("fifo", S_IFIFO | 0o644)).toBe(Errno.EPERM);
    expect(await mknod("socket", S_IFSOCK | 0o644)).toBe(Errno.EPERM);
    expect(await mknod("dir2", S_IFDIR | 0o755)).toBe(Errno.EPERM);
    expect(await mknod("odd", 0o170000 | 0o644)).toBe(Errno.EINVAL);
    expect(await mknod("file", S_IFIFO | 0o644)).toBe(Errno.EEXIST);
    expect(await mknod("file", S_IFREG | 0o644)).toBe(Errno.EEXIST);
    expect(await mknod("missing/x", S_IFREG)).toBe(Errno.ENOENT);
    expect(await mknod("/proc/x", S_IFREG)).toBe(Errno.ENOENT);
    f.vfs.credentials.uid = 1000;
    expect(await mknod("/dev/fifo", S_IFIFO | 0o644)).toBe(Errno.EACCES);
    Deno.chmodSync(f.host("dir"), 0o777);
    expect(await mknod("dir/device", S_IFCHR | 0o644)).toBe(Errno.EPERM);
    expect(await mknod("dir/block", S_IFBLK | 0o644)).toBe(Errno.EPERM);
    expect(Deno.readDirSync(f.host("dir")).toArray()).toEqual([]);
  });
});

describe("truncate", () => {
  it("sets a file's length by path, following links", async () => {
    ok(await g.call(SYS.truncate, g.string("link"), 4));
    expect(Deno.readTextFileSync(f.host("file"))).toBe("0123");
    ok(await g.call(SYS.truncate, g.string("file"), 6));
    expect(Deno.readFileSync(f.host("file"))).toEqual(new Uint8Array([48, 49, 50, 51, 0, 0]));
  });

  it("fails as Linux does", async () => {
    const truncate = async (path: string | number, length: number | bigint) =>
      failed(await g.call(SYS.truncate, typeof path === "string" ? g.string(path) : path, length));
    expect(await truncate("dir", 0)).toBe(Errno.EISDIR);
    expect(await truncate("/dev/null", 0)).toBe(Errno.EINVAL);
    expect(await truncate("missing", 0)).toBe(Errno.ENOENT);
    expect(await truncate("file", -1)).toBe(Errno.EINVAL);
    expect(await truncate("file", 2n ** 62n)).toBe(Errno.EFBIG);
    expect(await truncate(0, 0)).toBe(Errno.EFAULT);
    Deno.mkdirSync(f.host("ro"));
    f.vfs.mountHostFolder(f.root, "/ro", true);
    expect(await truncate("/ro/file", 0)).toBe(Errno.EROFS);
    const fd = await open("file", O_PATH);
    expect(failed(await g.call(SYS.ftruncate, fd, 0))).toBe(Errno.EBADF);
  });
});

describe("names in /dev and /proc", () => {
  it("are never made", async () => {
    expect(failed(await g.call(SYS.link, g.string("/proc/self"), g.string("/proc/x")))).toBe(Errno.EPERM);
    expect(failed(await g.call(SYS.symlink, g.string("x"), g.string("/proc/x")))).toBe(Errno.EPERM);
    expect(failed(await g.call(SYS.link, g.string("/dev/null"), g.string("/dev/x")))).toBe(Errno.EACCES);
    f.vfs.credentials.uid = 1000;
    expect(failed(await g.call(SYS.symlink, g.string("x"), g.string("/proc/x")))).toBe(Errno.EACCES);
    const lstat = g.alloc(144);
    ok(await g.call(SYS.lstat, g.string("/dev/stdin"), lstat));
    expect(new DataView(g.read(lstat, 144).buffer).getUint32(24, true) & 0o170000).toBe(S_IFLNK);
  });
});

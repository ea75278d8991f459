// Regular files and the calls on them: open flags, read/write and their positional and vectored
// forms, lseek, ftruncate, fsync, against the host file they really change.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  AT_FDCWD,
  F_GETFL,
  F_SETFL,
  O_APPEND,
  O_CLOEXEC,
  O_CREAT,
  O_DIRECT,
  O_DIRECTORY,
  O_EXCL,
  O_LARGEFILE,
  O_NOATIME,
  O_NOCTTY,
  O_NONBLOCK,
  O_PATH,
  O_RDONLY,
  O_RDWR,
  O_SYNC,
  O_TMPFILE,
  O_TRUNC,
  O_WRONLY,
  SEEK_CUR,
  SEEK_DATA,
  SEEK_END,
  SEEK_HOLE,
  SEEK_SET,
} from "../../../services/storage/vfs/linux.ts";
import { asyncErrnoOf, decode, encode, Errno, errnoOf, type Fixture, fixture } from "./helpers.ts";

let f: Fixture;

beforeEach(() => {
  f = fixture();
  Deno.writeTextFileSync(f.host("file"), "0123456789");
  Deno.mkdirSync(f.host("dir"));
});

afterEach(() => f.remove());

const open = (path: string, flags: number, mode = 0o644) => f.vfs.openat(f.pid, AT_FDCWD, path, flags, mode);
const hostText = (path: string) => Deno.readTextFileSync(f.host(path));

describe("openat", () => {
  it("hands out the lowest free descriptor", () => {
    expect(open("file", O_RDONLY)).toBe(3);
    expect(open("file", O_RDONLY)).toBe(4);
    f.vfs.close(f.pid, 3);
    expect(open("file", O_RDONLY)).toBe(3);
    f.vfs.close(f.pid, 0);
    expect(open("file", O_RDONLY)).toBe(0);
  });

  it("creates with O_CREAT, refuses an existing name with O_EXCL and truncates with O_TRUNC", () => {
    const fd = open("new", O_WRONLY | O_CREAT | O_EXCL, 0o600);
    expect(Deno.statSync(f.host("new")).isFile).toBe(true);
    expect(errnoOf(() => open("new", O_WRONLY | O_CREAT | O_EXCL))).toBe(Errno.EEXIST);
    expect(errnoOf(() => open("dir", O_RDONLY | O_CREAT | O_EXCL))).toBe(Errno.EEXIST);
    f.vfs.close(f.pid, fd);
    open("file", O_WRONLY | O_TRUNC);
    expect(hostText("file")).toBe("");
  });

  it("truncates with O_RDONLY | O_TRUNC too, as Linux does", () => {
    open("file", O_RDONLY | O_TRUNC);
    expect(hostText("file")).toBe("");
  });

  it("fails what Linux fails", () => {
    expect(errnoOf(() => open("missing", O_RDONLY))).toBe(Errno.ENOENT);
    expect(errnoOf(() => open("missing/x", O_RDONLY | O_CREAT))).toBe(Errno.ENOENT);
    expect(errnoOf(() => open("file", O_RDONLY | O_DIRECTORY))).toBe(Errno.ENOTDIR);
    expect(errnoOf(() => open("dir", O_WRONLY))).toBe(Errno.EISDIR);
    expect(errnoOf(() => open("dir", O_RDWR))).toBe(Errno.EISDIR);
    expect(errnoOf(() => open("dir", O_RDONLY | O_CREAT))).toBe(Errno.EISDIR);
    expect(errnoOf(() => open("dir", O_RDONLY | O_TRUNC))).toBe(Errno.EISDIR);
    expect(errnoOf(() => open("x", O_RDONLY | O_CREAT | O_DIRECTORY))).toBe(Errno.EINVAL);
    expect(errnoOf(() => open(".", O_RDWR | O_CREAT))).toBe(Errno.EISDIR);
    expect(errnoOf(() => open("dir", O_TMPFILE | O_RDONLY))).toBe(Errno.EINVAL);
    expect(errnoOf(() => open("dir", O_TMPFILE | O_RDWR))).toBe(Errno.ENOTSUP);
  });

  it("answers F_GETFL as Linux does: O_LARGEFILE added, open-only flags gone", () => {
    const fd = open("file", O_RDWR | O_APPEND | O_NONBLOCK | O_SYNC | O_CLOEXEC | O_NOCTTY | O_TRUNC);
    expect(f.vfs.fcntl(f.pid, fd, F_GETFL, 0)).toBe(O_RDWR | O_APPEND | O_NONBLOCK | O_SYNC | O_LARGEFILE);
    const dir = open("dir", O_RDONLY | O_DIRECTORY);
    expect(f.vfs.fcntl(f.pid, dir, F_GETFL, 0)).toBe(O_DIRECTORY | O_LARGEFILE);
    const path = open("file", O_PATH | O_WRONLY | O_APPEND);
    expect(f.vfs.fcntl(f.pid, path, F_GETFL, 0)).toBe(O_PATH);
    const neither = open("file", 3);
    expect(f.vfs.fcntl(f.pid, neither, F_GETFL, 0)).toBe(3 | O_LARGEFILE);
  });

  it("changes only O_APPEND, O_NONBLOCK, O_DIRECT and O_NOATIME with F_SETFL", () => {
    const fd = open("file", O_RDONLY);
    f.vfs.fcntl(f.pid, fd, F_SETFL, 0xffffffff & ~3);
    expect(f.vfs.fcntl(f.pid, fd, F_GETFL, 0)).toBe(
      O_APPEND | O_NONBLOCK | O_DIRECT | O_NOATIME | O_LARGEFILE,
    );
    f.vfs.fcntl(f.pid, fd, F_SETFL, O_RDWR);
    expect(f.vfs.fcntl(f.pid, fd, F_GETFL, 0)).toBe(O_LARGEFILE);
  });
});

describe("read and write", () => {
  it("reads from the offset and advances it, returning less at end of file and nothing past it", async () => {
    const fd = open("file", O_RDONLY);
    expect(decode(await f.vfs.read(f.pid, fd, 4))).toBe("0123");
    expect(decode(await f.vfs.read(f.pid, fd, 4))).toBe("4567");
    expect(decode(await f.vfs.read(f.pid, fd, 4))).toBe("89");
    expect((await f.vfs.read(f.pid, fd, 4)).length).toBe(0);
    expect((await f.vfs.read(f.pid, fd, 0)).length).toBe(0);
  });

  it("writes at the offset, extending the file", async () => {
    const fd = open("file", O_RDWR);
    f.vfs.lseek(f.pid, fd, 8, SEEK_SET);
    expect(await f.vfs.write(f.pid, fd, encode("abcd"))).toBe(4);
    expect(hostText("file")).toBe("01234567abcd");
    expect(f.vfs.lseek(f.pid, fd, 0, SEEK_CUR)).toBe(12);
    f.vfs.lseek(f.pid, fd, 14, SEEK_SET);
    await f.vfs.write(f.pid, fd, encode("!"));
    expect(Deno.readFileSync(f.host("file"))).toEqual(encode("01234567abcd\0\0!"));
  });

  it("appends every write with O_APPEND whatever the offset, and leaves the offset at the end", async () => {
    const fd = open("file", O_RDWR | O_APPEND);
    f.vfs.lseek(f.pid, fd, 0, SEEK_SET);
    await f.vfs.write(f.pid, fd, encode("A"));
    expect(f.vfs.lseek(f.pid, fd, 0, SEEK_CUR)).toBe(11);
    // pwrite on an O_APPEND descriptor appends too (a documented Linux quirk).
    f.vfs.pwrite(f.pid, fd, encode("B"), 0);
    expect(hostText("file")).toBe("0123456789AB");
  });

  it("turns append on and off with F_SETFL", async () => {
    const fd = open("file", O_WRONLY);
    f.vfs.fcntl(f.pid, fd, F_SETFL, O_APPEND);
    await f.vfs.write(f.pid, fd, encode("X"));
    f.vfs.fcntl(f.pid, fd, F_SETFL, 0);
    f.vfs.lseek(f.pid, fd, 0, SEEK_SET);
    await f.vfs.write(f.pid, fd, encode("Y"));
    expect(hostText("file")).toBe("Y123456789X");
  });

  it("refuses reads and writes the access mode does not allow with EBADF", async () => {
    const ro = open("file", O_RDONLY);
    const wo = open("file", O_WRONLY);
    const path = open("file", O_PATH);
    const neither = open("file", 3);
    expect(await asyncErrnoOf(() => f.vfs.write(f.pid, ro, encode("x")))).toBe(Errno.EBADF);
    expect(await asyncErrnoOf(() => f.vfs.read(f.pid, wo, 1))).toBe(Errno.EBADF);
    expect(await asyncErrnoOf(() => f.vfs.read(f.pid, path, 1))).toBe(Errno.EBADF);
    expect(await asyncErrnoOf(() => f.vfs.read(f.pid, neither, 1))).toBe(Errno.EBADF);
    expect(await asyncErrnoOf(() => f.vfs.read(f.pid, 77, 1))).toBe(Errno.EBADF);
    expect(errnoOf(() => f.vfs.pwrite(f.pid, ro, encode("x"), 0))).toBe(Errno.EBADF);
  });

  it("reads a directory with EISDIR", async () => {
    const fd = open("dir", O_RDONLY);
    expect(await asyncErrnoOf(() => f.vfs.read(f.pid, fd, 10))).toBe(Errno.EISDIR);
    expect(errnoOf(() => f.vfs.pread(f.pid, fd, 10, 0))).toBe(Errno.EISDIR);
  });
});

describe("pread64 and pwrite64", () => {
  it("reads and writes at an offset without moving the file offset", async () => {
    const fd = open("file", O_RDWR);
    await f.vfs.read(f.pid, fd, 2);
    expect(decode(f.vfs.pread(f.pid, fd, 3, 5))).toBe("567");
    expect(f.vfs.pwrite(f.pid, fd, encode("zz"), 8)).toBe(2);
    expect(f.vfs.lseek(f.pid, fd, 0, SEEK_CUR)).toBe(2);
    expect(hostText("file")).toBe("01234567zz");
    expect(f.vfs.pread(f.pid, fd, 3, 100).length).toBe(0);
  });

  it("refuses a negative offset with EINVAL", () => {
    const fd = open("file", O_RDWR);
    expect(errnoOf(() => f.vfs.pread(f.pid, fd, 1, -1))).toBe(Errno.EINVAL);
    expect(errnoOf(() => f.vfs.pwrite(f.pid, fd, encode("x"), -1))).toBe(Errno.EINVAL);
  });
});

describe("readv and writev", () => {
  it("spreads one read over the vectors and gathers one write from them", async () => {
    const fd = open("file", O_RDWR);
    const pieces = await f.vfs.readv(f.pid, fd, [3, 0, 4, 10]);
    expect(pieces.map(decode)).toEqual(["012", "", "3456", "789"]);
    expect(await f.vfs.writev(f.pid, fd, [encode("ab"), encode(""), encode("cd")])).toBe(4);
    expect(hostText("file")).toBe("0123456789abcd");
    expect(await f.vfs.writev(f.pid, fd, [encode("Z")], 0)).toBe(1);
    expect((await f.vfs.readv(f.pid, fd, [2, 2], 1)).map(decode)).toEqual(["12", "34"]);
    expect(hostText("file")).toBe("Z123456789abcd");
  });

  it("refuses more than UIO_MAXIOV vectors with EINVAL", async () => {
    const fd = open("file", O_RDWR);
    expect(await asyncErrnoOf(() => f.vfs.readv(f.pid, fd, new Array(1025).fill(1)))).toBe(Errno.EINVAL);
    expect(await asyncErrnoOf(() => f.vfs.writev(f.pid, fd, new Array(1025).fill(encode("x"))))).toBe(
      Errno.EINVAL,
    );
  });
});

describe("lseek", () => {
  it("moves by SEEK_SET, SEEK_CUR and SEEK_END, past the end too", () => {
    const fd = open("file", O_RDONLY);
    expect(f.vfs.lseek(f.pid, fd, 4, SEEK_SET)).toBe(4);
    expect(f.vfs.lseek(f.pid, fd, 2, SEEK_CUR)).toBe(6);
    expect(f.vfs.lseek(f.pid, fd, -1, SEEK_END)).toBe(9);
    expect(f.vfs.lseek(f.pid, fd, 100, SEEK_END)).toBe(110);
  });

  it("answers SEEK_DATA and SEEK_HOLE for a file without holes", () => {
    const fd = open("file", O_RDONLY);
    expect(f.vfs.lseek(f.pid, fd, 3, SEEK_DATA)).toBe(3);
    expect(f.vfs.lseek(f.pid, fd, 3, SEEK_HOLE)).toBe(10);
    expect(errnoOf(() => f.vfs.lseek(f.pid, fd, 10, SEEK_DATA))).toBe(Errno.ENXIO);
  });

  it("refuses a negative result and an unknown whence with EINVAL", () => {
    const fd = open("file", O_RDONLY);
    expect(errnoOf(() => f.vfs.lseek(f.pid, fd, -1, SEEK_SET))).toBe(Errno.EINVAL);
    expect(errnoOf(() => f.vfs.lseek(f.pid, fd, -11, SEEK_END))).toBe(Errno.EINVAL);
    expect(errnoOf(() => f.vfs.lseek(f.pid, fd, 0, 5))).toBe(Errno.EINVAL);
    expect(f.vfs.lseek(f.pid, fd, 0, SEEK_CUR)).toBe(0);
  });

  it("answers EBADF on a closed or O_PATH descriptor", () => {
    const path = open("file", O_PATH);
    expect(errnoOf(() => f.vfs.lseek(f.pid, path, 0, SEEK_SET))).toBe(Errno.EBADF);
    expect(errnoOf(() => f.vfs.lseek(f.pid, 40, 0, SEEK_SET))).toBe(Errno.EBADF);
  });
});

describe("ftruncate, fsync and fdatasync", () => {
  it("shrinks and grows the host file and keeps the offset", async () => {
    const fd = open("file", O_RDWR);
    await f.vfs.read(f.pid, fd, 8);
    f.vfs.ftruncate(f.pid, fd, 4);
    expect(hostText("file")).toBe("0123");
    expect(f.vfs.lseek(f.pid, fd, 0, SEEK_CUR)).toBe(8);
    f.vfs.ftruncate(f.pid, fd, 6);
    expect(Deno.readFileSync(f.host("file"))).toEqual(encode("0123\0\0"));
  });

  it("needs a regular file open for writing (EINVAL) and a usable descriptor (EBADF)", () => {
    expect(errnoOf(() => f.vfs.ftruncate(f.pid, open("file", O_RDONLY), 0))).toBe(Errno.EINVAL);
    expect(errnoOf(() => f.vfs.ftruncate(f.pid, open("dir", O_RDONLY), 0))).toBe(Errno.EINVAL);
    expect(errnoOf(() => f.vfs.ftruncate(f.pid, open("file", O_RDWR), -1))).toBe(Errno.EINVAL);
    expect(errnoOf(() => f.vfs.ftruncate(f.pid, open("file", O_PATH), 0))).toBe(Errno.EBADF);
    expect(errnoOf(() => f.vfs.ftruncate(f.pid, 1, 0))).toBe(Errno.EINVAL);
  });

  it("syncs files and directories, and refuses streams", () => {
    f.vfs.fsync(f.pid, open("file", O_WRONLY));
    f.vfs.fsync(f.pid, open("file", O_RDONLY), true);
    f.vfs.fsync(f.pid, open("dir", O_RDONLY));
    expect(errnoOf(() => f.vfs.fsync(f.pid, 1))).toBe(Errno.EINVAL);
    expect(errnoOf(() => f.vfs.fsync(f.pid, open("file", O_PATH)))).toBe(Errno.EBADF);
  });
});

describe("close", () => {
  it("closes once, then answers EBADF", () => {
    const fd = open("file", O_RDONLY);
    f.vfs.close(f.pid, fd);
    expect(errnoOf(() => f.vfs.close(f.pid, fd))).toBe(Errno.EBADF);
    expect(errnoOf(() => f.vfs.close(f.pid, -1))).toBe(Errno.EBADF);
  });

  it("answers ESRCH for a process it does not know", () => {
    expect(errnoOf(() => f.vfs.close(999, 0))).toBe(Errno.ESRCH);
  });
});

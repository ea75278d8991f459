// Pipes: buffering, end of file when the last writer goes, EPIPE when the last reader goes,
// waiting and waking, O_NONBLOCK, PIPE_BUF atomicity, the capacity fcntls and FIONREAD.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  F_GETFL,
  F_GETPIPE_SZ,
  F_SETFL,
  F_SETPIPE_SZ,
  FIONREAD,
  O_CLOEXEC,
  O_DIRECT,
  O_NONBLOCK,
  O_RDONLY,
  O_WRONLY,
  S_IFIFO,
  SEEK_SET,
} from "../../../services/storage/vfs/linux.ts";
import { asyncErrnoOf, decode, encode, Errno, errnoOf, type Fixture, fixture } from "./helpers.ts";

let f: Fixture;

beforeEach(() => {
  f = fixture();
});

afterEach(() => f.remove());

const settle = () => new Promise((resolve) => setTimeout(resolve, 5));

describe("pipe2", () => {
  it("returns the two lowest free descriptors, read end first", () => {
    expect(f.vfs.pipe2(f.pid, 0)).toEqual([3, 4]);
    f.vfs.close(f.pid, 3);
    expect(f.vfs.pipe2(f.pid, 0)).toEqual([3, 5]);
  });

  it("takes O_CLOEXEC and O_NONBLOCK and nothing else", () => {
    const [r, w] = f.vfs.pipe2(f.pid, O_CLOEXEC | O_NONBLOCK);
    expect(f.vfs.fcntl(f.pid, r, F_GETFL, 0)).toBe(O_RDONLY | O_NONBLOCK);
    expect(f.vfs.fcntl(f.pid, w, F_GETFL, 0)).toBe(O_WRONLY | O_NONBLOCK);
    expect(f.vfs.fcntl(f.pid, r, 1, 0)).toBe(1);
    expect(errnoOf(() => f.vfs.pipe2(f.pid, O_DIRECT))).toBe(Errno.EINVAL);
    expect(errnoOf(() => f.vfs.pipe2(f.pid, 0x1))).toBe(Errno.EINVAL);
  });

  it("reports a FIFO with no size and refuses seeking", () => {
    const [r, w] = f.vfs.pipe2(f.pid, 0);
    const stat = f.vfs.fstat(f.pid, r);
    expect(stat.mode).toBe(S_IFIFO | 0o600);
    expect(stat.size).toBe(0);
    expect(f.vfs.fstat(f.pid, w).inode).toBe(stat.inode);
    expect(errnoOf(() => f.vfs.lseek(f.pid, r, 0, SEEK_SET))).toBe(Errno.ESPIPE);
    expect(errnoOf(() => f.vfs.pread(f.pid, r, 1, 0))).toBe(Errno.ESPIPE);
    expect(errnoOf(() => f.vfs.pwrite(f.pid, w, encode("x"), 0))).toBe(Errno.ESPIPE);
    expect(errnoOf(() => f.vfs.pread(f.pid, w, 1, 0))).toBe(Errno.ESPIPE);
    expect(errnoOf(() => f.vfs.pread(f.pid, r, 1, -1))).toBe(Errno.EINVAL);
    expect(errnoOf(() => f.vfs.fsync(f.pid, r))).toBe(Errno.EINVAL);
  });
});

describe("data through a pipe", () => {
  it("arrives in order; a read returns what is there, up to its count", async () => {
    const [r, w] = f.vfs.pipe2(f.pid, 0);
    await f.vfs.write(f.pid, w, encode("hello "));
    await f.vfs.write(f.pid, w, encode("world"));
    expect(decode(await f.vfs.read(f.pid, r, 3))).toBe("hel");
    expect(decode(await f.vfs.read(f.pid, r, 100))).toBe("lo world");
  });

  it("ends with end of file once every write end is closed, forked copies included", async () => {
    const [r, w] = f.vfs.pipe2(f.pid, 0);
    f.vfs.forkTable(f.pid, 2);
    await f.vfs.write(f.pid, w, encode("last"));
    f.vfs.close(f.pid, w);
    expect(decode(await f.vfs.read(f.pid, r, 100))).toBe("last");
    const pending = f.vfs.read(f.pid, r, 100);
    await settle();
    f.vfs.detachProcess(2);
    expect((await pending).length).toBe(0);
  });

  it("wakes a waiting reader when data comes", async () => {
    const [r, w] = f.vfs.pipe2(f.pid, 0);
    let done = false;
    const pending = f.vfs.read(f.pid, r, 100).then((data) => {
      done = true;
      return data;
    });
    await settle();
    expect(done).toBe(false);
    await f.vfs.write(f.pid, w, encode("wake"));
    expect(decode(await pending)).toBe("wake");
  });

  it("fails a write with EPIPE once no reader is left", async () => {
    const [r, w] = f.vfs.pipe2(f.pid, 0);
    f.vfs.close(f.pid, r);
    expect(await asyncErrnoOf(() => f.vfs.write(f.pid, w, encode("x")))).toBe(Errno.EPIPE);
    expect(await f.vfs.write(f.pid, w, new Uint8Array(0))).toBe(0);
  });

  it("refuses reading the write end and writing the read end with EBADF", async () => {
    const [r, w] = f.vfs.pipe2(f.pid, 0);
    expect(await asyncErrnoOf(() => f.vfs.read(f.pid, w, 1))).toBe(Errno.EBADF);
    expect(await asyncErrnoOf(() => f.vfs.write(f.pid, r, encode("x")))).toBe(Errno.EBADF);
  });
});

describe("a full pipe", () => {
  it("makes a large write wait for the reader and then finish", async () => {
    const [r, w] = f.vfs.pipe2(f.pid, 0);
    const data = new Uint8Array(200_000).map((_, i) => i % 251);
    const writing = f.vfs.write(f.pid, w, data);
    const received: Uint8Array[] = [];
    let total = 0;
    while (total < data.length) {
      const chunk = await f.vfs.read(f.pid, r, 65536);
      received.push(chunk);
      total += chunk.length;
    }
    expect(await writing).toBe(data.length);
    const joined = new Uint8Array(total);
    let at = 0;
    for (const c of received) {
      joined.set(c, at);
      at += c.length;
    }
    expect(joined).toEqual(data);
  });

  it("answers EAGAIN instead of waiting under O_NONBLOCK, and writes what fits of a large write", async () => {
    const [r, w] = f.vfs.pipe2(f.pid, O_NONBLOCK);
    expect(await asyncErrnoOf(() => f.vfs.read(f.pid, r, 10))).toBe(Errno.EAGAIN);
    expect(await f.vfs.write(f.pid, w, new Uint8Array(70_000))).toBe(65536);
    expect(await asyncErrnoOf(() => f.vfs.write(f.pid, w, new Uint8Array(1)))).toBe(Errno.EAGAIN);
    await f.vfs.read(f.pid, r, 100);
    // 100 bytes free: a write of at most PIPE_BUF goes in whole or not at all.
    expect(await asyncErrnoOf(() => f.vfs.write(f.pid, w, new Uint8Array(101)))).toBe(Errno.EAGAIN);
    expect(await f.vfs.write(f.pid, w, new Uint8Array(100))).toBe(100);
  });

  it("returns the part written when the reader goes in the middle of a write", async () => {
    const [r, w] = f.vfs.pipe2(f.pid, 0);
    const writing = f.vfs.write(f.pid, w, new Uint8Array(100_000));
    await settle();
    f.vfs.close(f.pid, r);
    expect(await writing).toBe(65536);
  });

  it("honours O_NONBLOCK set later with F_SETFL", async () => {
    const [r] = f.vfs.pipe2(f.pid, 0);
    f.vfs.fcntl(f.pid, r, F_SETFL, O_NONBLOCK);
    expect(await asyncErrnoOf(() => f.vfs.read(f.pid, r, 1))).toBe(Errno.EAGAIN);
  });
});

describe("capacity and FIONREAD", () => {
  it("reports and changes the capacity in powers of two pages", async () => {
    const [r, w] = f.vfs.pipe2(f.pid, O_NONBLOCK);
    expect(f.vfs.fcntl(f.pid, r, F_GETPIPE_SZ, 0)).toBe(65536);
    expect(f.vfs.fcntl(f.pid, w, F_SETPIPE_SZ, 5000)).toBe(8192);
    expect(await f.vfs.write(f.pid, w, new Uint8Array(10_000))).toBe(8192);
    expect(errnoOf(() => f.vfs.fcntl(f.pid, w, F_SETPIPE_SZ, 4096))).toBe(Errno.EBUSY);
    expect(errnoOf(() => f.vfs.fcntl(f.pid, w, F_SETPIPE_SZ, 2 * 1024 * 1024))).toBe(Errno.EPERM);
    expect(errnoOf(() => f.vfs.fcntl(f.pid, 1, F_GETPIPE_SZ, 0))).toBe(Errno.EBADF);
  });

  it("tells how many bytes wait to be read", async () => {
    const [r, w] = f.vfs.pipe2(f.pid, 0);
    await f.vfs.write(f.pid, w, encode("12345"));
    const { output } = await f.vfs.ioctl(f.pid, r, FIONREAD, 0n);
    expect(new DataView(output!.buffer).getInt32(0, true)).toBe(5);
  });
});

describe("waiting and the process", () => {
  it("ends a waiting read with EINTR when its process detaches", async () => {
    const [r] = f.vfs.pipe2(f.pid, 0);
    f.vfs.forkTable(f.pid, 2);
    const pending = asyncErrnoOf(() => f.vfs.read(2, r, 10));
    await settle();
    f.vfs.detachProcess(2);
    expect(await pending).toBe(Errno.EINTR);
  });

  it("ends a waiting read when the caller's signal aborts, keeping the data for the next read", async () => {
    const [r, w] = f.vfs.pipe2(f.pid, 0);
    const controller = new AbortController();
    const pending = f.vfs.read(f.pid, r, 10, controller.signal).catch((e) => e);
    await settle();
    controller.abort(new Error("given up"));
    expect(await pending).toMatchObject({ message: "given up" });
    await f.vfs.write(f.pid, w, encode("kept"));
    expect(decode(await f.vfs.read(f.pid, r, 10))).toBe("kept");
  });
});

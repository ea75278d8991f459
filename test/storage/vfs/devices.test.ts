// The standard streams, the console and terminal requests, /dev and /proc.
import * as nodeFs from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { decodeTermios, decodeWindowSize, encodeTermios } from "../../../services/storage/vfs/layouts.ts";
import {
  AT_FDCWD,
  AT_SYMLINK_NOFOLLOW,
  F_GETFL,
  F_SETFL,
  FIONBIO,
  FIONREAD,
  ICANON,
  ISIG,
  O_CREAT,
  O_DIRECTORY,
  O_NONBLOCK,
  O_RDONLY,
  O_RDWR,
  O_WRONLY,
  S_IFCHR,
  S_IFLNK,
  S_IFMT,
  SEEK_END,
  SEEK_SET,
  TCGETS,
  TCSETS,
  TCSETSF,
  TIOCGPGRP,
  TIOCGSID,
  TIOCGWINSZ,
  TIOCSPGRP,
  TIOCSWINSZ,
  VINTR,
  VMIN,
} from "../../../services/storage/vfs/linux.ts";
import { defaultTermios, hostStdio, InputSource, Terminal } from "../../../services/storage/vfs/streams.ts";
import {
  asyncErrnoOf,
  decode,
  encode,
  Errno,
  errnoOf,
  type Fixture,
  fixture,
  parseDirents,
} from "./helpers.ts";

let f: Fixture;

afterEach(() => f.remove());

const int32 = (bytes: Uint8Array | undefined) =>
  new DataView(bytes!.buffer, bytes!.byteOffset).getInt32(0, true);

describe("standard streams that are not a terminal", () => {
  it("connect 0, 1 and 2 to stdin, stdout and stderr with their access modes", async () => {
    f = fixture({ input: ["line one\n", "line two\n"] });
    expect(decode(await f.vfs.read(f.pid, 0, 100))).toBe("line one\n");
    expect(decode(await f.vfs.read(f.pid, 0, 4))).toBe("line");
    expect(decode(await f.vfs.read(f.pid, 0, 100))).toBe(" two\n");
    expect((await f.vfs.read(f.pid, 0, 100)).length).toBe(0);
    await f.vfs.write(f.pid, 1, encode("out"));
    await f.vfs.writev(f.pid, 2, [encode("e"), encode("rr")]);
    expect(f.captured.text("stdout")).toBe("out");
    expect(f.captured.text("stderr")).toBe("err");
    expect([0, 1, 2].map((fd) => f.vfs.fcntl(f.pid, fd, F_GETFL, 0))).toEqual([O_RDONLY, O_WRONLY, O_WRONLY]);
    expect(await asyncErrnoOf(() => f.vfs.read(f.pid, 1, 1))).toBe(Errno.EBADF);
    expect(await asyncErrnoOf(() => f.vfs.write(f.pid, 0, encode("x")))).toBe(Errno.EBADF);
  });

  it("answer terminal requests with ENOTTY and seeks with ESPIPE", async () => {
    f = fixture();
    for (const fd of [0, 1, 2]) {
      expect(await asyncErrnoOf(() => f.vfs.ioctl(f.pid, fd, TCGETS, 0n))).toBe(Errno.ENOTTY);
      expect(await asyncErrnoOf(() => f.vfs.ioctl(f.pid, fd, TIOCGWINSZ, 0n))).toBe(Errno.ENOTTY);
      expect(errnoOf(() => f.vfs.lseek(f.pid, fd, 0, SEEK_SET))).toBe(Errno.ESPIPE);
    }
    const file = f.vfs.openat(f.pid, AT_FDCWD, "plain", O_RDWR | O_CREAT, 0o644);
    expect(await asyncErrnoOf(() => f.vfs.ioctl(f.pid, file, TCGETS, 0n))).toBe(Errno.ENOTTY);
  });

  it("answer EAGAIN on a non-blocking read until input arrives", async () => {
    let deliver: (text: string) => void = () => {};
    const input = new InputSource((into) =>
      new Promise((resolve) => {
        deliver = (text) => {
          const bytes = encode(text);
          into.set(bytes);
          resolve(bytes.length);
        };
      })
    );
    f = fixture({ input });
    expect(await f.vfs.ioctl(f.pid, 0, FIONBIO, 0n, new Uint8Array([1, 0, 0, 0]))).toEqual({ result: 0 });
    expect(f.vfs.fcntl(f.pid, 0, F_GETFL, 0)).toBe(O_RDONLY | O_NONBLOCK);
    expect(await asyncErrnoOf(() => f.vfs.read(f.pid, 0, 10))).toBe(Errno.EAGAIN);
    deliver("arrived");
    await new Promise((resolve) => setTimeout(resolve, 1));
    expect(decode(await f.vfs.read(f.pid, 0, 10))).toBe("arrived");
    f.vfs.fcntl(f.pid, 0, F_SETFL, 0);
    const waiting = f.vfs.read(f.pid, 0, 10);
    await new Promise((resolve) => setTimeout(resolve, 1));
    deliver("later");
    expect(decode(await waiting)).toBe("later");
  });
});

describe("a terminal", () => {
  it("answers TCGETS with Linux's default termios and keeps what TCSETS sets", async () => {
    const switches: [boolean, boolean][] = [];
    f = fixture({ terminal: new Terminal({ setRaw: (raw, cbreak) => switches.push([raw, cbreak]) }) });
    const { output } = await f.vfs.ioctl(f.pid, 1, TCGETS, 0n);
    expect(output!.length).toBe(44);
    const termios = decodeTermios(output!);
    expect(termios).toEqual(defaultTermios());
    expect(termios.cc[VINTR]).toBe(3);
    expect(termios.lflag & ICANON).toBe(ICANON);
    const raw = { ...termios, lflag: termios.lflag & ~ICANON, cc: termios.cc.slice() };
    raw.cc[VMIN] = 0;
    await f.vfs.ioctl(f.pid, 0, TCSETS, 0n, encodeTermios(raw));
    expect(decodeTermios((await f.vfs.ioctl(f.pid, 2, TCGETS, 0n)).output!)).toEqual(raw);
    expect(switches).toEqual([[true, (raw.lflag & ISIG) !== 0]]);
    await f.vfs.ioctl(f.pid, 0, TCSETSF, 0n, encodeTermios(termios));
    expect(switches).toEqual([[true, true], [false, true]]);
    expect(await asyncErrnoOf(() => f.vfs.ioctl(f.pid, 0, TCSETS, 0n))).toBe(Errno.EFAULT);
  });

  it("reports and stores the window size and the foreground process group", async () => {
    f = fixture({ terminal: new Terminal() });
    expect(decodeWindowSize((await f.vfs.ioctl(f.pid, 1, TIOCGWINSZ, 0n)).output!)).toMatchObject({
      rows: 24,
      columns: 80,
    });
    await f.vfs.ioctl(f.pid, 1, TIOCSWINSZ, 0n, new Uint8Array([50, 0, 132, 0, 0, 0, 0, 0]));
    expect(decodeWindowSize((await f.vfs.ioctl(f.pid, 2, TIOCGWINSZ, 0n)).output!)).toMatchObject({
      rows: 50,
      columns: 132,
    });
    expect(int32((await f.vfs.ioctl(f.pid, 0, TIOCGPGRP, 0n)).output)).toBe(f.pid);
    expect(int32((await f.vfs.ioctl(f.pid, 0, TIOCGSID, 0n)).output)).toBe(f.pid);
    await f.vfs.ioctl(f.pid, 0, TIOCSPGRP, 0n, new Uint8Array([7, 0, 0, 0]));
    expect(int32((await f.vfs.ioctl(f.pid, 0, TIOCGPGRP, 0n)).output)).toBe(7);
    expect(await asyncErrnoOf(() => f.vfs.ioctl(f.pid, 0, 0x5401, 0n))).toBe(Errno.ENOTTY);
  });

  it("is readable and writable on every standard descriptor, and is /dev/tty", async () => {
    f = fixture({ terminal: new Terminal(), input: ["typed\n"] });
    expect([0, 1, 2].map((fd) => f.vfs.fcntl(f.pid, fd, F_GETFL, 0))).toEqual([O_RDWR, O_RDWR, O_RDWR]);
    expect(decode(await f.vfs.read(f.pid, 1, 100))).toBe("typed\n");
    await f.vfs.write(f.pid, 0, encode("echo"));
    expect(f.captured.text("stdout")).toBe("echo");
    const tty = f.vfs.openat(f.pid, AT_FDCWD, "/dev/tty", O_RDWR, 0);
    expect(decodeTermios((await f.vfs.ioctl(f.pid, tty, TCGETS, 0n)).output!)).toEqual(defaultTermios());
    expect(f.vfs.fstat(f.pid, 0).mode & S_IFMT).toBe(S_IFCHR);
  });
});

describe("/dev", () => {
  it("has null, zero, full and urandom behaving as Linux's", async () => {
    f = fixture();
    const open = (name: string) => f.vfs.openat(f.pid, AT_FDCWD, `/dev/${name}`, O_RDWR, 0);
    const nul = open("null");
    expect((await f.vfs.read(f.pid, nul, 10)).length).toBe(0);
    expect(await f.vfs.write(f.pid, nul, encode("gone"))).toBe(4);
    expect(f.vfs.lseek(f.pid, nul, 100, SEEK_END)).toBe(0);
    const zero = open("zero");
    expect(await f.vfs.read(f.pid, zero, 5)).toEqual(new Uint8Array(5));
    expect(f.vfs.pread(f.pid, zero, 3, 1000)).toEqual(new Uint8Array(3));
    const full = open("full");
    expect(await asyncErrnoOf(() => f.vfs.write(f.pid, full, encode("x")))).toBe(Errno.ENOSPC);
    const random = await f.vfs.read(f.pid, open("urandom"), 100_000);
    expect(random.length).toBe(100_000);
    expect(new Set(random).size).toBeGreaterThan(200);
    expect(f.vfs.fstat(f.pid, nul).rdev).toBe(0x103);
    expect(await asyncErrnoOf(() => f.vfs.ioctl(f.pid, nul, TCGETS, 0n))).toBe(Errno.ENOTTY);
    expect(await asyncErrnoOf(() => f.vfs.ioctl(f.pid, nul, FIONREAD, 0n))).toBe(Errno.ENOTTY);
  });

  it("has /dev/tty only when the console is a terminal, and /dev/console always", async () => {
    f = fixture();
    expect(errnoOf(() => f.vfs.openat(f.pid, AT_FDCWD, "/dev/tty", O_RDWR, 0))).toBe(Errno.ENXIO);
    const console = f.vfs.openat(f.pid, AT_FDCWD, "/dev/console", O_WRONLY, 0);
    await f.vfs.write(f.pid, console, encode("to the console"));
    expect(f.captured.text("stdout")).toBe("to the console");
  });

  it("is fixed: nothing is created or removed in it", () => {
    f = fixture();
    expect(errnoOf(() => f.vfs.openat(f.pid, AT_FDCWD, "/dev/new", O_WRONLY | O_CREAT, 0o644))).toBe(
      Errno.EACCES,
    );
    expect(errnoOf(() => f.vfs.mkdirat(f.pid, AT_FDCWD, "/dev/dir", 0o755))).toBe(Errno.EACCES);
    expect(errnoOf(() => f.vfs.unlinkat(f.pid, AT_FDCWD, "/dev/zero", 0))).toBe(Errno.EACCES);
  });

  it("lists its entries with their types", () => {
    f = fixture();
    const fd = f.vfs.openat(f.pid, AT_FDCWD, "/dev", O_RDONLY | O_DIRECTORY, 0);
    const names = parseDirents(f.vfs.getdents64(f.pid, fd, 4096).records).map((e) => e.name);
    expect(names).toEqual([
      ".",
      "..",
      "console",
      "fd",
      "full",
      "null",
      "random",
      "stderr",
      "stdin",
      "stdout",
      "tty",
      "urandom",
      "zero",
    ]);
  });
});

describe("/proc", () => {
  it("links self to the caller and exe to what sched recorded at exec", () => {
    f = fixture();
    expect(decode(f.vfs.readlinkat(f.pid, AT_FDCWD, "/proc/self"))).toBe(String(f.pid));
    expect(errnoOf(() => f.vfs.readlinkat(f.pid, AT_FDCWD, "/proc/self/exe"))).toBe(Errno.ENOENT);
    f.vfs.execTable(f.pid, "/bin/busybox");
    expect(decode(f.vfs.readlinkat(f.pid, AT_FDCWD, "/proc/self/exe"))).toBe("/bin/busybox");
    f.vfs.forkTable(f.pid, 2);
    expect(decode(f.vfs.readlinkat(2, AT_FDCWD, "/proc/self"))).toBe("2");
    expect(decode(f.vfs.readlinkat(2, AT_FDCWD, "/proc/self/exe"))).toBe("/bin/busybox");
    expect(decode(f.vfs.readlinkat(2, AT_FDCWD, `/proc/${f.pid}/cwd`))).toBe("/");
    expect(errnoOf(() => f.vfs.readlinkat(f.pid, AT_FDCWD, "/proc/99/exe"))).toBe(Errno.ENOENT);
    expect(errnoOf(() => f.vfs.readlinkat(f.pid, AT_FDCWD, "/proc"))).toBe(Errno.EINVAL);
  });

  it("shows every descriptor in fd/ as a link, with permissions by access mode", () => {
    f = fixture();
    Deno.writeTextFileSync(f.host("file"), "content");
    const fd = f.vfs.openat(f.pid, AT_FDCWD, "/file", O_RDONLY, 0);
    const [r, w] = f.vfs.pipe2(f.pid, 0);
    expect(decode(f.vfs.readlinkat(f.pid, AT_FDCWD, `/proc/self/fd/${fd}`))).toBe("/file");
    const pipeName = decode(f.vfs.readlinkat(f.pid, AT_FDCWD, `/proc/self/fd/${r}`));
    expect(pipeName).toMatch(/^pipe:\[\d+\]$/);
    expect(decode(f.vfs.readlinkat(f.pid, AT_FDCWD, `/proc/self/fd/${w}`))).toBe(pipeName);
    expect(decode(f.vfs.readlinkat(f.pid, AT_FDCWD, "/proc/self/fd/1"))).toBe("pipe:[101]");
    const mode = (n: number) =>
      f.vfs.fstatat(f.pid, AT_FDCWD, `/proc/self/fd/${n}`, AT_SYMLINK_NOFOLLOW).mode;
    expect(mode(r)).toBe(S_IFLNK | 0o500);
    expect(mode(w)).toBe(S_IFLNK | 0o300);
    const dir = f.vfs.openat(f.pid, AT_FDCWD, "/proc/self/fd", O_RDONLY | O_DIRECTORY, 0);
    const names = parseDirents(f.vfs.getdents64(f.pid, dir, 4096).records).map((e) => e.name);
    expect(names).toEqual([".", "..", "0", "1", "2", String(fd), String(r), String(w), String(dir)]);
    expect(errnoOf(() => f.vfs.readlinkat(f.pid, AT_FDCWD, "/proc/self/fd/77"))).toBe(Errno.ENOENT);
  });

  it("follows fd links to the open file: a path reopens the file, a pipe reopens the pipe", async () => {
    f = fixture();
    Deno.writeTextFileSync(f.host("file"), "content");
    const fd = f.vfs.openat(f.pid, AT_FDCWD, "/file", O_RDONLY, 0);
    const again = f.vfs.openat(f.pid, AT_FDCWD, `/proc/self/fd/${fd}`, O_RDONLY, 0);
    expect(decode(await f.vfs.read(f.pid, again, 100))).toBe("content");
    const [r, w] = f.vfs.pipe2(f.pid, 0);
    const writer = f.vfs.openat(f.pid, AT_FDCWD, `/proc/self/fd/${w}`, O_WRONLY, 0);
    await f.vfs.write(f.pid, writer, encode("via proc"));
    expect(decode(await f.vfs.read(f.pid, r, 100))).toBe("via proc");
    expect(f.vfs.fstatat(f.pid, AT_FDCWD, `/proc/self/fd/${r}`, 0).inode).toBe(f.vfs.fstat(f.pid, r).inode);
  });

  it("makes /dev/stdout and /dev/stderr reach the standard streams", async () => {
    f = fixture();
    const out = f.vfs.openat(f.pid, AT_FDCWD, "/dev/stdout", O_WRONLY, 0);
    await f.vfs.write(f.pid, out, encode("through /dev/stdout"));
    expect(f.captured.text("stdout")).toBe("through /dev/stdout");
    expect(errnoOf(() => f.vfs.openat(f.pid, AT_FDCWD, "/dev/stdout", O_RDONLY, 0))).toBe(Errno.EACCES);
    expect(errnoOf(() => f.vfs.openat(f.pid, AT_FDCWD, "/dev/stdin", O_RDONLY | O_DIRECTORY, 0))).toBe(
      Errno.ENOTDIR,
    );
  });

  it("lists self and the attached processes, and cannot be written", () => {
    f = fixture();
    f.vfs.forkTable(f.pid, 40);
    const fd = f.vfs.openat(f.pid, AT_FDCWD, "/proc", O_RDONLY, 0);
    const names = parseDirents(f.vfs.getdents64(f.pid, fd, 4096).records).map((e) => e.name);
    expect(names).toEqual([".", "..", "self", "1", "40"]);
    expect(errnoOf(() => f.vfs.openat(f.pid, AT_FDCWD, "/proc/new", O_WRONLY | O_CREAT, 0o644))).toBe(
      Errno.ENOENT,
    );
    expect(errnoOf(() => f.vfs.mkdirat(f.pid, AT_FDCWD, "/proc/new", 0o755))).toBe(Errno.ENOENT);
    expect(errnoOf(() => f.vfs.unlinkat(f.pid, AT_FDCWD, "/proc/self/exe", 0))).toBe(Errno.EACCES);
    expect(errnoOf(() => f.vfs.openat(f.pid, AT_FDCWD, "/proc/1/nothing", O_RDONLY, 0))).toBe(Errno.ENOENT);
  });
});

describe("FIONREAD on standard input", () => {
  it("counts what was received and not read", async () => {
    f = fixture({ input: ["abcdef"] });
    expect(int32((await f.vfs.ioctl(f.pid, 0, FIONREAD, 0n)).output)).toBe(0);
    expect(decode(await f.vfs.read(f.pid, 0, 2))).toBe("ab");
    expect(int32((await f.vfs.ioctl(f.pid, 0, FIONREAD, 0n)).output)).toBe(4);
  });
});

describe("the host's own standard streams", () => {
  it("report the host descriptors' fstat and are named as /proc shows them", () => {
    f = fixture();
    const stdio = hostStdio();
    for (const [fd, endpoint] of [stdio.stdin, stdio.stdout, stdio.stderr].entries()) {
      const host = nodeFs.fstatSync(fd);
      const stat = endpoint.stat();
      expect([stat.mode, stat.inode, stat.rdev]).toEqual([host.mode, host.ino, host.rdev]);
      if ((host.mode & S_IFMT) === 0o010000) expect(endpoint.name).toBe(`pipe:[${host.ino}]`);
      expect(endpoint.terminal !== undefined).toBe([Deno.stdin, Deno.stdout, Deno.stderr][fd].isTerminal());
    }
    expect(stdio.stdin.input).toBeDefined();
    expect(stdio.stdin.output === undefined).toBe(!Deno.stdin.isTerminal());
    expect(stdio.stdout.output).toBeDefined();
    expect(stdio.console.output).toBe(stdio.stdout.output);
  });
});

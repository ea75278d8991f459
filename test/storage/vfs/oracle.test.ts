// Differential test against Linux: the same scripts of system calls run on Linux (oracle.c, a
// static ppc64le program under qemu-ppc64le, answered by the host kernel) in one copy of a folder
// and on the VFS through the trap path in another, identical copy. Every result, errno and byte
// written back must agree, except what differs between two copies by nature (inode numbers,
// times, d_off cookies) and the one known qemu-user difference (it hides O_LARGEFILE in F_GETFL).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AT_EMPTY_PATH,
  AT_FDCWD,
  AT_REMOVEDIR,
  AT_SYMLINK_NOFOLLOW,
  F_DUPFD,
  F_DUPFD_CLOEXEC,
  F_GETFD,
  F_GETFL,
  F_SETFD,
  F_SETFL,
  FIOCLEX,
  FIONBIO,
  FIONREAD,
  O_APPEND,
  O_CLOEXEC,
  O_CREAT,
  O_DIRECTORY,
  O_EXCL,
  O_LARGEFILE,
  O_NOFOLLOW,
  O_NONBLOCK,
  O_PATH,
  O_RDONLY,
  O_RDWR,
  O_TRUNC,
  O_WRONLY,
  RENAME_EXCHANGE,
  RENAME_NOREPLACE,
  SEEK_CUR,
  SEEK_DATA,
  SEEK_END,
  SEEK_HOLE,
  SEEK_SET,
  STATX_BASIC_STATS,
  SYS,
  TCGETS,
} from "../../../services/storage/vfs/linux.ts";
import { toolchainMissing } from "../../requirements.ts";
import { FakeGuest } from "./guest.ts";
import { fixture, parseDirents, parseStat, parseStatx } from "./helpers.ts";

/** An argument: a number, a string, an output buffer, input bytes, or an earlier line's result. */
type Arg = number | { s: string } | { o: number } | { i: Uint8Array } | { r: number };

interface Line {
  nr: number;
  args: Arg[];
}

const s = (text: string) => ({ s: text });
const o = (size: number) => ({ o: size });
const r = (line: number) => ({ r: line });
const hex = (bytes: Uint8Array) => [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
const unhex = (text: string) => new Uint8Array((text.match(/../g) ?? []).map((b) => parseInt(b, 16)));

/** Builds a script; `call` returns the line's index for later r:K references. */
class Script {
  readonly lines: Line[] = [];

  call(nr: number, ...args: Arg[]): number {
    this.lines.push({ nr, args });
    return this.lines.length - 1;
  }

  text(): string {
    return this.lines.map(({ nr, args }) =>
      [
        nr,
        ...args.map((a) => {
          if (typeof a === "number") return String(a);
          if ("s" in a) return `s:${a.s}`;
          if ("o" in a) return `o:${a.o}`;
          if ("i" in a) return `i:${hex(a.i)}`;
          return `r:${a.r}`;
        }),
      ].join(" ")
    ).join("\n") + "\n";
  }
}

/**
 * The same folder contents on both sides, in a subfolder that is the working directory: the
 * guest root also holds the /dev and /proc mount points, which the host folder does not.
 */
const WORK = "work";

function populate(root: string): string {
  const dir = `${root}/${WORK}`;
  Deno.mkdirSync(`${dir}/dir/sub`, { recursive: true });
  Deno.writeTextFileSync(`${dir}/file`, "0123456789");
  Deno.writeTextFileSync(`${dir}/dir/inner`, "inner");
  Deno.mkdirSync(`${dir}/empty`);
  Deno.symlinkSync("file", `${dir}/link`);
  Deno.symlinkSync("dir", `${dir}/dlink`);
  Deno.symlinkSync("nowhere", `${dir}/dangling`);
  Deno.symlinkSync("loop", `${dir}/loop`);
  return dir;
}

let oracle: string;
let buildDir: string;
const missing = toolchainMissing();

beforeAll(() => {
  if (missing) return;
  buildDir = Deno.makeTempDirSync({ prefix: "astra-vfs-oracle-" });
  oracle = `${buildDir}/oracle`;
  const source = new URL("./oracle.c", import.meta.url).pathname;
  const build = new Deno.Command("powerpc64le-linux-gnu-gcc", {
    args: ["-static", "-O1", "-Wall", "-Werror", "-o", oracle, source],
  }).outputSync();
  if (!build.success) throw new Error(`building oracle.c failed:\n${new TextDecoder().decode(build.stderr)}`);
});

afterAll(() => {
  if (buildDir) Deno.removeSync(buildDir, { recursive: true });
});

interface Outcome {
  result: number;
  errno: number;
  buffers: Uint8Array[];
}

async function runOnLinux(script: Script): Promise<Outcome[]> {
  const dir = Deno.makeTempDirSync({ prefix: "astra-vfs-linux-" });
  try {
    const child = new Deno.Command("qemu-ppc64le", {
      args: [oracle],
      cwd: populate(dir),
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(script.text()));
    await writer.close();
    const output = await child.output();
    const lines = new TextDecoder().decode(output.stdout).trimEnd().split("\n");
    return lines.map((line) => {
      const [result, errno, ...buffers] = line.split(" ");
      return { result: Number(result), errno: Number(errno), buffers: buffers.map(unhex) };
    });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

async function runOnVfs(script: Script): Promise<Outcome[]> {
  const f = fixture();
  try {
    populate(f.root);
    f.vfs.chdir(f.pid, WORK);
    const guest = new FakeGuest(f.vfs, f.pid);
    const outcomes: Outcome[] = [];
    for (const line of script.lines) {
      const buffers: { address: bigint; size: number }[] = [];
      const args = line.args.map((a) => {
        if (typeof a === "number") return a;
        if ("s" in a) return guest.string(a.s);
        if ("o" in a) {
          const address = guest.alloc(a.o);
          buffers.push({ address, size: a.o });
          return address;
        }
        if ("i" in a) return guest.put(a.i);
        return outcomes[a.r].result;
      });
      const reply = await guest.call(line.nr, ...args);
      outcomes.push({
        result: reply.errno === undefined ? Number(BigInt.asIntN(64, reply.result)) : -1,
        errno: reply.errno ?? 0,
        buffers: buffers.map((b) => guest.read(b.address, b.size)),
      });
    }
    return outcomes;
  } finally {
    f.remove();
  }
}

/** One line's outcome in the terms both sides must agree on. */
function normalize(line: Line, outcome: Outcome): string {
  let result = outcome.result;
  if (line.nr === SYS.fcntl && line.args[1] === F_GETFL && result >= 0) result &= ~O_LARGEFILE;
  const buffers = outcome.buffers.map((bytes) => {
    switch (line.nr) {
      case SYS.stat:
      case SYS.lstat:
      case SYS.fstat:
      case SYS.newfstatat: {
        const { ino: _ino, atime: _a, mtime: _m, ctime: _c, ...rest } = parseStat(bytes);
        return JSON.stringify(rest);
      }
      case SYS.statx: {
        const x = parseStatx(bytes);
        return JSON.stringify([
          x.mask & STATX_BASIC_STATS,
          x.mode,
          x.nlink,
          x.uid,
          x.gid,
          x.size,
          x.blocks,
          x.blksize,
          x.rdevMajor,
          x.rdevMinor,
          x.devMajor,
          x.devMinor,
        ]);
      }
      case SYS.getdents64:
        return JSON.stringify(
          parseDirents(bytes.subarray(0, Math.max(0, outcome.result))).map((e) =>
            `${e.name}:${e.type}:${e.reclen}`
          )
            .sort(),
        );
      default:
        return hex(bytes);
    }
  });
  return [result, outcome.errno, ...buffers].join(" ");
}

async function expectSameAsLinux(script: Script): Promise<void> {
  const linux = await runOnLinux(script);
  const vfs = await runOnVfs(script);
  expect(linux.length).toBe(script.lines.length);
  const describe = (outcomes: Outcome[]) =>
    script.lines.map((line, i) =>
      `#${i} ${line.nr}(${JSON.stringify(line.args)}) → ${normalize(line, outcomes[i])}`
    );
  expect(describe(vfs)).toEqual(describe(linux));
}

const PATHS = [
  "file",
  "dir",
  "link",
  "dlink",
  "dangling",
  "loop",
  "missing",
  "file/",
  "dir/",
  "link/",
  "dlink/",
  "dangling/",
  ".",
  "empty/.",
  "empty/..",
  "missing/x",
  "file/x",
  "dir/sub/../inner",
  "dlink/inner",
];

describe.skipIf(missing)(`the VFS against Linux${missing ? ` (skipped: ${missing})` : ""}`, () => {
  it("opens every kind of path with every kind of flag as Linux does", async () => {
    const script = new Script();
    const flagSets = [
      O_RDONLY,
      O_WRONLY,
      O_RDWR,
      O_RDONLY | O_DIRECTORY,
      O_RDONLY | O_NOFOLLOW,
      O_PATH,
      O_PATH | O_NOFOLLOW,
      O_PATH | O_DIRECTORY,
      O_WRONLY | O_CREAT,
      O_WRONLY | O_CREAT | O_EXCL,
      O_RDONLY | O_CREAT | O_DIRECTORY,
      O_WRONLY | O_CREAT | O_NOFOLLOW,
      O_RDWR | O_TRUNC,
    ];
    for (const path of [...PATHS, "/", "dir/sub/", "new/", "missing/new/"]) {
      for (const flags of flagSets) {
        const fd = script.call(SYS.openat, AT_FDCWD, s(path), flags, 0o640);
        script.call(SYS.fcntl, r(fd), F_GETFL, 0);
        script.call(SYS.close, r(fd));
      }
    }
    await expectSameAsLinux(script);
  });

  it("stats every kind of path as Linux does", async () => {
    const script = new Script();
    for (const path of [...PATHS, ""]) {
      script.call(SYS.stat, s(path), o(144));
      script.call(SYS.lstat, s(path), o(144));
      script.call(SYS.newfstatat, AT_FDCWD, s(path), o(144), AT_SYMLINK_NOFOLLOW);
      script.call(SYS.newfstatat, AT_FDCWD, s(path), o(144), AT_EMPTY_PATH);
      script.call(SYS.statx, AT_FDCWD, s(path), 0, STATX_BASIC_STATS, o(256));
      script.call(SYS.access, s(path), 0);
      script.call(SYS.faccessat2, AT_FDCWD, s(path), 4, AT_SYMLINK_NOFOLLOW);
      script.call(SYS.readlink, s(path), o(64), 64);
      script.call(SYS.readlink, s(path), o(3), 3);
    }
    const dir = script.call(SYS.openat, AT_FDCWD, s("dir"), O_RDONLY, 0);
    script.call(SYS.fstat, r(dir), o(144));
    script.call(SYS.newfstatat, r(dir), s(""), o(144), AT_EMPTY_PATH);
    script.call(SYS.newfstatat, r(dir), s("inner"), o(144), 0);
    script.call(SYS.newfstatat, AT_FDCWD, s("file"), o(144), 0x2);
    script.call(SYS.statx, AT_FDCWD, s("file"), 0x6000, STATX_BASIC_STATS, o(256));
    script.call(SYS.faccessat, AT_FDCWD, s("file"), 8);
    script.call(SYS.readlink, s("link"), o(8), 0);
    await expectSameAsLinux(script);
  });

  it("makes, removes and renames names as Linux does", async () => {
    const script = new Script();
    for (const path of [...PATHS, "new", "new/", "new/deeper", "/"]) {
      script.call(SYS.mkdirat, AT_FDCWD, s(path), 0o750);
    }
    for (const path of PATHS) script.call(SYS.unlinkat, AT_FDCWD, s(path), AT_REMOVEDIR);
    script.call(SYS.unlinkat, AT_FDCWD, s("file"), 0x400);
    const names = [
      "file",
      "dir",
      "empty",
      "new",
      "link",
      "dangling",
      "missing",
      "dir/sub",
      "file/",
      "dir/",
      ".",
    ];
    for (const from of names) {
      for (const to of ["fresh", "dir/sub", "empty", "link", "dir", "file/", "..", "dir/sub/deeper"]) {
        for (const flags of [RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_NOREPLACE | RENAME_EXCHANGE]) {
          script.call(SYS.renameat2, AT_FDCWD, s(from), AT_FDCWD, s(to), flags);
        }
      }
    }
    script.call(SYS.rename, s("fresh"), s("again"));
    for (const path of ["again", "link", "dangling", "loop", "dlink", "dlink/", "empty", "missing", "dir"]) {
      script.call(SYS.unlink, s(path));
      script.call(SYS.rmdir, s(path));
    }
    const listing = script.call(SYS.openat, AT_FDCWD, s("."), O_RDONLY | O_DIRECTORY, 0);
    script.call(SYS.getdents64, r(listing), o(4096), 4096);
    await expectSameAsLinux(script);
  });

  it("reads, writes, seeks and controls descriptors as Linux does", async () => {
    const script = new Script();
    script.call(SYS.umask, 0o022);
    const fd = script.call(SYS.openat, AT_FDCWD, s("file"), O_RDWR, 0);
    script.call(SYS.read, r(fd), o(4), 4);
    for (
      const [offset, whence] of [[0, SEEK_CUR], [2, SEEK_SET], [-3, SEEK_END], [3, SEEK_DATA], [3, SEEK_HOLE]]
    ) {
      script.call(SYS.lseek, r(fd), offset, whence);
    }
    for (const [offset, whence] of [[-1, SEEK_SET], [0, 5], [-20, SEEK_END], [20, SEEK_DATA]]) {
      script.call(SYS.lseek, r(fd), offset, whence);
    }
    script.call(SYS.write, r(fd), { i: new TextEncoder().encode("abc") }, 3);
    script.call(SYS.pread64, r(fd), o(16), 16, 0);
    script.call(SYS.pwrite64, r(fd), { i: new TextEncoder().encode("Z") }, 1, 12);
    script.call(SYS.pread64, r(fd), o(4), 4, -1);
    script.call(SYS.pread64, r(fd), o(4), 4, 100);
    script.call(SYS.ftruncate, r(fd), 6);
    script.call(SYS.ftruncate, r(fd), -1);
    script.call(SYS.pread64, r(fd), o(16), 16, 0);
    script.call(SYS.fsync, r(fd));
    script.call(SYS.fdatasync, r(fd));
    const copy = script.call(SYS.dup, r(fd));
    script.call(SYS.lseek, r(copy), 0, SEEK_CUR);
    script.call(SYS.dup2, r(fd), 8);
    script.call(SYS.dup2, r(fd), r(fd));
    script.call(SYS.dup2, 55, 56);
    script.call(SYS.dup3, r(fd), 8, O_CLOEXEC);
    script.call(SYS.dup3, r(fd), r(fd), 0);
    script.call(SYS.dup3, r(fd), 9, O_APPEND);
    script.call(SYS.fcntl, 8, F_GETFD, 0);
    script.call(SYS.fcntl, 8, F_SETFD, 0);
    script.call(SYS.fcntl, 8, F_GETFD, 0);
    script.call(SYS.close, r(script.call(SYS.fcntl, r(fd), F_DUPFD, 6)));
    script.call(SYS.close, r(script.call(SYS.fcntl, r(fd), F_DUPFD_CLOEXEC, 0)));
    script.call(SYS.fcntl, r(fd), F_DUPFD, 100000);
    script.call(SYS.close, 8);
    script.call(SYS.fcntl, r(fd), F_SETFL, O_APPEND | O_NONBLOCK | O_RDONLY);
    script.call(SYS.fcntl, r(copy), F_GETFL, 0);
    script.call(SYS.fcntl, r(fd), 9999, 0);
    script.call(SYS.write, r(copy), { i: new TextEncoder().encode("end") }, 3);
    script.call(SYS.pread64, r(fd), o(16), 16, 0);
    script.call(SYS.ioctl, r(fd), FIONREAD, o(4));
    script.call(SYS.ioctl, r(fd), TCGETS, o(44));
    script.call(SYS.ioctl, r(fd), FIOCLEX, 0);
    script.call(SYS.fcntl, r(fd), F_GETFD, 0);
    script.call(SYS.ioctl, r(fd), FIONBIO, { i: new Uint8Array([0, 0, 0, 0]) });
    script.call(SYS.fcntl, r(fd), F_GETFL, 0);
    const ro = script.call(SYS.openat, AT_FDCWD, s("file"), O_RDONLY, 0);
    script.call(SYS.write, r(ro), { i: new Uint8Array([1]) }, 1);
    script.call(SYS.ftruncate, r(ro), 0);
    script.call(SYS.read, r(ro), 0, 0);
    const dir = script.call(SYS.openat, AT_FDCWD, s("dir"), O_RDONLY | O_DIRECTORY, 0);
    script.call(SYS.read, r(dir), o(4), 4);
    script.call(SYS.getdents64, r(dir), o(8), 8);
    script.call(SYS.getdents64, r(dir), o(4096), 4096);
    script.call(SYS.getdents64, r(dir), o(4096), 4096);
    script.call(SYS.lseek, r(dir), 0, SEEK_SET);
    script.call(SYS.getdents64, r(dir), o(4096), 4096);
    script.call(SYS.getdents64, r(ro), o(4096), 4096);
    script.call(SYS.fchdir, r(dir));
    script.call(SYS.close, r(script.call(SYS.openat, AT_FDCWD, s("inner"), O_RDONLY, 0)));
    script.call(SYS.chdir, s(".."));
    script.call(SYS.chdir, s("file"));
    script.call(SYS.fchdir, r(ro));
    script.call(SYS.close, r(script.call(SYS.openat, r(dir), s("inner"), O_RDONLY, 0)));
    script.call(SYS.openat, r(ro), s("inner"), O_RDONLY, 0);
    script.call(SYS.mkdirat, r(dir), s("made"), 0o700);
    script.call(SYS.newfstatat, r(dir), s("made"), o(144), 0);
    script.call(SYS.umask, 0o077);
    script.call(SYS.umask, 0o022);
    script.call(SYS.close, r(ro));
    script.call(SYS.pipe2, o(8), O_CLOEXEC);
    script.call(SYS.pipe2, o(8), 0x1);
    script.call(SYS.close, 55);
    script.call(SYS.close, r(fd));
    script.call(SYS.close, r(fd));
    await expectSameAsLinux(script);
  });
});

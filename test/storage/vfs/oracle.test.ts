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
  AT_SYMLINK_FOLLOW,
  AT_SYMLINK_NOFOLLOW,
  CLOSE_RANGE_CLOEXEC,
  F_DUPFD,
  F_DUPFD_CLOEXEC,
  F_GETFD,
  F_GETFL,
  F_SETFD,
  F_SETFL,
  FALLOC_FL_COLLAPSE_RANGE,
  FALLOC_FL_INSERT_RANGE,
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  FIOCLEX,
  FIONBIO,
  FIONREAD,
  LOCK_EX,
  LOCK_MAND,
  LOCK_NB,
  LOCK_SH,
  LOCK_UN,
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
  POLLIN,
  POLLOUT,
  POLLPRI,
  RENAME_EXCHANGE,
  RENAME_NOREPLACE,
  S_IFDIR,
  S_IFIFO,
  S_IFREG,
  SEEK_CUR,
  SEEK_DATA,
  SEEK_END,
  SEEK_HOLE,
  SEEK_SET,
  STATX_BASIC_STATS,
  SYNC_FILE_RANGE_WAIT_AFTER,
  SYNC_FILE_RANGE_WRITE,
  SYS,
  TCGETS,
  UTIME_OMIT,
} from "../../../services/storage/vfs/linux.ts";
import { toolchainMissing } from "../../requirements.ts";
import { FakeGuest } from "./guest.ts";
import { fixture, parseDirents, parseStat, parseStatx, timePairs } from "./helpers.ts";

/**
 * An argument: a number, a string, an output buffer, input bytes, input bytes the call may change
 * (compared afterwards, as output buffers are), or an earlier line's result.
 */
type Arg = number | { s: string } | { o: number } | { i: Uint8Array } | { b: Uint8Array } | { r: number };

interface Line {
  nr: number;
  args: Arg[];
  /** Compare the access and modification times a stat reports (set by the script, not the clock). */
  times?: boolean;
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

  /** A stat whose access and modification times are compared too. */
  statWithTimes(nr: number, ...args: Arg[]): number {
    this.lines.push({ nr, args, times: true });
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
          if ("b" in a) return `b:${hex(a.b)}`;
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
        if ("b" in a) {
          const address = guest.put(a.b);
          buffers.push({ address, size: a.b.length });
          return address;
        }
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
        const { ino: _ino, atime, mtime, ctime: _c, ...rest } = parseStat(bytes);
        return JSON.stringify(line.times ? { ...rest, atime, mtime } : rest);
      }
      case SYS.statfs:
      case SYS.fstatfs:
      case SYS.statfs64:
      case SYS.fstatfs64: {
        // What the file system is; not its free space (which moves) nor its id and mount flags.
        const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        return JSON.stringify([0, 8, 64, 72].map((at) => Number(view.getBigInt64(at, true))));
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

  it("changes modes, owners and times as Linux does", async () => {
    const script = new Script();
    const MINUS_ONE = 0xffffffff;
    const times = (a: [number, number], m: [number, number]) => ({ i: timePairs(a, m) });
    for (const path of [...PATHS, ""]) {
      script.call(SYS.chmod, s(path), 0o640);
      script.call(SYS.fchmodat, AT_FDCWD, s(path), 0o2750);
      script.call(SYS.chown, s(path), MINUS_ONE, MINUS_ONE);
      script.call(SYS.lchown, s(path), 0, 0);
      script.call(SYS.fchownat, AT_FDCWD, s(path), MINUS_ONE, 0, AT_SYMLINK_NOFOLLOW);
      script.call(SYS.utimensat, AT_FDCWD, s(path), times([1000, 500_000_000], [2000, 0]), 0);
      script.call(SYS.utimensat, AT_FDCWD, s(path), times([3000, 0], [0, UTIME_OMIT]), AT_SYMLINK_NOFOLLOW);
      script.call(SYS.utimes, s(path), times([4000, 250_000], [5000, 0]));
      script.call(SYS.truncate, s(path), 3);
      // Times are not compared here: truncate stamps mtime with the clock, and following a link
      // stamps its atime on Linux.
      script.call(SYS.lstat, s(path), o(144));
    }
    for (const mode of [0o4755, 0o2755, 0o2745, 0o6777]) {
      script.call(SYS.chmod, s("file"), mode);
      script.call(SYS.chown, s("file"), MINUS_ONE, MINUS_ONE);
      script.call(SYS.stat, s("file"), o(144));
    }
    script.call(SYS.chmod, s("dir"), 0o7777);
    script.call(SYS.chown, s("dir"), MINUS_ONE, MINUS_ONE);
    script.call(SYS.chown, s("file"), 1234, 5678);
    script.call(SYS.stat, s("dir"), o(144));
    script.call(SYS.stat, s("file"), o(144));
    const path = script.call(SYS.openat, AT_FDCWD, s("link"), O_PATH | O_NOFOLLOW, 0);
    const fd = script.call(SYS.openat, AT_FDCWD, s("file"), O_RDWR, 0);
    script.call(SYS.fchmod, r(path), 0o600);
    script.call(SYS.fchown, r(path), 0, 0);
    script.call(SYS.fchmod, r(fd), 0o751);
    script.call(SYS.fchown, r(fd), 42, MINUS_ONE);
    script.call(SYS.fchmod, 99, 0o600);
    script.call(SYS.fchown, 99, 0, 0);
    script.call(SYS.fchownat, r(path), s(""), 7, 7, AT_EMPTY_PATH);
    script.call(SYS.fchownat, AT_FDCWD, s("file"), 0, 0, 0x8);
    script.call(SYS.fchownat, r(fd), s("x"), 0, 0, 0);
    script.call(SYS.fchmodat, 99, s("x"), 0o600);
    script.call(SYS.lstat, s("link"), o(144));
    script.call(SYS.utimensat, r(fd), 0, times([10, 0], [20, 30_000_000]), 0);
    script.call(SYS.utimensat, r(fd), 0, times([10, 0], [20, 0]), AT_SYMLINK_NOFOLLOW);
    script.call(SYS.utimensat, r(path), 0, times([10, 0], [20, 0]), 0);
    script.call(SYS.utimensat, r(path), s(""), times([11, 0], [21, 0]), AT_EMPTY_PATH);
    script.call(SYS.utimensat, 99, 0, times([10, 0], [20, 0]), 0);
    script.call(SYS.utimensat, AT_FDCWD, 0, times([10, 0], [20, 0]), 0);
    script.call(SYS.utimensat, AT_FDCWD, s("missing"), times([0, UTIME_OMIT], [0, UTIME_OMIT]), 0);
    script.call(SYS.utimensat, AT_FDCWD, s("file"), times([1, 1_000_000_000], [0, 0]), 0);
    script.call(SYS.utimensat, AT_FDCWD, s("file"), times([1, -1], [0, 0]), 0);
    script.call(SYS.utimensat, AT_FDCWD, s("missing"), times([1, -1], [0, 0]), 0);
    script.call(SYS.utimensat, AT_FDCWD, s("file"), times([1, 0], [0, 0]), 0x4);
    script.call(SYS.utimes, s("file"), times([1, 1_000_000], [0, 0]));
    // Times to the millisecond, which is what the host folder keeps.
    script.call(SYS.futimesat, AT_FDCWD, s("file"), times([6000, 999_000], [7000, 1000]));
    script.statWithTimes(SYS.stat, s("file"), o(144));
    script.call(SYS.utimensat, r(fd), 0, times([-7, 0], [8, 5_000_000]), 0);
    script.statWithTimes(SYS.fstat, r(fd), o(144));
    script.call(SYS.utimensat, AT_FDCWD, s("link"), times([9, 0], [10, 0]), AT_SYMLINK_NOFOLLOW);
    script.statWithTimes(SYS.lstat, s("link"), o(144));
    const utimbuf = new Uint8Array(16);
    new DataView(utimbuf.buffer).setBigInt64(0, 123456n, true);
    new DataView(utimbuf.buffer).setBigInt64(8, -654321n, true);
    script.call(SYS.utime, s("dir/inner"), { i: utimbuf });
    script.statWithTimes(SYS.stat, s("dir/inner"), o(144));
    script.call(SYS.truncate, s("file"), -1);
    script.call(SYS.truncate, s("dir/inner"), 7);
    script.call(SYS.stat, s("dir/inner"), o(144));
    await expectSameAsLinux(script);
  });

  it("makes symbolic links, hard links and nodes as Linux does", async () => {
    const script = new Script();
    script.call(SYS.umask, 0o022);
    for (const path of [...PATHS, "", "new/", "/", "missing/new/"]) {
      script.call(SYS.symlink, s("target"), s(path));
      script.call(SYS.link, s("file"), s(path));
      script.call(SYS.link, s(path), s("fresh"));
      script.call(SYS.unlink, s("fresh"));
      script.call(SYS.mknod, s(path), S_IFREG | 0o666);
    }
    script.call(SYS.symlink, s(""), s("empty-target"));
    script.call(SYS.symlinkat, s("a/b/../c"), AT_FDCWD, s("made"));
    script.call(SYS.readlink, s("made"), o(16), 16);
    const dir = script.call(SYS.openat, AT_FDCWD, s("dir"), O_RDONLY | O_DIRECTORY, 0);
    script.call(SYS.symlinkat, s("inner"), r(dir), s("to-inner"));
    script.call(SYS.linkat, r(dir), s("inner"), AT_FDCWD, s("hard"), 0);
    script.call(SYS.linkat, AT_FDCWD, s("link"), AT_FDCWD, s("link-itself"), 0);
    script.call(SYS.linkat, AT_FDCWD, s("link"), AT_FDCWD, s("followed"), AT_SYMLINK_FOLLOW);
    script.call(SYS.linkat, AT_FDCWD, s("dangling"), AT_FDCWD, s("dangling2"), AT_SYMLINK_FOLLOW);
    script.call(SYS.linkat, AT_FDCWD, s("file"), AT_FDCWD, s("flags"), 0x8);
    const file = script.call(SYS.openat, AT_FDCWD, s("file"), O_RDONLY, 0);
    script.call(SYS.linkat, r(file), s(""), AT_FDCWD, s("by-descriptor"), AT_EMPTY_PATH);
    script.call(SYS.linkat, r(file), s(""), AT_FDCWD, s("no-flag"), 0);
    script.call(SYS.linkat, AT_FDCWD, s("file"), AT_FDCWD, s("/dev/x"), 0);
    script.call(SYS.mknodat, r(dir), s("node"), 0o600);
    script.call(SYS.mknod, s("directory"), S_IFDIR | 0o755);
    script.call(SYS.mknod, s("odd"), 0o170644);
    script.call(SYS.mknod, s("file"), S_IFIFO | 0o644);
    for (
      const path of [
        "made",
        "to-inner",
        "hard",
        "link-itself",
        "followed",
        "by-descriptor",
        "dir/node",
        "file",
      ]
    ) {
      script.call(SYS.lstat, s(path), o(144));
    }
    const listing = script.call(SYS.openat, AT_FDCWD, s("."), O_RDONLY | O_DIRECTORY, 0);
    script.call(SYS.getdents64, r(listing), o(4096), 4096);
    await expectSameAsLinux(script);
  });

  it("reports file systems, allocates, advises, syncs and locks as Linux does", async () => {
    const script = new Script();
    script.call(SYS.pipe2, o(8), 0);
    const [pipeRead, pipeWrite] = [3, 4];
    const fd = script.call(SYS.openat, AT_FDCWD, s("file"), O_RDWR, 0);
    const ro = script.call(SYS.openat, AT_FDCWD, s("file"), O_RDONLY, 0);
    const wo = script.call(SYS.openat, AT_FDCWD, s("dir/inner"), O_WRONLY, 0);
    const path = script.call(SYS.openat, AT_FDCWD, s("file"), O_PATH, 0);
    const dir = script.call(SYS.openat, AT_FDCWD, s("dir"), O_RDONLY | O_DIRECTORY, 0);
    for (const target of ["file", "dir", "link", "missing", "file/x", "/proc", "/proc/self", "/dev"]) {
      script.call(SYS.statfs, s(target), o(120));
    }
    script.call(SYS.statfs, s("."), 0);
    // (A statfs64 size other than the struct's is EINVAL, which qemu-user does not check.)
    script.call(SYS.statfs64, s("."), 120, o(120));
    for (const target of [r(fd), r(path), r(dir), pipeRead, 99]) {
      script.call(SYS.fstatfs, target, o(120));
      script.call(SYS.fstatfs64, target, 120, o(120));
    }
    const size = () => script.call(SYS.fstat, r(fd), o(144));
    script.call(SYS.fallocate, r(fd), 0, 0, 100);
    size();
    script.call(SYS.fallocate, r(fd), FALLOC_FL_KEEP_SIZE, 0, 200);
    size();
    for (
      const [mode, offset, length] of [
        [0, -1, 10],
        [0, 0, 0],
        [0x80, 0, 1],
        [FALLOC_FL_PUNCH_HOLE, 0, 1],
        [FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_KEEP_SIZE, 0, 1],
        [FALLOC_FL_INSERT_RANGE | FALLOC_FL_KEEP_SIZE, 0, 1],
      ]
    ) {
      script.call(SYS.fallocate, r(fd), mode, offset, length);
    }
    for (const target of [r(ro), r(path), r(dir), pipeWrite, 99]) script.call(SYS.fallocate, target, 0, 0, 1);
    script.call(SYS.fallocate, r(fd), 0, 2 ** 62, 2 ** 62);
    for (const advice of [0, 1, 2, 3, 4, 5, 6, -1]) script.call(SYS.fadvise64, r(fd), 0, 0, advice);
    for (const target of [r(ro), r(dir), pipeRead, r(path), 99]) {
      script.call(SYS.fadvise64, target, 0, 100, 0);
    }
    script.call(SYS.fadvise64, r(fd), 0, -1, 0);
    for (const target of [r(fd), r(wo), r(dir), pipeRead, r(path), 99]) {
      script.call(SYS.readahead, target, 0, 4096);
    }
    script.call(SYS.readahead, r(fd), 0, -1);
    script.call(SYS.sync);
    for (const target of [r(fd), r(path), pipeRead, 99]) script.call(SYS.syncfs, target);
    for (const target of [r(fd), r(dir), pipeRead, r(path), 99]) {
      script.call(SYS.sync_file_range2, target, SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER, 0, 0);
    }
    script.call(SYS.sync_file_range2, r(fd), 8, 0, 0);
    script.call(SYS.sync_file_range2, r(fd), 0, -1, 0);
    script.call(SYS.sync_file_range2, r(fd), 0, 10, -20);
    const other = script.call(SYS.openat, AT_FDCWD, s("file"), O_RDONLY, 0);
    const lines = [
      [r(fd), LOCK_EX],
      [r(other), LOCK_SH | LOCK_NB],
      [r(fd), LOCK_UN],
      [r(other), LOCK_SH | LOCK_NB],
      [r(ro), LOCK_SH | LOCK_NB],
      [r(fd), LOCK_EX | LOCK_NB],
      [r(ro), LOCK_UN],
      [r(other), LOCK_EX | LOCK_NB],
      [r(fd), LOCK_SH | LOCK_NB],
      [r(other), LOCK_SH],
      [r(fd), LOCK_SH | LOCK_NB],
      [r(fd), 0],
      [r(fd), LOCK_SH | LOCK_UN],
      [99, LOCK_SH],
      [99, 0],
      [r(path), LOCK_SH],
      [pipeRead, LOCK_EX],
      [r(fd), LOCK_MAND],
      [99, LOCK_MAND | LOCK_SH],
    ] as const;
    for (const [target, operation] of lines) script.call(SYS.flock, target, operation);
    const copy = script.call(SYS.dup, r(other));
    script.call(SYS.flock, r(copy), LOCK_EX | LOCK_NB);
    script.call(SYS.close, r(other));
    script.call(SYS.flock, r(fd), LOCK_EX | LOCK_NB);
    script.call(SYS.close, r(copy));
    script.call(SYS.flock, r(fd), LOCK_EX | LOCK_NB);
    script.call(SYS.close_range, 9, 3, 0);
    script.call(SYS.close_range, 3, 9, 0x1);
    script.call(SYS.close_range, r(fd), r(fd), CLOSE_RANGE_CLOEXEC);
    script.call(SYS.fcntl, r(fd), F_GETFD, 0);
    script.call(SYS.close_range, r(ro), 0xffffffff, 0);
    script.call(SYS.fcntl, r(ro), F_GETFD, 0);
    script.call(SYS.fcntl, r(fd), F_GETFD, 0);
    await expectSameAsLinux(script);
  });

  it("sends and copies between descriptors as Linux does", async () => {
    const script = new Script();
    const offset = (value: number) => {
      const bytes = new Uint8Array(8);
      new DataView(bytes.buffer).setBigInt64(0, BigInt(value), true);
      return bytes;
    };
    script.call(SYS.pipe2, o(8), 0);
    const [pipeRead, pipeWrite] = [3, 4];
    const input = script.call(SYS.openat, AT_FDCWD, s("file"), O_RDONLY, 0);
    const output = script.call(SYS.openat, AT_FDCWD, s("out"), O_RDWR | O_CREAT, 0o644);
    const append = script.call(SYS.openat, AT_FDCWD, s("dir/inner"), O_WRONLY | O_APPEND, 0);
    const dir = script.call(SYS.openat, AT_FDCWD, s("dir"), O_RDONLY | O_DIRECTORY, 0);
    script.call(SYS.sendfile, pipeWrite, r(input), 0, 4);
    script.call(SYS.read, pipeRead, o(16), 16);
    script.call(SYS.sendfile, pipeWrite, r(input), { b: offset(2) }, 3);
    script.call(SYS.read, pipeRead, o(16), 16);
    script.call(SYS.lseek, r(input), 0, SEEK_CUR);
    script.call(SYS.sendfile, r(output), r(input), 0, 100);
    script.call(SYS.sendfile, r(output), r(input), 0, 100);
    script.call(SYS.sendfile, r(output), r(input), { b: offset(20) }, 100);
    script.call(SYS.sendfile, pipeWrite, pipeRead, 0, 1);
    script.call(SYS.sendfile, pipeWrite, pipeRead, { b: offset(0) }, 1);
    script.call(SYS.sendfile, r(input), r(input), 0, 1);
    script.call(SYS.sendfile, 99, r(input), 0, 1);
    script.call(SYS.sendfile, pipeWrite, 99, 0, 1);
    script.call(SYS.sendfile, pipeWrite, r(input), { b: offset(-1) }, 1);
    script.call(SYS.sendfile, pipeWrite, r(input), 0, -1);
    script.call(SYS.sendfile, r(append), r(input), { b: offset(0) }, 1);
    script.call(SYS.sendfile, pipeWrite, r(dir), { b: offset(0) }, 1);
    script.call(SYS.sendfile, pipeWrite, r(input), 0xdead, 1);
    script.call(SYS.pread64, r(output), o(32), 32, 0);
    script.call(SYS.copy_file_range, r(input), { b: offset(2) }, r(output), { b: offset(1) }, 5, 0);
    script.call(SYS.copy_file_range, r(input), 0, r(output), 0, 3, 0);
    script.call(SYS.lseek, r(input), 0, SEEK_CUR);
    script.call(SYS.lseek, r(output), 0, SEEK_CUR);
    script.call(SYS.copy_file_range, r(input), { b: offset(100) }, r(output), 0, 5, 0);
    script.call(SYS.copy_file_range, r(input), 0, r(output), 0, 5, 1);
    script.call(SYS.copy_file_range, r(dir), 0, r(output), 0, 5, 0);
    script.call(SYS.copy_file_range, pipeRead, 0, r(output), 0, 5, 0);
    script.call(SYS.copy_file_range, r(input), 0, r(input), 0, 5, 0);
    script.call(SYS.copy_file_range, r(input), 0, r(append), 0, 5, 0);
    script.call(SYS.copy_file_range, r(output), { b: offset(0) }, r(output), { b: offset(2) }, 5, 0);
    script.call(SYS.copy_file_range, r(output), { b: offset(0) }, r(output), { b: offset(20) }, 5, 0);
    script.call(SYS.copy_file_range, 99, 0, r(output), 0, 5, 0);
    script.call(SYS.copy_file_range, r(input), 0xdead, r(output), 0, 5, 0);
    script.call(SYS.pread64, r(output), o(32), 32, 0);
    await expectSameAsLinux(script);
  });

  it("polls and selects pipes and files as Linux does", async () => {
    const script = new Script();
    const pollfds = (...entries: [number, number][]) => {
      const bytes = new Uint8Array(8 * entries.length);
      const view = new DataView(bytes.buffer);
      entries.forEach(([fd, events], i) => {
        view.setInt32(8 * i, fd, true);
        view.setInt16(8 * i + 4, events, true);
      });
      return { b: bytes };
    };
    const fdSet = (...fds: number[]) => {
      const bytes = new Uint8Array(8);
      for (const fd of fds) bytes[fd >> 3] |= 1 << (fd & 7);
      return { b: bytes };
    };
    const zero = { i: timePairs([0, 0]) };
    script.call(SYS.pipe2, o(8), 0);
    const [pipeRead, pipeWrite] = [3, 4];
    script.call(SYS.openat, AT_FDCWD, s("file"), O_RDONLY, 0);
    const all = () =>
      pollfds(
        [pipeRead, POLLIN | POLLOUT],
        [pipeWrite, POLLIN | POLLOUT],
        [5, POLLIN | POLLOUT | POLLPRI],
        [-1, POLLIN],
        [99, POLLIN],
      );
    script.call(SYS.poll, all(), 5, 0);
    script.call(SYS.ppoll, all(), 5, zero, 0, 8);
    script.call(SYS._newselect, 6, fdSet(3, 4, 5), fdSet(3, 4, 5), fdSet(3, 4, 5), zero);
    script.call(SYS.pselect6, 6, fdSet(3, 5), fdSet(4), 0, zero, 0);
    script.call(SYS.write, pipeWrite, { i: new Uint8Array([120]) }, 1);
    script.call(SYS.poll, all(), 5, 0);
    script.call(SYS.poll, all(), 5, -1);
    script.call(SYS._newselect, 6, fdSet(3, 4, 5), fdSet(3, 4, 5), fdSet(3, 4, 5), 0);
    script.call(SYS.pselect6, 6, fdSet(3, 5), fdSet(4), fdSet(3), zero, 0);
    script.call(SYS._newselect, 10, fdSet(9), 0, 0, zero);
    script.call(SYS._newselect, -1, 0, 0, 0, zero);
    script.call(SYS._newselect, 4, fdSet(3), 0, 0, { i: timePairs([0, -1]) });
    script.call(SYS._newselect, 4, fdSet(3), 0, 0, { i: timePairs([-1, 0]) });
    script.call(SYS.pselect6, 4, fdSet(3), 0, 0, { i: timePairs([0, 1_000_000_000]) }, 0);
    const pack = new Uint8Array(16);
    new DataView(pack.buffer).setBigUint64(0, 0x1000n, true);
    new DataView(pack.buffer).setBigUint64(8, 4n, true);
    script.call(SYS.pselect6, 4, fdSet(3), 0, 0, zero, { i: pack });
    script.call(SYS.ppoll, all(), 5, zero, { i: new Uint8Array(8) }, 4);
    script.call(SYS.ppoll, all(), 5, { i: timePairs([0, -5]) }, 0, 8);
    script.call(SYS.poll, 0, 0, 0);
    script.call(SYS.poll, 0, 1, 0);
    script.call(SYS.close, pipeWrite);
    script.call(SYS.poll, pollfds([pipeRead, POLLIN]), 1, 0);
    script.call(SYS.read, pipeRead, o(4), 4);
    script.call(SYS.poll, pollfds([pipeRead, POLLIN], [pipeRead, 0]), 2, 0);
    script.call(SYS.pipe2, o(8), 0);
    script.call(SYS.close, 3);
    script.call(SYS.poll, pollfds([4, POLLOUT]), 1, 0);
    await expectSameAsLinux(script);
  });

  it("answers extended attribute calls as Linux does before it reaches the file system", async () => {
    const script = new Script();
    const value = { i: new Uint8Array([1, 2, 3]) };
    script.call(SYS.getxattr, s("file"), s(""), o(16), 16);
    script.call(SYS.getxattr, s("file"), s("user.".padEnd(300, "x")), o(16), 16);
    script.call(SYS.getxattr, s("missing"), s("user.x"), o(16), 16);
    script.call(SYS.getxattr, s("file/x"), s("user.x"), o(16), 16);
    script.call(SYS.lgetxattr, s("link"), s("user.x"), o(16), 16);
    script.call(SYS.getxattr, s("missing"), s(""), o(16), 16);
    script.call(SYS.getxattr, s("file"), 0, o(16), 16);
    script.call(SYS.setxattr, s("file"), s("user.x"), value, 3, 4);
    script.call(SYS.setxattr, s("missing"), s("user.x"), value, 70000, 0);
    script.call(SYS.setxattr, s("missing"), s(""), value, 70000, 0);
    script.call(SYS.setxattr, s("missing"), s("user.x"), value, 3, 0);
    script.call(SYS.lsetxattr, s("link"), s("user.x"), value, 3, 0);
    script.call(SYS.fgetxattr, 99, s("user.x"), o(16), 16);
    script.call(SYS.fsetxattr, 99, s("user.x"), value, 3, 0);
    script.call(SYS.fremovexattr, 99, s("user.x"));
    script.call(SYS.flistxattr, 99, o(16), 16);
    const path = script.call(SYS.openat, AT_FDCWD, s("file"), O_PATH, 0);
    script.call(SYS.fgetxattr, r(path), s("user.x"), o(16), 16);
    script.call(SYS.flistxattr, r(path), o(16), 16);
    script.call(SYS.removexattr, s("missing"), s("user.x"));
    script.call(SYS.removexattr, s("file"), s(""));
    script.call(SYS.lremovexattr, s("link"), s("user.x"));
    script.call(SYS.listxattr, s("missing"), o(16), 16);
    script.call(SYS.llistxattr, s("dangling"), o(16), 16);
    script.call(SYS.listxattr, s("dangling"), o(16), 16);
    await expectSameAsLinux(script);
  });
});

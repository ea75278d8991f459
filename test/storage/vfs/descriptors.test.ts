// Descriptor tables: dup and its relatives share one open file description (offset and status
// flags), close-on-exec is per descriptor, fork copies the table, CLONE_FILES shares it, exec
// closes what is marked, and the table stops at its limit. A property test runs random sequences
// of calls against a model of tables and descriptions.
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  AT_FDCWD,
  F_DUPFD,
  F_DUPFD_CLOEXEC,
  F_GETFD,
  F_GETFL,
  F_SETFD,
  F_SETFL,
  FD_CLOEXEC,
  FIOCLEX,
  FIONCLEX,
  O_APPEND,
  O_CLOEXEC,
  O_CREAT,
  O_LARGEFILE,
  O_PATH,
  O_RDONLY,
  O_RDWR,
  SEEK_CUR,
  SEEK_SET,
} from "../../../services/storage/vfs/linux.ts";
import { Vfs } from "../../../services/storage/vfs/vfs.ts";
import { decode, encode, Errno, errnoOf, type Fixture, fixture, memoryStdio } from "./helpers.ts";

let f: Fixture;

beforeEach(() => {
  f = fixture();
  Deno.writeTextFileSync(f.host("file"), "abcdefghij");
});

afterEach(() => f.remove());

const open = (flags = O_RDONLY, pid = f.pid) => f.vfs.openat(pid, AT_FDCWD, "file", flags, 0o644);
const offset = (fd: number, pid = f.pid) => f.vfs.lseek(pid, fd, 0, SEEK_CUR);

describe("dup, dup2, dup3 and F_DUPFD", () => {
  it("shares the offset and status flags between duplicates", async () => {
    const fd = open(O_RDWR);
    const copy = f.vfs.dup(f.pid, fd);
    expect(copy).toBe(fd + 1);
    await f.vfs.read(f.pid, fd, 3);
    expect(offset(copy)).toBe(3);
    expect(decode(await f.vfs.read(f.pid, copy, 2))).toBe("de");
    expect(offset(fd)).toBe(5);
    f.vfs.fcntl(f.pid, copy, F_SETFL, O_APPEND);
    expect(f.vfs.fcntl(f.pid, fd, F_GETFL, 0)).toBe(O_RDWR | O_APPEND | O_LARGEFILE);
  });

  it("keeps a separate offset for a second open of the same file", async () => {
    const a = open();
    const b = open();
    await f.vfs.read(f.pid, a, 4);
    expect(offset(b)).toBe(0);
  });

  it("keeps the description open until the last duplicate closes", async () => {
    const fd = open();
    const copy = f.vfs.dup(f.pid, fd);
    f.vfs.close(f.pid, fd);
    expect(decode(await f.vfs.read(f.pid, copy, 3))).toBe("abc");
  });

  it("dup2 replaces the target, returns an equal descriptor unchanged and checks the source", async () => {
    const fd = open();
    await f.vfs.read(f.pid, fd, 1);
    expect(f.vfs.dup2(f.pid, fd, 1)).toBe(1);
    expect(offset(1)).toBe(1);
    expect(f.vfs.dup2(f.pid, fd, fd)).toBe(fd);
    expect(f.vfs.dup2(f.pid, fd, 100)).toBe(100);
    expect(errnoOf(() => f.vfs.dup2(f.pid, 50, 50))).toBe(Errno.EBADF);
    expect(errnoOf(() => f.vfs.dup2(f.pid, 50, 51))).toBe(Errno.EBADF);
    expect(errnoOf(() => f.vfs.dup2(f.pid, fd, 1024))).toBe(Errno.EBADF);
    expect(errnoOf(() => f.vfs.dup2(f.pid, fd, -1))).toBe(Errno.EBADF);
  });

  it("dup3 takes O_CLOEXEC only and refuses equal descriptors", () => {
    const fd = open();
    expect(f.vfs.dup3(f.pid, fd, 9, O_CLOEXEC)).toBe(9);
    expect(f.vfs.fcntl(f.pid, 9, F_GETFD, 0)).toBe(FD_CLOEXEC);
    expect(errnoOf(() => f.vfs.dup3(f.pid, fd, fd, 0))).toBe(Errno.EINVAL);
    expect(errnoOf(() => f.vfs.dup3(f.pid, fd, 10, O_APPEND))).toBe(Errno.EINVAL);
    expect(errnoOf(() => f.vfs.dup3(f.pid, 77, 10, 0))).toBe(Errno.EBADF);
  });

  it("F_DUPFD takes the lowest free descriptor at or above its argument", () => {
    const fd = open();
    expect(f.vfs.fcntl(f.pid, fd, F_DUPFD, 10)).toBe(10);
    expect(f.vfs.fcntl(f.pid, fd, F_DUPFD, 10)).toBe(11);
    expect(f.vfs.fcntl(f.pid, fd, F_DUPFD_CLOEXEC, 0)).toBe(fd + 1);
    expect(f.vfs.fcntl(f.pid, fd + 1, F_GETFD, 0)).toBe(FD_CLOEXEC);
    expect(f.vfs.fcntl(f.pid, fd, F_GETFD, 0)).toBe(0);
    expect(errnoOf(() => f.vfs.fcntl(f.pid, fd, F_DUPFD, 1024))).toBe(Errno.EINVAL);
    expect(errnoOf(() => f.vfs.fcntl(f.pid, fd, F_DUPFD, -1))).toBe(Errno.EINVAL);
  });

  it("duplicates O_PATH descriptors too", () => {
    const fd = open(O_PATH);
    const copy = f.vfs.dup(f.pid, fd);
    expect(f.vfs.fstat(f.pid, copy).size).toBe(10);
    expect(errnoOf(() => f.vfs.fcntl(f.pid, fd, F_SETFL, 0))).toBe(Errno.EBADF);
  });
});

describe("close-on-exec", () => {
  it("is per descriptor: F_SETFD, FIOCLEX and FIONCLEX set it, dup clears it", async () => {
    const fd = open(O_RDONLY | O_CLOEXEC);
    expect(f.vfs.fcntl(f.pid, fd, F_GETFD, 0)).toBe(FD_CLOEXEC);
    const copy = f.vfs.dup(f.pid, fd);
    expect(f.vfs.fcntl(f.pid, copy, F_GETFD, 0)).toBe(0);
    f.vfs.fcntl(f.pid, fd, F_SETFD, 0);
    expect(f.vfs.fcntl(f.pid, fd, F_GETFD, 0)).toBe(0);
    await f.vfs.ioctl(f.pid, copy, FIOCLEX, 0n);
    expect(f.vfs.fcntl(f.pid, copy, F_GETFD, 0)).toBe(FD_CLOEXEC);
    await f.vfs.ioctl(f.pid, copy, FIONCLEX, 0n);
    expect(f.vfs.fcntl(f.pid, copy, F_GETFD, 0)).toBe(0);
  });

  it("closes exactly the marked descriptors at exec and records the executable", async () => {
    const keep = open();
    const drop = open(O_RDONLY | O_CLOEXEC);
    const dropToo = f.vfs.fcntl(f.pid, keep, F_DUPFD_CLOEXEC, 20);
    expect(f.vfs.execTable(f.pid, "/bin/prog")).toBe(2);
    expect(errnoOf(() => f.vfs.fstat(f.pid, drop))).toBe(Errno.EBADF);
    expect(errnoOf(() => f.vfs.fstat(f.pid, dropToo))).toBe(Errno.EBADF);
    expect(decode(await f.vfs.read(f.pid, keep, 2))).toBe("ab");
    expect(decode(f.vfs.readlinkat(f.pid, AT_FDCWD, "/proc/self/exe"))).toBe("/bin/prog");
  });
});

describe("fork, CLONE_FILES and exit", () => {
  it("fork copies the table: same descriptions, own slots", async () => {
    const fd = open();
    f.vfs.fcntl(f.pid, fd, F_SETFD, FD_CLOEXEC);
    expect(f.vfs.forkTable(f.pid, 2)).toBe(4);
    expect(f.vfs.fcntl(2, fd, F_GETFD, 0)).toBe(FD_CLOEXEC);
    await f.vfs.read(2, fd, 4);
    expect(offset(fd)).toBe(4);
    f.vfs.close(2, fd);
    expect(decode(await f.vfs.read(f.pid, fd, 2))).toBe("ef");
    const parentOnly = open();
    expect(errnoOf(() => f.vfs.fstat(2, parentOnly))).toBe(Errno.EBADF);
  });

  it("fork inherits the working directory and umask, and they part afterwards", () => {
    Deno.mkdirSync(f.host("sub"));
    f.vfs.chdir(f.pid, "/sub");
    f.vfs.umask(f.pid, 0o077);
    f.vfs.forkTable(f.pid, 2);
    expect(decode(f.vfs.getcwd(2))).toBe("/sub");
    expect(f.vfs.umask(2, 0o022)).toBe(0o077);
    f.vfs.chdir(2, "/");
    expect(decode(f.vfs.getcwd(f.pid))).toBe("/sub");
    expect(f.vfs.umask(f.pid, 0o077)).toBe(0o077);
  });

  it("starts a process that inherits nothing in the working directory and umask it is given", () => {
    Deno.mkdirSync(f.host("home"));
    expect(f.vfs.attachProcess(5, { inheritance: "new", workingDirectory: "/home", umask: 0o077 })).toBe(0);
    expect(decode(f.vfs.getcwd(5))).toBe("/home");
    expect(f.vfs.umask(5, 0)).toBe(0o077);
    expect(errnoOf(() => f.vfs.fstat(5, 0))).toBe(Errno.EBADF);
    expect(errnoOf(() => f.vfs.attachProcess(6, { inheritance: "new", workingDirectory: "/nope" }))).toBe(
      Errno.ENOENT,
    );
    expect(errnoOf(() => f.vfs.attachProcess(6, { inheritance: "new", workingDirectory: "/file" }))).toBe(
      Errno.ENOTDIR,
    );
  });

  it("CLONE_FILES shares one table until exec unshares it", () => {
    f.vfs.attachProcess(2, { parentPid: f.pid, inheritance: "share" });
    const fd = open(O_RDONLY, 2);
    expect(f.vfs.fstat(f.pid, fd).size).toBe(10);
    const cloexec = open(O_RDONLY | O_CLOEXEC, 2);
    expect(f.vfs.execTable(2)).toBe(1);
    expect(f.vfs.fstat(f.pid, cloexec).size).toBe(10);
    expect(errnoOf(() => f.vfs.fstat(2, cloexec))).toBe(Errno.EBADF);
    // The unshared table has the close-on-exec slot free again; the parent's still holds it.
    expect(open(O_RDONLY, 2)).toBe(cloexec);
    const another = open(O_RDONLY, 2);
    expect(errnoOf(() => f.vfs.fstat(f.pid, another))).toBe(Errno.EBADF);
  });

  it("detaching closes the process's descriptors, and a shared table only with its last user", () => {
    f.vfs.forkTable(f.pid, 2);
    f.vfs.attachProcess(3, { parentPid: 2, inheritance: "share" });
    expect(f.vfs.detachProcess(2)).toBe(0);
    expect(f.vfs.detachProcess(3)).toBe(3);
    expect(errnoOf(() => f.vfs.fstat(2, 0))).toBe(Errno.ESRCH);
    expect(errnoOf(() => f.vfs.detachProcess(2))).toBe(Errno.ESRCH);
    expect(errnoOf(() => f.vfs.attachProcess(f.pid, { inheritance: "new" }))).toBe(Errno.EEXIST);
    expect(errnoOf(() => f.vfs.forkTable(77, 4))).toBe(Errno.ESRCH);
  });
});

describe("limits", () => {
  it("stops at RLIMIT_NOFILE with EMFILE and frees slots on close", () => {
    const { stdio } = memoryStdio();
    const vfs = new Vfs({ stdio, descriptorLimit: 8 });
    vfs.mountHostFolder(f.root);
    vfs.attachProcess(1, { inheritance: "new", stdio: true });
    const fds = [3, 4, 5, 6, 7].map(() => vfs.openat(1, AT_FDCWD, "file", O_RDONLY, 0));
    expect(fds).toEqual([3, 4, 5, 6, 7]);
    expect(errnoOf(() => vfs.openat(1, AT_FDCWD, "file", O_RDONLY, 0))).toBe(Errno.EMFILE);
    expect(errnoOf(() => vfs.dup(1, 3))).toBe(Errno.EMFILE);
    expect(errnoOf(() => vfs.pipe2(1, 0))).toBe(Errno.EMFILE);
    expect(errnoOf(() => vfs.openat(1, AT_FDCWD, "created", O_RDONLY | O_CREAT, 0o644))).toBe(Errno.EMFILE);
    // EMFILE is found before anything is created.
    expect(() => Deno.statSync(`${f.root}/created`)).toThrow(Deno.errors.NotFound);
    vfs.close(1, 5);
    expect(vfs.dup(1, 3)).toBe(5);
    vfs.shutdown();
  });

  it("leaves no half-made pipe when only one of its descriptors fits", () => {
    const { stdio } = memoryStdio();
    const vfs = new Vfs({ stdio, descriptorLimit: 4 });
    vfs.mountHostFolder(f.root);
    vfs.attachProcess(1, { inheritance: "new", stdio: true });
    expect(errnoOf(() => vfs.pipe2(1, 0))).toBe(Errno.EMFILE);
    expect(vfs.statistics().openDescriptors).toBe(3);
    vfs.shutdown();
  });
});

describe("statistics", () => {
  it("counts descriptors, shared descriptions and pipes", () => {
    const fd = open();
    f.vfs.dup(f.pid, fd);
    f.vfs.pipe2(f.pid, 0);
    f.vfs.forkTable(f.pid, 2);
    const s = f.vfs.statistics();
    expect(s.processes).toBe(2);
    expect(s.openDescriptors).toBe(2 * 7);
    expect(s.openFiles).toBe(3 + 1 + 2);
    expect(s.pipes).toBe(1);
    expect(s.mounts.map((m) => [m.mountPoint, m.kind])).toEqual([
      ["/dev", "devices"],
      ["/proc", "proc"],
      ["/", "host-folder"],
    ]);
  });
});

// A model of the descriptor semantics: tables map descriptors to descriptions, descriptions
// hold an offset. Random calls on two processes (the second forked from the first) must leave the
// VFS and the model agreeing on every descriptor's offset and close-on-exec flag.
type Command =
  | { op: "open"; pid: number }
  | { op: "dup"; pid: number; fd: number }
  | { op: "dup2"; pid: number; fd: number; to: number }
  | { op: "close"; pid: number; fd: number }
  | { op: "seek"; pid: number; fd: number; to: number }
  | { op: "cloexec"; pid: number; fd: number }
  | { op: "exec"; pid: number };

describe("descriptor model", () => {
  it("agrees with a model over random call sequences", () => {
    const pidArb = fc.constantFrom(1, 2);
    const fdArb = fc.integer({ min: 0, max: 9 });
    const command: fc.Arbitrary<Command> = fc.oneof(
      fc.record({ op: fc.constant("open" as const), pid: pidArb }),
      fc.record({ op: fc.constant("dup" as const), pid: pidArb, fd: fdArb }),
      fc.record({ op: fc.constant("dup2" as const), pid: pidArb, fd: fdArb, to: fdArb }),
      fc.record({ op: fc.constant("close" as const), pid: pidArb, fd: fdArb }),
      fc.record({
        op: fc.constant("seek" as const),
        pid: pidArb,
        fd: fdArb,
        to: fc.integer({ min: 0, max: 50 }),
      }),
      fc.record({ op: fc.constant("cloexec" as const), pid: pidArb, fd: fdArb }),
      fc.record({ op: fc.constant("exec" as const), pid: pidArb }),
    );
    fc.assert(
      fc.property(fc.array(command, { maxLength: 60 }), (commands) => {
        const { stdio } = memoryStdio();
        const vfs = new Vfs({ stdio, descriptorLimit: 10 });
        vfs.mountHostFolder(f.root);
        vfs.attachProcess(1, { inheritance: "new" });
        vfs.forkTable(1, 2);
        interface Description {
          offset: number;
        }
        const tables = new Map<number, Map<number, { d: Description; cloexec: boolean }>>([[1, new Map()], [
          2,
          new Map(),
        ]]);
        const lowest = (table: Map<number, unknown>) => {
          for (let fd = 0; fd < 10; fd++) if (!table.has(fd)) return fd;
          return -1;
        };
        for (const c of commands) {
          const table = tables.get(c.pid)!;
          const outcome = (() => {
            try {
              switch (c.op) {
                case "open":
                  return vfs.openat(c.pid, AT_FDCWD, "file", O_RDONLY, 0);
                case "dup":
                  return vfs.dup(c.pid, c.fd);
                case "dup2":
                  return vfs.dup2(c.pid, c.fd, c.to);
                case "close":
                  return vfs.close(c.pid, c.fd);
                case "seek":
                  return vfs.lseek(c.pid, c.fd, c.to, SEEK_SET);
                case "cloexec":
                  return vfs.fcntl(c.pid, c.fd, F_SETFD, FD_CLOEXEC);
                case "exec":
                  return vfs.execTable(c.pid);
              }
            } catch (err) {
              return err;
            }
          })();
          const slot = "fd" in c ? table.get(c.fd) : undefined;
          switch (c.op) {
            case "open": {
              const fd = lowest(table);
              if (fd < 0) expect(outcome).toMatchObject({ errno: Errno.EMFILE });
              else {
                expect(outcome).toBe(fd);
                table.set(fd, { d: { offset: 0 }, cloexec: false });
              }
              break;
            }
            case "dup": {
              const fd = lowest(table);
              if (!slot) expect(outcome).toMatchObject({ errno: Errno.EBADF });
              else if (fd < 0) expect(outcome).toMatchObject({ errno: Errno.EMFILE });
              else {
                expect(outcome).toBe(fd);
                table.set(fd, { d: slot.d, cloexec: false });
              }
              break;
            }
            case "dup2":
              if (!slot) expect(outcome).toMatchObject({ errno: Errno.EBADF });
              else {
                expect(outcome).toBe(c.to);
                if (c.to !== c.fd) table.set(c.to, { d: slot.d, cloexec: false });
              }
              break;
            case "close":
              if (!slot) expect(outcome).toMatchObject({ errno: Errno.EBADF });
              else table.delete(c.fd);
              break;
            case "seek":
              if (!slot) expect(outcome).toMatchObject({ errno: Errno.EBADF });
              else slot.d.offset = c.to;
              break;
            case "cloexec":
              if (!slot) expect(outcome).toMatchObject({ errno: Errno.EBADF });
              else slot.cloexec = true;
              break;
            case "exec":
              for (const [fd, s] of [...table]) if (s.cloexec) table.delete(fd);
              break;
          }
        }
        for (const [pid, table] of tables) {
          for (let fd = 0; fd < 10; fd++) {
            const slot = table.get(fd);
            if (!slot) {
              expect(errnoOf(() => vfs.fcntl(pid, fd, F_GETFD, 0))).toBe(Errno.EBADF);
              continue;
            }
            expect(vfs.lseek(pid, fd, 0, SEEK_CUR)).toBe(slot.d.offset);
            expect(vfs.fcntl(pid, fd, F_GETFD, 0)).toBe(slot.cloexec ? FD_CLOEXEC : 0);
          }
        }
        vfs.shutdown();
      }),
      { numRuns: 150 },
    );
  });
});

describe("writes through shared descriptions", () => {
  it("interleave at the shared offset as one file position", async () => {
    const fd = f.vfs.openat(f.pid, AT_FDCWD, "out", O_RDWR | O_CREAT, 0o644);
    f.vfs.forkTable(f.pid, 2);
    await f.vfs.write(f.pid, fd, encode("parent "));
    await f.vfs.write(2, fd, encode("child "));
    await f.vfs.write(f.pid, fd, encode("parent"));
    expect(Deno.readTextFileSync(f.host("out"))).toBe("parent child parent");
  });
});

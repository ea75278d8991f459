// Open file descriptions held by kernel peers, through VfsService over the in-process transport:
// OpenExecutable (execve's lookup and permission rules), HoldDescriptor (mmap's checks), reads and
// writes by offset, and the hold's lifetime against close(fd).
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DescriptorInheritance, VfsService } from "../../../gen/astra/storage/v1/vfs_pb.ts";
import { AstraError, Code } from "../../../lib/errors.ts";
import { InProcessRouter } from "../../../lib/inproc.ts";
import { type Client, client } from "../../../lib/rpc.ts";
import {
  AT_FDCWD,
  O_APPEND,
  O_DIRECTORY,
  O_PATH,
  O_RDONLY,
  O_RDWR,
  O_WRONLY,
  S_IFMT,
  S_IFREG,
} from "../../../services/storage/vfs/linux.ts";
import { bindVfs } from "../../../services/storage/vfs/service.ts";
import { Vfs } from "../../../services/storage/vfs/vfs.ts";
import { decode, encode, Errno, memoryStdio } from "./helpers.ts";

const PROGRAM = "\x7fELF program bytes";

let root: string;
let vfs: Vfs;
let storage: Client<typeof VfsService>;

beforeEach(async () => {
  root = Deno.makeTempDirSync({ prefix: "astra-vfs-held-" });
  Deno.mkdirSync(`${root}/bin`);
  Deno.writeTextFileSync(`${root}/bin/prog`, PROGRAM);
  Deno.chmodSync(`${root}/bin/prog`, 0o755);
  Deno.writeTextFileSync(`${root}/data.txt`, "0123456789abcdef");
  Deno.chmodSync(`${root}/data.txt`, 0o644);
  vfs = new Vfs({ stdio: memoryStdio().stdio });
  const router = new InProcessRouter();
  router.add(bindVfs(vfs));
  storage = client(VfsService, router.transport(), "test");
  await storage.mountHostFolder({ hostPath: root, mountPoint: encode("/") });
  await storage.attachProcess({
    pid: 1,
    inheritance: DescriptorInheritance.NONE,
    stdioOnConsole: true,
    workingDirectory: encode("/"),
  });
});

afterEach(() => {
  vfs.shutdown();
  Deno.removeSync(root, { recursive: true });
});

async function failure(call: Promise<unknown>): Promise<AstraError> {
  try {
    await call;
  } catch (err) {
    expect(err).toBeInstanceOf(AstraError);
    return err as AstraError;
  }
  throw new Error("expected the call to fail");
}

async function errnoOf(call: Promise<unknown>): Promise<Errno> {
  return (await failure(call)).errno;
}

async function open(path: string, flags: number): Promise<number> {
  return (await storage.open({ pid: 1, path: { dirFd: AT_FDCWD, path: encode(path) }, flags })).fd;
}

async function openFiles(): Promise<number> {
  return (await storage.getVfsStatistics({})).statistics!.openFiles;
}

async function read(openFileId: bigint, offset: number, length: number): Promise<string> {
  const { data } = await storage.readOpenFile({ openFileId, offset: BigInt(offset), length: BigInt(length) });
  return decode(data);
}

describe("OpenExecutable", () => {
  it("opens a program read-only and describes its file", async () => {
    const { file } = await storage.openExecutable({ pid: 1, path: encode("/bin/prog") });
    const host = Deno.statSync(`${root}/bin/prog`);
    expect(decode(file!.path)).toBe("/bin/prog");
    expect(file!.inode).toBe(BigInt(host.ino!));
    expect(file!.size).toBe(BigInt(PROGRAM.length));
    expect(file!.mode & S_IFMT).toBe(S_IFREG);
    expect(file!.mode & 0o777).toBe(0o755);
    expect([file!.uid, file!.gid]).toEqual([host.uid, host.gid]);
    expect([file!.readable, file!.writable]).toEqual([true, false]);
    expect(await read(file!.openFileId, 0, 100)).toBe(PROGRAM);
  });

  it("resolves relative paths from the working directory and follows symbolic links", async () => {
    Deno.symlinkSync("bin/prog", `${root}/link`);
    await storage.changeDirectory({ pid: 1, target: { case: "path", value: encode("/bin") } });
    const relative = (await storage.openExecutable({ pid: 1, path: encode("prog") })).file!;
    const dotted = (await storage.openExecutable({ pid: 1, path: encode("./prog") })).file!;
    const linked = (await storage.openExecutable({ pid: 1, path: encode("../link") })).file!;
    for (const file of [relative, dotted, linked]) expect(decode(file.path)).toBe("/bin/prog");
    // Each execve opens its own description.
    expect(new Set([relative.openFileId, dotted.openFileId, linked.openFileId]).size).toBe(3);
  });

  it("refuses what execve refuses, with its errno", async () => {
    Deno.symlinkSync("loop", `${root}/loop`);
    const exec = (path: string) => storage.openExecutable({ pid: 1, path: encode(path) });
    expect(await errnoOf(exec("/data.txt"))).toBe(Errno.EACCES);
    expect(await errnoOf(exec("/bin"))).toBe(Errno.EACCES);
    expect(await errnoOf(exec("/dev/null"))).toBe(Errno.EACCES);
    expect(await errnoOf(exec("/missing"))).toBe(Errno.ENOENT);
    expect(await errnoOf(exec(""))).toBe(Errno.ENOENT);
    expect(await errnoOf(exec("/bin/prog/x"))).toBe(Errno.ENOTDIR);
    expect(await errnoOf(exec("/loop"))).toBe(Errno.ELOOP);
    expect(await errnoOf(storage.openExecutable({ pid: 9, path: encode("/bin/prog") }))).toBe(Errno.ESRCH);
    expect(await openFiles()).toBe(3);
  });

  it("holds the program until its release, which closes it", async () => {
    const before = await openFiles();
    const { file } = await storage.openExecutable({ pid: 1, path: encode("/bin/prog") });
    expect(await openFiles()).toBe(before + 1);
    expect((await storage.releaseOpenFile({ openFileId: file!.openFileId })).closed).toBe(true);
    expect(await openFiles()).toBe(before);
  });
});

describe("HoldDescriptor", () => {
  it("keeps the description open after close(fd) until the last release", async () => {
    const fd = await open("/data.txt", O_RDONLY);
    const { file } = await storage.holdDescriptor({ pid: 1, fd });
    expect(decode(file!.path)).toBe("/data.txt");
    expect(file!.size).toBe(16n);
    await storage.close({ pid: 1, fd });
    expect(await openFiles()).toBe(4);
    expect(await read(file!.openFileId, 10, 6)).toBe("abcdef");
    expect((await storage.releaseOpenFile({ openFileId: file!.openFileId })).closed).toBe(true);
    expect(await openFiles()).toBe(3);
    const gone = await failure(
      storage.readOpenFile({ openFileId: file!.openFileId, offset: 0n, length: 1n }),
    );
    expect([gone.code, gone.errno]).toEqual([Code.NOT_FOUND, Errno.EBADF]);
  });

  it("names one description by one id, counting its holds", async () => {
    const fd = await open("/data.txt", O_RDONLY);
    const duplicate = (await storage.duplicate({ pid: 1, fd })).fd;
    const first = (await storage.holdDescriptor({ pid: 1, fd })).file!.openFileId;
    const second = (await storage.holdDescriptor({ pid: 1, fd: duplicate })).file!.openFileId;
    expect(second).toBe(first);
    const other = (await storage.holdDescriptor({ pid: 1, fd: await open("/data.txt", O_RDONLY) })).file!;
    expect(other.openFileId).not.toBe(first);
    // Descriptors still refer to it: a release does not close it.
    expect((await storage.releaseOpenFile({ openFileId: first })).closed).toBe(false);
    await storage.close({ pid: 1, fd });
    await storage.close({ pid: 1, fd: duplicate });
    expect(await read(first, 0, 4)).toBe("0123");
    expect((await storage.releaseOpenFile({ openFileId: first })).closed).toBe(true);
  });

  it("reads by offset whatever the file position, short at the end and empty beyond it", async () => {
    const fd = await open("/data.txt", O_RDONLY);
    const id = (await storage.holdDescriptor({ pid: 1, fd })).file!.openFileId;
    expect(await read(id, 4, 4)).toBe("4567");
    expect(await read(id, 12, 100)).toBe("cdef");
    expect(await read(id, 16, 10)).toBe("");
    expect(await read(id, 1 << 30, 10)).toBe("");
    expect(decode((await storage.read({ pid: 1, fd, count: 3n })).data)).toBe("012");
    expect(await read(id, 0, 2)).toBe("01");
    expect(decode((await storage.read({ pid: 1, fd, count: 3n })).data)).toBe("345");
    const tooLong = storage.readOpenFile({ openFileId: id, offset: 0n, length: 16n * 1024n * 1024n + 1n });
    expect(await errnoOf(tooLong)).toBe(Errno.EINVAL);
  });

  it("reads more than one host read's worth in one call", async () => {
    const big = Uint8Array.from({ length: 9 * 1024 * 1024 + 5 }, (_, i) => (i * 31) & 0xff);
    Deno.writeFileSync(`${root}/big`, big);
    const id = (await storage.holdDescriptor({ pid: 1, fd: await open("/big", O_RDONLY) })).file!.openFileId;
    const { data } = await storage.readOpenFile({ openFileId: id, offset: 3n, length: 16n * 1024n * 1024n });
    expect(data.length).toBe(big.length - 3);
    expect(new Uint8Array(data).every((byte, i) => byte === big[i + 3])).toBe(true);
  });

  it("writes at the offset given, even through an O_APPEND description", async () => {
    const fd = await open("/data.txt", O_RDWR | O_APPEND);
    const { file } = await storage.holdDescriptor({ pid: 1, fd });
    expect([file!.readable, file!.writable]).toEqual([true, true]);
    const { written } = await storage.writeOpenFile({
      openFileId: file!.openFileId,
      offset: 2n,
      data: encode("XY"),
    });
    expect(written).toBe(2n);
    expect(Deno.readTextFileSync(`${root}/data.txt`)).toBe("01XY456789abcdef");
    await storage.write({ pid: 1, fd, data: encode("!") });
    expect(Deno.readTextFileSync(`${root}/data.txt`)).toBe("01XY456789abcdef!");
    const readOnly = (await storage.holdDescriptor({ pid: 1, fd: await open("/data.txt", O_RDONLY) })).file!;
    const refused = storage.writeOpenFile({ openFileId: readOnly.openFileId, offset: 0n, data: encode("z") });
    expect(await errnoOf(refused)).toBe(Errno.EBADF);
  });

  it("refuses descriptors mmap refuses, in do_mmap's order", async () => {
    const hold = (fd: number) => storage.holdDescriptor({ pid: 1, fd });
    const { readFd, writeFd } = await storage.createPipe({ pid: 1, flags: 0 });
    expect(await errnoOf(hold(99))).toBe(Errno.EBADF);
    expect(await errnoOf(hold(await open("/data.txt", O_PATH)))).toBe(Errno.EBADF);
    expect(await errnoOf(hold(await open("/data.txt", O_WRONLY)))).toBe(Errno.EACCES);
    expect(await errnoOf(hold(writeFd))).toBe(Errno.EACCES);
    expect(await errnoOf(hold(readFd))).toBe(Errno.ENODEV);
    expect(await errnoOf(hold(0))).toBe(Errno.ENODEV);
    expect(await errnoOf(hold(await open("/bin", O_RDONLY | O_DIRECTORY)))).toBe(Errno.ENODEV);
    expect(await errnoOf(storage.holdDescriptor({ pid: 9, fd: 0 }))).toBe(Errno.ESRCH);
  });

  it("answers unknown ids with NOT_FOUND and EBADF", async () => {
    for (
      const call of [
        storage.releaseOpenFile({ openFileId: 12345n }),
        storage.readOpenFile({ openFileId: 12345n, offset: 0n, length: 1n }),
        storage.writeOpenFile({ openFileId: 12345n, offset: 0n, data: encode("x") }),
      ]
    ) {
      const error = await failure(call);
      expect([error.code, error.errno]).toEqual([Code.NOT_FOUND, Errno.EBADF]);
    }
  });

  it("closes what is still held when the VFS shuts down", async () => {
    const fd = await open("/data.txt", O_RDONLY);
    await storage.holdDescriptor({ pid: 1, fd });
    vfs.shutdown();
    expect(vfs.statistics().openFiles).toBe(0);
  });
});

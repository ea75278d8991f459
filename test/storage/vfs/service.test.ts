// The VfsService contract served by bindVfs, called through the in-process transport exactly as
// peers call it: typed RPCs, errors carrying the guest's errno, and the KernelCall stream.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  DescriptorInheritance,
  FileSystemKind,
  FileType,
  type KernelCallRequestSchema,
  type KernelCallResponse,
  SeekWhence,
  SyncMode,
  VfsService,
} from "../../../gen/astra/storage/v1/vfs_pb.ts";
import { Channel } from "../../../lib/channel.ts";
import { AstraError, Code } from "../../../lib/errors.ts";
import { InProcessRouter } from "../../../lib/inproc.ts";
import { type Client, client } from "../../../lib/rpc.ts";
import {
  AT_FDCWD,
  F_GETFL,
  O_CREAT,
  O_DIRECTORY,
  O_LARGEFILE,
  O_RDONLY,
  O_RDWR,
  SYS,
} from "../../../services/storage/vfs/linux.ts";
import { bindVfs } from "../../../services/storage/vfs/service.ts";
import { Vfs } from "../../../services/storage/vfs/vfs.ts";
import { decode, encode, Errno, memoryStdio, parseDirents, parseStat } from "./helpers.ts";

type KernelCallInit = MessageInitShape<typeof KernelCallRequestSchema>;

let root: string;
let vfs: Vfs;
let vfsClient: Client<typeof VfsService>;
let captured: ReturnType<typeof memoryStdio>["captured"];

beforeEach(async () => {
  root = Deno.makeTempDirSync({ prefix: "astra-vfs-service-" });
  Deno.writeTextFileSync(`${root}/hello.txt`, "hello, guest");
  const streams = memoryStdio({ input: ["typed"] });
  captured = streams.captured;
  vfs = new Vfs({ stdio: streams.stdio });
  const router = new InProcessRouter();
  router.add(bindVfs(vfs));
  vfsClient = client(VfsService, router.transport(), "test");
  const mounted = await vfsClient.mountHostFolder({ hostPath: root, mountPoint: encode("/") });
  expect(mounted.mountId).toBe(3n);
  const attached = await vfsClient.attachProcess({
    pid: 1,
    inheritance: DescriptorInheritance.NONE,
    stdioOnConsole: true,
    umask: 0o022,
    workingDirectory: encode("/"),
  });
  expect(attached.descriptors).toBe(3);
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

const at = (path: string) => ({ dirFd: AT_FDCWD, path: encode(path) });

describe("typed calls", () => {
  it("opens, reads, seeks, writes, stats and closes", async () => {
    const { fd } = await vfsClient.open({ pid: 1, path: at("hello.txt"), flags: O_RDWR });
    expect(fd).toBe(3);
    expect(decode((await vfsClient.read({ pid: 1, fd, count: 5n })).data)).toBe("hello");
    expect(decode((await vfsClient.read({ pid: 1, fd, count: 5n, offset: 7n })).data)).toBe("guest");
    expect((await vfsClient.seek({ pid: 1, fd, offset: 0n, whence: SeekWhence.END })).offset).toBe(12n);
    expect((await vfsClient.write({ pid: 1, fd, data: encode("!") })).written).toBe(1n);
    expect((await vfsClient.write({ pid: 1, fd, data: encode("H"), offset: 0n })).written).toBe(1n);
    const { stat } = await vfsClient.stat({ pid: 1, target: { case: "fd", value: fd } });
    expect(stat!.size).toBe(13n);
    expect(stat!.type).toBe(FileType.REGULAR);
    expect(stat!.inode).toBe(BigInt(Deno.statSync(`${root}/hello.txt`).ino!));
    await vfsClient.sync({ pid: 1, fd, mode: SyncMode.DATA });
    await vfsClient.truncate({ pid: 1, fd, length: 5n });
    await vfsClient.close({ pid: 1, fd });
    expect(Deno.readTextFileSync(`${root}/hello.txt`)).toBe("Hello");
  });

  it("carries the guest's errno in the error detail", async () => {
    const missing = await failure(vfsClient.open({ pid: 1, path: at("missing"), flags: O_RDONLY }));
    expect(missing.errno).toBe(Errno.ENOENT);
    expect(missing.code).toBe(Code.NOT_FOUND);
    expect(missing.detail.service).toBe("storage");
    expect((await failure(vfsClient.close({ pid: 1, fd: 44 }))).errno).toBe(Errno.EBADF);
    expect((await failure(vfsClient.close({ pid: 7, fd: 0 }))).errno).toBe(Errno.ESRCH);
    expect((await failure(vfsClient.seek({ pid: 1, fd: 0, offset: 0n }))).errno).toBe(Errno.EINVAL);
    expect((await failure(vfsClient.sync({ pid: 1, fd: 0 }))).errno).toBe(Errno.EINVAL);
  });

  it("makes directories, lists them in records and entries, renames and removes", async () => {
    await vfsClient.makeDirectory({ pid: 1, path: at("d"), mode: 0o755 });
    await vfsClient.rename({ pid: 1, from: at("hello.txt"), to: at("d/moved"), flags: 0 });
    const { fd } = await vfsClient.open({ pid: 1, path: at("d"), flags: O_RDONLY | O_DIRECTORY });
    const listing = await vfsClient.readDirectory({ pid: 1, fd, maxBytes: 4096 });
    expect(listing.entries.map((e) => decode(e.name))).toEqual([".", "..", "moved"]);
    expect(listing.entries[2].type).toBe(FileType.REGULAR);
    expect(listing.entries.map((e) => e.offset)).toEqual([1n, 2n, 3n]);
    expect(parseDirents(listing.records).map((e) => e.name)).toEqual([".", "..", "moved"]);
    await vfsClient.unlink({ pid: 1, path: at("d/moved"), flags: 0 });
    await vfsClient.unlink({ pid: 1, path: at("d"), flags: 0x200 });
    expect([...Deno.readDirSync(root)]).toEqual([]);
  });

  it("changes and reports the working directory, by path and by descriptor", async () => {
    await vfsClient.makeDirectory({ pid: 1, path: at("w"), mode: 0o755 });
    await vfsClient.changeDirectory({ pid: 1, target: { case: "path", value: encode("w") } });
    expect(decode((await vfsClient.getWorkingDirectory({ pid: 1 })).path)).toBe("/w");
    const { fd } = await vfsClient.open({ pid: 1, path: at("/"), flags: O_RDONLY });
    await vfsClient.changeDirectory({ pid: 1, target: { case: "fd", value: fd } });
    expect(decode((await vfsClient.getWorkingDirectory({ pid: 1 })).path)).toBe("/");
  });

  it("duplicates, controls, pipes and masks", async () => {
    expect((await vfsClient.duplicate({ pid: 1, fd: 1 })).fd).toBe(3);
    expect((await vfsClient.duplicate({ pid: 1, fd: 1, minFd: 10, closeOnExec: true })).fd).toBe(10);
    expect((await vfsClient.duplicate({ pid: 1, fd: 1, newFd: 20 })).fd).toBe(20);
    expect((await vfsClient.fileControl({ pid: 1, fd: 10, command: 1 })).result).toBe(1n);
    const { readFd, writeFd } = await vfsClient.createPipe({ pid: 1, flags: 0 });
    expect([readFd, writeFd]).toEqual([4, 5]);
    await vfsClient.write({ pid: 1, fd: writeFd, data: encode("through") });
    expect(decode((await vfsClient.read({ pid: 1, fd: readFd, count: 100n })).data)).toBe("through");
    expect((await vfsClient.setUmask({ pid: 1, mask: 0o077 })).previous).toBe(0o022);
    const { fd } = await vfsClient.open({ pid: 1, path: at("new"), flags: O_RDWR | O_CREAT, mode: 0o666 });
    expect(Deno.statSync(`${root}/new`).mode! & 0o777).toBe(0o600);
    expect((await vfsClient.fileControl({ pid: 1, fd, command: F_GETFL })).result).toBe(
      BigInt(O_RDWR | O_LARGEFILE),
    );
    const ioctl = await failure(vfsClient.ioControl({ pid: 1, fd: 1, request: 0x402c7413 }));
    expect(ioctl.errno).toBe(Errno.ENOTTY);
    expect((await vfsClient.ioControl({ pid: 1, fd, request: 0x20006601 })).result).toBe(0n);
  });

  it("checks access and reads links", async () => {
    Deno.symlinkSync("hello.txt", `${root}/ln`);
    await vfsClient.access({ pid: 1, path: at("ln"), mode: 4 });
    expect(decode((await vfsClient.readLink({ pid: 1, path: at("ln") })).target)).toBe("hello.txt");
    expect((await failure(vfsClient.access({ pid: 1, path: at("nope"), mode: 0 }))).errno).toBe(Errno.ENOENT);
  });

  it("follows a process from fork through exec to exit", async () => {
    const { fd } = await vfsClient.open({ pid: 1, path: at("hello.txt"), flags: O_RDONLY | 0o2000000 });
    const forked = await vfsClient.attachProcess({
      pid: 2,
      parentPid: 1,
      inheritance: DescriptorInheritance.COPY,
    });
    expect(forked.descriptors).toBe(4);
    expect((await vfsClient.execProcess({ pid: 2, executable: encode("/bin/sh") })).closed).toBe(1);
    expect(decode((await vfsClient.readLink({ pid: 2, path: at("/proc/self/exe") })).target)).toBe("/bin/sh");
    expect((await failure(vfsClient.read({ pid: 2, fd, count: 1n }))).errno).toBe(Errno.EBADF);
    expect((await vfsClient.detachProcess({ pid: 2 })).closed).toBe(3);
    expect((await failure(vfsClient.attachProcess({ pid: 3, parentPid: 1 }))).errno).toBe(Errno.EINVAL);
  });

  it("reports statistics", async () => {
    await vfsClient.open({ pid: 1, path: at("hello.txt"), flags: O_RDONLY });
    await vfsClient.createPipe({ pid: 1, flags: 0 });
    await failure(vfsClient.close({ pid: 1, fd: 99 }));
    const { statistics } = await vfsClient.getVfsStatistics({});
    expect(statistics!.processes).toBe(1);
    expect(statistics!.openDescriptors).toBe(6);
    expect(statistics!.openFiles).toBe(6);
    expect(statistics!.pipes).toBe(1);
    expect(statistics!.mounts.map((m) => [decode(m.mountPoint), m.kind])).toEqual([
      ["/dev", FileSystemKind.DEVICES],
      ["/proc", FileSystemKind.PROC],
      ["/", FileSystemKind.HOST_FOLDER],
    ]);
    expect(statistics!.mounts[2].source).toBe(Deno.realPathSync(root));
    expect(statistics!.calls).toBe(5n);
    expect(statistics!.errors).toBe(1n);
  });
});

describe("the KernelCall stream", () => {
  it("answers each call with its id, result, errno and outputs", async () => {
    const requests = new Channel<KernelCallInit>();
    const replies = vfsClient.kernelCall(requests)[Symbol.asyncIterator]();
    const path = encode("hello.txt\0");
    requests.push({
      callId: 1n,
      pid: 1,
      number: SYS.openat,
      args: [BigInt.asUintN(64, BigInt(AT_FDCWD)), 0x1000n, 0n, 0n, 0n, 0n],
      inputs: [{ address: 0x1000n, data: path }],
    });
    const opened = (await replies.next()).value as KernelCallResponse;
    expect(opened.callId).toBe(1n);
    expect(opened.errno).toBe(Errno.UNSPECIFIED);
    expect(opened.result).toBe(3n);

    requests.push({ callId: 2n, pid: 1, number: SYS.read, args: [3n, 0x2000n, 5n, 0n, 0n, 0n] });
    const read = (await replies.next()).value as KernelCallResponse;
    expect(read.result).toBe(5n);
    expect(read.outputs.map((o) => [o.address, decode(o.data)])).toEqual([[0x2000n, "hello"]]);

    requests.push({ callId: 3n, pid: 1, number: SYS.fstat, args: [3n, 0x3000n, 0n, 0n, 0n, 0n] });
    const stat = (await replies.next()).value as KernelCallResponse;
    expect(parseStat(stat.outputs[0].data).size).toBe(12);

    requests.push({ callId: 4n, pid: 1, number: SYS.close, args: [77n, 0n, 0n, 0n, 0n, 0n] });
    const closed = (await replies.next()).value as KernelCallResponse;
    expect(closed.errno).toBe(Errno.EBADF);

    requests.push({ callId: 5n, pid: 1, number: 4242, args: [0n, 0n, 0n, 0n, 0n, 0n] });
    expect(((await replies.next()).value as KernelCallResponse).errno).toBe(Errno.ENOSYS);

    requests.push({
      callId: 6n,
      pid: 1,
      number: SYS.write,
      args: [1n, 0x4000n, 3n, 0n, 0n, 0n],
      inputs: [{ address: 0x4000n, data: encode("out") }],
    });
    expect(((await replies.next()).value as KernelCallResponse).result).toBe(3n);
    expect(captured.text("stdout")).toBe("out");
    requests.close();
    expect((await replies.next()).done).toBe(true);
  });

  it("answers a later call while an earlier one waits on a pipe", async () => {
    const { readFd, writeFd } = await vfsClient.createPipe({ pid: 1, flags: 0 });
    const requests = new Channel<KernelCallInit>();
    const replies = vfsClient.kernelCall(requests)[Symbol.asyncIterator]();
    requests.push({
      callId: 10n,
      pid: 1,
      number: SYS.read,
      args: [BigInt(readFd), 0x5000n, 64n, 0n, 0n, 0n],
    });
    requests.push({
      callId: 11n,
      pid: 1,
      number: SYS.write,
      args: [BigInt(writeFd), 0x6000n, 4n, 0n, 0n, 0n],
      inputs: [{ address: 0x6000n, data: encode("ping") }],
    });
    const first = (await replies.next()).value as KernelCallResponse;
    const second = (await replies.next()).value as KernelCallResponse;
    expect([first.callId, second.callId]).toEqual([11n, 10n]);
    expect(decode(second.outputs[0].data)).toBe("ping");
    requests.close();
    expect((await replies.next()).done).toBe(true);
    const { statistics } = await vfsClient.getVfsStatistics({});
    expect(statistics!.bytesRead).toBe(4n);
    expect(statistics!.bytesWritten).toBe(4n);
  });

  it("ends a call waiting for a process that exits with EINTR", async () => {
    const { readFd } = await vfsClient.createPipe({ pid: 1, flags: 0 });
    await vfsClient.attachProcess({ pid: 2, parentPid: 1, inheritance: DescriptorInheritance.COPY });
    const requests = new Channel<KernelCallInit>();
    const replies = vfsClient.kernelCall(requests)[Symbol.asyncIterator]();
    requests.push({
      callId: 20n,
      pid: 2,
      number: SYS.read,
      args: [BigInt(readFd), 0x5000n, 64n, 0n, 0n, 0n],
    });
    await new Promise((resolve) => setTimeout(resolve, 5));
    await vfsClient.detachProcess({ pid: 2 });
    const reply = (await replies.next()).value as KernelCallResponse;
    expect(reply.callId).toBe(20n);
    expect(reply.errno).toBe(Errno.EINTR);
    requests.close();
  });
});

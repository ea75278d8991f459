// The trap path and user memory: VFS calls copied in by the per-call table and their outputs
// copied back (against the real VFS), pages and segments faulted in through vmm on the way, and
// the thread's own page faults and segment misses turned into mappings or forced signals.
import { afterEach, describe, expect, it } from "vitest";
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  type KernelCallRequest,
  type KernelCallResponseSchema,
  VfsService,
} from "../../gen/astra/storage/v1/vfs_pb.ts";
import { AstraError, Code, Errno } from "../../lib/errors.ts";
import { IOC_WRITE, ioctlRequest } from "../../lib/linux/ioctl.ts";
import { SYSCALLS } from "../../lib/linux/syscall_numbers.ts";
import { MAX_IO_BYTES } from "../../lib/linux/vfs_calls.ts";
import { pendingMethods } from "../../lib/server.ts";
import type { KernelCallOutcome } from "../../services/machine/kernel_side.ts";
import { AT_FDCWD, O_RDONLY, O_RDWR, STAT_BYTES } from "../../services/storage/vfs/linux.ts";
import { type Fixture, fixture } from "../storage/vfs/helpers.ts";
import { PAGE, ScriptedKernelCalls, startTrapRig, THREAD, type TrapRig } from "./trap_rig.ts";

let rig: TrapRig;
let files: Fixture | undefined;

afterEach(async () => {
  await rig?.close();
  files?.remove();
  files = undefined;
});

const REGION = 0x10000000n;
const REGION_BYTES = 0x100000;
const returned = (value: bigint): KernelCallOutcome => ({ kind: "return", value, signalPending: false });
const errored = (errno: Errno): KernelCallOutcome => ({ kind: "error", errno, signalPending: false });
const bytes = (length: number, seed = 1) => Uint8Array.from({ length }, (_, i) => (i * 7 + seed) % 251);

/** The real VFS over a temporary folder, and the trap path with vmm demand-mapping REGION. */
function withVfs(
  options: { segmented?: boolean } = {},
): { call: (n: number, ...a: bigint[]) => Promise<KernelCallOutcome> } {
  files = fixture();
  rig = startTrapRig({ vfs: files.vfs, segmented: options.segmented });
  rig.vmm.region(REGION, REGION_BYTES);
  return {
    call: (number, ...args) =>
      rig.kernel.systemCall(THREAD, rig.memory, number, [...args, 0n, 0n, 0n, 0n, 0n, 0n].slice(0, 6)),
  };
}

describe("VFS calls", () => {
  it("copies a path in from a page not translated yet", async () => {
    const { call } = withVfs();
    Deno.writeTextFileSync(files!.host("hello"), "hello, guest");
    const path = rig.memory.string(REGION + 0x100n, "/hello");
    rig.memory.evict(REGION, 4096);
    expect(await call(SYSCALLS.openat, BigInt.asUintN(64, BigInt(AT_FDCWD)), path, BigInt(O_RDONLY)))
      .toEqual(returned(3n));
    expect(rig.vmm.faults.map((f) => f.address)).toEqual([REGION + 0x100n]);
  });

  it("reads a path that crosses into the next page", async () => {
    const { call } = withVfs();
    Deno.mkdirSync(files!.host("dir"));
    Deno.writeTextFileSync(files!.host("dir/file"), "x");
    const path = rig.memory.string(REGION + PAGE - 5n, "/dir/file");
    rig.memory.evict(REGION + PAGE, 4096);
    expect(await call(SYSCALLS.open, path, BigInt(O_RDONLY))).toEqual(returned(3n));
  });

  it("writes a large read back over many pages, faulting each one in once", async () => {
    const { call } = withVfs();
    const content = bytes(64 * 1024);
    Deno.writeFileSync(files!.host("big"), content);
    const path = rig.memory.string(REGION, "big");
    const buffer = REGION + 0x10000n;
    expect(await call(SYSCALLS.open, path, BigInt(O_RDONLY))).toEqual(returned(3n));
    expect(await call(SYSCALLS.read, 3n, buffer, BigInt(content.length))).toEqual(
      returned(BigInt(content.length)),
    );
    expect(rig.memory.peek(buffer, content.length)).toEqual(content);
    expect(rig.vmm.faults).toHaveLength(16);
  });

  it("gathers writev's vectors from several pages", async () => {
    const { call } = withVfs();
    const path = rig.memory.string(REGION, "out");
    expect(await call(SYSCALLS.open, path, BigInt(0o100 | O_RDWR), 0o644n)).toEqual(returned(3n));
    const first = rig.memory.string(REGION + 0x3000n, "first ");
    const second = rig.memory.string(REGION + 0x5ffen, "second");
    const iov = REGION + 0x8000n;
    const vectors = new DataView(new ArrayBuffer(32));
    vectors.setBigUint64(0, first, true);
    vectors.setBigUint64(8, 6n, true);
    vectors.setBigUint64(16, second, true);
    vectors.setBigUint64(24, 6n, true);
    rig.memory.poke(iov, new Uint8Array(vectors.buffer));
    rig.memory.evict(REGION + 0x3000n, 0x6000);
    expect(await call(SYSCALLS.writev, 3n, iov, 2n)).toEqual(returned(12n));
    expect(Deno.readTextFileSync(files!.host("out"))).toBe("first second");
  });

  it("writes fstat's structure to the caller's buffer", async () => {
    const { call } = withVfs();
    Deno.writeTextFileSync(files!.host("sized"), "12345");
    expect(await call(SYSCALLS.open, rig.memory.string(REGION, "sized"), BigInt(O_RDONLY))).toEqual(
      returned(3n),
    );
    const stat = REGION + 0x2000n;
    expect(await call(SYSCALLS.fstat, 3n, stat)).toEqual(returned(0n));
    const view = new DataView(rig.memory.peek(stat, STAT_BYTES).buffer);
    expect(view.getBigInt64(48, true)).toBe(5n); // st_size on ppc64
  });

  it("fails with EFAULT, and sends no signal, when vmm refuses the buffer", async () => {
    const { call } = withVfs();
    Deno.writeTextFileSync(files!.host("f"), "data");
    expect(await call(SYSCALLS.open, rig.memory.string(REGION, "f"), BigInt(O_RDONLY))).toEqual(returned(3n));
    expect(await call(SYSCALLS.read, 3n, 0x7000_0000n, 4n)).toEqual(errored(Errno.EFAULT));
    expect(await call(SYSCALLS.write, 1n, 0x7000_0000n, 4n)).toEqual(errored(Errno.EFAULT));
    expect(rig.sched.kills).toEqual([]);
  });

  it("asks vmm for a segment missing from the SLB, then goes on", async () => {
    const { call } = withVfs({ segmented: true });
    Deno.writeTextFileSync(files!.host("seg"), "");
    const path = rig.memory.string(REGION + 0x40n, "seg");
    expect(await call(SYSCALLS.open, path, BigInt(O_RDONLY))).toEqual(returned(3n));
    expect(rig.vmm.segmentRequests).toBe(1);
    expect([...rig.memory.segments]).toEqual([Number(REGION >> 28n)]);
  });

  it("fails a copy with EIO when vmm cannot be asked", async () => {
    const { call } = withVfs();
    const path = rig.memory.string(REGION, "x");
    rig.memory.evict(REGION, 4096);
    rig.vmm.failure = new AstraError(Code.UNAVAILABLE, Errno.EAGAIN, "vmm restarting");
    expect(await call(SYSCALLS.open, path, BigInt(O_RDONLY))).toEqual(errored(Errno.EIO));
  });
});

describe("what the per-call table copies", () => {
  type Reply = MessageInitShape<typeof KernelCallResponseSchema>;
  function scripted(): ScriptedKernelCalls<KernelCallRequest, Reply> {
    const storage = new ScriptedKernelCalls<KernelCallRequest, Reply>();
    storage.onRequest = (req, stream) => stream.reply({ callId: req.callId });
    rig = startTrapRig({
      storage: { ...pendingMethods(VfsService, "the trap path's tests"), kernelCall: storage.handler() },
    });
    rig.vmm.region(REGION, REGION_BYTES);
    return storage;
  }
  const call = (number: number, ...args: bigint[]) =>
    rig.kernel.systemCall(THREAD, rig.memory, number, [...args, 0n, 0n, 0n, 0n, 0n, 0n].slice(0, 6));

  it("copies both paths of a rename, and nothing for NULL", async () => {
    const storage = scripted();
    const from = rig.memory.string(REGION, "a"), to = rig.memory.string(REGION + 0x10n, "bb");
    await call(SYSCALLS.renameat, 5n, from, 6n, to);
    await call(SYSCALLS.unlink, 0n);
    const [rename, unlink] = storage.requests;
    expect(rename.inputs.map((i) => [i.address, new TextDecoder().decode(i.data)])).toEqual([
      [from, "a\0"],
      [to, "bb\0"],
    ]);
    expect(rename.args).toEqual([5n, from, 6n, to, 0n, 0n]);
    expect(unlink.inputs).toEqual([]);
  });

  it("copies an ioctl's argument only when the request writes it in", async () => {
    const storage = scripted();
    const arg = REGION + 0x100n;
    rig.memory.poke(arg, bytes(8));
    await call(SYSCALLS.ioctl, 1n, BigInt(ioctlRequest(IOC_WRITE, "t", 103, 8)), arg);
    await call(SYSCALLS.ioctl, 1n, BigInt(ioctlRequest(2, "t", 104, 8)), arg);
    expect(storage.requests[0].inputs.map((i) => i.data)).toEqual([bytes(8)]);
    expect(storage.requests[1].inputs).toEqual([]);
  });

  it("caps a write's buffer at MAX_IO_BYTES and leaves out what cannot be read", async () => {
    const storage = scripted();
    rig.memory.map(0x2000_0000n, MAX_IO_BYTES + 8192);
    await call(SYSCALLS.write, 1n, 0x2000_0000n, BigInt(MAX_IO_BYTES) * 2n);
    await call(SYSCALLS.pwrite64, 1n, 0x7000_0000n, 10n);
    expect(storage.requests[0].inputs[0].data.length).toBe(MAX_IO_BYTES);
    expect(storage.requests[1].inputs).toEqual([]);
  });

  it("copies readv's vectors but not their buffers, and nothing for a bad count", async () => {
    const storage = scripted();
    const iov = REGION + 0x200n;
    rig.memory.poke(iov, bytes(32));
    await call(SYSCALLS.readv, 3n, iov, 2n);
    await call(SYSCALLS.writev, 3n, iov, 5000n);
    expect(storage.requests[0].inputs).toHaveLength(1);
    expect(storage.requests[0].inputs[0].data).toEqual(bytes(32));
    expect(storage.requests[1].inputs).toEqual([]);
  });

  it("writes the outputs of a RETURN before resuming", async () => {
    const storage = scripted();
    const buffer = REGION + 0x3000n;
    storage.onRequest = (req, stream) =>
      stream.reply({ callId: req.callId, result: 4n, outputs: [{ address: buffer, data: bytes(4) }] });
    expect(await call(SYSCALLS.read, 0n, buffer, 4n)).toEqual(returned(4n));
    expect(rig.memory.peek(buffer, 4)).toEqual(bytes(4));
  });
});

describe("the thread's own faults", () => {
  it("maps a page vmm can supply", async () => {
    rig = startTrapRig();
    rig.vmm.region(REGION, 4096);
    expect(await rig.kernel.pageFault(THREAD, REGION + 8n, "write", "not-mapped")).toEqual({
      kind: "mapped",
    });
    expect(rig.vmm.faults[0]).toMatchObject({ spaceId: 7n, address: REGION + 8n, tid: 1, cpu: 1 });
    expect(rig.sched.kills).toEqual([]);
  });

  it("sends the signal vmm answers, forced, with its code and address", async () => {
    rig = startTrapRig();
    rig.vmm.region(REGION, 4096);
    rig.memory.map(REGION, 4096, false);
    expect(await rig.kernel.pageFault(THREAD, 0x40n, "read", "not-mapped")).toEqual({
      kind: "signal",
      signal: 11,
    });
    expect(await rig.kernel.pageFault(THREAD, REGION, "write", "protection")).toEqual({
      kind: "signal",
      signal: 11,
    });
    expect(rig.sched.kills).toMatchObject([
      { senderPid: 0, pid: 1, tid: 1, signal: 11, forced: true, code: 1, address: 0x40n },
      { signal: 11, forced: true, code: 2, address: REGION },
    ]);
  });

  it("raises SIGBUS for a bad real address without asking vmm, and when vmm fails", async () => {
    rig = startTrapRig();
    expect(await rig.kernel.pageFault(THREAD, REGION, "read", "bad-real-address")).toEqual({
      kind: "signal",
      signal: 7,
    });
    expect(rig.vmm.faults).toEqual([]);
    rig.vmm.failure = new AstraError(Code.UNAVAILABLE, Errno.EAGAIN, "vmm restarting");
    expect(await rig.kernel.pageFault(THREAD, REGION, "execute", "protection")).toEqual({
      kind: "signal",
      signal: 7,
    });
    expect(rig.sched.kills.map((k) => [k.signal, k.code])).toEqual([[7, 2], [7, 2]]);
  });

  it("raises SIGSEGV when vmm answers that no user memory is there (EFAULT)", async () => {
    rig = startTrapRig();
    rig.vmm.failure = new AstraError(Code.INVALID_ARGUMENT, Errno.EFAULT, "beyond the user address space");
    expect(await rig.kernel.pageFault(THREAD, 2n ** 60n, "read", "not-mapped")).toEqual({
      kind: "signal",
      signal: 11,
    });
    expect(rig.sched.kills).toMatchObject([{ signal: 11, code: 1, address: 2n ** 60n }]);
  });

  it("loads a missing segment, or SIGSEGV outside the address space", async () => {
    rig = startTrapRig();
    rig.vmm.region(REGION, 4096);
    expect(await rig.kernel.segmentMiss(THREAD, REGION + 4n, "execute")).toEqual({
      kind: "segment",
      entry: {
        esid: 1,
        vsid: 0x1001,
        segmentSize: 0,
        basePageShift: 12,
        ks: true,
        kp: true,
        noExecute: false,
      },
    });
    expect(await rig.kernel.segmentMiss(THREAD, 1n << 60n, "read")).toEqual({ kind: "signal", signal: 11 });
    expect(rig.sched.kills).toMatchObject([{ signal: 11, code: 1, address: 1n << 60n, forced: true }]);
  });
});

// File mappings in the running system: vmm reading and writing pages through storage's open file
// descriptions. A guest's mmap(fd) over the KernelCall stream takes a hold on the descriptor's
// description, the mapping outlives close(fd), a page fault brings the file's bytes in, a shared
// mapping's stores reach the host file, and the last munmap closes the description.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { afterAll, beforeAll, expect, it } from "vitest";
import { MachineService } from "../../../gen/astra/machine/v1/machine_pb.ts";
import { DescriptorInheritance, VfsService } from "../../../gen/astra/storage/v1/vfs_pb.ts";
import {
  AccessType,
  FaultAction,
  FaultCause,
  type KernelCallRequestSchema,
  type KernelCallResponse,
  MappingKind,
  VmmService,
} from "../../../gen/astra/vmm/v1/vmm_pb.ts";
import { Channel } from "../../../lib/channel.ts";
import { bootEmbedded, type EmbeddedSystem } from "../../../lib/host.ts";
import { SYSCALLS } from "../../../lib/linux/syscall_numbers.ts";
import { type Client, client } from "../../../lib/rpc.ts";
import { loadFactory } from "../../../services/index.ts";
import { AT_FDCWD, O_RDONLY, O_RDWR } from "../../../services/storage/vfs/linux.ts";
import { P, pattern } from "./rig.ts";

const PID = 7;
const PROT_READ = 1n, PROT_WRITE = 2n;
const MAP_SHARED = 1n, MAP_PRIVATE = 2n;
const encode = (text: string) => new TextEncoder().encode(text);

let system: EmbeddedSystem;
let root: string;
let dataDir: string;
let vmm: Client<typeof VmmService>;
let storage: Client<typeof VfsService>;
let machine: Client<typeof MachineService>;
let requests: Channel<MessageInitShape<typeof KernelCallRequestSchema>>;
let replies: AsyncIterator<KernelCallResponse>;
let nextCallId = 1n;

beforeAll(async () => {
  root = await Deno.makeTempDir({ prefix: "astra-vmm-files-" });
  dataDir = await Deno.makeTempDir({ prefix: "astra-vmm-files-data-" });
  await Deno.writeFile(`${root}/data.bin`, pattern(3 * P, 4));
  await Deno.writeTextFile(`${root}/shared.txt`, "x".repeat(P));
  await Deno.writeFile(`${root}/prog`, pattern(2 * P, 8), { mode: 0o755 });
  system = await bootEmbedded(loadFactory, { memoryBytes: 64 * 1024 * 1024, numaNodes: 1, cpus: 1, dataDir });
  const transport = system.router.transport();
  vmm = client(VmmService, transport, "test");
  storage = client(VfsService, transport, "test");
  machine = client(MachineService, transport, "test");
  await storage.mountHostFolder({ hostPath: root, mountPoint: encode("/") });
  await storage.attachProcess({
    pid: PID,
    inheritance: DescriptorInheritance.NONE,
    workingDirectory: encode("/"),
  });
  requests = new Channel();
  replies = vmm.kernelCall(requests)[Symbol.asyncIterator]();
}, 60_000);

afterAll(async () => {
  requests.close();
  await system.shutdown();
  await Deno.remove(root, { recursive: true });
  await Deno.remove(dataDir, { recursive: true });
});

/** One system call on the stream, r3 as the machine would get it. */
async function call(spaceId: bigint, number: number, args: bigint[]): Promise<bigint> {
  const callId = nextCallId++;
  requests.push({ callId, spaceId, pid: PID, tid: PID, number, args });
  const reply = (await replies.next()).value as KernelCallResponse;
  expect(reply.callId).toBe(callId);
  expect(reply.outcome.case).toBe("value");
  return reply.outcome.value as bigint;
}

async function open(path: string, flags: number): Promise<bigint> {
  const { fd } = await storage.open({ pid: PID, path: { dirFd: AT_FDCWD, path: encode(path) }, flags });
  return BigInt(fd);
}

async function openFiles(): Promise<number> {
  return (await storage.getVfsStatistics({})).statistics!.openFiles;
}

async function fault(spaceId: bigint, address: bigint, access: AccessType) {
  return await vmm.handlePageFault({
    spaceId,
    address,
    access,
    cause: FaultCause.NOT_MAPPED,
    tid: PID,
    cpu: 0,
  });
}

async function page(physicalAddress: bigint): Promise<Uint8Array> {
  return new Uint8Array((await machine.readPhysical({ address: physicalAddress, length: BigInt(P) })).data);
}

it("pages a privately mapped file in through storage after its descriptor is closed", async () => {
  const { spaceId } = await vmm.createAddressSpace({ pid: PID });
  const fd = await open("/data.bin", O_RDONLY);
  const at = await call(spaceId, SYSCALLS.mmap, [0n, BigInt(2 * P), PROT_READ, MAP_PRIVATE, fd, BigInt(P)]);
  await storage.close({ pid: PID, fd: Number(fd) });
  expect(await openFiles()).toBe(1);

  const reply = await fault(spaceId, at + BigInt(P), AccessType.READ);
  expect(reply.action).toBe(FaultAction.FILE_READ);
  expect(await page(reply.physicalAddress)).toEqual(pattern(3 * P, 4).subarray(2 * P));

  expect(await call(spaceId, SYSCALLS.munmap, [at, BigInt(2 * P), 0n, 0n, 0n, 0n])).toBe(0n);
  expect(await openFiles()).toBe(0);
  await vmm.destroyAddressSpace({ spaceId });
});

it("writes a shared mapping's stores back to the host file when it is unmapped", async () => {
  const { spaceId } = await vmm.createAddressSpace({ pid: PID });
  const fd = await open("/shared.txt", O_RDWR);
  const at = await call(spaceId, SYSCALLS.mmap, [0n, BigInt(P), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0n]);
  const reply = await fault(spaceId, at, AccessType.WRITE);
  await machine.writePhysical({ address: reply.physicalAddress, data: encode("mapped!") });
  await storage.close({ pid: PID, fd: Number(fd) });
  await call(spaceId, SYSCALLS.munmap, [at, BigInt(P), 0n, 0n, 0n, 0n]);
  expect((await Deno.readTextFile(`${root}/shared.txt`)).slice(0, 9)).toBe("mapped!xx");
  expect(await openFiles()).toBe(0);
  await vmm.destroyAddressSpace({ spaceId });
});

it("maps a program with the hold OpenExecutable lent, and closes it with the address space", async () => {
  const { spaceId } = await vmm.createAddressSpace({ pid: PID });
  const { file } = await storage.openExecutable({ pid: PID, path: encode("prog") });
  const backing = {
    openFileId: file!.openFileId,
    path: new TextDecoder().decode(file!.path),
    device: file!.device,
    inode: file!.inode,
    readable: file!.readable,
    writable: file!.writable,
  };
  const kind = MappingKind.FILE_PRIVATE;
  const text = await vmm.mmap({ spaceId, length: BigInt(P), protection: 5, kind, file: backing });
  await vmm.mmap({
    spaceId,
    length: BigInt(P),
    protection: 1,
    kind,
    file: { ...backing, offset: BigInt(P) },
  });
  const reply = await fault(spaceId, text.address, AccessType.EXECUTE);
  expect(reply.action).toBe(FaultAction.FILE_READ);
  expect(await page(reply.physicalAddress)).toEqual(pattern(2 * P, 8).subarray(0, P));
  const maps = (await vmm.listMappings({ spaceId })).mappings.map((m) => m.mapsLine);
  expect(maps.some((line) => line.endsWith(" /prog") && line.includes(` ${file!.inode} `))).toBe(true);
  expect(await openFiles()).toBe(1);
  await vmm.destroyAddressSpace({ spaceId });
  expect(await openFiles()).toBe(0);
});

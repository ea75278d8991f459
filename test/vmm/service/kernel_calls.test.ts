// vmm's KernelCall stream: brk, mmap, munmap, mprotect, mremap and madvise sent as the machine
// sends them (number and six raw registers), answered with r3 or Linux's errno, through the real
// stream. What the calls did is checked through the typed RPCs (ListMappings, page faults,
// GetPhysical) and the bytes through the machine; file mappings through the rig's in-memory
// source, which counts the holds vmm takes and gives back.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AccessType,
  FaultAction,
  FaultCause,
  FaultResult,
  type KernelCallRequestSchema,
  type KernelCallResponse,
  MappingKind,
  type VmmService,
} from "../../../gen/astra/vmm/v1/vmm_pb.ts";
import { Channel } from "../../../lib/channel.ts";
import { Errno } from "../../../lib/errors.ts";
import { SYSCALLS } from "../../../lib/linux/syscall_numbers.ts";
import type { Client } from "../../../lib/rpc.ts";
import { type Clients, P, pattern, type Rig, startRig } from "./rig.ts";

type KernelCallInit = MessageInitShape<typeof KernelCallRequestSchema>;

const PROT_READ = 1n, PROT_WRITE = 2n, PROT_EXEC = 4n, PROT_SAO = 0x10n;
const RW = PROT_READ | PROT_WRITE;
const MAP_SHARED = 0x1n, MAP_PRIVATE = 0x2n, MAP_SHARED_VALIDATE = 0x3n, MAP_FIXED = 0x10n;
const MAP_ANONYMOUS = 0x20n, MAP_NORESERVE = 0x40n, MAP_GROWSDOWN = 0x100n, MAP_POPULATE = 0x8000n;
const MAP_STACK = 0x20000n, MAP_HUGETLB = 0x40000n, MAP_FIXED_NOREPLACE = 0x100000n;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const MREMAP_MAYMOVE = 1n, MREMAP_FIXED = 2n, MREMAP_DONTUNMAP = 4n;
const MADV_WILLNEED = 3n, MADV_DONTNEED = 4n, MADV_FREE = 8n;
const NO_FD = BigInt.asUintN(64, -1n);
const PAGE = BigInt(P);

/** One KernelCall stream, the way the machine keeps one open: calls go out, answers come back by id. */
class KernelCallStream {
  private readonly requests = new Channel<KernelCallInit>();
  private readonly waiting = new Map<bigint, (reply: KernelCallResponse) => void>();
  private nextCallId = 1n;
  readonly ended: Promise<void>;

  constructor(vmm: Client<typeof VmmService>) {
    const replies = vmm.kernelCall(this.requests);
    this.ended = (async () => {
      for await (const reply of replies) {
        this.waiting.get(reply.callId)!(reply);
        this.waiting.delete(reply.callId);
      }
    })();
  }

  send(spaceId: bigint, pid: number, number: number, args: bigint[]): Promise<KernelCallResponse> {
    const callId = this.nextCallId++;
    const reply = new Promise<KernelCallResponse>((resolve) => this.waiting.set(callId, resolve));
    this.requests.push({ callId, spaceId, pid, tid: pid, cpu: 0, number, args });
    return reply;
  }

  close(): Promise<void> {
    this.requests.close();
    return this.ended;
  }
}

/** r3, or "E<errno>" for a failed call, so that a table of expectations reads as one. */
function r3(reply: KernelCallResponse): bigint | string {
  return reply.outcome.case === "value" ? reply.outcome.value : `E${Errno[reply.outcome.value!]}`;
}

const E = (errno: Errno) => `E${Errno[errno]}`;

let rig: Rig;
let c: Clients;
let calls: KernelCallStream;
let nextPid = 5000;

beforeAll(async () => {
  rig = await startRig();
  c = rig.clients("in-process");
  calls = new KernelCallStream(c.vmm);
}, 60_000);

afterAll(async () => {
  await calls.close();
  await rig.close();
});

/** A fresh address space and the calls of its process. */
async function process() {
  const pid = nextPid++;
  const { spaceId } = await c.vmm.createAddressSpace({ pid });
  const call = async (number: number, ...args: bigint[]) =>
    r3(await calls.send(spaceId, pid, number, [...args, 0n, 0n, 0n, 0n, 0n, 0n].slice(0, 6)));
  return {
    pid,
    spaceId,
    call,
    mmap: (address: bigint, length: bigint, prot: bigint, flags: bigint, fd = NO_FD, offset = 0n) =>
      call(SYSCALLS.mmap, address, length, prot, flags, fd, offset),
    async maps(): Promise<string[]> {
      return (await c.vmm.listMappings({ spaceId })).mappings.map((m) => m.mapsLine.trimEnd());
    },
    fault: (address: bigint, access: AccessType) =>
      c.vmm.handlePageFault({ spaceId, address, access, cause: FaultCause.NOT_MAPPED, tid: pid, cpu: 0 }),
    async bytes(address: bigint, length = P): Promise<Uint8Array> {
      const { physicalAddress } = await c.vmm.getPhysical({ spaceId, virtualAddress: address });
      return new Uint8Array(
        (await c.machine.readPhysical({ address: physicalAddress, length: BigInt(length) })).data,
      );
    },
    async store(address: bigint, bytes: Uint8Array): Promise<void> {
      const reply = await c.vmm.handlePageFault({
        spaceId,
        address,
        access: AccessType.WRITE,
        cause: FaultCause.NOT_MAPPED,
        tid: pid,
        cpu: 0,
      });
      expect(reply.result).toBe(FaultResult.MAPPED);
      await c.machine.writePhysical({ address: reply.physicalAddress, data: bytes });
    },
    resident: async (
      address: bigint,
    ) => (await c.vmm.getPhysical({ spaceId, virtualAddress: address }).then(() => true, () => false)),
    destroy: () => c.vmm.destroyAddressSpace({ spaceId }),
  };
}

describe("mmap", () => {
  it("decodes protection, flags and the offset as Linux does, errno for errno", async () => {
    const p = await process();
    const at = 0x2000_0000n;
    expect(await p.mmap(at, 4n * PAGE, RW, ANON | MAP_FIXED)).toBe(at);
    const cases: [string, bigint[], bigint | string][] = [
      ["length 0", [0n, 0n, RW, ANON], E(Errno.EINVAL)],
      ["PROT_SAO (refused in a partition)", [0n, PAGE, PROT_SAO, ANON], E(Errno.EINVAL)],
      ["an unknown protection bit", [0n, PAGE, 0x100n, ANON], E(Errno.EINVAL)],
      ["a protection bit above 31", [0n, PAGE, PROT_READ | (1n << 40n), ANON], E(Errno.EINVAL)],
      ["PROT_GROWSDOWN (mprotect's only)", [0n, PAGE, PROT_READ | 0x01000000n, ANON], E(Errno.EINVAL)],
      ["an unaligned MAP_FIXED address", [at + 8n, PAGE, RW, ANON | MAP_FIXED], E(Errno.EINVAL)],
      ["below mmap_min_addr", [0x1000n, PAGE, RW, ANON | MAP_FIXED], E(Errno.EPERM)],
      ["a length past the address space", [0n, 1n << 62n, RW, ANON], E(Errno.ENOMEM)],
      ["a length of 2^64 - 1", [0n, NO_FD, RW, ANON], E(Errno.ENOMEM)],
      [
        "MAP_FIXED past the user limit",
        [(1n << 47n) - PAGE, 2n * PAGE, RW, ANON | MAP_FIXED],
        E(Errno.ENOMEM),
      ],
      [
        "MAP_FIXED_NOREPLACE over a mapping",
        [at + PAGE, PAGE, RW, ANON | MAP_FIXED_NOREPLACE],
        E(Errno.EEXIST),
      ],
      [
        "MAP_SHARED | MAP_PRIVATE, anonymous",
        [0n, PAGE, RW, MAP_SHARED_VALIDATE | MAP_ANONYMOUS],
        E(Errno.EINVAL),
      ],
      ["no mapping type", [0n, PAGE, RW, MAP_ANONYMOUS], E(Errno.EINVAL)],
      ["a shared stack", [0n, PAGE, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_GROWSDOWN], E(Errno.EINVAL)],
      ["MAP_HUGETLB without huge pages", [0n, PAGE, RW, ANON | MAP_HUGETLB], E(Errno.ENOMEM)],
      ["an unaligned offset, even anonymous", [0n, PAGE, RW, ANON, NO_FD, 100n], E(Errno.EINVAL)],
      ["a closed descriptor", [0n, PAGE, PROT_READ, MAP_PRIVATE, 77n], E(Errno.EBADF)],
      ["a bad offset before a bad descriptor", [0n, PAGE, PROT_READ, MAP_PRIVATE, 77n, 1n], E(Errno.EINVAL)],
    ];
    for (const [name, args, expected] of cases) {
      expect([name, await p.mmap(args[0], args[1], args[2], args[3], args[4], args[5])]).toEqual([
        name,
        expected,
      ]);
    }
    // Nothing above changed the layout.
    expect(await p.maps()).toEqual(["20000000-20004000 rw-p 00000000 00:00 0"]);
    await p.destroy();
  });

  it("places, replaces and ignores what Linux places, replaces and ignores", async () => {
    const p = await process();
    const at = 0x3000_0000n;
    // A hint that is free is taken (rounded down to its page); unknown flags of MAP_PRIVATE are ignored.
    expect(await p.mmap(at + 0x123n, PAGE, RW, ANON | (1n << 40n) | 0x80000000n)).toBe(at);
    expect(await p.mmap(at + PAGE, PAGE, PROT_READ, ANON | MAP_FIXED_NOREPLACE | MAP_NORESERVE | MAP_STACK))
      .toBe(at + PAGE);
    // MAP_FIXED replaces what it overlaps: the written page is gone, the new one reads as zeros.
    await p.store(at, pattern(16));
    expect(await p.mmap(at, 2n * PAGE, PROT_READ | PROT_EXEC, ANON | MAP_FIXED)).toBe(at);
    expect(await p.resident(at)).toBe(false);
    expect(await p.fault(at, AccessType.READ)).toMatchObject({ action: FaultAction.DEMAND_ZERO });
    expect((await p.bytes(at, 16)).every((b) => b === 0)).toBe(true);
    expect(await p.maps()).toEqual(["30000000-30002000 r-xp 00000000 00:00 0"]);
    // MAP_POPULATE brings the pages in at once.
    const populated = await p.mmap(0n, 3n * PAGE, RW, ANON | MAP_POPULATE) as bigint;
    for (let i = 0n; i < 3n; i++) expect(await p.resident(populated + i * PAGE)).toBe(true);
    // Anonymous mappings ignore the descriptor.
    expect(typeof await p.mmap(0n, PAGE, RW, ANON, 12345n)).toBe("bigint");
    await p.destroy();
  });
});

describe("munmap, mprotect, mremap and madvise", () => {
  it("munmap checks its range and tolerates holes", async () => {
    const p = await process();
    const at = 0x4000_0000n;
    await p.mmap(at, 4n * PAGE, RW, ANON | MAP_FIXED);
    expect(await p.call(SYSCALLS.munmap, at + 1n, PAGE)).toBe(E(Errno.EINVAL));
    expect(await p.call(SYSCALLS.munmap, at, 0n)).toBe(E(Errno.EINVAL));
    expect(await p.call(SYSCALLS.munmap, 1n << 47n, PAGE)).toBe(E(Errno.EINVAL));
    expect(await p.call(SYSCALLS.munmap, at, NO_FD)).toBe(E(Errno.EINVAL));
    expect(await p.call(SYSCALLS.munmap, at + PAGE, PAGE + 1n)).toBe(0n);
    expect(await p.call(SYSCALLS.munmap, 0x5000_0000n, PAGE)).toBe(0n);
    expect(await p.maps()).toEqual([
      "40000000-40001000 rw-p 00000000 00:00 0",
      "40003000-40004000 rw-p 00000000 00:00 0",
    ]);
    await p.destroy();
  });

  it("mprotect changes what faults allow, and refuses holes and bad bits", async () => {
    const p = await process();
    const at = 0x4100_0000n;
    await p.mmap(at, 2n * PAGE, RW, ANON | MAP_FIXED);
    expect(await p.call(SYSCALLS.mprotect, at + 2n * PAGE, PAGE, PROT_READ)).toBe(E(Errno.ENOMEM));
    // Linux changes the mapped part before it finds the hole.
    expect(await p.call(SYSCALLS.mprotect, at, 3n * PAGE, PROT_READ)).toBe(E(Errno.ENOMEM));
    expect(await p.maps()).toEqual(["41000000-41002000 r--p 00000000 00:00 0"]);
    expect(await p.call(SYSCALLS.mprotect, at + PAGE, PAGE, RW)).toBe(0n);
    expect(await p.call(SYSCALLS.mprotect, at + 4n, PAGE, PROT_READ)).toBe(E(Errno.EINVAL));
    expect(await p.call(SYSCALLS.mprotect, at, PAGE, PROT_SAO)).toBe(E(Errno.EINVAL));
    expect(await p.call(SYSCALLS.mprotect, at, PAGE, PROT_READ | (1n << 33n))).toBe(E(Errno.EINVAL));
    expect(await p.call(SYSCALLS.mprotect, at, 0n, 0x100n)).toBe(0n);
    expect(await p.call(SYSCALLS.mprotect, at, PAGE, PROT_READ)).toBe(0n);
    expect((await p.fault(at, AccessType.WRITE)).result).toBe(FaultResult.SIGSEGV_ACCERR);
    expect((await p.fault(at + PAGE, AccessType.WRITE)).result).toBe(FaultResult.MAPPED);
    expect(await p.maps()).toEqual([
      "41000000-41001000 r--p 00000000 00:00 0",
      "41001000-41002000 rw-p 00000000 00:00 0",
    ]);
    await p.destroy();
  });

  it("mremap grows in place, moves with MREMAP_MAYMOVE and keeps the bytes", async () => {
    const p = await process();
    const at = 0x4200_0000n;
    await p.mmap(at, 2n * PAGE, RW, ANON | MAP_FIXED);
    await p.store(at + PAGE, pattern(32, 3));
    expect(await p.call(SYSCALLS.mremap, at, 2n * PAGE, 3n * PAGE, 0n)).toBe(at);
    await p.mmap(at + 3n * PAGE, PAGE, PROT_READ, ANON | MAP_FIXED);
    expect(await p.call(SYSCALLS.mremap, at, 3n * PAGE, 5n * PAGE, 0n)).toBe(E(Errno.ENOMEM));
    expect(await p.call(SYSCALLS.mremap, at, 3n * PAGE, 5n * PAGE, MREMAP_FIXED, 0x4300_0000n)).toBe(
      E(Errno.EINVAL),
    );
    expect(await p.call(SYSCALLS.mremap, at, 3n * PAGE, 5n * PAGE, 8n)).toBe(E(Errno.EINVAL));
    expect(await p.call(SYSCALLS.mremap, at, 3n * PAGE, 5n * PAGE, MREMAP_MAYMOVE | (1n << 32n))).toBe(
      E(Errno.EINVAL),
    );
    expect(await p.call(SYSCALLS.mremap, at + 1n, PAGE, PAGE, 0n)).toBe(E(Errno.EINVAL));
    expect(await p.call(SYSCALLS.mremap, at, PAGE, 0n, MREMAP_MAYMOVE)).toBe(E(Errno.EINVAL));
    expect(await p.call(SYSCALLS.mremap, 0x4f00_0000n, PAGE, 2n * PAGE, MREMAP_MAYMOVE)).toBe(
      E(Errno.EFAULT),
    );
    const moved = await p.call(SYSCALLS.mremap, at, 3n * PAGE, 5n * PAGE, MREMAP_MAYMOVE) as bigint;
    expect(moved).not.toBe(at);
    expect(await p.bytes(moved + PAGE, 32)).toEqual(pattern(32, 3));
    const fixed = 0x4400_0000n;
    expect(await p.call(SYSCALLS.mremap, moved, 5n * PAGE, 5n * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, fixed))
      .toBe(
        fixed,
      );
    expect(await p.bytes(fixed + PAGE, 32)).toEqual(pattern(32, 3));
    // MREMAP_DONTUNMAP leaves the old range mapped and empty.
    const kept = await p.call(
      SYSCALLS.mremap,
      fixed,
      5n * PAGE,
      5n * PAGE,
      MREMAP_MAYMOVE | MREMAP_DONTUNMAP,
    );
    expect(await p.bytes((kept as bigint) + PAGE, 32)).toEqual(pattern(32, 3));
    expect(await p.maps()).toContain("44000000-44005000 rw-p 00000000 00:00 0");
    expect(await p.resident(fixed + PAGE)).toBe(false);
    await p.destroy();
  });

  it("madvise drops pages with MADV_DONTNEED and checks its arguments", async () => {
    const p = await process();
    const at = 0x4500_0000n;
    await p.mmap(at, 2n * PAGE, RW, ANON | MAP_FIXED);
    await p.store(at, pattern(64, 5));
    await p.store(at + PAGE, pattern(64, 6));
    expect(await p.call(SYSCALLS.madvise, at, PAGE, MADV_WILLNEED)).toBe(0n);
    expect(await p.resident(at)).toBe(true);
    expect(await p.call(SYSCALLS.madvise, at, PAGE, MADV_DONTNEED)).toBe(0n);
    expect(await p.resident(at)).toBe(false);
    expect(await p.fault(at, AccessType.READ)).toMatchObject({ action: FaultAction.DEMAND_ZERO });
    expect((await p.bytes(at, 64)).every((b) => b === 0)).toBe(true);
    expect(await p.bytes(at + PAGE, 64)).toEqual(pattern(64, 6));
    expect(await p.call(SYSCALLS.madvise, at + PAGE, PAGE, MADV_FREE)).toBe(0n);
    expect(await p.resident(at + PAGE)).toBe(false);
    expect(await p.call(SYSCALLS.madvise, at, PAGE, 999n)).toBe(E(Errno.EINVAL));
    expect(await p.call(SYSCALLS.madvise, at, PAGE, BigInt.asUintN(64, -1n))).toBe(E(Errno.EINVAL));
    expect(await p.call(SYSCALLS.madvise, at + 8n, PAGE, MADV_DONTNEED)).toBe(E(Errno.EINVAL));
    expect(await p.call(SYSCALLS.madvise, at, 4n * PAGE, MADV_DONTNEED)).toBe(E(Errno.ENOMEM));
    expect(await p.call(SYSCALLS.madvise, at, 0n, MADV_DONTNEED)).toBe(0n);
    await p.destroy();
  });
});

describe("brk", () => {
  it("answers the break, new or old, and never an error", async () => {
    const p = await process();
    expect(await p.call(SYSCALLS.brk, 0x100_0000n)).toBe(0n);
    const base = (await c.vmm.setBreakBase({ spaceId: p.spaceId, address: 0x100_0000n })).address;
    expect(await p.call(SYSCALLS.brk, 0n)).toBe(base);
    expect(await p.call(SYSCALLS.brk, base + 3n * PAGE + 5n)).toBe(base + 3n * PAGE + 5n);
    expect(await p.fault(base + 2n * PAGE, AccessType.WRITE)).toMatchObject({ result: FaultResult.MAPPED });
    expect(await p.call(SYSCALLS.brk, base + PAGE)).toBe(base + PAGE);
    expect((await p.fault(base + 2n * PAGE, AccessType.READ)).result).toBe(FaultResult.SIGSEGV_MAPERR);
    expect(await p.call(SYSCALLS.brk, base - PAGE)).toBe(base + PAGE);
    expect(await p.call(SYSCALLS.brk, 1n << 50n)).toBe(base + PAGE);
    expect(await p.call(SYSCALLS.brk, NO_FD)).toBe(base + PAGE);
    // The heap stops a page short of the next mapping.
    await p.mmap(base + 8n * PAGE, PAGE, RW, ANON | MAP_FIXED);
    expect(await p.call(SYSCALLS.brk, base + 8n * PAGE)).toBe(base + PAGE);
    expect(await p.call(SYSCALLS.brk, base + 7n * PAGE)).toBe(base + 7n * PAGE);
    expect(await p.call(SYSCALLS.brk, base)).toBe(base);
    await p.destroy();
  });
});

describe("the stream", () => {
  it("answers a bad request with its errno and goes on", async () => {
    const p = await process();
    expect(r3(await calls.send(p.spaceId, p.pid, 1, [0n, 0n, 0n, 0n, 0n, 0n]))).toBe(E(Errno.ENOSYS));
    expect(r3(await calls.send(p.spaceId, p.pid, SYSCALLS.brk, [0n]))).toBe(E(Errno.EINVAL));
    expect(r3(await calls.send(0x77n, p.pid, SYSCALLS.brk, [0n, 0n, 0n, 0n, 0n, 0n]))).toBe(E(Errno.ESRCH));
    expect(await p.mmap(0n, PAGE, RW, ANON)).toEqual(expect.any(BigInt));
    await p.destroy();
  });

  it("runs one space's calls in the order they came", async () => {
    const p = await process();
    const at = 0x4600_0000n;
    const replies = await Promise.all([
      p.mmap(at, PAGE, RW, ANON | MAP_FIXED_NOREPLACE),
      p.mmap(at, PAGE, RW, ANON | MAP_FIXED_NOREPLACE),
      p.call(SYSCALLS.munmap, at, PAGE),
      p.mmap(at, PAGE, PROT_READ, ANON | MAP_FIXED_NOREPLACE),
      p.call(SYSCALLS.mprotect, at, PAGE, RW),
      p.call(SYSCALLS.munmap, at + PAGE, PAGE),
    ]);
    expect(replies).toEqual([at, E(Errno.EEXIST), 0n, at, 0n, 0n]);
    expect(await p.maps()).toEqual(["46000000-46001000 rw-p 00000000 00:00 0"]);
    await p.destroy();
  });

  it("serves the same calls over gRPC", async () => {
    const p = await process();
    const remote = new KernelCallStream(rig.clients("grpc").vmm);
    const reply = await remote.send(p.spaceId, p.pid, SYSCALLS.mmap, [
      0x4700_0000n,
      PAGE,
      RW,
      ANON | MAP_FIXED,
      NO_FD,
      0n,
    ]);
    expect(r3(reply)).toBe(0x4700_0000n);
    expect(r3(await remote.send(p.spaceId, p.pid, SYSCALLS.munmap, [0x4700_0001n, PAGE, 0n, 0n, 0n, 0n])))
      .toBe(
        E(Errno.EINVAL),
      );
    await remote.close();
    await p.destroy();
  });
});

describe("file mappings", () => {
  function descriptor(pid: number, fd: number, bytes: Uint8Array): bigint {
    const id = rig.files.add(bytes);
    rig.files.descriptors.set(`${pid}:${fd}`, id);
    return id;
  }

  it("maps a descriptor's file, reads it on faults, and gives the hold back with the last mapping", async () => {
    const p = await process();
    const id = descriptor(p.pid, 3, pattern(3 * P, 9));
    const at = await p.mmap(0n, 2n * PAGE, PROT_READ, MAP_PRIVATE, 3n, PAGE) as bigint;
    expect(rig.files.held.get(id)).toBe(1);
    expect(await p.fault(at + PAGE + 8n, AccessType.READ)).toMatchObject({ action: FaultAction.FILE_READ });
    expect(await p.bytes(at + PAGE)).toEqual(pattern(3 * P, 9).subarray(2 * P));
    // A second mapping of the same description: vmm keeps one hold and gives the new one back.
    const second = await p.mmap(0n, PAGE, PROT_READ, MAP_PRIVATE, 3n) as bigint;
    expect(rig.files.held.get(id)).toBe(1);
    // Splitting the first mapping and unmapping a piece leaves users: the hold stays.
    expect(await p.call(SYSCALLS.munmap, at, PAGE)).toBe(0n);
    expect(await p.call(SYSCALLS.munmap, second, PAGE)).toBe(0n);
    expect(rig.files.held.get(id)).toBe(1);
    expect(await p.call(SYSCALLS.munmap, at + PAGE, PAGE)).toBe(0n);
    expect(rig.files.held.get(id)).toBe(0);
    await p.destroy();
  });

  it("gives the hold back when the mapping fails, and keeps none for refused descriptors", async () => {
    const p = await process();
    const id = descriptor(p.pid, 4, pattern(P));
    const at = 0x4800_0000n;
    await p.mmap(at, PAGE, RW, ANON | MAP_FIXED);
    const cases: [string, bigint[], string][] = [
      [
        "FIXED_NOREPLACE over a mapping",
        [at, PAGE, PROT_READ, MAP_PRIVATE | MAP_FIXED_NOREPLACE],
        E(Errno.EEXIST),
      ],
      ["length 0", [0n, 0n, PROT_READ, MAP_PRIVATE], E(Errno.EINVAL)],
      ["a file stack", [0n, PAGE, PROT_READ, MAP_PRIVATE | MAP_GROWSDOWN], E(Errno.EINVAL)],
      ["MAP_HUGETLB off hugetlbfs", [0n, PAGE, PROT_READ, MAP_PRIVATE | MAP_HUGETLB], E(Errno.EINVAL)],
      ["MAP_SHARED_VALIDATE with MAP_FIXED_NOREPLACE", [
        0x4900_0000n,
        PAGE,
        PROT_READ,
        MAP_SHARED_VALIDATE | MAP_FIXED_NOREPLACE,
      ], E(Errno.ENOTSUP)],
      ["no mapping type", [0n, PAGE, PROT_READ, 0n], E(Errno.EINVAL)],
    ];
    for (const [name, [address, length, prot, flags], expected] of cases) {
      expect([name, await p.mmap(address, length, prot, flags, 4n)]).toEqual([name, expected]);
      expect([name, rig.files.held.get(id)]).toEqual([name, 0]);
    }
    // An offset past the largest file Linux maps.
    expect(await p.mmap(0n, PAGE, PROT_READ, MAP_PRIVATE, 4n, 1n << 63n)).toBe(E(Errno.EOVERFLOW));
    expect(rig.files.held.get(id)).toBe(0);
    // Offsets Linux allows but no file here reaches: the mapping is made, its pages lie beyond the end.
    const far = await p.mmap(0n, PAGE, PROT_READ, MAP_PRIVATE, 4n, 1n << 60n) as bigint;
    expect((await p.fault(far, AccessType.READ)).result).toBe(FaultResult.SIGBUS);
    await p.destroy();
    expect(rig.files.held.get(id)).toBe(0);
  });

  it("keeps the hold while a forked child maps the file, and through shared write-back", async () => {
    const parent = await process();
    const id = descriptor(parent.pid, 5, pattern(2 * P, 11));
    const at = await parent.mmap(0n, 2n * PAGE, RW, MAP_SHARED, 5n) as bigint;
    await parent.store(at, Uint8Array.of(1, 2, 3, 4));
    const childPid = nextPid++;
    const { childSpaceId } = await c.vmm.forkAddressSpace({ parentSpaceId: parent.spaceId, childPid });
    expect(await parent.call(SYSCALLS.munmap, at, 2n * PAGE)).toBe(0n);
    expect(rig.files.held.get(id)).toBe(1);
    await c.vmm.destroyAddressSpace({ spaceId: childSpaceId });
    // The last mapping went: its dirty page went back to the file, then the hold.
    expect(rig.files.held.get(id)).toBe(0);
    expect(rig.files.files.get(id)!.subarray(0, 4)).toEqual(Uint8Array.of(1, 2, 3, 4));
    await parent.destroy();
  });

  it("takes over the hold a caller of the Mmap RPC lends, once", async () => {
    const p = await process();
    const id = rig.files.add(pattern(2 * P));
    const file = { openFileId: id, path: "/bin/prog", readable: true };
    const kind = MappingKind.FILE_PRIVATE;
    const mapped = await c.vmm.mmap({ spaceId: p.spaceId, length: PAGE, protection: 5, kind, file });
    await c.vmm.mmap({
      spaceId: p.spaceId,
      length: PAGE,
      protection: 1,
      kind,
      file: { ...file, offset: PAGE },
    });
    expect(rig.files.released).not.toContain(id);
    await c.vmm.munmap({ spaceId: p.spaceId, address: mapped.address, length: PAGE });
    expect(rig.files.released).not.toContain(id);
    await p.destroy();
    expect(rig.files.released.filter((released) => released === id)).toEqual([id]);
  });
});

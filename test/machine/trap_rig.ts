// What the trap path's tests run it against: a thread's paged memory that faults until vmm maps a
// page (demand paging, segments loaded one at a time), and small fake services bound over the
// in-process router — a vmm that maps pages inside its regions, a sched whose KernelCall answers
// are scripted per test — with the real VFS where a test wants storage.
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  type KernelCallRequest as SchedRequest,
  type KernelCallResponseSchema as SchedResponseSchema,
  type KillRequest,
  SchedService,
} from "../../gen/astra/sched/v1/sched_pb.ts";
import { VfsService } from "../../gen/astra/storage/v1/vfs_pb.ts";
import {
  AccessType,
  FaultResult,
  type HandlePageFaultRequest,
  type HandlePageFaultResponseSchema,
  type KernelCallRequest as VmmRequest,
  type KernelCallResponseSchema as VmmResponseSchema,
  VmmService,
} from "../../gen/astra/vmm/v1/vmm_pb.ts";
import { Channel } from "../../lib/channel.ts";
import { AstraError, Code, Errno } from "../../lib/errors.ts";
import { InProcessRouter } from "../../lib/inproc.ts";
import { logger } from "../../lib/log.ts";
import { peersFrom } from "../../lib/module.ts";
import type { ServiceImpl } from "../../lib/rpc.ts";
import { bindService, pendingMethods } from "../../lib/server.ts";
import type { SlbEntry } from "../../lib/ppc/hpt.ts";
import type { TrappedThread, UserAccess, UserFault, UserMemory } from "../../services/machine/kernel_side.ts";
import { type PeerKernelSide, peerKernelSide } from "../../services/machine/trap_path.ts";
import type { Vfs } from "../../services/storage/vfs/vfs.ts";
import { servePageFaults } from "../../services/vmm/page_faults.ts";
import { bindVfs } from "../../services/storage/vfs/service.ts";

export const PAGE = 4096n;
const SEGMENT_SHIFT = 28n;

export const THREAD: TrappedThread = { cpu: 1, pid: 1, tid: 1, spaceId: 7n };

/**
 * A thread's memory as the MMU sees it: pages are translated or not, writable or not, and segments
 * are loaded or not; an access to anything untranslated reports where it stopped, as SpaceMemory
 * does. A page keeps its bytes while untranslated (what vmm would bring back in).
 */
export class PagedMemory implements UserMemory {
  readonly pages = new Map<bigint, { bytes: Uint8Array; translated: boolean; writable: boolean }>();
  readonly segments = new Set<number>();
  faults: UserFault[] = [];
  writes = 0;

  /** With `segmented`, segments must be loaded (loadSegment) before their pages translate. */
  constructor(private readonly segmented = false) {}

  /** Translates the pages of [address, address + length), zeroed if they held nothing. */
  map(address: bigint, length: number, writable = true): void {
    for (let page = address / PAGE; page * PAGE < address + BigInt(length); page++) {
      const known = this.pages.get(page);
      if (known) known.translated = true;
      else this.pages.set(page, { bytes: new Uint8Array(Number(PAGE)), translated: true, writable });
    }
  }

  /** Drops the translations of [address, address + length); the bytes stay for the next fault. */
  evict(address: bigint, length: number): void {
    for (let page = address / PAGE; page * PAGE < address + BigInt(length); page++) {
      const known = this.pages.get(page);
      if (known) known.translated = false;
    }
  }

  /** Stores bytes whatever the translations (the test's own view of memory); new pages are translated. */
  poke(address: bigint, data: Uint8Array): void {
    for (let page = address / PAGE; page * PAGE < address + BigInt(data.length); page++) {
      if (!this.pages.has(page)) this.map(page * PAGE, 1);
    }
    this.#pieces(address, data.length, (page, offset, size, done) => {
      this.pages.get(page)!.bytes.set(data.subarray(done, done + size), offset);
    });
  }

  peek(address: bigint, length: number): Uint8Array {
    const out = new Uint8Array(length);
    this.#pieces(address, length, (page, offset, size, done) => {
      const known = this.pages.get(page);
      if (known) out.set(known.bytes.subarray(offset, offset + size), done);
    });
    return out;
  }

  #pieces(
    address: bigint,
    length: number,
    visit: (page: bigint, offset: number, size: number, done: number) => void,
  ) {
    for (let done = 0; done < length;) {
      const at = address + BigInt(done);
      const offset = Number(at % PAGE);
      const size = Math.min(Number(PAGE) - offset, length - done);
      visit(at / PAGE, offset, size, done);
      done += size;
    }
  }

  /** A NUL-terminated string poked at `address`. */
  string(address: bigint, text: string): bigint {
    this.poke(address, new TextEncoder().encode(text + "\0"));
    return address;
  }

  read(address: bigint, length: number): Uint8Array | UserFault {
    const fault = this.#check(address, length, "read");
    return fault ?? this.peek(address, length);
  }

  write(address: bigint, data: Uint8Array): true | UserFault {
    const fault = this.#check(address, data.length, "write");
    if (fault) return fault;
    this.poke(address, data);
    this.writes++;
    return true;
  }

  loadSegment(entry: SlbEntry): void {
    this.segments.add(entry.esid);
  }

  #check(address: bigint, length: number, access: UserAccess): UserFault | undefined {
    for (let page = address / PAGE; page * PAGE < address + BigInt(Math.max(length, 1)); page++) {
      const at = page * PAGE > address ? page * PAGE : address;
      let cause: UserFault["cause"] | undefined;
      if (this.segmented && !this.segments.has(Number(at >> SEGMENT_SHIFT))) cause = "no-segment";
      else if (!this.pages.get(page)?.translated) cause = "not-mapped";
      else if (access === "write" && !this.pages.get(page)!.writable) cause = "protection";
      if (cause) {
        const fault: UserFault = { fault: true, address: at, access, cause };
        this.faults.push(fault);
        return fault;
      }
    }
    return undefined;
  }
}

/** A vmm that demand-maps pages inside its regions into one PagedMemory and refuses the rest. */
export class FakeVmm {
  readonly regions: { start: bigint; end: bigint }[] = [];
  readonly faults: HandlePageFaultRequest[] = [];
  segmentRequests = 0;
  /** When set, page faults (unary or streamed) and GetSegment fail with it. */
  failure: AstraError | undefined;
  /** When set, a streamed fault waits for what it returns before it is handled. */
  gate: ((req: HandlePageFaultRequest) => Promise<void>) | undefined;
  readonly kernelCalls = new ScriptedKernelCalls<VmmRequest, MessageInitShape<typeof VmmResponseSchema>>();

  constructor(readonly memory: PagedMemory) {}

  region(start: bigint, length: number): void {
    this.regions.push({ start, end: start + BigInt(length) });
  }

  #inRegion(address: bigint): boolean {
    return this.regions.some((r) => address >= r.start && address < r.end);
  }

  #fault(req: HandlePageFaultRequest): MessageInitShape<typeof HandlePageFaultResponseSchema> {
    if (this.failure) throw this.failure;
    this.faults.push(req);
    if (!this.#inRegion(req.address)) {
      return { result: FaultResult.SIGSEGV_MAPERR, signalAddress: req.address };
    }
    const page = req.address / PAGE * PAGE;
    if (req.access === AccessType.WRITE && this.memory.pages.get(page / PAGE)?.writable === false) {
      return { result: FaultResult.SIGSEGV_ACCERR, signalAddress: req.address };
    }
    this.memory.map(page, Number(PAGE));
    return { result: FaultResult.MAPPED };
  }

  impl(): ServiceImpl<typeof VmmService> {
    return {
      ...pendingMethods(VmmService, "the trap path's tests"),
      handlePageFault: (req) => this.#fault(req),
      // The real stream server around the fake's faults: what the machine's side is tested against.
      pageFaults: (requests) =>
        servePageFaults(requests, async (req) => {
          await this.gate?.(req);
          return this.#fault(req);
        }, logger("vmm")),
      getSegment: (req) => {
        if (this.failure) throw this.failure;
        this.segmentRequests++;
        if (!this.#inRegion(req.address)) {
          throw new AstraError(Code.INVALID_ARGUMENT, Errno.EFAULT, "beyond the user address space");
        }
        return {
          segment: {
            esid: req.address >> SEGMENT_SHIFT,
            vsid: 0x1000n + (req.address >> SEGMENT_SHIFT),
            segmentShift: 28,
            problemKey: true,
            noExecute: false,
            basePageShift: 12,
          },
        };
      },
      kernelCall: this.kernelCalls.handler(),
    };
  }
}

/** How a scripted KernelCall stream answers: `reply` sends a response, `fail` ends the stream. */
export interface ScriptedStream<Init> {
  /** The number of this stream, counting from 1. */
  readonly index: number;
  reply(response: Init): void;
  fail(error: AstraError): void;
}

/** A KernelCall handler whose answers each test scripts; it counts the streams opened. */
export class ScriptedKernelCalls<Request, Init> {
  streams = 0;
  readonly requests: Request[] = [];
  onRequest: (request: Request, stream: ScriptedStream<Init>) => void = () => {};

  handler(): (requests: AsyncIterable<Request>) => AsyncIterable<Init> {
    return (requests) => {
      const replies = new Channel<Init>();
      const stream: ScriptedStream<Init> = {
        index: ++this.streams,
        reply: (response) => replies.push(response),
        fail: (error) => replies.fail(error),
      };
      (async () => {
        try {
          for await (const request of requests) {
            this.requests.push(request);
            this.onRequest(request, stream);
          }
        } catch (error) {
          replies.fail(error);
        }
      })();
      return replies;
    };
  }
}

/** A sched whose KernelCall answers are scripted, and which records what else it is asked. */
export class FakeSched {
  readonly kernelCalls = new ScriptedKernelCalls<
    SchedRequest,
    MessageInitShape<typeof SchedResponseSchema>
  >();
  readonly kills: KillRequest[] = [];
  /** When set, every unary method fails with it. */
  failure: AstraError | undefined;

  impl(overrides: Partial<ServiceImpl<typeof SchedService>> = {}): ServiceImpl<typeof SchedService> {
    const unary = <T>(answer: T) => () => {
      if (this.failure) throw this.failure;
      return answer;
    };
    return {
      ...pendingMethods(SchedService, "the trap path's tests"),
      kill: (req) => {
        if (this.failure) throw this.failure;
        this.kills.push(req);
        return { signalled: 1 };
      },
      setSignalMask: unary({}),
      kernelCall: this.kernelCalls.handler(),
      ...overrides,
    };
  }
}

export interface TrapRig {
  kernel: PeerKernelSide;
  memory: PagedMemory;
  vmm: FakeVmm;
  sched: FakeSched;
  close(): Promise<void>;
}

/** The trap path over fake sched and vmm and, when given, the real VFS. */
export function startTrapRig(
  options: {
    vfs?: Vfs;
    segmented?: boolean;
    sched?: Partial<ServiceImpl<typeof SchedService>>;
    storage?: ServiceImpl<typeof VfsService>;
    withoutVmm?: boolean;
  } = {},
): TrapRig {
  const memory = new PagedMemory(options.segmented);
  const vmm = new FakeVmm(memory);
  const sched = new FakeSched();
  const router = new InProcessRouter();
  router.add(bindService("sched", SchedService, sched.impl(options.sched)));
  if (!options.withoutVmm) router.add(bindService("vmm", VmmService, vmm.impl()));
  if (options.vfs) router.add(bindVfs(options.vfs));
  else if (options.storage) router.add(bindService("storage", VfsService, options.storage));
  const kernel = peerKernelSide(peersFrom(() => router.transport()));
  return { kernel, memory, vmm, sched, close: () => kernel.close() };
}

// vmm's PageFaults stream over both transports, the way the machine keeps one open: faults go out
// with a call id and come back paired by it, answered as HandlePageFault answers them (a page
// mapped, a signal), a fault HandlePageFault would fail answered with its error detail while the
// stream goes on, and faults of one address space resolved in the order they came.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AccessType,
  FaultAction,
  FaultCause,
  FaultResult,
  type HandlePageFaultResponse,
  MappingKind,
  type PageFaultsRequestSchema,
  type PageFaultsResponse,
  Placement,
  type VmmService,
} from "../../../gen/astra/vmm/v1/vmm_pb.ts";
import { Channel } from "../../../lib/channel.ts";
import { Errno } from "../../../lib/errors.ts";
import type { Client } from "../../../lib/rpc.ts";
import { type Clients, P, type Rig, startRig } from "./rig.ts";

type FaultInit = MessageInitShape<typeof PageFaultsRequestSchema>;

/** One PageFaults stream: faults go out, answers come back by call id. */
class FaultStream {
  private readonly requests = new Channel<FaultInit>();
  private readonly waiting = new Map<bigint, (reply: PageFaultsResponse) => void>();
  private nextCallId = 1n;
  readonly ended: Promise<void>;

  constructor(vmm: Client<typeof VmmService>) {
    const replies = vmm.pageFaults(this.requests);
    this.ended = (async () => {
      for await (const reply of replies) {
        this.waiting.get(reply.callId)!(reply);
        this.waiting.delete(reply.callId);
      }
    })();
  }

  send(fault: FaultInit["fault"]): Promise<PageFaultsResponse> {
    const callId = this.nextCallId++;
    const reply = new Promise<PageFaultsResponse>((resolve) => this.waiting.set(callId, resolve));
    this.requests.push({ callId, fault });
    return reply;
  }

  close(): Promise<void> {
    this.requests.close();
    return this.ended;
  }
}

function handledOf(reply: PageFaultsResponse): HandlePageFaultResponse {
  if (reply.outcome.case !== "handled") {
    throw new Error(`a fault answered ${reply.outcome.case}, not handled`);
  }
  return reply.outcome.value;
}

let rig: Rig;
beforeAll(async () => {
  rig = await startRig();
}, 60_000);
afterAll(() => rig.close());

describe.each(["in-process", "grpc"] as const)("PageFaults over %s", (kind) => {
  let c: Clients;
  let stream: FaultStream;
  let pid = kind === "grpc" ? 7100 : 7000;

  beforeAll(() => {
    c = rig.clients(kind);
    stream = new FaultStream(c.vmm);
  });
  afterAll(() => stream.close());

  async function space(pages: number): Promise<{ spaceId: bigint; address: bigint }> {
    const { spaceId } = await c.vmm.createAddressSpace({ pid: pid++ });
    const address = 0x4000_0000n;
    await c.vmm.mmap({
      spaceId,
      address,
      length: BigInt(pages * P),
      protection: 1,
      kind: MappingKind.ANONYMOUS_PRIVATE,
      placement: Placement.FIXED,
    });
    return { spaceId, address };
  }

  const fault = (spaceId: bigint, address: bigint, access: AccessType) => ({
    spaceId,
    address,
    access,
    cause: FaultCause.NOT_MAPPED,
    tid: 1,
    cpu: 0,
  });

  it("maps pages and answers signals as HandlePageFault does, paired by call id", async () => {
    const { spaceId, address } = await space(4);
    const replies = await Promise.all([
      stream.send(fault(spaceId, address, AccessType.READ)),
      stream.send(fault(spaceId, address + BigInt(P) + 8n, AccessType.READ)),
      // The mapping is read-only.
      stream.send(fault(spaceId, address + 2n * BigInt(P), AccessType.WRITE)),
      stream.send(fault(spaceId, address + 64n * BigInt(P), AccessType.READ)),
    ]);
    const handled = replies.map(handledOf);
    expect(handled[0]).toMatchObject({ result: FaultResult.MAPPED, action: FaultAction.DEMAND_ZERO });
    expect(handled[1]).toMatchObject({ result: FaultResult.MAPPED, action: FaultAction.DEMAND_ZERO });
    const { physicalAddress } = await c.vmm.getPhysical({
      spaceId,
      virtualAddress: address + BigInt(P) + 8n,
    });
    expect(handled[1].physicalAddress).toBe(physicalAddress);
    expect(handled[2]).toMatchObject({
      result: FaultResult.SIGSEGV_ACCERR,
      signalAddress: address + 2n * BigInt(P),
    });
    expect(handled[3]).toMatchObject({ result: FaultResult.SIGSEGV_MAPERR });
    // The page is zeros.
    const { data } = await c.machine.readPhysical({ address: handled[0].physicalAddress, length: BigInt(P) });
    expect(Uint8Array.from(data)).toEqual(new Uint8Array(P));
    await c.vmm.destroyAddressSpace({ spaceId });
  });

  it("answers a fault it cannot handle with its error, and goes on", async () => {
    const { spaceId, address } = await space(1);
    const [unknownSpace, noAccess, noCpu, noFault, good] = await Promise.all([
      stream.send(fault(spaceId + 1000n, address, AccessType.READ)),
      stream.send(fault(spaceId, address, AccessType.UNSPECIFIED)),
      stream.send({ ...fault(spaceId, address, AccessType.READ), cpu: 9 }),
      stream.send(undefined),
      stream.send(fault(spaceId, address, AccessType.READ)),
    ]);
    expect(unknownSpace.outcome).toMatchObject({
      case: "error",
      value: { errno: Errno.ESRCH, service: "vmm" },
    });
    expect(noAccess.outcome).toMatchObject({
      case: "error",
      value: { errno: Errno.EINVAL, argument: "access" },
    });
    expect(noCpu.outcome).toMatchObject({ case: "error", value: { errno: Errno.EINVAL, argument: "cpu" } });
    expect(noFault.outcome).toMatchObject({ case: "error", value: { errno: Errno.EINVAL } });
    expect(good.outcome).toMatchObject({ case: "handled", value: { result: FaultResult.MAPPED } });
    await c.vmm.destroyAddressSpace({ spaceId });
  });

  it("resolves the faults of one address space in the order they came", async () => {
    const { spaceId, address } = await space(1);
    // The first maps the page; the second finds it mapped and enters its translation again.
    const [first, second] = await Promise.all([
      stream.send(fault(spaceId, address, AccessType.READ)),
      stream.send(fault(spaceId, address, AccessType.READ)),
    ]);
    expect(first.outcome).toMatchObject({ case: "handled", value: { action: FaultAction.DEMAND_ZERO } });
    expect(second.outcome).toMatchObject({ case: "handled", value: { action: FaultAction.REINSERTED } });
    await c.vmm.destroyAddressSpace({ spaceId });
  });
});

// The trap path over gRPC when its peer restarts: the call asleep on the old stream is
// interrupted (a page fault in flight goes unsupplied), calls while the peer is down fail, and
// calls after it is back open a new stream.
import { afterEach, expect, it } from "vitest";
import { KernelCallAction, SchedService } from "../../gen/astra/sched/v1/sched_pb.ts";
import { VmmService } from "../../gen/astra/vmm/v1/vmm_pb.ts";
import { Errno } from "../../lib/errors.ts";
import { GrpcServer, GrpcTransport } from "../../lib/grpc.ts";
import { SYSCALLS } from "../../lib/linux/syscall_numbers.ts";
import { peersFrom } from "../../lib/module.ts";
import { bindService } from "../../lib/server.ts";
import type { KernelCallOutcome, PageFaultOutcome } from "../../services/machine/kernel_side.ts";
import { type PeerKernelSide, peerKernelSide } from "../../services/machine/trap_path.ts";
import { FakeSched, FakeVmm, PAGE, PagedMemory, THREAD } from "./trap_rig.ts";

const NO_ARGS = [0n, 0n, 0n, 0n, 0n, 0n];
const cleanup: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

/** A sched that answers getppid with the number of its life and puts futex callers to sleep. */
async function serveSched(address: string, life: number): Promise<{ server: GrpcServer; address: string }> {
  const sched = new FakeSched();
  sched.kernelCalls.onRequest = (req, stream) =>
    stream.reply(
      req.number === SYSCALLS.futex ? { callId: req.callId, action: KernelCallAction.BLOCKED } : {
        callId: req.callId,
        action: KernelCallAction.RETURN,
        outcome: { case: "value", value: BigInt(life) },
      },
    );
  const server = new GrpcServer("sched");
  server.add(bindService("sched", SchedService, sched.impl()));
  const bound = await server.listen(address);
  server.setServing(true);
  return { server, address: bound };
}

async function eventually(kernel: PeerKernelSide, memory: PagedMemory): Promise<KernelCallOutcome> {
  const deadline = Date.now() + 10_000;
  while (true) {
    const outcome = await kernel.systemCall(THREAD, memory, SYSCALLS.getppid, NO_ARGS);
    if (outcome.kind === "return" || Date.now() > deadline) return outcome;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

it("reopens its stream to a sched that restarted", async () => {
  const first = await serveSched("127.0.0.1:0", 1);
  const transport = new GrpcTransport(first.address);
  const kernel = peerKernelSide(peersFrom(() => transport));
  const memory = new PagedMemory();
  cleanup.push(() => transport.close(), () => kernel.close());

  expect(await kernel.systemCall(THREAD, memory, SYSCALLS.getppid, NO_ARGS)).toMatchObject({ value: 1n });
  const sleeping = await kernel.systemCall(THREAD, memory, SYSCALLS.futex, NO_ARGS);
  if (sleeping.kind !== "blocked") throw new Error(`expected blocked, got ${sleeping.kind}`);

  await first.server.shutdown(50);
  expect(await sleeping.done).toEqual({ kind: "error", errno: Errno.EINTR, signalPending: false });
  expect(await kernel.systemCall(THREAD, memory, SYSCALLS.getppid, NO_ARGS))
    .toEqual({ kind: "error", errno: Errno.EIO, signalPending: false });

  const second = await serveSched(first.address, 2);
  cleanup.push(() => second.server.shutdown(50));
  expect(await eventually(kernel, memory)).toEqual({ kind: "return", value: 2n, signalPending: false });
});

/** A vmm and a sched on one server: the vmm maps one region; `gate` holds its faults. */
async function serveVmm(
  address: string,
  gate?: FakeVmm["gate"],
): Promise<{ server: GrpcServer; address: string; vmm: FakeVmm; sched: FakeSched }> {
  const vmm = new FakeVmm(new PagedMemory());
  vmm.region(REGION, 16 * Number(PAGE));
  vmm.gate = gate;
  const sched = new FakeSched();
  const server = new GrpcServer("vmm");
  server.add(bindService("vmm", VmmService, vmm.impl()));
  server.add(bindService("sched", SchedService, sched.impl()));
  const bound = await server.listen(address);
  server.setServing(true);
  return { server, address: bound, vmm, sched };
}

const REGION = 0x1000_0000n;

async function faultEventually(kernel: PeerKernelSide, address: bigint): Promise<PageFaultOutcome> {
  const deadline = Date.now() + 10_000;
  while (true) {
    const outcome = await kernel.pageFault(THREAD, address, "read", "not-mapped");
    if (outcome.kind === "mapped" || Date.now() > deadline) return outcome;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

it("fails the page faults in flight when vmm goes away, and faults on a new stream once it is back", async () => {
  let arrived!: () => void;
  const reached = new Promise<void>((resolve) => arrived = resolve);
  // The first vmm never answers: its faults hang until it goes.
  const first = await serveVmm("127.0.0.1:0", () => {
    arrived();
    return new Promise(() => {});
  });
  const transport = new GrpcTransport(first.address);
  const kernel = peerKernelSide(peersFrom(() => transport));
  cleanup.push(() => transport.close(), () => kernel.close());

  const inFlight = kernel.pageFault(THREAD, REGION, "read", "not-mapped");
  await reached;
  await first.server.shutdown(50);
  // Unsupplied: SIGBUS, sent through sched (gone with the server, which the machine only logs).
  expect(await inFlight).toEqual({ kind: "signal", signal: 7 });

  const second = await serveVmm(first.address);
  cleanup.push(() => second.server.shutdown(50));
  expect(await faultEventually(kernel, REGION + PAGE)).toEqual({ kind: "mapped" });
  expect(second.vmm.faults.at(-1)).toMatchObject({ spaceId: THREAD.spaceId, address: REGION + PAGE });
});

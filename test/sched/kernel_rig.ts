// A sched kernel over the in-memory peers, with a clock the test moves by hand, and a stand-in for
// the machine's side of the KernelCall stream: it sends calls, answers FETCH from the fake guest
// memory, and collects every reply by call id.
import { create } from "@bufbuild/protobuf";
import {
  KernelCallAction,
  type KernelCallRequest,
  KernelCallRequestSchema,
} from "../../gen/astra/sched/v1/sched_pb.ts";
import { type KernelCallReply, KernelCallStream } from "../../services/sched/call_stream.ts";
import { GuestClock } from "../../services/sched/clock.ts";
import { SchedKernel } from "../../services/sched/kernel.ts";
import type { HostTimers } from "../../services/sched/timers.ts";
import { buildElf, validExecSpec } from "./elf-image.ts";
import { FakePeers } from "./fake_peers.ts";

export const encoder = new TextEncoder();

/** A host clock that only moves when the test says so, and host timers that never fire. */
export class ManualTime {
  millis = 0;
  readonly host = {
    monotonicMillis: () => this.millis,
    realtimeMillis: () => 1_700_000_000_000 + this.millis,
  };
  readonly timers: HostTimers = { set: () => 0, clear: () => {} };
}

export interface Rig {
  peers: FakePeers;
  kernel: SchedKernel;
  time: ManualTime;
  calls: CallDriver;
  /** Moves the clock on by `nanos` and ticks CPU 0. */
  advance(nanos: number): void;
  /** A new process running /prog as a child of `parentPid`. */
  spawn(parentPid?: number): Promise<number>;
}

export function programImage(): Uint8Array {
  return buildElf(validExecSpec());
}

export async function startRig(cpus = 2): Promise<Rig> {
  const peers = new FakePeers();
  peers.files.set("/prog", programImage());
  const time = new ManualTime();
  const kernel = new SchedKernel(peers, {
    cpus,
    clock: new GuestClock(time.host),
    hostTimers: time.timers,
    random: (target) => target.fill(7),
  });
  await kernel.start();
  const rig: Rig = {
    peers,
    kernel,
    time,
    calls: new CallDriver(kernel, peers),
    advance(nanos) {
      time.millis += nanos / 1e6;
      kernel.tick(0, kernel.now());
    },
    async spawn(parentPid = 0) {
      const { pid } = await kernel.createProcess({
        parentPid,
        programPath: encoder.encode("/prog"),
        argv: [encoder.encode("prog")],
        envp: [],
        name: "",
        credentials: null,
      });
      return pid;
    },
  };
  return rig;
}

export interface CallArgs {
  pid: number;
  tid?: number;
  cpu?: number;
  number: number;
  args?: bigint[];
}

/** Guest memory the machine sends with a call. */
export interface GuestInput {
  address: bigint;
  data: Uint8Array;
}

/** Lets the event loop run the promises already settled. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

export class CallDriver {
  readonly replies = new Map<bigint, KernelCallReply[]>();
  readonly #stream: KernelCallStream;
  #nextId = 1n;

  constructor(private readonly kernel: SchedKernel, private readonly peers: FakePeers) {
    this.#stream = new KernelCallStream(kernel, (reply) => {
      const list = this.replies.get(reply.callId!) ?? [];
      list.push(reply);
      this.replies.set(reply.callId!, list);
    });
  }

  request(call: CallArgs, callId: bigint, inputs: GuestInput[] = []): KernelCallRequest {
    const args = [...(call.args ?? []), 0n, 0n, 0n, 0n, 0n, 0n];
    return create(KernelCallRequestSchema, {
      callId,
      cpu: call.cpu ?? 0,
      pid: call.pid,
      tid: call.tid ?? call.pid,
      number: call.number,
      arg0: args[0],
      arg1: args[1],
      arg2: args[2],
      arg3: args[3],
      arg4: args[4],
      arg5: args[5],
      inputs,
    });
  }

  /** Sends a call once, exactly as given; returns its id (replies arrive in `replies`). */
  async send(call: CallArgs, inputs: GuestInput[] = [], callId = this.#nextId++): Promise<bigint> {
    void this.#stream.handle(this.request(call, callId, inputs));
    await settle();
    return callId;
  }

  /**
   * Sends a call and answers its FETCH rounds from the process's fake memory, as the machine
   * does; returns the id once the call has answered something other than FETCH.
   */
  async run(call: CallArgs): Promise<bigint> {
    const callId = await this.send(call);
    for (let round = 0; round < 64; round++) {
      const last = this.last(callId);
      if (last?.action !== KernelCallAction.FETCH) return callId;
      const spaceId = this.kernel.table.require(call.pid).spaceId;
      const inputs = last.fetch!.map((r) => ({
        address: r.address!,
        data: this.peers.read(spaceId, r.address!, Number(r.length!)),
      }));
      await this.send(call, inputs, callId);
    }
    throw new Error("the call kept asking for memory");
  }

  last(callId: bigint): KernelCallReply | undefined {
    const list = this.replies.get(callId);
    return list?.[list.length - 1];
  }

  /** The final RETURN of a call: its value or errno, and what it writes. */
  result(
    callId: bigint,
  ): { value?: bigint; errno?: number; outputs: Array<{ address: bigint; data: Uint8Array }> } {
    const reply = this.last(callId);
    if (reply?.action !== KernelCallAction.RETURN) {
      throw new Error(`call ${callId} answered ${KernelCallAction[reply?.action ?? 0]}, not RETURN`);
    }
    const outcome = reply.outcome!;
    return {
      value: outcome.case === "value" ? outcome.value : undefined,
      errno: outcome.case === "error" ? outcome.value : undefined,
      outputs: (reply.outputs ?? []).map((o) => ({ address: o.address!, data: o.data! })),
    };
  }
}

// The CPU side of MachineService through its contract: CPUs and their states and counters, thread
// contexts, RunThread's preconditions, a thread's memory by TID, TLB invalidation and the
// partition table, and the features GetInfo advertises.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CpuRunState, SegmentSize } from "../../gen/astra/machine/v1/cpu_pb.ts";
import { MachineService, TlbScope } from "../../gen/astra/machine/v1/machine_pb.ts";
import { Code, Errno } from "../../lib/errors.ts";
import { InProcessRouter } from "../../lib/inproc.ts";
import { peersFrom } from "../../lib/module.ts";
import {
  abbreviatedVpn,
  encodeHpte,
  HPTE_BYTES,
  primaryHash,
  ptegAddress,
  SEGMENT_256M,
  userPp,
  WIMG_MEMORY,
} from "../../lib/ppc/hpt.ts";
import { client } from "../../lib/rpc.ts";
import { DEFAULT_DEVICE_CONFIG } from "../../services/machine/config.ts";
import { HWCAP, HWCAP2 } from "../../services/machine/cpu/features.ts";
import { createMachine } from "../../services/machine/server.ts";
import { branch, FakeKernel } from "./guest-rig.ts";
import { failure, type MachineClient, MIB } from "./service-rig.ts";

const HTAB = 8 * MIB;
const CODE = 0x1000_0000;
const DATA = 0x2000_0000;
const SPACE = 5n;
const vsidOf = (esid: number) => 0x500 + esid;
const segment = (ea: number) => ({
  esid: BigInt(Math.floor(ea / 2 ** 28)),
  vsid: BigInt(vsidOf(Math.floor(ea / 2 ** 28))),
  segmentSize: SegmentSize.SEGMENT_SIZE_256M,
  problemKey: true,
  noExecute: false,
  basePageShift: 12,
});

async function startMachine(kernel: FakeKernel | undefined) {
  const dataDir = await Deno.makeTempDir({ prefix: "astra-machine-cpus-" });
  const router = new InProcessRouter();
  const module = createMachine(
    peersFrom(() => router.transport()),
    { memoryBytes: 64 * MIB, numaNodes: 1, cpus: 2, dataDir },
    DEFAULT_DEVICE_CONFIG,
    kernel === undefined ? null : () => kernel,
  );
  module.bound.forEach((b) => router.add(b));
  await module.start();
  const transport = router.transport();
  return {
    machine: client(MachineService, transport),
    async stop() {
      transport.close();
      await module.stop();
      await Deno.remove(dataDir, { recursive: true });
    },
  };
}

/** Maps the 4 KiB page of `ea` to `real` with an HPTE written through WritePhysical. */
async function mapPage(machine: MachineClient, ea: number, real: number): Promise<void> {
  const esid = Math.floor(ea / 2 ** 28), offset = ea % 2 ** 28;
  const vsid = vsidOf(esid);
  const group = ptegAddress(HTAB, 0, primaryHash(vsid, SEGMENT_256M, Math.floor(offset / 4096)), false);
  const slot = new Uint8Array(HPTE_BYTES);
  encodeHpte({
    valid: true,
    avpn: abbreviatedVpn(vsid, SEGMENT_256M, offset, 12),
    software: 0,
    large: false,
    secondary: false,
    segmentSize: SEGMENT_256M,
    arpn: real / 4096,
    pp: userPp(true),
    key: 0,
    referenced: false,
    changed: false,
    wimg: WIMG_MEMORY,
    noExecute: false,
  }, slot);
  const { data } = await machine.readPhysical({ address: BigInt(group), length: 128n });
  let free = 0;
  while ((data[free * HPTE_BYTES + 7] & 1) !== 0) free++;
  await machine.writePhysical({ address: BigInt(group + free * HPTE_BYTES), data: slot });
}

describe("MachineService CPUs and threads", () => {
  let rig: Awaited<ReturnType<typeof startMachine>>;
  let machine: MachineClient;
  const kernel = new FakeKernel();

  beforeAll(async () => {
    rig = await startMachine(kernel);
    machine = rig.machine;
    await machine.setPartitionTable({ htabOrigin: BigInt(HTAB), htabSize: 0 });
    await mapPage(machine, CODE, 20 * MIB);
    await mapPage(machine, DATA, 20 * MIB + 4096);
    const loop = new Uint8Array(4);
    new DataView(loop.buffer).setUint32(0, branch(CODE, CODE) >>> 0, true);
    await machine.writePhysical({ address: BigInt(20 * MIB), data: loop });
  });

  afterAll(async () => {
    await rig.stop();
  });

  it("advertises exactly the implemented features and lists its stopped CPUs", async () => {
    const info = await machine.getInfo({});
    expect(info.hwcap).toBe(BigInt(HWCAP));
    expect(info.hwcap2).toBe(BigInt(HWCAP2));
    expect(info.dcacheBlockBytes).toBe(128);
    const { cpus } = await machine.listCpus({});
    expect(cpus.map((c) => [c.cpu, c.state])).toEqual([[0, CpuRunState.STOPPED], [1, CpuRunState.STOPPED]]);
  });

  it("creates, reads, changes and deletes thread contexts", async () => {
    const gprs = Array.from({ length: 32 }, (_, n) => BigInt(n) * 0x1_0000_0001n);
    const vsrs = Array.from({ length: 64 }, (_, n) => new Uint8Array(16).fill(n));
    await machine.createThreadContext({
      context: {
        pid: 10,
        tid: 10,
        spaceId: SPACE,
        registers: { gprs, vsrs, pc: BigInt(CODE), lr: 8n, ctr: 9n, cr: 0x12345678, vscr: 0x10000 },
        segments: [segment(CODE)],
      },
    });
    const { context, cpu } = await machine.getThreadContext({ tid: 10 });
    expect(cpu).toBe(-1);
    expect(context?.registers?.gprs).toEqual(gprs);
    expect(context?.registers?.vsrs).toEqual(vsrs);
    expect(context?.registers).toMatchObject({ pc: BigInt(CODE), lr: 8n, ctr: 9n, cr: 0x12345678 });
    expect(context?.segments.map((s) => s.esid)).toEqual([1n]);
    expect(context?.spaceId).toBe(SPACE);

    await failure(
      machine.createThreadContext({ context: { pid: 10, tid: 10, spaceId: SPACE } }),
      Code.ALREADY_EXISTS,
      Errno.EEXIST,
    );
    // A clone: a copy of thread 10 in the same space, r3 overridden.
    await machine.createThreadContext({
      context: { pid: 10, tid: 11, registers: { gprs: gprs.map((g, n) => (n === 3 ? 0n : g)), vsrs } },
      copyFromTid: 10,
    });
    const clone = await machine.getThreadContext({ tid: 11 });
    expect(clone.context?.registers?.gprs[3]).toBe(0n);
    expect(clone.context?.spaceId).toBe(SPACE);

    await machine.setThreadContext({
      tid: 11,
      registers: { pc: BigInt(CODE + 4) },
      replaceSegments: true,
      segments: [segment(CODE), segment(DATA)],
    });
    const changed = await machine.getThreadContext({ tid: 11 });
    expect(changed.context?.registers?.pc).toBe(BigInt(CODE + 4));
    expect(changed.context?.registers?.gprs).toEqual(Array(32).fill(0n));
    expect(changed.context?.segments.map((s) => s.esid).sort()).toEqual([1n, 2n]);
    // Threads of a space share its SLB, as threads of a process share their segments.
    expect((await machine.getThreadContext({ tid: 10 })).context?.segments).toHaveLength(2);
    await machine.setThreadContext({ tid: 11, replaceSegments: true, segments: [segment(CODE)] });

    await machine.deleteThreadContext({ tid: 11 });
    await failure(machine.getThreadContext({ tid: 11 }), Code.NOT_FOUND, Errno.ESRCH, "tid");
  });

  it("refuses malformed contexts by field", async () => {
    await failure(
      machine.createThreadContext({
        context: { pid: 1, tid: 20, spaceId: SPACE, registers: { gprs: [1n] } },
      }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "context.registers.gprs",
    );
    await failure(
      machine.createThreadContext({
        context: { pid: 1, tid: 20, spaceId: SPACE, segments: [{ ...segment(CODE), basePageShift: 13 }] },
      }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "context.segments[0].base_page_shift",
    );
    await failure(
      machine.createThreadContext({ context: { pid: 1, tid: 20 } }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "context.space_id",
    );
    await failure(
      machine.createThreadContext({ context: { pid: 0, tid: 20, spaceId: SPACE } }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "context.pid",
    );
  });

  it("runs a thread on an idle CPU only, and reports it running with real counters", async () => {
    await failure(machine.runThread({ cpu: 0, tid: 10 }), Code.FAILED_PRECONDITION, Errno.EBUSY, "cpu");
    await failure(machine.runThread({ cpu: 0, tid: 4242 }), Code.NOT_FOUND, Errno.ESRCH, "tid");
    await failure(machine.runThread({ cpu: 7, tid: 10 }), Code.INVALID_ARGUMENT, Errno.EINVAL, "cpu");
    const started = await machine.startCpu({ cpu: 0 });
    expect(started.summary?.state).toBe(CpuRunState.IDLE);
    await machine.runThread({ cpu: 0, tid: 10 });
    await machine.createThreadContext({ context: { pid: 12, tid: 12, spaceId: 6n } });
    await failure(machine.runThread({ cpu: 0, tid: 12 }), Code.FAILED_PRECONDITION, Errno.EBUSY, "cpu");
    await failure(machine.deleteThreadContext({ tid: 10 }), Code.FAILED_PRECONDITION, Errno.EBUSY, "tid");
    await failure(machine.setCpuState({ cpu: 0, state: {} }), Code.FAILED_PRECONDITION, Errno.EBUSY, "cpu");
    await new Promise((resolve) => setTimeout(resolve, 20));
    const [running] = (await machine.listCpus({})).cpus;
    expect(running).toMatchObject({ state: CpuRunState.RUNNING, pid: 10, tid: 10 });
    expect(running.instructionsRetired).toBeGreaterThan(1000n);
    expect(running.tlbMisses).toBeGreaterThan(0n);

    const stopped = await machine.stopCpu({ cpu: 0 });
    expect(stopped.summary?.state).toBe(CpuRunState.STOPPED);
    const { state } = await machine.getCpuState({ cpu: 0 });
    expect(state?.registers?.pc).toBe(BigInt(CODE));
    expect(state?.registers?.gprs[31]).toBe(31n * 0x1_0000_0001n);
    expect(state?.slb.map((s) => s.esid)).toEqual([1n]);
    expect(state?.sprs.find((s) => s.number === 287)?.value).toBe(0x004e1202n);
    await machine.setCpuState({
      cpu: 0,
      state: { ...state!, registers: { ...state!.registers!, gprs: Array(32).fill(5n) } },
    });
    const thread = await machine.getThreadContext({ tid: 10 });
    expect(thread.cpu).toBe(0);
    expect(thread.context?.registers?.gprs[7]).toBe(5n);
    await failure(
      machine.setCpuState({ cpu: 0, state: { ...state!, msr: 1n } }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "state.msr",
    );
  });

  it("reads and writes a thread's memory by TID, EFAULT naming an untranslatable address", async () => {
    const data = new Uint8Array([1, 2, 3, 4, 5]);
    kernel.segmentHandler = (_thread, address) => {
      const esid = Number(address >> 28n);
      return {
        esid,
        vsid: vsidOf(esid),
        segmentSize: 0,
        basePageShift: 12,
        ks: false,
        kp: true,
        noExecute: false,
      };
    };
    // DATA's segment is not loaded for thread 10: the copy asks for it.
    await machine.writeVirtual({ tid: 10, address: BigInt(DATA + 4090), data: data.subarray(0, 4) });
    const read = await machine.readVirtual({ tid: 10, address: BigInt(DATA + 4090), length: 4n });
    expect(read.data).toEqual(data.subarray(0, 4));
    expect(kernel.log).toContain(`segment 0x${(DATA + 4090).toString(16)}`);
    const error = await failure(
      machine.readVirtual({ tid: 10, address: BigInt(DATA + 4094), length: 4n }),
      Code.OUT_OF_RANGE,
      Errno.EFAULT,
      "address",
    );
    expect(error.detail.facts.address).toBe(`0x${(DATA + 4096).toString(16)}`);
    await failure(machine.writeVirtual({ tid: 99, address: 0n, data }), Code.NOT_FOUND, Errno.ESRCH, "tid");
  });

  it("invalidates TLB entries by page, segment or all, and validates the request", async () => {
    const { entriesInvalidated } = await machine.invalidateTlb({ scope: TlbScope.ALL });
    expect(entriesInvalidated).toBeGreaterThan(0n);
    await machine.invalidateTlb({
      scope: TlbScope.PAGE,
      vsid: BigInt(vsidOf(1)),
      effectiveAddress: BigInt(CODE),
      pageShift: 12,
    });
    await machine.invalidateTlb({ scope: TlbScope.SEGMENT, vsid: BigInt(vsidOf(2)), cpus: [1] });
    await failure(
      machine.invalidateTlb({ scope: TlbScope.PAGE, pageShift: 13 }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "page_shift",
    );
    await failure(
      machine.invalidateTlb({ scope: TlbScope.UNSPECIFIED }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "scope",
    );
    await failure(
      machine.invalidateTlb({ scope: TlbScope.ALL, cpus: [2] }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "cpus",
    );
  });
});

describe("MachineService without a kernel side", () => {
  it("boots and serves, but cannot run threads", async () => {
    const rig = await startMachine(undefined);
    try {
      await rig.machine.createThreadContext({ context: { pid: 1, tid: 1, spaceId: 1n } });
      await rig.machine.startCpu({ cpu: 1 });
      await failure(rig.machine.runThread({ cpu: 1, tid: 1 }), Code.FAILED_PRECONDITION, Errno.EINVAL);
    } finally {
      await rig.stop();
    }
  });
});

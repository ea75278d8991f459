// MachineService.AccessDevices over both transports: a batch of memory (read, write, fill) and
// register accesses made in order in one call (an NVMe command submitted and its completion read
// back in one batch), the whole batch checked before any access is made, and a faulting access
// stopping the batch after the ones before it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { DeviceAccessResult, DeviceAccessSchema } from "../../gen/astra/machine/v1/machine_pb.ts";
import { Code, Errno } from "../../lib/errors.ts";
import { UART_SCR } from "../../services/machine/uart.ts";
import {
  failure,
  GuestAllocator,
  KINDS,
  type MachineRig,
  MIB,
  NVME,
  NvmeDriver,
  PAGE,
  pattern,
  startMachine,
} from "./service-rig.ts";

type Access = MessageInitShape<typeof DeviceAccessSchema>;

const readPhysical = (address: number, length: number): Access => ({
  access: { case: "readPhysical", value: { address: BigInt(address), length: BigInt(length) } },
});
const writePhysical = (address: number, data: Uint8Array): Access => ({
  access: { case: "writePhysical", value: { address: BigInt(address), data } },
});
const fillPhysical = (address: number, length: number, value: number): Access => ({
  access: { case: "fillPhysical", value: { address: BigInt(address), length: BigInt(length), value } },
});
const readMmio = (address: bigint, width: number): Access => ({
  access: { case: "readMmio", value: { address, width } },
});
const writeMmio = (address: bigint, width: number, value: bigint): Access => ({
  access: { case: "writeMmio", value: { address, width, value } },
});

/** The bytes a physical read answered. */
function data(result: DeviceAccessResult): Uint8Array {
  const r = result.result;
  expect(r.case).toBe("data");
  // Over gRPC the bytes arrive as a Buffer: compared as plain bytes.
  return Uint8Array.from(r.value as Uint8Array);
}

describe.each(KINDS)("AccessDevices over %s", (kind) => {
  let rig: MachineRig;
  const memory = new GuestAllocator(16 * MIB);

  beforeAll(async () => {
    rig = await startMachine(kind);
  });

  afterAll(async () => {
    await rig.stop();
  });

  it("makes its accesses in order and answers each read at its index", async () => {
    const at = memory.alloc(PAGE);
    // The UART's scratch register (its registers lie 4 bytes apart) keeps what is stored in it.
    const scratch = rig.devices.uart.base + BigInt(UART_SCR * 4);
    const { results } = await rig.machine.accessDevices({
      accesses: [
        writePhysical(at, pattern(512, 1)),
        readPhysical(at, 512),
        writePhysical(at + 256, pattern(256, 2)),
        readPhysical(at, 512),
        writeMmio(scratch, 4, 0x5an),
        readMmio(scratch, 4),
        writeMmio(scratch, 4, 0xa5n),
        readMmio(scratch, 4),
        fillPhysical(at + 128, 64, 0x77),
        readPhysical(at, 512),
      ],
    });
    expect(results.length).toBe(10);
    // Each read sees exactly the writes before it.
    expect(data(results[1])).toEqual(pattern(512, 1));
    const after = pattern(512, 1);
    after.set(pattern(256, 2), 256);
    expect(data(results[3])).toEqual(after);
    expect(results[5].result).toEqual({ case: "value", value: 0x5an });
    expect(results[7].result).toEqual({ case: "value", value: 0xa5n });
    after.fill(0x77, 128, 192);
    expect(data(results[9])).toEqual(after);
    for (const i of [0, 2, 4, 6, 8]) expect(results[i].result.case).toBeUndefined();
  });

  it("submits an NVMe command and reads its completion and data in one batch", async () => {
    const nvme = new NvmeDriver(rig.machine, rig.devices.nvme.base, memory);
    await nvme.enable();
    try {
      const q = nvme.queues.get(0)!;
      const buffer = memory.alloc(PAGE);
      const sqe = new DataView(new ArrayBuffer(64));
      sqe.setUint32(0, (NVME.ADMIN_IDENTIFY | (0x77 << 16)) >>> 0, true);
      sqe.setBigUint64(24, BigInt(buffer), true);
      sqe.setUint32(40, 1, true);
      const { results } = await rig.machine.accessDevices({
        accesses: [
          writePhysical(q.sqBase, new Uint8Array(sqe.buffer)),
          writeMmio(rig.devices.nvme.base + BigInt(NVME.DOORBELLS), 4, 1n),
          readPhysical(q.cqBase, 16),
          readPhysical(buffer, PAGE),
          writeMmio(rig.devices.nvme.base + BigInt(NVME.DOORBELLS + 4), 4, 1n),
        ],
      });
      // The doorbell ran the command before the reads after it: its completion and its data.
      const cqe = new DataView(data(results[2]).buffer, data(results[2]).byteOffset, 16);
      expect(cqe.getUint32(12, true) & 0xffff).toBe(0x77);
      expect((cqe.getUint32(12, true) >>> 16) & 1).toBe(1);
      expect((cqe.getUint32(12, true) >>> 17) & 0x7ff).toBe(0);
      const identify = new TextDecoder().decode(data(results[3]).subarray(24, 64)).trimEnd();
      expect(identify).toBe("AstraLisp NVMe SSD");
    } finally {
      await nvme.disable();
    }
  });

  it("checks the whole batch before making any access", async () => {
    const at = memory.alloc(PAGE);
    await rig.machine.fillPhysical({ address: BigInt(at), length: BigInt(PAGE), value: 0xee });
    const untouched = async () => {
      const { data } = await rig.machine.readPhysical({ address: BigInt(at), length: 16n });
      expect(Uint8Array.from(data)).toEqual(new Uint8Array(16).fill(0xee));
    };
    const scratch = rig.devices.uart.base + BigInt(UART_SCR * 4);
    await failure(
      rig.machine.accessDevices({ accesses: [writePhysical(at, pattern(16, 3)), writeMmio(scratch, 3, 1n)] }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "accesses[1].write_mmio.width",
    );
    await failure(
      rig.machine.accessDevices({
        accesses: [writePhysical(at, pattern(16, 3)), writeMmio(scratch, 1, 0x100n)],
      }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "accesses[1].write_mmio.value",
    );
    await failure(
      rig.machine.accessDevices({ accesses: [writePhysical(at, pattern(16, 3)), fillPhysical(at, 16, 256)] }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "accesses[1].fill_physical.value",
    );
    await failure(
      rig.machine.accessDevices({ accesses: [writePhysical(at, pattern(16, 3)), {}] }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "accesses[1].access",
    );
    await failure(
      rig.machine.accessDevices({ accesses: [writePhysical(at, pattern(16, 3)), readMmio(scratch + 1n, 2)] }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "accesses[1].read_mmio.address",
    );
    await untouched();
    const many = Array.from({ length: 4097 }, () => readMmio(scratch, 1));
    await failure(
      rig.machine.accessDevices({ accesses: many }),
      Code.RESOURCE_EXHAUSTED,
      Errno.E2BIG,
      "accesses",
    );
    await failure(
      rig.machine.accessDevices({
        accesses: [writePhysical(at, pattern(16, 3)), readPhysical(at, 5 * MIB), readPhysical(at, 4 * MIB)],
      }),
      Code.RESOURCE_EXHAUSTED,
      Errno.E2BIG,
      "accesses",
    );
    await untouched();
    // At the limits, the batch goes through.
    const { results } = await rig.machine.accessDevices({ accesses: many.slice(1) });
    expect(results.length).toBe(4096);
  });

  it("stops at an access that faults: the ones before it happened, none after it", async () => {
    const at = memory.alloc(PAGE);
    await rig.machine.fillPhysical({ address: BigInt(at), length: BigInt(PAGE), value: 0 });
    const hole = 1024 * 1024 * MIB;
    let err = await failure(
      rig.machine.accessDevices({
        accesses: [
          writePhysical(at, pattern(64, 4)),
          readPhysical(hole, 64),
          writePhysical(at + 64, pattern(64, 5)),
        ],
      }),
      Code.OUT_OF_RANGE,
      Errno.EFAULT,
      "accesses[1].read_physical.address",
    );
    expect(err.detail.facts.access_index).toBe("1");
    const { data: bytes } = await rig.machine.readPhysical({ address: BigInt(at), length: 128n });
    expect(Uint8Array.from(bytes.subarray(0, 64))).toEqual(pattern(64, 4));
    expect(Uint8Array.from(bytes.subarray(64))).toEqual(new Uint8Array(64));
    err = await failure(
      rig.machine.accessDevices({
        accesses: [writePhysical(at + 64, pattern(64, 6)), writeMmio(BigInt(hole), 4, 1n)],
      }),
      Code.OUT_OF_RANGE,
      Errno.EFAULT,
      "accesses[1].write_mmio.address",
    );
    expect(err.detail.facts.access_index).toBe("1");
    const again = await rig.machine.readPhysical({ address: BigInt(at + 64), length: 64n });
    expect(Uint8Array.from(again.data)).toEqual(pattern(64, 6));
  });
});

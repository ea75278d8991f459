// The machine service's devices through its contract, over both transports: the device list of
// GetInfo, the AHCI and NVMe registers as a driver finds them after reset, the MMIO access rules,
// and the console as a 16550 UART with its interrupt.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeviceKind, MemoryType } from "../../gen/astra/machine/v1/devices_pb.ts";
import { Code, Errno } from "../../lib/errors.ts";
import {
  AHCI,
  failure,
  HandlerClient,
  KINDS,
  type MachineRig,
  NVME,
  readMmio32,
  startMachine,
  StreamReader,
} from "./service-rig.ts";

const MMIO_BASE = 0x6000_0000_0000n;
const MMIO_BYTES = 16n * 1024n * 1024n;

describe.each(KINDS)("machine devices over %s", (kind) => {
  let rig: MachineRig;

  beforeAll(async () => {
    rig = await startMachine(kind);
  });

  afterAll(async () => {
    await rig.stop();
  });

  it("lists its devices inside the device window, with their interrupt lines and counters", async () => {
    const info = await rig.machine.getInfo({});
    expect(info.devices.map((d) => [d.name, d.kind])).toEqual([
      ["intc0", DeviceKind.INTERRUPT_CONTROLLER],
      ["uart0", DeviceKind.UART],
      ["ahci0", DeviceKind.AHCI],
      ["nvme0", DeviceKind.NVME],
    ]);
    const [intc, uart, ahci, nvme] = info.devices;
    expect(intc.irqs).toEqual([254, 255]);
    expect(intc.mmioLength).toBe(0n);
    expect(uart.irqs).toEqual([4]);
    expect(ahci.irqs).toEqual([16]);
    expect(nvme.irqs).toEqual(Array.from({ length: 16 }, (_, i) => 32 + i));
    const windows = [uart, ahci, nvme].map((d) => [d.mmioBase, d.mmioBase + d.mmioLength]);
    for (const [start, end] of windows) {
      expect(start >= MMIO_BASE && end <= MMIO_BASE + MMIO_BYTES).toBe(true);
    }
    windows.sort((a, b) => Number(a[0] - b[0]));
    for (let i = 1; i < windows.length; i++) expect(windows[i][0] >= windows[i - 1][1]).toBe(true);
    const map = await rig.machine.getMemoryMap({});
    const deviceRegion = map.regions.find((r) => r.type === MemoryType.DEVICE)!;
    expect(deviceRegion.base).toBe(MMIO_BASE);

    await rig.machine.readMmio({ address: ahci.mmioBase, width: 4 });
    await rig.machine.writeMmio({ address: ahci.mmioBase + 0x0cn, width: 4, value: 0n });
    const after = (await rig.machine.getInfo({})).devices[2];
    expect(after.mmioReads).toBe(ahci.mmioReads + 1n);
    expect(after.mmioWrites).toBe(ahci.mmioWrites + 1n);
  });

  it("shows the AHCI HBA's registers as they are after reset", async () => {
    const reg = (offset: number) => readMmio32(rig.machine, rig.devices.ahci.base + BigInt(offset));
    const cap = await reg(0x00);
    expect(cap & 0x1f).toBe(3); // four ports
    expect((cap >>> 8) & 0x1f).toBe(31); // 32 command slots
    expect(cap & (1 << 31)).not.toBe(0); // 64-bit addressing
    expect(cap & (1 << 30)).not.toBe(0); // NCQ
    expect(await reg(AHCI.GHC)).toBe(0x8000_0000);
    expect(await reg(AHCI.IS)).toBe(0);
    expect(await reg(0x0c)).toBe(0xf);
    expect(await reg(0x10)).toBe(0x0001_0301);
    // Ports 0 and 1 have the default disks: link up at gen 3, with the disk signature.
    for (const port of [0, 1]) {
      expect(await reg(AHCI.port(port, AHCI.PX_SSTS))).toBe(0x133);
      expect(await reg(AHCI.port(port, 0x24))).toBe(0x101);
      expect(await reg(AHCI.port(port, 0x20))).toBe(0x150);
    }
    for (const port of [2, 3]) {
      expect(await reg(AHCI.port(port, AHCI.PX_SSTS))).toBe(0);
      expect(await reg(AHCI.port(port, 0x20))).toBe(0x7f);
      expect(await reg(AHCI.port(port, 0x24))).toBe(0xffff_ffff);
    }
  });

  it("shows the NVMe controller's registers as they are after reset", async () => {
    const base = rig.devices.nvme.base;
    const { value: cap } = await rig.machine.readMmio({ address: base + BigInt(NVME.CAP), width: 8 });
    expect(cap & 0xffffn).toBe(4095n);
    expect((cap >> 16n) & 1n).toBe(1n);
    expect((cap >> 24n) & 0xffn).toBe(20n);
    expect((cap >> 32n) & 0xfn).toBe(0n);
    expect((cap >> 37n) & 1n).toBe(1n);
    expect((cap >> 52n) & 0xfn).toBe(4n);
    const low = await readMmio32(rig.machine, base);
    const high = await readMmio32(rig.machine, base + 4n);
    expect(cap).toBe((BigInt(high) << 32n) | BigInt(low));
    expect(await readMmio32(rig.machine, base + BigInt(NVME.VS))).toBe(0x0001_0400);
    expect(await readMmio32(rig.machine, base + BigInt(NVME.CC))).toBe(0);
    expect(await readMmio32(rig.machine, base + BigInt(NVME.CSTS))).toBe(0);
    expect(await readMmio32(rig.machine, base + BigInt(NVME.AQA))).toBe(0);
  });

  it("accesses registers at every width and refuses bad widths, alignments, values and addresses", async () => {
    const vs = rig.devices.ahci.base + 0x10n;
    expect((await rig.machine.readMmio({ address: vs, width: 1 })).value).toBe(0x01n);
    expect((await rig.machine.readMmio({ address: vs + 1n, width: 1 })).value).toBe(0x03n);
    expect((await rig.machine.readMmio({ address: vs + 2n, width: 2 })).value).toBe(0x0001n);
    // PxCLB keeps what is written, less its reserved low bits.
    const clb = rig.devices.ahci.base + BigInt(AHCI.port(3, 0x00));
    await rig.machine.writeMmio({ address: clb, width: 8, value: 0x0000_0001_0000_ffffn });
    expect((await rig.machine.readMmio({ address: clb, width: 8 })).value).toBe(0x0000_0001_0000_fc00n);
    await rig.machine.writeMmio({ address: clb + 1n, width: 1, value: 0x80n });
    expect((await rig.machine.readMmio({ address: clb, width: 4 })).value).toBe(0x0000_8000n);

    await failure(
      rig.machine.readMmio({ address: vs, width: 3 }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "width",
    );
    await failure(
      rig.machine.readMmio({ address: vs, width: 0 }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "width",
    );
    await failure(
      rig.machine.readMmio({ address: vs + 2n, width: 4 }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "address",
    );
    await failure(
      rig.machine.writeMmio({ address: vs, width: 1, value: 0x100n }),
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      "value",
    );
    // RAM, a hole in the device window, and an address beyond any memory are no device's registers.
    await failure(
      rig.machine.readMmio({ address: 0x10_0000n, width: 4 }),
      Code.OUT_OF_RANGE,
      Errno.EFAULT,
      "address",
    );
    await failure(
      rig.machine.readMmio({ address: MMIO_BASE + 0x8000n, width: 4 }),
      Code.OUT_OF_RANGE,
      Errno.EFAULT,
      "address",
    );
    await failure(
      rig.machine.writeMmio({ address: 1n << 60n, width: 4, value: 0n }),
      Code.OUT_OF_RANGE,
      Errno.EFAULT,
      "address",
    );
  });

  it("is a 16550 UART: THR to the console, typed input through RBR with its interrupt", async () => {
    const uart = (register: number) => rig.devices.uart.base + BigInt(register * 4);
    const read = async (register: number) =>
      Number((await rig.machine.readMmio({ address: uart(register), width: 1 })).value);
    const write = (register: number, value: number) =>
      rig.machine.writeMmio({ address: uart(register), width: 1, value: BigInt(value) });
    const cancel = new AbortController();
    const output = new StreamReader(rig.machine.consoleOutput({}, { signal: cancel.signal }));
    const handler = await HandlerClient.open(rig.interrupts, rig.devices.uart.irq, "test:uart");
    try {
      // The divisor latch, the scratch register and the modem lines.
      await write(3, 0x83);
      await write(0, 0x0c);
      await write(1, 0x00);
      expect([await read(0), await read(1)]).toEqual([0x0c, 0x00]);
      await write(3, 0x03);
      await write(7, 0x5a);
      expect(await read(7)).toBe(0x5a);
      expect(await read(6) & 0xb0).toBe(0xb0);
      expect(await read(5) & 0x61).toBe(0x60); // THR and transmitter empty, no data

      // Received data: the interrupt, IIR, LSR.DR, then the bytes in order.
      await write(1, 0x01);
      await handler.reader.nothingFor(50);
      expect((await rig.machine.writeConsoleInput({ data: new TextEncoder().encode("hi") })).accepted).toBe(
        2n,
      );
      const rx = await handler.next();
      expect(rx.irq).toBe(rig.devices.uart.irq);
      expect(await read(2)).toBe(0x04);
      expect(await read(5) & 0x01).toBe(1);
      expect(String.fromCharCode(await read(0), await read(0))).toBe("hi");
      expect(await read(5) & 0x01).toBe(0);
      expect(await read(2)).toBe(0x01);
      handler.complete(rx);

      // The transmitter: enabling its interrupt raises it (THR is empty); reading IIR acknowledges it.
      await write(1, 0x03);
      const tx = await handler.next();
      expect(await read(2)).toBe(0x02);
      expect(await read(2)).toBe(0x01);
      handler.complete(tx);
      for (const c of "OK") await write(0, c.charCodeAt(0));
      let text = "";
      while (!text.endsWith("OK")) text += new TextDecoder().decode((await output.next()).data);
      handler.complete(await handler.next());
      const [uartInfo] = (await rig.machine.getInfo({})).devices.filter((d) => d.name === "uart0");
      expect(uartInfo.interruptsRaised).toBe(3n);
    } finally {
      cancel.abort();
      handler.close();
      await handler.reader.ended();
    }
  });
});

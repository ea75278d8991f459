// The drivers end to end: a whole embedded system (machine, pmm, vmm, storage, sched), the storage
// service driving the machine's controllers through MachineService, InterruptService and pmm, and
// its BlockService, AhciService and NvmeService called over both transports (in-process and
// gRPC). Faults are injected and disks hot-plugged through MachineService as an operator would;
// data written before a restart of the whole system reads back after it. While the machine does
// not serve its device RPCs yet, every case skips and says so.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DiskController, FaultKind } from "../../../gen/astra/machine/v1/devices_pb.ts";
import { MachineService } from "../../../gen/astra/machine/v1/machine_pb.ts";
import { AhciService, DataDirection, LinkPowerState } from "../../../gen/astra/storage/v1/ahci_pb.ts";
import {
  type BlockIoRequestSchema,
  BlockService,
  DeviceDriver,
} from "../../../gen/astra/storage/v1/block_pb.ts";
import { NvmeService } from "../../../gen/astra/storage/v1/nvme_pb.ts";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Channel } from "../../../lib/channel.ts";
import { AstraError, Code, Errno } from "../../../lib/errors.ts";
import { GrpcTransport } from "../../../lib/grpc.ts";
import { bootEmbedded, type EmbeddedSystem } from "../../../lib/host.ts";
import { snapshotMetrics } from "../../../lib/metrics.ts";
import type { SystemConfig } from "../../../lib/module.ts";
import { client, type Transport } from "../../../lib/rpc.ts";
import { loadFactory } from "../../../services/index.ts";
import { BlockIoClient } from "../../../services/storage/block_io.ts";
import { type DeviceAccess, ServiceHardware } from "../../../services/storage/hardware.ts";
import { expectBytes, expectFailure, pattern, remoteMachine } from "./helpers.ts";

const MiB = 1024 * 1024;

interface Booted {
  system: EmbeddedSystem;
  grpc: GrpcTransport;
  /** Why the cases cannot run, or null. */
  unavailable: string | null;
}

async function boot(config: SystemConfig): Promise<Booted> {
  const system = await bootEmbedded(loadFactory, config, { gateway: "127.0.0.1:0" });
  const grpc = new GrpcTransport(system.gatewayAddress!);
  let unavailable: string | null = null;
  const machine = client(MachineService, system.router.transport());
  try {
    const info = await machine.getInfo({});
    const controller = info.devices.find((d) => d.name === "ahci0" || d.name === "nvme0");
    if (!controller) unavailable = "the machine lists no disk controllers in GetInfo";
    else await machine.readMmio({ address: controller.mmioBase, width: 4 });
  } catch (err) {
    if (!(err instanceof AstraError) || err.code !== Code.UNIMPLEMENTED) throw err;
    unavailable = `the machine's device RPCs are not served yet: ${err.message}`;
  }
  return { system, grpc, unavailable };
}

async function shutdown(b: Booted): Promise<void> {
  b.grpc.close();
  await b.system.shutdown();
}

let dataDir: string;
let booted: Booted;
const config = () => ({ memoryBytes: 256 * MiB, numaNodes: 1, cpus: 2, dataDir });

beforeAll(async () => {
  dataDir = await Deno.makeTempDir({ prefix: "astra-storage-system-" });
  booted = await boot(config());
}, 60_000);

afterAll(async () => {
  await shutdown(booted);
  await Deno.remove(dataDir, { recursive: true });
});

function skipUnlessReady(ctx: { skip: (note?: string) => void }): void {
  if (booted.unavailable) ctx.skip(booted.unavailable);
}

const transports: [string, () => Transport][] = [
  ["in-process", () => booted.system.router.transport()],
  ["grpc", () => booted.grpc],
];

for (const [kind, transport] of transports) {
  describe(`storage end to end over ${kind}`, () => {
    it("lists the AHCI and NVMe disks with their identify data", async (ctx) => {
      skipUnlessReady(ctx);
      const block = client(BlockService, transport());
      const { devices } = await block.listDevices({});
      expect(devices.map((d) => d.name)).toEqual(["sda", "sdb", "nvme0n1", "nvme0n2"]);
      const sda = devices[0];
      expect(sda).toMatchObject({
        driver: DeviceDriver.AHCI,
        blockSize: 512,
        model: "AstraLisp SATA SSD",
        online: true,
      });
      expect(sda.sizeBytes).toBe(64n * BigInt(MiB));
      const n2 = devices[3];
      expect(n2).toMatchObject({
        driver: DeviceDriver.NVME,
        blockSize: 4096,
        portOrNamespace: 2,
        nvmeController: 0,
      });
      const identify = await block.identifyDevice({ device: "nvme0n2" });
      expect(identify.raw.length).toBe(4096);
      await expectFailure(block.identifyDevice({ device: "sdz" }), Code.NOT_FOUND, Errno.ENODEV);
      const stats = await block.getStatistics({});
      expect(stats).toMatchObject({ ahciPorts: 2, nvmeNamespaces: 2 });
      expect(stats.interruptsHandled).toBeGreaterThan(0n);
    });

    it("reads, writes and flushes blocks on every device", async (ctx) => {
      skipUnlessReady(ctx);
      const block = client(BlockService, transport());
      for (const name of ["sda", "sdb", "nvme0n1", "nvme0n2"]) {
        const size = name === "nvme0n2" ? 4096 : 512;
        const data = pattern(size * 16, name.length + kind.length);
        const lba = BigInt(kind.length * 100);
        expect((await block.writeBlocks({ device: name, lba, data, fua: name === "sdb" })).blocksWritten)
          .toBe(16);
        expectBytes((await block.readBlocks({ device: name, lba, count: 16 })).data, data);
        await block.flushDevice({ device: name });
        const { statistics } = await block.getDeviceStatistics({ device: name });
        expect(statistics!.reads).toBeGreaterThan(0n);
        expect(statistics!.readLatency!.count).toBeGreaterThan(0n);
      }
      await expectFailure(
        block.readBlocks({ device: "sda", lba: 0n, count: 0 }),
        Code.INVALID_ARGUMENT,
        Errno.EINVAL,
      );
      await expectFailure(
        block.readBlocks({ device: "sda", lba: 1n << 40n, count: 1 }),
        Code.OUT_OF_RANGE,
        Errno.ENXIO,
      );
    });

    it("retries a transient media error and reports a persistent one as EIO with the LBA", async (ctx) => {
      skipUnlessReady(ctx);
      const block = client(BlockService, transport());
      const machine = client(MachineService, transport());
      for (
        const [device, location] of [
          ["sda", { controller: DiskController.AHCI, port: 0 }],
          ["nvme0n1", { controller: DiskController.NVME, namespaceId: 1 }],
        ] as const
      ) {
        const before = (await block.getDeviceStatistics({ device })).statistics!.retries;
        await machine.injectFault({
          location,
          kind: FaultKind.MEDIA_ERROR,
          lbaFirst: 900n,
          lbaCount: 1n,
          count: 1,
        });
        await block.readBlocks({ device, lba: 896n, count: 8 });
        expect((await block.getDeviceStatistics({ device })).statistics!.retries).toBe(before + 1n);

        const { faultId } = await machine.injectFault({
          location,
          kind: FaultKind.MEDIA_ERROR,
          lbaFirst: 1000n,
          lbaCount: 1n,
        });
        const err = await expectFailure(
          block.readBlocks({ device, lba: 1000n, count: 1 }),
          Code.DATA_LOSS,
          Errno.EIO,
        );
        expect(err.detail.facts).toMatchObject({ lba: "1000", device });
        await machine.clearFaults({ location, faultId });
        await block.readBlocks({ device, lba: 1000n, count: 1 });
      }
    });

    it("streams tagged commands over BlockIo, each answered by its tag or its own error", async (ctx) => {
      skipUnlessReady(ctx);
      const block = client(BlockService, transport());
      const stream = new BlockIoClient(block);
      try {
        // Many commands in flight at once on two devices, every one a real round trip of data.
        const writes = Array.from({ length: 24 }, (_, i) => ({
          device: i % 2 === 0 ? "nvme0n1" : "sda",
          lba: 4096 + kind.length * 512 + i * 8,
          data: pattern(4096, 100 + i),
        }));
        const written = await Promise.all(writes.map((w) => stream.write(w.device, w.lba, w.data)));
        expect(written).toEqual(writes.map(() => 8));
        const read = await Promise.all(writes.map((w) => stream.read(w.device, w.lba, 8)));
        read.forEach((data, i) => expectBytes(data, writes[i].data));
        await Promise.all([stream.flush("nvme0n1"), stream.flush("sda")]);
        // A failing command is answered with its error; the others and the stream go on.
        const [beyond, unknown, fine] = await Promise.allSettled([
          stream.read("sda", (64 * MiB) / 512 - 4, 8),
          stream.read("sdz", 0, 1),
          stream.read("nvme0n1", writes[0].lba, 8),
        ]);
        await expectFailure(
          Promise.reject((beyond as PromiseRejectedResult).reason),
          Code.OUT_OF_RANGE,
          Errno.ENXIO,
        );
        const missing = await expectFailure(
          Promise.reject((unknown as PromiseRejectedResult).reason),
          Code.NOT_FOUND,
          Errno.ENODEV,
        );
        expect(missing.detail.service).toBe("storage");
        expectBytes((fine as PromiseFulfilledResult<Uint8Array>).value, writes[0].data);
        await expectFailure(
          stream.write("nvme0n1", 0, new Uint8Array(100)),
          Code.INVALID_ARGUMENT,
          Errno.EINVAL,
        );
        expectBytes(await stream.read("sda", writes[1].lba, 8), writes[1].data);
        expect(stream.inFlight).toBe(0);
      } finally {
        await stream.close();
      }
      // Once closed, the client refuses new commands.
      await expectFailure(stream.read("sda", 0, 1), Code.CANCELLED, Errno.ECANCELED);

      // A malformed stream fails as a whole: a tag twice in flight, a command with no operation.
      for (
        const commands of [
          [
            {
              tag: 7n,
              device: "nvme0n1",
              operation: { case: "read" as const, value: { lba: 0n, count: 1 } },
            },
            {
              tag: 7n,
              device: "nvme0n1",
              operation: { case: "read" as const, value: { lba: 1n, count: 1 } },
            },
          ],
          [{ tag: 8n, device: "nvme0n1" }],
        ]
      ) {
        const requests = new Channel<MessageInitShape<typeof BlockIoRequestSchema>>();
        requests.push({ commands });
        let caught: unknown;
        try {
          for await (const _ of block.blockIo(requests)) { /* the failure ends the loop */ }
        } catch (err) {
          caught = err;
        } finally {
          requests.close();
        }
        await expectFailure(Promise.reject(caught), Code.INVALID_ARGUMENT, Errno.EINVAL);
      }
    });

    it("cuts a batch of device accesses into the calls the machine accepts, in order", async (ctx) => {
      skipUnlessReady(ctx);
      const hw = new ServiceHardware(transport(), transport());
      const calls = () =>
        snapshotMetrics().find((m) =>
          m.side === "client" && m.method === "/astra.machine.v1.MachineService/AccessDevices"
        )
          ?.calls ?? 0n;
      const region = await hw.allocDma(20 * MiB, 4096, `test:batches over ${kind}`);
      try {
        // 20 MiB each way: more than two calls carry.
        const data = pattern(20 * MiB, 31);
        let before = calls();
        await hw.access([{ op: "write-physical", address: region.address, data }]);
        expect(calls() - before).toBe(3n);
        before = calls();
        const [back] = await hw.access([{ op: "read-physical", address: region.address, length: 20 * MiB }]);
        expect(calls() - before).toBe(3n);
        expectBytes(back as Uint8Array, data);
        // 5000 accesses: two calls, still made in order (each read sees the write just before it).
        const accesses: DeviceAccess[] = [];
        for (let i = 0; i < 2500; i++) {
          accesses.push({
            op: "write-physical",
            address: region.address + 8 * (i % 64),
            data: pattern(8, i),
          });
          accesses.push({ op: "read-physical", address: region.address + 8 * (i % 64), length: 8 });
        }
        before = calls();
        const results = await hw.access(accesses);
        expect(calls() - before).toBe(2n);
        expect(results.length).toBe(5000);
        for (let i = 0; i < 2500; i++) {
          expect(results[2 * i]).toBeNull();
          expectBytes(results[2 * i + 1] as Uint8Array, pattern(8, i));
        }
      } finally {
        await hw.freeDma(region);
        await hw.close();
      }
    });

    it("addresses each AHCI HBA and NVMe controller by its name, the first by default", async (ctx) => {
      skipUnlessReady(ctx);
      const ahci = client(AhciService, transport());
      const nvme = client(NvmeService, transport());
      expect(await ahci.identify({ port: 1, controller: "ahci0" })).toEqual(await ahci.identify({ port: 1 }));
      const data = pattern(512, 21);
      await ahci.write({ port: 1, lba: 77n, data, controller: "ahci0" });
      expectBytes((await ahci.read({ port: 1, lba: 77n, count: 1 })).data, data);
      expect((await nvme.identifyController({ controller: "nvme0" })).model).toBe("AstraLisp NVMe SSD");
      expectBytes(
        (await nvme.read({ controller: "nvme0", namespaceId: 1, lba: 0n, count: 1 })).data,
        (await nvme.read({ namespaceId: 1, lba: 0n, count: 1 })).data,
      );
      for (
        const call of [
          ahci.identify({ port: 1, controller: "ahci7" }),
          ahci.getPortStatus({ port: 0, controller: "nvme0" }),
          ahci.init({ controller: "ahci1" }),
          nvme.identifyController({ controller: "ahci0" }),
          nvme.read({ controller: "nvme9", namespaceId: 1, lba: 0n, count: 1 }),
          nvme.resetController({ controller: "nvme1" }),
        ]
      ) {
        const err = await expectFailure(call, Code.NOT_FOUND, Errno.ENODEV);
        expect(err.detail.argument).toBe("controller");
      }
    });

    it("serves the AHCI driver's functions", async (ctx) => {
      skipUnlessReady(ctx);
      const ahci = client(AhciService, transport());
      const id = await ahci.identify({ port: 1 });
      expect(id).toMatchObject({
        model: "AstraLisp SATA SSD",
        serial: "ASTRA-SATA-01",
        lba48: true,
        ncqDepth: 32,
      });
      expect(id.lba48Sectors).toBe(BigInt((64 * MiB) / 512));
      const data = pattern(1024, 7);
      expect((await ahci.write({ port: 1, lba: 33n, data })).sectorsWritten).toBe(2);
      expectBytes((await ahci.read({ port: 1, lba: 33n, count: 2 })).data, data);
      const { slot } = await ahci.issueCommand({
        port: 1,
        command: 0x25,
        lba: 33n,
        count: 2,
        device: 0x40,
        direction: DataDirection.IN,
        receiveBytes: 1024,
      });
      const done = await ahci.waitCommand({ port: 1, slot, timeoutMs: 2000 });
      expectBytes(done.data, data);
      expect(done.transferredBytes).toBe(1024);
      const status = await ahci.getPortStatus({ port: 1 });
      expect(status).toMatchObject({ devicePresent: true, powerState: LinkPowerState.ACTIVE });
      expect((await ahci.setPowerState({ port: 1, state: LinkPowerState.PARTIAL })).previous).toBe(
        LinkPowerState.ACTIVE,
      );
      expect((await ahci.resetPort({ port: 1 })).devicePresent).toBe(true);
      await ahci.portStop({ port: 1 });
      await expectFailure(ahci.read({ port: 1, lba: 0n, count: 1 }), Code.FAILED_PRECONDITION, Errno.EAGAIN);
      await ahci.portStart({ port: 1 });
      expectBytes((await ahci.read({ port: 1, lba: 33n, count: 2 })).data, data);
      const init = await ahci.portInit({ port: 1 });
      expect(init.commandTableAddresses.length).toBe(32);
      expect(Number(init.commandListAddress) % 1024).toBe(0);
    });

    it("serves the NVMe driver's functions", async (ctx) => {
      skipUnlessReady(ctx);
      const nvme = client(NvmeService, transport());
      const ctrl = await nvme.identifyController({});
      expect(ctrl).toMatchObject({
        model: "AstraLisp NVMe SSD",
        submissionEntryBytes: 64,
        completionEntryBytes: 16,
      });
      const { namespaces } = await nvme.enumerateNamespaces({});
      expect(namespaces.map((n) => [n.namespaceId, n.blockBytes])).toEqual([[1, 512], [2, 4096]]);
      const data = pattern(8192, 9);
      expect((await nvme.write({ namespaceId: 2, lba: 7n, data, fua: true })).blocksWritten).toBe(2);
      expectBytes((await nvme.read({ namespaceId: 2, lba: 7n, count: 2, queueId: 1 })).data, data);
      const created = await nvme.createQueue({ queueId: 9, entries: 32, vector: 1 });
      expect(created.submissionQueueAddress % 4096n).toBe(0n);
      expectBytes((await nvme.read({ namespaceId: 2, lba: 7n, count: 2, queueId: 9 })).data, data);
      await nvme.deleteQueue({ queueId: 9 });
      const { commandId } = await nvme.submitCommand({
        queueId: 1,
        fields: { opcode: 0x02, namespaceId: 2, commandDwords: [7, 0, 1] },
        transferBytes: 8192,
      });
      const done = await nvme.waitCompletion({ queueId: 1, commandId, timeoutMs: 2000 });
      expect(done).toMatchObject({ status: 0, statusCodeType: 0, doNotRetry: false });
      expectBytes(done.data, data);
      expect((await nvme.resetController({})).commandsResubmitted).toBe(0);
      expectBytes((await nvme.read({ namespaceId: 2, lba: 7n, count: 2 })).data, data);
    });
  });
}

describe("storage driving the machine over gRPC", () => {
  it(
    "probes, moves data, takes interrupts and recovers from a fault with every call on gRPC",
    async (ctx) => {
      skipUnlessReady(ctx);
      // A machine and pmm of their own, reachable only through a gRPC port, as in process mode.
      const dir = await Deno.makeTempDir({ prefix: "astra-storage-grpc-" });
      const { local, storage, stop } = await remoteMachine({ ...config(), dataDir: dir });
      try {
        expect(await storage.start()).toMatch(
          /devices: sda 64 MiB, sdb 64 MiB, nvme0n1 64 MiB, nvme0n2 64 MiB/,
        );
        const block = storage.disks.block;
        for (const name of ["sda", "nvme0n2"]) {
          const dev = block.device(name);
          const data = pattern(dev.blockSize * 8, 21);
          await Promise.all(Array.from({ length: 16 }, (_, i) => dev.writeBlocks(i * 8, data)));
          for (const r of await Promise.all(Array.from({ length: 16 }, (_, i) => dev.readBlocks(i * 8, 8)))) {
            expectBytes(r, data);
          }
        }
        await client(MachineService, local).injectFault({
          location: { controller: DiskController.NVME, namespaceId: 1 },
          kind: FaultKind.MEDIA_ERROR,
          lbaFirst: 64n,
          lbaCount: 1n,
          count: 1,
        });
        await block.device("nvme0n1").readBlocks(64, 1);
        expect(block.device("nvme0n1").statistics().retries).toBe(1);
        expect(storage.disks.interruptsHandled).toBeGreaterThan(0);
      } finally {
        await stop();
      }
    },
    30_000,
  );
});

describe("storage end to end: hot plug and restarts", () => {
  it("fails requests in flight when a disk is pulled out, and picks up a disk plugged in", async (ctx) => {
    skipUnlessReady(ctx);
    const local = booted.system.router.transport();
    const block = client(BlockService, local);
    const machine = client(MachineService, local);
    const location = { controller: DiskController.AHCI, port: 1 };
    await machine.injectFault({ location, kind: FaultKind.COMMAND_TIMEOUT, lbaFirst: 0n, lbaCount: 8n });
    const inflight = block.readBlocks({ device: "sdb", lba: 0n, count: 8 });
    await new Promise((r) => setTimeout(r, 20));
    await machine.detachDisk({ location, surprise: true });
    await expectFailure(inflight, Code.FAILED_PRECONDITION, Errno.ENODEV);
    await until(async () => (await block.listDevices({})).devices.length === 3);
    await machine.attachDisk({
      location: { controller: DiskController.AHCI, port: 3 },
      sizeBytes: BigInt(8 * MiB),
    });
    await until(async () => (await block.listDevices({})).devices.some((d) => d.name === "sdb"));
    const sdb = (await block.identifyDevice({ device: "sdb" })).device!;
    expect(sdb.portOrNamespace).toBe(3);
    expect(sdb.sizeBytes).toBe(BigInt(8 * MiB));
  });

  it("reads back after a restart of the whole system what was written before it", async (ctx) => {
    skipUnlessReady(ctx);
    const block = client(BlockService, booted.system.router.transport());
    const written = new Map<string, Uint8Array>();
    for (const name of ["sda", "nvme0n1", "nvme0n2"]) {
      const data = pattern(name === "nvme0n2" ? 4096 * 4 : 512 * 32, name.charCodeAt(4));
      await block.writeBlocks({ device: name, lba: 4242n, data });
      written.set(name, data);
    }
    await shutdown(booted);
    booted = await boot(config());
    const again = client(BlockService, booted.system.router.transport());
    for (const [name, data] of written) {
      const count = data.length / (name === "nvme0n2" ? 4096 : 512);
      expectBytes((await again.readBlocks({ device: name, lba: 4242n, count })).data, data);
    }
  }, 60_000);
});

async function until(test: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!(await test())) {
    if (performance.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

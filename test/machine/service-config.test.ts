// The machine's device configuration: parsing flags and environment, machines built from it, an
// image that no longer matches it, and the standalone machine process taking the device flags.
import { describe, expect, it } from "vitest";
import { DiskController } from "../../gen/astra/machine/v1/devices_pb.ts";
import { MachineService } from "../../gen/astra/machine/v1/machine_pb.ts";
import { GrpcTransport } from "../../lib/grpc.ts";
import { peersFrom } from "../../lib/module.ts";
import { client } from "../../lib/rpc.ts";
import { InProcessRouter } from "../../lib/inproc.ts";
import { DEFAULT_DEVICE_CONFIG, deviceConfigFrom } from "../../services/machine/config.ts";
import { createMachine } from "../../services/machine/server.ts";
import { AHCI, MIB, readMmio32, startMachine } from "./service-rig.ts";

const GIB = 1024 * MIB;

describe("device configuration", () => {
  it("defaults to two SATA disks and a 512 B and a 4 KiB NVMe namespace", () => {
    expect(deviceConfigFrom({})).toEqual(DEFAULT_DEVICE_CONFIG);
    expect(deviceConfigFrom({ "ahci-ports": "1" }).sataDisks).toEqual([{
      port: 0,
      sizeBytes: 64 * MIB,
      lbaSize: 512,
    }]);
  });

  it("reads disks as [INDEX=]SIZE[:LBA_SIZE] lists, or none", () => {
    expect(deviceConfigFrom({
      "ahci-ports": "2",
      "sata-disks": "1=32M:4096",
      "nvme-namespaces": "16M, 3=1G:4096,2G",
    })).toEqual({
      ahciPorts: 2,
      sataDisks: [{ port: 1, sizeBytes: 32 * MIB, lbaSize: 4096 }],
      nvmeNamespaces: [
        { namespaceId: 1, sizeBytes: 16 * MIB, lbaSize: 512 },
        { namespaceId: 3, sizeBytes: GIB, lbaSize: 4096 },
        { namespaceId: 4, sizeBytes: 2 * GIB, lbaSize: 512 },
      ],
    });
    expect(deviceConfigFrom({ "sata-disks": "none", "nvme-namespaces": "none" })).toMatchObject({
      sataDisks: [],
      nvmeNamespaces: [],
    });
  });

  it("takes the environment when no flag is given", () => {
    Deno.env.set("ASTRA_SATA_DISKS", "2=8M");
    try {
      expect(deviceConfigFrom({}).sataDisks).toEqual([{ port: 2, sizeBytes: 8 * MIB, lbaSize: 512 }]);
      expect(deviceConfigFrom({ "sata-disks": "none" }).sataDisks).toEqual([]);
    } finally {
      Deno.env.delete("ASTRA_SATA_DISKS");
    }
  });

  it("refuses what cannot be built, saying why", () => {
    const bad: [Record<string, string>, RegExp][] = [
      [{ "ahci-ports": "0" }, /--ahci-ports must be 1..32/],
      [{ "ahci-ports": "x" }, /--ahci-ports must be 1..32/],
      [{ "sata-disks": "4=1M" }, /index 4 is not in 0..3/],
      [{ "sata-disks": "0=1M,0=2M" }, /index 0 is given twice/],
      [{ "sata-disks": "64Q" }, /not a size/],
      [{ "sata-disks": "1M:1024" }, /512 or 4096/],
      [{ "sata-disks": "1000" }, /positive multiple/],
      [{ "nvme-namespaces": "0=1M" }, /index 0 is not in 1..16/],
      [{ "nvme-namespaces": "128T" }, /64 TiB/],
      [{ "nvme-namespaces": "1M:" }, /INDEX=\]SIZE/],
    ];
    for (const [flags, message] of bad) {
      expect(() => deviceConfigFrom(flags), JSON.stringify(flags)).toThrow(message);
    }
  });

  it("builds the machine from it, and will not reopen an image at another size", async () => {
    const dataDir = await Deno.makeTempDir({ prefix: "astra-machine-config-" });
    try {
      const rig = await startMachine("in-process", {
        dataDir,
        devices: {
          ahciPorts: 1,
          sataDisks: [],
          nvmeNamespaces: [{ namespaceId: 5, sizeBytes: MIB, lbaSize: 4096 }],
        },
      });
      try {
        expect(await readMmio32(rig.machine, rig.devices.ahci.base + 0x0cn)).toBe(1);
        expect(await readMmio32(rig.machine, rig.devices.ahci.base + BigInt(AHCI.port(0, AHCI.PX_SSTS))))
          .toBe(0);
        const { disks } = await rig.machine.listDisks({});
        expect(disks.map((d) => [d.location!.namespaceId, d.lbaCount])).toEqual([[5, 256n]]);
      } finally {
        await rig.stop();
      }
      const router = new InProcessRouter();
      const resized = createMachine(
        peersFrom(() => router.transport()),
        { memoryBytes: 64 * MIB, numaNodes: 1, cpus: 1, dataDir },
        {
          ahciPorts: 1,
          sataDisks: [],
          nvmeNamespaces: [{ namespaceId: 5, sizeBytes: 2 * MIB, lbaSize: 4096 }],
        },
      );
      await expect(resized.start()).rejects.toThrow(
        /NVMe namespace 5: cannot open .*nvme0n5.img: .* is 1048576 bytes/,
      );
    } finally {
      await Deno.remove(dataDir, { recursive: true });
    }
  });
});

describe("the standalone machine process", () => {
  it("takes the device flags", async () => {
    const dataDir = await Deno.makeTempDir({ prefix: "astra-machine-main-" });
    const main = new URL("../../services/machine/main.ts", import.meta.url).pathname;
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        main,
        "--listen",
        "127.0.0.1:0",
        "--memory",
        "64M",
        "--data-dir",
        dataDir,
        "--ahci-ports",
        "2",
        "--sata-disks=none",
        "--nvme-namespaces",
        "8M:4096",
      ],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const lines = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    try {
      let text = "";
      let up: Record<string, string> | undefined;
      let address = "";
      while (!up) {
        const { value, done } = await lines.read();
        if (done) throw new Error(`the machine exited:\n${text}`);
        text += value;
        for (const line of text.split("\n").filter((l) => l.startsWith("{"))) {
          const entry = JSON.parse(line);
          if (entry.msg === "listening") address = entry.address;
          if (entry.msg === "up") up = entry;
        }
      }
      expect(up.step).toMatch(/0 SATA disk\(s\) on 2 AHCI ports, 1 NVMe namespace\(s\)/);
      const transport = new GrpcTransport(address);
      try {
        const { disks } = await client(MachineService, transport).listDisks({});
        expect(disks.map((d) => [d.location!.controller, d.location!.namespaceId, d.lbaSize, d.sizeBytes]))
          .toEqual([
            [DiskController.NVME, 1, 4096, BigInt(8 * MIB)],
          ]);
      } finally {
        transport.close();
      }
      child.kill("SIGTERM");
      expect((await child.status).success).toBe(true);
      expect((await Deno.stat(`${dataDir}/disks/nvme0n1.img`)).size).toBe(8 * MIB);
    } finally {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already exited.
      }
      await child.status;
      await lines.cancel();
      await Deno.remove(dataDir, { recursive: true });
    }
  });
});

// `astra machine disk …` and `astra machine fault …` against a machine service over gRPC: disks
// hot-plugged and pulled, faults injected, listed and cleared, and every failure printed with its
// gRPC status and errno and a non-zero exit.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { astra } from "../storage/service/helpers.ts";
import { type MachineRig, startMachine } from "./service-rig.ts";

describe("astra machine", () => {
  let rig: MachineRig;
  let endpoint: string[];

  beforeAll(async () => {
    rig = await startMachine("grpc");
    endpoint = ["--endpoint", rig.address!];
  });

  afterAll(async () => {
    await rig.stop();
  });

  const machine = (...args: string[]) => astra(["machine", ...args, ...endpoint]);

  it("lists, attaches and detaches disks", async () => {
    const list = await machine("disk", "list");
    expect(list.code).toBe(0);
    const rows = list.stdout.trim().split("\n");
    expect(rows[0]).toMatch(/^LOCATION\s+SIZE\s+LBA\s+UNFLUSHED/);
    expect(rows.slice(1).map((r) => r.split(/\s+/)[0])).toEqual(["ahci:0", "ahci:1", "nvme:1", "nvme:2"]);

    const attach = await machine("disk", "attach", "ahci:3", "--size", "8M");
    expect(attach.stderr).toBe("");
    expect(attach.code).toBe(0);
    expect(attach.stdout).toBe(`attached ahci:3: 8 MiB, 512-byte blocks, ${rig.dataDir}/disks/sata3.img\n`);
    const nvme = await machine("disk", "attach", "nvme:3", "--size", "4M", "--lba-size", "4096");
    expect(nvme.stdout).toMatch(/^attached nvme:3: 4 MiB, 4096-byte blocks, /);
    expect((await machine("disk", "list")).stdout).toMatch(/\nahci:3\s+8 MiB\s+512\s+0 \(0 B\)/);

    const busy = await machine("disk", "attach", "ahci:3", "--size", "8M");
    expect(busy.code).toBe(1);
    expect(busy.stderr).toMatch(/^error: .*EBUSY/);

    expect((await machine("disk", "detach", "ahci:3")).stdout).toBe(
      "detached ahci:3: 0 unflushed write(s) flushed first\n",
    );
    expect((await machine("disk", "detach", "nvme:3", "--surprise")).stdout).toBe(
      "pulled nvme:3 out: 0 unflushed write(s) lost\n",
    );
    const empty = await machine("disk", "detach", "ahci:3");
    expect(empty.code).toBe(1);
    expect(empty.stderr).toMatch(/ENODEV/);
    expect((await machine("disk", "list")).stdout).not.toMatch(/ahci:3|nvme:3/);
  });

  it("injects, lists and clears faults", async () => {
    const inject = await machine(
      "fault",
      "inject",
      "media-error",
      "ahci:1",
      "--lba",
      "10",
      "--blocks",
      "4",
      "--count",
      "2",
    );
    expect(inject.code).toBe(0);
    const id = /^fault (\d+): media-error on ahci:1\n$/.exec(inject.stdout)?.[1];
    expect(id, inject.stdout).toBeDefined();
    expect((await machine("disk", "list")).stdout).toContain(`#${id} media-error 10+4 x2`);
    const timeout = await machine("fault", "inject", "timeout", "nvme:1", "--lba", "5");
    expect(timeout.stdout).toMatch(/^fault \d+: timeout on nvme:1\n$/);

    expect((await machine("fault", "clear", "ahci:1", "--id", id!)).stdout).toBe("cleared 1 fault(s)\n");
    expect((await machine("fault", "clear", "--id", id!)).stdout).toBe("cleared 0 fault(s)\n");
    const never = await machine("fault", "clear", "--id", "999999");
    expect(never.code).toBe(1);
    expect(never.stderr).toMatch(/^error: NOT_FOUND/);
    expect((await machine("fault", "clear")).stdout).toBe("cleared 1 fault(s)\n");
    expect((await machine("disk", "list")).stdout).not.toContain("#");

    const outside = await machine("fault", "inject", "media-error", "ahci:1", "--lba", "999999999");
    expect(outside.code).toBe(1);
    expect(outside.stderr).toMatch(/^error: \S+ \S+/);

    const phy = await machine("fault", "inject", "phy-error", "ahci:0");
    expect(phy.stdout).toMatch(/^fault \d+: phy-error on ahci:0\n$/);
    const fatal = await machine("fault", "inject", "controller-fatal", "nvme");
    expect(fatal.stdout).toMatch(/^fault \d+: controller-fatal on nvme\n$/);
  });

  it("exits 2 on bad usage and 1 when nothing answers", async () => {
    for (
      const args of [
        ["disk", "attach", "sata1"],
        ["disk", "spin"],
        ["fault", "inject", "gremlins", "ahci:0"],
        ["fault", "inject", "phy-error", "ahci:0", "--lba", "3"],
        ["fault", "inject", "media-error", "ahci"],
        ["fault", "clear", "--id", "x"],
        ["reboot"],
      ]
    ) {
      const result = await machine(...args);
      expect(result.code, args.join(" ")).toBe(2);
      expect(result.stderr).toContain("usage: ./astra machine");
    }
    const nobody = await astra(["machine", "disk", "list", "--endpoint", "127.0.0.1:1"]);
    expect(nobody.code).toBe(1);
    expect(nobody.stderr).toMatch(/^error: UNAVAILABLE/);
  });
});

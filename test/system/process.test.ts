// Process mode: all five services as separate local processes over loopback gRPC, supervised.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BOOT_ORDER, type ServiceName } from "../../lib/config.ts";
import { checkHealth, GrpcTransport } from "../../lib/grpc.ts";
import { client } from "../../lib/rpc.ts";
import { Supervisor } from "../../lib/supervisor.ts";
import { PmmService } from "../../gen/astra/pmm/v1/pmm_pb.ts";

// Ports apart from the defaults, so a system a developer has booted does not collide.
const PORTS: Record<ServiceName, number> = {
  machine: 17711,
  pmm: 17712,
  vmm: 17713,
  storage: 17714,
  sched: 17715,
};

describe("process mode", () => {
  const dataDir = Deno.makeTempDirSync({ prefix: "astra-process-" });
  const supervisor = new Supervisor({
    dataDir,
    ports: PORTS,
    serviceArgs: ["--memory", "256M", "--data-dir", dataDir],
  });

  beforeAll(async () => {
    await supervisor.start();
  }, 120_000);

  afterAll(async () => {
    await supervisor.stop();
    await Deno.remove(dataDir, { recursive: true });
  });

  it("runs all five as separate processes, each SERVING", async () => {
    const pids = new Set(BOOT_ORDER.map((n) => supervisor.pid(n)));
    expect(pids.size).toBe(5);
    expect(pids.has(Deno.pid)).toBe(false);
    for (const name of BOOT_ORDER) {
      expect(await checkHealth(supervisor.address(name))).toBe("SERVING");
    }
  });

  it("serves real memory statistics from pmm, which it learned from the machine process", async () => {
    const transport = new GrpcTransport(supervisor.address("pmm"));
    try {
      const stats = await client(PmmService, transport).getStatistics({});
      expect(stats.pageSize).toBe(4096n);
      // 256 MiB minus firmware ranges, in 4 KiB frames.
      expect(stats.frames!.total).toBeGreaterThan(60_000n);
      expect(stats.frames!.total).toBeLessThanOrEqual(65_536n);
      expect(stats.frames!.free).toBe(stats.frames!.total - stats.frames!.used - stats.frames!.reserved);
    } finally {
      transport.close();
    }
  });

  it("restarts a killed service, which serves again", async () => {
    const before = supervisor.pid("pmm")!;
    Deno.kill(before, "SIGKILL");
    const until = Date.now() + 30_000;
    while (supervisor.pid("pmm") === before && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(supervisor.pid("pmm")).not.toBe(before);
    // Once: the other services lose their connections to pmm and reconnect; none of them goes down.
    expect(supervisor.restarts("pmm")).toBe(1);
    for (const name of BOOT_ORDER.filter((n) => n !== "pmm")) expect(supervisor.restarts(name)).toBe(0);
    await supervisor.waitServing("pmm", 30_000);
    const transport = new GrpcTransport(supervisor.address("pmm"));
    try {
      const count = await client(PmmService, transport).getTotalCount({});
      expect(count.totalFrames).toBeGreaterThan(0n);
    } finally {
      transport.close();
    }
  }, 60_000);
});

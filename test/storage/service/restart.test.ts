// The default volume across restarts of the whole embedded system on one data folder: formatted
// once at the size ASTRA_LFSX_SIZE asks for, mounted again with everything committed before and
// nothing uncommitted, and a boot that cannot mount it fails saying why.
import { afterAll, describe, expect, it } from "vitest";
import { LfsxService } from "../../../gen/astra/storage/v1/lfsx_pb.ts";
import { Code, Errno } from "../../../lib/errors.ts";
import { GrpcTransport } from "../../../lib/grpc.ts";
import { client } from "../../../lib/rpc.ts";
import { bootSystem, bytes, failure, text } from "./helpers.ts";

describe("the default LFSX volume across system restarts", () => {
  const dataDir = Deno.makeTempDirSync({ prefix: "astra-lfsx-restart-" });
  afterAll(() => Deno.remove(dataDir, { recursive: true }));

  it("is formatted on first boot and keeps what was committed, and only that, across restarts", async () => {
    Deno.env.set("ASTRA_LFSX_SIZE", "32M");
    const firstBoot = new Map<string, string>();
    let system = await bootSystem(dataDir, firstBoot);
    expect(firstBoot.get("storage")).toMatch(
      /lfsx volume root on \S+\/lfsx\.img: formatted 8192 blocks, generation 1, recovered 0 transactions/,
    );
    let lfsx = client(LfsxService, system.router.transport());
    for (let t = 0; t < 10; t++) {
      const { transactionId } = await lfsx.begin({ volume: "root" });
      for (let i = 0; i < 10; i++) {
        const key = `restart/${t * 10 + i}`;
        await lfsx.put({ transactionId, key: bytes(key), value: bytes(`value of ${key}`) });
      }
      await lfsx.commit({ transactionId });
    }
    const open = await lfsx.begin({ volume: "root" });
    await lfsx.put({
      transactionId: open.transactionId,
      key: bytes("restart/uncommitted"),
      value: bytes("x"),
    });
    const aborted = await lfsx.begin({ volume: "root" });
    await lfsx.put({
      transactionId: aborted.transactionId,
      key: bytes("restart/aborted"),
      value: bytes("x"),
    });
    await lfsx.abort({ transactionId: aborted.transactionId });
    await system.shutdown();

    const secondBoot = new Map<string, string>();
    system = await bootSystem(dataDir, secondBoot);
    const line = secondBoot.get("storage")!;
    expect(line).not.toContain("formatted");
    expect(line).toMatch(/lfsx volume root on \S+\/lfsx\.img: generation \d+, recovered 0 transactions/);
    const transport = new GrpcTransport(system.gatewayAddress!);
    lfsx = client(LfsxService, transport);
    try {
      for (let i = 0; i < 100; i++) {
        const reply = await lfsx.get({
          scope: { case: "volume", value: "root" },
          key: bytes(`restart/${i}`),
        });
        expect(text(reply.value)).toBe(`value of restart/${i}`);
      }
      for (const key of ["restart/uncommitted", "restart/aborted"]) {
        expect((await lfsx.get({ scope: { case: "volume", value: "root" }, key: bytes(key) })).found).toBe(
          false,
        );
      }
      const stats = (await lfsx.getVolumeStatistics({ volume: "root" })).statistics!;
      expect(stats.tree!.entries).toBe(100n);
      expect(stats.blockCount).toBe(8192n);
      expect(stats.label).toBe("root");
      // The transaction left open at shutdown is gone with the service that held it.
      await failure(lfsx.commit({ transactionId: open.transactionId }), Code.NOT_FOUND, Errno.ENOENT);
    } finally {
      transport.close();
      await system.shutdown();
    }
  });

  it("stops the boot with DATA_LOSS when the default volume cannot be mounted", async () => {
    const file = await Deno.open(`${dataDir}/lfsx.img`, { write: true });
    await file.write(new Uint8Array(8192));
    file.close();
    const err = await failure(bootSystem(dataDir), Code.DATA_LOSS, Errno.EUCLEAN);
    expect(err.message).toContain("no valid LFSX superblock");
  });
});

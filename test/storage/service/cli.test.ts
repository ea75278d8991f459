// The command line: `astra mkfs` and `astra fsck` on image files (clean, damaged, not LFSX at all,
// in use by a running system), and `astra kv` against a running embedded system.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EmbeddedSystem } from "../../../lib/host.ts";
import { astra, bootSystem, damageLiveLeaf, populateImage } from "./helpers.ts";

describe("astra mkfs and astra fsck", () => {
  const dir = Deno.makeTempDirSync({ prefix: "astra-lfsx-cli-" });
  afterAll(() => Deno.remove(dir, { recursive: true }));

  it("formats an image, checks it clean, and names the block of a flipped bit in a node", async () => {
    const image = `${dir}/volume.img`;
    const mkfs = await astra(["mkfs", "--image", image, "--size", "8M", "--label", "data"]);
    expect(mkfs.stderr).toBe("");
    expect(mkfs.code).toBe(0);
    expect(mkfs.stdout).toMatch(
      /volume\.img: LFSX volume [0-9a-f]{32} "data", 2048 blocks of 4096 bytes, journal 256 blocks/,
    );
    expect((await Deno.stat(image)).size).toBe(8 * 1024 * 1024);

    await populateImage(image, 400);
    const clean = await astra(["fsck", "--image", image]);
    expect(clean.code).toBe(0);
    expect(clean.stdout).toMatch(/volume\.img: clean; 400 entries, height 2/);

    const block = await damageLiveLeaf(image);
    const damaged = await astra(["fsck", "--image", image]);
    expect(damaged.code).toBe(1);
    expect(damaged.stdout).toContain(`problem: corrupt block ${block}`);
    expect(damaged.stdout).toMatch(/volume\.img: \d+ problem\(s\)/);

    // Formatting the existing image again starts an empty volume.
    expect((await astra(["mkfs", "--image", image])).code).toBe(0);
    expect((await astra(["fsck", "--image", image])).stdout).toMatch(/clean; 0 entries/);
  });

  it("fails on images that are not LFSX volumes, or not there, and on bad usage", async () => {
    const zeros = `${dir}/zeros.img`;
    await Deno.writeFile(zeros, new Uint8Array(64 * 4096));
    const notLfsx = await astra(["fsck", "--image", zeros]);
    expect(notLfsx.code).toBe(1);
    expect(notLfsx.stdout).toContain("problem: no valid LFSX superblock");
    expect(notLfsx.stdout).toContain("cannot be mounted");

    const missing = await astra(["fsck", "--image", `${dir}/missing.img`]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("NOT_FOUND ENOENT");

    const tooSmall = await astra(["mkfs", "--image", `${dir}/small.img`, "--size", "64K"]);
    expect(tooSmall.code).toBe(1);
    expect(tooSmall.stderr).toContain("ENOSPC");

    expect((await astra(["fsck"])).code).toBe(2);
    expect((await astra(["mkfs", "--size", "1M"])).code).toBe(2);
  });
});

describe("astra kv against a running system", () => {
  let dataDir: string;
  let system: EmbeddedSystem;
  let endpoint: string[];

  beforeAll(async () => {
    dataDir = await Deno.makeTempDir({ prefix: "astra-lfsx-kv-" });
    system = await bootSystem(dataDir);
    endpoint = ["--endpoint", system.gatewayAddress!];
  });

  afterAll(async () => {
    await system.shutdown();
    await Deno.remove(dataDir, { recursive: true });
  });

  it("puts, gets, deletes, scans and loads keys", async () => {
    const put = await astra(["kv", "put", "greeting", "hello world", ...endpoint]);
    expect(put.code).toBe(0);
    expect(put.stdout).toMatch(/^committed greeting \(version \d+\)\n$/);
    const get = await astra(["kv", "get", "greeting", ...endpoint]);
    expect(get).toMatchObject({ code: 0, stdout: "hello world\n" });

    const load = await astra(["kv", "load", "--count", "12", "--prefix", "item/", ...endpoint]);
    expect(load.code).toBe(0);
    const loaded = Array.from({ length: 12 }, (_, i) => `item/${String(i).padStart(8, "0")}`);
    expect(load.stdout).toBe(loaded.map((k) => `committed ${k}\n`).join(""));

    const scan = await astra(["kv", "scan", "item/", "item0", "--limit", "3", ...endpoint]);
    expect(scan.code).toBe(0);
    expect(scan.stdout.trim().split("\n")).toEqual(
      loaded.slice(0, 3).map((k, i) => `${k}\tvalue ${i} of ${k}`),
    );
    const reverse = await astra(["kv", "scan", "--reverse", ...endpoint]);
    const keys = reverse.stdout.trim().split("\n").map((line) => line.split("\t")[0]);
    expect(keys).toEqual(["greeting", ...loaded].sort().reverse());

    const del = await astra(["kv", "del", "greeting", ...endpoint]);
    expect(del.code).toBe(0);
    expect(del.stdout).toMatch(/^deleted greeting \(version \d+\)\n$/);
    const again = await astra(["kv", "del", "greeting", ...endpoint]);
    expect(again).toMatchObject({ code: 1, stderr: "no key greeting\n" });
    expect(await astra(["kv", "get", "greeting", ...endpoint])).toMatchObject({
      code: 1,
      stderr: "no key greeting\n",
    });

    expect((await astra(["kv", "put", "only-key", ...endpoint])).code).toBe(2);
    expect((await astra(["kv", "load", ...endpoint])).code).toBe(1);
  });

  it("refuses to format or check the image of a mounted volume", async () => {
    const image = `${dataDir}/lfsx.img`;
    for (const args of [["mkfs", "--image", image], ["fsck", "--image", image]]) {
      const refused = await astra(args);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain("FAILED_PRECONDITION EBUSY");
      expect(refused.stderr).toContain("in use by another process");
    }
  });
});

// LfsxService over both transports — the in-process router and the gRPC gateway of an embedded
// system — RPC by RPC: volumes (format, mount with its recovery report, checkpoint, rotation,
// statistics, fsck, unmount), transactions (begin to commit, scans in pages, savepoints, versions,
// locks), request validation, and the error mapping: conflicts, deadlock victims and timeouts are
// ABORTED with their errno, corruption is DATA_LOSS naming the block.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  IsolationLevel,
  LfsxService,
  LockMode,
  ScanDirection,
} from "../../../gen/astra/storage/v1/lfsx_pb.ts";
import { Code, Errno } from "../../../lib/errors.ts";
import { GrpcTransport } from "../../../lib/grpc.ts";
import type { EmbeddedSystem } from "../../../lib/host.ts";
import { type Client, client, type Transport } from "../../../lib/rpc.ts";
import { bootSystem, bytes, damageLiveLeaf, failure, keyName, REPO, text } from "./helpers.ts";

type Lfsx = Client<typeof LfsxService>;

const image = (imagePath: string) => ({
  target: { target: { case: "imagePath" as const, value: imagePath } },
});
const inVolume = (volume: string) => ({ scope: { case: "volume" as const, value: volume } });
const inTransaction = (transactionId: bigint) => ({
  scope: { case: "transactionId" as const, value: transactionId },
});

/** Everything a scan returns, page by page (`limit` entries a page), as "key=value". */
async function scanAll(
  lfsx: Lfsx,
  scope: ReturnType<typeof inVolume> | ReturnType<typeof inTransaction>,
  options: { start?: string; end?: string; limit: number; backward?: boolean },
): Promise<{ entries: string[]; pages: number }> {
  const entries: string[] = [];
  let continuation = new Uint8Array();
  let pages = 0;
  do {
    const page = await lfsx.scan({
      ...scope,
      start: bytes(options.start ?? ""),
      end: bytes(options.end ?? ""),
      limit: options.limit,
      direction: options.backward ? ScanDirection.BACKWARD : ScanDirection.FORWARD,
      continuation,
    });
    pages++;
    for (const e of page.entries) entries.push(`${text(e.key)}=${text(e.value)}`);
    continuation = new Uint8Array(page.continuation);
  } while (continuation.length > 0);
  return { entries, pages };
}

async function commitPairs(lfsx: Lfsx, volume: string, pairs: [string, string][]): Promise<bigint> {
  const { transactionId } = await lfsx.begin({ volume });
  for (const [key, value] of pairs) await lfsx.put({ transactionId, key: bytes(key), value: bytes(value) });
  return (await lfsx.commit({ transactionId })).version;
}

for (const kind of ["in-process", "grpc"] as const) {
  describe(`LfsxService over ${kind === "grpc" ? "the gRPC gateway" : "the in-process router"}`, () => {
    let dataDir: string;
    let system: EmbeddedSystem;
    let transport: Transport;
    let lfsx: Lfsx;

    beforeAll(async () => {
      dataDir = await Deno.makeTempDir({ prefix: "astra-lfsx-service-" });
      system = await bootSystem(dataDir);
      transport = kind === "grpc" ? new GrpcTransport(system.gatewayAddress!) : system.router.transport();
      lfsx = client(LfsxService, transport);
    });

    afterAll(async () => {
      transport.close();
      await system.shutdown();
      await Deno.remove(dataDir, { recursive: true });
    });

    it("formats, mounts, checkpoints, rotates, reports, checks and unmounts an image volume", async () => {
      const format = await lfsx.format({ ...image("a.img"), createBlocks: 4096n, label: "alpha" });
      expect(format).toMatchObject({
        label: "alpha",
        blockCount: 4096n,
        journalBlocks: 512,
        firstDataBlock: 514n,
      });
      const mount = await lfsx.mount({ ...image("a.img"), volume: "a", lockTimeoutMs: 5000 });
      expect(mount).toMatchObject({ volume: "a", uuid: format.uuid, label: "alpha" });
      expect(mount.recovery).toMatchObject({ generation: 1n, recoveredTransactions: 0n, journalTail: "" });

      // A mounted image can be neither formatted nor mounted twice; a name is taken once.
      await failure(lfsx.format({ ...image(`${dataDir}/a.img`) }), Code.FAILED_PRECONDITION, Errno.EBUSY);
      await failure(lfsx.mount({ ...image("./a.img"), volume: "b" }), Code.FAILED_PRECONDITION, Errno.EBUSY);
      await lfsx.format({ ...image("b.img"), createBlocks: 1024n });
      await failure(lfsx.mount({ ...image("b.img"), volume: "a" }), Code.ALREADY_EXISTS, Errno.EEXIST);

      for (let i = 0; i < 5; i++) await commitPairs(lfsx, "a", [[`k${i}`, `v${i}`], [`j${i}`, "x"]]);
      let stats = (await lfsx.getVolumeStatistics({ volume: "a" })).statistics!;
      expect(stats).toMatchObject({ volume: "a", uuid: format.uuid, label: "alpha", blockSize: 4096 });
      expect(stats.tree!.entries).toBe(10n);
      expect(stats.journal!.commits).toBe(5n);
      expect(stats.transactions!.committed).toBe(5n);
      expect(stats.transactions!.versions!.visibleVersion).toBe(5n);
      expect(stats.space!.dataBlocks).toBe(4096n - 514n);

      const checkpoint = (await lfsx.checkpoint({ volume: "a" })).checkpoint!;
      expect(checkpoint.generation).toBe(stats.generation + 1n);
      expect(checkpoint.nodesWritten).toBeGreaterThan(0n);
      expect(checkpoint.journalBlocksReleased).toBeGreaterThan(0n);
      const rotated = (await lfsx.rotateJournal({ volume: "a" })).checkpoint!;
      expect(rotated.generation).toBe(checkpoint.generation + 1n);
      stats = (await lfsx.getVolumeStatistics({ volume: "a" })).statistics!;
      expect(stats.generation).toBe(rotated.generation);
      expect(stats.checkpoints!.count).toBeGreaterThanOrEqual(3n);

      const check = await lfsx.fsck({ subject: { case: "volume", value: "a" } });
      expect(check).toMatchObject({ ok: true, problems: [], entries: 10n, height: 1, leaves: 1n });

      // Unmount aborts what is open; the transaction says so afterwards.
      const open = await lfsx.begin({ volume: "a" });
      await lfsx.put({ transactionId: open.transactionId, key: bytes("k0"), value: bytes("lost") });
      expect(await lfsx.unmount({ volume: "a" })).toMatchObject({ transactionsAborted: 1n });
      const gone = await failure(
        lfsx.commit({ transactionId: open.transactionId }),
        Code.ABORTED,
        Errno.ECANCELED,
      );
      expect(gone.message).toContain("volume a was unmounted");
      await failure(lfsx.unmount({ volume: "a" }), Code.NOT_FOUND, Errno.ENODEV);
      await failure(lfsx.getVolumeStatistics({ volume: "a" }), Code.NOT_FOUND, Errno.ENODEV);

      // Offline check of the unmounted image, then a read-only mount refuses writes.
      const offline = await lfsx.fsck({ subject: { case: "target", value: image("a.img").target } });
      expect(offline).toMatchObject({ ok: true, entries: 10n });
      const readOnly = await lfsx.mount({ ...image("a.img"), volume: "a", readOnly: true });
      expect(readOnly.recovery!.recoveredTransactions).toBe(0n);
      expect(text((await lfsx.get({ ...inVolume("a"), key: bytes("k3") })).value)).toBe("v3");
      const reader = await lfsx.begin({ volume: "a" });
      await failure(
        lfsx.put({ transactionId: reader.transactionId, key: bytes("k"), value: bytes("v") }),
        Code.FAILED_PRECONDITION,
        Errno.EROFS,
      );
      await failure(lfsx.checkpoint({ volume: "a" }), Code.FAILED_PRECONDITION, Errno.EROFS);
      expect((await lfsx.commit({ transactionId: reader.transactionId })).readOnly).toBe(true);
      await lfsx.unmount({ volume: "a" });
    });

    it("runs transactions: reads, writes, deletes, savepoints, versions and commits", async () => {
      const t = await lfsx.begin({ volume: "root", isolation: IsolationLevel.REPEATABLE_READ });
      expect(t.isolation).toBe(IsolationLevel.REPEATABLE_READ);
      expect(t.effectiveIsolation).toBe(IsolationLevel.REPEATABLE_READ);
      const id = t.transactionId;
      await lfsx.put({ transactionId: id, key: bytes("tx/a"), value: bytes("1") });
      await lfsx.put({ transactionId: id, key: bytes("tx/b"), value: bytes("2") });
      expect(text((await lfsx.get({ ...inTransaction(id), key: bytes("tx/a") })).value)).toBe("1");
      // Not visible outside before the commit.
      expect((await lfsx.get({ ...inVolume("root"), key: bytes("tx/a") })).found).toBe(false);

      const savepoint = (await lfsx.savepoint({ transactionId: id })).savepoint;
      await lfsx.put({ transactionId: id, key: bytes("tx/c"), value: bytes("3") });
      expect((await lfsx.delete({ transactionId: id, key: bytes("tx/a") })).found).toBe(true);
      expect((await lfsx.delete({ transactionId: id, key: bytes("tx/none") })).found).toBe(false);
      await lfsx.rollbackToSavepoint({ transactionId: id, savepoint });
      await failure(
        lfsx.rollbackToSavepoint({ transactionId: id, savepoint: savepoint + 5 }),
        Code.NOT_FOUND,
        Errno.ENOENT,
      );
      expect((await scanAll(lfsx, inTransaction(id), { start: "tx/", end: "tx0", limit: 10 })).entries)
        .toEqual(["tx/a=1", "tx/b=2"]);
      const committed = await lfsx.commit({ transactionId: id });
      expect(committed.readOnly).toBe(false);
      expect(committed.version).toBeGreaterThan(0n);

      // The ended transaction answers what ended it.
      await failure(lfsx.commit({ transactionId: id }), Code.FAILED_PRECONDITION);
      await failure(lfsx.abort({ transactionId: id }), Code.FAILED_PRECONDITION);
      await failure(
        lfsx.put({ transactionId: id, key: bytes("x"), value: bytes("y") }),
        Code.FAILED_PRECONDITION,
      );

      // GetVersion reads the committed history a snapshot can see.
      const reader = await lfsx.begin({ volume: "root", isolation: IsolationLevel.REPEATABLE_READ });
      expect(text((await lfsx.get({ ...inTransaction(reader.transactionId), key: bytes("tx/b") })).value))
        .toBe("2");
      await commitPairs(lfsx, "root", [["tx/b", "2 again"]]);
      const atSnapshot = await lfsx.getVersion({ transactionId: reader.transactionId, key: bytes("tx/b") });
      expect(atSnapshot).toMatchObject({ found: true, readAt: committed.version });
      expect(text(atSnapshot.value)).toBe("2");
      await failure(
        lfsx.getVersion({
          transactionId: reader.transactionId,
          key: bytes("tx/b"),
          version: committed.version + 10n,
        }),
        Code.INVALID_ARGUMENT,
      );
      const readOnly = await lfsx.commit({ transactionId: reader.transactionId });
      expect(readOnly).toMatchObject({ readOnly: true, version: committed.version });
      expect(text((await lfsx.get({ ...inVolume("root"), key: bytes("tx/b") })).value)).toBe("2 again");

      // Aborting twice succeeds; the aborted transaction's writes never appear.
      const dropped = await lfsx.begin({ volume: "root", isolation: IsolationLevel.READ_UNCOMMITTED });
      expect(dropped.effectiveIsolation).toBe(IsolationLevel.READ_COMMITTED);
      await lfsx.put({ transactionId: dropped.transactionId, key: bytes("tx/d"), value: bytes("4") });
      await lfsx.abort({ transactionId: dropped.transactionId });
      await lfsx.abort({ transactionId: dropped.transactionId });
      await failure(lfsx.get({ ...inTransaction(dropped.transactionId), key: bytes("tx/a") }), Code.ABORTED);
      expect((await lfsx.get({ ...inVolume("root"), key: bytes("tx/d") })).found).toBe(false);
      const unspecified = await lfsx.begin({ volume: "root" });
      expect(unspecified.effectiveIsolation).toBe(IsolationLevel.READ_COMMITTED);
      await lfsx.abort({ transactionId: unspecified.transactionId });
    });

    it("scans ranges in pages, both ways, and cuts pages at a few MiB", async () => {
      const pairs: [string, string][] = Array.from({ length: 25 }, (_, i) => [`scan/${i + 10}`, `${i + 10}`]);
      await commitPairs(lfsx, "root", pairs);
      const forward = await scanAll(lfsx, inVolume("root"), { start: "scan/", end: "scan0", limit: 7 });
      expect(forward.entries).toEqual(pairs.map(([k, v]) => `${k}=${v}`));
      expect(forward.pages).toBe(4);
      const backward = await scanAll(lfsx, inVolume("root"), {
        start: "scan/15",
        end: "scan/30",
        limit: 4,
        backward: true,
      });
      expect(backward.entries).toEqual(pairs.slice(5, 20).reverse().map(([k, v]) => `${k}=${v}`));
      const exact = await lfsx.scan({
        ...inVolume("root"),
        start: bytes("scan/"),
        end: bytes("scan0"),
        limit: 25,
      });
      expect(exact.entries.length).toBe(25);
      expect(text(exact.continuation)).toBe("scan/34");

      // Three values of 3 MiB: a page of limit 10 carries one at a time.
      const big = "B".repeat(3 * 1024 * 1024);
      await commitPairs(lfsx, "root", [["big/1", big], ["big/2", big], ["big/3", big]]);
      const t = await lfsx.begin({ volume: "root", isolation: IsolationLevel.REPEATABLE_READ });
      const pages = await scanAll(lfsx, inTransaction(t.transactionId), {
        start: "big/",
        end: "big0",
        limit: 10,
      });
      expect(pages.entries.map((e) => e.slice(0, 6))).toEqual(["big/1=", "big/2=", "big/3="]);
      expect(pages.pages).toBe(3);
      await lfsx.commit({ transactionId: t.transactionId });
    });

    it("validates every request with a precise status", async () => {
      await failure(lfsx.begin({}), Code.INVALID_ARGUMENT, Errno.EINVAL);
      await failure(lfsx.begin({ volume: "no/such" }), Code.INVALID_ARGUMENT, Errno.EINVAL);
      await failure(lfsx.begin({ volume: "nosuch" }), Code.NOT_FOUND, Errno.ENODEV);
      await failure(lfsx.begin({ volume: "root", isolation: 9 as IsolationLevel }), Code.INVALID_ARGUMENT);
      await failure(lfsx.put({ key: bytes("k") }), Code.INVALID_ARGUMENT);
      await failure(lfsx.put({ transactionId: 12345n, key: bytes("k") }), Code.NOT_FOUND, Errno.ENOENT);
      await failure(lfsx.get({ key: bytes("k") }), Code.INVALID_ARGUMENT);
      await failure(lfsx.get({ ...inVolume("root"), key: new Uint8Array() }), Code.INVALID_ARGUMENT);
      await failure(lfsx.get({ ...inVolume("root"), key: new Uint8Array(1025) }), Code.INVALID_ARGUMENT);
      await failure(lfsx.scan({ ...inVolume("root"), limit: 0 }), Code.INVALID_ARGUMENT);
      await failure(
        lfsx.scan({ ...inVolume("root"), limit: 1, direction: 7 as ScanDirection }),
        Code.INVALID_ARGUMENT,
      );
      await failure(
        lfsx.scan({ ...inVolume("root"), limit: 1, start: bytes("b"), end: bytes("a") }),
        Code.INVALID_ARGUMENT,
      );
      await failure(lfsx.fsck({}), Code.INVALID_ARGUMENT);
      await failure(lfsx.format({}), Code.INVALID_ARGUMENT);
      await failure(lfsx.mount({ volume: "x" }), Code.INVALID_ARGUMENT);
      await failure(lfsx.mount({ ...image("missing.img"), volume: "x" }), Code.NOT_FOUND, Errno.ENOENT);
      await failure(
        lfsx.mount({ target: { target: { case: "device", value: "nvme9n1" } }, volume: "x" }),
        Code.NOT_FOUND,
        Errno.ENODEV,
      );
      await failure(
        lfsx.format({ target: { target: { case: "device", value: "nvme9n1" } }, createBlocks: 10n }),
        Code.INVALID_ARGUMENT,
      );
      await failure(
        lfsx.format({ ...image("tiny.img"), createBlocks: 8n }),
        Code.INVALID_ARGUMENT,
        Errno.ENOSPC,
      );
      await failure(lfsx.unmount({}), Code.INVALID_ARGUMENT);
      const t = await lfsx.begin({ volume: "root" });
      await failure(lfsx.lock({ transactionId: t.transactionId, key: bytes("k") }), Code.INVALID_ARGUMENT);
      await failure(
        lfsx.getVersion({ transactionId: t.transactionId, key: bytes("k"), version: 1n << 60n }),
        Code.INVALID_ARGUMENT,
      );
      await failure(lfsx.rollbackToSavepoint({ transactionId: t.transactionId }), Code.INVALID_ARGUMENT);
      // A failed statement leaves the transaction usable.
      await lfsx.put({ transactionId: t.transactionId, key: bytes("valid/after"), value: bytes("ok") });
      await lfsx.commit({ transactionId: t.transactionId });
      expect((await lfsx.get({ ...inVolume("root"), key: bytes("valid/after") })).found).toBe(true);
    });

    it("hands out transaction ids unique across volumes", async () => {
      await lfsx.format({ ...image("ids.img"), createBlocks: 1024n });
      await lfsx.mount({ ...image("ids.img"), volume: "ids" });
      const ids = new Set<bigint>();
      for (let i = 0; i < 5; i++) {
        for (const volume of ["root", "ids"]) ids.add((await lfsx.begin({ volume })).transactionId);
      }
      expect(ids.size).toBe(10);
      expect((await lfsx.unmount({ volume: "ids" })).transactionsAborted).toBe(5n);
    });

    it("aborts the later writer of a conflict with ABORTED/EAGAIN", async () => {
      await commitPairs(lfsx, "root", [["conflict", "0"]]);
      const first = await lfsx.begin({ volume: "root", isolation: IsolationLevel.REPEATABLE_READ });
      const second = await lfsx.begin({ volume: "root", isolation: IsolationLevel.REPEATABLE_READ });
      await lfsx.get({ ...inTransaction(second.transactionId), key: bytes("conflict") });
      await lfsx.put({ transactionId: first.transactionId, key: bytes("conflict"), value: bytes("1") });
      await lfsx.commit({ transactionId: first.transactionId });
      const err = await failure(
        lfsx.put({ transactionId: second.transactionId, key: bytes("conflict"), value: bytes("2") }),
        Code.ABORTED,
        Errno.EAGAIN,
      );
      expect(err.message).toContain(`transaction ${second.transactionId}`);
      expect(err.message).toContain("could not serialize access");
      expect(err.detail.facts.transaction_id).toBe(String(second.transactionId));
      // Aborted means aborted: every later request says so, and Abort succeeds.
      await failure(lfsx.commit({ transactionId: second.transactionId }), Code.ABORTED, Errno.EAGAIN);
      await lfsx.abort({ transactionId: second.transactionId });
      expect(text((await lfsx.get({ ...inVolume("root"), key: bytes("conflict") })).value)).toBe("1");
    });

    it("aborts a deadlock victim with ABORTED/EDEADLK and lets the other proceed", async () => {
      const older = await lfsx.begin({ volume: "root" });
      const younger = await lfsx.begin({ volume: "root" });
      await lfsx.put({ transactionId: older.transactionId, key: bytes("dl/a"), value: bytes("older") });
      await lfsx.put({ transactionId: younger.transactionId, key: bytes("dl/b"), value: bytes("younger") });
      const waiting = lfsx.put({
        transactionId: older.transactionId,
        key: bytes("dl/b"),
        value: bytes("older"),
      });
      // The wait shows in the lock graph under the service's ids.
      let graph = await lfsx.getLockGraph({ volume: "root" });
      for (let i = 0; i < 50 && graph.waits.length === 0; i++) {
        await new Promise((r) => setTimeout(r, 20));
        graph = await lfsx.getLockGraph({ volume: "root" });
      }
      expect(graph.waits).toHaveLength(1);
      expect(graph.waits[0]).toMatchObject({
        transactionId: older.transactionId,
        mode: LockMode.EXCLUSIVE,
        waitsFor: [younger.transactionId],
      });
      expect(text(graph.waits[0].key)).toBe("dl/b");
      expect(graph.cycles).toEqual([]);
      const victim = await failure(
        lfsx.put({ transactionId: younger.transactionId, key: bytes("dl/a"), value: bytes("younger") }),
        Code.ABORTED,
        Errno.EDEADLK,
      );
      expect(victim.message).toContain("deadlock detected");
      await waiting;
      await lfsx.commit({ transactionId: older.transactionId });
      expect(text((await lfsx.get({ ...inVolume("root"), key: bytes("dl/b") })).value)).toBe("older");
      const stats = (await lfsx.getVolumeStatistics({ volume: "root" })).statistics!;
      expect(stats.transactions!.deadlockVictims).toBeGreaterThanOrEqual(1n);
    });

    it("times out lock waits and idle transactions with ABORTED/ETIMEDOUT", async () => {
      const holder = await lfsx.begin({ volume: "root" });
      await lfsx.lock({ transactionId: holder.transactionId, key: bytes("held"), mode: LockMode.EXCLUSIVE });
      const waiter = await lfsx.begin({ volume: "root", lockTimeoutMs: 100 });
      const err = await failure(
        lfsx.put({ transactionId: waiter.transactionId, key: bytes("held"), value: bytes("x") }),
        Code.ABORTED,
        Errno.ETIMEDOUT,
      );
      expect(err.message).toContain("lock wait timeout");
      // Shared locks do not conflict with each other.
      const sharer = await lfsx.begin({ volume: "root" });
      await lfsx.lock({ transactionId: sharer.transactionId, key: bytes("shared"), mode: LockMode.SHARED });
      await lfsx.lock({ transactionId: holder.transactionId, key: bytes("shared"), mode: LockMode.SHARED });
      await lfsx.abort({ transactionId: sharer.transactionId });
      await lfsx.commit({ transactionId: holder.transactionId });

      const idle = await lfsx.begin({ volume: "root", idleTimeoutMs: 150 });
      await lfsx.put({ transactionId: idle.transactionId, key: bytes("idle"), value: bytes("x") });
      await new Promise((r) => setTimeout(r, 400));
      const timedOut = await failure(
        lfsx.commit({ transactionId: idle.transactionId }),
        Code.ABORTED,
        Errno.ETIMEDOUT,
      );
      expect(timedOut.message).toContain("idle");
      expect((await lfsx.get({ ...inVolume("root"), key: bytes("idle") })).found).toBe(false);

      // A volume's default idle timeout applies to transactions that set none.
      await lfsx.format({ ...image("idle.img"), createBlocks: 1024n });
      await lfsx.mount({ ...image("idle.img"), volume: "idle", idleTimeoutMs: 150 });
      const defaulted = await lfsx.begin({ volume: "idle" });
      await new Promise((r) => setTimeout(r, 400));
      await failure(
        lfsx.savepoint({ transactionId: defaulted.transactionId }),
        Code.ABORTED,
        Errno.ETIMEDOUT,
      );
      await lfsx.unmount({ volume: "idle" });
    });

    it("reports a damaged node as DATA_LOSS naming its block, in reads and in fsck", async () => {
      await lfsx.format({ ...image("damaged.img"), createBlocks: 2048n });
      await lfsx.mount({ ...image("damaged.img"), volume: "damaged" });
      for (let first = 0; first < 400; first += 40) {
        const pairs = Array.from(
          { length: 40 },
          (_, i): [string, string] => [keyName(first + i), "v".repeat(80)],
        );
        await commitPairs(lfsx, "damaged", pairs);
      }
      await lfsx.unmount({ volume: "damaged" });
      const block = await damageLiveLeaf(`${dataDir}/damaged.img`);

      const offline = await lfsx.fsck({ subject: { case: "target", value: image("damaged.img").target } });
      expect(offline.ok).toBe(false);
      expect(offline.problems.join("\n")).toContain(`corrupt block ${block}`);

      await lfsx.mount({ ...image("damaged.img"), volume: "damaged" });
      let lost = 0;
      for (let i = 0; i < 400; i++) {
        try {
          expect(text((await lfsx.get({ ...inVolume("damaged"), key: bytes(keyName(i)) })).value)).toBe(
            "v".repeat(80),
          );
        } catch (e) {
          const err = await failure(Promise.reject(e), Code.DATA_LOSS, Errno.EUCLEAN);
          expect(err.message).toContain(`corrupt block ${block}`);
          lost++;
        }
      }
      expect(lost).toBeGreaterThan(0);
      expect(lost).toBeLessThan(100);
      const t = await lfsx.begin({ volume: "damaged" });
      const scan = await failure(
        lfsx.scan({ ...inTransaction(t.transactionId), limit: 1000 }),
        Code.DATA_LOSS,
        Errno.EUCLEAN,
      );
      expect(scan.message).toContain(`corrupt block ${block}`);
      await lfsx.abort({ transactionId: t.transactionId });
      const mounted = await lfsx.fsck({ subject: { case: "volume", value: "damaged" } });
      expect(mounted.ok).toBe(false);
      expect(mounted.problems.join("\n")).toContain(`corrupt block ${block}`);
      await lfsx.unmount({ volume: "damaged" });

      // With both superblock copies gone, the volume cannot be mounted at all.
      const file = await Deno.open(`${dataDir}/damaged.img`, { write: true });
      await file.write(new Uint8Array(8192));
      file.close();
      const unmountable = await failure(
        lfsx.mount({ ...image("damaged.img"), volume: "damaged" }),
        Code.DATA_LOSS,
        Errno.EUCLEAN,
      );
      expect(unmountable.message).toContain("no valid LFSX superblock");
      const check = await lfsx.fsck({ subject: { case: "target", value: image("damaged.img").target } });
      expect(check.ok).toBe(false);
      expect(check.problems[0]).toContain("cannot be mounted");
    });

    if (kind === "grpc") {
      it("aborts the transactions of a client whose connection closed, releasing their locks", async () => {
        const child = new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "-A",
            `${REPO}/test/storage/service/transaction_client.ts`,
            system.gatewayAddress!,
            "orphan",
          ],
          cwd: REPO,
          stdout: "piped",
          stderr: "inherit",
        }).spawn();
        const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
        let printed = "";
        while (!printed.includes("\n")) {
          const { value, done } = await reader.read();
          if (done) break;
          printed += value;
        }
        const orphan = BigInt(printed.trim());
        child.kill("SIGKILL");
        await child.status;
        reader.releaseLock();
        // Its key's lock is given back well before a 10 s lock wait would run out.
        const started = Date.now();
        const next = await lfsx.begin({ volume: "root", lockTimeoutMs: 8000 });
        await lfsx.put({ transactionId: next.transactionId, key: bytes("orphan"), value: bytes("taken") });
        await lfsx.commit({ transactionId: next.transactionId });
        expect(Date.now() - started).toBeLessThan(5000);
        const err = await failure(lfsx.commit({ transactionId: orphan }), Code.ABORTED, Errno.ECANCELED);
        expect(err.message).toContain("connection");
        expect(text((await lfsx.get({ ...inVolume("root"), key: bytes("orphan") })).value)).toBe("taken");
      });
    }
  });
}

import { describe, expect, it } from "vitest";
import { AstraError, Code, Errno } from "../../lib/errors.ts";
import { LockMode } from "../../services/storage/lfsx/locks.ts";
import { bytes, formattedVolume, text } from "./helpers.ts";

const pause = (ms = 5) => new Promise((resolve) => setTimeout(resolve, ms));

async function outcome(promise: Promise<unknown>): Promise<"ok" | Errno> {
  try {
    await promise;
    return "ok";
  } catch (err) {
    if (err instanceof AstraError && err.code === Code.ABORTED) return err.errno;
    throw err;
  }
}

describe("lock manager and deadlocks", () => {
  it("breaks a two-transaction deadlock by aborting the younger; the other proceeds", async () => {
    const { volume } = await formattedVolume(1024);
    const t1 = volume.begin().id;
    const t2 = volume.begin().id;
    await volume.put(t1, bytes("a"), bytes("t1"));
    await volume.put(t2, bytes("b"), bytes("t2"));
    const t1Waits = outcome(volume.put(t1, bytes("b"), bytes("t1")));
    await pause();
    expect(volume.lockGraph().edges.map((e) => [e.waiter, text(e.key), e.waitsFor])).toEqual([[t1, "b", [
      t2,
    ]]]);
    expect(await outcome(volume.put(t2, bytes("a"), bytes("t2")))).toBe(Errno.EDEADLK);
    expect(await t1Waits).toBe("ok");
    // The victim is gone: its next statement says why.
    await expect(volume.get(t2, bytes("a"))).rejects.toThrow(/deadlock/);
    await volume.commit(t1);
    expect(text(await volume.read(bytes("b")))).toBe("t1");
    expect(volume.statistics().transactions.deadlockVictims).toBe(1);
    expect(volume.lockGraph()).toEqual({ edges: [], cycles: [] });
  });

  it("breaks a three-transaction cycle and lets the survivors finish in order", async () => {
    const { volume } = await formattedVolume(1024);
    const [t1, t2, t3] = [volume.begin().id, volume.begin().id, volume.begin().id];
    await volume.put(t1, bytes("a"), bytes("1"));
    await volume.put(t2, bytes("b"), bytes("2"));
    await volume.put(t3, bytes("c"), bytes("3"));
    const w1 = outcome(volume.put(t1, bytes("b"), bytes("1")));
    const w2 = outcome(volume.put(t2, bytes("c"), bytes("2")));
    await pause();
    expect(volume.lockGraph().edges).toHaveLength(2);
    expect(await outcome(volume.put(t3, bytes("a"), bytes("3")))).toBe(Errno.EDEADLK);
    expect(await w2).toBe("ok");
    await volume.commit(t2);
    expect(await w1).toBe("ok");
    await volume.commit(t1);
    expect([
      text(await volume.read(bytes("a"))),
      text(await volume.read(bytes("b"))),
      text(await volume.read(bytes("c"))),
    ])
      .toEqual(["1", "1", "2"]);
  });

  it("chooses the transaction that has done the least work, even when it is the older one", async () => {
    const { volume } = await formattedVolume(1024);
    const older = volume.begin().id;
    const younger = volume.begin().id;
    await volume.put(older, bytes("a"), bytes("o"));
    for (const key of ["b", "x", "y", "z"]) await volume.put(younger, bytes(key), bytes("y"));
    const olderWaits = outcome(volume.put(older, bytes("b"), bytes("o")));
    await pause();
    const youngerWaits = outcome(volume.put(younger, bytes("a"), bytes("y")));
    expect(await olderWaits).toBe(Errno.EDEADLK);
    expect(await youngerWaits).toBe("ok");
    await volume.commit(younger);
  });

  it("gives up a lock wait after the transaction's lock timeout", async () => {
    const { volume } = await formattedVolume(1024);
    const holder = volume.begin().id;
    await volume.put(holder, bytes("k"), bytes("h"));
    const waiter = volume.begin({ lockTimeoutMs: 30 }).id;
    const started = performance.now();
    expect(await outcome(volume.put(waiter, bytes("k"), bytes("w")))).toBe(Errno.ETIMEDOUT);
    expect(performance.now() - started).toBeGreaterThanOrEqual(25);
    await expect(volume.commit(waiter)).rejects.toMatchObject({ code: Code.ABORTED });
    await volume.commit(holder);
    expect(volume.statistics().transactions.lockTimeouts).toBe(1);
  });

  it("shares shared locks, queues an exclusive request behind them and upgrades a sole holder", async () => {
    const { volume } = await formattedVolume(1024);
    const [r1, r2, w] = [volume.begin().id, volume.begin().id, volume.begin().id];
    await volume.lock(r1, bytes("k"), LockMode.Shared);
    await volume.lock(r2, bytes("k"), LockMode.Shared);
    let written = false;
    const write = volume.put(w, bytes("k"), bytes("w")).then(() => (written = true));
    await pause();
    expect(written).toBe(false);
    await volume.commit(r1);
    await pause();
    expect(written).toBe(false);
    await volume.commit(r2);
    await write;
    await volume.commit(w);
    const solo = volume.begin().id;
    await volume.lock(solo, bytes("k"), LockMode.Shared);
    await volume.lock(solo, bytes("k"), LockMode.Exclusive);
    await volume.put(solo, bytes("k"), bytes("solo"));
    await volume.commit(solo);
    expect(text(await volume.read(bytes("k")))).toBe("solo");
  });

  it("aborts a transaction left idle and releases what it held", async () => {
    const { volume } = await formattedVolume(1024);
    const idle = volume.begin({ idleTimeoutMs: 20 }).id;
    await volume.put(idle, bytes("k"), bytes("idle"));
    await pause(60);
    await expect(volume.get(idle, bytes("k"))).rejects.toThrow(/idle/);
    const other = volume.begin({ lockTimeoutMs: 50 }).id;
    await volume.put(other, bytes("k"), bytes("other"));
    await volume.commit(other);
    expect(volume.statistics().transactions.idleTimeouts).toBe(1);
  });

  it("stops a lock wait when its transaction is aborted", async () => {
    const { volume } = await formattedVolume(1024);
    const holder = volume.begin().id;
    await volume.put(holder, bytes("k"), bytes("h"));
    const waiter = volume.begin().id;
    const waiting = outcome(volume.put(waiter, bytes("k"), bytes("w")));
    await pause();
    volume.abort(waiter);
    expect(await waiting).toBe(Errno.ECANCELED);
    // Aborting twice is fine; committing an aborted transaction is not.
    volume.abort(waiter);
    await expect(volume.commit(waiter)).rejects.toMatchObject({ code: Code.ABORTED });
    await volume.commit(holder);
  });
});

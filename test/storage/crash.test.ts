// Crash tests: a random workload runs on a device with a volatile write-back cache; at every
// flush boundary, at random writes in between and right after acknowledgements, we keep what a
// power cut at that instant would leave on the media (nothing of the unflushed writes, a random prefix with a torn sector,
// or a random subset as a reordering drive would). Each image is then mounted. The recovered
// volume must validate, and its contents must be exactly the state after the first P commits,
// where P is at least every commit acknowledged before the cut and at most every commit
// requested by then: every acknowledged commit is present, an in-flight one is all or nothing,
// and nothing of an aborted transaction is ever visible.
import { describe, expect, it } from "vitest";
import { AstraError, Code } from "../../lib/errors.ts";
import { type DiskImage, MemoryBlockDevice } from "../../services/storage/lfsx/blockdev.ts";
import { Volume } from "../../services/storage/lfsx/volume.ts";
import { bytes, dump } from "./helpers.ts";

const BLOCKS = 1536;
const JOURNAL_BLOCKS = 40;
const CACHE_NODES = 24;

function mulberry32(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Capture {
  image: DiskImage;
  /** Highest commit version acknowledged before the cut. */
  acknowledged: number;
  /** Highest commit version that could have been assigned before the cut. */
  possible: number;
  label: string;
}

interface Run {
  captures: Capture[];
  /** Contents after each commit version, index = version. */
  states: Map<string, string>[];
  commits: number;
  aborts: number;
  checkpoints: number;
}

async function runWorkload(seed: number, rounds: number): Promise<Run> {
  const random = mulberry32(seed);
  // Cuts draw from their own stream, so that how many are taken does not change the workload.
  const cutRandom = mulberry32(seed * 7919);
  // Flushes take time, as on real media: acknowledgements that ran ahead of durability would show.
  const device = new MemoryBlockDevice(BLOCKS, { flushDelayMs: 1 });
  await Volume.format(device, { journalBlocks: JOURNAL_BLOCKS });
  const volume = await Volume.mount(device, { cacheNodes: CACHE_NODES });
  const committed: { version: number; writes: [string, string | null][] }[] = [];
  const captures: Capture[] = [];
  let acknowledged = 0;
  let inFlight = 0;
  let aborts = 0;
  const capture = (label: string, options: Parameters<MemoryBlockDevice["crashImage"]>[0]) =>
    captures.push({
      image: device.crashImage({ ...options, random: cutRandom }),
      acknowledged,
      possible: acknowledged + inFlight,
      label,
    });
  device.onFlush = () => {
    capture("before flush", { count: 0 });
    capture("prefix, torn", { order: "prefix", tear: true });
    capture("subset, torn", { order: "subset", tear: true });
  };
  device.onWrite = () => {
    if (cutRandom() < 0.05) capture("mid-write", { order: "prefix", tear: cutRandom() < 0.5 });
  };

  for (let round = 0; round < rounds; round++) {
    const parallel = 1 + Math.floor(random() * 4);
    await Promise.all(Array.from({ length: parallel }, async (_, lane) => {
      const txn = volume.begin();
      const writes: [string, string | null][] = [];
      try {
        const count = 1 + Math.floor(random() * 5);
        for (let i = 0; i < count; i++) {
          const key = `k${Math.floor(random() * 40)}`;
          if (random() < 0.25) {
            await volume.delete(txn.id, bytes(key));
            writes.push([key, null]);
          } else {
            const size = random() < 0.1 ? 1200 + Math.floor(random() * 6000) : Math.floor(random() * 120);
            const value = `r${round}.${lane}.${i}:` + "x".repeat(size);
            await volume.put(txn.id, bytes(key), bytes(value));
            writes.push([key, value]);
          }
        }
        if (random() < 0.15) {
          volume.abort(txn.id);
          aborts++;
          return;
        }
        inFlight++;
        try {
          const result = await volume.commit(txn.id);
          if (!result.readOnly) {
            committed.push({ version: result.version, writes });
            acknowledged = Math.max(acknowledged, result.version);
            // The moment a commit is acknowledged it must survive losing everything unflushed.
            if (cutRandom() < 0.5) capture("just acknowledged", { count: 0 });
          }
        } finally {
          inFlight--;
        }
      } catch (err) {
        // A deadlock victim is aborted by the engine: like an explicit abort, nothing of it may survive.
        if (!(err instanceof AstraError) || err.code !== Code.ABORTED) throw err;
        aborts++;
      }
    }));
    if (random() < 0.08) await volume.checkpoint();
  }
  device.onFlush = undefined;
  device.onWrite = undefined;
  // Explicit ones, and those the filling journal forced.
  const checkpoints = volume.statistics().checkpoints.count;
  await volume.unmount();

  committed.sort((a, b) => a.version - b.version);
  const states: Map<string, string>[] = [new Map()];
  for (const [i, commit] of committed.entries()) {
    expect(commit.version).toBe(i + 1);
    const next = new Map(states[i]);
    for (const [key, value] of commit.writes) {
      if (value === null) next.delete(key);
      else next.set(key, value);
    }
    states.push(next);
  }
  return { captures, states, commits: committed.length, aborts, checkpoints };
}

/** How the cuts of a run came out, to show the workload reached both outcomes of an in-flight commit. */
interface Outcomes {
  inFlightKept: number;
  inFlightLost: number;
}

async function verify(run: Run, capture: Capture, outcomes: Outcomes): Promise<void> {
  const device = new MemoryBlockDevice(BLOCKS, { image: capture.image });
  const volume = await Volume.mount(device, { cacheNodes: CACHE_NODES });
  const recovered = volume.statistics().transactions.versions.visibleVersion;
  const where =
    `${capture.label}: recovered ${recovered}, acknowledged ${capture.acknowledged}, possible ${capture.possible}`;
  expect(recovered, where).toBeGreaterThanOrEqual(capture.acknowledged);
  expect(recovered, where).toBeLessThanOrEqual(capture.possible);
  if (recovered > capture.acknowledged) outcomes.inFlightKept++;
  if (recovered < capture.possible) outcomes.inFlightLost++;
  expect(await dump(volume), where).toEqual(run.states[recovered]);
  expect((await volume.fsck()).problems, where).toEqual([]);
  await volume.unmount();
}

describe("crash recovery", () => {
  for (const seed of [1, 2, 3, 4]) {
    it(
      `recovers every cut of random workload ${seed} to exactly an acknowledged prefix of commits`,
      async () => {
        const run = await runWorkload(seed, 120);
        // The workload must have exercised what it is meant to.
        expect(run.commits).toBeGreaterThan(150);
        expect(run.aborts).toBeGreaterThan(10);
        expect(run.checkpoints).toBeGreaterThan(3);
        expect(run.captures.length).toBeGreaterThan(500);
        const outcomes: Outcomes = { inFlightKept: 0, inFlightLost: 0 };
        for (const capture of run.captures) await verify(run, capture, outcomes);
        expect(outcomes.inFlightKept).toBeGreaterThan(0);
        expect(outcomes.inFlightLost).toBeGreaterThan(0);
      },
      60_000,
    );
  }

  it("survives a second power cut during recovery itself", async () => {
    const run = await runWorkload(7, 25);
    // Take every third cut, and cut again at each flush of the recovery that mounts it.
    for (const capture of run.captures.filter((_, i) => i % 3 === 0).slice(0, 30)) {
      const device = new MemoryBlockDevice(BLOCKS, { image: capture.image });
      const during: DiskImage[] = [];
      device.onFlush = (d) => during.push(d.crashImage({ order: "prefix", tear: true }));
      const volume = await Volume.mount(device, { cacheNodes: CACHE_NODES });
      const recovered = volume.statistics().transactions.versions.visibleVersion;
      await volume.unmount();
      expect(during.length).toBeGreaterThan(0);
      for (const image of during) {
        const again = await Volume.mount(new MemoryBlockDevice(BLOCKS, { image }), {
          cacheNodes: CACHE_NODES,
        });
        expect(again.statistics().transactions.versions.visibleVersion).toBe(recovered);
        expect(await dump(again)).toEqual(run.states[recovered]);
        expect((await again.fsck()).problems).toEqual([]);
        await again.unmount();
      }
    }
  }, 60_000);
});

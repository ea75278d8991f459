import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { Code } from "../../lib/errors.ts";
import { TreeCursor } from "../../services/storage/lfsx/btree.ts";
import { type LeafNode, MAX_KEY_LENGTH, MIN_FILL } from "../../services/storage/lfsx/node.ts";
import { treeOnMemory } from "./helpers.ts";

type Op =
  | { kind: "put"; key: string; size: number; fill: number }
  | { kind: "delete"; key: string }
  | { kind: "deleteExisting"; pick: number }
  | { kind: "deleteRun"; pick: number; count: number }
  | { kind: "get"; key: string }
  | { kind: "range"; start: string; end: string; limit: number; backward: boolean };

// Keys collide often (a small alphabet), share long prefixes (which stresses suffix truncation)
// and are sometimes long (which makes internal nodes split and merge with few entries).
const keyArb = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.string({
      unit: fc.constantFrom("a", "b", "c", "\u0000", "\u00ff"),
      minLength: 1,
      maxLength: 4,
    }),
  },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 60 }).map((n) => "p".repeat(400) + String(n)) },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 0, max: 30 }).map((n) => String(n).padStart(MAX_KEY_LENGTH, "k")),
  },
);
// Mostly small values, some that fill a node quickly, a few that go to overflow extents.
const sizeArb = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 60 }) },
  { weight: 3, arbitrary: fc.integer({ min: 300, max: 1000 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1021, max: 12_000 }) },
);
const putArb: fc.Arbitrary<Op> = fc.record({
  kind: fc.constant("put" as const),
  key: keyArb,
  size: sizeArb,
  fill: fc.integer({ min: 0, max: 255 }),
});
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: putArb },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("delete" as const), key: keyArb }) },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant("deleteExisting" as const), pick: fc.nat() }) },
  // A run of neighbouring keys: empties one region of the tree next to full ones.
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("deleteRun" as const),
      pick: fc.nat(),
      count: fc.integer({ min: 2, max: 40 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("get" as const), key: keyArb }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("range" as const),
      start: keyArb,
      end: keyArb,
      limit: fc.integer({ min: 1, max: 40 }),
      backward: fc.boolean(),
    }),
  },
);

function modelRange(
  model: Map<string, Uint8Array>,
  start: string,
  end: string,
  limit: number,
  backward: boolean,
) {
  const keys = [...model.keys()].filter((k) => k >= start && k < end).sort();
  if (backward) keys.reverse();
  return keys.slice(0, limit);
}

describe("B+ tree against a sorted-map model", () => {
  it("agrees with the model and validates after every step", async () => {
    let tallest = 0;
    let overflowSeen = false;
    const structural = {
      leafSplits: 0,
      internalSplits: 0,
      leafMerges: 0,
      internalMerges: 0,
      borrows: 0,
      rootCollapses: 0,
    };
    // A growth phase of inserts, then a phase dominated by deletes, so that both splits and
    // merges happen all over the tree.
    const workload = fc.tuple(
      fc.array(putArb, { minLength: 60, maxLength: 200 }),
      fc.array(opArb, { minLength: 60, maxLength: 200 }),
    )
      .map(([grow, mixed]) => [...grow, ...mixed]);
    await fc.assert(
      fc.asyncProperty(workload, async (ops) => {
        const { tree, check } = treeOnMemory({ cacheNodes: 16 });
        const model = new Map<string, Uint8Array>();
        for (const op of ops) {
          switch (op.kind) {
            case "put": {
              const value = new Uint8Array(op.size).fill(op.fill);
              const previous = await tree.exclusive(() => tree.put(op.key, value, true));
              expect(previous.found).toBe(model.has(op.key));
              if (previous.found) expect(previous.value).toEqual(model.get(op.key));
              model.set(op.key, value);
              break;
            }
            case "delete":
            case "deleteExisting": {
              const keys = [...model.keys()];
              const key = op.kind === "delete" ? op.key : keys[op.pick % Math.max(1, keys.length)] ?? "a";
              const previous = await tree.exclusive(() => tree.delete(key, true));
              expect(previous.found).toBe(model.has(key));
              if (previous.found) expect(previous.value).toEqual(model.get(key));
              model.delete(key);
              break;
            }
            case "deleteRun": {
              const sorted = [...model.keys()].sort();
              const from = op.pick % Math.max(1, sorted.length);
              for (const key of sorted.slice(from, from + op.count)) {
                expect((await tree.exclusive(() => tree.delete(key))).found).toBe(true);
                model.delete(key);
              }
              break;
            }
            case "get":
              expect(await tree.exclusive(() => tree.get(op.key))).toEqual(model.get(op.key));
              break;
            case "range": {
              const got = await tree.exclusive(() =>
                tree.range(op.start, op.end, op.limit, op.backward ? "backward" : "forward")
              );
              expect(got.map(([k]) => k)).toEqual(modelRange(model, op.start, op.end, op.limit, op.backward));
              break;
            }
          }
          const report = await check();
          expect(report.problems).toEqual([]);
          expect(report.entries).toBe(model.size);
          tallest = Math.max(tallest, report.height);
          overflowSeen ||= report.overflowValues > 0;
        }
        const all = await tree.exclusive(() => tree.range(undefined, undefined, Infinity));
        expect(all.map(([k]) => k)).toEqual([...model.keys()].sort());
        for (const [key, value] of all) expect(value).toEqual(model.get(key));
        for (const name of Object.keys(structural) as (keyof typeof structural)[]) {
          structural[name] += tree.stats[name];
        }
      }),
      { numRuns: 30 },
    );
    // The workload really reached multi-level trees and overflow values.
    expect(tallest).toBeGreaterThanOrEqual(3);
    expect(overflowSeen).toBe(true);
    for (const count of Object.values(structural)) expect(count).toBeGreaterThan(0);
  }, 60_000);
});

describe("B+ tree structure", () => {
  it("grows by splits, shrinks by merges back to a single leaf, and keeps leaves chained", async () => {
    const { tree, check, table } = treeOnMemory({ cacheNodes: 64 });
    // A long common prefix keeps separators long, so internal nodes split too.
    const keys = Array.from(
      { length: 3000 },
      (_, i) => "x".repeat(200) + String((i * 7919) % 3000).padStart(6, "0"),
    );
    for (const key of keys) await tree.exclusive(() => tree.put(key, new Uint8Array(40).fill(1)));
    expect(tree.height).toBeGreaterThanOrEqual(3);
    const grown = await check();
    expect(grown.problems).toEqual([]);
    expect(grown.leaves).toBeGreaterThan(20);
    // Walking the leaf chain backwards visits every key in descending order.
    const cursor = new TreeCursor(tree);
    const seen: string[] = [];
    await tree.exclusive(async () => {
      for (await cursor.last(); cursor.valid; await cursor.prev()) seen.push(cursor.key);
    });
    expect(seen).toEqual([...keys].sort().reverse());
    for (const [i, key] of keys.entries()) {
      expect((await tree.exclusive(() => tree.delete(key))).found).toBe(true);
      if (i % 250 === 0) expect((await check()).problems).toEqual([]);
    }
    expect(tree.stats.leafMerges).toBeGreaterThan(0);
    expect(tree.stats.internalMerges).toBeGreaterThan(0);
    const emptied = await check();
    expect(emptied.problems).toEqual([]);
    expect(tree.height).toBe(1);
    expect(emptied.leaves).toBe(1);
    // Everything else was given back: one root leaf is all that remains allocated.
    expect(table.liveIds).toBe(1);
  });

  it("keeps every non-root node above the minimum fill after heavy deletion", async () => {
    const { tree, check } = treeOnMemory({ cacheNodes: 64 });
    for (let i = 0; i < 2000; i++) {
      await tree.exclusive(() => tree.put(`k${String(i).padStart(5, "0")}`, new Uint8Array(60)));
    }
    for (let i = 0; i < 2000; i++) {
      if (i % 3 !== 0) await tree.exclusive(() => tree.delete(`k${String(i).padStart(5, "0")}`));
    }
    const report = await check();
    expect(report.problems).toEqual([]);
    expect(report.entries).toBe(667);
    const leaves: LeafNode[] = [];
    await tree.exclusive(async () => {
      const cursor = new TreeCursor(tree);
      await cursor.first();
      let leaf = await tree.node(tree.root);
      while (!leaf.leaf) leaf = await tree.node(leaf.children[0]);
      for (let id = leaf.id; id !== 0;) {
        const node = (await tree.node(id)) as LeafNode;
        leaves.push(node);
        id = node.next;
      }
    });
    for (const leaf of leaves.slice(0, -1)) expect(leaf.bytes).toBeGreaterThanOrEqual(MIN_FILL);
  });

  it("stores large values in overflow extents and frees them when replaced or deleted", async () => {
    const { tree, check, space } = treeOnMemory();
    const free = space.freeBlocks;
    const big = Uint8Array.from({ length: 50_000 }, (_, i) => i % 253);
    await tree.exclusive(() => tree.put("big", big));
    expect(space.freeBlocks).toBeLessThan(free - 12);
    expect(await tree.exclusive(() => tree.get("big"))).toEqual(big);
    const report = await check();
    expect(report.problems).toEqual([]);
    expect(report.overflowValues).toBe(1);
    await tree.exclusive(() => tree.put("big", new Uint8Array(10)));
    expect((await check()).overflowValues).toBe(0);
    expect(space.freeBlocks).toBeGreaterThan(free - 3);
  });

  it("bulk-loads sorted entries into a valid tree of any size and refuses unsorted input", async () => {
    for (const count of [0, 1, 29, 30, 31, 500, 5000]) {
      const { tree, check } = treeOnMemory({ cacheNodes: 64 });
      const entries: [string, Uint8Array][] = Array.from(
        { length: count },
        (
          _,
          i,
        ) => [`bulk${String(i).padStart(7, "0")}`, new Uint8Array(i % 50 === 0 ? 3000 : 100).fill(i & 255)],
      );
      await tree.exclusive(() => tree.bulkLoad(entries));
      const report = await check();
      expect(report.problems).toEqual([]);
      expect(report.entries).toBe(count);
      if (count > 0) {
        expect(await tree.exclusive(() => tree.get(entries[count - 1][0]))).toEqual(entries[count - 1][1]);
      }
    }
    const { tree } = treeOnMemory();
    await expect(tree.exclusive(() => tree.bulkLoad([["b", new Uint8Array(1)], ["a", new Uint8Array(1)]])))
      .rejects.toMatchObject({ code: Code.INVALID_ARGUMENT });
  });

  it("refuses empty and oversized keys", async () => {
    const { tree } = treeOnMemory();
    await expect(tree.exclusive(() => tree.put("", new Uint8Array(1)))).rejects.toMatchObject({
      code: Code.INVALID_ARGUMENT,
    });
    await expect(tree.exclusive(() => tree.put("x".repeat(MAX_KEY_LENGTH + 1), new Uint8Array(1)))).rejects
      .toMatchObject({ code: Code.INVALID_ARGUMENT });
  });

  it("serialises concurrent operations through exclusive()", async () => {
    const { tree, check } = treeOnMemory({ cacheNodes: 16 });
    const keys = Array.from({ length: 400 }, (_, i) => `c${i}`);
    await Promise.all(
      keys.map((key, i) => tree.exclusive(() => tree.put(key, new Uint8Array(200).fill(i & 255)))),
    );
    const reads = await Promise.all(keys.map((key) => tree.exclusive(() => tree.get(key))));
    reads.forEach((value, i) => expect(value?.[0]).toBe(i & 255));
    expect((await check()).problems).toEqual([]);
  });

  it("reports a node with a flipped bit as corruption naming its block, never as data", async () => {
    const { tree, device, cache, table } = treeOnMemory({ cacheNodes: 16 });
    for (let i = 0; i < 500; i++) {
      await tree.exclusive(() => tree.put(`k${String(i).padStart(4, "0")}`, new Uint8Array(50)));
    }
    await cache.writeDirty();
    cache.clear();
    const block = table.blockOf(tree.root);
    device.corrupt(block, 100, 0x10);
    const failure = tree.exclusive(() => tree.get("k0001"));
    await expect(failure).rejects.toMatchObject({ code: Code.DATA_LOSS });
    await expect(failure).rejects.toThrow(`corrupt block ${block}`);
  });
});

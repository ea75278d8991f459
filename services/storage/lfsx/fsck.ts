// The validator: checks every structural invariant of a mounted volume and reports each
// violation as a sentence naming the node and block. It is what the property and crash tests
// run after every step, and what `astra fsck` prints.
//
// Invariants: every node's checksum (read from disk unless the node is dirty in memory); node
// levels (all leaves at the same depth); keys strictly ascending inside each node and within the
// separator bounds its parent gives it; body sizes measured equal to the recorded ones, at most
// NODE_CAPACITY and, except for the root, at least MIN_FILL; internal nodes with one child more
// than keys; the leaf chain linking the leaves in key order both ways; the entry count; overflow
// chains complete, checksummed and as long as their leaf says; every allocated node id reachable
// exactly once; and the free-space map agreeing block for block with what is actually in use.
import { AstraError } from "../../../lib/errors.ts";
import type { BPlusTree } from "./btree.ts";
import { describeKey, type Key } from "./keys.ts";
import {
  fitsInline,
  type LeafNode,
  MAX_KEY_LENGTH,
  measureNode,
  MIN_FILL,
  NODE_CAPACITY,
  OverflowRef,
  type TreeNode,
} from "./node.ts";
import type { NodeTable } from "./nodetable.ts";
import type { SpaceMap } from "./space.ts";

export interface FsckReport {
  ok: boolean;
  problems: string[];
  height: number;
  entries: number;
  leaves: number;
  internalNodes: number;
  overflowValues: number;
  overflowExtents: number;
  overflowBlocks: number;
  tableBlocks: number;
  usedBlocks: number;
  freeBlocks: number;
  pendingFreeBlocks: number;
}

/** Listing stops after this many problems of one kind; the count is still reported. */
const DETAIL_LIMIT = 20;

export async function checkTree(tree: BPlusTree, table: NodeTable, space: SpaceMap): Promise<FsckReport> {
  const problems: string[] = [];
  const reachable = new Set<number>();
  const leaves: LeafNode[] = [];
  const overflowRefs: { ref: OverflowRef; key: Key; leaf: number }[] = [];
  let internalNodes = 0;
  const where = (id: number) => `node ${id} (block ${table.blockOf(id)})`;

  const load = async (id: number): Promise<TreeNode | undefined> => {
    const cached = tree.cache.cached(id);
    if (cached?.dirty) return cached;
    try {
      return await tree.cache.readFromDevice(id);
    } catch (err) {
      problems.push(err instanceof AstraError ? err.message : `${where(id)}: ${String(err)}`);
      return undefined;
    }
  };

  const visit = async (
    id: number,
    depth: number,
    low: Key | undefined,
    high: Key | undefined,
  ): Promise<void> => {
    if (reachable.has(id)) {
      problems.push(`${where(id)} is reached twice`);
      return;
    }
    reachable.add(id);
    const node = await load(id);
    if (!node) return;
    const isRoot = depth === 0;
    const expectedLevel = tree.height - 1 - depth;
    if (node.level !== expectedLevel) {
      problems.push(`${where(id)} is at level ${node.level}, its depth ${depth} requires ${expectedLevel}`);
    }
    const measured = measureNode(node);
    if (measured !== node.bytes) {
      problems.push(`${where(id)} records ${node.bytes} body bytes, holds ${measured}`);
    }
    if (measured > NODE_CAPACITY) {
      problems.push(`${where(id)} holds ${measured} bytes, over the ${NODE_CAPACITY}-byte capacity`);
    }
    if (!isRoot && measured < MIN_FILL) {
      problems.push(`${where(id)} holds ${measured} bytes, under the ${MIN_FILL}-byte minimum`);
    }
    for (let i = 0; i < node.keys.length; i++) {
      const key = node.keys[i];
      if (key.length === 0 || key.length > MAX_KEY_LENGTH) {
        problems.push(`${where(id)} key ${i} is ${key.length} bytes long`);
      }
      if (i > 0 && node.keys[i - 1] >= key) {
        problems.push(
          `${where(id)} keys ${i - 1} and ${i} are out of order (${describeKey(node.keys[i - 1])}, ${
            describeKey(key)
          })`,
        );
      }
      if ((low !== undefined && key < low) || (high !== undefined && key >= high)) {
        problems.push(`${where(id)} key ${describeKey(key)} lies outside the bounds its parent gives it`);
      }
    }
    if (node.leaf) {
      leaves.push(node);
      node.values.forEach((value, i) => {
        if (value instanceof OverflowRef) overflowRefs.push({ ref: value, key: node.keys[i], leaf: id });
        else if (!fitsInline(node.keys[i].length, value.length)) {
          problems.push(
            `${where(id)} keeps a ${value.length}-byte value inline that belongs in an overflow extent`,
          );
        }
      });
      return;
    }
    internalNodes++;
    if (node.children.length !== node.keys.length + 1) {
      problems.push(`${where(id)} has ${node.keys.length} keys but ${node.children.length} children`);
      return;
    }
    if (node.keys.length === 0) problems.push(`${where(id)} is an internal node without keys`);
    for (let i = 0; i < node.children.length; i++) {
      await visit(
        node.children[i],
        depth + 1,
        i === 0 ? low : node.keys[i - 1],
        i === node.keys.length ? high : node.keys[i],
      );
    }
  };

  await visit(tree.root, 0, undefined, undefined);

  let entries = 0;
  leaves.forEach((leaf, i) => {
    entries += leaf.keys.length;
    const prev = i > 0 ? leaves[i - 1].id : 0;
    const next = i + 1 < leaves.length ? leaves[i + 1].id : 0;
    if (leaf.prev !== prev) {
      problems.push(`leaf ${where(leaf.id)} links back to ${leaf.prev}, the leaf before it is ${prev}`);
    }
    if (leaf.next !== next) {
      problems.push(`leaf ${where(leaf.id)} links forward to ${leaf.next}, the leaf after it is ${next}`);
    }
    if (i > 0 && leaf.keys.length > 0) {
      const before = leaves[i - 1].keys;
      if (before.length > 0 && before[before.length - 1] >= leaf.keys[0]) {
        problems.push(`leaf ${where(leaf.id)} starts at or below the end of the leaf before it`);
      }
    }
  });
  if (entries !== tree.entries) {
    problems.push(`the tree counts ${tree.entries} entries, its leaves hold ${entries}`);
  }

  let overflowExtents = 0;
  let overflowBlocks = 0;
  for (const { ref, key, leaf } of overflowRefs) {
    try {
      const extents = await tree.overflow.extents(ref);
      let bytes = 0;
      for (const extent of extents) {
        if (reachable.has(extent.id)) {
          problems.push(`overflow extent ${extent.id} (block ${extent.block}) is reached twice`);
        }
        reachable.add(extent.id);
        bytes += extent.dataBytes;
        overflowExtents++;
        overflowBlocks += extent.blocks;
      }
      if (bytes !== ref.length) {
        problems.push(
          `value of ${describeKey(key)} in leaf ${leaf} is ${ref.length} bytes, its extents hold ${bytes}`,
        );
      }
    } catch (err) {
      problems.push(err instanceof AstraError ? err.message : String(err));
    }
  }

  const leaked: string[] = [];
  for (const { id, block, length } of table.entries()) {
    if (!reachable.has(id)) leaked.push(`${id} (blocks ${block}+${length})`);
  }
  if (leaked.length > 0) {
    problems.push(
      `${leaked.length} allocated node ids are unreachable: ${leaked.slice(0, DETAIL_LIMIT).join(", ")}`,
    );
  }

  // Free-space accounting: rebuild the set of blocks in use and compare with the map.
  const owners = new Uint8Array(space.blockCount);
  const doubly: number[] = [];
  const claim = (block: number, count: number) => {
    for (let b = block; b < block + count && b < owners.length; b++) {
      if (owners[b]++ === 1) doubly.push(b);
    }
  };
  claim(0, space.firstDataBlock);
  const tableBlocks = table.metadataBlocks();
  for (const block of tableBlocks) claim(block, 1);
  for (const { block, length } of table.entries()) if (block !== 0) claim(block, length);
  for (const block of space.pendingBlocks()) claim(block, 1);
  if (doubly.length > 0) {
    problems.push(
      `${doubly.length} blocks are claimed by two structures: ${doubly.slice(0, DETAIL_LIMIT).join(", ")}`,
    );
  }
  const leakedBlocks: number[] = [];
  const unaccounted: number[] = [];
  let inUse = 0;
  for (let b = 0; b < space.blockCount; b++) {
    const expected = owners[b] > 0;
    if (expected) inUse++;
    if (expected && !space.isUsed(b)) unaccounted.push(b);
    if (!expected && space.isUsed(b)) leakedBlocks.push(b);
  }
  if (unaccounted.length > 0) {
    problems.push(
      `${unaccounted.length} blocks in use are marked free: ${unaccounted.slice(0, DETAIL_LIMIT).join(", ")}`,
    );
  }
  if (leakedBlocks.length > 0) {
    problems.push(
      `${leakedBlocks.length} blocks are marked used but belong to nothing: ${
        leakedBlocks.slice(0, DETAIL_LIMIT).join(", ")
      }`,
    );
  }
  if (
    space.blockCount - inUse !== space.freeBlocks && unaccounted.length === 0 && leakedBlocks.length === 0
  ) {
    problems.push(
      `the free-space map counts ${space.freeBlocks} free blocks, the bitmap has ${space.blockCount - inUse}`,
    );
  }

  return {
    ok: problems.length === 0,
    problems,
    height: tree.height,
    entries,
    leaves: leaves.length,
    internalNodes,
    overflowValues: overflowRefs.length,
    overflowExtents,
    overflowBlocks,
    tableBlocks: tableBlocks.length,
    usedBlocks: inUse,
    freeBlocks: space.freeBlocks,
    pendingFreeBlocks: space.pendingFreeBlocks,
  };
}

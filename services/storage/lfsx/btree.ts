// The persistent B+ tree of LFSX: byte-string keys (binary strings, see keys.ts) and byte-string
// values, 4 KiB nodes, values too large for a leaf in overflow extents.
//
// Nodes are sized in bytes, not entries: a node splits when its body passes NODE_CAPACITY and is
// rebalanced when it drops below MIN_FILL. Leaf separators are suffix-truncated (the shortest
// key between the two leaves). Leaves are chained both ways for cursors. Nodes keep no parent
// pointer — a split would have to rewrite every child it moves — so operations carry the
// root-to-leaf path instead.
//
// The operations themselves are not reentrant: callers run them one at a time through
// exclusive(), which also trims the node cache once the operation is over.
import { Errno, failedPrecondition, invalidArgument } from "../../../lib/errors.ts";
import type { NodeCache } from "./cache.ts";
import { describeKey, type Key, lowerBound, shortestSeparator, upperBound } from "./keys.ts";
import { Mutex } from "./mutex.ts";
import {
  fitsInline,
  INTERNAL_BASE_SIZE,
  internalEntrySize,
  InternalNode,
  leafEntrySize,
  LeafNode,
  type LeafValue,
  MAX_KEY_LENGTH,
  MIN_FILL,
  NODE_CAPACITY,
  OverflowRef,
  type TreeNode,
  valueSize,
} from "./node.ts";
import { MAX_VALUE_LENGTH, type OverflowStore } from "./overflow.ts";

export interface TreeMeta {
  root: number;
  /** Levels: 1 when the root is a leaf. */
  height: number;
  entries: number;
}

/** What an insert or delete found under the key before it. */
export interface Previous {
  found: boolean;
  /** The old value, when the caller asked for it and there was one. */
  value: Uint8Array | undefined;
}

interface PathStep {
  node: InternalNode;
  /** Which child of `node` the path continues into. */
  index: number;
}

export type Direction = "forward" | "backward";

/** Structural changes since the tree was opened. */
export interface TreeStatistics {
  leafSplits: number;
  internalSplits: number;
  leafMerges: number;
  internalMerges: number;
  borrows: number;
  rootSplits: number;
  rootCollapses: number;
}

/** Bulk load fills nodes to this much, leaving room for later inserts. */
const BULK_FILL = Math.floor(NODE_CAPACITY * 0.9);

export function checkKey(key: Key, argument = "key"): void {
  if (key.length === 0) throw invalidArgument(argument, "keys must not be empty");
  if (key.length > MAX_KEY_LENGTH) {
    throw invalidArgument(argument, `key of ${key.length} bytes exceeds the ${MAX_KEY_LENGTH}-byte limit`);
  }
}

export function checkValue(value: Uint8Array, argument = "value"): void {
  if (value.length > MAX_VALUE_LENGTH) {
    throw invalidArgument(
      argument,
      `value of ${value.length} bytes exceeds the ${MAX_VALUE_LENGTH}-byte limit`,
      Errno.E2BIG,
    );
  }
}

/** Where to cut entries of the given sizes so that the larger half is as small as possible. */
function byteMidpoint(sizes: number[], base: number, dropMiddle: boolean): number {
  // Leaves: left = entries [0, k), right = [k, n), 1 <= k <= n-1.
  // Internal nodes (dropMiddle): left = [0, k), the separator k moves up, right = (k, n), 1 <= k <= n-2.
  const n = sizes.length;
  const total = sizes.reduce((a, b) => a + b, 0);
  let best = 1;
  let bestLarger = Infinity;
  let left = sizes[0];
  const last = dropMiddle ? n - 2 : n - 1;
  for (let k = 1; k <= last; k++) {
    const right = total - left - (dropMiddle ? sizes[k] : 0);
    const larger = Math.max(base + left, base + right);
    if (larger < bestLarger) {
      bestLarger = larger;
      best = k;
    }
    left += sizes[k];
  }
  return best;
}

export class BPlusTree {
  readonly #latch = new Mutex();
  readonly stats: TreeStatistics = {
    leafSplits: 0,
    internalSplits: 0,
    leafMerges: 0,
    internalMerges: 0,
    borrows: 0,
    rootSplits: 0,
    rootCollapses: 0,
  };

  constructor(
    readonly cache: NodeCache,
    readonly overflow: OverflowStore,
    private readonly meta: TreeMeta,
  ) {}

  /** A new, empty tree: one empty leaf as the root. */
  static create(cache: NodeCache, overflow: OverflowStore): BPlusTree {
    const root = cache.createLeaf();
    return new BPlusTree(cache, overflow, { root: root.id, height: 1, entries: 0 });
  }

  get root(): number {
    return this.meta.root;
  }

  get height(): number {
    return this.meta.height;
  }

  get entries(): number {
    return this.meta.entries;
  }

  snapshotMeta(): TreeMeta {
    return { ...this.meta };
  }

  /** Runs `fn` with the tree to itself, then trims the cache. */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    await this.#latch.lock();
    try {
      const result = await fn();
      await this.cache.trim();
      return result;
    } finally {
      this.#latch.unlock();
    }
  }

  async node(id: number): Promise<TreeNode> {
    return this.cache.peek(id) ?? await this.cache.load(id);
  }

  async #leaf(id: number): Promise<LeafNode> {
    const node = this.cache.peek(id) ?? await this.cache.load(id);
    if (!node.leaf) throw failedPrecondition(`node ${id} in the leaf chain is not a leaf`);
    return node;
  }

  /** btree_search: the value stored under `key`. */
  async get(key: Key): Promise<Uint8Array | undefined> {
    let node = this.cache.peek(this.meta.root) ?? await this.cache.load(this.meta.root);
    while (!node.leaf) {
      const child = node.children[upperBound(node.keys, key)];
      node = this.cache.peek(child) ?? await this.cache.load(child);
    }
    const i = lowerBound(node.keys, key);
    if (i === node.keys.length || node.keys[i] !== key) return undefined;
    return await this.#materialize(node.values[i]);
  }

  /** btree_insert: stores `value` under `key`, replacing what was there. */
  async put(key: Key, value: Uint8Array, returnOld = false): Promise<Previous> {
    checkKey(key);
    checkValue(value);
    const stored: LeafValue = fitsInline(key.length, value.length) ? value : await this.overflow.write(value);
    const path: PathStep[] = [];
    const leaf = await this.#descend(key, path);
    const i = lowerBound(leaf.keys, key);
    const previous: Previous = { found: false, value: undefined };
    if (i < leaf.keys.length && leaf.keys[i] === key) {
      const old = leaf.values[i];
      previous.found = true;
      if (returnOld) previous.value = await this.#materialize(old);
      if (old instanceof OverflowRef) await this.overflow.free(old);
      leaf.bytes += valueSize(stored) - valueSize(old);
      leaf.values[i] = stored;
    } else {
      leaf.keys.splice(i, 0, key);
      leaf.values.splice(i, 0, stored);
      leaf.bytes += leafEntrySize(key, stored);
      this.meta.entries++;
    }
    this.cache.markDirty(leaf);
    // A smaller replacement value can leave the leaf under-full as surely as a delete can.
    if (leaf.bytes > NODE_CAPACITY || (path.length > 0 && leaf.bytes < MIN_FILL)) {
      await this.rebalance(path, leaf);
    }
    return previous;
  }

  /** btree_delete: removes `key`. */
  async delete(key: Key, returnOld = false): Promise<Previous> {
    const path: PathStep[] = [];
    const leaf = await this.#descend(key, path);
    const i = lowerBound(leaf.keys, key);
    if (i === leaf.keys.length || leaf.keys[i] !== key) return { found: false, value: undefined };
    const old = leaf.values[i];
    const previous: Previous = { found: true, value: returnOld ? await this.#materialize(old) : undefined };
    if (old instanceof OverflowRef) await this.overflow.free(old);
    leaf.keys.splice(i, 1);
    leaf.values.splice(i, 1);
    leaf.bytes -= leafEntrySize(key, old);
    this.meta.entries--;
    this.cache.markDirty(leaf);
    if (path.length > 0 && leaf.bytes < MIN_FILL) await this.rebalance(path, leaf);
    return previous;
  }

  /** btree_range_query: up to `limit` entries of [start, end) in key order or reverse. */
  async range(
    start: Key | undefined,
    end: Key | undefined,
    limit: number,
    direction: Direction = "forward",
  ): Promise<[Key, Uint8Array][]> {
    const cursor = new TreeCursor(this);
    const out: [Key, Uint8Array][] = [];
    if (direction === "forward") {
      if (start === undefined) await cursor.first();
      else await cursor.seek(start, "ge");
      while (cursor.valid && out.length < limit && (end === undefined || cursor.key < end)) {
        out.push([cursor.key, await cursor.value()]);
        await cursor.next();
      }
    } else {
      if (end === undefined) await cursor.last();
      else await cursor.seek(end, "lt");
      while (cursor.valid && out.length < limit && (start === undefined || cursor.key >= start)) {
        out.push([cursor.key, await cursor.value()]);
        await cursor.prev();
      }
    }
    return out;
  }

  /**
   * Builds the tree from entries in strictly ascending key order, bottom-up, filling nodes to
   * 90%. The tree must be empty.
   */
  async bulkLoad(entries: Iterable<[Key, Uint8Array]>): Promise<void> {
    if (this.meta.entries !== 0) throw failedPrecondition("bulk load needs an empty tree");
    const root = await this.node(this.meta.root);
    if (!root.leaf) throw failedPrecondition("bulk load needs an empty tree");
    // rightmost[level]: the node currently being filled at each level, leaves at 0.
    const rightmost: TreeNode[] = [root];
    let previousKey: Key | undefined;
    for (const [key, value] of entries) {
      checkKey(key);
      checkValue(value);
      if (previousKey !== undefined && key <= previousKey) {
        throw invalidArgument(
          "entries",
          `bulk load needs strictly ascending keys: ${describeKey(key)} follows ${describeKey(previousKey)}`,
        );
      }
      const stored: LeafValue = fitsInline(key.length, value.length)
        ? value
        : await this.overflow.write(value);
      const size = leafEntrySize(key, stored);
      let leaf = rightmost[0] as LeafNode;
      if (leaf.keys.length > 0 && leaf.bytes + size > BULK_FILL) {
        const next = this.cache.createLeaf();
        next.prev = leaf.id;
        leaf.next = next.id;
        this.cache.markDirty(leaf);
        this.#appendChild(rightmost, 1, shortestSeparator(previousKey!, key), next);
        rightmost[0] = next;
        leaf = next;
      }
      leaf.keys.push(key);
      leaf.values.push(stored);
      leaf.bytes += size;
      this.cache.markDirty(leaf);
      this.meta.entries++;
      previousKey = key;
    }
    this.meta.root = rightmost[rightmost.length - 1].id;
    this.meta.height = rightmost.length;
    // Only the right edge can be under-full. Fix it top-down with the ordinary rebalancing: a
    // right-edge node may have a single child until its own level has been repaired.
    for (let depth = 1; depth < this.meta.height; depth++) {
      const path: PathStep[] = [];
      let node = await this.node(this.meta.root);
      for (let d = 0; d < depth && !node.leaf; d++) {
        path.push({ node, index: node.children.length - 1 });
        node = await this.node(node.children[node.children.length - 1]);
      }
      if (path.length === depth && node.bytes < MIN_FILL) await this.rebalance(path, node);
    }
  }

  #appendChild(rightmost: TreeNode[], level: number, separator: Key, child: TreeNode): void {
    let parent = rightmost[level] as InternalNode | undefined;
    if (!parent) {
      parent = this.cache.createInternal(level);
      parent.children.push(rightmost[level - 1].id);
      rightmost[level] = parent;
    }
    const size = internalEntrySize(separator);
    if (parent.keys.length > 0 && parent.bytes + size > BULK_FILL) {
      const next = this.cache.createInternal(level);
      next.children.push(child.id);
      this.#appendChild(rightmost, level + 1, separator, next);
      rightmost[level] = next;
      return;
    }
    parent.keys.push(separator);
    parent.children.push(child.id);
    parent.bytes += size;
    this.cache.markDirty(parent);
  }

  async #materialize(value: LeafValue): Promise<Uint8Array> {
    return value instanceof OverflowRef ? await this.overflow.read(value) : value;
  }

  async #descend(key: Key, path: PathStep[]): Promise<LeafNode> {
    let node = this.cache.peek(this.meta.root) ?? await this.cache.load(this.meta.root);
    while (!node.leaf) {
      const index = upperBound(node.keys, key);
      path.push({ node, index });
      const child = node.children[index];
      node = this.cache.peek(child) ?? await this.cache.load(child);
    }
    return node;
  }

  /**
   * btree_rebalance: restores the size bounds from `start` up the path — splitting what
   * overflows, merging or borrowing for what underflows — and grows or shrinks the root.
   */
  async rebalance(path: PathStep[], start: TreeNode): Promise<void> {
    let node = start;
    for (let depth = path.length;; depth--) {
      if (node.bytes > NODE_CAPACITY) {
        const { separator, right } = node.leaf ? await this.splitLeaf(node) : this.splitInternal(node);
        if (depth === 0) {
          this.#growRoot(node, separator, right);
          return;
        }
        const { node: parent, index } = path[depth - 1];
        parent.keys.splice(index, 0, separator);
        parent.children.splice(index + 1, 0, right.id);
        parent.bytes += internalEntrySize(separator);
        this.cache.markDirty(parent);
        node = parent;
        continue;
      }
      if (depth > 0 && node.bytes < MIN_FILL) {
        const { node: parent, index } = path[depth - 1];
        const left = index > 0 ? index - 1 : 0;
        const leftNode = await this.node(parent.children[left]);
        const rightNode = await this.node(parent.children[left + 1]);
        if (leftNode.leaf !== rightNode.leaf) {
          throw failedPrecondition(`siblings under node ${parent.id} differ in kind`);
        }
        if (leftNode.leaf) {
          if (leftNode.bytes + rightNode.bytes <= NODE_CAPACITY) {
            await this.mergeLeaves(parent, left, leftNode, rightNode as LeafNode);
          } else {
            this.borrowFromSibling(parent, left, leftNode, rightNode);
          }
        } else {
          const separatorSize = parent.keys[left].length + 2;
          if (leftNode.bytes + rightNode.bytes + separatorSize <= NODE_CAPACITY) {
            this.mergeInternal(parent, left, leftNode, rightNode as InternalNode);
          } else {
            this.borrowFromSibling(parent, left, leftNode, rightNode);
          }
        }
        node = parent;
        continue;
      }
      if (depth === 0) await this.#shrinkRoot();
      return;
    }
  }

  /** btree_split_leaf: moves the upper half (by bytes) of an overfull leaf to a new right sibling. */
  async splitLeaf(leaf: LeafNode): Promise<{ separator: Key; right: LeafNode }> {
    const sizes = leaf.keys.map((key, i) => leafEntrySize(key, leaf.values[i]));
    const k = byteMidpoint(sizes, 0, false);
    const right = this.cache.createLeaf();
    this.stats.leafSplits++;
    right.keys = leaf.keys.splice(k);
    right.values = leaf.values.splice(k);
    right.bytes = sizes.slice(k).reduce((a, b) => a + b, 0);
    leaf.bytes -= right.bytes;
    right.prev = leaf.id;
    right.next = leaf.next;
    if (leaf.next !== 0) {
      const after = await this.#leaf(leaf.next);
      after.prev = right.id;
      this.cache.markDirty(after);
    }
    leaf.next = right.id;
    this.cache.markDirty(leaf);
    return { separator: shortestSeparator(leaf.keys[leaf.keys.length - 1], right.keys[0]), right };
  }

  /** btree_split_internal: the middle key (by bytes) moves up, the keys above it to a new node. */
  splitInternal(node: InternalNode): { separator: Key; right: InternalNode } {
    const sizes = node.keys.map(internalEntrySize);
    const m = byteMidpoint(sizes, INTERNAL_BASE_SIZE, true);
    const right = this.cache.createInternal(node.level);
    this.stats.internalSplits++;
    const moved = node.keys.splice(m);
    const separator = moved.shift()!;
    right.keys = moved;
    right.children = node.children.splice(m + 1);
    right.bytes = INTERNAL_BASE_SIZE + sizes.slice(m + 1).reduce((a, b) => a + b, 0);
    node.bytes = INTERNAL_BASE_SIZE + sizes.slice(0, m).reduce((a, b) => a + b, 0);
    this.cache.markDirty(node);
    return { separator, right };
  }

  /** btree_merge_leaf: appends `right` to `left` and removes it from the parent and the leaf chain. */
  async mergeLeaves(
    parent: InternalNode,
    left: number,
    leftNode: LeafNode,
    rightNode: LeafNode,
  ): Promise<void> {
    leftNode.keys.push(...rightNode.keys);
    leftNode.values.push(...rightNode.values);
    leftNode.bytes += rightNode.bytes;
    leftNode.next = rightNode.next;
    if (rightNode.next !== 0) {
      const after = await this.#leaf(rightNode.next);
      after.prev = leftNode.id;
      this.cache.markDirty(after);
    }
    this.#removeChild(parent, left);
    this.cache.markDirty(leftNode);
    this.cache.release(rightNode);
    this.stats.leafMerges++;
  }

  /** btree_merge_internal: pulls the separator down and appends `right` to `left`. */
  mergeInternal(parent: InternalNode, left: number, leftNode: InternalNode, rightNode: InternalNode): void {
    const separator = parent.keys[left];
    leftNode.bytes += rightNode.bytes + separator.length + 2;
    leftNode.keys.push(separator, ...rightNode.keys);
    leftNode.children.push(...rightNode.children);
    this.#removeChild(parent, left);
    this.cache.markDirty(leftNode);
    this.cache.release(rightNode);
    this.stats.internalMerges++;
  }

  /**
   * btree_borrow_from_sibling: two siblings too full to merge share their entries evenly by
   * bytes; the separator between them in the parent is replaced.
   */
  borrowFromSibling(parent: InternalNode, left: number, leftNode: TreeNode, rightNode: TreeNode): void {
    let separator: Key;
    if (leftNode.leaf && rightNode.leaf) {
      const keys = [...leftNode.keys, ...rightNode.keys];
      const values = [...leftNode.values, ...rightNode.values];
      const sizes = keys.map((key, i) => leafEntrySize(key, values[i]));
      const k = byteMidpoint(sizes, 0, false);
      leftNode.keys = keys.slice(0, k);
      leftNode.values = values.slice(0, k);
      leftNode.bytes = sizes.slice(0, k).reduce((a, b) => a + b, 0);
      rightNode.keys = keys.slice(k);
      rightNode.values = values.slice(k);
      rightNode.bytes = sizes.slice(k).reduce((a, b) => a + b, 0);
      separator = shortestSeparator(keys[k - 1], keys[k]);
    } else if (!leftNode.leaf && !rightNode.leaf) {
      const keys = [...leftNode.keys, parent.keys[left], ...rightNode.keys];
      const children = [...leftNode.children, ...rightNode.children];
      const sizes = keys.map(internalEntrySize);
      const m = byteMidpoint(sizes, INTERNAL_BASE_SIZE, true);
      leftNode.keys = keys.slice(0, m);
      leftNode.children = children.slice(0, m + 1);
      leftNode.bytes = INTERNAL_BASE_SIZE + sizes.slice(0, m).reduce((a, b) => a + b, 0);
      rightNode.keys = keys.slice(m + 1);
      rightNode.children = children.slice(m + 1);
      rightNode.bytes = INTERNAL_BASE_SIZE + sizes.slice(m + 1).reduce((a, b) => a + b, 0);
      separator = keys[m];
    } else {
      throw failedPrecondition(`siblings under node ${parent.id} differ in kind`);
    }
    parent.bytes += separator.length - parent.keys[left].length;
    parent.keys[left] = separator;
    this.stats.borrows++;
    this.cache.markDirty(leftNode);
    this.cache.markDirty(rightNode);
    this.cache.markDirty(parent);
  }

  #removeChild(parent: InternalNode, left: number): void {
    parent.bytes -= internalEntrySize(parent.keys[left]);
    parent.keys.splice(left, 1);
    parent.children.splice(left + 1, 1);
    this.cache.markDirty(parent);
  }

  #growRoot(left: TreeNode, separator: Key, right: TreeNode): void {
    const root = this.cache.createInternal(left.level + 1);
    root.keys = [separator];
    root.children = [left.id, right.id];
    root.bytes = INTERNAL_BASE_SIZE + internalEntrySize(separator);
    this.meta.root = root.id;
    this.meta.height++;
    this.stats.rootSplits++;
  }

  async #shrinkRoot(): Promise<void> {
    let root = await this.node(this.meta.root);
    while (!root.leaf && root.keys.length === 0) {
      const child = await this.node(root.children[0]);
      this.cache.release(root);
      this.meta.root = child.id;
      this.meta.height--;
      this.stats.rootCollapses++;
      root = child;
    }
  }
}

/**
 * A position in the tree, moving through the leaf chain in either direction. A cursor is valid
 * only while the tree is not modified: use it inside one exclusive() section.
 */
export class TreeCursor {
  #leaf: LeafNode | undefined;
  #index = -1;

  constructor(private readonly tree: BPlusTree) {}

  get valid(): boolean {
    return this.#leaf !== undefined;
  }

  get key(): Key {
    return this.#leaf!.keys[this.#index];
  }

  /** The raw stored value (an overflow reference for large values). */
  get stored(): LeafValue {
    return this.#leaf!.values[this.#index];
  }

  async value(): Promise<Uint8Array> {
    const stored = this.stored;
    return stored instanceof OverflowRef ? await this.tree.overflow.read(stored) : stored;
  }

  async first(): Promise<void> {
    let node = await this.tree.node(this.tree.root);
    while (!node.leaf) node = await this.tree.node(node.children[0]);
    await this.#settleForward(node, 0);
  }

  async last(): Promise<void> {
    let node = await this.tree.node(this.tree.root);
    while (!node.leaf) node = await this.tree.node(node.children[node.children.length - 1]);
    await this.#settleBackward(node, node.keys.length - 1);
  }

  /** Positions at the first key >= ("ge") or > ("gt"), or the last key < ("lt") or <= ("le") `key`. */
  async seek(key: Key, mode: "ge" | "gt" | "lt" | "le"): Promise<void> {
    let node = await this.tree.node(this.tree.root);
    while (!node.leaf) node = await this.tree.node(node.children[upperBound(node.keys, key)]);
    switch (mode) {
      case "ge":
        return await this.#settleForward(node, lowerBound(node.keys, key));
      case "gt":
        return await this.#settleForward(node, upperBound(node.keys, key));
      case "lt":
        return await this.#settleBackward(node, lowerBound(node.keys, key) - 1);
      case "le":
        return await this.#settleBackward(node, upperBound(node.keys, key) - 1);
    }
  }

  /** Moves to the next key; returns a promise only when another leaf has to be loaded. */
  next(): Promise<void> | undefined {
    const leaf = this.#leaf;
    if (!leaf) return undefined;
    if (this.#index + 1 < leaf.keys.length) {
      this.#index++;
      return undefined;
    }
    return this.#settleForward(leaf, this.#index + 1);
  }

  /** Moves to the previous key; returns a promise only when another leaf has to be loaded. */
  prev(): Promise<void> | undefined {
    const leaf = this.#leaf;
    if (!leaf) return undefined;
    if (this.#index > 0) {
      this.#index--;
      return undefined;
    }
    return this.#settleBackward(leaf, this.#index - 1);
  }

  async #settleForward(leaf: LeafNode, index: number): Promise<void> {
    while (index >= leaf.keys.length) {
      if (leaf.next === 0) {
        this.#leaf = undefined;
        return;
      }
      leaf = await this.tree.node(leaf.next) as LeafNode;
      index = 0;
    }
    this.#leaf = leaf;
    this.#index = index;
  }

  async #settleBackward(leaf: LeafNode, index: number): Promise<void> {
    while (index < 0) {
      if (leaf.prev === 0) {
        this.#leaf = undefined;
        return;
      }
      leaf = await this.tree.node(leaf.prev) as LeafNode;
      index = leaf.keys.length - 1;
    }
    this.#leaf = leaf;
    this.#index = index;
  }
}

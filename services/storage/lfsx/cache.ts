// The node cache: decoded nodes by id, in exact LRU order (an intrusive doubly linked list, so a
// hit costs a few pointer writes), with dirty tracking.
//
// Writing a dirty node is copy-on-write: if its block belongs to the last checkpoint's image it
// goes to a fresh block (the old one is released for after the next checkpoint); if it is
// already fresh it is overwritten in place. Either way the checkpointed image stays intact, so
// a dirty node may be written — and evicted — at any time, not only at a checkpoint.
//
// Eviction happens only in trim(), which the tree calls between operations: a node an operation
// is holding is never dropped under it.
import { AstraError, Code, Errno } from "../../../lib/errors.ts";
import { BLOCK_SIZE, type BlockDevice } from "./blockdev.ts";
import { decodeNode, encodeNode, InternalNode, LeafNode, type TreeNode } from "./node.ts";
import type { NodeTable } from "./nodetable.ts";
import type { SpaceMap } from "./space.ts";

export interface CacheStatistics {
  capacity: number;
  cached: number;
  dirty: number;
  hits: number;
  misses: number;
  evictions: number;
  nodesWritten: number;
  writeRequests: number;
}

export class NodeCache {
  readonly #nodes = new Map<number, TreeNode>();
  readonly #dirty = new Set<TreeNode>();
  /** Most recently used end of the LRU list. */
  #head: TreeNode | null = null;
  /** Least recently used end. */
  #tail: TreeNode | null = null;
  #hits = 0;
  #misses = 0;
  #evictions = 0;
  #nodesWritten = 0;
  #writeRequests = 0;

  constructor(
    private readonly device: BlockDevice,
    readonly table: NodeTable,
    private readonly space: SpaceMap,
    public capacity: number,
  ) {
    if (!Number.isInteger(capacity) || capacity < 16) {
      throw new AstraError(
        Code.INVALID_ARGUMENT,
        Errno.EINVAL,
        `the node cache needs at least 16 nodes, not ${capacity}`,
        {
          argument: "cacheNodes",
        },
      );
    }
  }

  get dirtyCount(): number {
    return this.#dirty.size;
  }

  statistics(): CacheStatistics {
    return {
      capacity: this.capacity,
      cached: this.#nodes.size,
      dirty: this.#dirty.size,
      hits: this.#hits,
      misses: this.#misses,
      evictions: this.#evictions,
      nodesWritten: this.#nodesWritten,
      writeRequests: this.#writeRequests,
    };
  }

  /** The cached node, made most recently used; undefined on a miss. */
  peek(id: number): TreeNode | undefined {
    const node = this.#nodes.get(id);
    if (node) {
      this.#hits++;
      if (node !== this.#head) {
        this.#unlink(node);
        this.#pushHead(node);
      }
    }
    return node;
  }

  /** Reads a node that is not cached and caches it. */
  async load(id: number): Promise<TreeNode> {
    const cached = this.peek(id);
    if (cached) return cached;
    this.#misses++;
    const node = await this.readFromDevice(id);
    // Another operation may have loaded it while this one waited for the device.
    const raced = this.#nodes.get(id);
    if (raced) return raced;
    this.#nodes.set(id, node);
    this.#pushHead(node);
    return node;
  }

  /** Decodes a node straight from its block, bypassing the cache (the validator uses this). */
  async readFromDevice(id: number): Promise<TreeNode> {
    if (!this.table.isLive(id)) {
      throw new AstraError(Code.DATA_LOSS, Errno.EUCLEAN, `node ${id} is referenced but not allocated`);
    }
    const block = this.table.blockOf(id);
    if (block === 0) {
      throw new AstraError(Code.INTERNAL, Errno.EIO, `node ${id} was never written and is not cached`);
    }
    return decodeNode(await this.device.readBlocks(block, 1), block, id);
  }

  /** The cached copy if any, without touching LRU order. */
  cached(id: number): TreeNode | undefined {
    return this.#nodes.get(id);
  }

  createLeaf(): LeafNode {
    const node = new LeafNode(this.table.allocate(1));
    this.#adopt(node);
    return node;
  }

  createInternal(level: number): InternalNode {
    const node = new InternalNode(this.table.allocate(1), level);
    this.#adopt(node);
    return node;
  }

  markDirty(node: TreeNode): void {
    if (!node.dirty) {
      node.dirty = true;
      this.#dirty.add(node);
    }
  }

  /** Drops a node from the tree: its id and block are released. */
  release(node: TreeNode): void {
    if (this.#nodes.get(node.id) === node) {
      this.#nodes.delete(node.id);
      this.#unlink(node);
    }
    this.#dirty.delete(node);
    node.dirty = false;
    const block = this.table.blockOf(node.id);
    if (block !== 0) this.space.release(block, 1);
    this.table.release(node.id);
  }

  /** Evicts least recently used nodes until the cache is within capacity, writing dirty ones first. */
  async trim(): Promise<void> {
    const excess = this.#nodes.size - this.capacity;
    if (excess <= 0) return;
    const victims: TreeNode[] = [];
    for (let node = this.#tail; node && victims.length < excess; node = node.lruPrev) victims.push(node);
    await this.#write(victims.filter((node) => node.dirty));
    for (const node of victims) {
      this.#nodes.delete(node.id);
      this.#unlink(node);
      this.#evictions++;
    }
  }

  /** Writes every dirty node (a checkpoint's first step); they stay cached, clean. */
  async writeDirty(): Promise<void> {
    await this.#write([...this.#dirty]);
  }

  /** Forgets every cached node (after an error left them untrustworthy). */
  clear(): void {
    this.#nodes.clear();
    this.#dirty.clear();
    this.#head = this.#tail = null;
  }

  async #write(nodes: TreeNode[]): Promise<void> {
    if (nodes.length === 0) return;
    const placed: { block: number; node: TreeNode }[] = [];
    for (const node of nodes) {
      let block = this.table.blockOf(node.id);
      if (block === 0 || !this.space.isFresh(block)) {
        const fresh = this.space.allocate();
        if (block !== 0) this.space.release(block, 1);
        this.table.place(node.id, fresh, 1);
        block = fresh;
      }
      placed.push({ block, node });
    }
    placed.sort((a, b) => a.block - b.block);
    // Consecutive blocks go out as one request.
    for (let i = 0; i < placed.length;) {
      let j = i + 1;
      while (j < placed.length && placed[j].block === placed[j - 1].block + 1) j++;
      const buf = new Uint8Array((j - i) * BLOCK_SIZE);
      for (let k = i; k < j; k++) buf.set(encodeNode(placed[k].node, placed[k].block), (k - i) * BLOCK_SIZE);
      await this.device.writeBlocks(placed[i].block, buf);
      this.#writeRequests++;
      i = j;
    }
    for (const { node } of placed) {
      node.dirty = false;
      this.#dirty.delete(node);
    }
    this.#nodesWritten += placed.length;
  }

  #adopt(node: TreeNode): void {
    this.#nodes.set(node.id, node);
    this.#pushHead(node);
    this.markDirty(node);
  }

  #pushHead(node: TreeNode): void {
    node.lruPrev = null;
    node.lruNext = this.#head;
    if (this.#head) this.#head.lruPrev = node;
    this.#head = node;
    if (!this.#tail) this.#tail = node;
  }

  #unlink(node: TreeNode): void {
    if (node.lruPrev) node.lruPrev.lruNext = node.lruNext;
    else if (this.#head === node) this.#head = node.lruNext;
    if (node.lruNext) node.lruNext.lruPrev = node.lruPrev;
    else if (this.#tail === node) this.#tail = node.lruPrev;
    node.lruPrev = node.lruNext = null;
  }
}

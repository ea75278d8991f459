// The node table maps node ids to extents (first block, block count). Tree nodes and overflow
// extents refer to each other by id, so relocating a node — which copy-on-write does to every
// node changed since the last checkpoint — only changes its table entry.
//
// On disk the table is a list of mapping pages, each holding 508 entries, found through a chain
// of directory blocks that the superblock points to. A checkpoint writes the changed mapping
// pages and a new directory to fresh blocks, so the previous checkpoint's table stays intact
// until the new superblock is durable.
//
//   mapping page: [u32 magic "LXMP"][u32 page index][u32 crc][20 reserved] 508 × [u32 block][u32 blocks]
//   directory:    [u32 magic "LXDR"][u32 index][u32 refs][u32 next][u32 crc][12 reserved] refs × u32 block
import { AstraError, Code, Errno } from "../../../lib/errors.ts";
import { BLOCK_SIZE, type BlockDevice } from "./blockdev.ts";
import { blockSeed, crc32cWithHole } from "./crc32c.ts";
import { corruptBlock } from "./node.ts";
import type { SpaceMap } from "./space.ts";

const PAGE_MAGIC = 0x504d584c; // "LXMP"
const DIRECTORY_MAGIC = 0x5244584c; // "LXDR"
const HEADER_SIZE = 32;
export const ENTRIES_PER_PAGE = (BLOCK_SIZE - HEADER_SIZE) / 8;
const REFS_PER_DIRECTORY_BLOCK = (BLOCK_SIZE - HEADER_SIZE) / 4;
const PAGE_CRC_OFFSET = 8;
const DIRECTORY_CRC_OFFSET = 16;

export interface TableLocation {
  /** First directory block; 0 for an empty table. */
  directory: number;
  /** Mapping pages in the table. */
  pages: number;
}

export class NodeTable {
  /** Per id: first block (0 while a new node has not been written yet). */
  #blocks = new Uint32Array(0);
  /** Per id: extent length in blocks; 0 marks a free id. */
  #lengths = new Uint32Array(0);
  #pageBlocks: number[] = [];
  #directoryBlocks: number[] = [];
  #dirtyPages = new Set<number>();
  /** Free ids, largest first so that pop() reuses the smallest. */
  #freeIds: number[] = [];
  #live = 0;

  /** Ids in use (tree nodes and overflow extents). */
  get liveIds(): number {
    return this.#live;
  }

  get capacity(): number {
    return this.#blocks.length;
  }

  get pages(): number {
    return this.#pageBlocks.length;
  }

  /** Blocks holding the table itself in the last checkpoint (mapping pages and directory). */
  metadataBlocks(): number[] {
    return [...this.#pageBlocks.filter((b) => b !== 0), ...this.#directoryBlocks];
  }

  isLive(id: number): boolean {
    return id > 0 && id < this.#lengths.length && this.#lengths[id] !== 0;
  }

  blockOf(id: number): number {
    return this.#blocks[id];
  }

  lengthOf(id: number): number {
    return this.#lengths[id];
  }

  /** Every live id with its extent. */
  *entries(): Generator<{ id: number; block: number; length: number }> {
    for (let id = 1; id < this.#lengths.length; id++) {
      if (this.#lengths[id] !== 0) yield { id, block: this.#blocks[id], length: this.#lengths[id] };
    }
  }

  /** A new id for an extent of `length` blocks, not yet placed anywhere. */
  allocate(length: number): number {
    if (this.#freeIds.length === 0) this.#grow();
    const id = this.#freeIds.pop()!;
    this.#lengths[id] = length;
    this.#blocks[id] = 0;
    this.#live++;
    this.#touch(id);
    return id;
  }

  place(id: number, block: number, length: number): void {
    this.#blocks[id] = block;
    this.#lengths[id] = length;
    this.#touch(id);
  }

  release(id: number): void {
    if (!this.isLive(id)) {
      throw new AstraError(Code.INTERNAL, Errno.EIO, `node id ${id} released twice`);
    }
    this.#blocks[id] = 0;
    this.#lengths[id] = 0;
    this.#freeIds.push(id);
    this.#live--;
    this.#touch(id);
  }

  /**
   * Reads the table of a checkpoint and claims its blocks (table and extents) in `space`.
   * Corruption — a bad checksum, an extent outside the data region, two owners of a block — is
   * reported as DATA_LOSS naming the block.
   */
  static async load(device: BlockDevice, space: SpaceMap, location: TableLocation): Promise<NodeTable> {
    const table = new NodeTable();
    const pageBlocks: number[] = [];
    let directory = location.directory;
    for (let index = 0; directory !== 0; index++) {
      if (index * REFS_PER_DIRECTORY_BLOCK >= location.pages || !space.claim(directory, 1)) {
        throw corruptBlock(
          directory,
          "node table directory chain is longer than the superblock says or loops",
        );
      }
      const buf = await device.readBlocks(directory, 1);
      const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
      if (view.getUint32(0, true) !== DIRECTORY_MAGIC || view.getUint32(4, true) !== index) {
        throw corruptBlock(directory, "not a node table directory block");
      }
      if (
        crc32cWithHole(buf, DIRECTORY_CRC_OFFSET, blockSeed(directory)) !==
          view.getUint32(DIRECTORY_CRC_OFFSET, true)
      ) {
        throw corruptBlock(directory, "checksum mismatch in node table directory");
      }
      const refs = view.getUint32(8, true);
      if (refs > REFS_PER_DIRECTORY_BLOCK) throw corruptBlock(directory, `directory claims ${refs} pages`);
      for (let i = 0; i < refs; i++) pageBlocks.push(view.getUint32(HEADER_SIZE + i * 4, true));
      table.#directoryBlocks.push(directory);
      directory = view.getUint32(12, true);
    }
    if (pageBlocks.length !== location.pages) {
      throw new AstraError(
        Code.DATA_LOSS,
        Errno.EUCLEAN,
        `node table directory lists ${pageBlocks.length} pages, the superblock ${location.pages}`,
      );
    }
    const capacity = location.pages * ENTRIES_PER_PAGE;
    table.#blocks = new Uint32Array(capacity);
    table.#lengths = new Uint32Array(capacity);
    table.#pageBlocks = pageBlocks;
    for (let page = 0; page < pageBlocks.length; page++) {
      const block = pageBlocks[page];
      if (!space.claim(block, 1)) {
        throw corruptBlock(block, `mapping page ${page} overlaps another structure`);
      }
      const buf = await device.readBlocks(block, 1);
      const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
      if (view.getUint32(0, true) !== PAGE_MAGIC || view.getUint32(4, true) !== page) {
        throw corruptBlock(block, `not mapping page ${page} of the node table`);
      }
      if (crc32cWithHole(buf, PAGE_CRC_OFFSET, blockSeed(block)) !== view.getUint32(PAGE_CRC_OFFSET, true)) {
        throw corruptBlock(block, `checksum mismatch in mapping page ${page}`);
      }
      for (let i = 0; i < ENTRIES_PER_PAGE; i++) {
        const id = page * ENTRIES_PER_PAGE + i;
        const first = view.getUint32(HEADER_SIZE + i * 8, true);
        const length = view.getUint32(HEADER_SIZE + i * 8 + 4, true);
        if (length === 0) continue;
        if (id === 0 || !space.claim(first, length)) {
          throw corruptBlock(
            block,
            `node ${id} maps to blocks ${first}+${length}, outside the data region or shared`,
          );
        }
        table.#blocks[id] = first;
        table.#lengths[id] = length;
        table.#live++;
      }
    }
    for (let id = capacity - 1; id >= 1; id--) if (table.#lengths[id] === 0) table.#freeIds.push(id);
    return table;
  }

  /**
   * Writes the pages changed since the last checkpoint and a new directory, all to fresh blocks,
   * and returns where the new table is. The blocks they replace are released (they stay
   * reserved until the checkpoint completes).
   */
  async persist(device: BlockDevice, space: SpaceMap): Promise<TableLocation> {
    const dirty = [...this.#dirtyPages].sort((a, b) => a - b);
    for (const page of dirty) {
      const block = space.allocate();
      const buf = new Uint8Array(BLOCK_SIZE);
      const view = new DataView(buf.buffer);
      view.setUint32(0, PAGE_MAGIC, true);
      view.setUint32(4, page, true);
      for (let i = 0; i < ENTRIES_PER_PAGE; i++) {
        const id = page * ENTRIES_PER_PAGE + i;
        view.setUint32(HEADER_SIZE + i * 8, this.#blocks[id], true);
        view.setUint32(HEADER_SIZE + i * 8 + 4, this.#lengths[id], true);
      }
      view.setUint32(PAGE_CRC_OFFSET, crc32cWithHole(buf, PAGE_CRC_OFFSET, blockSeed(block)), true);
      await device.writeBlocks(block, buf);
      if (this.#pageBlocks[page] !== 0) space.release(this.#pageBlocks[page], 1);
      this.#pageBlocks[page] = block;
    }
    this.#dirtyPages.clear();
    if (dirty.length === 0 && this.#directoryBlocks.length > 0) {
      return { directory: this.#directoryBlocks[0], pages: this.#pageBlocks.length };
    }
    for (const block of this.#directoryBlocks) space.release(block, 1);
    const count = Math.ceil(this.#pageBlocks.length / REFS_PER_DIRECTORY_BLOCK);
    const blocks = Array.from({ length: count }, () => space.allocate());
    for (let index = 0; index < count; index++) {
      const buf = new Uint8Array(BLOCK_SIZE);
      const view = new DataView(buf.buffer);
      const refs = this.#pageBlocks.slice(
        index * REFS_PER_DIRECTORY_BLOCK,
        (index + 1) * REFS_PER_DIRECTORY_BLOCK,
      );
      view.setUint32(0, DIRECTORY_MAGIC, true);
      view.setUint32(4, index, true);
      view.setUint32(8, refs.length, true);
      view.setUint32(12, index + 1 < count ? blocks[index + 1] : 0, true);
      refs.forEach((ref, i) => view.setUint32(HEADER_SIZE + i * 4, ref, true));
      view.setUint32(
        DIRECTORY_CRC_OFFSET,
        crc32cWithHole(buf, DIRECTORY_CRC_OFFSET, blockSeed(blocks[index])),
        true,
      );
      await device.writeBlocks(blocks[index], buf);
    }
    this.#directoryBlocks = blocks;
    return { directory: blocks[0] ?? 0, pages: this.#pageBlocks.length };
  }

  #grow(): void {
    const page = this.#pageBlocks.length;
    const capacity = (page + 1) * ENTRIES_PER_PAGE;
    const blocks = new Uint32Array(capacity);
    const lengths = new Uint32Array(capacity);
    blocks.set(this.#blocks);
    lengths.set(this.#lengths);
    this.#blocks = blocks;
    this.#lengths = lengths;
    this.#pageBlocks.push(0);
    for (let id = capacity - 1; id >= Math.max(1, page * ENTRIES_PER_PAGE); id--) this.#freeIds.push(id);
    this.#dirtyPages.add(page);
  }

  #touch(id: number): void {
    this.#dirtyPages.add(Math.floor(id / ENTRIES_PER_PAGE));
  }
}

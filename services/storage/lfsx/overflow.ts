// Overflow extents hold values too large to stay in a leaf. A value is a chain of extents
// (contiguous runs of blocks; one run when the free space allows), each with its own node id:
//
//   [u32 magic "LXOV"][u32 id][u32 data bytes in this extent][u32 next extent id (0 = last)]
//   [u32 blocks][u32 crc over the whole extent (this field read as zero), seeded with its first block]
//   [8 reserved] data…
//
// Extents are immutable: a new value gets new extents and the old ones are released, so they
// are written once, to fresh blocks, the moment the value is stored.
import { DEFAULT_MAX_MESSAGE_BYTES } from "../../../lib/config.ts";
import { AstraError, Code, Errno } from "../../../lib/errors.ts";
import { BLOCK_SIZE, type BlockDevice } from "./blockdev.ts";
import { blockSeed, crc32cWithHole } from "./crc32c.ts";
import { corruptBlock, OverflowRef } from "./node.ts";
import type { NodeTable } from "./nodetable.ts";
import type { SpaceMap } from "./space.ts";

const OVERFLOW_MAGIC = 0x564f584c; // "LXOV"
const HEADER_SIZE = 32;
const CRC_OFFSET = 20;
/**
 * Room kept beside a value in a message of the contract. The largest envelope a value travels in
 * is a one-entry Scan page: the entry's key of up to 1024 bytes, the continuation (another such
 * key), and the field tags and lengths — about 2.1 KiB.
 */
export const VALUE_ENVELOPE_BYTES = 4096;
/**
 * Largest value LFSX stores: what fits in one message of either transport with its envelope, so
 * that any value stored can also be put and read over the contract (LfsxService's comment says so).
 */
export const MAX_VALUE_LENGTH = DEFAULT_MAX_MESSAGE_BYTES - VALUE_ENVELOPE_BYTES;

export interface ExtentInfo {
  id: number;
  block: number;
  blocks: number;
  dataBytes: number;
}

export class OverflowStore {
  constructor(
    private readonly device: BlockDevice,
    private readonly table: NodeTable,
    private readonly space: SpaceMap,
  ) {}

  /** Stores `value` in new extents and returns the reference a leaf keeps. */
  async write(value: Uint8Array): Promise<OverflowRef> {
    const runs: { id: number; start: number; count: number; offset: number; bytes: number }[] = [];
    let offset = 0;
    do {
      const want = Math.ceil((value.length - offset + HEADER_SIZE) / BLOCK_SIZE);
      const { start, count } = this.space.allocateRun(want);
      const bytes = Math.min(value.length - offset, count * BLOCK_SIZE - HEADER_SIZE);
      const id = this.table.allocate(count);
      this.table.place(id, start, count);
      runs.push({ id, start, count, offset, bytes });
      offset += bytes;
    } while (offset < value.length);
    for (let i = 0; i < runs.length; i++) {
      const run = runs[i];
      const buf = new Uint8Array(run.count * BLOCK_SIZE);
      const view = new DataView(buf.buffer);
      view.setUint32(0, OVERFLOW_MAGIC, true);
      view.setUint32(4, run.id, true);
      view.setUint32(8, run.bytes, true);
      view.setUint32(12, i + 1 < runs.length ? runs[i + 1].id : 0, true);
      view.setUint32(16, run.count, true);
      buf.set(value.subarray(run.offset, run.offset + run.bytes), HEADER_SIZE);
      view.setUint32(CRC_OFFSET, crc32cWithHole(buf, CRC_OFFSET, blockSeed(run.start)), true);
      await this.device.writeBlocks(run.start, buf);
    }
    return new OverflowRef(runs[0].id, value.length);
  }

  /** Reads and verifies the whole value. */
  async read(ref: OverflowRef): Promise<Uint8Array> {
    const out = new Uint8Array(ref.length);
    let offset = 0;
    await this.#walk(ref, true, (extent, data) => {
      if (offset + data.length > ref.length) {
        throw corruptBlock(extent.block, `overflow chain is longer than the ${ref.length}-byte value`);
      }
      out.set(data, offset);
      offset += data.length;
    });
    if (offset !== ref.length) {
      throw new AstraError(
        Code.DATA_LOSS,
        Errno.EUCLEAN,
        `overflow value of extent ${ref.id} holds ${offset} bytes, its leaf says ${ref.length}`,
      );
    }
    return out;
  }

  /** Releases every extent of the value; only their headers are read. */
  async free(ref: OverflowRef): Promise<void> {
    const extents: ExtentInfo[] = [];
    await this.#walk(ref, false, (extent) => extents.push(extent));
    for (const extent of extents) {
      this.space.release(extent.block, extent.blocks);
      this.table.release(extent.id);
    }
  }

  /** The extents of a value, fully verified (for the validator). */
  async extents(ref: OverflowRef): Promise<ExtentInfo[]> {
    const extents: ExtentInfo[] = [];
    await this.#walk(ref, true, (extent) => extents.push(extent));
    return extents;
  }

  async #walk(
    ref: OverflowRef,
    verify: boolean,
    visit: (extent: ExtentInfo, data: Uint8Array) => void,
  ): Promise<void> {
    const seen = new Set<number>();
    for (let id = ref.id; id !== 0;) {
      if (seen.has(id) || !this.table.isLive(id)) {
        throw new AstraError(
          Code.DATA_LOSS,
          Errno.EUCLEAN,
          `overflow chain of extent ${ref.id} reaches ${seen.has(id) ? "a loop" : "a free id"} at id ${id}`,
        );
      }
      seen.add(id);
      const block = this.table.blockOf(id);
      const blocks = this.table.lengthOf(id);
      const buf = await this.device.readBlocks(block, verify ? blocks : 1);
      const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
      if (view.getUint32(0, true) !== OVERFLOW_MAGIC || view.getUint32(4, true) !== id) {
        throw corruptBlock(block, `not overflow extent ${id}`);
      }
      const dataBytes = view.getUint32(8, true);
      if (view.getUint32(16, true) !== blocks || dataBytes > blocks * BLOCK_SIZE - HEADER_SIZE) {
        throw corruptBlock(block, `overflow extent ${id} header disagrees with the node table`);
      }
      if (verify && crc32cWithHole(buf, CRC_OFFSET, blockSeed(block)) !== view.getUint32(CRC_OFFSET, true)) {
        throw corruptBlock(block, `checksum mismatch in overflow extent ${id}`);
      }
      visit({ id, block, blocks, dataBytes }, buf.subarray(HEADER_SIZE, HEADER_SIZE + dataBytes));
      id = view.getUint32(12, true);
    }
  }
}

// LFSX on a device of the block layer (an NVMe namespace, a SATA disk): the device seen in LFSX's
// 4 KiB blocks whatever its own LBA size, with requests larger than one block-layer request allows
// (a journal group or an overflow value near the value limit) split into several. The pieces of one
// request go out together; LFSX orders its writes only by flushes, so their order does not matter.
//
// The device's failures pass through with their status and errno (a removed device fails
// FAILED_PRECONDITION/ENODEV naming it), minus the request argument the block layer blames: a
// device failing under LFSX is never the fault of an argument of the caller's request.
import { AstraError } from "../../../lib/errors.ts";
import { type BlockDevice as LayerDevice, type BlockDeviceView, MAX_REQUEST_BYTES } from "../block.ts";
import { BLOCK_SIZE, type BlockDevice } from "./blockdev.ts";

/** Blocks of one request to the block layer. */
const BLOCKS_PER_REQUEST = Math.floor(MAX_REQUEST_BYTES / BLOCK_SIZE);

function deviceFailure(err: unknown): unknown {
  if (err instanceof AstraError) err.detail.argument = "";
  return err;
}

export class BlockLayerDevice implements BlockDevice {
  readonly blockSize = BLOCK_SIZE;
  readonly blockCount: number;
  readonly #view: BlockDeviceView;

  constructor(readonly device: LayerDevice) {
    this.#view = device.withBlockSize(BLOCK_SIZE);
    this.blockCount = this.#view.blockCount;
  }

  async readBlocks(first: number, count: number): Promise<Uint8Array> {
    try {
      if (count <= BLOCKS_PER_REQUEST) return await this.#view.readBlocks(first, count);
      const out = new Uint8Array(count * BLOCK_SIZE);
      const pieces: Promise<void>[] = [];
      for (let done = 0; done < count; done += BLOCKS_PER_REQUEST) {
        const n = Math.min(BLOCKS_PER_REQUEST, count - done);
        pieces.push(this.#view.readBlocks(first + done, n).then((data) => out.set(data, done * BLOCK_SIZE)));
      }
      await Promise.all(pieces);
      return out;
    } catch (err) {
      throw deviceFailure(err);
    }
  }

  async writeBlocks(first: number, data: Uint8Array): Promise<void> {
    try {
      const count = data.length / BLOCK_SIZE;
      if (count <= BLOCKS_PER_REQUEST) return await this.#view.writeBlocks(first, data);
      const pieces: Promise<void>[] = [];
      for (let done = 0; done < count; done += BLOCKS_PER_REQUEST) {
        const n = Math.min(BLOCKS_PER_REQUEST, count - done);
        pieces.push(
          this.#view.writeBlocks(first + done, data.subarray(done * BLOCK_SIZE, (done + n) * BLOCK_SIZE)),
        );
      }
      await Promise.all(pieces);
    } catch (err) {
      throw deviceFailure(err);
    }
  }

  async flush(): Promise<void> {
    try {
      await this.#view.flush();
    } catch (err) {
      throw deviceFailure(err);
    }
  }

  /** The device belongs to the block layer and stays attached; only what was written is made stable. */
  async close(): Promise<void> {
    try {
      await this.#view.close();
    } catch (err) {
      throw deviceFailure(err);
    }
  }
}

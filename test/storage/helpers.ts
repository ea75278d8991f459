// Shared fixtures of the storage tests: a bare B+ tree on a memory device, and volumes.
import { MemoryBlockDevice } from "../../services/storage/lfsx/blockdev.ts";
import { BPlusTree } from "../../services/storage/lfsx/btree.ts";
import { NodeCache } from "../../services/storage/lfsx/cache.ts";
import { checkTree, type FsckReport } from "../../services/storage/lfsx/fsck.ts";
import { NodeTable } from "../../services/storage/lfsx/nodetable.ts";
import { OverflowStore } from "../../services/storage/lfsx/overflow.ts";
import { SpaceMap } from "../../services/storage/lfsx/space.ts";
import { type FormatOptions, type MountOptions, Volume } from "../../services/storage/lfsx/volume.ts";

export const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
export const text = (data: Uint8Array | undefined): string | undefined =>
  data === undefined ? undefined : new TextDecoder().decode(data);

export interface TreeFixture {
  device: MemoryBlockDevice;
  space: SpaceMap;
  table: NodeTable;
  cache: NodeCache;
  tree: BPlusTree;
  check(): Promise<FsckReport>;
}

/** A tree with no volume around it; the first 8 blocks stand in for the fixed regions. */
export function treeOnMemory(options: { cacheNodes?: number; blocks?: number } = {}): TreeFixture {
  const device = new MemoryBlockDevice(options.blocks ?? 20_000);
  const space = new SpaceMap(device.blockCount, 8);
  const table = new NodeTable();
  const cache = new NodeCache(device, table, space, options.cacheNodes ?? 16);
  const tree = BPlusTree.create(cache, new OverflowStore(device, table, space));
  return {
    device,
    space,
    table,
    cache,
    tree,
    check: () => tree.exclusive(() => checkTree(tree, table, space)),
  };
}

export async function formattedVolume(
  blocks = 2048,
  format: FormatOptions = {},
  mount: MountOptions = {},
): Promise<{ device: MemoryBlockDevice; volume: Volume }> {
  const device = new MemoryBlockDevice(blocks);
  await Volume.format(device, format);
  return { device, volume: await Volume.mount(device, mount) };
}

/** Puts every pair in one transaction and commits it. */
export async function commitAll(volume: Volume, pairs: [string, string | null][]): Promise<number> {
  const txn = volume.begin();
  for (const [key, value] of pairs) {
    if (value === null) await volume.delete(txn.id, bytes(key));
    else await volume.put(txn.id, bytes(key), bytes(value));
  }
  return (await volume.commit(txn.id)).version;
}

/** Everything committed, as text. */
export async function dump(volume: Volume): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let continuation: Uint8Array | undefined;
  do {
    const page = await volume.scanLatest({ limit: 500, continuation });
    for (const { key, value } of page.entries) out.set(text(key)!, text(value)!);
    continuation = page.continuation;
  } while (continuation);
  return out;
}

// On-disk format of B+ tree nodes. A node is one 4 KiB block:
//
//   header (32 bytes, little-endian)
//     0  u32 magic "LXND"        12 u32 previous leaf (leaves; 0 = none)
//     4  u8  kind (1 leaf, 2 internal)   16 u32 next leaf (leaves; 0 = none)
//     5  u8  level (0 = leaf)    20 u32 body bytes in use
//     6  u16 entry count         24 u32 CRC-32C of the block (this field read as zero),
//     8  u32 node id                    seeded with the block number
//                                28 u32 reserved (zero)
//   body
//     leaf:     count × [u16 key length][u16 value info][key][value]
//               value info < 0x8000: inline value of that many bytes;
//               0x8000: the value lives in an overflow extent, body holds [u32 extent id][u32 length]
//     internal: [u32 child 0] then count × [u16 key length][key][u32 child]
//
// Nodes name each other by node id, not block: the node table maps ids to blocks, so a node can
// move (copy-on-write at checkpoint) without rewriting its parent or its leaf neighbours.
import { AstraError, Code, Errno } from "../../../lib/errors.ts";
import { BLOCK_SIZE } from "./blockdev.ts";
import { blockSeed, crc32cWithHole } from "./crc32c.ts";
import { type Key, writeKey } from "./keys.ts";

export const NODE_MAGIC = 0x444e584c; // "LXND"
export const NODE_HEADER_SIZE = 32;
/** Body bytes a node can hold. */
export const NODE_CAPACITY = BLOCK_SIZE - NODE_HEADER_SIZE;
/**
 * A node other than the root never holds fewer body bytes than this. With keys of at most
 * MAX_KEY_LENGTH bytes, a split or a redistribution at the byte midpoint always leaves both
 * halves above it, so the bound is an invariant, not a hope.
 */
export const MIN_FILL = Math.floor(NODE_CAPACITY / 5);
export const MAX_KEY_LENGTH = 1024;
/** A leaf entry larger than this moves its value to an overflow extent. */
export const MAX_INLINE_ENTRY = 1024;
export const LEAF_ENTRY_OVERHEAD = 4;
export const OVERFLOW_REF_SIZE = 8;
/** Key length and child id of one internal entry. */
export const INTERNAL_ENTRY_OVERHEAD = 6;
/** The first child of an internal node. */
export const INTERNAL_BASE_SIZE = 4;

const KIND_LEAF = 1;
const KIND_INTERNAL = 2;
const CRC_OFFSET = 24;
const OVERFLOW_FLAG = 0x8000;

/** A value stored outside the leaf: the first extent of its chain and the value's length. */
export class OverflowRef {
  constructor(readonly id: number, readonly length: number) {}
}

export type LeafValue = Uint8Array | OverflowRef;

/** What the node cache keeps for every node: dirtiness and its place in the LRU list. */
abstract class CachedNode {
  dirty = false;
  lruPrev: TreeNode | null = null;
  lruNext: TreeNode | null = null;
  /** Body bytes in use, kept up to date by every change. */
  bytes: number;

  constructor(readonly id: number, bytes: number) {
    this.bytes = bytes;
  }
}

export class LeafNode extends CachedNode {
  readonly leaf = true;
  readonly level = 0;
  keys: Key[] = [];
  values: LeafValue[] = [];
  prev = 0;
  next = 0;

  constructor(id: number) {
    super(id, 0);
  }
}

export class InternalNode extends CachedNode {
  readonly leaf = false;
  keys: Key[] = [];
  /** One more than keys: child i holds the keys k with keys[i-1] <= k < keys[i]. */
  children: number[] = [];

  constructor(id: number, readonly level: number) {
    super(id, INTERNAL_BASE_SIZE);
  }
}

export type TreeNode = LeafNode | InternalNode;

export function valueSize(value: LeafValue): number {
  return value instanceof OverflowRef ? OVERFLOW_REF_SIZE : value.length;
}

export function leafEntrySize(key: Key, value: LeafValue): number {
  return LEAF_ENTRY_OVERHEAD + key.length + valueSize(value);
}

export function internalEntrySize(key: Key): number {
  return INTERNAL_ENTRY_OVERHEAD + key.length;
}

/** Whether a value of this length stays in the leaf next to a key of this length. */
export function fitsInline(keyLength: number, valueLength: number): boolean {
  return LEAF_ENTRY_OVERHEAD + keyLength + valueLength <= MAX_INLINE_ENTRY;
}

/** Recomputes a node's body size from its entries (used by the validator). */
export function measureNode(node: TreeNode): number {
  let bytes = node.leaf ? 0 : INTERNAL_BASE_SIZE;
  if (node.leaf) {
    for (let i = 0; i < node.keys.length; i++) bytes += leafEntrySize(node.keys[i], node.values[i]);
  } else {
    for (const key of node.keys) bytes += internalEntrySize(key);
  }
  return bytes;
}

export function encodeNode(node: TreeNode, block: number): Uint8Array {
  const buf = new Uint8Array(BLOCK_SIZE);
  const view = new DataView(buf.buffer);
  view.setUint32(0, NODE_MAGIC, true);
  buf[4] = node.leaf ? KIND_LEAF : KIND_INTERNAL;
  buf[5] = node.level;
  view.setUint16(6, node.keys.length, true);
  view.setUint32(8, node.id, true);
  view.setUint32(20, node.bytes, true);
  let p = NODE_HEADER_SIZE;
  if (node.leaf) {
    view.setUint32(12, node.prev, true);
    view.setUint32(16, node.next, true);
    for (let i = 0; i < node.keys.length; i++) {
      const key = node.keys[i];
      const value = node.values[i];
      view.setUint16(p, key.length, true);
      if (value instanceof OverflowRef) {
        view.setUint16(p + 2, OVERFLOW_FLAG, true);
        p = writeKey(buf, p + 4, key);
        view.setUint32(p, value.id, true);
        view.setUint32(p + 4, value.length, true);
        p += OVERFLOW_REF_SIZE;
      } else {
        view.setUint16(p + 2, value.length, true);
        p = writeKey(buf, p + 4, key);
        buf.set(value, p);
        p += value.length;
      }
    }
  } else {
    view.setUint32(p, node.children[0], true);
    p += 4;
    for (let i = 0; i < node.keys.length; i++) {
      const key = node.keys[i];
      view.setUint16(p, key.length, true);
      p = writeKey(buf, p + 2, key);
      view.setUint32(p, node.children[i + 1], true);
      p += 4;
    }
  }
  if (p - NODE_HEADER_SIZE !== node.bytes || node.bytes > NODE_CAPACITY) {
    throw new AstraError(
      Code.INTERNAL,
      Errno.EIO,
      `node ${node.id} claims ${node.bytes} body bytes but encodes to ${p - NODE_HEADER_SIZE}`,
    );
  }
  view.setUint32(CRC_OFFSET, crc32cWithHole(buf, CRC_OFFSET, blockSeed(block)), true);
  return buf;
}

/** The error for a block whose contents cannot be trusted. It names the block; data is never returned. */
export function corruptBlock(block: number, what: string): AstraError {
  return new AstraError(Code.DATA_LOSS, Errno.EUCLEAN, `corrupt block ${block}: ${what}`, {
    facts: { block: String(block) },
  });
}

/** Decodes and verifies the node `expectedId` read from `block`. */
export function decodeNode(buf: Uint8Array, block: number, expectedId: number): TreeNode {
  const view = new DataView(buf.buffer, buf.byteOffset, BLOCK_SIZE);
  if (view.getUint32(0, true) !== NODE_MAGIC) throw corruptBlock(block, "not a B+ tree node (bad magic)");
  const stored = view.getUint32(CRC_OFFSET, true);
  if (crc32cWithHole(buf.subarray(0, BLOCK_SIZE), CRC_OFFSET, blockSeed(block)) !== stored) {
    throw corruptBlock(block, `checksum mismatch in node ${expectedId}`);
  }
  const id = view.getUint32(8, true);
  if (id !== expectedId) throw corruptBlock(block, `holds node ${id} where node ${expectedId} was expected`);
  const kind = buf[4];
  const level = buf[5];
  const count = view.getUint16(6, true);
  const bytes = view.getUint32(20, true);
  if (bytes > NODE_CAPACITY) throw corruptBlock(block, `node ${id} claims ${bytes} body bytes`);
  const end = NODE_HEADER_SIZE + bytes;
  let p = NODE_HEADER_SIZE;
  const overrun = () => corruptBlock(block, `entries of node ${id} run past its body`);
  if (kind === KIND_LEAF) {
    if (level !== 0) throw corruptBlock(block, `leaf ${id} at level ${level}`);
    const node = new LeafNode(id);
    node.prev = view.getUint32(12, true);
    node.next = view.getUint32(16, true);
    for (let i = 0; i < count; i++) {
      if (p + LEAF_ENTRY_OVERHEAD > end) throw overrun();
      const keyLength = view.getUint16(p, true);
      const info = view.getUint16(p + 2, true);
      p += LEAF_ENTRY_OVERHEAD;
      const valueLength = info === OVERFLOW_FLAG ? OVERFLOW_REF_SIZE : info;
      if (info > OVERFLOW_FLAG || p + keyLength + valueLength > end) throw overrun();
      node.keys.push(String.fromCharCode.apply(null, buf.subarray(p, p + keyLength) as unknown as number[]));
      p += keyLength;
      if (info === OVERFLOW_FLAG) {
        node.values.push(new OverflowRef(view.getUint32(p, true), view.getUint32(p + 4, true)));
      } else {
        node.values.push(buf.subarray(p, p + valueLength));
      }
      p += valueLength;
    }
    if (p !== end) {
      throw corruptBlock(block, `leaf ${id} body is ${p - NODE_HEADER_SIZE} bytes, header says ${bytes}`);
    }
    node.bytes = bytes;
    return node;
  }
  if (kind === KIND_INTERNAL) {
    if (level === 0) throw corruptBlock(block, `internal node ${id} at level 0`);
    const node = new InternalNode(id, level);
    if (p + INTERNAL_BASE_SIZE > end) throw overrun();
    node.children.push(view.getUint32(p, true));
    p += INTERNAL_BASE_SIZE;
    for (let i = 0; i < count; i++) {
      if (p + 2 > end) throw overrun();
      const keyLength = view.getUint16(p, true);
      p += 2;
      if (p + keyLength + 4 > end) throw overrun();
      node.keys.push(String.fromCharCode.apply(null, buf.subarray(p, p + keyLength) as unknown as number[]));
      p += keyLength;
      node.children.push(view.getUint32(p, true));
      p += 4;
    }
    if (p !== end) {
      throw corruptBlock(
        block,
        `internal node ${id} body is ${p - NODE_HEADER_SIZE} bytes, header says ${bytes}`,
      );
    }
    node.bytes = bytes;
    return node;
  }
  throw corruptBlock(block, `unknown node kind ${kind}`);
}

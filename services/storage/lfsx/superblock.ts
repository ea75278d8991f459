// The superblock: the root of everything on an LFSX volume, kept in two copies (blocks 0 and 1).
// A checkpoint writes the first copy, flushes, writes the second and flushes again, so at any
// instant at least one copy is complete and both describe a checkpoint whose blocks are intact.
// Mount takes the valid copy with the highest generation and rewrites the other.
//
//   0 u32 magic "LFSX"   4 u32 format version   8 u32 block size   12 u32 copy (0 or 1)
//  16 u64 block count    24 u64 generation (checkpoints since format)
//  32 u32 journal start  36 u32 journal blocks  40 u32 first data block
//  44 u32 root node      48 u32 tree height     52 u32 node table directory  56 u32 node table pages
//  60 u32 journal salt   64 u64 entries         72 u64 journal generation start (block sequence)
//  80 u64 next journal record sequence          88 u64 next transaction id
//  96 u64 last commit version                  104 u64 format time (ms)   112 u64 checkpoint time (ms)
// 120 16 bytes volume UUID                     136 64 bytes label (UTF-8, zero-padded)
// 4092 u32 CRC-32C of bytes 0..4091, seeded with the copy's block number
import { BLOCK_SIZE } from "./blockdev.ts";
import { blockSeed, crc32c } from "./crc32c.ts";

export const SUPERBLOCK_MAGIC = 0x5853464c; // "LFSX"
export const FORMAT_VERSION = 1;
export const SUPERBLOCK_COPIES = 2;
export const MAX_LABEL_BYTES = 64;
const CRC_OFFSET = BLOCK_SIZE - 4;

export interface Superblock {
  blockCount: number;
  generation: number;
  journalStart: number;
  journalBlocks: number;
  firstDataBlock: number;
  root: number;
  height: number;
  entries: number;
  tableDirectory: number;
  tablePages: number;
  journalSalt: number;
  journalGenerationStart: number;
  journalNextSequence: number;
  nextTransactionId: number;
  lastCommitVersion: number;
  formatTime: number;
  checkpointTime: number;
  uuid: string;
  label: string;
}

function setU64(view: DataView, offset: number, value: number): void {
  view.setUint32(offset, value >>> 0, true);
  view.setUint32(offset + 4, Math.floor(value / 0x1_0000_0000), true);
}

function getU64(view: DataView, offset: number): number {
  return view.getUint32(offset, true) + view.getUint32(offset + 4, true) * 0x1_0000_0000;
}

export function encodeSuperblock(sb: Superblock, copy: number): Uint8Array {
  const buf = new Uint8Array(BLOCK_SIZE);
  const view = new DataView(buf.buffer);
  view.setUint32(0, SUPERBLOCK_MAGIC, true);
  view.setUint32(4, FORMAT_VERSION, true);
  view.setUint32(8, BLOCK_SIZE, true);
  view.setUint32(12, copy, true);
  setU64(view, 16, sb.blockCount);
  setU64(view, 24, sb.generation);
  view.setUint32(32, sb.journalStart, true);
  view.setUint32(36, sb.journalBlocks, true);
  view.setUint32(40, sb.firstDataBlock, true);
  view.setUint32(44, sb.root, true);
  view.setUint32(48, sb.height, true);
  view.setUint32(52, sb.tableDirectory, true);
  view.setUint32(56, sb.tablePages, true);
  view.setUint32(60, sb.journalSalt, true);
  setU64(view, 64, sb.entries);
  setU64(view, 72, sb.journalGenerationStart);
  setU64(view, 80, sb.journalNextSequence);
  setU64(view, 88, sb.nextTransactionId);
  setU64(view, 96, sb.lastCommitVersion);
  setU64(view, 104, sb.formatTime);
  setU64(view, 112, sb.checkpointTime);
  for (let i = 0; i < 16; i++) buf[120 + i] = parseInt(sb.uuid.slice(i * 2, i * 2 + 2), 16);
  buf.set(new TextEncoder().encode(sb.label).subarray(0, MAX_LABEL_BYTES), 136);
  view.setUint32(CRC_OFFSET, crc32c(buf.subarray(0, CRC_OFFSET), blockSeed(copy)), true);
  return buf;
}

/** The superblock in `buf` (copy `copy`), or the reason it cannot be used. */
export function decodeSuperblock(buf: Uint8Array, copy: number): Superblock | string {
  const view = new DataView(buf.buffer, buf.byteOffset, BLOCK_SIZE);
  if (view.getUint32(0, true) !== SUPERBLOCK_MAGIC) return "no LFSX superblock (bad magic)";
  if (crc32c(buf.subarray(0, CRC_OFFSET), blockSeed(copy)) !== view.getUint32(CRC_OFFSET, true)) {
    return "checksum mismatch";
  }
  const version = view.getUint32(4, true);
  if (version !== FORMAT_VERSION) return `format version ${version}, this engine reads ${FORMAT_VERSION}`;
  if (view.getUint32(8, true) !== BLOCK_SIZE) {
    return `block size ${view.getUint32(8, true)}, expected ${BLOCK_SIZE}`;
  }
  if (view.getUint32(12, true) !== copy) return `written as copy ${view.getUint32(12, true)}`;
  let uuid = "";
  for (let i = 0; i < 16; i++) uuid += buf[120 + i].toString(16).padStart(2, "0");
  const labelBytes = buf.subarray(136, 136 + MAX_LABEL_BYTES);
  const labelEnd = labelBytes.indexOf(0);
  return {
    blockCount: getU64(view, 16),
    generation: getU64(view, 24),
    journalStart: view.getUint32(32, true),
    journalBlocks: view.getUint32(36, true),
    firstDataBlock: view.getUint32(40, true),
    root: view.getUint32(44, true),
    height: view.getUint32(48, true),
    tableDirectory: view.getUint32(52, true),
    tablePages: view.getUint32(56, true),
    journalSalt: view.getUint32(60, true),
    entries: getU64(view, 64),
    journalGenerationStart: getU64(view, 72),
    journalNextSequence: getU64(view, 80),
    nextTransactionId: getU64(view, 88),
    lastCommitVersion: getU64(view, 96),
    formatTime: getU64(view, 104),
    checkpointTime: getU64(view, 112),
    uuid,
    label: new TextDecoder().decode(labelEnd < 0 ? labelBytes : labelBytes.subarray(0, labelEnd)),
  };
}

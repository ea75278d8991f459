// The structures the VFS writes into (or reads from) little-endian ppc64 guest memory, byte for
// byte as Linux lays them out: struct stat (arch/powerpc/include/uapi/asm/stat.h), struct statx
// (include/uapi/linux/stat.h), struct linux_dirent64, struct termios (powerpc termbits.h),
// struct winsize, struct statfs (asm-generic/statfs.h), struct timespec and struct timeval, and
// struct pollfd.
import type { DirectoryEntry, FsStatistics, NodeStat, Timestamp } from "./filesystem.ts";
import {
  deviceMajor,
  deviceMinor,
  NCCS,
  POLLFD_BYTES,
  STAT_BYTES,
  STATFS_BYTES,
  STATX_ATTR_MOUNT_ROOT,
  STATX_BYTES,
  TERMIOS_BYTES,
  TIME_PAIR_BYTES,
  WINSIZE_BYTES,
} from "./linux.ts";

const LE = true;
const encoder = new TextEncoder();

function u64(view: DataView, at: number, value: number): void {
  view.setBigUint64(at, BigInt(value), LE);
}

function s64(view: DataView, at: number, value: number): void {
  view.setBigInt64(at, BigInt(value), LE);
}

/** struct stat for ppc64: 144 bytes. */
export function encodeStat(stat: NodeStat): Uint8Array {
  const bytes = new Uint8Array(STAT_BYTES);
  const view = new DataView(bytes.buffer);
  u64(view, 0, stat.device);
  u64(view, 8, stat.inode);
  u64(view, 16, stat.links);
  view.setUint32(24, stat.mode, LE);
  view.setUint32(28, stat.uid, LE);
  view.setUint32(32, stat.gid, LE);
  u64(view, 40, stat.rdev);
  s64(view, 48, stat.size);
  u64(view, 56, stat.blockSize);
  u64(view, 64, stat.blocks);
  const times: Timestamp[] = [stat.accessTime, stat.modifyTime, stat.changeTime];
  times.forEach((time, i) => {
    s64(view, 72 + 16 * i, time.seconds);
    u64(view, 80 + 16 * i, time.nanoseconds);
  });
  return bytes;
}

function statxTimestamp(view: DataView, at: number, time: Timestamp): void {
  s64(view, at, time.seconds);
  view.setUint32(at + 8, time.nanoseconds, LE);
}

/** struct statx: 256 bytes; `mask` is what stx_mask reports as filled in. */
export function encodeStatx(stat: NodeStat, mask: number): Uint8Array {
  const bytes = new Uint8Array(STATX_BYTES);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, mask, LE);
  view.setUint32(4, stat.blockSize, LE);
  u64(view, 8, stat.mountRoot ? STATX_ATTR_MOUNT_ROOT : 0);
  view.setUint32(16, stat.links, LE);
  view.setUint32(20, stat.uid, LE);
  view.setUint32(24, stat.gid, LE);
  view.setUint16(28, stat.mode, LE);
  u64(view, 32, stat.inode);
  u64(view, 40, stat.size);
  u64(view, 48, stat.blocks);
  u64(view, 56, STATX_ATTR_MOUNT_ROOT);
  statxTimestamp(view, 64, stat.accessTime);
  if (stat.birthTime) statxTimestamp(view, 80, stat.birthTime);
  statxTimestamp(view, 96, stat.changeTime);
  statxTimestamp(view, 112, stat.modifyTime);
  view.setUint32(128, deviceMajor(stat.rdev), LE);
  view.setUint32(132, deviceMinor(stat.rdev), LE);
  view.setUint32(136, deviceMajor(stat.device), LE);
  view.setUint32(140, deviceMinor(stat.device), LE);
  u64(view, 144, stat.mountId);
  return bytes;
}

/** Bytes of one linux_dirent64 record: 19 bytes of header, the name, its NUL, padded to 8. */
export function direntRecordBytes(name: string): number {
  return (19 + encoder.encode(name).length + 1 + 7) & ~7;
}

/** A directory entry with the d_off a getdents64 caller resumes from after it. */
export interface PositionedEntry extends DirectoryEntry {
  nextOffset: number;
}

/** linux_dirent64 records for `entries`, in order. */
export function encodeDirents(entries: readonly PositionedEntry[]): Uint8Array {
  const total = entries.reduce((sum, e) => sum + direntRecordBytes(e.name), 0);
  const bytes = new Uint8Array(total);
  const view = new DataView(bytes.buffer);
  let at = 0;
  for (const entry of entries) {
    const name = encoder.encode(entry.name);
    const length = direntRecordBytes(entry.name);
    u64(view, at, entry.inode);
    s64(view, at + 8, entry.nextOffset);
    view.setUint16(at + 16, length, LE);
    view.setUint8(at + 18, entry.type);
    bytes.set(name, at + 19);
    at += length;
  }
  return bytes;
}

/** struct termios as powerpc lays it out. */
export interface Termios {
  iflag: number;
  oflag: number;
  cflag: number;
  lflag: number;
  /** c_cc[NCCS]. */
  cc: Uint8Array;
  line: number;
  ispeed: number;
  ospeed: number;
}

export function encodeTermios(termios: Termios): Uint8Array {
  const bytes = new Uint8Array(TERMIOS_BYTES);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, termios.iflag, LE);
  view.setUint32(4, termios.oflag, LE);
  view.setUint32(8, termios.cflag, LE);
  view.setUint32(12, termios.lflag, LE);
  bytes.set(termios.cc.subarray(0, NCCS), 16);
  view.setUint8(16 + NCCS, termios.line);
  view.setUint32(36, termios.ispeed, LE);
  view.setUint32(40, termios.ospeed, LE);
  return bytes;
}

export function decodeTermios(bytes: Uint8Array): Termios {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    iflag: view.getUint32(0, LE),
    oflag: view.getUint32(4, LE),
    cflag: view.getUint32(8, LE),
    lflag: view.getUint32(12, LE),
    cc: bytes.slice(16, 16 + NCCS),
    line: view.getUint8(16 + NCCS),
    ispeed: view.getUint32(36, LE),
    ospeed: view.getUint32(40, LE),
  };
}

export interface WindowSize {
  rows: number;
  columns: number;
  xPixels: number;
  yPixels: number;
}

export function encodeWindowSize(size: WindowSize): Uint8Array {
  const bytes = new Uint8Array(WINSIZE_BYTES);
  const view = new DataView(bytes.buffer);
  view.setUint16(0, size.rows, LE);
  view.setUint16(2, size.columns, LE);
  view.setUint16(4, size.xPixels, LE);
  view.setUint16(6, size.yPixels, LE);
  return bytes;
}

export function decodeWindowSize(bytes: Uint8Array): WindowSize {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    rows: view.getUint16(0, LE),
    columns: view.getUint16(2, LE),
    xPixels: view.getUint16(4, LE),
    yPixels: view.getUint16(6, LE),
  };
}

/** struct statfs for ppc64: every field a 64-bit word but f_fsid's two 32-bit ones. */
export function encodeStatfs(statistics: FsStatistics, flags: number): Uint8Array {
  const bytes = new Uint8Array(STATFS_BYTES);
  const view = new DataView(bytes.buffer);
  const words = [
    statistics.type,
    statistics.blockSize,
    statistics.blocks,
    statistics.freeBlocks,
    statistics.availableBlocks,
    statistics.files,
    statistics.freeFiles,
  ];
  words.forEach((word, i) => s64(view, 8 * i, word));
  view.setUint32(56, statistics.id[0], LE);
  view.setUint32(60, statistics.id[1], LE);
  s64(view, 64, statistics.nameMax);
  s64(view, 72, statistics.fragmentSize);
  s64(view, 80, flags);
  return bytes;
}

/** A struct timespec (tv_sec, tv_nsec) or struct timeval (tv_sec, tv_usec): two 64-bit words. */
export interface TimePair {
  seconds: number;
  fraction: number;
}

export function decodeTimePair(bytes: Uint8Array, at = 0): TimePair {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    seconds: Number(view.getBigInt64(at, LE)),
    fraction: Number(view.getBigInt64(at + 8, LE)),
  };
}

export function encodeTimePair(time: TimePair): Uint8Array {
  const bytes = new Uint8Array(TIME_PAIR_BYTES);
  const view = new DataView(bytes.buffer);
  s64(view, 0, time.seconds);
  s64(view, 8, time.fraction);
  return bytes;
}

/** struct pollfd[count]: int fd, short events (and short revents, which poll fills in). */
export function decodePollfds(bytes: Uint8Array, count: number): { fd: number; events: number }[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Array.from({ length: count }, (_, i) => ({
    fd: view.getInt32(i * POLLFD_BYTES, LE),
    events: view.getUint16(i * POLLFD_BYTES + 4, LE),
  }));
}

/** A copy of the pollfd array `bytes` with each revents replaced. */
export function withRevents(bytes: Uint8Array, revents: readonly number[]): Uint8Array {
  // Copied by the constructor: a Node Buffer's slice() would be a view of the request's memory.
  const out = new Uint8Array(bytes.subarray(0, revents.length * POLLFD_BYTES));
  const view = new DataView(out.buffer);
  revents.forEach((value, i) => view.setUint16(i * POLLFD_BYTES + 6, value, LE));
  return out;
}

export function encodeInt32(value: number): Uint8Array {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setInt32(0, value, LE);
  return bytes;
}

export function encodeInt64(value: number): Uint8Array {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigInt64(0, BigInt(value), LE);
  return bytes;
}

export function decodeInt32(bytes: Uint8Array): number {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getInt32(0, LE);
}

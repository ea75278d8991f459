// Fixtures of the VFS tests: a VFS over a fresh temporary host folder mounted at "/", with
// standard streams in memory, and parsers that read the guest structures back independently of
// the encoders under test.
import { expect } from "vitest";
import { AstraError, Errno } from "../../../lib/errors.ts";
import type { FsStat } from "../../../services/storage/vfs/filesystem.ts";
import {
  InputSource,
  type StdStreams,
  type StreamEndpoint,
  streamStat,
  Terminal,
} from "../../../services/storage/vfs/streams.ts";
import { Vfs } from "../../../services/storage/vfs/vfs.ts";

export { Errno };

export const encode = (text: string): Uint8Array => new TextEncoder().encode(text);
export const decode = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

/** What a test's standard streams collected. */
export interface Captured {
  stdout: Uint8Array[];
  stderr: Uint8Array[];
  text(stream: "stdout" | "stderr"): string;
}

/** Standard streams in memory: stdin yields `input`, stdout and stderr are collected. */
export function memoryStdio(
  options: { input?: (string | Uint8Array)[] | InputSource; terminal?: Terminal } = {},
): { stdio: StdStreams; captured: Captured } {
  const captured: Captured = {
    stdout: [],
    stderr: [],
    text: (stream) => decode(concat(captured[stream])),
  };
  const input = options.input instanceof InputSource
    ? options.input
    : InputSource.of(...(options.input ?? []));
  const terminal = options.terminal;
  const stat = (inode: number) => (): FsStat => streamStat(terminal !== undefined, inode, 0, 0);
  const sink = (into: Uint8Array[]) => (data: Uint8Array) => {
    into.push(data.slice());
    return Promise.resolve();
  };
  const endpoint = (name: string, inode: number, own: Partial<StreamEndpoint>): StreamEndpoint => ({
    name,
    terminal,
    input: own.input ?? (terminal ? input : undefined),
    output: own.output ?? (terminal ? sink(captured.stdout) : undefined),
    stat: stat(inode),
  });
  return {
    stdio: {
      stdin: endpoint(terminal ? "/dev/pts/0" : "pipe:[100]", 100, { input }),
      stdout: endpoint(terminal ? "/dev/pts/0" : "pipe:[101]", 101, { output: sink(captured.stdout) }),
      stderr: endpoint(terminal ? "/dev/pts/0" : "pipe:[102]", 102, { output: sink(captured.stderr) }),
      console: { name: "/dev/console", terminal, input, output: sink(captured.stdout), stat: stat(103) },
    },
    captured,
  };
}

export function concat(chunks: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

export interface Fixture {
  /** The host folder mounted at "/". */
  root: string;
  vfs: Vfs;
  /** An attached process with descriptors 0, 1 and 2 on the memory streams. */
  pid: number;
  captured: Captured;
  /** The host path of a guest path. */
  host(path: string): string;
  remove(): void;
}

export function fixture(
  options: { input?: (string | Uint8Array)[] | InputSource; terminal?: Terminal } = {},
): Fixture {
  const root = Deno.makeTempDirSync({ prefix: "astra-vfs-" });
  const { stdio, captured } = memoryStdio(options);
  const vfs = new Vfs({ stdio });
  vfs.mountHostFolder(root, "/");
  const pid = 1;
  vfs.attachProcess(pid, { inheritance: "new", stdio: true });
  return {
    root,
    vfs,
    pid,
    captured,
    host: (path) => `${root}/${path.replace(/^\/+/, "")}`,
    remove: () => {
      vfs.shutdown();
      Deno.removeSync(root, { recursive: true });
    },
  };
}

/** The errno `fn` fails with (it must fail). */
export function errnoOf(fn: () => unknown): Errno {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AstraError);
    return (err as AstraError).errno;
  }
  throw new Error("expected the call to fail");
}

export async function asyncErrnoOf(fn: () => Promise<unknown>): Promise<Errno> {
  try {
    await fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AstraError);
    return (err as AstraError).errno;
  }
  throw new Error("expected the call to fail");
}

/** struct stat (ppc64) read back field by field. */
export function parseStat(bytes: Uint8Array) {
  expect(bytes.length).toBe(144);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u64 = (at: number) => Number(v.getBigUint64(at, true));
  return {
    dev: u64(0),
    ino: u64(8),
    nlink: u64(16),
    mode: v.getUint32(24, true),
    uid: v.getUint32(28, true),
    gid: v.getUint32(32, true),
    pad: v.getUint32(36, true),
    rdev: u64(40),
    size: Number(v.getBigInt64(48, true)),
    blksize: u64(56),
    blocks: u64(64),
    atime: [u64(72), u64(80)],
    mtime: [u64(88), u64(96)],
    ctime: [u64(104), u64(112)],
    unused: [u64(120), u64(128), u64(136)],
  };
}

/** struct statx read back field by field. */
export function parseStatx(bytes: Uint8Array) {
  expect(bytes.length).toBe(256);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u64 = (at: number) => Number(v.getBigUint64(at, true));
  const ts = (
    at: number,
  ) => [Number(v.getBigInt64(at, true)), v.getUint32(at + 8, true), v.getInt32(at + 12, true)];
  return {
    mask: v.getUint32(0, true),
    blksize: v.getUint32(4, true),
    attributes: u64(8),
    nlink: v.getUint32(16, true),
    uid: v.getUint32(20, true),
    gid: v.getUint32(24, true),
    mode: v.getUint16(28, true),
    spare0: v.getUint16(30, true),
    ino: u64(32),
    size: u64(40),
    blocks: u64(48),
    attributesMask: u64(56),
    atime: ts(64),
    btime: ts(80),
    ctime: ts(96),
    mtime: ts(112),
    rdevMajor: v.getUint32(128, true),
    rdevMinor: v.getUint32(132, true),
    devMajor: v.getUint32(136, true),
    devMinor: v.getUint32(140, true),
    mountId: u64(144),
    tail: bytes.slice(152),
  };
}

export interface ParsedDirent {
  ino: number;
  off: number;
  reclen: number;
  type: number;
  name: string;
  /** The bytes between the name's NUL and the end of the record. */
  padding: Uint8Array;
}

/** linux_dirent64 records read back. */
export function parseDirents(bytes: Uint8Array): ParsedDirent[] {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: ParsedDirent[] = [];
  for (let at = 0; at < bytes.length;) {
    const reclen = v.getUint16(at + 16, true);
    const nameEnd = bytes.indexOf(0, at + 19);
    out.push({
      ino: Number(v.getBigUint64(at, true)),
      off: Number(v.getBigInt64(at + 8, true)),
      reclen,
      type: v.getUint8(at + 18),
      name: decode(bytes.subarray(at + 19, nameEnd)),
      padding: bytes.slice(nameEnd, at + reclen),
    });
    at += reclen;
  }
  return out;
}

/** r3 of a kernel call that must succeed. */
export function ok(reply: { result: bigint; errno?: Errno }): number {
  expect(reply.errno).toBeUndefined();
  return Number(BigInt.asIntN(64, reply.result));
}

/** The errno a kernel call failed with (undefined if it succeeded). */
export function failed(reply: { errno?: Errno }): Errno | undefined {
  return reply.errno;
}

/** struct timespec[] or struct timeval[]: each pair is tv_sec and tv_nsec (or tv_usec). */
export function timePairs(...pairs: [number, number][]): Uint8Array {
  const bytes = new Uint8Array(16 * pairs.length);
  const view = new DataView(bytes.buffer);
  pairs.forEach(([seconds, fraction], i) => {
    view.setBigInt64(16 * i, BigInt(seconds), true);
    view.setBigInt64(16 * i + 8, BigInt(fraction), true);
  });
  return bytes;
}

/**
 * Makes a host file immutable (chattr +i), which even root may not change: the host's EPERM for a
 * test running as root. Returns how to undo it, or undefined where chattr is not allowed.
 */
export function makeImmutable(path: string): (() => void) | undefined {
  const chattr = (flag: string) => {
    try {
      return new Deno.Command("chattr", { args: [flag, path], stdout: "null", stderr: "null" }).outputSync()
        .success;
    } catch {
      return false;
    }
  };
  return chattr("+i") ? () => chattr("-i") : undefined;
}

// The structures sched's system calls read from and write to guest memory, byte for byte as the
// ppc64 little-endian kernel lays them out (struct utsname, rusage, rlimit, stack_t, cpu masks).
import { Errno, invalidArgument } from "../../lib/errors.ts";
import { encodeTimeval } from "./clock.ts";
import type { Usage } from "./processes.ts";
import type { ResourceLimitPair } from "./rlimits.ts";

/** struct new_utsname: six fields of __NEW_UTS_LEN + 1 = 65 bytes. */
export const UTSNAME_FIELD = 65;
export const UTSNAME_SIZE = 6 * UTSNAME_FIELD;
/** struct rusage: two timevals and fourteen longs. */
export const RUSAGE_SIZE = 144;
export const RLIMIT_SIZE = 16;
/** stack_t: ss_sp, ss_flags (int, padded), ss_size. */
export const STACK_T_SIZE = 24;

export interface SystemIdentity {
  sysname: string;
  nodename: string;
  release: string;
  version: string;
  machine: string;
  domainname: string;
}

const encoder = new TextEncoder();

export function encodeUtsname(identity: SystemIdentity): Uint8Array {
  const bytes = new Uint8Array(UTSNAME_SIZE);
  const fields = [
    identity.sysname,
    identity.nodename,
    identity.release,
    identity.version,
    identity.machine,
    identity.domainname,
  ];
  fields.forEach((text, i) =>
    bytes.set(encoder.encode(text).subarray(0, UTSNAME_FIELD - 1), i * UTSNAME_FIELD)
  );
  return bytes;
}

export function encodeRusage(usage: Usage): Uint8Array {
  const bytes = new Uint8Array(RUSAGE_SIZE);
  const view = new DataView(bytes.buffer);
  bytes.set(encodeTimeval(BigInt(Math.floor(usage.userNanos))), 0);
  bytes.set(encodeTimeval(BigInt(Math.floor(usage.systemNanos))), 16);
  // ru_maxrss, ru_ixrss, ru_idrss, ru_isrss, ru_minflt, ru_majflt, ru_nswap, ru_inblock,
  // ru_oublock, ru_msgsnd, ru_msgrcv, ru_nsignals, ru_nvcsw, ru_nivcsw.
  const longs = [
    usage.maxResidentKib,
    0,
    0,
    0,
    usage.minorFaults,
    usage.majorFaults,
    0,
    usage.blockInputs,
    usage.blockOutputs,
    0,
    0,
    0,
    usage.voluntarySwitches,
    usage.involuntarySwitches,
  ];
  longs.forEach((value, i) => view.setBigInt64(32 + i * 8, BigInt(value), true));
  return bytes;
}

export function encodeRlimit(limit: ResourceLimitPair): Uint8Array {
  const bytes = new Uint8Array(RLIMIT_SIZE);
  const view = new DataView(bytes.buffer);
  view.setBigUint64(0, limit.soft, true);
  view.setBigUint64(8, limit.hard, true);
  return bytes;
}

export function decodeRlimit(bytes: Uint8Array): ResourceLimitPair {
  const view = new DataView(bytes.buffer, bytes.byteOffset, RLIMIT_SIZE);
  return { soft: view.getBigUint64(0, true), hard: view.getBigUint64(8, true) };
}

export interface StackT {
  base: bigint;
  flags: number;
  size: bigint;
}

export function encodeStackT(stack: StackT): Uint8Array {
  const bytes = new Uint8Array(STACK_T_SIZE);
  const view = new DataView(bytes.buffer);
  view.setBigUint64(0, stack.base, true);
  view.setInt32(8, stack.flags, true);
  view.setBigUint64(16, stack.size, true);
  return bytes;
}

export function decodeStackT(bytes: Uint8Array): StackT {
  const view = new DataView(bytes.buffer, bytes.byteOffset, STACK_T_SIZE);
  return {
    base: view.getBigUint64(0, true),
    flags: view.getUint32(8, true),
    size: view.getBigUint64(16, true),
  };
}

/**
 * sched_getaffinity's mask: one bit per CPU in unsigned longs, as many longs as the CPUs need.
 * EINVAL when the guest's buffer is shorter than that or not a whole number of longs.
 */
export function encodeCpuMask(cpus: readonly number[], cpuCount: number, bufferLength: bigint): Uint8Array {
  const size = Math.ceil(cpuCount / 64) * 8;
  if (bufferLength < BigInt(size) || bufferLength % 8n !== 0n) {
    throw invalidArgument(
      "len",
      `a CPU mask of ${bufferLength} bytes cannot hold ${cpuCount} CPUs in whole longs`,
      Errno.EINVAL,
    );
  }
  const bytes = new Uint8Array(size);
  for (const cpu of cpus) bytes[cpu >> 3] |= 1 << (cpu & 7);
  return bytes;
}

// copy_from_user and copy_to_user for the trap path: moving a system call's inputs out of the
// trapping thread's memory and its outputs back in. Memory that is not translated yet (demand
// paging, a segment not in the SLB) is faulted in through vmm and the copy goes on; a fault vmm
// answers with a signal fails the copy with EFAULT and sends no signal, as Linux's copies do.
// Copies that find every page translated stay synchronous: no promise on the common path.
import { Errno } from "../../lib/errors.ts";
import type { TrappedThread, UserFault, UserMemory } from "./kernel_side.ts";

/** Resolves the faults copies run into. */
export interface UserFaultHandler {
  /** Makes the access that stopped at `fault` possible: 0 to try again, or the errno for the call. */
  faultIn(thread: TrappedThread, memory: UserMemory, fault: UserFault): Promise<Errno | 0>;
}

/** The same address faulting again right after vmm mapped it: give up rather than spin. */
const MAX_REPEATED_FAULTS = 3;

/** The bytes at [address, address + length), or the errno the call fails with. */
export function copyFromUser(
  faults: UserFaultHandler,
  thread: TrappedThread,
  memory: UserMemory,
  address: bigint,
  length: number,
): Uint8Array | Errno | Promise<Uint8Array | Errno> {
  const bytes = memory.read(address, length);
  if (bytes instanceof Uint8Array) return bytes;
  return copyFromUserSlowly(faults, thread, memory, address, length, bytes);
}

async function copyFromUserSlowly(
  faults: UserFaultHandler,
  thread: TrappedThread,
  memory: UserMemory,
  address: bigint,
  length: number,
  firstFault: UserFault,
): Promise<Uint8Array | Errno> {
  const out = new Uint8Array(length);
  let done = 0;
  const errno = await faultInUntilDone(faults, thread, memory, firstFault, (fault) => {
    const at = address + BigInt(done);
    // What came before the fault was translated: keep it, so that each page is walked about twice
    // however many of them fault (a large read into a fresh buffer).
    const before = prefixLength(at, length - done, fault.address);
    if (before > 0) {
      const prefix = memory.read(at, before);
      if (prefix instanceof Uint8Array) {
        out.set(prefix, done);
        done += before;
      }
    }
    const rest = memory.read(address + BigInt(done), length - done);
    if (!(rest instanceof Uint8Array)) return rest;
    out.set(rest, done);
    return undefined;
  });
  return errno === 0 ? out : errno;
}

/** Writes all of `data` at `address`: 0, or the errno the call fails with. */
export function copyToUser(
  faults: UserFaultHandler,
  thread: TrappedThread,
  memory: UserMemory,
  address: bigint,
  data: Uint8Array,
): Errno | 0 | Promise<Errno | 0> {
  const written = memory.write(address, data);
  if (written === true) return 0;
  return copyToUserSlowly(faults, thread, memory, address, data, written);
}

function copyToUserSlowly(
  faults: UserFaultHandler,
  thread: TrappedThread,
  memory: UserMemory,
  address: bigint,
  data: Uint8Array,
  firstFault: UserFault,
): Promise<Errno | 0> {
  let done = 0;
  return faultInUntilDone(faults, thread, memory, firstFault, (fault) => {
    const at = address + BigInt(done);
    const before = prefixLength(at, data.length - done, fault.address);
    if (before > 0 && memory.write(at, data.subarray(done, done + before)) === true) done += before;
    const written = memory.write(address + BigInt(done), data.subarray(done));
    return written === true ? undefined : written;
  });
}

/**
 * Has each fault a copy runs into resolved and the copy go on (`goOn` returns its next fault, or
 * undefined when it is done): 0, or the errno the copy fails with.
 */
async function faultInUntilDone(
  faults: UserFaultHandler,
  thread: TrappedThread,
  memory: UserMemory,
  firstFault: UserFault,
  goOn: (fault: UserFault) => UserFault | undefined,
): Promise<Errno | 0> {
  let fault: UserFault | undefined = firstFault;
  let lastAddress = -1n;
  let repeats = 0;
  while (fault !== undefined) {
    if (fault.address === lastAddress) {
      if (++repeats >= MAX_REPEATED_FAULTS) return Errno.EFAULT;
    } else {
      lastAddress = fault.address;
      repeats = 0;
    }
    const errno = await faults.faultIn(thread, memory, fault);
    if (errno !== 0) return errno;
    fault = goOn(fault);
  }
  return 0;
}

/** Bytes of [at, at + length) before `faultAddress`; 0 when the fault is not inside it. */
function prefixLength(at: bigint, length: number, faultAddress: bigint): number {
  const before = faultAddress - at;
  return before > 0n && before < BigInt(length) ? Number(before) : 0;
}

/**
 * A NUL-terminated string of at most `max` bytes, NUL included, read page by page so that the
 * memory after the NUL is never touched. Memory that cannot be read ends it early: the bytes up
 * to there (without a NUL, which the consumer answers with EFAULT, or ENAMETOOLONG when `max`
 * bytes came without one). An errno other than EFAULT (vmm could not be asked) fails the call.
 */
export function stringFromUser(
  faults: UserFaultHandler,
  thread: TrappedThread,
  memory: UserMemory,
  address: bigint,
  max: number,
  pageSize: number,
): Uint8Array | Errno | Promise<Uint8Array | Errno> {
  // Most strings end in the page they start in, already translated.
  const piece = memory.read(address, Math.min(toPageEnd(address, pageSize), max));
  if (piece instanceof Uint8Array) {
    const nul = piece.indexOf(0);
    if (nul >= 0) return piece.subarray(0, nul + 1);
  }
  return stringFromUserSlowly(faults, thread, memory, address, max, pageSize);
}

async function stringFromUserSlowly(
  faults: UserFaultHandler,
  thread: TrappedThread,
  memory: UserMemory,
  address: bigint,
  max: number,
  pageSize: number,
): Promise<Uint8Array | Errno> {
  const pieces: Uint8Array[] = [];
  let total = 0;
  while (total < max) {
    const at = address + BigInt(total);
    const piece = await copyFromUser(
      faults,
      thread,
      memory,
      at,
      Math.min(toPageEnd(at, pageSize), max - total),
    );
    if (!(piece instanceof Uint8Array)) {
      if (piece !== Errno.EFAULT) return piece;
      break;
    }
    const nul = piece.indexOf(0);
    if (nul >= 0) {
      pieces.push(piece.subarray(0, nul + 1));
      total += nul + 1;
      break;
    }
    pieces.push(piece);
    total += piece.length;
  }
  return pieces.length === 1 ? pieces[0] : concat(pieces, total);
}

function toPageEnd(address: bigint, pageSize: number): number {
  return pageSize - Number(address % BigInt(pageSize));
}

function concat(pieces: readonly Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let at = 0;
  for (const piece of pieces) {
    out.set(piece, at);
    at += piece.length;
  }
  return out;
}

/** Writes each piece in order: 0, or the errno of the first that could not be written. */
export function copyAllToUser(
  faults: UserFaultHandler,
  thread: TrappedThread,
  memory: UserMemory,
  pieces: readonly { address: bigint; data: Uint8Array }[],
): Errno | 0 | Promise<Errno | 0> {
  for (let i = 0; i < pieces.length; i++) {
    const written = copyToUser(faults, thread, memory, pieces[i].address, pieces[i].data);
    if (written instanceof Promise) return copyRestToUser(faults, thread, memory, pieces, i, written);
    if (written !== 0) return written;
  }
  return 0;
}

async function copyRestToUser(
  faults: UserFaultHandler,
  thread: TrappedThread,
  memory: UserMemory,
  pieces: readonly { address: bigint; data: Uint8Array }[],
  index: number,
  waiting: Promise<Errno | 0>,
): Promise<Errno | 0> {
  const first = await waiting;
  if (first !== 0) return first;
  for (let i = index + 1; i < pieces.length; i++) {
    const written = await copyToUser(faults, thread, memory, pieces[i].address, pieces[i].data);
    if (written !== 0) return written;
  }
  return 0;
}

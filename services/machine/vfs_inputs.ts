// The guest memory a VFS system call reads, copied before the call is sent, as lib/linux's
// VFS_KERNEL_CALLS describes it for each call. Memory that cannot be read is left out, and the VFS
// answers EFAULT when it needs it (or decides, for an ioctl's optional argument); only a copy vmm
// could not help with at all (EIO) fails the call here.
import { Errno } from "../../lib/errors.ts";
import { IOC_WRITE, ioctlDirection, ioctlSize } from "../../lib/linux/ioctl.ts";
import { PAGE_SIZE, PATH_MAX, UIO_MAXIOV } from "../../lib/linux/limits.ts";
import { type InputSpec, MAX_IO_BYTES, SELECT_MAX_DESCRIPTORS } from "../../lib/linux/vfs_calls.ts";
import type { TrappedThread, UserMemory } from "./kernel_side.ts";
import { copyFromUser, stringFromUser, type UserFaultHandler } from "./user_copy.ts";

/** A piece of guest memory for the request: GuestBuffer's fields. */
export interface GuestBytes {
  address: bigint;
  data: Uint8Array;
}

type Inputs = GuestBytes[] | Errno;

const IOVEC_BYTES = 16;
const NONE: GuestBytes[] = [];

/** The inputs of one call, or the errno it fails with. */
export function copyVfsInputs(
  faults: UserFaultHandler,
  thread: TrappedThread,
  memory: UserMemory,
  specs: readonly InputSpec[],
  args: readonly bigint[],
): Inputs | Promise<Inputs> {
  if (specs.length === 1) return copyInput(faults, thread, memory, specs[0], args);
  const each = collect(specs.length, (i) => copyInput(faults, thread, memory, specs[i], args));
  return each instanceof Promise ? each.then(merge) : merge(each);
}

function merge(each: readonly Inputs[]): Inputs {
  const out: GuestBytes[] = [];
  for (const inputs of each) {
    if (typeof inputs === "number") return inputs;
    out.push(...inputs);
  }
  return out;
}

function copyInput(
  faults: UserFaultHandler,
  thread: TrappedThread,
  memory: UserMemory,
  spec: InputSpec,
  args: readonly bigint[],
): Inputs | Promise<Inputs> {
  const address = BigInt.asUintN(64, args[spec.arg] ?? 0n);
  if (address === 0n) return NONE;
  switch (spec.kind) {
    case "path":
      return andThen(
        stringFromUser(faults, thread, memory, address, PATH_MAX, PAGE_SIZE),
        (bytes) => typeof bytes === "number" ? bytes : bytes.length ? [{ address, data: bytes }] : NONE,
      );
    case "buffer":
      return copyPiece(faults, thread, memory, address, size(args[spec.lengthArg]));
    case "iovec": {
      const count = Number(BigInt.asIntN(32, args[spec.countArg] ?? 0n));
      if (count <= 0 || count > UIO_MAXIOV) return NONE;
      return andThen(copyFromUser(faults, thread, memory, address, count * IOVEC_BYTES), (array) => {
        if (typeof array === "number") return array === Errno.EFAULT ? NONE : array;
        const vectors: GuestBytes[] = [{ address, data: array }];
        return spec.buffers ? copyVectorBuffers(faults, thread, memory, array, vectors) : vectors;
      });
    }
    case "ioctl": {
      const request = Number(BigInt.asUintN(32, args[spec.requestArg] ?? 0n));
      const length = ioctlDirection(request) & IOC_WRITE ? ioctlSize(request) : 0;
      return copyPiece(faults, thread, memory, address, length);
    }
    case "struct":
      return copyPiece(faults, thread, memory, address, spec.bytes);
    case "array": {
      const count = BigInt.asUintN(32, args[spec.countArg] ?? 0n);
      const elements = count > BigInt(spec.maxCount) ? spec.maxCount : Number(count);
      return copyPiece(faults, thread, memory, address, elements * spec.elementBytes);
    }
    case "bitmap": {
      const count = Number(BigInt.asIntN(32, args[spec.countArg] ?? 0n));
      const bits = Math.min(Math.max(count, 0), SELECT_MAX_DESCRIPTORS);
      return copyPiece(faults, thread, memory, address, Math.ceil(bits / 64) * 8);
    }
  }
}

/** `length` bytes at `address`, or nothing when there are none or they cannot be read. */
function copyPiece(
  faults: UserFaultHandler,
  thread: TrappedThread,
  memory: UserMemory,
  address: bigint,
  length: number,
): Inputs | Promise<Inputs> {
  if (length === 0) return NONE;
  return andThen(copyFromUser(faults, thread, memory, address, length), (data) => piece(address, data));
}

/** The memory each struct iovec names, at most MAX_IO_BYTES in all (the write is short beyond). */
function copyVectorBuffers(
  faults: UserFaultHandler,
  thread: TrappedThread,
  memory: UserMemory,
  array: Uint8Array,
  out: GuestBytes[],
): Inputs | Promise<Inputs> {
  const view = new DataView(array.buffer, array.byteOffset, array.byteLength);
  const count = array.length / IOVEC_BYTES;
  const bases: bigint[] = [];
  const lengths: number[] = [];
  let budget = MAX_IO_BYTES;
  for (let i = 0; i < count && budget > 0; i++) {
    const base = view.getBigUint64(i * IOVEC_BYTES, true);
    const length = Math.min(size(view.getBigUint64(i * IOVEC_BYTES + 8, true)), budget);
    if (base === 0n || length === 0) continue;
    budget -= length;
    bases.push(base);
    lengths.push(length);
  }
  const each = collect(
    bases.length,
    (i) =>
      andThen(copyFromUser(faults, thread, memory, bases[i], lengths[i]), (data) => piece(bases[i], data)),
  );
  const append = (pieces: readonly Inputs[]) => merge([out, ...pieces]);
  return each instanceof Promise ? each.then(append) : append(each);
}

/** A size_t argument, capped at what one call moves. */
function size(value: bigint | undefined): number {
  const unsigned = BigInt.asUintN(64, value ?? 0n);
  return unsigned > BigInt(MAX_IO_BYTES) ? MAX_IO_BYTES : Number(unsigned);
}

function piece(address: bigint, data: Uint8Array | Errno): Inputs {
  if (typeof data !== "number") return [{ address, data }];
  return data === Errno.EFAULT ? NONE : data;
}

/** `next` of a value that may still be on its way, without a promise when it is not. */
function andThen<T, R>(value: T | Promise<T>, next: (value: T) => R | Promise<R>): R | Promise<R> {
  return value instanceof Promise ? value.then(next) : next(value);
}

/** `count` results in order, synchronously until the first one that has to wait. */
function collect<T>(count: number, item: (i: number) => T | Promise<T>): T[] | Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < count; i++) {
    const result = item(i);
    if (result instanceof Promise) return collectRest(out, result, i, count, item);
    out.push(result);
  }
  return out;
}

async function collectRest<T>(
  out: T[],
  waiting: Promise<T>,
  index: number,
  count: number,
  item: (i: number) => T | Promise<T>,
): Promise<T[]> {
  out.push(await waiting);
  for (let i = index + 1; i < count; i++) out.push(await item(i));
  return out;
}

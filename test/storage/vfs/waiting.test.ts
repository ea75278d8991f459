// Calls that wait: poll, ppoll, select and pselect6 on pipes, files and the standard streams, and
// flock's blocking locks; each ends when what it waits for happens, when its timeout passes, or
// with EINTR when its process goes away.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  AT_FDCWD,
  LOCK_EX,
  LOCK_NB,
  LOCK_SH,
  LOCK_UN,
  O_RDONLY,
  POLLHUP,
  POLLIN,
  POLLNVAL,
  POLLOUT,
  POLLRDNORM,
  POLLWRNORM,
  SYS,
} from "../../../services/storage/vfs/linux.ts";
import { InputSource } from "../../../services/storage/vfs/streams.ts";
import { FakeGuest } from "./guest.ts";
import { encode, Errno, failed, type Fixture, fixture, ok, timePairs } from "./helpers.ts";

let f: Fixture;
let g: FakeGuest;
let release: (() => void) | undefined;

beforeEach(() => {
  // Standard input that has nothing until the test lets it through.
  const gate = new Promise<void>((resolve) => release = resolve);
  let given = false;
  const input = new InputSource(async (into) => {
    await gate;
    if (given) return null;
    given = true;
    into.set(encode("typed"));
    return 5;
  });
  f = fixture({ input });
  g = new FakeGuest(f.vfs, f.pid);
  Deno.writeTextFileSync(f.host("file"), "0123456789");
});

afterEach(() => {
  release?.();
  f.remove();
});

async function pipe(): Promise<[number, number]> {
  const fds = g.alloc(8);
  ok(await g.call(SYS.pipe2, fds, 0));
  const view = new DataView(g.read(fds, 8).buffer);
  return [view.getInt32(0, true), view.getInt32(4, true)];
}

function pollfds(...entries: [number, number][]): bigint {
  const bytes = new Uint8Array(8 * entries.length);
  const view = new DataView(bytes.buffer);
  entries.forEach(([fd, events], i) => {
    view.setInt32(8 * i, fd, true);
    view.setInt16(8 * i + 4, events, true);
  });
  return g.put(bytes);
}

const revents = (address: bigint, count: number) =>
  Array.from(
    { length: count },
    (_, i) => new DataView(g.read(address, 8 * count).buffer).getUint16(8 * i + 6, true),
  );

/** Settles `promise`'s state into a flag, to tell a call that waits from one that returned. */
function track<T>(promise: Promise<T>): { done: () => boolean } {
  let settled = false;
  promise.finally(() => settled = true);
  return { done: () => settled };
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 5));

describe("poll and ppoll", () => {
  it("wait for a pipe to become readable, and report what each descriptor is ready for", async () => {
    const [read, write] = await pipe();
    const file = ok(await g.call(SYS.openat, AT_FDCWD, g.string("file"), O_RDONLY, 0));
    const fds = pollfds([read, POLLIN], [write, POLLOUT], [file, POLLIN | POLLOUT], [-1, POLLIN], [
      77,
      POLLIN,
    ]);
    const waiting = g.call(SYS.poll, fds, 1, -1);
    const state = track(waiting);
    await tick();
    expect(state.done()).toBe(false);
    ok(await g.call(SYS.write, write, g.put(encode("x")), 1));
    expect(ok(await waiting)).toBe(1);
    expect(revents(fds, 1)).toEqual([POLLIN]);
    expect(ok(await g.call(SYS.poll, fds, 5, 0))).toBe(4);
    expect(revents(fds, 5)).toEqual([
      POLLIN,
      POLLOUT,
      POLLIN | POLLOUT,
      0,
      POLLNVAL,
    ]);
    ok(await g.call(SYS.close, write));
    ok(await g.call(SYS.poll, fds, 1, 0));
    expect(revents(fds, 1)).toEqual([POLLIN | POLLHUP]);
  });

  it("time out, and ppoll writes back what is left of its timeout", async () => {
    const [read] = await pipe();
    const fds = pollfds([read, POLLIN]);
    const started = performance.now();
    expect(ok(await g.call(SYS.poll, fds, 1, 30))).toBe(0);
    expect(performance.now() - started).toBeGreaterThanOrEqual(25);
    const timeout = g.put(timePairs([0, 20_000_000]));
    expect(ok(await g.call(SYS.ppoll, fds, 1, timeout, 0, 8))).toBe(0);
    expect(g.read(timeout, 16)).toEqual(timePairs([0, 0]));
    expect(failed(await g.call(SYS.ppoll, fds, 1, g.put(timePairs([-1, 0])), 0, 8))).toBe(Errno.EINVAL);
    expect(failed(await g.call(SYS.ppoll, fds, 1, 0, g.put(new Uint8Array(8)), 16))).toBe(Errno.EINVAL);
    expect(failed(await g.call(SYS.poll, fds, 2000, 0))).toBe(Errno.EINVAL);
    expect(failed(await g.call(SYS.poll, 0xdead_0000_0000n, 1, 0))).toBe(Errno.EFAULT);
  });

  it("wait for standard input, and see standard output always writable", async () => {
    const fds = pollfds([0, POLLIN | POLLRDNORM], [1, POLLOUT | POLLWRNORM]);
    expect(ok(await g.call(SYS.poll, fds, 2, 0))).toBe(1);
    expect(revents(fds, 2)).toEqual([0, POLLOUT | POLLWRNORM]);
    const waiting = g.call(SYS.poll, fds, 1, -1);
    const state = track(waiting);
    await tick();
    expect(state.done()).toBe(false);
    release!();
    expect(ok(await waiting)).toBe(1);
    expect(revents(fds, 1)).toEqual([POLLIN | POLLRDNORM]);
  });

  it("end with EINTR when the process goes away", async () => {
    const [read] = await pipe();
    const waiting = g.call(SYS.poll, pollfds([read, POLLIN]), 1, -1);
    await tick();
    f.vfs.detachProcess(f.pid);
    expect(failed(await waiting)).toBe(Errno.EINTR);
    f.vfs.attachProcess(f.pid, { inheritance: "new" });
  });
});

describe("select and pselect6", () => {
  const fdSet = (...fds: number[]) => {
    const bytes = new Uint8Array(8);
    for (const fd of fds) bytes[fd >> 3] |= 1 << (fd & 7);
    return g.put(bytes);
  };
  const members = (address: bigint) => {
    const bytes = g.read(address, 8);
    return Array.from({ length: 64 }, (_, fd) => fd).filter((fd) => bytes[fd >> 3] & (1 << (fd & 7)));
  };

  it("wait for readiness and leave the ready descriptors in the sets", async () => {
    const [read, write] = await pipe();
    const readSet = fdSet(read), writeSet = fdSet(write, 1);
    expect(ok(await g.call(SYS._newselect, write + 1, readSet, writeSet, 0, g.put(timePairs([0, 0]))))).toBe(
      2,
    );
    expect(members(readSet)).toEqual([]);
    expect(members(writeSet)).toEqual([1, write]);
    const waiting = g.call(SYS.pselect6, read + 1, fdSet(read), 0, 0, 0, 0);
    const state = track(waiting);
    await tick();
    expect(state.done()).toBe(false);
    ok(await g.call(SYS.write, write, g.put(encode("x")), 1));
    expect(ok(await waiting)).toBe(1);
  });

  it("write back what is left of a timeval timeout, and refuse descriptors not open", async () => {
    const [read] = await pipe();
    const timeout = g.put(timePairs([0, 20_000]));
    expect(ok(await g.call(SYS._newselect, read + 1, fdSet(read), 0, 0, timeout))).toBe(0);
    expect(g.read(timeout, 16)).toEqual(timePairs([0, 0]));
    expect(failed(await g.call(SYS._newselect, 30, fdSet(29), 0, 0, 0))).toBe(Errno.EBADF);
    expect(failed(await g.call(SYS._newselect, -1, 0, 0, 0, 0))).toBe(Errno.EINVAL);
    expect(failed(await g.call(SYS._newselect, read + 1, 0xdead_0000_0000n, 0, 0, 0))).toBe(Errno.EFAULT);
    const pack = new Uint8Array(16);
    new DataView(pack.buffer).setBigUint64(0, 0x1000n, true);
    new DataView(pack.buffer).setBigUint64(8, 16n, true);
    expect(failed(await g.call(SYS.pselect6, 1, 0, 0, 0, 0, g.put(pack)))).toBe(Errno.EINVAL);
  });
});

describe("flock", () => {
  const open = async () => ok(await g.call(SYS.openat, AT_FDCWD, g.string("file"), O_RDONLY, 0));

  it("makes a conflicting lock wait until the holder's description closes", async () => {
    const [first, second] = [await open(), await open()];
    ok(await g.call(SYS.flock, first, LOCK_EX));
    const copy = ok(await g.call(SYS.dup, first));
    expect(failed(await g.call(SYS.flock, second, LOCK_SH | LOCK_NB))).toBe(Errno.EAGAIN);
    const waiting = g.call(SYS.flock, second, LOCK_SH);
    const state = track(waiting);
    ok(await g.call(SYS.close, first));
    await tick();
    expect(state.done()).toBe(false);
    ok(await g.call(SYS.close, copy));
    ok(await waiting);
    const third = await open();
    ok(await g.call(SYS.flock, third, LOCK_SH | LOCK_NB));
    expect(failed(await g.call(SYS.flock, third, LOCK_EX | LOCK_NB))).toBe(Errno.EAGAIN);
    ok(await g.call(SYS.flock, second, LOCK_UN));
    ok(await g.call(SYS.flock, third, LOCK_EX | LOCK_NB));
  });

  it("shares a lock with a forked child's copy of the descriptor, and ends a wait with EINTR", async () => {
    const fd = await open();
    ok(await g.call(SYS.flock, fd, LOCK_EX));
    f.vfs.forkTable(f.pid, 2);
    const child = new FakeGuest(f.vfs, 2);
    ok(await child.call(SYS.flock, fd, LOCK_EX | LOCK_NB));
    const other = ok(await child.call(SYS.openat, AT_FDCWD, child.string("file"), O_RDONLY, 0));
    const waiting = child.call(SYS.flock, other, LOCK_SH);
    await tick();
    f.vfs.detachProcess(2);
    expect(failed(await waiting)).toBe(Errno.EINTR);
  });
});

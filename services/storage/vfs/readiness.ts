// Waiting until descriptors are ready (poll, ppoll, select, pselect6): each round asks the files
// what holds now (OpenFile.pollEvents) and, when nothing does, waits for any of them to change,
// for the timeout, or for the wait to be given up (the process exiting: EINTR).
import { type OpenFile, untilAborted } from "./files.ts";
import { POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT, POLLPRI, POLLRDNORM, POLLWRNORM } from "./linux.ts";

/** One struct pollfd: a descriptor and the events asked for. */
export interface PollRequest {
  fd: number;
  events: number;
}

/** select's three descriptor sets (fd_set bitmaps), each absent when NULL. */
export interface SelectSets {
  read?: Uint8Array;
  write?: Uint8Array;
  except?: Uint8Array;
}

/** What one look at the files found: whether anything is ready, the answer, the files to watch. */
export interface ReadyRound<T> {
  ready: boolean;
  result: T;
  files: readonly OpenFile[];
}

/** What select's read and write sets wait for (POLLIN_SET, POLLOUT_SET); POLLPRI is exceptional. */
const SELECT_READ = POLLIN | POLLRDNORM | POLLHUP | POLLERR;
const SELECT_WRITE = POLLOUT | POLLWRNORM | POLLERR;
/** The longest setTimeout; a longer wait is taken in rounds. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Settles after `ms` milliseconds (at most MAX_TIMER_MS); rejects when `signal` aborts first. */
function delay(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, Math.min(ms, MAX_TIMER_MS));
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Runs `check` until a round finds something ready or `timeout` ms have passed (undefined: no
 * limit), and answers that round's result; rejects with the reason of the first of `endings` to
 * abort.
 */
export async function whenReady<T>(
  check: () => ReadyRound<T>,
  timeout: number | undefined,
  endings: readonly AbortSignal[],
): Promise<T> {
  const deadline = timeout === undefined ? Infinity : performance.now() + timeout;
  while (true) {
    const round = check();
    const remaining = deadline - performance.now();
    if (round.ready || remaining <= 0) return round.result;
    const done = new AbortController();
    const ended = AbortSignal.any([...endings, done.signal]);
    const waits = [untilAborted(ended), ...round.files.map((file) => file.pollChange(ended))];
    if (remaining !== Infinity) waits.push(delay(remaining, ended));
    // The waits that lose the race reject once `done` aborts; nobody needs to hear about it.
    for (const wait of waits) wait.catch(() => {});
    try {
      await Promise.race(waits);
    } finally {
      done.abort();
    }
  }
}

/**
 * poll's look at its descriptors: each request's revents — the events asked for (and POLLERR,
 * POLLHUP) that hold, POLLNVAL for a descriptor not open, 0 for a negative one.
 */
export function pollRound(
  requests: readonly PollRequest[],
  fileOf: (fd: number) => OpenFile | undefined,
): ReadyRound<number[]> {
  const files: OpenFile[] = [];
  const result = requests.map(({ fd, events }) => {
    if (fd < 0) return 0;
    const file = fileOf(fd);
    if (!file) return POLLNVAL;
    files.push(file);
    return file.pollEvents() & (events | POLLERR | POLLHUP);
  });
  return { ready: result.some((revents) => revents !== 0), result, files };
}

export function isInSet(set: Uint8Array | undefined, fd: number): boolean {
  return set !== undefined && fd >> 3 < set.length && (set[fd >> 3] & (1 << (fd & 7))) !== 0;
}

/**
 * select's look at the descriptors in its sets: new sets holding those ready to read, to write,
 * or with an exceptional condition (POLLPRI), and how many bits that sets.
 */
export function selectRound(
  sets: SelectSets,
  wanted: readonly (readonly [number, OpenFile])[],
): ReadyRound<{ ready: number; sets: SelectSets }> {
  const out = {
    read: sets.read && new Uint8Array(sets.read.length),
    write: sets.write && new Uint8Array(sets.write.length),
    except: sets.except && new Uint8Array(sets.except.length),
  };
  let ready = 0;
  const mark = (set: Uint8Array | undefined, fd: number) => {
    if (!set) return;
    set[fd >> 3] |= 1 << (fd & 7);
    ready++;
  };
  for (const [fd, file] of wanted) {
    const events = file.pollEvents();
    if (isInSet(sets.read, fd) && (events & SELECT_READ)) mark(out.read, fd);
    if (isInSet(sets.write, fd) && (events & SELECT_WRITE)) mark(out.write, fd);
    if (isInSet(sets.except, fd) && (events & POLLPRI)) mark(out.except, fd);
  }
  return { ready: ready > 0, result: { ready, sets: out }, files: wanted.map(([, file]) => file) };
}

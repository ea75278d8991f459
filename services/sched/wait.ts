// wait4: the status words Linux stores for the guest, which children a pid argument selects, and
// which of them has something to report (kernel/exit.c do_wait, wait_task_zombie/stopped/continued).
import { AstraError, Code, Errno } from "../../lib/errors.ts";
import type { Process, ProcessTable } from "./processes.ts";

export const WNOHANG = 1;
export const WUNTRACED = 2;
export const WCONTINUED = 8;
export const WNOTHREAD = 0x20000000;
export const WALL = 0x40000000;
export const WCLONE = 0x80000000;
const WAIT4_OPTIONS = WNOHANG | WUNTRACED | WCONTINUED | WNOTHREAD | WALL | WCLONE;

/** WIFEXITED: the exit code in bits 8..15. */
export function exitedStatus(code: number): number {
  return (code & 0xff) << 8;
}

/** WIFSIGNALED: the signal in bits 0..6, WCOREDUMP in bit 7. */
export function killedStatus(signal: number, dumpedCore: boolean): number {
  return (signal & 0x7f) | (dumpedCore ? 0x80 : 0);
}

/** WIFSTOPPED: 0x7f with the signal in bits 8..15. */
export function stoppedStatus(signal: number): number {
  return ((signal & 0xff) << 8) | 0x7f;
}

/** WIFCONTINUED. */
export const CONTINUED_STATUS = 0xffff;

export type ChildOutcome = "exited" | "killed" | "dumped" | "stopped" | "continued";

export interface DecodedStatus {
  outcome: ChildOutcome;
  exitCode: number;
  signal: number;
}

export function decodeWaitStatus(status: number): DecodedStatus {
  if (status === CONTINUED_STATUS) return { outcome: "continued", exitCode: 0, signal: 0 };
  if ((status & 0xff) === 0x7f) return { outcome: "stopped", exitCode: 0, signal: (status >> 8) & 0xff };
  if ((status & 0x7f) === 0) return { outcome: "exited", exitCode: (status >> 8) & 0xff, signal: 0 };
  return { outcome: status & 0x80 ? "dumped" : "killed", exitCode: 0, signal: status & 0x7f };
}

export interface WaitOptions {
  noHang: boolean;
  reportStopped: boolean;
  reportContinued: boolean;
}

/** wait4's options word, EINVAL for bits Linux does not know. */
export function decodeWaitOptions(options: number): WaitOptions {
  if ((options >>> 0) & ~WAIT4_OPTIONS) {
    throw new AstraError(
      Code.INVALID_ARGUMENT,
      Errno.EINVAL,
      `wait4 options 0x${(options >>> 0).toString(16)} include unknown bits`,
      { argument: "options" },
    );
  }
  return {
    noHang: (options & WNOHANG) !== 0,
    reportStopped: (options & WUNTRACED) !== 0,
    reportContinued: (options & WCONTINUED) !== 0,
  };
}

/** Whether a child matches wait4's pid argument for a caller in process group `callerPgid`. */
export function selectsChild(pidSpec: number, callerPgid: number, child: Process): boolean {
  if (pidSpec > 0) return child.pid === pidSpec;
  if (pidSpec === -1) return true;
  if (pidSpec === 0) return child.pgid === callerPgid;
  return child.pgid === -pidSpec;
}

export type WaitEvent = "exit" | "stop" | "continue";

export type WaitCheck =
  /** No child matches at all: ECHILD. */
  | { kind: "no-children" }
  /** Matching children exist, none has anything to report yet. */
  | { kind: "nothing-yet" }
  | { kind: "found"; child: Process; event: WaitEvent };

/** The first matching child (lowest PID) with something to report, as do_wait scans. */
export function checkChildren(
  table: ProcessTable,
  callerPid: number,
  callerPgid: number,
  pidSpec: number,
  options: WaitOptions,
): WaitCheck {
  const children = table.childrenOf(callerPid).filter((c) => selectsChild(pidSpec, callerPgid, c));
  if (children.length === 0) return { kind: "no-children" };
  for (const child of children) {
    if (child.life === "zombie") return { kind: "found", child, event: "exit" };
    if (options.reportStopped && child.stopToReport !== null) return { kind: "found", child, event: "stop" };
    if (options.reportContinued && child.continueToReport) return { kind: "found", child, event: "continue" };
  }
  return { kind: "nothing-yet" };
}

export function noChildren(callerPid: number, pidSpec: number): AstraError {
  return new AstraError(
    Code.FAILED_PRECONDITION,
    Errno.ECHILD,
    `process ${callerPid} has no child matching pid ${pidSpec} to wait for`,
    { argument: "pid" },
  );
}

/**
 * Parents waiting for a child to change state. A waiter is woken on every change among its
 * children and checks again; the kernel (PID 0) waits like any parent.
 */
export class ChildWaiters {
  readonly #waiting = new Map<number, Set<() => void>>();

  /** Resolves at the next state change of a child of `parentPid`. */
  next(parentPid: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const set = this.#waiting.get(parentPid) ?? new Set();
      this.#waiting.set(parentPid, set);
      const wake = () => {
        set.delete(wake);
        signal?.removeEventListener("abort", abort);
        resolve();
      };
      const abort = () => {
        set.delete(wake);
        reject(signal!.reason);
      };
      if (signal?.aborted) return reject(signal.reason);
      signal?.addEventListener("abort", abort, { once: true });
      set.add(wake);
    });
  }

  notify(parentPid: number): void {
    const set = this.#waiting.get(parentPid);
    if (!set) return;
    this.#waiting.delete(parentPid);
    for (const wake of set) wake();
  }
}

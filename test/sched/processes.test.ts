// The process table: PID allocation, the tree, process groups and sessions as Linux rules them,
// reparenting and reaping; and wait4's status words and child selection.
import { describe, expect, it } from "vitest";
import { AstraError, Errno } from "../../lib/errors.ts";
import { commandName, PID_MAX, ProcessTable } from "../../services/sched/processes.ts";
import {
  checkChildren,
  ChildWaiters,
  CONTINUED_STATUS,
  decodeWaitOptions,
  decodeWaitStatus,
  exitedStatus,
  killedStatus,
  stoppedStatus,
} from "../../services/sched/wait.ts";

function errnoOf(work: () => unknown): Errno {
  try {
    work();
  } catch (error) {
    expect(error).toBeInstanceOf(AstraError);
    return (error as AstraError).errno;
  }
  throw new Error("expected a failure");
}

function live(table: ProcessTable, parentPid = 0) {
  const process = table.create({ parentPid, name: "p", startNanos: 0 });
  process.life = "live";
  return process;
}

const ANY = { noHang: false, reportStopped: true, reportContinued: true };

describe("ProcessTable", () => {
  it("allocates PIDs from 1, TIDs from the same space, wrapping above the reserved PIDs", () => {
    const table = new ProcessTable();
    const init = live(table);
    expect(init.pid).toBe(1);
    expect(init.threads.get(1)).toBeDefined();
    expect(table.addThread(init).tid).toBe(2);
    expect(live(table).pid).toBe(3);
    for (let i = 0; i < PID_MAX - 4; i++) table.allocateId();
    // 1..3 are in use and the rest was handed out: the next comes after the wrap, at 300.
    expect(table.allocateId()).toBe(300);
  });

  it("a child of the kernel leads a new session; a child of a process inherits its group, limits and actions", () => {
    const table = new ProcessTable();
    const parent = live(table);
    parent.limits.set(7, { soft: 10n, hard: 20n }, false);
    parent.actions.set(10, { handler: 1n, flags: 0n, restorer: 0n, mask: 0n });
    const child = live(table, parent.pid);
    expect([child.ppid, child.pgid, child.sid]).toEqual([parent.pid, parent.pgid, parent.sid]);
    expect(child.limits.get(7)).toEqual({ soft: 10n, hard: 20n });
    expect(child.actions.get(10).handler).toBe(1n);
    child.limits.set(7, { soft: 5n, hard: 5n }, false);
    expect(parent.limits.get(7).soft).toBe(10n);
    expect(table.childrenOf(parent.pid)).toEqual([child]);
    expect(errnoOf(() => table.create({ parentPid: 99, name: "x", startNanos: 0 }))).toBe(Errno.ESRCH);
  });

  it("setpgid follows kernel/sys.c: children only, before exec, within the session", () => {
    const table = new ProcessTable();
    const leader = live(table);
    const child = live(table, leader.pid);
    const stranger = live(table);
    expect(errnoOf(() => table.setProcessGroup(leader.pid, child.pid, 0))).toBe(Errno.EACCES);
    child.forkedWithoutExec = true;
    expect(table.setProcessGroup(leader.pid, child.pid, 0)).toBe(child.pid);
    expect(table.setProcessGroup(leader.pid, child.pid, leader.pid)).toBe(leader.pid);
    expect(errnoOf(() => table.setProcessGroup(leader.pid, stranger.pid, 0))).toBe(Errno.ESRCH);
    expect(errnoOf(() => table.setProcessGroup(leader.pid, 0, 0))).toBe(Errno.EPERM); // a session leader
    expect(errnoOf(() => table.setProcessGroup(child.pid, 0, stranger.pid))).toBe(Errno.EPERM); // other session
    expect(errnoOf(() => table.setProcessGroup(child.pid, 0, -1))).toBe(Errno.EINVAL);
  });

  it("setsid makes a new session unless the process leads a group", () => {
    const table = new ProcessTable();
    const leader = live(table);
    const child = live(table, leader.pid);
    expect(errnoOf(() => table.setSession(leader.pid))).toBe(Errno.EPERM);
    expect(table.setSession(child.pid)).toBe(child.pid);
    expect([child.sid, child.pgid]).toEqual([child.pid, child.pid]);
  });

  it("reparents orphans to init and adds reaped usage to the parent's children usage", () => {
    const table = new ProcessTable();
    const init = live(table);
    const middle = live(table, init.pid);
    const grandchild = live(table, middle.pid);
    expect(table.reparentChildren(middle)).toEqual({ newParent: init.pid, moved: [grandchild] });
    middle.life = "zombie";
    middle.finalUsage = { ...middle.exitedThreadsUsage, userNanos: 5 };
    table.reap(middle);
    expect(middle.life).toBe("dead");
    expect(init.childrenUsage.userNanos).toBe(5);
    expect(errnoOf(() => table.require(middle.pid))).toBe(Errno.ESRCH);
    expect(table.reparentChildren(init).newParent).toBe(0);
  });

  it("keeps command names to 15 bytes", () => {
    expect(commandName("a-very-long-program-name")).toBe("a-very-long-pro");
    expect(commandName(new TextEncoder().encode("sh\0junk"))).toBe("sh");
  });
});

describe("wait4", () => {
  it("encodes and decodes the status words", () => {
    expect(decodeWaitStatus(exitedStatus(300))).toEqual({ outcome: "exited", exitCode: 44, signal: 0 });
    expect(decodeWaitStatus(killedStatus(9, false))).toEqual({ outcome: "killed", exitCode: 0, signal: 9 });
    expect(decodeWaitStatus(killedStatus(11, true))).toEqual({ outcome: "dumped", exitCode: 0, signal: 11 });
    expect(decodeWaitStatus(stoppedStatus(19))).toEqual({ outcome: "stopped", exitCode: 0, signal: 19 });
    expect(decodeWaitStatus(CONTINUED_STATUS).outcome).toBe("continued");
    expect(decodeWaitOptions(1 | 2 | 8)).toEqual({
      noHang: true,
      reportStopped: true,
      reportContinued: true,
    });
    expect(() => decodeWaitOptions(4)).toThrow(AstraError);
  });

  it("selects children by pid, group or any, and reports exits before stops", () => {
    const table = new ProcessTable();
    const parent = live(table);
    const a = live(table, parent.pid);
    const b = live(table, parent.pid);
    b.pgid = 77;
    expect(checkChildren(table, parent.pid, parent.pgid, -1, ANY).kind).toBe("nothing-yet");
    expect(checkChildren(table, parent.pid, parent.pgid, 999, ANY).kind).toBe("no-children");
    expect(checkChildren(table, a.pid, a.pgid, -1, ANY).kind).toBe("no-children");
    b.stopToReport = 19;
    expect(checkChildren(table, parent.pid, parent.pgid, -77, ANY)).toMatchObject({
      child: b,
      event: "stop",
    });
    expect(checkChildren(table, parent.pid, parent.pgid, 0, ANY).kind).toBe("nothing-yet");
    expect(checkChildren(table, parent.pid, parent.pgid, -1, { ...ANY, reportStopped: false }).kind)
      .toBe("nothing-yet");
    a.life = "zombie";
    expect(checkChildren(table, parent.pid, parent.pgid, -1, ANY)).toMatchObject({ child: a, event: "exit" });
  });

  it("wakes the waiters of a parent, and lets an abort end a wait", async () => {
    const waiters = new ChildWaiters();
    const woken = waiters.next(5);
    waiters.notify(4);
    waiters.notify(5);
    await woken;
    const controller = new AbortController();
    const aborted = waiters.next(5, controller.signal);
    controller.abort(new Error("interrupted"));
    await expect(aborted).rejects.toThrow("interrupted");
  });
});

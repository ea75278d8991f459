// The per-CPU runqueues: dispatching to idle CPUs, time slices and preemption, strict priority
// classes, CFS's nice weighting, affinity, yielding and load balancing.
import { describe, expect, it } from "vitest";
import { AstraError } from "../../lib/errors.ts";
import {
  DEFAULT_TIME_SLICE_NANOS,
  PRIORITY_HIGH,
  PRIORITY_IDLE,
  PRIORITY_NORMAL,
  Scheduler,
  type SchedulingParameters,
} from "../../services/sched/runqueue.ts";

const SLICE = DEFAULT_TIME_SLICE_NANOS;
const normal: SchedulingParameters = { priority: PRIORITY_NORMAL, nice: 0, affinity: null };

function runnable(s: Scheduler, tid: number, parameters = normal): void {
  s.add(tid, tid, parameters);
  s.makeRunnable(tid);
}

describe("Scheduler", () => {
  it("puts runnable threads on idle CPUs and idles a CPU with nothing to run", () => {
    const s = new Scheduler(2);
    runnable(s, 10);
    runnable(s, 11);
    runnable(s, 12);
    const claims = s.claimIdle(0);
    expect(claims.map((c) => [c.cpu, c.dispatch.tid])).toEqual([[0, 10], [1, 11]]);
    expect(claims[0].dispatch.timeSliceNanos).toBe(SLICE);
    expect(s.claimIdle(0)).toEqual([]);
    expect(s.leave(10, 1000)).toBe(0);
    expect(s.schedule(0, 1000)?.tid).toBe(12);
    s.leave(12, 2000);
    expect(s.schedule(0, 2000)).toBeNull();
    expect(s.statistics(2000)[0].currentTid).toBe(0);
  });

  it("preempts at the end of a time slice only when another thread of the class waits", () => {
    const s = new Scheduler(1);
    runnable(s, 1);
    s.claimIdle(0);
    expect(s.tick(0, SLICE + 1)).toEqual({ preempt: false, next: { tid: 1, pid: 1, timeSliceNanos: SLICE } });
    runnable(s, 2);
    expect(s.tick(0, SLICE + 2).preempt).toBe(false);
    const decision = s.tick(0, 2 * SLICE + 2);
    expect(decision.preempt).toBe(true);
    expect(decision.next?.tid).toBe(2);
    expect(s.accounting(1, 2 * SLICE + 2).involuntarySwitches).toBe(1);
  });

  it("runs a higher class at once and an IDLE thread only when nothing else waits", () => {
    const s = new Scheduler(1);
    runnable(s, 1);
    s.claimIdle(0);
    runnable(s, 2, { ...normal, priority: PRIORITY_IDLE });
    expect(s.tick(0, 1000).preempt).toBe(false);
    runnable(s, 3, { ...normal, priority: PRIORITY_HIGH });
    expect(s.tick(0, 2000)).toMatchObject({ preempt: true, next: { tid: 3 } });
    s.leave(3, 3000);
    expect(s.schedule(0, 3000)?.tid).toBe(1);
    s.leave(1, 4000);
    expect(s.schedule(0, 4000)?.tid).toBe(2);
  });

  it("shares a CPU in proportion to the nice weights", () => {
    const s = new Scheduler(1);
    runnable(s, 1);
    runnable(s, 2, { ...normal, nice: 5 });
    s.claimIdle(0);
    const tick = 1_000_000;
    for (let now = tick; now <= 4000 * tick; now += tick) s.tick(0, now);
    const favoured = s.accounting(1, 4000 * tick).runtimeNanos;
    const other = s.accounting(2, 4000 * tick).runtimeNanos;
    // Weights 1024 and 335: about 3 to 1.
    expect(favoured / other).toBeGreaterThan(2.5);
    expect(favoured / other).toBeLessThan(3.6);
  });

  it("keeps threads on the CPUs their affinity allows", () => {
    const s = new Scheduler(2);
    runnable(s, 1, { ...normal, affinity: [1] });
    expect(s.claimIdle(0)).toEqual([{ cpu: 1, dispatch: { tid: 1, pid: 1, timeSliceNanos: SLICE } }]);
    runnable(s, 2, { ...normal, affinity: [1] });
    expect(s.claimIdle(0)).toEqual([]);
    expect(s.schedule(0, 0)).toBeNull();
    expect(s.setAffinity(2, [0, 7])).toEqual([0]);
    expect(s.claimIdle(0).map((c) => [c.cpu, c.dispatch.tid])).toEqual([[0, 2]]);
    // A running thread moved off its CPU goes at its next tick.
    s.setAffinity(1, [0]);
    expect(s.tick(1, 1000).preempt).toBe(true);
    expect(() => s.setAffinity(1, [5])).toThrow(AstraError);
  });

  it("yield hands the CPU to the next thread of the class", () => {
    const s = new Scheduler(1);
    runnable(s, 1);
    runnable(s, 2);
    s.claimIdle(0);
    expect(s.yield(0, 1, 10)?.tid).toBe(2);
    expect(s.yield(0, 2, 20)?.tid).toBe(1);
    expect(() => s.yield(0, 2, 30)).toThrow(AstraError);
  });

  it("yieldLater makes the next tick switch to a waiting thread", () => {
    const s = new Scheduler(1);
    runnable(s, 1);
    runnable(s, 2);
    s.claimIdle(0);
    s.yieldLater(1);
    expect(s.tick(0, 1000)).toMatchObject({ preempt: true, next: { tid: 2 } });
  });

  it("a CPU whose thread left under it switches at its next tick, even to idle", () => {
    const s = new Scheduler(1);
    runnable(s, 1);
    s.claimIdle(0);
    s.leave(1, 100);
    expect(s.tick(0, 200)).toEqual({ preempt: true, next: null });
    expect(s.tick(0, 300)).toEqual({ preempt: false, next: null });
    expect(s.statistics(300)[0].idleTicks).toBe(1);
  });

  it("load balancing moves waiting threads to the idlest CPU, and an idle CPU steals work", () => {
    const s = new Scheduler(2);
    for (const tid of [1, 2, 3, 4]) s.add(tid, tid, { ...normal, affinity: [0] });
    for (const tid of [1, 2, 3, 4]) s.makeRunnable(tid);
    s.claimIdle(0);
    for (const tid of [2, 3, 4]) s.setAffinity(tid, [0, 1]);
    const migrations = s.loadBalance();
    expect(migrations.length).toBeGreaterThanOrEqual(1);
    expect(migrations.every((m) => m.fromCpu === 0 && m.toCpu === 1)).toBe(true);
    const stats = s.statistics(0);
    expect(Math.abs(stats[0].runnableByPriority[2] + 1 - stats[1].runnableByPriority[2])).toBeLessThanOrEqual(
      1,
    );
    const fresh = new Scheduler(2);
    for (const tid of [1, 2, 3]) runnable(fresh, tid, { ...normal, affinity: null });
    fresh.claimIdle(0);
    fresh.leave(2, 10);
    expect(fresh.schedule(1, 10)?.tid).toBe(3);
  });

  it("refuses unknown CPUs, classes and nice values", () => {
    const s = new Scheduler(2);
    expect(() => s.tick(2, 0)).toThrow(AstraError);
    expect(() => s.add(1, 1, { ...normal, priority: 9 })).toThrow(AstraError);
    expect(() => s.add(1, 1, { ...normal, nice: 20 })).toThrow(AstraError);
  });
});

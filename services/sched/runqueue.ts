// The per-CPU runqueues: which runnable thread each CPU runs, for how long, and when to switch.
// Priority classes are strict (a REALTIME thread always runs before a HIGH one, and so on down to
// IDLE); within a class threads share the CPU as in CFS, by virtual runtime weighted by nice
// (kernel/sched/core.c's sched_prio_to_weight). Pure logic: the caller turns the decisions into
// machine.RunThread calls and Dispatch answers.
import { invalidArgument } from "../../lib/errors.ts";

/** The contract's ThreadPriority numbering: IDLE 1 .. REALTIME 5. */
export const PRIORITY_IDLE = 1;
export const PRIORITY_LOW = 2;
export const PRIORITY_NORMAL = 3;
export const PRIORITY_HIGH = 4;
export const PRIORITY_REALTIME = 5;
export const PRIORITY_CLASSES = 5;

export const NICE_MIN = -20;
export const NICE_MAX = 19;
/** The weight of nice 0, CFS's NICE_0_LOAD. */
export const NICE_0_WEIGHT = 1024;
/** How long a thread runs before another of its class gets the CPU, if one waits. */
export const DEFAULT_TIME_SLICE_NANOS = 10_000_000;

/** sched_prio_to_weight: each nice step is about 10% of CPU time. */
const NICE_WEIGHTS = [
  88761,
  71755,
  56483,
  46273,
  36291,
  29154,
  23254,
  18705,
  14949,
  11916,
  9548,
  7620,
  6100,
  4904,
  3906,
  3121,
  2501,
  1991,
  1586,
  1277,
  1024,
  820,
  655,
  526,
  423,
  335,
  272,
  215,
  172,
  137,
  110,
  87,
  70,
  56,
  45,
  36,
  29,
  23,
  18,
  15,
];

export function niceWeight(nice: number): number {
  return NICE_WEIGHTS[nice - NICE_MIN];
}

export function checkPriority(priority: number): void {
  if (!Number.isInteger(priority) || priority < PRIORITY_IDLE || priority > PRIORITY_REALTIME) {
    throw invalidArgument("priority", `priority class ${priority} is not IDLE..REALTIME (1..5)`);
  }
}

export function checkNice(nice: number): void {
  if (!Number.isInteger(nice) || nice < NICE_MIN || nice > NICE_MAX) {
    throw invalidArgument("nice", `nice ${nice} is not in ${NICE_MIN}..${NICE_MAX}`);
  }
}

/** What a CPU runs next; the contract's Dispatch. */
export interface Dispatch {
  tid: number;
  pid: number;
  timeSliceNanos: number;
}

export interface SchedulingParameters {
  priority: number;
  nice: number;
  /** The CPUs it may run on, ascending; null: every CPU. */
  affinity: number[] | null;
}

interface Entity extends SchedulingParameters {
  readonly tid: number;
  readonly pid: number;
  vruntime: number;
  /** Never ran nor waited yet: it starts at its runqueue's minimum virtual runtime. */
  fresh: boolean;
  /** The runqueue it waits on, or the CPU it runs on or ran on last. */
  cpu: number;
  where: "off" | "queued" | "running";
  runtimeNanos: number;
  voluntarySwitches: number;
  involuntarySwitches: number;
}

/**
 * idle: nothing to run, waiting for RunThread; running: `current` is on it; switching: its thread
 * left (blocked, exited) and the machine is about to ask Schedule.
 */
type CpuMode = "idle" | "running" | "switching";

interface CpuQueue {
  readonly cpu: number;
  mode: CpuMode;
  current: Entity | null;
  queue: Entity[];
  minVruntime: number;
  sliceStart: number;
  accountedAt: number;
  contextSwitches: number;
  ticks: number;
  idleTicks: number;
  migrations: number;
  /** The thread it ran last, to count a context switch only when the thread changes. */
  lastTid: number;
}

export interface CpuStatistics {
  cpu: number;
  runnableByPriority: number[];
  load: number;
  contextSwitches: number;
  ticks: number;
  idleTicks: number;
  migrations: number;
  currentTid: number;
}

export interface ThreadAccounting {
  runtimeNanos: number;
  voluntarySwitches: number;
  involuntarySwitches: number;
}

export interface Migration {
  tid: number;
  fromCpu: number;
  toCpu: number;
}

export interface TickDecision {
  preempt: boolean;
  next: Dispatch | null;
}

export class Scheduler {
  readonly #cpus: CpuQueue[];
  readonly #entities = new Map<number, Entity>();

  constructor(cpuCount: number, readonly timeSliceNanos = DEFAULT_TIME_SLICE_NANOS) {
    if (!Number.isInteger(cpuCount) || cpuCount < 1) {
      throw invalidArgument("cpus", `a scheduler needs at least one CPU, not ${cpuCount}`);
    }
    this.#cpus = Array.from({ length: cpuCount }, (_, cpu) => ({
      cpu,
      mode: "idle",
      current: null,
      queue: [],
      minVruntime: 0,
      sliceStart: 0,
      accountedAt: 0,
      contextSwitches: 0,
      ticks: 0,
      idleTicks: 0,
      migrations: 0,
      lastTid: 0,
    }));
  }

  get cpuCount(): number {
    return this.#cpus.length;
  }

  /** The online CPUs of a list, ascending and without repeats; EINVAL when none is online. */
  onlineCpus(cpus: readonly number[]): number[] {
    const online = [...new Set(cpus)].filter((c) => Number.isInteger(c) && c >= 0 && c < this.#cpus.length)
      .sort((a, b) => a - b);
    if (online.length === 0) {
      throw invalidArgument(
        "cpus",
        `none of CPUs [${cpus.join(", ")}] is online (0..${this.#cpus.length - 1})`,
      );
    }
    return online;
  }

  /** Registers a thread, not yet runnable. */
  add(tid: number, pid: number, parameters: SchedulingParameters): void {
    checkPriority(parameters.priority);
    checkNice(parameters.nice);
    this.#entities.set(tid, {
      tid,
      pid,
      priority: parameters.priority,
      nice: parameters.nice,
      affinity: parameters.affinity === null ? null : this.onlineCpus(parameters.affinity),
      vruntime: 0,
      fresh: true,
      cpu: 0,
      where: "off",
      runtimeNanos: 0,
      voluntarySwitches: 0,
      involuntarySwitches: 0,
    });
  }

  has(tid: number): boolean {
    return this.#entities.has(tid);
  }

  /** Forgets a thread; returns the CPU it was running on, if any. */
  remove(tid: number, now: number): number | null {
    const cpu = this.leave(tid, now, false);
    this.#entities.delete(tid);
    return cpu;
  }

  parameters(tid: number): SchedulingParameters {
    const e = this.#entity(tid);
    return { priority: e.priority, nice: e.nice, affinity: e.affinity === null ? null : [...e.affinity] };
  }

  /** The CPUs a thread may run on (every CPU when unrestricted). */
  affinityOf(tid: number): number[] {
    return this.#entity(tid).affinity ?? this.#cpus.map((c) => c.cpu);
  }

  accounting(tid: number, now: number): ThreadAccounting {
    const e = this.#entity(tid);
    if (e.where === "running") this.#account(this.#cpus[e.cpu], now);
    return {
      runtimeNanos: e.runtimeNanos,
      voluntarySwitches: e.voluntarySwitches,
      involuntarySwitches: e.involuntarySwitches,
    };
  }

  /** The CPU a thread is on now, or null. */
  runningOn(tid: number): number | null {
    const e = this.#entities.get(tid);
    return e?.where === "running" ? e.cpu : null;
  }

  /** The CPU it runs on or ran on last. */
  lastCpu(tid: number): number {
    return this.#entity(tid).cpu;
  }

  isQueued(tid: number): boolean {
    return this.#entities.get(tid)?.where === "queued";
  }

  current(cpu: number): { tid: number; pid: number } | null {
    const c = this.#cpu(cpu).current;
    return c ? { tid: c.tid, pid: c.pid } : null;
  }

  /** The thread becomes runnable: it joins the runqueue of an allowed CPU, idle ones first. */
  makeRunnable(tid: number): void {
    const e = this.#entity(tid);
    if (e.where !== "off") return;
    this.#enqueue(e, this.#chooseCpu(e));
  }

  /**
   * The thread stops being runnable (sleeps, blocks, stops, exits). Returns the CPU it was running
   * on, which now waits for Schedule.
   */
  leave(tid: number, now: number, voluntary = true): number | null {
    const e = this.#entities.get(tid);
    if (!e || e.where === "off") return null;
    const cpu = this.#cpus[e.cpu];
    if (e.where === "queued") {
      cpu.queue = cpu.queue.filter((q) => q !== e);
      e.where = "off";
      return null;
    }
    this.#account(cpu, now);
    if (voluntary) e.voluntarySwitches++;
    cpu.current = null;
    cpu.mode = "switching";
    e.where = "off";
    return cpu.cpu;
  }

  /**
   * Idle CPUs that can take a runnable thread now, each with the thread it takes (from its own
   * queue or another's). The caller puts them there with machine.RunThread.
   */
  claimIdle(now: number): Array<{ cpu: number; dispatch: Dispatch }> {
    const claims: Array<{ cpu: number; dispatch: Dispatch }> = [];
    for (const cpu of this.#cpus) {
      if (cpu.mode !== "idle") continue;
      const next = this.#takeNext(cpu);
      if (!next) continue;
      claims.push({ cpu: cpu.cpu, dispatch: this.#run(cpu, next, now) });
    }
    return claims;
  }

  /** A claim the machine refused (RunThread failed): the thread waits again, the CPU idles. */
  unclaim(cpu: number, tid: number): void {
    const c = this.#cpu(cpu);
    const e = this.#entities.get(tid);
    if (!e || c.current !== e) return;
    c.current = null;
    c.mode = "idle";
    e.where = "queued";
    c.queue.unshift(e);
  }

  /** Schedule: the CPU asks what to run; a thread still on it goes back to the queue. */
  schedule(cpu: number, now: number): Dispatch | null {
    const c = this.#cpu(cpu);
    if (c.current) this.#requeueCurrent(c, now, false);
    return this.#pickAndRun(c, now);
  }

  /** The decrementer fired: account, preempt when the slice is used up or a better thread waits. */
  tick(cpu: number, now: number): TickDecision {
    const c = this.#cpu(cpu);
    c.ticks++;
    if (!c.current) {
      // A CPU whose thread left under it (Sleep, Block or a kill by RPC) must switch even to idle.
      const threadLeft = c.mode === "switching";
      if (!threadLeft) c.idleTicks++;
      const next = this.#pickAndRun(c, now);
      return { preempt: next !== null || threadLeft, next };
    }
    this.#account(c, now);
    const current = c.current;
    const waiting = this.#best(c.queue);
    const disallowed = current.affinity !== null && !current.affinity.includes(c.cpu);
    const sliceUsed = now - c.sliceStart >= this.timeSliceNanos;
    const preempt = disallowed ||
      (waiting !== null &&
        (waiting.priority > current.priority || (sliceUsed && waiting.priority === current.priority)));
    if (!preempt) {
      if (sliceUsed) c.sliceStart = now;
      return { preempt: false, next: this.#dispatchOf(current, c, now) };
    }
    this.#requeueCurrent(c, now, true);
    if (disallowed) this.#moveQueued(current, this.#chooseCpu(current));
    return { preempt: true, next: this.#pickAndRun(c, now) };
  }

  /** sched_yield: the running thread goes behind the others of its class; returns what runs next. */
  yield(cpu: number, tid: number, now: number): Dispatch | null {
    const c = this.#cpu(cpu);
    if (c.current?.tid !== tid) {
      throw invalidArgument("tid", `thread ${tid} is not running on CPU ${cpu}`);
    }
    this.#account(c, now);
    const current = c.current;
    for (const other of c.queue) {
      if (other.priority === current.priority && other.vruntime >= current.vruntime) {
        current.vruntime = other.vruntime + 1;
      }
    }
    this.#requeueCurrent(c, now, false);
    current.voluntarySwitches++;
    return this.#pickAndRun(c, now);
  }

  /**
   * sched_yield from a kernel call: the thread goes on running until the next tick, which then
   * hands the CPU to any thread of its class that waits (the machine resumes the caller itself).
   */
  yieldLater(tid: number): void {
    const e = this.#entity(tid);
    if (e.where !== "running") return;
    const c = this.#cpus[e.cpu];
    for (const other of c.queue) {
      if (other.priority === e.priority && other.vruntime >= e.vruntime) e.vruntime = other.vruntime + 1;
    }
    c.sliceStart = Math.min(c.sliceStart, c.accountedAt - this.timeSliceNanos);
  }

  setPriority(tid: number, priority: number, nice: number): SchedulingParameters {
    checkPriority(priority);
    checkNice(nice);
    const e = this.#entity(tid);
    const previous = this.parameters(tid);
    e.priority = priority;
    e.nice = nice;
    return previous;
  }

  /** Restricts a thread to some CPUs; a waiting thread moves now, a running one at its next tick. */
  setAffinity(tid: number, cpus: readonly number[]): number[] {
    const e = this.#entity(tid);
    const online = this.onlineCpus(cpus);
    e.affinity = online.length === this.#cpus.length ? null : online;
    if (e.where === "queued" && !this.#allowed(e, e.cpu)) this.#moveQueued(e, this.#chooseCpu(e));
    return online;
  }

  /** Moves waiting threads from the busiest runqueues to the least busy, within affinity. */
  loadBalance(): Migration[] {
    const migrations: Migration[] = [];
    for (let round = 0; round < this.#entities.size; round++) {
      const byLoad = [...this.#cpus].sort((a, b) => this.#length(a) - this.#length(b));
      const idlest = byLoad[0];
      let moved = false;
      for (const busiest of byLoad.reverse()) {
        if (this.#length(busiest) - this.#length(idlest) < 2) break;
        const candidate = busiest.queue.find((e) => this.#allowed(e, idlest.cpu));
        if (!candidate) continue;
        this.#moveQueued(candidate, idlest.cpu);
        migrations.push({ tid: candidate.tid, fromCpu: busiest.cpu, toCpu: idlest.cpu });
        moved = true;
        break;
      }
      if (!moved) break;
    }
    return migrations;
  }

  statistics(now: number): CpuStatistics[] {
    return this.#cpus.map((c) => {
      if (c.current) this.#account(c, now);
      const byPriority = new Array(PRIORITY_CLASSES).fill(0);
      for (const e of c.queue) byPriority[e.priority - 1]++;
      const load = [...c.queue, ...(c.current ? [c.current] : [])].reduce(
        (n, e) => n + niceWeight(e.nice),
        0,
      );
      return {
        cpu: c.cpu,
        runnableByPriority: byPriority,
        load,
        contextSwitches: c.contextSwitches,
        ticks: c.ticks,
        idleTicks: c.idleTicks,
        migrations: c.migrations,
        currentTid: c.current?.tid ?? 0,
      };
    });
  }

  #entity(tid: number): Entity {
    const e = this.#entities.get(tid);
    if (!e) throw invalidArgument("tid", `thread ${tid} is not known to the scheduler`);
    return e;
  }

  #cpu(cpu: number): CpuQueue {
    const c = this.#cpus[cpu];
    if (!Number.isInteger(cpu) || !c) {
      throw invalidArgument("cpu", `CPU ${cpu} does not exist (0..${this.#cpus.length - 1})`);
    }
    return c;
  }

  #allowed(e: Entity, cpu: number): boolean {
    return e.affinity === null || e.affinity.includes(cpu);
  }

  #length(c: CpuQueue): number {
    return c.queue.length + (c.current ? 1 : 0);
  }

  /** An idle allowed CPU (the last one it ran on first), else the allowed one with least work. */
  #chooseCpu(e: Entity): number {
    const allowed = this.#cpus.filter((c) => this.#allowed(e, c.cpu));
    const idle = allowed.filter((c) => c.mode === "idle" && c.queue.length === 0);
    if (idle.length > 0) return (idle.find((c) => c.cpu === e.cpu) ?? idle[0]).cpu;
    let best = allowed.find((c) => c.cpu === e.cpu) ?? allowed[0];
    for (const c of allowed) if (this.#length(c) < this.#length(best)) best = c;
    return best.cpu;
  }

  #enqueue(e: Entity, cpu: number): void {
    const c = this.#cpus[cpu];
    // A fresh thread starts at the queue's minimum; a waking one may not bank more than half a
    // slice of credit from its sleep (CFS's place_entity).
    e.vruntime = e.fresh ? c.minVruntime : Math.max(e.vruntime, c.minVruntime - this.timeSliceNanos / 2);
    e.fresh = false;
    e.cpu = cpu;
    e.where = "queued";
    c.queue.push(e);
  }

  #moveQueued(e: Entity, cpu: number): void {
    const from = this.#cpus[e.cpu];
    if (from.cpu === cpu) return;
    const to = this.#cpus[cpu];
    from.queue = from.queue.filter((q) => q !== e);
    // Keep its lag relative to the queue it joins.
    e.vruntime = e.vruntime - from.minVruntime + to.minVruntime;
    e.cpu = cpu;
    to.queue.push(e);
    from.migrations++;
    to.migrations++;
  }

  /** Highest class first, then lowest virtual runtime, then the longest waiting. */
  #best(queue: readonly Entity[]): Entity | null {
    let best: Entity | null = null;
    for (const e of queue) {
      if (
        !best || e.priority > best.priority || (e.priority === best.priority && e.vruntime < best.vruntime)
      ) {
        best = e;
      }
    }
    return best;
  }

  /** The next thread for a CPU: its own queue's best, else the best another queue lets it take. */
  #takeNext(c: CpuQueue): Entity | null {
    const own = this.#best(c.queue);
    if (own) {
      c.queue = c.queue.filter((q) => q !== own);
      return own;
    }
    let stolen: Entity | null = null;
    for (const other of this.#cpus) {
      if (other === c) continue;
      const candidate = this.#best(other.queue.filter((e) => this.#allowed(e, c.cpu)));
      if (
        candidate &&
        (!stolen || candidate.priority > stolen.priority ||
          (candidate.priority === stolen.priority && candidate.vruntime < stolen.vruntime))
      ) {
        stolen = candidate;
      }
    }
    if (!stolen) return null;
    const from = this.#cpus[stolen.cpu];
    from.queue = from.queue.filter((q) => q !== stolen);
    stolen.vruntime = stolen.vruntime - from.minVruntime + c.minVruntime;
    from.migrations++;
    c.migrations++;
    return stolen;
  }

  #run(c: CpuQueue, e: Entity, now: number): Dispatch {
    e.where = "running";
    e.cpu = c.cpu;
    c.current = e;
    c.mode = "running";
    c.sliceStart = now;
    c.accountedAt = now;
    if (c.lastTid !== e.tid) c.contextSwitches++;
    c.lastTid = e.tid;
    return this.#dispatchOf(e, c, now);
  }

  #pickAndRun(c: CpuQueue, now: number): Dispatch | null {
    const next = this.#takeNext(c);
    if (!next) {
      c.mode = "idle";
      return null;
    }
    return this.#run(c, next, now);
  }

  #requeueCurrent(c: CpuQueue, now: number, involuntary: boolean): void {
    const e = c.current!;
    this.#account(c, now);
    if (involuntary) e.involuntarySwitches++;
    c.current = null;
    e.where = "queued";
    c.queue.push(e);
  }

  #dispatchOf(e: Entity, c: CpuQueue, now: number): Dispatch {
    const left = this.timeSliceNanos - (now - c.sliceStart);
    return { tid: e.tid, pid: e.pid, timeSliceNanos: Math.max(left, 0) || this.timeSliceNanos };
  }

  /** Charges the running thread for the time since it was last charged. */
  #account(c: CpuQueue, now: number): void {
    const e = c.current;
    if (!e) return;
    const delta = Math.max(0, now - c.accountedAt);
    c.accountedAt = Math.max(c.accountedAt, now);
    e.runtimeNanos += delta;
    e.vruntime += delta * NICE_0_WEIGHT / niceWeight(e.nice);
    let min = e.vruntime;
    for (const q of c.queue) if (q.vruntime < min) min = q.vruntime;
    c.minVruntime = Math.max(c.minVruntime, min);
  }
}

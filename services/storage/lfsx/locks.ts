// The lock manager: shared and exclusive locks on keys, held until the owner ends, granted in
// FIFO order (an upgrade from shared to exclusive goes to the front of its queue).
//
// Whoever waits adds edges to the wait-for graph — to the holders it conflicts with and to the
// conflicting requests queued before it. A deadlock can only close when a transaction starts to
// wait, so the graph is searched from the new waiter at that moment (transaction_detect_deadlock);
// for each cycle found the victim is the member that has done the least work, the youngest among
// equals (transaction_resolve_deadlock). Its wait fails with ABORTED/EDEADLK; the transaction
// layer then aborts it, which releases its locks and lets the others proceed. Waits also end
// with ABORTED/ETIMEDOUT after the owner's lock timeout.
import { AstraError, Code, Errno } from "../../../lib/errors.ts";
import { describeKey, type Key } from "./keys.ts";

export enum LockMode {
  Shared = 1,
  Exclusive = 2,
}

export interface LockOwner {
  readonly id: number;
  /** Start order: a higher value is a younger owner. */
  readonly age: number;
  /** Work done so far; the deadlock victim is an owner with the least. */
  work(): number;
}

interface LockRequest {
  owner: LockOwner;
  key: Key;
  mode: LockMode;
  since: number;
  resolve: () => void;
  reject: (err: AstraError) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

interface LockEntry {
  holders: Map<LockOwner, LockMode>;
  queue: LockRequest[];
}

export interface WaitEdge {
  waiter: number;
  key: Key;
  mode: LockMode;
  waitsFor: number[];
  waitedMs: number;
}

export interface LockGraph {
  edges: WaitEdge[];
  /** Cycles present right now, as owner ids; normally none, since each is broken as it forms. */
  cycles: number[][];
}

export interface LockStatistics {
  locksHeld: number;
  waiting: number;
  grantedImmediately: number;
  waits: number;
  deadlocks: number;
  timeouts: number;
}

function compatible(a: LockMode, b: LockMode): boolean {
  return a === LockMode.Shared && b === LockMode.Shared;
}

export class LockManager {
  readonly #table = new Map<Key, LockEntry>();
  readonly #held = new Map<LockOwner, Map<Key, LockMode>>();
  readonly #waiting = new Map<LockOwner, LockRequest>();
  readonly #stats = { grantedImmediately: 0, waits: 0, deadlocks: 0, timeouts: 0 };

  statistics(): LockStatistics {
    let locksHeld = 0;
    for (const keys of this.#held.values()) locksHeld += keys.size;
    return { locksHeld, waiting: this.#waiting.size, ...this.#stats };
  }

  /** The mode `owner` holds `key` in, if any. */
  heldMode(owner: LockOwner, key: Key): LockMode | undefined {
    return this.#held.get(owner)?.get(key);
  }

  /** The owner holding `key` exclusively, if one does. */
  exclusiveHolder(key: Key): LockOwner | undefined {
    const entry = this.#table.get(key);
    if (!entry) return undefined;
    for (const [owner, mode] of entry.holders) if (mode === LockMode.Exclusive) return owner;
    return undefined;
  }

  /**
   * Acquires `key` in `mode`. Returns true when granted at once, otherwise a promise that
   * settles when the lock is granted, or fails on deadlock or after `timeoutMs` (0: no limit).
   */
  acquire(owner: LockOwner, key: Key, mode: LockMode, timeoutMs: number): true | Promise<void> {
    const held = this.heldMode(owner, key);
    if (held !== undefined && held >= mode) return true;
    let entry = this.#table.get(key);
    if (!entry) {
      entry = { holders: new Map(), queue: [] };
      this.#table.set(key, entry);
    }
    const upgrade = held !== undefined;
    if ((upgrade || entry.queue.length === 0) && this.#grantable(entry, owner, mode)) {
      this.#grant(entry, owner, key, mode);
      this.#stats.grantedImmediately++;
      return true;
    }
    if (this.#waiting.has(owner)) {
      throw new AstraError(
        Code.FAILED_PRECONDITION,
        Errno.EBUSY,
        `transaction ${owner.id} is already waiting for a lock`,
      );
    }
    this.#stats.waits++;
    return new Promise<void>((resolve, reject) => {
      const request: LockRequest = {
        owner,
        key,
        mode,
        since: performance.now(),
        resolve,
        reject,
        timer: undefined,
      };
      if (upgrade) entry.queue.unshift(request);
      else entry.queue.push(request);
      this.#waiting.set(owner, request);
      if (timeoutMs > 0) {
        request.timer = setTimeout(() => {
          this.#stats.timeouts++;
          const holders = this.#blockers(request).map((o) => o.id).join(", ");
          this.#withdraw(
            request,
            new AstraError(
              Code.ABORTED,
              Errno.ETIMEDOUT,
              `lock wait timeout: transaction ${owner.id} waited ${timeoutMs} ms for ${describeKey(key)}, ` +
                `held or requested first by transaction ${holders}`,
              { facts: { key: describeKey(key), blockers: holders } },
            ),
          );
        }, timeoutMs);
      }
      this.#resolveDeadlocks(owner);
    });
  }

  /** Ends `owner`'s wait, if it is waiting, with `reason`. */
  cancelWait(owner: LockOwner, reason: AstraError): void {
    const request = this.#waiting.get(owner);
    if (request) this.#withdraw(request, reason);
  }

  /** Releases one lock (a savepoint rollback gives back what it took). */
  release(owner: LockOwner, key: Key): void {
    const keys = this.#held.get(owner);
    if (!keys?.delete(key)) return;
    if (keys.size === 0) this.#held.delete(owner);
    const entry = this.#table.get(key)!;
    entry.holders.delete(owner);
    this.#grantWaiters(entry, key);
  }

  /** Releases everything `owner` holds and withdraws its wait. */
  releaseAll(owner: LockOwner, reason: AstraError): void {
    this.cancelWait(owner, reason);
    const keys = this.#held.get(owner);
    if (!keys) return;
    this.#held.delete(owner);
    for (const key of keys.keys()) {
      const entry = this.#table.get(key)!;
      entry.holders.delete(owner);
      this.#grantWaiters(entry, key);
    }
  }

  /** The wait-for graph and any cycles in it (transaction_detect_deadlock, for diagnostics). */
  graph(): LockGraph {
    const now = performance.now();
    const edges: WaitEdge[] = [];
    const cycles: number[][] = [];
    const inCycle = new Set<LockOwner>();
    for (const [owner, request] of this.#waiting) {
      edges.push({
        waiter: owner.id,
        key: request.key,
        mode: request.mode,
        waitsFor: this.#blockers(request).map((o) => o.id),
        waitedMs: now - request.since,
      });
      if (!inCycle.has(owner)) {
        const cycle = this.#findCycle(owner);
        if (cycle) {
          cycle.forEach((o) => inCycle.add(o));
          cycles.push(cycle.map((o) => o.id));
        }
      }
    }
    return { edges, cycles };
  }

  #grantable(entry: LockEntry, owner: LockOwner, mode: LockMode): boolean {
    for (const [holder, held] of entry.holders) {
      if (holder !== owner && !compatible(held, mode)) return false;
    }
    return true;
  }

  #grant(entry: LockEntry, owner: LockOwner, key: Key, mode: LockMode): void {
    entry.holders.set(owner, mode);
    let keys = this.#held.get(owner);
    if (!keys) {
      keys = new Map();
      this.#held.set(owner, keys);
    }
    keys.set(key, mode);
  }

  #grantWaiters(entry: LockEntry, key: Key): void {
    while (entry.queue.length > 0) {
      const request = entry.queue[0];
      if (!this.#grantable(entry, request.owner, request.mode)) break;
      entry.queue.shift();
      this.#grant(entry, request.owner, key, request.mode);
      this.#settle(request);
      request.resolve();
    }
    if (entry.holders.size === 0 && entry.queue.length === 0) this.#table.delete(key);
  }

  #withdraw(request: LockRequest, reason: AstraError): void {
    const entry = this.#table.get(request.key)!;
    entry.queue.splice(entry.queue.indexOf(request), 1);
    this.#settle(request);
    request.reject(reason);
    // Those queued behind the withdrawn request may be grantable now.
    this.#grantWaiters(entry, request.key);
  }

  #settle(request: LockRequest): void {
    if (request.timer !== undefined) clearTimeout(request.timer);
    this.#waiting.delete(request.owner);
  }

  /** The owners `request` waits for: conflicting holders and conflicting requests queued before it. */
  #blockers(request: LockRequest): LockOwner[] {
    const entry = this.#table.get(request.key)!;
    const blockers = new Set<LockOwner>();
    for (const [holder, mode] of entry.holders) {
      if (holder !== request.owner && !compatible(mode, request.mode)) blockers.add(holder);
    }
    for (const queued of entry.queue) {
      if (queued === request) break;
      if (queued.owner !== request.owner && !compatible(queued.mode, request.mode)) {
        blockers.add(queued.owner);
      }
    }
    return [...blockers];
  }

  /** A cycle of waits through `start`, as the owners along it, or undefined. */
  #findCycle(start: LockOwner): LockOwner[] | undefined {
    const path: LockOwner[] = [];
    const done = new Set<LockOwner>();
    const search = (owner: LockOwner): boolean => {
      const request = this.#waiting.get(owner);
      if (!request) return false;
      path.push(owner);
      for (const next of this.#blockers(request)) {
        if (next === start) return true;
        if (!done.has(next) && !path.includes(next) && search(next)) return true;
      }
      path.pop();
      done.add(owner);
      return false;
    };
    return search(start) ? path : undefined;
  }

  #resolveDeadlocks(waiter: LockOwner): void {
    for (let cycle = this.#findCycle(waiter); cycle; cycle = this.#findCycle(waiter)) {
      this.#stats.deadlocks++;
      const victim = cycle.reduce((best, o) => {
        const byWork = o.work() - best.work();
        return byWork < 0 || (byWork === 0 && o.age > best.age) ? o : best;
      });
      const members = cycle.map((o) => o.id);
      const request = this.#waiting.get(victim)!;
      this.#withdraw(
        request,
        new AstraError(
          Code.ABORTED,
          Errno.EDEADLK,
          `deadlock detected among transactions ${members.join(" → ")} → ${members[0]}; transaction ` +
            `${victim.id} (least work, youngest) is aborted, retry it`,
          { facts: { cycle: members.join(","), victim: String(victim.id) } },
        ),
      );
      if (victim === waiter) return;
    }
  }
}

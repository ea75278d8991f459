// Transactions over the B+ tree: MVCC snapshots, key locks, savepoints and the isolation levels.
//
// Isolation levels, chosen to behave as PostgreSQL does:
// - READ UNCOMMITTED runs as READ COMMITTED (PostgreSQL does the same: no dirty reads, ever).
// - READ COMMITTED: every statement (Get, Scan, …) reads the newest committed data when it starts.
// - REPEATABLE READ: snapshot isolation. The snapshot is taken at the transaction's first
//   statement, not at Begin, as in PostgreSQL.
// - SERIALIZABLE: serializable snapshot isolation (ssi.ts) on top of REPEATABLE READ — not strict
//   two-phase locking — so readers never block writers and outcomes match PostgreSQL's.
//
// Every write takes an exclusive lock on its key, held to the end, so concurrent writers of a key
// queue behind each other. Once the first one commits, a waiting READ COMMITTED writer proceeds
// (PostgreSQL re-applies its update to the new row version; a key-value write simply replaces
// it), while a REPEATABLE READ or SERIALIZABLE writer whose snapshot predates that commit fails
// with ABORTED ("could not serialize access due to concurrent update": first updater wins).
//
// A transaction's writes stay private in its write set until commit; the journal sees nothing
// of a transaction before its commit, so an abort needs no I/O. Savepoints are positions in an
// undo log of write-set changes; rolling back to one restores the write set and gives back the
// key locks taken since.
//
// Any ABORTED failure (deadlock victim, lock timeout, serialization failure, idle timeout)
// aborts the whole transaction, as an error does in PostgreSQL; other errors (a bad argument, a
// corrupt block) fail only the statement.
import {
  AstraError,
  Code,
  Errno,
  failedPrecondition,
  invalidArgument,
  notFound,
} from "../../../lib/errors.ts";
import { type BPlusTree, checkKey, checkValue, type Direction, TreeCursor } from "./btree.ts";
import { describeKey, type Key, lowerBound } from "./keys.ts";
import { type LockGraph, LockManager, LockMode, type LockOwner, type LockStatistics } from "./locks.ts";
import { Mutex } from "./mutex.ts";
import { type VersionStatistics, VersionStore } from "./mvcc.ts";
import { type SsiParticipant, type SsiStatistics, SsiTracker } from "./ssi.ts";

export enum IsolationLevel {
  ReadUncommitted = 1,
  ReadCommitted = 2,
  RepeatableRead = 3,
  Serializable = 4,
}

export type TransactionState = "active" | "committing" | "committed" | "aborted";

/** Pending writes of a transaction: a value, or null for a deletion. */
export type WriteSet = Map<Key, Uint8Array | null>;

/** What the volume provides: durable, ordered commits. */
export interface CommitLog {
  /**
   * Makes `writes` durable and visible. `commitPoint` runs synchronously once the commit's place
   * in the order is fixed, with its version; it may throw to refuse the commit, in which case
   * nothing is logged. Resolves with the commit version after the writes are on stable storage
   * and applied to the tree (in commit order).
   */
  commit(txid: number, writes: WriteSet, commitPoint: (version: number) => void): Promise<number>;
  /** The last commit version handed out (committed or being committed). */
  readonly lastAssignedVersion: number;
}

export interface BeginOptions {
  isolation?: IsolationLevel;
  /** Abort the transaction after this long without a request (0: never). */
  idleTimeoutMs?: number;
  /** Give up a lock wait after this long (0: wait forever). */
  lockTimeoutMs?: number;
}

export interface TransactionInfo {
  id: number;
  /** As requested. */
  isolation: IsolationLevel;
  /** What it runs as (READ UNCOMMITTED runs as READ COMMITTED). */
  effectiveIsolation: IsolationLevel;
}

export interface ScanOptions {
  /** Inclusive lower bound; undefined: from the first key. */
  start?: Key;
  /** Exclusive upper bound; undefined: to the last key. */
  end?: Key;
  /** At most this many entries. */
  limit: number;
  direction: Direction;
  /** Resume strictly after (forward) or before (backward) this key: a previous page's continuation. */
  after?: Key;
}

export interface ScanPage {
  entries: [Key, Uint8Array][];
  /** Set when the page is full: pass it as `after` for the next page (which may be empty). */
  continuation: Key | undefined;
}

export interface VersionRead {
  found: boolean;
  value: Uint8Array | undefined;
  /** Commit version that wrote the value read; 0 when it predates the retained history. */
  version: number;
  /** The version the read was made at. */
  readAt: number;
}

export interface CommitResult {
  /** Commit version; for a read-only transaction, the version its reads saw last. */
  version: number;
  readOnly: boolean;
}

export interface TransactionStatistics {
  active: number;
  committing: number;
  committed: number;
  readOnlyCommits: number;
  aborted: number;
  deadlockVictims: number;
  lockTimeouts: number;
  serializationFailures: number;
  writeConflicts: number;
  idleTimeouts: number;
  versions: VersionStatistics;
  locks: LockStatistics;
  serializable: SsiStatistics;
}

interface UndoEntry {
  key: Key;
  /** The write-set entry before (undefined: the key was not in the write set). */
  previous: Uint8Array | null | undefined;
  /** Whether this write took the key's lock, so that a rollback gives it back. */
  tookLock: boolean;
}

const ENDED_MEMORY = 4096;

class Transaction implements LockOwner {
  state: TransactionState = "active";
  snapshot: number | undefined = undefined;
  readonly writes: WriteSet = new Map();
  #sortedWrites: Key[] | undefined = [];
  readonly undo: UndoEntry[] = [];
  readonly savepoints: { id: number; undoLength: number }[] = [];
  nextSavepointId = 1;
  ssi: SsiParticipant | undefined = undefined;
  abortReason: AstraError | undefined = undefined;
  idleTimer: ReturnType<typeof setTimeout> | undefined = undefined;
  readonly busy = new Mutex();

  constructor(
    readonly id: number,
    readonly age: number,
    readonly isolation: IsolationLevel,
    readonly effective: IsolationLevel,
    readonly idleTimeoutMs: number,
    readonly lockTimeoutMs: number,
  ) {}

  work(): number {
    return this.writes.size;
  }

  get snapshotIsolated(): boolean {
    return this.effective >= IsolationLevel.RepeatableRead;
  }

  setWrite(key: Key, value: Uint8Array | null): void {
    if (!this.writes.has(key)) this.#sortedWrites = undefined;
    this.writes.set(key, value);
  }

  removeWrite(key: Key): void {
    if (this.writes.delete(key)) this.#sortedWrites = undefined;
  }

  /** Written keys in [start, end), ascending. */
  writtenKeysIn(start: Key | undefined, end: Key | undefined): Key[] {
    if (this.writes.size === 0) return [];
    this.#sortedWrites ??= [...this.writes.keys()].sort();
    const keys = this.#sortedWrites;
    const from = start === undefined ? 0 : lowerBound(keys, start);
    const to = end === undefined ? keys.length : lowerBound(keys, end);
    return keys.slice(from, to);
  }
}

function isAborting(err: unknown): err is AstraError {
  return err instanceof AstraError && err.code === Code.ABORTED;
}

/** The smallest key greater than `key`. */
function successor(key: Key): Key {
  return key + "\0";
}

export class TransactionManager {
  readonly versions: VersionStore;
  readonly locks = new LockManager();
  readonly #ssi: SsiTracker;
  readonly #active = new Map<number, Transaction>();
  readonly #ended = new Map<number, { state: TransactionState; reason: AstraError | undefined }>();
  #nextId: number;
  #age = 0;
  #closed: AstraError | undefined = undefined;
  readonly #stats = {
    committed: 0,
    readOnlyCommits: 0,
    aborted: 0,
    serializationFailures: 0,
    writeConflicts: 0,
    idleTimeouts: 0,
  };
  readonly #defaults: { lockTimeoutMs: number; idleTimeoutMs: number };

  constructor(
    private readonly tree: BPlusTree,
    private readonly log: CommitLog,
    options: {
      visibleVersion: number;
      nextTransactionId: number;
      lockTimeoutMs: number;
      idleTimeoutMs: number;
    },
  ) {
    this.versions = new VersionStore(options.visibleVersion);
    this.#ssi = new SsiTracker(() => this.versions.visibleVersion);
    this.#nextId = options.nextTransactionId;
    this.#defaults = { lockTimeoutMs: options.lockTimeoutMs, idleTimeoutMs: options.idleTimeoutMs };
  }

  get nextTransactionId(): number {
    return this.#nextId;
  }

  statistics(): TransactionStatistics {
    let committing = 0;
    for (const txn of this.#active.values()) if (txn.state === "committing") committing++;
    const locks = this.locks.statistics();
    return {
      active: this.#active.size - committing,
      committing,
      ...this.#stats,
      deadlockVictims: locks.deadlocks,
      lockTimeouts: locks.timeouts,
      versions: this.versions.statistics(),
      locks,
      serializable: this.#ssi.statistics(),
    };
  }

  /** transaction_begin */
  begin(options: BeginOptions = {}): TransactionInfo {
    if (this.#closed) throw this.#closed;
    const isolation = options.isolation ?? IsolationLevel.ReadCommitted;
    if (!(isolation in IsolationLevel)) {
      throw invalidArgument("isolation", `unknown isolation level ${isolation}`);
    }
    const effective = isolation === IsolationLevel.ReadUncommitted ? IsolationLevel.ReadCommitted : isolation;
    const idle = options.idleTimeoutMs ?? this.#defaults.idleTimeoutMs;
    const lockWait = options.lockTimeoutMs ?? this.#defaults.lockTimeoutMs;
    if (idle < 0 || lockWait < 0) throw invalidArgument("timeout", "timeouts must not be negative");
    const txn = new Transaction(this.#nextId++, ++this.#age, isolation, effective, idle, lockWait);
    this.#active.set(txn.id, txn);
    this.#armIdleTimer(txn);
    return { id: txn.id, isolation, effectiveIsolation: effective };
  }

  /** transaction_read: the value of `key` as the transaction sees it. */
  get(txid: number, key: Key): Promise<Uint8Array | undefined> {
    return this.#operate(txid, async (txn) => {
      checkKey(key);
      const own = txn.writes.get(key);
      if (own !== undefined) return own ?? undefined;
      return await this.tree.exclusive(async () => {
        const snapshot = this.#statementSnapshot(txn);
        const value = await this.#readAt(key, snapshot);
        if (txn.ssi) this.#ssiPointRead(txn, txn.ssi, key, snapshot);
        return value;
      });
    });
  }

  /** transaction_write */
  put(txid: number, key: Key, value: Uint8Array): Promise<void> {
    return this.#operate(txid, async (txn) => {
      checkKey(key);
      checkValue(value);
      await this.#write(txn, key, value);
    });
  }

  /** Deletes `key`; true if the transaction saw it before. */
  delete(txid: number, key: Key): Promise<boolean> {
    return this.#operate(txid, async (txn) => {
      checkKey(key);
      const tookLock = await this.#lockForWrite(txn, key);
      const own = txn.writes.get(key);
      let existed: boolean;
      if (own !== undefined) existed = own !== null;
      else {
        existed = await this.tree.exclusive(async () => {
          const snapshot = this.#statementSnapshot(txn);
          const value = await this.#readAt(key, snapshot);
          if (txn.ssi) this.#ssiPointRead(txn, txn.ssi, key, snapshot);
          return value !== undefined;
        });
      }
      this.#recordWrite(txn, key, null, tookLock);
      return existed;
    });
  }

  /** btree_range_query under the transaction's isolation: one page of [start, end). */
  scan(txid: number, options: ScanOptions): Promise<ScanPage> {
    return this.#operate(txid, (txn) => this.tree.exclusive(() => this.#scan(txn, options)));
  }

  /** transaction_set_savepoint */
  savepoint(txid: number): Promise<number> {
    return this.#operate(txid, (txn) => {
      const id = txn.nextSavepointId++;
      txn.savepoints.push({ id, undoLength: txn.undo.length });
      return Promise.resolve(id);
    });
  }

  /**
   * transaction_rollback_to_savepoint: undoes the writes since savepoint `id` (which stays
   * defined; later savepoints are dropped) and gives back the key locks they took.
   */
  rollbackToSavepoint(txid: number, id: number): Promise<void> {
    return this.#operate(txid, (txn) => {
      const index = txn.savepoints.findIndex((s) => s.id === id);
      if (index < 0) throw notFound("savepoint", `transaction ${txid} has no savepoint ${id}`);
      const { undoLength } = txn.savepoints[index];
      while (txn.undo.length > undoLength) {
        const entry = txn.undo.pop()!;
        if (entry.previous === undefined) txn.removeWrite(entry.key);
        else txn.setWrite(entry.key, entry.previous);
        if (entry.tookLock) this.locks.release(txn, entry.key);
      }
      txn.savepoints.length = index + 1;
      return Promise.resolve();
    });
  }

  /** transaction_commit */
  commit(txid: number): Promise<CommitResult> {
    return this.#operate(txid, async (txn) => {
      if (txn.writes.size === 0) {
        const version = txn.snapshot ?? this.versions.visibleVersion;
        if (txn.ssi) this.#ssi.commit(txn.ssi, this.log.lastAssignedVersion + 0.5);
        this.#finish(txn, "committed", undefined);
        this.#stats.readOnlyCommits++;
        return { version, readOnly: true };
      }
      txn.state = "committing";
      let version: number;
      try {
        version = await this.log.commit(txn.id, txn.writes, (assigned) => {
          if (txn.ssi) this.#ssi.commit(txn.ssi, assigned);
        });
      } catch (err) {
        txn.state = "active";
        throw err;
      }
      this.#finish(txn, "committed", undefined);
      return { version, readOnly: false };
    });
  }

  /**
   * transaction_abort. Aborting an aborted transaction succeeds; a transaction waiting for a
   * lock stops waiting.
   */
  abort(txid: number): void {
    const txn = this.#active.get(txid);
    if (!txn) {
      const ended = this.#ended.get(txid);
      if (ended?.state === "aborted") return;
      if (ended?.state === "committed") throw failedPrecondition(`transaction ${txid} has already committed`);
      throw notFound("transaction", `no transaction ${txid}`);
    }
    if (txn.state === "committing") {
      throw failedPrecondition(`transaction ${txid} is committing`, Errno.EBUSY);
    }
    this.#abort(
      txn,
      new AstraError(Code.ABORTED, Errno.ECANCELED, `transaction ${txid} was aborted by request`),
    );
  }

  /**
   * transaction_get_version: the committed value of `key` at `version` (0: the transaction's own
   * snapshot). Versions between the oldest active snapshot and the transaction's snapshot are
   * retained; older ones may have been garbage-collected.
   */
  getVersion(txid: number, key: Key, version: number): Promise<VersionRead> {
    return this.#operate(txid, (txn) => {
      checkKey(key);
      return this.tree.exclusive(async () => {
        const snapshot = this.#statementSnapshot(txn);
        const readAt = version === 0 ? snapshot : version;
        if (readAt > snapshot) {
          throw invalidArgument(
            "version",
            `version ${readAt} is newer than the transaction's snapshot ${snapshot}`,
          );
        }
        if (readAt < snapshot && readAt < this.versions.oldestSnapshot) {
          const oldest = Math.min(this.versions.oldestSnapshot, snapshot);
          const message = `version ${readAt} of ${
            describeKey(key)
          } is no longer retained; the oldest is ${oldest}`;
          throw failedPrecondition(message, Errno.ESTALE, "version");
        }
        const chain = this.versions.chain(key);
        if (chain) {
          const entry = VersionStore.visibleIn(chain, readAt);
          return {
            found: entry.value !== null,
            value: entry.value ?? undefined,
            version: entry.version,
            readAt,
          };
        }
        const value = await this.tree.get(key);
        return { found: value !== undefined, value, version: 0, readAt };
      });
    });
  }

  /** Locks `key` explicitly (SELECT … FOR SHARE / FOR UPDATE) until the transaction ends. */
  lock(txid: number, key: Key, mode: LockMode): Promise<void> {
    return this.#operate(txid, async (txn) => {
      checkKey(key);
      if (mode !== LockMode.Shared && mode !== LockMode.Exclusive) {
        throw invalidArgument("mode", `unknown lock mode ${mode}`);
      }
      await this.#acquire(txn, key, mode);
    });
  }

  /** The wait-for graph (transaction_detect_deadlock's view). */
  lockGraph(): LockGraph {
    return this.locks.graph();
  }

  /** Autocommit read: the newest committed value. */
  readLatest(key: Key): Promise<Uint8Array | undefined> {
    checkKey(key);
    return this.tree.exclusive(() => this.tree.get(key));
  }

  /** Autocommit scan over the newest committed data. */
  scanLatest(options: ScanOptions): Promise<ScanPage> {
    return this.tree.exclusive(() => this.#scan(undefined, options));
  }

  /** Applies a durable commit to the tree and publishes it; the volume calls this in commit order. */
  async applyCommit(txid: number, writes: WriteSet, version: number): Promise<void> {
    const keepHistory = this.versions.needsHistory(version);
    const changed: Key[] = [];
    for (const [key, value] of writes) {
      const previous = value === null
        ? await this.tree.delete(key, keepHistory)
        : await this.tree.put(key, value, keepHistory);
      if (keepHistory) {
        this.versions.recordChange(key, version, value, previous.found ? previous.value! : null, txid);
        changed.push(key);
      }
    }
    this.versions.publish(version, changed);
    this.#ssi.cleanup();
  }

  /** Aborts every transaction that is not committing and refuses new ones; returns how many it aborted. */
  close(reason: AstraError): number {
    this.#closed = reason;
    let aborted = 0;
    for (const txn of [...this.#active.values()]) {
      if (txn.state !== "active") continue;
      this.#abort(txn, reason);
      aborted++;
    }
    return aborted;
  }

  async #operate<T>(txid: number, fn: (txn: Transaction) => Promise<T>): Promise<T> {
    const txn = this.#lookup(txid);
    await txn.busy.lock();
    try {
      this.#checkUsable(txn);
      if (txn.idleTimer !== undefined) clearTimeout(txn.idleTimer);
      txn.idleTimer = undefined;
      return await fn(txn);
    } catch (err) {
      if (isAborting(err) && txn.state === "active") this.#abort(txn, err);
      throw err;
    } finally {
      txn.busy.unlock();
      if (txn.state === "active") this.#armIdleTimer(txn);
    }
  }

  #lookup(txid: number): Transaction {
    const txn = this.#active.get(txid);
    if (txn) return txn;
    const ended = this.#ended.get(txid);
    if (ended?.state === "aborted") throw this.#abortedError(txid, ended.reason);
    if (ended?.state === "committed") throw failedPrecondition(`transaction ${txid} has already committed`);
    throw notFound("transaction", `no transaction ${txid}`);
  }

  #checkUsable(txn: Transaction): void {
    if (txn.state === "aborted") throw this.#abortedError(txn.id, txn.abortReason);
    if (txn.state !== "active") throw failedPrecondition(`transaction ${txn.id} is ${txn.state}`);
    if (txn.ssi) this.#countFailure(() => this.#ssi.checkDoomed(txn.ssi!));
  }

  #abortedError(txid: number, reason: AstraError | undefined): AstraError {
    return new AstraError(
      Code.ABORTED,
      reason?.errno ?? Errno.ECANCELED,
      `transaction ${txid} was aborted${reason ? `: ${reason.message}` : ""}`,
    );
  }

  #countFailure<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (isAborting(err) && err.errno === Errno.EAGAIN) this.#stats.serializationFailures++;
      throw err;
    }
  }

  #armIdleTimer(txn: Transaction): void {
    if (txn.idleTimeoutMs <= 0) return;
    txn.idleTimer = setTimeout(() => {
      txn.idleTimer = undefined;
      if (txn.state !== "active" || txn.busy.locked) return;
      this.#stats.idleTimeouts++;
      this.#abort(
        txn,
        new AstraError(
          Code.ABORTED,
          Errno.ETIMEDOUT,
          `transaction ${txn.id} was idle for ${txn.idleTimeoutMs} ms`,
        ),
      );
    }, txn.idleTimeoutMs);
  }

  #abort(txn: Transaction, reason: AstraError): void {
    this.#finish(txn, "aborted", reason);
  }

  #finish(txn: Transaction, state: "committed" | "aborted", reason: AstraError | undefined): void {
    txn.state = state;
    txn.abortReason = reason;
    if (txn.idleTimer !== undefined) clearTimeout(txn.idleTimer);
    txn.idleTimer = undefined;
    this.locks.releaseAll(
      txn,
      reason ?? new AstraError(Code.ABORTED, Errno.ECANCELED, `transaction ${txn.id} ended`),
    );
    if (txn.snapshot !== undefined) this.versions.releaseSnapshot(txn.snapshot);
    if (txn.ssi && state === "aborted") this.#ssi.abort(txn.ssi);
    txn.writes.clear();
    this.#active.delete(txn.id);
    this.#ended.set(txn.id, { state, reason });
    if (this.#ended.size > ENDED_MEMORY) this.#ended.delete(this.#ended.keys().next().value!);
    if (state === "committed") this.#stats.committed++;
    else this.#stats.aborted++;
  }

  /** The snapshot a statement reads at. Call with the tree held. */
  #statementSnapshot(txn: Transaction): number {
    if (!txn.snapshotIsolated) return this.versions.visibleVersion;
    this.#ensureSnapshot(txn);
    return txn.snapshot!;
  }

  /** Takes the transaction's snapshot at its first statement. Call with the tree held. */
  #ensureSnapshot(txn: Transaction): void {
    if (txn.snapshot !== undefined) return;
    txn.snapshot = this.versions.acquireSnapshot();
    if (txn.effective === IsolationLevel.Serializable) txn.ssi = this.#ssi.register(txn.id, txn.snapshot);
  }

  async #readAt(key: Key, snapshot: number): Promise<Uint8Array | undefined> {
    if (snapshot < this.versions.visibleVersion) {
      const chain = this.versions.chain(key);
      if (chain) return VersionStore.visibleIn(chain, snapshot).value ?? undefined;
    }
    return await this.tree.get(key);
  }

  async #write(txn: Transaction, key: Key, value: Uint8Array): Promise<void> {
    const tookLock = await this.#lockForWrite(txn, key);
    this.#recordWrite(txn, key, value, tookLock);
  }

  /** Takes the key's exclusive lock and, under snapshot isolation, checks first-updater-wins. */
  async #lockForWrite(txn: Transaction, key: Key): Promise<boolean> {
    const tookLock = await this.#acquire(txn, key, LockMode.Exclusive);
    if (txn.ssi) this.#countFailure(() => this.#ssi.onWrite(txn.ssi!, key));
    return tookLock;
  }

  /** Acquires a key lock; true if the transaction held no lock on the key before. */
  async #acquire(txn: Transaction, key: Key, mode: LockMode): Promise<boolean> {
    const held = this.locks.heldMode(txn, key);
    if (held !== undefined && held >= mode) return false;
    if (txn.snapshotIsolated && txn.snapshot === undefined) {
      await this.tree.exclusive(() => Promise.resolve(this.#ensureSnapshot(txn)));
    }
    const granted = this.locks.acquire(txn, key, mode, txn.lockTimeoutMs);
    if (granted !== true) await granted;
    if (txn.state !== "active") throw this.#abortedError(txn.id, txn.abortReason);
    if (txn.snapshotIsolated && this.versions.newestVersion(key) > txn.snapshot!) {
      this.#stats.writeConflicts++;
      this.#stats.serializationFailures++;
      const shown = describeKey(key);
      const message = `could not serialize access due to concurrent update: ${shown} was changed by a ` +
        `transaction that committed after transaction ${txn.id}'s snapshot; retry it`;
      throw new AstraError(Code.ABORTED, Errno.EAGAIN, message, { argument: "key", facts: { key: shown } });
    }
    return held === undefined;
  }

  #recordWrite(txn: Transaction, key: Key, value: Uint8Array | null, tookLock: boolean): void {
    txn.undo.push({ key, previous: txn.writes.has(key) ? txn.writes.get(key) : undefined, tookLock });
    txn.setWrite(key, value);
  }

  /** SIREAD lock and rw-conflicts for a point read at `snapshot`. */
  #ssiPointRead(txn: Transaction, p: SsiParticipant, key: Key, snapshot: number): void {
    this.#ssi.recordRead(p, key);
    this.#countFailure(() => {
      const chain = this.versions.chain(key);
      if (chain) {
        for (const entry of chain) {
          if (entry.version <= snapshot) break;
          const writer = this.#ssi.participant(entry.writer);
          if (writer) this.#ssi.onConflict(p, writer, p);
        }
      }
      const holder = this.locks.exclusiveHolder(key) as Transaction | undefined;
      if (holder && holder !== txn && holder.ssi) this.#ssi.onConflict(p, holder.ssi, p);
    });
  }

  /** SIREAD range and rw-conflicts for a scan of [start, end) at `snapshot`. */
  #ssiRangeRead(
    txn: Transaction,
    p: SsiParticipant,
    start: Key | undefined,
    end: Key | undefined,
    snapshot: number,
  ): void {
    this.#ssi.recordRange(p, start, end);
    this.#countFailure(() => {
      for (const key of this.versions.keysInRange(start, end)) {
        for (const entry of this.versions.chain(key)!) {
          if (entry.version <= snapshot) break;
          const writer = this.#ssi.participant(entry.writer);
          if (writer) this.#ssi.onConflict(p, writer, p);
        }
      }
      // Writers whose versions are not visible yet: running, or past their commit point but not
      // yet applied. Both are still in the active map.
      for (const writer of this.#active.values()) {
        if (writer !== txn && writer.ssi && writer.writtenKeysIn(start, end).length > 0) {
          this.#ssi.onConflict(p, writer.ssi, p);
        }
      }
    });
  }

  async #scan(txn: Transaction | undefined, options: ScanOptions): Promise<ScanPage> {
    const { start, end, direction } = options;
    const limit = options.limit;
    if (!Number.isInteger(limit) || limit < 1) {
      throw invalidArgument("limit", `scan limit must be at least 1, not ${limit}`);
    }
    if (start !== undefined && end !== undefined && start > end) {
      throw invalidArgument("end", "the end of a scan range must not lie before its start");
    }
    const forward = direction === "forward";
    const after = options.after;
    const snapshot = txn ? this.#statementSnapshot(txn) : this.versions.visibleVersion;
    // Bounds of what this page may return, [low, high).
    let low = start;
    let high = end;
    if (after !== undefined) {
      if (forward) low = low === undefined || successor(after) > low ? successor(after) : low;
      else high = high === undefined || after < high ? after : high;
    }
    // Keys whose visible value may differ from the tree's: own writes and keys with history.
    const extra = new Set<Key>(txn ? txn.writtenKeysIn(low, high) : []);
    if (snapshot < this.versions.visibleVersion) {
      for (const key of this.versions.keysInRange(low, high)) extra.add(key);
    }
    const others = [...extra].sort();
    if (!forward) others.reverse();
    let next = 0;

    const cursor = new TreeCursor(this.tree);
    if (forward) {
      if (low === undefined) await cursor.first();
      else await cursor.seek(low, "ge");
    } else {
      if (high === undefined) await cursor.last();
      else await cursor.seek(high, "lt");
    }
    const inRange = (key: Key) => (low === undefined || key >= low) && (high === undefined || key < high);
    const entries: [Key, Uint8Array][] = [];
    let lastSeen: Key | undefined;
    let exhausted = false;
    while (entries.length < limit) {
      const treeKey = cursor.valid && inRange(cursor.key) ? cursor.key : undefined;
      const otherKey = next < others.length ? others[next] : undefined;
      if (treeKey === undefined && otherKey === undefined) {
        exhausted = true;
        break;
      }
      let key: Key;
      if (treeKey === undefined) key = otherKey!;
      else if (otherKey === undefined) key = treeKey;
      else key = (forward ? treeKey <= otherKey : treeKey >= otherKey) ? treeKey : otherKey;
      const fromTree = treeKey === key;
      if (otherKey === key) next++;
      let value: Uint8Array | null | undefined = txn?.writes.get(key);
      if (value === undefined && snapshot < this.versions.visibleVersion) {
        const chain = this.versions.chain(key);
        if (chain) value = VersionStore.visibleIn(chain, snapshot).value;
      }
      if (value === undefined) {
        const stored = fromTree ? cursor.stored : null;
        value = stored === null || stored instanceof Uint8Array ? stored : await cursor.value();
      }
      if (fromTree) {
        const moving = forward ? cursor.next() : cursor.prev();
        if (moving) await moving;
      }
      lastSeen = key;
      if (value !== null) entries.push([key, value]);
    }
    if (txn?.ssi) {
      // The part of the range this page actually covered is what the transaction has read.
      const readLow = exhausted || forward ? low : lastSeen;
      const readHigh = exhausted || !forward ? high : successor(lastSeen!);
      this.#ssiRangeRead(txn, txn.ssi, readLow, readHigh, snapshot);
    }
    return { entries, continuation: exhausted ? undefined : lastSeen };
  }
}

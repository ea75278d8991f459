// Serializable snapshot isolation (Cahill, Röhm and Fekete; as PostgreSQL implements it, Ports
// and Grittner, VLDB 2012). SERIALIZABLE transactions run on snapshot isolation and additionally
// record what they read (SIREAD "locks": keys and scanned key ranges, kept past commit while a
// concurrent transaction is still running) and every rw-antidependency T1 →rw T2 (T1 read a
// version older than one T2 wrote). Every non-serializable execution under SI contains a
// "dangerous structure" T_in →rw T_pivot →rw T_out in which T_out commits first; one transaction
// of such a structure is aborted with a serialization failure. Which one, and when, follows
// PostgreSQL's predicate.c so that outcomes match PostgreSQL:
// - when an edge reader →rw writer is added and the writer already has an out-edge to a
//   transaction that committed before both, or the reader has an in-edge and the writer has
//   committed first, the structure is complete: the current transaction fails if it is the
//   writer or the writer has committed; otherwise the writer is doomed;
// - when T_out commits, every uncommitted pivot P →rw T_out that has an in-edge from T_out itself
//   or from an uncommitted transaction is doomed;
// - a doomed transaction fails at its next operation or its commit.
// Only serializable transactions take part (as in PostgreSQL); the read-only optimisations of
// PostgreSQL are not implemented, so read-only transactions can be aborted more often than there.
//
// Order is measured in commit versions, the same numbers snapshots are made of: a transaction
// starts at its snapshot version and commits at its commit version (a read-only one just after
// the last version assigned), so "committed before T started" means exactly "visible to T".
import { AstraError, Code, Errno } from "../../../lib/errors.ts";
import type { Key } from "./keys.ts";

export class SsiParticipant {
  /** Commit position; 0 while not committed. */
  commitSeq = 0;
  doomed = false;
  aborted = false;
  readonly inConflicts = new Set<SsiParticipant>();
  readonly outConflicts = new Set<SsiParticipant>();
  readonly reads = new Set<Key>();
  /** Scanned ranges [start, end); undefined bounds are open. */
  readonly ranges: { start: Key | undefined; end: Key | undefined }[] = [];

  /** `startSeq`: the snapshot version. */
  constructor(readonly txid: number, readonly startSeq: number) {}

  get committed(): boolean {
    return this.commitSeq !== 0;
  }
}

export interface SsiStatistics {
  participants: number;
  retainedCommitted: number;
  conflicts: number;
  serializationFailures: number;
  doomed: number;
}

function serializationFailure(txid: number, detail: string): AstraError {
  return new AstraError(
    Code.ABORTED,
    Errno.EAGAIN,
    `could not serialize access due to read/write dependencies among transactions: transaction ${txid} ${detail}; retry it`,
    { facts: { transaction: String(txid) } },
  );
}

export class SsiTracker {
  readonly #participants = new Map<number, SsiParticipant>();
  readonly #readers = new Map<Key, Set<SsiParticipant>>();
  readonly #stats = { conflicts: 0, serializationFailures: 0, doomed: 0 };

  /** `visibleVersion`: the snapshot a transaction starting now would get. */
  constructor(private readonly visibleVersion: () => number) {}

  statistics(): SsiStatistics {
    let retained = 0;
    for (const p of this.#participants.values()) if (p.committed) retained++;
    return { participants: this.#participants.size, retainedCommitted: retained, ...this.#stats };
  }

  participant(txid: number): SsiParticipant | undefined {
    return this.#participants.get(txid);
  }

  /** A serializable transaction took its snapshot at version `snapshot`. */
  register(txid: number, snapshot: number): SsiParticipant {
    const p = new SsiParticipant(txid, snapshot);
    this.#participants.set(txid, p);
    return p;
  }

  recordRead(p: SsiParticipant, key: Key): void {
    if (p.reads.has(key)) return;
    p.reads.add(key);
    let readers = this.#readers.get(key);
    if (!readers) {
      readers = new Set();
      this.#readers.set(key, readers);
    }
    readers.add(p);
  }

  recordRange(p: SsiParticipant, start: Key | undefined, end: Key | undefined): void {
    p.ranges.push({ start, end });
  }

  /** `writer` (the current transaction) writes `key`: every concurrent reader of it gets an edge to it. */
  onWrite(writer: SsiParticipant, key: Key): void {
    const readers = new Set<SsiParticipant>();
    for (const r of this.#readers.get(key) ?? []) readers.add(r);
    for (const p of this.#participants.values()) {
      if (readers.has(p)) continue;
      for (const range of p.ranges) {
        if (
          (range.start === undefined || key >= range.start) && (range.end === undefined || key < range.end)
        ) {
          readers.add(p);
          break;
        }
      }
    }
    for (const reader of readers) {
      if (reader === writer || reader.aborted) continue;
      // Only a reader that overlapped the writer can have missed its write.
      if (reader.committed && reader.commitSeq <= writer.startSeq) continue;
      this.onConflict(reader, writer, writer);
    }
  }

  /** An rw-antidependency reader →rw writer was found while `current` ran. */
  onConflict(reader: SsiParticipant, writer: SsiParticipant, current: SsiParticipant): void {
    if (reader === writer || reader.aborted || writer.aborted || reader.outConflicts.has(writer)) return;
    reader.outConflicts.add(writer);
    writer.inConflicts.add(reader);
    this.#stats.conflicts++;
    let failure: string | undefined;
    // "<=" as PostgreSQL compares the other's prepare position with a commit position: a
    // transaction prepares before it commits, so `out` may be the reader itself (a cycle of two).
    for (const out of writer.outConflicts) {
      if (
        out.committed && (!writer.committed || out.commitSeq <= writer.commitSeq) &&
        (!reader.committed || out.commitSeq <= reader.commitSeq)
      ) {
        failure = `is the pivot between ${reader.txid} and ${out.txid}, which committed first`;
        break;
      }
    }
    if (!failure && writer.committed) {
      for (const before of reader.inConflicts) {
        if (!before.doomed && (!before.committed || before.commitSeq >= writer.commitSeq)) {
          failure = `is the pivot between ${before.txid} and ${writer.txid}, which committed first`;
          break;
        }
      }
    }
    if (!failure) return;
    if (current === writer || writer.committed) {
      this.#stats.serializationFailures++;
      throw serializationFailure(current.txid, `read or wrote data another transaction changed (${failure})`);
    }
    writer.doomed = true;
    this.#stats.doomed++;
  }

  /** Refuses a doomed transaction. */
  checkDoomed(p: SsiParticipant): void {
    if (p.doomed) {
      this.#stats.serializationFailures++;
      throw serializationFailure(p.txid, "was chosen to abort as the pivot of a dangerous structure");
    }
  }

  /**
   * The commit point of `p` at position `seq` (its commit version, or for a read-only
   * transaction the last version assigned plus one half): refuses it if doomed, then dooms the
   * pivots it closes a structure for.
   */
  commit(p: SsiParticipant, seq: number): void {
    this.checkDoomed(p);
    for (const pivot of p.inConflicts) {
      if (pivot.committed || pivot.doomed) continue;
      for (const before of pivot.inConflicts) {
        if (before === p || (!before.committed && !before.doomed)) {
          pivot.doomed = true;
          this.#stats.doomed++;
          break;
        }
      }
    }
    p.commitSeq = seq;
    this.cleanup();
  }

  abort(p: SsiParticipant): void {
    p.aborted = true;
    for (const other of p.inConflicts) other.outConflicts.delete(p);
    for (const other of p.outConflicts) other.inConflicts.delete(p);
    this.#forget(p);
    this.cleanup();
  }

  /**
   * Forgets committed participants no running or future transaction overlaps: every snapshot
   * taken from now on, and every running one, already sees them.
   */
  cleanup(): void {
    if (this.#participants.size === 0) return;
    let oldestActiveStart = this.visibleVersion();
    for (const p of this.#participants.values()) {
      if (!p.committed && p.startSeq < oldestActiveStart) oldestActiveStart = p.startSeq;
    }
    for (const p of [...this.#participants.values()]) {
      if (p.committed && p.commitSeq <= oldestActiveStart) this.#forget(p);
    }
  }

  #forget(p: SsiParticipant): void {
    this.#participants.delete(p.txid);
    for (const key of p.reads) {
      const readers = this.#readers.get(key);
      if (readers) {
        readers.delete(p);
        if (readers.size === 0) this.#readers.delete(key);
      }
    }
  }
}

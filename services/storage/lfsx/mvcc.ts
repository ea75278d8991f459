// Multi-version concurrency control. The B+ tree holds the newest committed value of every key;
// older committed versions that some snapshot may still read live here, in memory, as a chain
// per key (newest first), together with the version that wrote each one.
//
// A commit with version v changes the tree; if some active snapshot is older than v, the key's
// chain gains v's value and, when the chain is new, the value the tree held before (the "base",
// version 0: committed before every snapshot still active). A reader at snapshot s takes the
// newest chain entry with version <= s, or the tree's value when the key has no chain — no chain
// means no commit happened since the oldest active snapshot, so the tree's value is visible to
// all of them. Once no snapshot needs an entry any more it is garbage-collected; a chain whose
// newest entry every snapshot sees disappears.
//
// Snapshots must be taken while the tree is held (exclusive()), so that a commit being applied
// cannot straddle one.
import { type Key, lowerBound } from "./keys.ts";

export interface Version {
  /** Commit version that wrote it; 0 for a base older than the retained history. */
  version: number;
  /** The value, or null when the version is a deletion (or the key did not exist). */
  value: Uint8Array | null;
  /** Transaction that wrote it (0 for a base). */
  writer: number;
}

export interface VersionStatistics {
  visibleVersion: number;
  activeSnapshots: number;
  oldestSnapshot: number | undefined;
  chains: number;
  versions: number;
  versionsCreated: number;
  versionsCollected: number;
}

export class VersionStore {
  readonly #chains = new Map<Key, Version[]>();
  /** Keys with chains, sorted, for range scans. */
  #sortedKeys: Key[] = [];
  /** Snapshot version → how many readers hold it. */
  readonly #snapshots = new Map<number, number>();
  #oldest = Infinity;
  /** Commits whose chain entries wait for every older snapshot to end. */
  #pendingCollection: { version: number; keys: Key[] }[] = [];
  #pendingHead = 0;
  #visible: number;
  #versions = 0;
  #created = 0;
  #collected = 0;

  constructor(visibleVersion: number) {
    this.#visible = visibleVersion;
  }

  /** The newest commit version whose changes are all in the tree. */
  get visibleVersion(): number {
    return this.#visible;
  }

  statistics(): VersionStatistics {
    return {
      visibleVersion: this.#visible,
      activeSnapshots: [...this.#snapshots.values()].reduce((a, b) => a + b, 0),
      oldestSnapshot: this.#oldest === Infinity ? undefined : this.#oldest,
      chains: this.#chains.size,
      versions: this.#versions,
      versionsCreated: this.#created,
      versionsCollected: this.#collected,
    };
  }

  /** A snapshot of everything committed so far. Call with the tree held. */
  acquireSnapshot(): number {
    const version = this.#visible;
    this.#snapshots.set(version, (this.#snapshots.get(version) ?? 0) + 1);
    if (version < this.#oldest) this.#oldest = version;
    return version;
  }

  releaseSnapshot(version: number): void {
    const holders = this.#snapshots.get(version);
    if (holders === undefined) return;
    if (holders > 1) {
      this.#snapshots.set(version, holders - 1);
      return;
    }
    this.#snapshots.delete(version);
    if (version === this.#oldest) {
      this.#oldest = Infinity;
      for (const v of this.#snapshots.keys()) if (v < this.#oldest) this.#oldest = v;
      this.collect();
    }
  }

  /** The oldest version any active snapshot reads (Infinity when there is none). */
  get oldestSnapshot(): number {
    return this.#oldest;
  }

  /** Whether commit `version` must keep the values it overwrites for older snapshots. */
  needsHistory(version: number): boolean {
    return this.#oldest < version;
  }

  /**
   * transaction_create_version: records, while commit `version` is applied, that `key` went
   * from `before` to `after` (null: absent).
   */
  recordChange(
    key: Key,
    version: number,
    after: Uint8Array | null,
    before: Uint8Array | null,
    writer: number,
  ): void {
    const chain = this.#chains.get(key);
    if (chain) {
      chain.unshift({ version, value: after, writer });
      this.#versions++;
    } else {
      this.#chains.set(key, [{ version, value: after, writer }, { version: 0, value: before, writer: 0 }]);
      this.#sortedKeys.splice(lowerBound(this.#sortedKeys, key), 0, key);
      this.#versions += 2;
    }
    this.#created++;
  }

  /** Commit `version` is fully applied: it becomes visible and its chain entries collectable. */
  publish(version: number, keysWithHistory: Key[]): void {
    this.#visible = version;
    if (keysWithHistory.length > 0) this.#pendingCollection.push({ version, keys: keysWithHistory });
    this.collect();
  }

  chain(key: Key): Version[] | undefined {
    return this.#chains.get(key);
  }

  /** The entry of `chain` a snapshot at `snapshot` reads. */
  static visibleIn(chain: Version[], snapshot: number): Version {
    for (const entry of chain) if (entry.version <= snapshot) return entry;
    return chain[chain.length - 1];
  }

  /** The newest committed version of `key` still remembered, 0 if none. */
  newestVersion(key: Key): number {
    return this.#chains.get(key)?.[0].version ?? 0;
  }

  /** Keys with chains in [start, end), ascending. */
  keysInRange(start: Key | undefined, end: Key | undefined): Key[] {
    const from = start === undefined ? 0 : lowerBound(this.#sortedKeys, start);
    const to = end === undefined ? this.#sortedKeys.length : lowerBound(this.#sortedKeys, end);
    return this.#sortedKeys.slice(from, to);
  }

  /** Drops every chain entry no active snapshot can read. */
  collect(): void {
    const horizon = this.#oldest;
    while (this.#pendingHead < this.#pendingCollection.length) {
      const pending = this.#pendingCollection[this.#pendingHead];
      if (pending.version > horizon) break;
      this.#pendingHead++;
      for (const key of pending.keys) {
        const chain = this.#chains.get(key);
        if (!chain) continue;
        if (chain[0].version <= horizon) {
          this.#chains.delete(key);
          this.#sortedKeys.splice(lowerBound(this.#sortedKeys, key), 1);
          this.#versions -= chain.length;
          this.#collected += chain.length;
          continue;
        }
        const keep = chain.findIndex((entry) => entry.version <= horizon) + 1;
        if (keep > 0 && keep < chain.length) {
          this.#versions -= chain.length - keep;
          this.#collected += chain.length - keep;
          chain.length = keep;
        }
      }
    }
    if (this.#pendingHead > 1024 && this.#pendingHead * 2 > this.#pendingCollection.length) {
      this.#pendingCollection = this.#pendingCollection.slice(this.#pendingHead);
      this.#pendingHead = 0;
    }
  }
}

// flock(2): advisory whole-file locks, shared or exclusive, held by open file descriptions (every
// descriptor that dup or fork made shares its description's lock) and released when the
// description closes. The locks are the VFS's: guest processes see each other's, host processes
// take no part.
import { Errno, vfsError } from "./errors.ts";
import type { OpenFile } from "./files.ts";
import { Wakeups } from "./wakeups.ts";

export type FlockKind = "shared" | "exclusive";

/** The locks on one file and the requests waiting for them to change. */
class FileLocks {
  readonly holders = new Map<OpenFile, FlockKind>();
  readonly #wakeups = new Wakeups();

  get idle(): boolean {
    return this.holders.size === 0 && this.#wakeups.waiting === 0;
  }

  conflicts(file: OpenFile, kind: FlockKind): boolean {
    for (const [holder, held] of this.holders) {
      if (holder !== file && (kind === "exclusive" || held === "exclusive")) return true;
    }
    return false;
  }

  remove(file: OpenFile): void {
    if (!this.holders.delete(file)) return;
    this.#wakeups.wakeAll();
  }

  /** Settles at the next release; rejects with the signal's reason when it aborts first. */
  released(signal: AbortSignal): Promise<void> {
    return this.#wakeups.next(signal);
  }
}

export class FlockTable {
  /** By file identity: device and inode. */
  readonly #files = new Map<string, FileLocks>();
  /** Descriptions whose release already drops their lock. */
  readonly #watched = new WeakSet<OpenFile>();

  #locks(key: string): FileLocks {
    let locks = this.#files.get(key);
    if (!locks) {
      locks = new FileLocks();
      this.#files.set(key, locks);
    }
    return locks;
  }

  #forget(key: string): void {
    if (this.#files.get(key)?.idle) this.#files.delete(key);
  }

  #drop(key: string, file: OpenFile): void {
    this.#files.get(key)?.remove(file);
    this.#forget(key);
  }

  /**
   * flock_lock_inode: `kind` undefined unlocks. A description holding the other kind gives it up
   * first (a conversion is not atomic, as in Linux); then a conflicting lock makes the request
   * wait, or fail with EWOULDBLOCK when `wait` is false.
   */
  async lock(
    file: OpenFile,
    key: string,
    kind: FlockKind | undefined,
    wait: boolean,
    signal: AbortSignal,
  ): Promise<void> {
    const held = this.#files.get(key)?.holders.get(file);
    if (held !== undefined && held === kind) return;
    if (held !== undefined) this.#drop(key, file);
    if (kind === undefined) return;
    while (true) {
      const locks = this.#locks(key);
      if (!locks.conflicts(file, kind)) {
        locks.holders.set(file, kind);
        break;
      }
      try {
        if (!wait) throw vfsError(Errno.EAGAIN, "the file is locked by another description", "operation");
        await locks.released(signal);
      } catch (err) {
        this.#forget(key);
        throw err;
      }
    }
    if (!this.#watched.has(file)) {
      this.#watched.add(file);
      file.whenClosed(() => this.#drop(key, file));
    }
  }
}

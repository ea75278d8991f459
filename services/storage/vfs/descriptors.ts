// A process's descriptor table: small integers naming open file descriptions, each with its own
// close-on-exec flag. New descriptors take the lowest free number; the table never grows past
// RLIMIT_NOFILE. Under CLONE_FILES processes share one table; fork copies it.
import { Errno, vfsError } from "./errors.ts";
import type { OpenFile } from "./files.ts";
import { DEFAULT_DESCRIPTOR_LIMIT } from "./linux.ts";

export interface Descriptor {
  readonly file: OpenFile;
  closeOnExec: boolean;
}

export class DescriptorTable {
  #slots = new Map<number, Descriptor>();
  /** Processes using this table (more than one under CLONE_FILES). */
  users = 1;

  constructor(readonly limit = DEFAULT_DESCRIPTOR_LIMIT) {}

  get size(): number {
    return this.#slots.size;
  }

  entries(): IterableIterator<[number, Descriptor]> {
    return this.#slots.entries();
  }

  /** The descriptor `fd`, or undefined when it is not open. */
  find(fd: number): Descriptor | undefined {
    return this.#slots.get(fd);
  }

  get(fd: number): Descriptor {
    const slot = this.#slots.get(fd);
    if (!slot) throw vfsError(Errno.EBADF, `descriptor ${fd} is not open`, "fd");
    return slot;
  }

  /** The lowest free descriptor at or above `min`; EMFILE when none is below the limit. */
  lowestFree(min = 0): number {
    for (let fd = min; fd < this.limit; fd++) if (!this.#slots.has(fd)) return fd;
    throw vfsError(Errno.EMFILE, `all ${this.limit} descriptors are in use`, "fd");
  }

  /**
   * Puts `file` at `fd`, taking a reference to it; what `fd` held before is closed afterwards, as
   * dup2 does. EBADF for a number past the limit.
   */
  installAt(fd: number, file: OpenFile, closeOnExec: boolean): void {
    if (fd < 0 || fd >= this.limit) throw vfsError(Errno.EBADF, `descriptor ${fd} is out of range`, "fd");
    const previous = this.#slots.get(fd);
    file.retain();
    this.#slots.set(fd, { file, closeOnExec });
    previous?.file.release();
  }

  /** Puts `file` at the lowest free descriptor at or above `min`. */
  install(file: OpenFile, closeOnExec: boolean, min = 0): number {
    const fd = this.lowestFree(min);
    this.installAt(fd, file, closeOnExec);
    return fd;
  }

  close(fd: number): void {
    const slot = this.get(fd);
    this.#slots.delete(fd);
    slot.file.release();
  }

  /** A table for a forked child: the same descriptors and flags, sharing the descriptions. */
  copy(): DescriptorTable {
    const table = new DescriptorTable(this.limit);
    for (const [fd, slot] of this.#slots) table.installAt(fd, slot.file, slot.closeOnExec);
    return table;
  }

  /** Closes the close-on-exec descriptors; returns how many. */
  closeOnExec(): number {
    let closed = 0;
    for (const [fd, slot] of [...this.#slots]) {
      if (!slot.closeOnExec) continue;
      this.close(fd);
      closed++;
    }
    return closed;
  }

  /** Closes every descriptor; returns how many. */
  closeAll(): number {
    const fds = [...this.#slots.keys()];
    for (const fd of fds) this.close(fd);
    return fds.length;
  }
}

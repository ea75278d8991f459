// Open file descriptions held by kernel peers rather than by descriptors: the executable sched's
// loader reads and maps (OpenExecutable) and the files that vmm's mappings keep open after
// close(fd) (HoldDescriptor), as Linux's bprm->file and vm_file keep theirs. A hold is a reference
// like a descriptor's: a description closes when its last descriptor and its last hold are gone.
// Ids name descriptions, not holds: holding one description twice gives the same id, counted twice.
import { AstraError, Code } from "../../../lib/errors.ts";
import { Errno } from "./errors.ts";
import type { OpenFile } from "./files.ts";

interface Held {
  readonly file: OpenFile;
  holds: number;
}

export class HeldFileTable {
  readonly #held = new Map<bigint, Held>();
  readonly #ids = new WeakMap<OpenFile, bigint>();
  /** Ids are incarnation << 32 | sequence: after a restart no old id names a new description. */
  readonly #incarnation = BigInt(crypto.getRandomValues(new Uint32Array(1))[0] & 0x7fffffff);
  #nextSequence = 1n;

  /** Takes one hold on `file`; returns the id of its description. */
  hold(file: OpenFile): bigint {
    let id = this.#ids.get(file);
    if (id === undefined) {
      id = (this.#incarnation << 32n) | this.#nextSequence++;
      this.#ids.set(file, id);
    }
    file.retain();
    const held = this.#held.get(id);
    if (held) held.holds++;
    else this.#held.set(id, { file, holds: 1 });
    return id;
  }

  /** The held description `id`; NOT_FOUND (EBADF) when nothing holds it. */
  file(id: bigint): OpenFile {
    return this.#entry(id).file;
  }

  /** Drops one hold; returns whether that closed the description. */
  release(id: bigint): boolean {
    const held = this.#entry(id);
    if (--held.holds === 0) this.#held.delete(id);
    held.file.release();
    return held.file.references === 0;
  }

  /** The held descriptions, each once. */
  files(): IterableIterator<OpenFile> {
    return [...this.#held.values()].map((held) => held.file).values();
  }

  /** Drops every hold (the service is stopping). */
  releaseAll(): void {
    for (const [id, held] of [...this.#held]) {
      this.#held.delete(id);
      for (let i = 0; i < held.holds; i++) held.file.release();
    }
  }

  #entry(id: bigint): Held {
    const held = this.#held.get(id);
    if (!held) {
      throw new AstraError(Code.NOT_FOUND, Errno.EBADF, `no open file description ${id} is held`, {
        argument: "open_file_id",
        service: "storage",
      });
    }
    return held;
  }
}

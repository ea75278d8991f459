// The holds vmm keeps on storage's open file descriptions. A file mapping names a description
// (BackedFile.openFileId), which must stay open while anything reads or writes through it: every
// VMA mapping it (in any address space: fork shares them) and every shared memory object whose
// pages come from it. vmm keeps one hold per description it maps, taken when a mapping first
// needs it and released when the last user goes — munmap, MAP_FIXED over it, mremap, exit — as
// Linux's vm_file references keep the file until the last VMA goes.
//
// Where a hold comes from:
// - "taken": mmap(fd) asked storage for a new hold (HoldDescriptor) just for this mapping. It is
//   vmm's whatever happens: released at once if the mapping fails or vmm already held the
//   description.
// - "lent": a caller of the Mmap RPC (sched's loader, with the hold OpenExecutable gave it)
//   brings its own. The first mapping of a description vmm does not hold yet takes the caller's
//   hold over; until a mapping succeeds, and for descriptions vmm already holds, it stays the
//   caller's.
import type { Logger } from "../../lib/log.ts";
import type { FileUsers } from "./aspace.ts";
import type { BackedFile } from "./files.ts";
import type { MappedFile } from "./vma.ts";

export type HoldOrigin = "taken" | "lent";

interface Holding {
  /** Holds vmm owns on the description. */
  holds: number;
  /** VMAs and shared objects using it. */
  users: number;
  /** Mappings of it being made: its holds stay until they end. */
  pending: number;
}

function openFileIdOf(file: MappedFile): bigint | undefined {
  const id = (file as Partial<BackedFile>).openFileId;
  return typeof id === "bigint" ? id : undefined;
}

export class FileHolds implements FileUsers {
  private readonly holdings = new Map<bigint, Holding>();
  /** Something may need releasing: settle() has work (it runs after every call, faults included). */
  private unsettled = false;

  constructor(
    private readonly release: (openFileId: bigint) => Promise<void>,
    private readonly log: Logger,
  ) {}

  private holding(id: bigint): Holding {
    let holding = this.holdings.get(id);
    if (!holding) {
      holding = { holds: 0, users: 0, pending: 0 };
      this.holdings.set(id, holding);
    }
    return holding;
  }

  attach(file: MappedFile): void {
    const id = openFileIdOf(file);
    if (id !== undefined) this.holding(id).users++;
  }

  detach(file: MappedFile): void {
    const id = openFileIdOf(file);
    const holding = id === undefined ? undefined : this.holdings.get(id);
    if (!holding) return;
    holding.users--;
    this.unsettled = true;
  }

  /**
   * Runs `map`, which makes a mapping of description `openFileId` with a hold of `origin`, keeping
   * the description's holds while it runs; then gives back the holds nothing needs.
   */
  async mapping<T>(openFileId: bigint, origin: HoldOrigin, map: () => Promise<T>): Promise<T> {
    const holding = this.holding(openFileId);
    holding.pending++;
    if (origin === "taken") holding.holds++;
    let mapped = false;
    try {
      const result = await map();
      mapped = true;
      return result;
    } finally {
      holding.pending--;
      if (mapped && origin === "lent" && holding.holds === 0) holding.holds = 1;
      this.unsettled = true;
      await this.settle();
    }
  }

  /**
   * Releases every hold nothing needs: all of a description nothing uses, all but one of a used
   * one. The counts change before the releases are sent, so settles running side by side never
   * release one hold twice.
   */
  async settle(): Promise<void> {
    if (!this.unsettled) return;
    this.unsettled = false;
    const releases: bigint[] = [];
    for (const [id, holding] of this.holdings) {
      const needed = holding.users > 0 || holding.pending > 0 ? Math.min(holding.holds, 1) : 0;
      for (; holding.holds > needed; holding.holds--) releases.push(id);
      if (holding.holds === 0 && holding.users <= 0 && holding.pending === 0) this.holdings.delete(id);
    }
    await Promise.all(releases.map((id) =>
      this.release(id).catch((error) => {
        // The description may have gone with a restarted storage service; nothing is left to free.
        this.log.warn(`releasing open file description ${id} failed: ${error}`);
      })
    ));
  }
}

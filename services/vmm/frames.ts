// The frames of user pages, from pmm. Every frame is allocated under the owner of the address
// space whose call needed it ("vmm:pid N"), found from the call's async context, so pmm's
// CheckLeaks and ReleaseOwner see per-process figures.
//
// Two things make a vmm restart leak nothing, though vmm's own tables die with the process:
// - While an owner has a live address space or holds any frame, pmm also holds a tiny heap
//   allocation in that owner's name: its owner record. A restarted vmm lists heap allocations
//   (CheckLeaks without an owner), finds every "vmm:pid N" owner that way, and releases each one
//   whole (ReleaseOwner), frames and record.
// - A frame is given back to pmm only after the translations that reached it are gone from the
//   hashed page table and the TLBs (the releases run at the end of a TranslationBatch commit), so
//   pmm never hands out a frame some CPU can still reach.
import { AsyncLocalStorage } from "node:async_hooks";
import { PmmService } from "../../gen/astra/pmm/v1/pmm_pb.ts";
import { AstraError, Code, Errno, failedPrecondition } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import type { Client } from "../../lib/rpc.ts";
import type { FrameAllocator } from "./aspace.ts";
import type { TranslationBatch } from "./remote.ts";

type Pmm = Client<typeof PmmService>;

const OWNER_PREFIX = "vmm:pid ";
const OWNER_PATTERN = /^vmm:pid -?\d+$/;
/** The owner record is only an ownership tag; pmm's smallest allocation is enough. */
const OWNER_RECORD_BYTES = 8n;
const TIMEOUT_MS = 10_000;

/** The pmm owner of a process's frames. */
export function frameOwner(pid: number): string {
  return `${OWNER_PREFIX}${pid}`;
}

/** What one call on behalf of an owner did with frames. */
export interface FrameAccount {
  readonly owner: string;
  /** Frames the call gave back (they reach pmm when its batch commits). */
  freed: number;
}

interface OwnerState {
  spaces: number;
  frames: number;
  /** The owner record's heap address, once pmm answered. */
  record: Promise<bigint>;
}

export interface ReclaimResult {
  owners: number;
  frames: number;
}

export class OwnedFrames implements FrameAllocator {
  private readonly calls = new AsyncLocalStorage<FrameAccount>();
  private readonly ownerOfFrame = new Map<number, string>();
  private readonly owners = new Map<string, OwnerState>();

  constructor(
    private readonly pmm: Pmm,
    private readonly batch: TranslationBatch,
    private readonly log: Logger,
  ) {}

  /** Runs `task` on behalf of `owner`: the frames it allocates are that owner's. */
  runAs<T>(owner: string, task: (account: FrameAccount) => Promise<T>): Promise<T> {
    const account: FrameAccount = { owner, freed: 0 };
    return this.calls.run(account, () => task(account));
  }

  /** An address space of `owner` exists: the owner's record must exist before any of its frames. */
  async addSpace(owner: string): Promise<void> {
    let state = this.owners.get(owner);
    if (!state) {
      const record = this.pmm.kmalloc({
        size: OWNER_RECORD_BYTES,
        owner,
        site: "vmm: owner record (lets a restarted vmm find and release this owner)",
      }, { timeoutMs: TIMEOUT_MS }).then((reply) => reply.address);
      state = { spaces: 0, frames: 0, record };
      this.owners.set(owner, state);
      record.catch(() => {
        if (this.owners.get(owner) === state) this.owners.delete(owner);
      });
    }
    state.spaces++;
    await state.record;
  }

  /** An address space of `owner` is gone; its frames may live on in other spaces (copy-on-write). */
  async removeSpace(owner: string): Promise<void> {
    const state = this.owners.get(owner);
    if (!state) return;
    state.spaces--;
    await this.retireIfUnused(owner, state);
  }

  /** Frames vmm holds for user pages. */
  get framesHeld(): number {
    return this.ownerOfFrame.size;
  }

  async allocFrame(): Promise<number> {
    const account = this.calls.getStore();
    if (!account) {
      throw failedPrecondition("a frame was requested outside any address-space call", Errno.EIO);
    }
    const state = this.owners.get(account.owner);
    if (!state) {
      throw failedPrecondition(`${account.owner} has no address space to hold frames`, Errno.EIO);
    }
    state.frames++;
    let address: number;
    try {
      const reply = await this.pmm.allocFrame({ owner: account.owner, site: "vmm: user page" }, {
        timeoutMs: TIMEOUT_MS,
      });
      address = Number(reply.address);
    } catch (error) {
      state.frames--;
      await this.retireIfUnused(account.owner, state);
      throw error;
    }
    this.ownerOfFrame.set(address, account.owner);
    return address;
  }

  freeFrame(address: number): void {
    const account = this.calls.getStore();
    if (account) account.freed++;
    this.batch.afterInvalidation(() => this.giveBack(address));
  }

  /** Gives a frame back to pmm, once its translations are gone. Never throws: the batch goes on. */
  private async giveBack(address: number): Promise<void> {
    try {
      await this.pmm.freeFrame({ address: BigInt(address) }, { timeoutMs: TIMEOUT_MS });
    } catch (error) {
      const transient = error instanceof AstraError &&
        (error.code === Code.UNAVAILABLE || error.code === Code.DEADLINE_EXCEEDED);
      if (transient) {
        // pmm is restarting: try again with the next commit.
        this.batch.afterInvalidation(() => this.giveBack(address));
        return;
      }
      // pmm refused: the frame is not (or no longer) ours to free. Keeping it would leak nothing
      // and retrying would fail the same way.
      this.log.error("pmm refused a frame vmm gave back", {
        address: `0x${address.toString(16)}`,
        error: error instanceof AstraError ? error.describe() : String(error),
      });
    }
    const owner = this.ownerOfFrame.get(address);
    this.ownerOfFrame.delete(address);
    const state = owner === undefined ? undefined : this.owners.get(owner);
    if (owner !== undefined && state) {
      state.frames--;
      await this.retireIfUnused(owner, state);
    }
  }

  /** Frees an owner's record once it has neither address spaces nor frames. */
  private async retireIfUnused(owner: string, state: OwnerState): Promise<void> {
    if (state.spaces > 0 || state.frames > 0 || this.owners.get(owner) !== state) return;
    this.owners.delete(owner);
    try {
      await this.pmm.kfree({ address: await state.record }, { timeoutMs: TIMEOUT_MS });
    } catch (error) {
      this.log.error("could not free an owner record", {
        owner,
        error: error instanceof AstraError ? error.describe() : String(error),
      });
    }
  }

  /**
   * After a restart: every frame and record of every "vmm:pid N" owner an earlier vmm left in
   * pmm goes back (their address spaces died with it). Call only once the hashed page table is
   * cleared and the TLBs invalidated.
   */
  async reclaimOrphans(): Promise<ReclaimResult> {
    const leaks = await this.pmm.checkLeaks({}, { timeoutMs: TIMEOUT_MS });
    const owners = new Set(leaks.allocations.map((a) => a.owner).filter((o) => OWNER_PATTERN.test(o)));
    let frames = 0;
    for (const owner of owners) {
      const released = await this.pmm.releaseOwner({ owner }, { timeoutMs: TIMEOUT_MS });
      frames += Number(released.framesFreed);
    }
    return { owners: owners.size, frames };
  }
}

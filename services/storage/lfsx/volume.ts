// An LFSX volume: a transactional key-value store on a block device. This is the API the
// storage service's gRPC server (LfsxService) calls.
//
// Layout (4 KiB blocks):
//   0, 1                      superblock, two copies (superblock.ts)
//   2 .. 2+J                  journal region (journal.ts)
//   2+J .. end                data: tree nodes, overflow extents, the node table
//
// Durability. A commit's records go to the journal, which is flushed before the commit is
// acknowledged; the commit is then applied to the B+ tree in memory. The tree reaches its home
// blocks copy-on-write: a changed node is written to a fresh block, never over a block that the
// last checkpoint's image uses, so that image stays intact however the writes are interrupted. A
// checkpoint writes every dirty node and the node table, flushes, writes both superblock copies
// (each flushed) naming the new image, and starts a new journal generation. Mount reads the
// newest valid superblock, loads its image, replays the journal's committed transactions on top
// (recovery), and checkpoints, so every mount begins with an empty journal.
//
// Commits are applied in journal order, one at a time, holding the tree; a checkpoint waits for
// the commits already logged and keeps new ones from logging until it is done.
import {
  AstraError,
  Code,
  Errno,
  failedPrecondition,
  invalidArgument,
  resourceExhausted,
} from "../../../lib/errors.ts";
import { BLOCK_SIZE, type BlockDevice } from "./blockdev.ts";
import { BPlusTree, type Direction, type TreeStatistics } from "./btree.ts";
import { copyBytes, keyBytes } from "./bytes.ts";
import { type CacheStatistics, NodeCache } from "./cache.ts";
import { checkTree, type FsckReport } from "./fsck.ts";
import { Journal, type JournalStatistics, randomSalt, recordSize } from "./journal.ts";
import { type Key, keyFromBytes, keyToBytes, writeKey } from "./keys.ts";
import type { LockMode } from "./locks.ts";
import { corruptBlock, fitsInline } from "./node.ts";
import { NodeTable } from "./nodetable.ts";
import { OverflowStore } from "./overflow.ts";
import { SpaceMap } from "./space.ts";
import {
  decodeSuperblock,
  encodeSuperblock,
  MAX_LABEL_BYTES,
  type Superblock,
  SUPERBLOCK_COPIES,
} from "./superblock.ts";
import {
  type BeginOptions,
  type CommitLog,
  type CommitResult,
  type TransactionInfo,
  TransactionManager,
  type TransactionStatistics,
  type WriteSet,
} from "./txn.ts";

export interface FormatOptions {
  /** Journal region size in blocks; default: an eighth of the device, between 64 and 16384. */
  journalBlocks?: number;
  label?: string;
}

export interface FormatResult {
  uuid: string;
  label: string;
  blockCount: number;
  journalBlocks: number;
  firstDataBlock: number;
}

export interface MountOptions {
  /** Recover into memory only: nothing is written, transactions may only read. */
  readOnly?: boolean;
  /** Node cache capacity in nodes (4 KiB each); default 16384. */
  cacheNodes?: number;
  /** Default lock wait timeout of transactions; default 10 s. */
  lockTimeoutMs?: number;
  /** Default idle timeout of transactions (0: none); default none. */
  idleTimeoutMs?: number;
}

export interface MountReport {
  /** Checkpoint generation the volume was mounted from. */
  generation: number;
  /** Problems with superblock copies (a copy that failed verification or lagged); repaired unless read-only. */
  superblockProblems: string[];
  recoveredTransactions: number;
  replayedUpdates: number;
  discardedTransactions: number;
  journalRecords: number;
  /** Why the journal scan stopped early: a torn or stale tail, discarded. */
  journalTail: string | undefined;
  durationMs: number;
}

export interface CheckpointResult {
  generation: number;
  nodesWritten: number;
  journalBlocksReleased: number;
  durationMs: number;
}

export interface VolumeStatistics {
  uuid: string;
  label: string;
  blockSize: number;
  blockCount: number;
  generation: number;
  readOnly: boolean;
  tree: { height: number; entries: number; root: number } & TreeStatistics;
  space: {
    dataBlocks: number;
    usedBlocks: number;
    freeBlocks: number;
    pendingFreeBlocks: number;
    nodeIds: number;
    nodeTablePages: number;
  };
  cache: CacheStatistics;
  journal: JournalStatistics;
  checkpoints: { count: number; lastDurationMs: number; lastNodesWritten: number };
  transactions: TransactionStatistics;
  recovery: MountReport;
}

export interface VolumeFsckReport extends FsckReport {
  superblockProblems: string[];
}

export interface ScanRequest {
  start?: Uint8Array;
  end?: Uint8Array;
  limit: number;
  direction?: Direction;
  /** A previous page's continuation. */
  continuation?: Uint8Array;
}

export interface KeyValue {
  key: Uint8Array;
  value: Uint8Array;
}

export interface ScanResult {
  entries: KeyValue[];
  /** Present when the page is full: pass it back for the next page. */
  continuation: Uint8Array | undefined;
}

export interface LockGraphReport {
  edges: { waiter: number; key: Uint8Array; mode: LockMode; waitsFor: number[]; waitedMs: number }[];
  cycles: number[][];
}

const DEFAULT_CACHE_NODES = 16384;
const DEFAULT_LOCK_TIMEOUT_MS = 10_000;
const MIN_JOURNAL_BLOCKS = 16;
const MIN_DATA_BLOCKS = 32;
const UPDATE_PUT = 1;
const UPDATE_DELETE = 2;
/** Blocks kept free beyond each commit's estimate (the node table's directory). */
const SPACE_MARGIN = 4;

function defaultJournalBlocks(blockCount: number): number {
  return Math.max(64, Math.min(16384, Math.floor(blockCount / 8)));
}

function updateSize(key: Key, value: Uint8Array | null): number {
  return 3 + key.length + (value?.length ?? 0);
}

/** Encodes an update record's payload into `out` at `offset`; returns the offset after it. */
function encodeUpdate(out: Uint8Array, offset: number, key: Key, value: Uint8Array | null): number {
  out[offset] = value === null ? UPDATE_DELETE : UPDATE_PUT;
  out[offset + 1] = key.length & 0xff;
  out[offset + 2] = key.length >>> 8;
  const end = writeKey(out, offset + 3, key);
  if (value === null) return end;
  out.set(value, end);
  return end + value.length;
}

function decodeUpdate(payload: Uint8Array): { key: Key; value: Uint8Array | null } {
  const keyLength = payload.length >= 3 ? payload[1] | (payload[2] << 8) : -1;
  const op = payload[0];
  if (keyLength < 1 || 3 + keyLength > payload.length || (op !== UPDATE_PUT && op !== UPDATE_DELETE)) {
    throw new AstraError(Code.DATA_LOSS, Errno.EUCLEAN, "a journal update record is malformed");
  }
  const key = keyFromBytes(payload.subarray(3, 3 + keyLength));
  return { key, value: op === UPDATE_DELETE ? null : payload.subarray(3 + keyLength) };
}

function encodeNumber(value: number): Uint8Array {
  const out = new Uint8Array(8);
  const view = new DataView(out.buffer);
  view.setUint32(0, value >>> 0, true);
  view.setUint32(4, Math.floor(value / 0x1_0000_0000), true);
  return out;
}

function decodeNumber(payload: Uint8Array): number {
  if (payload.length !== 8) {
    throw new AstraError(Code.DATA_LOSS, Errno.EUCLEAN, "a journal record's number is malformed");
  }
  const view = new DataView(payload.buffer, payload.byteOffset, 8);
  return view.getUint32(0, true) + view.getUint32(4, true) * 0x1_0000_0000;
}

/**
 * Writes both superblock copies, each followed by a flush. Copies known to be damaged or stale go
 * first: the good copy is overwritten only once another good copy exists, so a crash in the middle
 * can never leave none.
 */
async function writeSuperblocks(device: BlockDevice, sb: Superblock, good: boolean[]): Promise<void> {
  const order = [0, 1].sort((a, b) => Number(good[a]) - Number(good[b]));
  for (const copy of order) {
    await device.writeBlocks(copy, encodeSuperblock(sb, copy));
    await device.flush();
    good[copy] = true;
  }
}

function randomUuid(): string {
  return [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function keyArgument(bytes: Uint8Array, argument = "key"): Key {
  if (!(bytes instanceof Uint8Array)) throw invalidArgument(argument, `${argument} must be bytes`);
  return keyFromBytes(bytes);
}

export class Volume {
  #sb: Superblock;
  #state: "mounted" | "unmounting" | "unmounted" = "mounted";
  #failure: AstraError | undefined = undefined;
  /** Set while a checkpoint runs: commits wait for it before logging. */
  #gate: Promise<void> | undefined = undefined;
  /** The last commit's application; every commit applies after the one before it. */
  #applyTail: Promise<void> = Promise.resolve();
  #lastAssigned: number;
  #checkpoints = { count: 0, lastDurationMs: 0, lastNodesWritten: 0 };
  /** Which superblock copies on disk hold the current generation intact. */
  readonly #goodCopies: boolean[];
  readonly #txns: TransactionManager;

  private constructor(
    private readonly device: BlockDevice,
    sb: Superblock,
    private readonly space: SpaceMap,
    private readonly table: NodeTable,
    private readonly cache: NodeCache,
    private readonly tree: BPlusTree,
    private readonly journal: Journal,
    readonly readOnly: boolean,
    readonly mountReport: MountReport,
    options: {
      lastVersion: number;
      nextTransactionId: number;
      lockTimeoutMs: number;
      idleTimeoutMs: number;
      goodCopies: boolean[];
    },
  ) {
    this.#sb = sb;
    this.#goodCopies = options.goodCopies;
    this.#lastAssigned = options.lastVersion;
    const lastAssigned = () => this.#lastAssigned;
    const log: CommitLog = {
      commit: (txid, writes, commitPoint) => this.#logCommit(txid, writes, commitPoint),
      get lastAssignedVersion() {
        return lastAssigned();
      },
    };
    this.#txns = new TransactionManager(tree, log, {
      visibleVersion: options.lastVersion,
      nextTransactionId: options.nextTransactionId,
      lockTimeoutMs: options.lockTimeoutMs,
      idleTimeoutMs: options.idleTimeoutMs,
    });
  }

  /** Creates an empty volume on `device`. */
  static async format(device: BlockDevice, options: FormatOptions = {}): Promise<FormatResult> {
    if (device.blockSize !== BLOCK_SIZE) {
      throw invalidArgument(
        "device",
        `LFSX needs ${BLOCK_SIZE}-byte blocks, the device has ${device.blockSize}`,
      );
    }
    const blockCount = device.blockCount;
    if (blockCount >= 0x1_0000_0000) {
      throw invalidArgument("device", "LFSX addresses at most 2^32 blocks (16 TiB)");
    }
    const journalBlocks = options.journalBlocks ?? defaultJournalBlocks(blockCount);
    if (!Number.isInteger(journalBlocks) || journalBlocks < MIN_JOURNAL_BLOCKS) {
      throw invalidArgument("journalBlocks", `the journal needs at least ${MIN_JOURNAL_BLOCKS} blocks`);
    }
    const firstDataBlock = SUPERBLOCK_COPIES + journalBlocks;
    if (firstDataBlock + MIN_DATA_BLOCKS > blockCount) {
      throw invalidArgument(
        "device",
        `a ${blockCount}-block device cannot hold a ${journalBlocks}-block journal and ${MIN_DATA_BLOCKS} data blocks`,
        Errno.ENOSPC,
      );
    }
    const label = options.label ?? "";
    if (new TextEncoder().encode(label).length > MAX_LABEL_BYTES) {
      throw invalidArgument("label", `the label must fit in ${MAX_LABEL_BYTES} bytes`);
    }
    // Zeroing the journal makes stale records of an earlier file system unreadable, and on an
    // image file it allocates the region, so later commits do not pay for block allocation.
    const chunk = 256;
    for (let block = SUPERBLOCK_COPIES; block < firstDataBlock; block += chunk) {
      await device.writeBlocks(block, new Uint8Array(Math.min(chunk, firstDataBlock - block) * BLOCK_SIZE));
    }
    const space = new SpaceMap(blockCount, firstDataBlock);
    const table = new NodeTable();
    const cache = new NodeCache(device, table, space, 64);
    const tree = BPlusTree.create(cache, new OverflowStore(device, table, space));
    await cache.writeDirty();
    const location = await table.persist(device, space);
    await device.flush();
    const now = Date.now();
    const sb: Superblock = {
      blockCount,
      generation: 1,
      journalStart: SUPERBLOCK_COPIES,
      journalBlocks,
      firstDataBlock,
      root: tree.root,
      height: tree.height,
      entries: 0,
      tableDirectory: location.directory,
      tablePages: location.pages,
      journalSalt: randomSalt(),
      journalGenerationStart: 0,
      journalNextSequence: 1,
      nextTransactionId: 1,
      lastCommitVersion: 0,
      formatTime: now,
      checkpointTime: now,
      uuid: randomUuid(),
      label,
    };
    await writeSuperblocks(device, sb, [false, false]);
    return { uuid: sb.uuid, label, blockCount, journalBlocks, firstDataBlock };
  }

  /** Mounts the volume on `device`: recovery replays the journal, then (unless read-only) a checkpoint. */
  static async mount(device: BlockDevice, options: MountOptions = {}): Promise<Volume> {
    const started = performance.now();
    const readOnly = options.readOnly ?? false;
    const copies = await device.readBlocks(0, SUPERBLOCK_COPIES);
    const decoded = Array.from(
      { length: SUPERBLOCK_COPIES },
      (_, copy) => decodeSuperblock(copies.subarray(copy * BLOCK_SIZE, (copy + 1) * BLOCK_SIZE), copy),
    );
    let sb: Superblock | undefined;
    for (const candidate of decoded) {
      if (typeof candidate !== "string" && (!sb || candidate.generation > sb.generation)) sb = candidate;
    }
    if (!sb) {
      const reasons = decoded.map((reason, copy) => `copy ${copy} (block ${copy}): ${reason}`).join("; ");
      throw new AstraError(Code.DATA_LOSS, Errno.EUCLEAN, `no valid LFSX superblock: ${reasons}`, {
        facts: { block: "0" },
      });
    }
    const superblockProblems: string[] = [];
    decoded.forEach((candidate, copy) => {
      if (typeof candidate === "string") {
        superblockProblems.push(`copy ${copy} (block ${copy}): ${candidate}`);
      } else if (candidate.generation !== sb.generation) {
        superblockProblems.push(
          `copy ${copy} (block ${copy}): generation ${candidate.generation}, behind ${sb.generation}`,
        );
      }
    });
    if (sb.blockCount !== device.blockCount) {
      throw new AstraError(
        Code.FAILED_PRECONDITION,
        Errno.EINVAL,
        `the volume was formatted for ${sb.blockCount} blocks, the device has ${device.blockCount}`,
      );
    }
    if (sb.firstDataBlock !== SUPERBLOCK_COPIES + sb.journalBlocks || sb.height < 1 || sb.root === 0) {
      throw corruptBlock(0, "the superblock's geometry is inconsistent");
    }
    const space = new SpaceMap(sb.blockCount, sb.firstDataBlock);
    const table = await NodeTable.load(device, space, { directory: sb.tableDirectory, pages: sb.tablePages });
    if (!table.isLive(sb.root)) {
      throw corruptBlock(sb.tableDirectory, `the root node ${sb.root} is not in the node table`);
    }
    const cache = new NodeCache(device, table, space, options.cacheNodes ?? DEFAULT_CACHE_NODES);
    const tree = new BPlusTree(cache, new OverflowStore(device, table, space), {
      root: sb.root,
      height: sb.height,
      entries: sb.entries,
    });

    const generation = { salt: sb.journalSalt, start: sb.journalGenerationStart };
    const recovery = await Journal.recover(
      device,
      sb.journalStart,
      sb.journalBlocks,
      generation,
      sb.journalNextSequence,
    );
    const journalCheckpoint = recovery.checkpointPayload && decodeNumber(recovery.checkpointPayload);
    if (journalCheckpoint !== undefined && journalCheckpoint !== sb.generation) {
      const message =
        `the journal belongs to checkpoint ${journalCheckpoint}, the superblock to ${sb.generation}`;
      throw corruptBlock(sb.journalStart, message);
    }
    let lastVersion = sb.lastCommitVersion;
    let replayedUpdates = 0;
    for (const transaction of recovery.transactions) {
      const version = decodeNumber(transaction.commitPayload);
      if (version <= lastVersion) {
        throw corruptBlock(
          sb.journalStart,
          `journal commit version ${version} does not follow ${lastVersion}`,
        );
      }
      await tree.exclusive(async () => {
        for (const update of transaction.updates) {
          const { key, value } = decodeUpdate(update);
          if (value === null) await tree.delete(key);
          else await tree.put(key, value);
          replayedUpdates++;
        }
      });
      lastVersion = version;
    }
    const journal = new Journal(device, sb.journalStart, sb.journalBlocks, generation, recovery.nextSequence);
    const report: MountReport = {
      generation: sb.generation,
      superblockProblems,
      recoveredTransactions: recovery.transactions.length,
      replayedUpdates,
      discardedTransactions: recovery.discardedTransactions,
      journalRecords: recovery.records,
      journalTail: recovery.tail,
      durationMs: 0,
    };
    const volume = new Volume(device, sb, space, table, cache, tree, journal, readOnly, report, {
      lastVersion,
      nextTransactionId: Math.max(sb.nextTransactionId, recovery.highestTransaction + 1),
      lockTimeoutMs: options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS,
      idleTimeoutMs: options.idleTimeoutMs ?? 0,
      goodCopies: decoded.map((candidate) =>
        typeof candidate !== "string" && candidate.generation === sb.generation
      ),
    });
    // The recovered state becomes the new checkpoint: the journal starts a fresh generation
    // (the one just replayed must never be appended to) and both superblock copies are rewritten.
    if (!readOnly) await volume.#checkpoint();
    report.durationMs = performance.now() - started;
    return volume;
  }

  /** Checks the volume on `device` without changing it (`astra fsck`). */
  static async check(device: BlockDevice, options: { cacheNodes?: number } = {}): Promise<VolumeFsckReport> {
    const volume = await Volume.mount(device, { readOnly: true, cacheNodes: options.cacheNodes });
    try {
      return await volume.fsck();
    } finally {
      await volume.unmount();
    }
  }

  get uuid(): string {
    return this.#sb.uuid;
  }

  get label(): string {
    return this.#sb.label;
  }

  // ---- transactions -------------------------------------------------------------------------

  begin(options: BeginOptions = {}): TransactionInfo {
    this.#checkOpen();
    return this.#txns.begin(options);
  }

  async get(txid: number, key: Uint8Array): Promise<Uint8Array | undefined> {
    this.#checkOpen();
    const value = await this.#txns.get(txid, keyArgument(key));
    return value && copyBytes(value);
  }

  async put(txid: number, key: Uint8Array, value: Uint8Array): Promise<void> {
    this.#checkWritable();
    if (!(value instanceof Uint8Array)) throw invalidArgument("value", "value must be bytes");
    await this.#txns.put(txid, keyArgument(key), copyBytes(value));
  }

  async delete(txid: number, key: Uint8Array): Promise<boolean> {
    this.#checkWritable();
    return await this.#txns.delete(txid, keyArgument(key));
  }

  async scan(txid: number, request: ScanRequest): Promise<ScanResult> {
    this.#checkOpen();
    return this.#page(await this.#txns.scan(txid, this.#scanOptions(request)));
  }

  async savepoint(txid: number): Promise<number> {
    this.#checkOpen();
    return await this.#txns.savepoint(txid);
  }

  async rollbackToSavepoint(txid: number, savepoint: number): Promise<void> {
    this.#checkOpen();
    await this.#txns.rollbackToSavepoint(txid, savepoint);
  }

  async commit(txid: number): Promise<CommitResult> {
    this.#checkOpen();
    return await this.#txns.commit(txid);
  }

  abort(txid: number): void {
    this.#checkOpen();
    this.#txns.abort(txid);
  }

  async getVersion(
    txid: number,
    key: Uint8Array,
    version = 0,
  ): Promise<{ found: boolean; value: Uint8Array | undefined; version: number; readAt: number }> {
    this.#checkOpen();
    if (!Number.isInteger(version) || version < 0) {
      throw invalidArgument("version", `invalid version ${version}`);
    }
    const read = await this.#txns.getVersion(txid, keyArgument(key), version);
    return { ...read, value: read.value && copyBytes(read.value) };
  }

  async lock(txid: number, key: Uint8Array, mode: LockMode): Promise<void> {
    this.#checkOpen();
    await this.#txns.lock(txid, keyArgument(key), mode);
  }

  lockGraph(): LockGraphReport {
    this.#checkOpen();
    const graph = this.#txns.lockGraph();
    return {
      edges: graph.edges.map((edge) => ({ ...edge, key: keyToBytes(edge.key) })),
      cycles: graph.cycles,
    };
  }

  /** Autocommit read of the newest committed value. */
  async read(key: Uint8Array): Promise<Uint8Array | undefined> {
    this.#checkOpen();
    const value = await this.#txns.readLatest(keyArgument(key));
    return value && copyBytes(value);
  }

  /** Autocommit scan of the newest committed data. */
  async scanLatest(request: ScanRequest): Promise<ScanResult> {
    this.#checkOpen();
    return this.#page(await this.#txns.scanLatest(this.#scanOptions(request)));
  }

  // ---- volume -------------------------------------------------------------------------------

  /** journal_checkpoint: makes the tree on disk reflect every commit and empties the journal. */
  async checkpoint(): Promise<CheckpointResult> {
    this.#checkWritable();
    return await this.#checkpoint();
  }

  /**
   * journal_rotate: starts a new journal generation. In LFSX every checkpoint rotates the journal
   * (its committed state is then all in the tree), so this is a checkpoint.
   */
  async rotateJournal(): Promise<CheckpointResult> {
    return await this.checkpoint();
  }

  statistics(): VolumeStatistics {
    return {
      uuid: this.#sb.uuid,
      label: this.#sb.label,
      blockSize: BLOCK_SIZE,
      blockCount: this.#sb.blockCount,
      generation: this.#sb.generation,
      readOnly: this.readOnly,
      tree: {
        height: this.tree.height,
        entries: this.tree.entries,
        root: this.tree.root,
        ...this.tree.stats,
      },
      space: {
        dataBlocks: this.#sb.blockCount - this.#sb.firstDataBlock,
        usedBlocks: this.space.usedBlocks - this.#sb.firstDataBlock,
        freeBlocks: this.space.freeBlocks,
        pendingFreeBlocks: this.space.pendingFreeBlocks,
        nodeIds: this.table.liveIds,
        nodeTablePages: this.table.pages,
      },
      cache: this.cache.statistics(),
      journal: this.journal.statistics(),
      checkpoints: { ...this.#checkpoints },
      transactions: this.#txns.statistics(),
      recovery: { ...this.mountReport },
    };
  }

  /** Validates every structural invariant, and both superblock copies. */
  async fsck(): Promise<VolumeFsckReport> {
    this.#checkOpen();
    return await this.tree.exclusive(async () => {
      const report = await checkTree(this.tree, this.table, this.space);
      const superblockProblems: string[] = [];
      if (!this.readOnly) {
        const copies = await this.device.readBlocks(0, SUPERBLOCK_COPIES);
        for (let copy = 0; copy < SUPERBLOCK_COPIES; copy++) {
          const sb = decodeSuperblock(copies.subarray(copy * BLOCK_SIZE, (copy + 1) * BLOCK_SIZE), copy);
          if (typeof sb === "string") {
            superblockProblems.push(`superblock copy ${copy} (block ${copy}): ${sb}`);
          } else if (sb.generation !== this.#sb.generation) {
            superblockProblems.push(
              `superblock copy ${copy} (block ${copy}) is at generation ${sb.generation}, not ${this.#sb.generation}`,
            );
          }
        }
      } else {
        superblockProblems.push(...this.mountReport.superblockProblems);
      }
      return {
        ...report,
        ok: report.ok && superblockProblems.length === 0,
        problems: [...report.problems, ...superblockProblems],
        superblockProblems,
      };
    });
  }

  /**
   * Aborts open transactions, waits for commits in flight, checkpoints (unless read-only or
   * failed) and detaches; returns how many transactions it aborted. The device stays open.
   */
  async unmount(): Promise<{ transactionsAborted: number }> {
    if (this.#state !== "mounted") return { transactionsAborted: 0 };
    this.#state = "unmounting";
    const transactionsAborted = this.#txns.close(
      new AstraError(Code.ABORTED, Errno.ECANCELED, "the volume is being unmounted"),
    );
    await this.#applyTail;
    try {
      if (!this.#failure && !this.readOnly) await this.#checkpoint();
    } finally {
      this.#state = "unmounted";
    }
    return { transactionsAborted };
  }

  // ---- internals ----------------------------------------------------------------------------

  /** CommitLog.commit: logs, flushes and applies one transaction's writes, in commit order. */
  async #logCommit(txid: number, writes: WriteSet, commitPoint: (version: number) => void): Promise<number> {
    this.#checkWritable();
    let payloadBytes = 0;
    let puts = 0;
    let overflowBlocks = 0;
    for (const [key, value] of writes) {
      payloadBytes += updateSize(key, value);
      if (value === null) continue;
      puts++;
      if (!fitsInline(key.length, value.length)) overflowBlocks += Math.ceil(value.length / BLOCK_SIZE) + 1;
    }
    // All update payloads in one buffer: allocations, not copies, dominate small commits.
    const encoded = new Uint8Array(payloadBytes);
    const updates: Uint8Array[] = [];
    let offset = 0;
    for (const [key, value] of writes) {
      const end = encodeUpdate(encoded, offset, key, value);
      updates.push(encoded.subarray(offset, end));
      offset = end;
    }
    const bytes = recordSize(0) + recordSize(8) + writes.size * recordSize(0) + payloadBytes;
    if (bytes + recordSize(8) > this.journal.capacityBytes) {
      throw resourceExhausted(
        `transaction ${txid} needs ${bytes} bytes of journal; the journal holds ${this.journal.capacityBytes}`,
        { journalBytes: String(this.journal.capacityBytes) },
        Errno.ENOSPC,
      );
    }
    let checkpointed = false;
    for (;;) {
      while (this.#gate) await this.#gate;
      this.#checkWritable();
      // Room for this commit — a put may copy its leaf and split its path, a delete copies its
      // leaf — and for the next checkpoint to relocate every dirty node and table page.
      const blocks = puts * (this.tree.height + 2) + (writes.size - puts) + overflowBlocks +
        this.cache.dirtyCount + this.table.pages + SPACE_MARGIN;
      const journalRoom = this.journal.hasRoom(bytes);
      const spaceRoom = this.space.freeBlocks >= blocks;
      if (journalRoom && spaceRoom) break;
      if (checkpointed && journalRoom) {
        throw resourceExhausted(
          `the volume is full: transaction ${txid} may need ${blocks} blocks, ${this.space.freeBlocks} are free`,
          { freeBlocks: String(this.space.freeBlocks) },
          Errno.ENOSPC,
        );
      }
      await this.#checkpoint();
      checkpointed = true;
    }
    const version = this.#lastAssigned + 1;
    commitPoint(version);
    this.#lastAssigned = version;
    const durable = this.journal.appendTransaction(txid, updates, encodeNumber(version));
    // Observed now, awaited later in order: a journal failure must not go unhandled meanwhile.
    durable.catch(() => {});
    const applied = this.#applyTail.then(async () => {
      await durable;
      if (this.#failure) throw this.#failure;
      await this.tree.exclusive(() => this.#txns.applyCommit(txid, writes, version));
    });
    this.#applyTail = applied.catch((err) => this.#fail(err));
    await applied;
    return version;
  }

  async #checkpoint(): Promise<CheckpointResult> {
    while (this.#gate) await this.#gate;
    let open!: () => void;
    this.#gate = new Promise<void>((resolve) => (open = resolve));
    const started = performance.now();
    try {
      await this.#applyTail;
      if (this.#failure) throw this.#failure;
      return await this.tree.exclusive(async () => {
        const writtenBefore = this.cache.statistics().nodesWritten;
        await this.cache.writeDirty();
        const location = await this.table.persist(this.device, this.space);
        await this.device.flush();
        const releasedBlocks = this.journal.usedBlocks;
        const generation = this.#sb.generation + 1;
        const journalGeneration = {
          salt: randomSalt(),
          start: this.journal.generation.start + this.#sb.journalBlocks,
        };
        const sb: Superblock = {
          ...this.#sb,
          generation,
          root: this.tree.root,
          height: this.tree.height,
          entries: this.tree.entries,
          tableDirectory: location.directory,
          tablePages: location.pages,
          journalSalt: journalGeneration.salt,
          journalGenerationStart: journalGeneration.start,
          journalNextSequence: this.journal.nextSequence,
          nextTransactionId: this.#txns.nextTransactionId,
          lastCommitVersion: this.#txns.versions.visibleVersion,
          checkpointTime: Date.now(),
        };
        await writeSuperblocks(this.device, sb, this.#goodCopies);
        this.#sb = sb;
        this.space.checkpointCompleted();
        this.journal.startGeneration(journalGeneration, encodeNumber(generation));
        const durationMs = performance.now() - started;
        const nodesWritten = this.cache.statistics().nodesWritten - writtenBefore;
        this.#checkpoints = {
          count: this.#checkpoints.count + 1,
          lastDurationMs: durationMs,
          lastNodesWritten: nodesWritten,
        };
        return { generation, nodesWritten, journalBlocksReleased: releasedBlocks, durationMs };
      });
    } catch (err) {
      this.#fail(err);
      throw this.#failure ?? err;
    } finally {
      this.#gate = undefined;
      open();
    }
  }

  /** After an I/O error or corruption the in-memory state cannot be trusted: refuse everything. */
  #fail(err: unknown): void {
    if (this.#failure) return;
    const cause = err instanceof AstraError ? err : undefined;
    const text = err instanceof Error ? err.message : String(err);
    // Damage stays DATA_LOSS and a device that went away FAILED_PRECONDITION: retrying cannot
    // help either. Any other failure may pass once the volume is mounted again.
    const code = cause?.code === Code.DATA_LOSS
      ? Code.DATA_LOSS
      : cause?.errno === Errno.ENODEV
      ? Code.FAILED_PRECONDITION
      : Code.UNAVAILABLE;
    this.#failure = new AstraError(
      code,
      cause?.errno ?? Errno.EIO,
      `the volume failed and refuses further work until it is unmounted and mounted again (recovery then replays the journal): ${text}`,
      { facts: cause?.detail.facts ?? {} },
    );
    this.#txns.close(this.#failure);
    this.cache.clear();
  }

  #checkOpen(): void {
    if (this.#failure) throw this.#failure;
    if (this.#state !== "mounted") throw failedPrecondition("the volume is not mounted", Errno.ENODEV);
  }

  #checkWritable(): void {
    this.#checkOpen();
    if (this.readOnly) throw failedPrecondition("the volume is mounted read-only", Errno.EROFS);
  }

  #scanOptions(request: ScanRequest) {
    const direction = request.direction ?? "forward";
    if (direction !== "forward" && direction !== "backward") {
      throw invalidArgument("direction", `unknown scan direction ${direction}`);
    }
    return {
      start: request.start && request.start.length > 0 ? keyArgument(request.start, "start") : undefined,
      end: request.end && request.end.length > 0 ? keyArgument(request.end, "end") : undefined,
      limit: request.limit,
      direction,
      after: request.continuation && request.continuation.length > 0
        ? keyArgument(request.continuation, "continuation")
        : undefined,
    };
  }

  #page(page: { entries: [Key, Uint8Array][]; continuation: Key | undefined }): ScanResult {
    return {
      entries: page.entries.map(([key, value]) => ({ key: keyBytes(key), value: copyBytes(value) })),
      continuation: page.continuation === undefined ? undefined : keyToBytes(page.continuation),
    };
  }
}

// The write-ahead journal, in its own region of the device.
//
// Records (begin, update, commit, abort, checkpoint) form a byte stream packed into journal
// blocks. Each record carries a sequence number, its transaction and a CRC-32C chained over
// every record since the generation began; the chain is seeded with the generation's random
// salt, as SQLite's WAL seeds its cumulative checksums. Each block carries the salt, its
// absolute block sequence number (LSN) and the LSN of the first block of its flush group.
//
//   block:  [u32 magic "LXJL"][u32 salt][u64 lsn][u64 group start lsn][u16 payload bytes]
//           [u16 reserved][u32 header crc] payload (4064 bytes)
//   record: [u8 type][3 reserved][u32 payload length][u64 sequence][u64 transaction]
//           [u32 crc = CRC-32C(previous record's crc; header; payload)] payload
//
// Appends are buffered; a commit (or any durability request) writes everything buffered as one
// flush group — whole blocks, the last one padded, so a block that holds acknowledged records is
// never rewritten — and flushes the device before acknowledging. Commits that arrive while a
// group is being written go out together in the next one (group commit).
//
// A checkpoint makes the tree on disk reflect every commit, after which the log starts a new
// generation: a new salt and the write position back at the start of the region (the log
// "wraps"). Recovery reads the current generation from its start and stops at the first block or
// record that does not verify: a stale block (old salt or LSN), a torn write (bad record CRC) or
// the end of what was written. If a block of a *later* flush group verifies beyond that point,
// the damaged group had been flushed before the later one was written, so this is not a torn
// tail but corruption of acknowledged data, and recovery refuses with DATA_LOSS.
import { AstraError, Code, Errno, failedPrecondition, resourceExhausted } from "../../../lib/errors.ts";
import { BLOCK_SIZE, type BlockDevice } from "./blockdev.ts";
import { crc32c } from "./crc32c.ts";

export enum RecordType {
  Begin = 1,
  Update = 2,
  Commit = 3,
  Abort = 4,
  Checkpoint = 5,
}

const BLOCK_MAGIC = 0x4c4a584c; // "LXJL"
const BLOCK_HEADER_SIZE = 32;
const HEADER_CRC_OFFSET = 28;
export const JOURNAL_PAYLOAD_PER_BLOCK = BLOCK_SIZE - BLOCK_HEADER_SIZE;
export const RECORD_HEADER_SIZE = 28;
const READ_BATCH = 64;
const EMPTY = new Uint8Array(0);

/** Where a generation of the log begins and how its records are salted. */
export interface JournalGeneration {
  salt: number;
  /** LSN of the generation's first block, which sits at the start of the region. */
  start: number;
}

export interface RecoveredTransaction {
  txid: number;
  updates: Uint8Array[];
  commitPayload: Uint8Array;
}

export interface JournalRecovery {
  /** Committed transactions in commit order. */
  transactions: RecoveredTransaction[];
  /** Payload of the generation's checkpoint record, if the generation has any records. */
  checkpointPayload: Uint8Array | undefined;
  records: number;
  /** Transactions with records but no commit: aborted or cut off by the crash. */
  discardedTransactions: number;
  /** LSN just past the last valid block. */
  end: number;
  /** Why the scan stopped before the end of the region, if it did: a torn or stale tail. */
  tail: string | undefined;
  nextSequence: number;
  highestTransaction: number;
}

export interface JournalStatistics {
  salt: number;
  generationStart: number;
  capacityBlocks: number;
  usedBlocks: number;
  bufferedBytes: number;
  records: number;
  commits: number;
  aborts: number;
  groups: number;
  largestGroup: number;
  /** Flush groups by number of commits: 1, 2, 3–4, 5–8, 9–16, 17–32, 33 or more. */
  groupSizeHistogram: number[];
  blocksWritten: number;
  bytesLogged: number;
  generations: number;
}

const HISTOGRAM_BOUNDS = [1, 2, 4, 8, 16, 32];

interface Waiter {
  commit: boolean;
  resolve: () => void;
  reject: (err: unknown) => void;
}

function setU64(view: DataView, offset: number, value: number): void {
  view.setUint32(offset, value >>> 0, true);
  view.setUint32(offset + 4, Math.floor(value / 0x1_0000_0000), true);
}

function getU64(view: DataView, offset: number): number {
  return view.getUint32(offset, true) + view.getUint32(offset + 4, true) * 0x1_0000_0000;
}

function chainSeed(generation: JournalGeneration): number {
  const bytes = new Uint8Array(12);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, generation.salt, true);
  setU64(view, 4, generation.start);
  return crc32c(bytes);
}

/** Bytes a record with this payload occupies in the log. */
export function recordSize(payloadLength: number): number {
  return RECORD_HEADER_SIZE + payloadLength;
}

export function randomSalt(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0];
}

interface BlockHeader {
  lsn: number;
  groupStart: number;
  used: number;
}

function parseBlockHeader(block: Uint8Array, salt: number): BlockHeader | string {
  const view = new DataView(block.buffer, block.byteOffset, BLOCK_HEADER_SIZE);
  if (view.getUint32(0, true) !== BLOCK_MAGIC) return "not a journal block";
  if (view.getUint32(4, true) !== salt) return "salt of another generation";
  if (crc32c(block.subarray(0, HEADER_CRC_OFFSET), salt) !== view.getUint32(HEADER_CRC_OFFSET, true)) {
    return "header checksum mismatch";
  }
  const used = view.getUint16(24, true);
  const lsn = getU64(view, 8);
  const groupStart = getU64(view, 16);
  if (used > JOURNAL_PAYLOAD_PER_BLOCK || groupStart > lsn) return "inconsistent header";
  return { lsn, groupStart, used };
}

export class Journal {
  #generation: JournalGeneration;
  #nextLsn: number;
  #chain: number;
  #nextSequence: number;
  #buffer: Uint8Array[] = [];
  #bufferBytes = 0;
  #waiters: Waiter[] = [];
  #writing = false;
  #failure: unknown = undefined;
  #open = new Set<number>();
  #stats = {
    records: 0,
    commits: 0,
    aborts: 0,
    groups: 0,
    largestGroup: 0,
    groupSizeHistogram: new Array<number>(HISTOGRAM_BOUNDS.length + 1).fill(0),
    blocksWritten: 0,
    bytesLogged: 0,
    generations: 0,
  };

  /** A journal appending to a new, empty generation. */
  constructor(
    private readonly device: BlockDevice,
    readonly regionStart: number,
    readonly regionBlocks: number,
    generation: JournalGeneration,
    nextSequence: number,
  ) {
    this.#generation = generation;
    this.#nextLsn = generation.start;
    this.#chain = chainSeed(generation);
    this.#nextSequence = nextSequence;
  }

  get generation(): JournalGeneration {
    return { ...this.#generation };
  }

  /** LSN the next flush group starts at. */
  get nextLsn(): number {
    return this.#nextLsn;
  }

  get nextSequence(): number {
    return this.#nextSequence;
  }

  /** Blocks of the region the current generation uses, written or buffered. */
  get usedBlocks(): number {
    return this.#nextLsn - this.#generation.start + Math.ceil(this.#bufferBytes / JOURNAL_PAYLOAD_PER_BLOCK);
  }

  /** Whether `bytes` more of records fit in this generation, next to what is buffered. */
  hasRoom(bytes: number): boolean {
    const blocks = Math.ceil((this.#bufferBytes + bytes) / JOURNAL_PAYLOAD_PER_BLOCK);
    return this.#nextLsn - this.#generation.start + blocks <= this.regionBlocks;
  }

  /** Bytes of records this generation can take at most (an empty log). */
  get capacityBytes(): number {
    return this.regionBlocks * JOURNAL_PAYLOAD_PER_BLOCK;
  }

  statistics(): JournalStatistics {
    return {
      salt: this.#generation.salt,
      generationStart: this.#generation.start,
      capacityBlocks: this.regionBlocks,
      usedBlocks: this.usedBlocks,
      bufferedBytes: this.#bufferBytes,
      ...this.#stats,
      groupSizeHistogram: [...this.#stats.groupSizeHistogram],
    };
  }

  /** journal_start_transaction */
  begin(txid: number): void {
    this.#append(RecordType.Begin, txid, EMPTY);
    this.#open.add(txid);
  }

  /** journal_log_entry: one change of an open transaction. */
  update(txid: number, payload: Uint8Array): void {
    if (!this.#open.has(txid)) throw failedPrecondition(`journal transaction ${txid} is not open`);
    this.#append(RecordType.Update, txid, payload);
  }

  /** journal_commit_transaction: resolves once the commit record is on stable storage. */
  commit(txid: number, payload: Uint8Array): Promise<void> {
    if (!this.#open.has(txid)) throw failedPrecondition(`journal transaction ${txid} is not open`);
    this.#append(RecordType.Commit, txid, payload);
    this.#open.delete(txid);
    this.#stats.commits++;
    return this.#requestDurability(true);
  }

  /** journal_abort_transaction: recovery will discard the transaction's records. */
  abort(txid: number): void {
    if (!this.#open.has(txid)) throw failedPrecondition(`journal transaction ${txid} is not open`);
    this.#append(RecordType.Abort, txid, EMPTY);
    this.#open.delete(txid);
    this.#stats.aborts++;
  }

  /**
   * A whole transaction at once (begin, updates, commit), encoded into a single buffer; resolves
   * once it is durable.
   */
  appendTransaction(txid: number, updates: Uint8Array[], commitPayload: Uint8Array): Promise<void> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    let size = 2 * RECORD_HEADER_SIZE + commitPayload.length;
    for (const update of updates) size += RECORD_HEADER_SIZE + update.length;
    const out = new Uint8Array(size);
    let offset = this.#encode(out, 0, RecordType.Begin, txid, EMPTY);
    for (const update of updates) offset = this.#encode(out, offset, RecordType.Update, txid, update);
    this.#encode(out, offset, RecordType.Commit, txid, commitPayload);
    this.#buffer.push(out);
    this.#bufferBytes += size;
    this.#stats.commits++;
    return this.#requestDurability(true);
  }

  /** Resolves once everything appended so far is durable. */
  sync(): Promise<void> {
    return this.#requestDurability(false);
  }

  /**
   * journal_rotate: starts a new generation after a checkpoint has made every logged commit
   * durable in the tree. The first record of the generation is a checkpoint record carrying
   * `checkpointPayload`.
   */
  startGeneration(generation: JournalGeneration, checkpointPayload: Uint8Array): void {
    if (this.#open.size > 0) {
      throw failedPrecondition(`the journal cannot rotate with ${this.#open.size} transactions open`);
    }
    if (this.#writing || this.#waiters.length > 0) {
      throw failedPrecondition("the journal cannot rotate while records are being made durable");
    }
    // What is still buffered belongs to no open or committing transaction (the previous
    // generation's checkpoint record, records of aborted transactions): the new generation
    // supersedes it.
    this.#buffer = [];
    this.#bufferBytes = 0;
    this.#generation = generation;
    this.#nextLsn = generation.start;
    this.#chain = chainSeed(generation);
    this.#stats.generations++;
    this.#append(RecordType.Checkpoint, 0, checkpointPayload);
  }

  #append(type: RecordType, txid: number, payload: Uint8Array): void {
    if (this.#failure !== undefined) throw this.#failure;
    const record = new Uint8Array(RECORD_HEADER_SIZE + payload.length);
    this.#encode(record, 0, type, txid, payload);
    this.#buffer.push(record);
    this.#bufferBytes += record.length;
  }

  /** Encodes one record at `offset` of `out`, continuing the checksum chain; returns the offset after it. */
  #encode(out: Uint8Array, offset: number, type: RecordType, txid: number, payload: Uint8Array): number {
    const view = new DataView(out.buffer, out.byteOffset + offset, RECORD_HEADER_SIZE);
    out[offset] = type;
    view.setUint32(4, payload.length, true);
    setU64(view, 8, this.#nextSequence++);
    setU64(view, 16, txid);
    out.set(payload, offset + RECORD_HEADER_SIZE);
    const crc = crc32c(payload, crc32c(out.subarray(offset, offset + 24), this.#chain));
    view.setUint32(24, crc, true);
    this.#chain = crc;
    this.#stats.records++;
    this.#stats.bytesLogged += RECORD_HEADER_SIZE + payload.length;
    return offset + RECORD_HEADER_SIZE + payload.length;
  }

  #requestDurability(commit: boolean): Promise<void> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      this.#waiters.push({ commit, resolve, reject });
      if (!this.#writing) void this.#writeGroups();
    });
  }

  async #writeGroups(): Promise<void> {
    this.#writing = true;
    let waiters: Waiter[] = [];
    try {
      while (this.#waiters.length > 0) {
        waiters = this.#waiters;
        this.#waiters = [];
        if (this.#bufferBytes > 0) await this.#writeGroup();
        await this.device.flush();
        const commits = waiters.filter((w) => w.commit).length;
        if (commits > 0) this.#countGroup(commits);
        for (const waiter of waiters) waiter.resolve();
        waiters = [];
      }
    } catch (err) {
      // The outcome of the records in flight is unknown: refuse everything from now on.
      this.#failure = err instanceof AstraError
        ? err
        : new AstraError(Code.UNAVAILABLE, Errno.EIO, `journal write failed: ${String(err)}`);
      for (const waiter of [...waiters, ...this.#waiters.splice(0)]) waiter.reject(this.#failure);
    } finally {
      this.#writing = false;
    }
  }

  async #writeGroup(): Promise<void> {
    const blocks = Math.ceil(this.#bufferBytes / JOURNAL_PAYLOAD_PER_BLOCK);
    const position = this.#nextLsn - this.#generation.start;
    if (position + blocks > this.regionBlocks) {
      throw resourceExhausted(
        `the journal is full: ${blocks} blocks needed, ${
          this.regionBlocks - position
        } left until the next checkpoint`,
        {},
        Errno.ENOSPC,
      );
    }
    const groupStart = this.#nextLsn;
    const out = new Uint8Array(blocks * BLOCK_SIZE);
    const view = new DataView(out.buffer);
    let block = 0;
    let offset = BLOCK_HEADER_SIZE;
    const used = new Array<number>(blocks).fill(0);
    for (const record of this.#buffer) {
      let from = 0;
      while (from < record.length) {
        const room = BLOCK_SIZE - offset;
        if (room === 0) {
          block++;
          offset = BLOCK_HEADER_SIZE;
          continue;
        }
        const n = Math.min(room, record.length - from);
        out.set(record.subarray(from, from + n), block * BLOCK_SIZE + offset);
        offset += n;
        from += n;
        used[block] += n;
      }
    }
    for (let b = 0; b < blocks; b++) {
      const base = b * BLOCK_SIZE;
      view.setUint32(base, BLOCK_MAGIC, true);
      view.setUint32(base + 4, this.#generation.salt, true);
      setU64(view, base + 8, groupStart + b);
      setU64(view, base + 16, groupStart);
      view.setUint16(base + 24, used[b], true);
      view.setUint32(
        base + HEADER_CRC_OFFSET,
        crc32c(out.subarray(base, base + HEADER_CRC_OFFSET), this.#generation.salt),
        true,
      );
    }
    this.#buffer = [];
    this.#bufferBytes = 0;
    this.#nextLsn += blocks;
    this.#stats.blocksWritten += blocks;
    await this.device.writeBlocks(this.regionStart + position, out);
  }

  #countGroup(commits: number): void {
    this.#stats.groups++;
    this.#stats.largestGroup = Math.max(this.#stats.largestGroup, commits);
    let bucket = HISTOGRAM_BOUNDS.findIndex((bound) => commits <= bound);
    if (bucket < 0) bucket = HISTOGRAM_BOUNDS.length;
    this.#stats.groupSizeHistogram[bucket]++;
  }

  /**
   * journal_recover: reads generation `generation` and returns its committed transactions in
   * commit order; aborted and unfinished ones are discarded. Throws DATA_LOSS naming the block
   * when acknowledged records are damaged.
   */
  static async recover(
    device: BlockDevice,
    regionStart: number,
    regionBlocks: number,
    generation: JournalGeneration,
    nextSequence: number,
  ): Promise<JournalRecovery> {
    const result: JournalRecovery = {
      transactions: [],
      checkpointPayload: undefined,
      records: 0,
      discardedTransactions: 0,
      end: generation.start,
      tail: undefined,
      nextSequence,
      highestTransaction: 0,
    };
    const open = new Map<number, Uint8Array[]>();
    let chain = chainSeed(generation);
    let pending = new Uint8Array(0);
    /** LSN of the block where the first pending byte lies. */
    let pendingLsn = generation.start;
    let currentGroup = -1;
    let failedAt = -1;

    const fail = (lsn: number, reason: string) => {
      failedAt = lsn;
      result.tail = `journal block ${regionStart + (lsn - generation.start)} (lsn ${lsn}): ${reason}`;
    };

    scan: for (let position = 0; position < regionBlocks; position += READ_BATCH) {
      const count = Math.min(READ_BATCH, regionBlocks - position);
      const batch = await device.readBlocks(regionStart + position, count);
      for (let i = 0; i < count; i++) {
        const lsn = generation.start + position + i;
        const block = batch.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE);
        const header = parseBlockHeader(block, generation.salt);
        if (typeof header === "string" || header.lsn !== lsn) {
          const reason = typeof header === "string" ? header : `holds lsn ${header.lsn}`;
          if (pending.length > 0) fail(pendingLsn, `a record is cut off (${reason})`);
          else if (header === "not a journal block" || header === "salt of another generation") {
            // The normal end of the log: this generation never wrote here. Damage that merely
            // looks like this is still caught by the later-group check below.
            failedAt = lsn;
          } else fail(lsn, reason);
          break scan;
        }
        if (header.groupStart !== currentGroup) {
          if (pending.length > 0) {
            fail(pendingLsn, "a record runs past the end of its flush group");
            break scan;
          }
          currentGroup = header.groupStart;
        }
        const payload = block.subarray(BLOCK_HEADER_SIZE, BLOCK_HEADER_SIZE + header.used);
        if (pending.length === 0) pendingLsn = lsn;
        const joined = new Uint8Array(pending.length + payload.length);
        joined.set(pending);
        joined.set(payload, pending.length);
        pending = joined;
        let p = 0;
        while (pending.length - p >= RECORD_HEADER_SIZE) {
          const view = new DataView(pending.buffer, pending.byteOffset + p, RECORD_HEADER_SIZE);
          const length = view.getUint32(4, true);
          if (pending.length - p < RECORD_HEADER_SIZE + length) break;
          const headerBytes = pending.subarray(p, p + 24);
          const body = pending.subarray(p + RECORD_HEADER_SIZE, p + RECORD_HEADER_SIZE + length);
          const crc = crc32c(body, crc32c(headerBytes, chain));
          if (crc !== view.getUint32(24, true)) {
            fail(pendingLsn, "record checksum mismatch");
            break scan;
          }
          chain = crc;
          const type = pending[p] as RecordType;
          const sequence = getU64(view, 8);
          const txid = getU64(view, 16);
          const payloadCopy = body.slice();
          result.records++;
          result.nextSequence = Math.max(result.nextSequence, sequence + 1);
          result.highestTransaction = Math.max(result.highestTransaction, txid);
          switch (type) {
            case RecordType.Begin:
              open.set(txid, []);
              break;
            case RecordType.Update:
              if (!open.has(txid)) open.set(txid, []);
              open.get(txid)!.push(payloadCopy);
              break;
            case RecordType.Commit:
              result.transactions.push({ txid, updates: open.get(txid) ?? [], commitPayload: payloadCopy });
              open.delete(txid);
              break;
            case RecordType.Abort:
              if (open.delete(txid)) result.discardedTransactions++;
              break;
            case RecordType.Checkpoint:
              result.checkpointPayload ??= payloadCopy;
              break;
            default:
              fail(pendingLsn, `unknown record type ${type}`);
              break scan;
          }
          p += RECORD_HEADER_SIZE + length;
          pendingLsn = lsn;
        }
        pending = pending.slice(p);
        if (pending.length === 0) pendingLsn = lsn + 1;
        result.end = lsn + 1;
      }
    }
    if (failedAt < 0 && pending.length > 0) fail(pendingLsn, "a record is cut off at the end of the region");
    result.discardedTransactions += open.size;
    if (failedAt >= 0) {
      await Journal.#refuseIfLaterGroup(device, regionStart, regionBlocks, generation, failedAt);
    }
    return result;
  }

  /** A verified block of a later flush group beyond the damage proves the damage is not a torn tail. */
  static async #refuseIfLaterGroup(
    device: BlockDevice,
    regionStart: number,
    regionBlocks: number,
    generation: JournalGeneration,
    failedAt: number,
  ): Promise<void> {
    for (let position = failedAt - generation.start + 1; position < regionBlocks; position += READ_BATCH) {
      const count = Math.min(READ_BATCH, regionBlocks - position);
      const batch = await device.readBlocks(regionStart + position, count);
      for (let i = 0; i < count; i++) {
        const header = parseBlockHeader(
          batch.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE),
          generation.salt,
        );
        if (typeof header === "string") continue;
        if (header.lsn === generation.start + position + i && header.groupStart > failedAt) {
          const damaged = regionStart + (failedAt - generation.start);
          throw new AstraError(
            Code.DATA_LOSS,
            Errno.EUCLEAN,
            `corrupt block ${damaged}: journal block (lsn ${failedAt}) fails verification although later ` +
              `commits (from lsn ${header.groupStart}) were written after it was flushed`,
            { facts: { block: String(damaged), lsn: String(failedAt) } },
          );
        }
      }
    }
  }
}

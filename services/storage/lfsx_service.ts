// LfsxService: the LFSX engine (lfsx/volume.ts) served over the storage contract — volumes by
// name, and transactions on them under ids unique across the service.
//
// Transaction ids. The engine numbers transactions per volume. The service hands out its own ids,
// taken from the clock (milliseconds × 1024, then one more per Begin), so they also keep growing
// across a restart: a client holding an id from before it gets NOT_FOUND, never somebody else's
// transaction. Engine errors name the volume's own number, so the service prefixes them with its
// id: "transaction 1813…017 (42 on volume root): …".
//
// How a transaction ends. By Commit, by Abort, by an ABORTED failure (write conflict,
// serialization failure, deadlock victim, lock wait timeout), and also:
// - idle: past its idle timeout without a request, the engine's own timer aborts it;
// - client gone: a transaction belongs to the gRPC connection its latest request arrived on. Unary
//   calls carry no session, so "the client went away" means that connection closed: the client
//   process exited or was killed, or closed the channel (each GrpcTransport has a connection of
//   its own). A sweep
//   every second aborts such transactions, which releases their locks; a client that reconnects
//   and goes on finds its transaction ABORTED/ECANCELED and retries from Begin, as after any
//   abort. In-process callers share this process and have no connection, so for them only the
//   idle timeout applies;
// - unmount: Unmount aborts the volume's open transactions.
// Requests on an ended id answer what ended it (the ABORTED error, or FAILED_PRECONDITION once
// committed) for the last 4096 ended transactions, NOT_FOUND after that.
//
// Images. A volume on a host image file holds an exclusive advisory lock (flock) on it while
// mounted, and format and offline checks take it too, so neither another process nor `astra
// mkfs`/`astra fsck` can write or read a volume under a live mount.
import { resolve } from "node:path";
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  type BeginRequest,
  type FormatRequest,
  type FsckRequest,
  type FsckResponseSchema,
  type GetRequest,
  type GetVersionRequest,
  IsolationLevel,
  type LfsxService,
  LockMode,
  type LockRequest,
  type MountRequest,
  type RecoveryReportSchema,
  ScanDirection,
  type ScanRequest,
  type ScanResponseSchema,
  type VolumeStatisticsSchema,
  type VolumeTarget,
} from "../../gen/astra/storage/v1/lfsx_pb.ts";
import { parseSize, readEnv } from "../../lib/config.ts";
import {
  alreadyExists,
  AstraError,
  Code,
  Errno,
  failedPrecondition,
  invalidArgument,
  notFound,
  unavailable,
} from "../../lib/errors.ts";
import type { CallContext, ServiceImpl } from "../../lib/rpc.ts";
import { BLOCK_SIZE, type BlockDevice, FileBlockDevice } from "./lfsx/blockdev.ts";
import { Mutex } from "./lfsx/mutex.ts";
import { probeDevice } from "./lfsx/probe.ts";
import type { IsolationLevel as EngineIsolation } from "./lfsx/txn.ts";
import {
  type CheckpointResult,
  type MountReport,
  type ScanRequest as EngineScanRequest,
  type ScanResult,
  Volume,
  type VolumeFsckReport,
} from "./lfsx/volume.ts";
import { connectionOf, openConnections } from "./connections.ts";
import { logger } from "../../lib/log.ts";

/**
 * The volume every boot mounts: from `<data dir>/lfsx.img`, formatted on first boot, or from the
 * block device ASTRA_LFSX_DEVICE names, formatted on the first boot that finds it blank.
 */
export const DEFAULT_VOLUME = "root";
const DEFAULT_IMAGE = "lfsx.img";
/** Size of the default volume's image when first boot creates it; ASTRA_LFSX_SIZE overrides it. */
const DEFAULT_VOLUME_SIZE = "256M";
/** Names the block device ("nvme0n1", "sda") to keep the default volume on instead of the image. */
export const ROOT_DEVICE_VAR = "ASTRA_LFSX_DEVICE";
/** How often idle and disconnected transactions are looked for. */
const SWEEP_INTERVAL_MS = 1000;
/** The engine's idle timer fires at the timeout; its record is retired this much later. */
const IDLE_GRACE_MS = 500;
/** Ended transactions whose outcome is remembered for late requests. */
const ENDED_RETAINED = 4096;
/** A Scan page holds at most this many entries and about this many bytes, however high its limit. */
const MAX_SCAN_ENTRIES = 10_000;
const MAX_SCAN_BYTES = 4 * 1024 * 1024;
const VOLUME_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

const log = logger("storage");

export interface LfsxServiceOptions {
  /** Host folder of the default volume; relative image paths in requests resolve against it. */
  dataDir: string;
  /** The block layer's device of that name in 4 KiB blocks, for `device` targets; throws when there is none. */
  blockDevice: (name: string) => BlockDevice;
}

interface MountedVolume {
  readonly name: string;
  readonly volume: Volume;
  readonly device: BlockDevice;
  /** What it was mounted from, for messages: an image path or a device name. */
  readonly source: string;
  /** The backing store, however a path names it: an image's device and inode, or the device name. */
  readonly identity: string;
  /** The image's lock handle; block devices belong to the block layer and stay open. */
  readonly imageLock: Deno.FsFile | undefined;
  /** Idle timeout of transactions that set none. */
  readonly idleTimeoutMs: number;
  /** Open transactions, by the engine's id. */
  readonly transactions: Map<number, Session>;
  unmounting: boolean;
}

interface Session {
  readonly id: bigint;
  readonly mounted: MountedVolume;
  readonly engineId: number;
  readonly idleTimeoutMs: number;
  /** The gRPC connection of its latest request; undefined for in-process callers. */
  connection: string | undefined;
  /** Requests on it in progress. */
  calls: number;
  /** When its latest request ended (performance.now()). */
  lastActive: number;
}

const COMMITTED = "committed";
type Outcome = typeof COMMITTED | AstraError;

interface ResolvedTarget {
  kind: "image" | "device";
  /** Absolute image path, or device name. */
  source: string;
}

/** The request field naming an image file. */
const IMAGE_FIELD = "target.image_path";

/** Request field names for the engine's argument names. */
const FIELD_NAMES: Record<string, string> = {
  journalBlocks: "journal_blocks",
  blockCount: "create_blocks",
  device: "target",
  path: "target.image_path",
};

function renameArgument(err: unknown): unknown {
  if (err instanceof AstraError) {
    err.detail.argument = FIELD_NAMES[err.detail.argument] ?? err.detail.argument;
  }
  return err;
}

/** A host file failure as the precise status, naming the request field at fault. */
export function hostFileError(err: unknown, path: string, argument = IMAGE_FIELD): unknown {
  if (err instanceof AstraError) return err;
  if (err instanceof Deno.errors.NotFound) return notFound(argument, `no image file ${path}`);
  if (err instanceof Deno.errors.PermissionDenied || err instanceof Deno.errors.NotCapable) {
    return new AstraError(Code.PERMISSION_DENIED, Errno.EACCES, `${path}: ${err.message}`, { argument });
  }
  if (err instanceof Deno.errors.IsADirectory) {
    return invalidArgument(argument, `${path} is a directory`, Errno.EISDIR);
  }
  if (err instanceof Error) return new AstraError(Code.UNAVAILABLE, Errno.EIO, `${path}: ${err.message}`);
  return err;
}

/** A handle on an image file for its lock (creating the file when `create`). */
async function openImage(path: string, create: boolean, argument: string): Promise<Deno.FsFile> {
  try {
    return await Deno.open(path, create ? { read: true, write: true, create: true } : { read: true });
  } catch (err) {
    throw hostFileError(err, path, argument);
  }
}

async function tryLockImage(file: Deno.FsFile, path: string, argument: string): Promise<void> {
  if (!(await file.tryLock(true))) {
    throw failedPrecondition(`${path} is in use by another process`, Errno.EBUSY, argument);
  }
}

/**
 * Takes the exclusive advisory lock on an image file (creating the file when `create`); closing
 * the returned handle releases it. Fails with FAILED_PRECONDITION/EBUSY when another process holds
 * it: the volume is mounted there, or being formatted or checked.
 */
export async function lockImage(path: string, create = false, argument = IMAGE_FIELD): Promise<Deno.FsFile> {
  const file = await openImage(path, create, argument);
  try {
    await tryLockImage(file, path, argument);
  } catch (err) {
    file.close();
    throw err;
  }
  return file;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw hostFileError(err, path);
  }
}

function u64(n: number | undefined): bigint {
  return BigInt(Math.max(0, Math.trunc(n ?? 0)));
}

/** A uint64 request field as a number, at most `max`. */
function fieldNumber(value: bigint, field: string, max = Number.MAX_SAFE_INTEGER): number {
  if (value > BigInt(max)) throw invalidArgument(field, `${field} must be at most ${max}, not ${value}`);
  return Number(value);
}

function volumeNameArgument(name: string, field = "volume"): string {
  if (!name) throw invalidArgument(field, `${field} is required`);
  if (!VOLUME_NAME.test(name)) {
    throw invalidArgument(
      field,
      `volume names are 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit, not ${
        JSON.stringify(name)
      }`,
    );
  }
  return name;
}

function isolationArgument(level: IsolationLevel): EngineIsolation {
  if (level === IsolationLevel.UNSPECIFIED) return IsolationLevel.READ_COMMITTED as number as EngineIsolation;
  if (!(level in IsolationLevel)) throw invalidArgument("isolation", `unknown isolation level ${level}`);
  return level as number as EngineIsolation;
}

function directionArgument(direction: ScanDirection): "forward" | "backward" {
  switch (direction) {
    case ScanDirection.UNSPECIFIED:
    case ScanDirection.FORWARD:
      return "forward";
    case ScanDirection.BACKWARD:
      return "backward";
    default:
      throw invalidArgument("direction", `unknown scan direction ${direction}`);
  }
}

/** An engine error about `mounted`, naming the volume. */
function volumeError(mounted: MountedVolume, err: unknown): unknown {
  if (!(err instanceof AstraError)) return err;
  return new AstraError(err.code, err.errno, `volume ${mounted.name}: ${err.message}`, {
    argument: err.detail.argument,
    facts: { ...err.detail.facts, volume: mounted.name },
  });
}

/** An engine error about a transaction, naming the service's id beside the volume's own. */
function transactionError(session: Session, err: unknown): unknown {
  if (!(err instanceof AstraError)) return err;
  const message =
    `transaction ${session.id} (${session.engineId} on volume ${session.mounted.name}): ${err.message}`;
  return new AstraError(err.code, err.errno, message, {
    argument: err.detail.argument,
    facts: { ...err.detail.facts, transaction_id: String(session.id), volume: session.mounted.name },
  });
}

function aborted(session: Session, errno: Errno, why: string): AstraError {
  return new AstraError(
    Code.ABORTED,
    errno,
    `transaction ${session.id} (${session.engineId} on volume ${session.mounted.name}) was aborted: ${why}`,
    { facts: { transaction_id: String(session.id), volume: session.mounted.name } },
  );
}

function recoveryMessage(report: MountReport): MessageInitShape<typeof RecoveryReportSchema> {
  return {
    generation: u64(report.generation),
    superblockProblems: report.superblockProblems,
    recoveredTransactions: u64(report.recoveredTransactions),
    replayedUpdates: u64(report.replayedUpdates),
    discardedTransactions: u64(report.discardedTransactions),
    journalRecords: u64(report.journalRecords),
    journalTail: report.journalTail ?? "",
    durationMs: report.durationMs,
  };
}

/** The recovery report in the boot log's one line. */
function describeRecovery(report: MountReport): string {
  const parts = [
    `generation ${report.generation}`,
    `recovered ${report.recoveredTransactions} transactions (${report.replayedUpdates} updates)`,
  ];
  if (report.discardedTransactions > 0) parts.push(`discarded ${report.discardedTransactions}`);
  if (report.journalTail) parts.push(`journal tail: ${report.journalTail}`);
  if (report.superblockProblems.length) parts.push(`superblock: ${report.superblockProblems.join("; ")}`);
  parts.push(`${report.durationMs.toFixed(1)} ms`);
  return parts.join(", ");
}

function checkpointMessage(result: CheckpointResult) {
  return {
    checkpoint: {
      generation: u64(result.generation),
      nodesWritten: u64(result.nodesWritten),
      journalBlocksReleased: u64(result.journalBlocksReleased),
      durationMs: result.durationMs,
    },
  };
}

function fsckMessage(report: VolumeFsckReport): MessageInitShape<typeof FsckResponseSchema> {
  return {
    ok: report.ok,
    problems: report.problems,
    height: report.height,
    entries: u64(report.entries),
    leaves: u64(report.leaves),
    internalNodes: u64(report.internalNodes),
    overflowValues: u64(report.overflowValues),
    overflowExtents: u64(report.overflowExtents),
    overflowBlocks: u64(report.overflowBlocks),
    tableBlocks: u64(report.tableBlocks),
    usedBlocks: u64(report.usedBlocks),
    freeBlocks: u64(report.freeBlocks),
    pendingFreeBlocks: u64(report.pendingFreeBlocks),
    superblockProblems: report.superblockProblems,
  };
}

function statisticsMessage(
  name: string,
  volume: Volume,
): MessageInitShape<typeof VolumeStatisticsSchema> {
  const s = volume.statistics();
  const t = s.transactions;
  return {
    volume: name,
    uuid: s.uuid,
    label: s.label,
    blockSize: s.blockSize,
    blockCount: u64(s.blockCount),
    generation: u64(s.generation),
    readOnly: s.readOnly,
    tree: {
      height: s.tree.height,
      entries: u64(s.tree.entries),
      rootNode: u64(s.tree.root),
      leafSplits: u64(s.tree.leafSplits),
      internalSplits: u64(s.tree.internalSplits),
      leafMerges: u64(s.tree.leafMerges),
      internalMerges: u64(s.tree.internalMerges),
      borrows: u64(s.tree.borrows),
      rootSplits: u64(s.tree.rootSplits),
      rootCollapses: u64(s.tree.rootCollapses),
    },
    space: {
      dataBlocks: u64(s.space.dataBlocks),
      usedBlocks: u64(s.space.usedBlocks),
      freeBlocks: u64(s.space.freeBlocks),
      pendingFreeBlocks: u64(s.space.pendingFreeBlocks),
      nodeIds: u64(s.space.nodeIds),
      nodeTablePages: u64(s.space.nodeTablePages),
    },
    cache: {
      capacity: u64(s.cache.capacity),
      cached: u64(s.cache.cached),
      dirty: u64(s.cache.dirty),
      hits: u64(s.cache.hits),
      misses: u64(s.cache.misses),
      evictions: u64(s.cache.evictions),
      nodesWritten: u64(s.cache.nodesWritten),
      writeRequests: u64(s.cache.writeRequests),
    },
    journal: {
      capacityBlocks: u64(s.journal.capacityBlocks),
      usedBlocks: u64(s.journal.usedBlocks),
      bufferedBytes: u64(s.journal.bufferedBytes),
      records: u64(s.journal.records),
      commits: u64(s.journal.commits),
      aborts: u64(s.journal.aborts),
      groups: u64(s.journal.groups),
      largestGroup: u64(s.journal.largestGroup),
      groupSizeHistogram: s.journal.groupSizeHistogram.map(u64),
      blocksWritten: u64(s.journal.blocksWritten),
      bytesLogged: u64(s.journal.bytesLogged),
      generations: u64(s.journal.generations),
      salt: s.journal.salt >>> 0,
      generationStart: u64(s.journal.generationStart),
    },
    checkpoints: {
      count: u64(s.checkpoints.count),
      lastDurationMs: s.checkpoints.lastDurationMs,
      lastNodesWritten: u64(s.checkpoints.lastNodesWritten),
    },
    transactions: {
      active: u64(t.active),
      committing: u64(t.committing),
      committed: u64(t.committed),
      readOnlyCommits: u64(t.readOnlyCommits),
      aborted: u64(t.aborted),
      deadlockVictims: u64(t.deadlockVictims),
      lockTimeouts: u64(t.lockTimeouts),
      serializationFailures: u64(t.serializationFailures),
      writeConflicts: u64(t.writeConflicts),
      idleTimeouts: u64(t.idleTimeouts),
      versions: {
        visibleVersion: u64(t.versions.visibleVersion),
        activeSnapshots: u64(t.versions.activeSnapshots),
        oldestSnapshot: u64(t.versions.oldestSnapshot),
        chains: u64(t.versions.chains),
        versions: u64(t.versions.versions),
        versionsCreated: u64(t.versions.versionsCreated),
        versionsCollected: u64(t.versions.versionsCollected),
      },
      locks: {
        locksHeld: u64(t.locks.locksHeld),
        waiting: u64(t.locks.waiting),
        grantedImmediately: u64(t.locks.grantedImmediately),
        waits: u64(t.locks.waits),
        deadlocks: u64(t.locks.deadlocks),
        timeouts: u64(t.locks.timeouts),
      },
      serializable: {
        participants: u64(t.serializable.participants),
        retainedCommitted: u64(t.serializable.retainedCommitted),
        conflicts: u64(t.serializable.conflicts),
        serializationFailures: u64(t.serializable.serializationFailures),
        doomed: u64(t.serializable.doomed),
      },
    },
    recovery: recoveryMessage(s.recovery),
  };
}

/**
 * One page of a scan as the contract sends it: at most MAX_SCAN_BYTES of keys and values (at
 * least one entry), the continuation moved back to the last entry kept when the page is cut.
 */
function scanMessage(page: ScanResult): MessageInitShape<typeof ScanResponseSchema> {
  let bytes = 0;
  let kept = 0;
  for (const entry of page.entries) {
    bytes += entry.key.length + entry.value.length;
    if (kept > 0 && bytes > MAX_SCAN_BYTES) break;
    kept++;
  }
  if (kept === page.entries.length) {
    return { entries: page.entries, continuation: page.continuation ?? new Uint8Array() };
  }
  const entries = page.entries.slice(0, kept);
  return { entries, continuation: entries[kept - 1].key };
}

/** Serves LfsxService: the volumes mounted in this storage service and transactions on them. */
export class LfsxServer {
  readonly #dataDir: string;
  readonly #defaultVolumeBytes: number;
  /** The block device of the default volume; undefined: the image in the data folder. */
  readonly #rootDevice: string | undefined;
  readonly #blockDevice: (name: string) => BlockDevice;
  readonly #volumes = new Map<string, MountedVolume>();
  readonly #open = new Map<bigint, Session>();
  readonly #ended = new Map<bigint, Outcome>();
  /** Format, mount, unmount and offline checks, one at a time: each looks at what is mounted. */
  readonly #admin = new Mutex();
  #lastId = 0;
  /** Volumes may be missing while the boot step mounts them or stop unmounts them: retry then. */
  #phase: "starting" | "serving" | "stopping" = "starting";
  #sweeper: ReturnType<typeof setInterval> | undefined;

  constructor(options: LfsxServiceOptions) {
    this.#dataDir = resolve(options.dataDir);
    this.#defaultVolumeBytes = parseSize(readEnv("ASTRA_LFSX_SIZE") ?? DEFAULT_VOLUME_SIZE);
    this.#rootDevice = readEnv(ROOT_DEVICE_VAR);
    this.#blockDevice = options.blockDevice;
  }

  /** The RPC handlers, for bindService. */
  handlers(): ServiceImpl<typeof LfsxService> {
    return {
      format: (req) => this.#admin.run(() => this.#format(req)),
      mount: (req) => this.#mount(req),
      unmount: (req) => this.#unmount(volumeNameArgument(req.volume)),
      checkpoint: async (req) => {
        const mounted = this.#mounted(req.volume);
        return checkpointMessage(await this.#onVolume(mounted, () => mounted.volume.checkpoint()));
      },
      rotateJournal: async (req) => {
        const mounted = this.#mounted(req.volume);
        return checkpointMessage(await this.#onVolume(mounted, () => mounted.volume.rotateJournal()));
      },
      getVolumeStatistics: (req) => {
        const mounted = this.#mounted(req.volume);
        return { statistics: statisticsMessage(mounted.name, mounted.volume) };
      },
      fsck: (req) => this.#fsck(req),
      begin: (req, ctx) => this.#begin(req, ctx),
      get: (req, ctx) => this.#get(req, ctx),
      put: (req, ctx) =>
        this.#onTransaction(req.transactionId, ctx, async (s) => {
          await s.mounted.volume.put(s.engineId, req.key, req.value);
          return {};
        }),
      delete: (req, ctx) =>
        this.#onTransaction(req.transactionId, ctx, async (s) => ({
          found: await s.mounted.volume.delete(s.engineId, req.key),
        })),
      scan: (req, ctx) => this.#scan(req, ctx),
      savepoint: (req, ctx) =>
        this.#onTransaction(req.transactionId, ctx, async (s) => ({
          savepoint: await s.mounted.volume.savepoint(s.engineId),
        })),
      rollbackToSavepoint: (req, ctx) =>
        this.#onTransaction(req.transactionId, ctx, async (s) => {
          if (req.savepoint === 0) throw invalidArgument("savepoint", "savepoint is required");
          await s.mounted.volume.rollbackToSavepoint(s.engineId, req.savepoint);
          return {};
        }),
      commit: (req, ctx) =>
        this.#onTransaction(req.transactionId, ctx, async (s) => {
          const result = await s.mounted.volume.commit(s.engineId);
          this.#end(s, COMMITTED);
          return { version: u64(result.version), readOnly: result.readOnly };
        }),
      abort: (req, ctx) => this.#abort(req.transactionId, ctx),
      getVersion: (req, ctx) => this.#getVersion(req, ctx),
      lock: (req, ctx) => this.#lock(req, ctx),
      getLockGraph: (req) => {
        const mounted = this.#mounted(req.volume);
        const graph = mounted.volume.lockGraph();
        const id = (engineId: number) => this.#serviceId(mounted, engineId);
        return {
          waits: graph.edges.map((edge) => ({
            transactionId: id(edge.waiter),
            key: edge.key,
            mode: edge.mode as number as LockMode,
            waitsFor: edge.waitsFor.map(id),
            waitedMs: edge.waitedMs,
          })),
          cycles: graph.cycles.map((cycle) => ({ transactionIds: cycle.map(id) })),
        };
      },
    };
  }

  /**
   * The boot step: mounts the default volume (formatting its image on first boot) and starts the
   * sweep. Resolves with the part of the boot line that reports it.
   */
  async start(): Promise<string> {
    this.#phase = "starting";
    const line = await this.#admin.run(() => this.#mountDefault());
    this.#phase = "serving";
    const sweeper = setInterval(() => this.#sweep(), SWEEP_INTERVAL_MS);
    Deno.unrefTimer(sweeper);
    this.#sweeper = sweeper;
    return line;
  }

  /** Unmounts every volume: open transactions are aborted, each volume is checkpointed. */
  async stop(): Promise<void> {
    this.#phase = "stopping";
    clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    await this.#admin.run(async () => {
      for (const mounted of [...this.#volumes.values()]) {
        try {
          await this.#detach(mounted);
        } catch (err) {
          const error = err instanceof AstraError ? err.describe() : String(err);
          log.error("volume did not unmount cleanly; the next mount recovers it", {
            volume: mounted.name,
            error,
          });
        }
      }
    });
  }

  // ---- volumes --------------------------------------------------------------------------------

  async #mountDefault(): Promise<string> {
    if (this.#rootDevice !== undefined) return await this.#mountDefaultDevice(this.#rootDevice);
    await Deno.mkdir(this.#dataDir, { recursive: true }).catch((err) => {
      throw hostFileError(err, this.#dataDir);
    });
    const path = resolve(this.#dataDir, DEFAULT_IMAGE);
    let formatted = "";
    if (!(await exists(path))) {
      const blocks = Math.floor(this.#defaultVolumeBytes / BLOCK_SIZE);
      await this.#formatDefault(path, blocks);
      formatted = `formatted ${blocks} blocks, `;
    }
    const mounted = await this.#attach(DEFAULT_VOLUME, { kind: "image", source: path }, { readOnly: false });
    return `lfsx volume ${DEFAULT_VOLUME} on ${path}: ${formatted}${
      describeRecovery(mounted.volume.mountReport)
    }`;
  }

  /**
   * The default volume on a block device: formatted when the device is blank, mounted when it holds
   * an LFSX volume, refused when it holds anything else. A first boot that dies while formatting
   * leaves no superblock (it is written last) and zeros over the start of the device (the journal
   * region is zeroed first; the tree starts beyond the first MiB on any device above 8 MiB), so the
   * next boot finds the device blank again and formats it afresh.
   */
  async #mountDefaultDevice(name: string): Promise<string> {
    let device: BlockDevice;
    try {
      device = this.#unmountedDevice(name).device;
    } catch (err) {
      if (!(err instanceof AstraError)) throw err;
      throw new AstraError(err.code, err.errno, `${ROOT_DEVICE_VAR}=${name}: ${err.message}`, {
        facts: { device: name },
      });
    }
    const contents = await probeDevice(device);
    if (contents.kind === "other") {
      throw new AstraError(
        Code.FAILED_PRECONDITION,
        Errno.ENOTEMPTY,
        `${ROOT_DEVICE_VAR}=${name}: ${name} holds data that is not an LFSX volume (byte ${contents.offset} ` +
          `is not zero), and the root volume is formatted only onto a blank device; format it ` +
          `explicitly (./astra mkfs --device ${name}, with the system booted without ${ROOT_DEVICE_VAR}) ` +
          `or name another device`,
        { facts: { device: name, offset: String(contents.offset) } },
      );
    }
    let formatted = "";
    if (contents.kind === "blank") {
      const result = await Volume.format(device, { label: DEFAULT_VOLUME });
      formatted = `formatted ${result.blockCount} blocks, `;
    }
    const mounted = await this.#attach(DEFAULT_VOLUME, { kind: "device", source: name }, { readOnly: false });
    return `lfsx volume ${DEFAULT_VOLUME} on ${name}: ${formatted}${
      describeRecovery(mounted.volume.mountReport)
    }`;
  }

  /**
   * Formats the default image under a temporary name and renames it into place, so a crash during
   * the first boot's format leaves no half-formatted volume for the next boot to trip over.
   */
  async #formatDefault(path: string, blocks: number): Promise<void> {
    const scratch = `${path}.formatting`;
    const lock = await lockImage(scratch, true);
    try {
      const device = await FileBlockDevice.create(scratch, blocks).catch((err) => {
        throw hostFileError(err, scratch);
      });
      try {
        await Volume.format(device, { label: DEFAULT_VOLUME });
      } finally {
        await device.close();
      }
      await Deno.rename(scratch, path);
      const dir = await Deno.open(this.#dataDir, { read: true });
      try {
        await dir.sync();
      } finally {
        dir.close();
      }
    } catch (err) {
      throw hostFileError(err, scratch);
    } finally {
      lock.close();
    }
  }

  #resolveTarget(target: VolumeTarget | undefined, field = "target"): ResolvedTarget {
    switch (target?.target.case) {
      case "imagePath":
        if (!target.target.value) throw invalidArgument(`${field}.image_path`, "image_path is empty");
        return { kind: "image", source: resolve(this.#dataDir, target.target.value) };
      case "device":
        if (!target.target.value) throw invalidArgument(`${field}.device`, "device is empty");
        return { kind: "device", source: target.target.value };
      default:
        throw invalidArgument(field, `${field} needs an image_path or a device`);
    }
  }

  #checkNotMounted(identity: string, source: string): void {
    for (const mounted of this.#volumes.values()) {
      if (mounted.identity === identity) {
        throw failedPrecondition(
          `${source} is mounted as volume ${mounted.name}; unmount it first`,
          Errno.EBUSY,
          "target",
        );
      }
    }
  }

  /** A block device no volume of this service is mounted from. */
  #unmountedDevice(name: string): { device: BlockDevice; identity: string } {
    const identity = `device ${name}`;
    this.#checkNotMounted(identity, name);
    return { device: this.#blockDevice(name), identity };
  }

  /**
   * Locks an image no volume of this service is mounted from (creating the file when `create`).
   * Its identity is that of the file opened — device and inode — however the path names it.
   */
  async #claimImage(path: string, create: boolean): Promise<{ lock: Deno.FsFile; identity: string }> {
    const lock = await openImage(path, create, IMAGE_FIELD);
    try {
      const info = await lock.stat();
      const identity = `image ${info.dev}:${info.ino}`;
      // This process's own mounts first: its lock would otherwise read as another process's.
      this.#checkNotMounted(identity, path);
      await tryLockImage(lock, path, IMAGE_FIELD);
      return { lock, identity };
    } catch (err) {
      lock.close();
      throw err;
    }
  }

  async #format(req: FormatRequest) {
    const target = this.#resolveTarget(req.target);
    const createBlocks = fieldNumber(req.createBlocks, "create_blocks", 0xffff_ffff);
    const options = { journalBlocks: req.journalBlocks || undefined, label: req.label };
    let result;
    if (target.kind === "device") {
      if (createBlocks > 0) {
        throw invalidArgument("create_blocks", "create_blocks applies to image targets only");
      }
      result = await Volume.format(this.#unmountedDevice(target.source).device, options).catch((err) => {
        throw renameArgument(err);
      });
    } else {
      const { lock } = await this.#claimImage(target.source, createBlocks > 0);
      try {
        const device = await (createBlocks > 0
          ? FileBlockDevice.create(target.source, createBlocks)
          : FileBlockDevice.open(target.source)).catch((err) => {
            throw renameArgument(hostFileError(err, target.source));
          });
        try {
          result = await Volume.format(device, options).catch((err) => {
            throw renameArgument(err);
          });
        } finally {
          await device.close();
        }
      } finally {
        lock.close();
      }
    }
    return {
      uuid: result.uuid,
      label: result.label,
      blockCount: u64(result.blockCount),
      journalBlocks: result.journalBlocks,
      firstDataBlock: u64(result.firstDataBlock),
    };
  }

  async #mount(req: MountRequest) {
    const name = volumeNameArgument(req.volume);
    return await this.#admin.run(async () => {
      if (this.#volumes.has(name)) throw alreadyExists("volume", `a volume named ${name} is already mounted`);
      const target = this.#resolveTarget(req.target);
      const mounted = await this.#attach(name, target, {
        readOnly: req.readOnly,
        cacheNodes: req.cacheNodes || undefined,
        lockTimeoutMs: req.lockTimeoutMs || undefined,
        idleTimeoutMs: req.idleTimeoutMs || undefined,
      });
      log.info("volume mounted", {
        volume: name,
        source: target.source,
        readOnly: req.readOnly,
        recovery: describeRecovery(mounted.volume.mountReport),
      });
      return {
        volume: name,
        uuid: mounted.volume.uuid,
        label: mounted.volume.label,
        recovery: recoveryMessage(mounted.volume.mountReport),
      };
    });
  }

  /** Opens `target`, mounts the volume on it (recovery) and registers it as `name`. Under #admin. */
  async #attach(
    name: string,
    target: ResolvedTarget,
    options: { readOnly: boolean; cacheNodes?: number; lockTimeoutMs?: number; idleTimeoutMs?: number },
  ): Promise<MountedVolume> {
    let device: BlockDevice;
    let identity: string;
    let imageLock: Deno.FsFile | undefined;
    if (target.kind === "device") {
      ({ device, identity } = this.#unmountedDevice(target.source));
    } else {
      ({ lock: imageLock, identity } = await this.#claimImage(target.source, false));
      try {
        device = await FileBlockDevice.open(target.source, { readOnly: options.readOnly });
      } catch (err) {
        imageLock.close();
        throw renameArgument(hostFileError(err, target.source));
      }
    }
    let volume: Volume;
    try {
      volume = await Volume.mount(device, options);
    } catch (err) {
      if (imageLock) {
        await device.close();
        imageLock.close();
      }
      throw err;
    }
    const mounted: MountedVolume = {
      name,
      volume,
      device,
      source: target.source,
      identity,
      imageLock,
      idleTimeoutMs: options.idleTimeoutMs ?? 0,
      transactions: new Map(),
      unmounting: false,
    };
    this.#volumes.set(name, mounted);
    return mounted;
  }

  async #unmount(name: string) {
    return await this.#admin.run(async () => {
      const mounted = this.#volumes.get(name);
      if (!mounted) throw notFound("volume", `no volume ${name} is mounted`, Errno.ENODEV);
      const transactionsAborted = await this.#detach(mounted);
      log.info("volume unmounted", { volume: name, source: mounted.source, transactionsAborted });
      return { transactionsAborted: u64(transactionsAborted) };
    });
  }

  /** Unmounts a volume (aborting its transactions, checkpointing) and lets go of it. Under #admin. */
  async #detach(mounted: MountedVolume): Promise<number> {
    mounted.unmounting = true;
    try {
      return (await mounted.volume.unmount()).transactionsAborted;
    } finally {
      if (mounted.imageLock) {
        await mounted.device.close();
        mounted.imageLock.close();
      }
      this.#volumes.delete(mounted.name);
      for (const session of [...mounted.transactions.values()]) {
        this.#end(session, aborted(session, Errno.ECANCELED, `volume ${mounted.name} was unmounted`));
      }
    }
  }

  #mounted(name: string): MountedVolume {
    volumeNameArgument(name);
    const mounted = this.#volumes.get(name);
    if (!mounted && this.#phase !== "serving") {
      throw unavailable(`volume ${name} is not mounted: the storage service is ${this.#phase}`);
    }
    if (!mounted) throw notFound("volume", `no volume ${name} is mounted`, Errno.ENODEV);
    if (mounted.unmounting) {
      throw failedPrecondition(`volume ${name} is being unmounted`, Errno.EBUSY, "volume");
    }
    return mounted;
  }

  async #onVolume<T>(mounted: MountedVolume, op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      throw volumeError(mounted, err);
    }
  }

  async #fsck(req: FsckRequest) {
    switch (req.subject.case) {
      case "volume": {
        const mounted = this.#mounted(req.subject.value);
        return fsckMessage(await this.#onVolume(mounted, () => mounted.volume.fsck()));
      }
      case "target": {
        const subject = req.subject.value;
        return await this.#admin.run(async () => {
          const target = this.#resolveTarget(subject, "subject.target");
          if (target.kind === "device") return await checkVolume(this.#unmountedDevice(target.source).device);
          const { lock } = await this.#claimImage(target.source, false);
          try {
            const device = await FileBlockDevice.open(target.source, { readOnly: true }).catch((err) => {
              throw renameArgument(hostFileError(err, target.source));
            });
            try {
              return await checkVolume(device);
            } finally {
              await device.close();
            }
          } finally {
            lock.close();
          }
        });
      }
      default:
        throw invalidArgument("subject", "Fsck needs a mounted volume's name or a target");
    }
  }

  // ---- transactions ---------------------------------------------------------------------------

  #nextId(): bigint {
    this.#lastId = Math.max(this.#lastId + 1, Date.now() * 1024);
    return BigInt(this.#lastId);
  }

  #begin(req: BeginRequest, ctx: CallContext) {
    const mounted = this.#mounted(req.volume);
    const isolation = isolationArgument(req.isolation);
    let info;
    try {
      info = mounted.volume.begin({
        isolation,
        idleTimeoutMs: req.idleTimeoutMs || undefined,
        lockTimeoutMs: req.lockTimeoutMs || undefined,
      });
    } catch (err) {
      throw volumeError(mounted, err);
    }
    const session: Session = {
      id: this.#nextId(),
      mounted,
      engineId: info.id,
      idleTimeoutMs: req.idleTimeoutMs || mounted.idleTimeoutMs,
      connection: connectionOf(ctx.peer),
      calls: 0,
      lastActive: performance.now(),
    };
    this.#open.set(session.id, session);
    mounted.transactions.set(info.id, session);
    return {
      transactionId: session.id,
      isolation: req.isolation,
      effectiveIsolation: info.effectiveIsolation as number as IsolationLevel,
    };
  }

  /** The open transaction `id`; for an ended one, what ended it. */
  #session(id: bigint): Session {
    if (id === 0n) throw invalidArgument("transaction_id", "transaction_id is required");
    const session = this.#open.get(id);
    if (session) {
      if (session.mounted.unmounting) {
        const reason = aborted(session, Errno.ECANCELED, `volume ${session.mounted.name} was unmounted`);
        this.#end(session, reason);
        throw reason;
      }
      return session;
    }
    const outcome = this.#ended.get(id);
    if (outcome === COMMITTED) {
      throw failedPrecondition(`transaction ${id} has already committed`, Errno.EINVAL, "transaction_id");
    }
    if (outcome) throw outcome;
    throw notFound("transaction_id", `no transaction ${id}`);
  }

  /**
   * Runs one request of transaction `id`. The request's connection becomes the transaction's; an
   * ABORTED failure ends it.
   */
  async #onTransaction<T>(id: bigint, ctx: CallContext, op: (session: Session) => Promise<T>): Promise<T> {
    const session = this.#session(id);
    session.connection = connectionOf(ctx.peer);
    session.calls++;
    try {
      return await op(session);
    } catch (err) {
      const failure = transactionError(session, err);
      if (failure instanceof AstraError && failure.code === Code.ABORTED) this.#end(session, failure);
      throw failure;
    } finally {
      session.calls--;
      session.lastActive = performance.now();
    }
  }

  /** Records how a transaction ended; a later outcome (a commit finishing under an unmount) wins. */
  #end(session: Session, outcome: Outcome): void {
    this.#open.delete(session.id);
    session.mounted.transactions.delete(session.engineId);
    this.#ended.delete(session.id);
    this.#ended.set(session.id, outcome);
    if (this.#ended.size > ENDED_RETAINED) this.#ended.delete(this.#ended.keys().next().value!);
  }

  #serviceId(mounted: MountedVolume, engineId: number): bigint {
    const session = mounted.transactions.get(engineId);
    // Every engine transaction of a mounted volume was begun here and is open until the engine has
    // ended it, which releases its locks: a transaction in the lock graph is always known.
    if (!session) {
      throw new AstraError(
        Code.INTERNAL,
        Errno.EIO,
        `volume ${mounted.name}'s lock graph names transaction ${engineId}, which the service does not know`,
      );
    }
    return session.id;
  }

  async #get(req: GetRequest, ctx: CallContext) {
    const found = (value: Uint8Array | undefined) => ({ found: value !== undefined, value });
    switch (req.scope.case) {
      case "transactionId":
        return await this.#onTransaction(
          req.scope.value,
          ctx,
          async (s) => found(await s.mounted.volume.get(s.engineId, req.key)),
        );
      case "volume": {
        const mounted = this.#mounted(req.scope.value);
        return found(await this.#onVolume(mounted, () => mounted.volume.read(req.key)));
      }
      default:
        throw invalidArgument("scope", "Get needs a transaction_id or a volume");
    }
  }

  async #scan(req: ScanRequest, ctx: CallContext) {
    if (req.limit < 1) throw invalidArgument("limit", "limit must be at least 1");
    const request: EngineScanRequest = {
      start: req.start,
      end: req.end,
      limit: Math.min(req.limit, MAX_SCAN_ENTRIES),
      direction: directionArgument(req.direction),
      continuation: req.continuation,
    };
    switch (req.scope.case) {
      case "transactionId":
        return scanMessage(
          await this.#onTransaction(req.scope.value, ctx, (s) => s.mounted.volume.scan(s.engineId, request)),
        );
      case "volume": {
        const mounted = this.#mounted(req.scope.value);
        return scanMessage(await this.#onVolume(mounted, () => mounted.volume.scanLatest(request)));
      }
      default:
        throw invalidArgument("scope", "Scan needs a transaction_id or a volume");
    }
  }

  /** Aborting an aborted transaction succeeds; a committed one cannot be aborted (#session says so). */
  async #abort(id: bigint, ctx: CallContext) {
    if (this.#ended.get(id) instanceof AstraError) return {};
    try {
      return await this.#onTransaction(id, ctx, (s) => {
        s.mounted.volume.abort(s.engineId);
        this.#end(s, aborted(s, Errno.ECANCELED, "by request"));
        return Promise.resolve({});
      });
    } catch (err) {
      // Something else aborted it just now (its volume's unmount, noticed by this request).
      if (this.#ended.get(id) === err) return {};
      throw err;
    }
  }

  async #getVersion(req: GetVersionRequest, ctx: CallContext) {
    const version = fieldNumber(req.version, "version");
    return await this.#onTransaction(req.transactionId, ctx, async (s) => {
      const read = await s.mounted.volume.getVersion(s.engineId, req.key, version);
      return { found: read.found, value: read.value, version: u64(read.version), readAt: u64(read.readAt) };
    });
  }

  async #lock(req: LockRequest, ctx: CallContext) {
    if (req.mode !== LockMode.SHARED && req.mode !== LockMode.EXCLUSIVE) {
      throw invalidArgument("mode", `mode must be LOCK_MODE_SHARED or LOCK_MODE_EXCLUSIVE, not ${req.mode}`);
    }
    return await this.#onTransaction(req.transactionId, ctx, async (s) => {
      await s.mounted.volume.lock(s.engineId, req.key, req.mode as number);
      return {};
    });
  }

  // ---- idle and disconnected transactions ----------------------------------------------------

  #sweep(): void {
    try {
      const now = performance.now();
      let watched = false;
      for (const session of [...this.#open.values()]) {
        const idle = session.idleTimeoutMs > 0 && session.calls === 0 &&
          now - session.lastActive > session.idleTimeoutMs + IDLE_GRACE_MS;
        if (idle) {
          this.#retire(session, aborted(session, Errno.ETIMEDOUT, `idle for ${session.idleTimeoutMs} ms`));
        } else if (session.connection !== undefined) {
          watched = true;
        }
      }
      if (!watched) return;
      const open = openConnections();
      if (!open) return;
      for (const session of [...this.#open.values()]) {
        if (session.connection !== undefined && !open.has(session.connection)) {
          this.#retire(
            session,
            aborted(session, Errno.ECANCELED, `its client's connection ${session.connection} closed`),
          );
        }
      }
    } catch (err) {
      log.warn("transaction sweep failed", { error: err instanceof Error ? err.message : String(err) });
    }
  }

  /**
   * Aborts a transaction the service gives up on (the engine has already aborted an idle one: then
   * this only confirms it). One that is committing is left to its commit; one the engine refuses
   * otherwise (forgotten long ago, or its volume failed or is unmounting) is no longer active there.
   */
  #retire(session: Session, reason: AstraError): void {
    try {
      session.mounted.volume.abort(session.engineId);
    } catch (err) {
      if (!(err instanceof AstraError)) throw err;
      if (err.errno === Errno.EBUSY) return;
    }
    this.#end(session, reason);
  }
}

/** Volume.check, with a volume too damaged to mount reported as a failed check naming why. */
async function checkVolume(device: BlockDevice) {
  try {
    return fsckMessage(await Volume.check(device));
  } catch (err) {
    if (!(err instanceof AstraError) || err.code !== Code.DATA_LOSS) throw err;
    return fsckMessage({
      ok: false,
      problems: [`the volume cannot be mounted: ${err.message}`],
      height: 0,
      entries: 0,
      leaves: 0,
      internalNodes: 0,
      overflowValues: 0,
      overflowExtents: 0,
      overflowBlocks: 0,
      tableBlocks: 0,
      usedBlocks: 0,
      freeBlocks: 0,
      pendingFreeBlocks: 0,
      superblockProblems: [],
    });
  }
}

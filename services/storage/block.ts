// The block layer over the AHCI and NVMe drivers: every disk the drivers find becomes a block
// device named as Linux names it (sd<letters> for a SATA disk behind AHCI, nvme<c>n<ns> for an
// NVMe namespace), with a request queue that bounds what is in flight to the driver, per-device
// counters and latency figures, and a last-resort deadline on every request so that nothing a
// caller waits for can hang. Devices come and go with hot plug; a device that disappears fails
// what is in flight on it at once. A device also offers the interface LFSX runs on (blockSize,
// blockCount, readBlocks, writeBlocks, flush, close), in its own block size or in 4 KiB blocks.
import { AstraError, Code, Errno, invalidArgument, notFound, outOfRange } from "../../lib/errors.ts";
import { logger } from "../../lib/log.ts";

const log = logger("storage");

export type DeviceDriver = "ahci" | "nvme";

/** Largest transfer of one block request (the contract's message limit). */
export const MAX_REQUEST_BYTES = 16 * 1024 * 1024;
/** A request not answered within this fails with ETIMEDOUT, whatever the driver is doing. */
export const DEFAULT_REQUEST_DEADLINE_MS = 180_000;
const LATENCY_SAMPLES = 1024;

/** What a driver reports about a disk it drives. */
export interface DeviceIdentity {
  driver: DeviceDriver;
  blockSize: number;
  blockCount: number;
  model: string;
  serial: string;
  firmware: string;
  /** AHCI port, or NVMe namespace id. */
  portOrNamespace: number;
  /** The NVMe controller of an nvme<c>n<ns> device (0 for AHCI). */
  nvmeController: number;
  /** Commands the device takes at once. */
  queueDepth: number;
  volatileWriteCache: boolean;
  /** 512 bytes of ATA IDENTIFY DEVICE, or 4096 of NVMe Identify Namespace. */
  raw: Uint8Array;
}

/** Counts a driver keeps for one request: retries of transient errors and timeouts. */
export interface IoEvents {
  retry(): void;
  timeout(): void;
}

/** One disk as its driver serves it. */
export interface BlockBackend {
  readonly identity: DeviceIdentity;
  read(lba: number, count: number, events: IoEvents): Promise<Uint8Array>;
  write(lba: number, data: Uint8Array, fua: boolean, events: IoEvents): Promise<void>;
  flush(events: IoEvents): Promise<void>;
  /** Resets the port or controller; resolves with the requests that were retried. */
  reset(): Promise<number>;
}

export interface LatencySummary {
  count: number;
  meanMicros: number;
  p50Micros: number;
  p99Micros: number;
  maxMicros: number;
}

export interface DeviceStatistics {
  device: string;
  reads: number;
  writes: number;
  flushes: number;
  blocksRead: number;
  blocksWritten: number;
  retries: number;
  errors: number;
  resets: number;
  timeouts: number;
  queued: number;
  maxQueued: number;
  meanLatencyMicros: number;
  readLatency: LatencySummary;
  writeLatency: LatencySummary;
  flushLatency: LatencySummary;
}

/** Latency of one kind of request: totals, and the most recent samples for percentiles. */
class LatencyRecord {
  count = 0;
  #sum = 0;
  #max = 0;
  readonly #samples = new Float64Array(LATENCY_SAMPLES);

  add(micros: number): void {
    this.#samples[this.count % LATENCY_SAMPLES] = micros;
    this.count++;
    this.#sum += micros;
    if (micros > this.#max) this.#max = micros;
  }

  get sum(): number {
    return this.#sum;
  }

  summary(): LatencySummary {
    const n = Math.min(this.count, LATENCY_SAMPLES);
    if (n === 0) return { count: 0, meanMicros: 0, p50Micros: 0, p99Micros: 0, maxMicros: 0 };
    const sorted = this.#samples.slice(0, n).sort();
    const at = (q: number) => sorted[Math.min(n - 1, Math.floor(q * n))];
    return {
      count: this.count,
      meanMicros: this.#sum / this.count,
      p50Micros: at(0.5),
      p99Micros: at(0.99),
      maxMicros: this.#max,
    };
  }
}

interface Tracked {
  started: number;
  fail(err: AstraError): void;
}

/**
 * A block device: the request queue in front of one disk. At most `queueDepth` requests reach
 * the driver at once; the rest wait their turn in arrival order.
 */
export class BlockDevice {
  readonly blockSize: number;
  readonly blockCount: number;
  #online = true;
  #inflight = 0;
  readonly #waiting: (() => void)[] = [];
  readonly #tracked = new Set<Tracked>();
  readonly #counts = {
    reads: 0,
    writes: 0,
    flushes: 0,
    blocksRead: 0,
    blocksWritten: 0,
    retries: 0,
    errors: 0,
    resets: 0,
    timeouts: 0,
    maxQueued: 0,
  };
  readonly #latency = { read: new LatencyRecord(), write: new LatencyRecord(), flush: new LatencyRecord() };
  readonly #events: IoEvents = {
    retry: () => this.#counts.retries++,
    timeout: () => this.#counts.timeouts++,
  };

  constructor(
    readonly name: string,
    readonly backend: BlockBackend,
    readonly deadlineMs: number,
  ) {
    this.blockSize = backend.identity.blockSize;
    this.blockCount = backend.identity.blockCount;
  }

  get identity(): DeviceIdentity {
    return this.backend.identity;
  }

  get online(): boolean {
    return this.#online;
  }

  get queued(): number {
    return this.#inflight + this.#waiting.length;
  }

  /** Reads `count` blocks from `lba`. */
  readBlocks(lba: number, count: number): Promise<Uint8Array> {
    try {
      this.#checkRange(lba, count);
      if (count * this.blockSize > MAX_REQUEST_BYTES) {
        throw invalidArgument("count", `at most ${MAX_REQUEST_BYTES / this.blockSize} blocks per request`);
      }
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#request("read", lba, async () => {
      const data = await this.backend.read(lba, count, this.#events);
      this.#counts.reads++;
      this.#counts.blocksRead += count;
      return data;
    });
  }

  /** Writes whole blocks at `lba`; with `fua` they are on stable media when this resolves. */
  writeBlocks(lba: number, data: Uint8Array, options: { fua?: boolean } = {}): Promise<number> {
    const count = data.length / this.blockSize;
    try {
      if (data.length === 0 || data.length % this.blockSize !== 0) {
        throw invalidArgument("data", `a write is a whole number of ${this.blockSize}-byte blocks`);
      }
      if (data.length > MAX_REQUEST_BYTES) {
        throw invalidArgument("data", `at most ${MAX_REQUEST_BYTES} bytes per request`);
      }
      this.#checkRange(lba, count);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#request("write", lba, async () => {
      await this.backend.write(lba, data, options.fua ?? false, this.#events);
      this.#counts.writes++;
      this.#counts.blocksWritten += count;
      return count;
    });
  }

  /** Makes every completed write stable. */
  flush(): Promise<void> {
    return this.#request("flush", null, async () => {
      await this.backend.flush(this.#events);
      this.#counts.flushes++;
    });
  }

  /** Resets the device's port or controller; requests in flight are retried by the driver. */
  async reset(): Promise<number> {
    this.#checkOnline();
    this.#counts.resets++;
    return await this.backend.reset();
  }

  /** LFSX's close: everything written so far is made stable. */
  async close(): Promise<void> {
    if (this.#online) await this.flush();
  }

  statistics(): DeviceStatistics {
    const { read, write, flush } = this.#latency;
    const total = read.count + write.count + flush.count;
    return {
      device: this.name,
      ...this.#counts,
      queued: this.queued,
      meanLatencyMicros: total === 0 ? 0 : (read.sum + write.sum + flush.sum) / total,
      readLatency: read.summary(),
      writeLatency: write.summary(),
      flushLatency: flush.summary(),
    };
  }

  /** The device is gone (hot unplug): requests in flight and waiting fail with ENODEV. */
  goOffline(reason: string): void {
    if (!this.#online) return;
    this.#online = false;
    const err = new AstraError(
      Code.FAILED_PRECONDITION,
      Errno.ENODEV,
      `${this.name} was removed: ${reason}`,
      {
        facts: { device: this.name },
      },
    );
    for (const t of [...this.#tracked]) t.fail(err);
    for (const wake of this.#waiting.splice(0)) wake();
  }

  /** Fails requests that have outlived the deadline (the drivers' own timeouts should come first). */
  expire(now: number): void {
    for (const t of [...this.#tracked]) {
      if (now - t.started < this.deadlineMs) continue;
      this.#counts.timeouts++;
      t.fail(
        new AstraError(
          Code.DEADLINE_EXCEEDED,
          Errno.ETIMEDOUT,
          `${this.name}: no answer within ${this.deadlineMs} ms`,
          {
            facts: { device: this.name },
          },
        ),
      );
    }
  }

  /** A view of this device in other blocks (e.g. LFSX's 4 KiB ones over 512-byte sectors). */
  withBlockSize(blockSize: number): BlockDeviceView {
    return new BlockDeviceView(this, blockSize);
  }

  #checkOnline(): void {
    if (!this.#online) throw this.#removedError();
  }

  #removedError(): AstraError {
    return new AstraError(Code.FAILED_PRECONDITION, Errno.ENODEV, `${this.name} was removed`, {
      argument: "device",
    });
  }

  #checkRange(lba: number, count: number): void {
    this.#checkOnline();
    if (!Number.isSafeInteger(lba) || lba < 0) throw invalidArgument("lba", `bad LBA ${lba}`);
    if (!Number.isInteger(count) || count < 1) {
      throw invalidArgument("count", `at least one block, not ${count}`);
    }
    if (lba + count > this.blockCount) {
      throw outOfRange(
        "lba",
        `blocks ${lba}..${lba + count - 1} lie beyond ${this.name}'s ${this.blockCount} blocks`,
        Errno.ENXIO,
      );
    }
  }

  async #slot(): Promise<void> {
    while (this.#inflight >= this.#depth) {
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
      this.#checkOnline();
    }
    this.#inflight++;
  }

  get #depth(): number {
    return Math.max(1, this.backend.identity.queueDepth);
  }

  #release(): void {
    this.#inflight--;
    this.#waiting.shift()?.();
  }

  #request<T>(kind: "read" | "write" | "flush", lba: number | null, run: () => Promise<T>): Promise<T> {
    if (!this.#online) return Promise.reject(this.#removedError());
    if (this.queued + 1 > this.#counts.maxQueued) this.#counts.maxQueued = this.queued + 1;
    if (this.#inflight < this.#depth) {
      this.#inflight++;
      return this.#issue(kind, lba, run);
    }
    return this.#slot().then(() => this.#issue(kind, lba, run));
  }

  /**
   * Runs a request that has its slot. It settles with the driver's answer, or earlier when the
   * device goes away or the deadline passes (the driver's late answer is then dropped).
   */
  #issue<T>(kind: "read" | "write" | "flush", lba: number | null, run: () => Promise<T>): Promise<T> {
    const started = performance.now();
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const tracked: Tracked = { started, fail: (err) => fail(err) };
      const done = () => {
        settled = true;
        this.#tracked.delete(tracked);
        this.#release();
      };
      const fail = (err: unknown) => {
        if (settled) return;
        done();
        this.#counts.errors++;
        if (err instanceof AstraError) {
          err.detail.facts.device ??= this.name;
          if (lba !== null) err.detail.facts.lba ??= String(lba);
        }
        reject(err);
      };
      this.#tracked.add(tracked);
      let work: Promise<T>;
      try {
        work = run();
      } catch (err) {
        fail(err);
        return;
      }
      work.then((value) => {
        if (settled) return;
        done();
        this.#latency[kind].add((performance.now() - started) * 1000);
        resolve(value);
      }, fail);
    });
  }
}

/** A block device seen in larger blocks (a multiple of its own), as LFSX wants 4 KiB ones. */
export class BlockDeviceView {
  readonly blockCount: number;
  readonly #ratio: number;

  constructor(readonly device: BlockDevice, readonly blockSize: number) {
    if (blockSize % device.blockSize !== 0) {
      throw invalidArgument(
        "blockSize",
        `${blockSize} is not a multiple of ${device.name}'s ${device.blockSize}`,
      );
    }
    this.#ratio = blockSize / device.blockSize;
    this.blockCount = Math.floor(device.blockCount / this.#ratio);
  }

  readBlocks(first: number, count: number): Promise<Uint8Array> {
    return this.device.readBlocks(first * this.#ratio, count * this.#ratio);
  }

  async writeBlocks(first: number, data: Uint8Array): Promise<void> {
    if (data.length % this.blockSize !== 0) {
      throw invalidArgument("data", `a write is a whole number of ${this.blockSize}-byte blocks`);
    }
    await this.device.writeBlocks(first * this.#ratio, data);
  }

  flush(): Promise<void> {
    return this.device.flush();
  }

  close(): Promise<void> {
    return this.device.close();
  }
}

/** sda, sdb, ... sdz, sdaa, ... as Linux spells the n-th SATA disk. */
export function sdName(index: number): string {
  let n = index;
  let letters = "";
  do {
    letters = String.fromCharCode(97 + (n % 26)) + letters;
    n = Math.floor(n / 26) - 1;
  } while (n >= 0);
  return `sd${letters}`;
}

export type DeviceEvent = { kind: "added" | "removed"; device: BlockDevice };

/** Every block device the drivers found, by name. */
export class BlockLayer {
  readonly #devices = new Map<string, BlockDevice>();
  readonly #listeners = new Set<(event: DeviceEvent) => void>();
  readonly #deadlineMs: number;
  #sweeper: ReturnType<typeof setInterval> | undefined;

  constructor(options: { requestDeadlineMs?: number } = {}) {
    this.#deadlineMs = options.requestDeadlineMs ?? DEFAULT_REQUEST_DEADLINE_MS;
    const sweeper = setInterval(() => {
      const now = performance.now();
      for (const d of this.#devices.values()) d.expire(now);
    }, Math.max(10, Math.min(1000, Math.floor(this.#deadlineMs / 4))));
    Deno.unrefTimer(sweeper);
    this.#sweeper = sweeper;
  }

  /** Adds a disk; the name is the lowest free sd* for AHCI, nvme<c>n<ns> for NVMe. */
  add(backend: BlockBackend): BlockDevice {
    const id = backend.identity;
    let name: string;
    if (id.driver === "nvme") {
      name = `nvme${id.nvmeController}n${id.portOrNamespace}`;
    } else {
      let i = 0;
      while (this.#devices.has(sdName(i))) i++;
      name = sdName(i);
    }
    if (this.#devices.has(name)) throw invalidArgument("device", `${name} is already attached`, Errno.EEXIST);
    const device = new BlockDevice(name, backend, this.#deadlineMs);
    this.#devices.set(name, device);
    log.debug("block device attached", {
      device: name,
      model: id.model,
      blocks: id.blockCount,
      blockSize: id.blockSize,
    });
    for (const l of this.#listeners) l({ kind: "added", device });
    return device;
  }

  /** Removes a disk that went away; its requests fail with ENODEV. */
  remove(device: BlockDevice, reason: string): void {
    if (this.#devices.get(device.name) !== device) return;
    this.#devices.delete(device.name);
    device.goOffline(reason);
    log.info("block device removed", { device: device.name, reason });
    for (const l of this.#listeners) l({ kind: "removed", device });
  }

  /** The first attached device that satisfies `predicate`. */
  find(predicate: (d: BlockDevice) => boolean): BlockDevice | undefined {
    for (const d of this.#devices.values()) if (predicate(d)) return d;
    return undefined;
  }

  device(name: string): BlockDevice {
    const d = this.#devices.get(name);
    if (!d) throw notFound("device", `no block device ${JSON.stringify(name)}`, Errno.ENODEV);
    return d;
  }

  devices(): BlockDevice[] {
    return [...this.#devices.values()].sort((a, b) => compareNames(a.name, b.name));
  }

  onChange(listener: (event: DeviceEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  close(): void {
    clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    for (const d of this.#devices.values()) d.goOffline("the storage service is stopping");
    this.#devices.clear();
  }
}

/** sd* before nvme*, each in Linux order (sdz < sdaa, nvme0n2 < nvme0n10). */
function compareNames(a: string, b: string): number {
  const key = (n: string) => {
    const sd = /^sd([a-z]+)$/.exec(n);
    if (sd) return [0, sd[1].length, sd[1]] as const;
    const nv = /^nvme(\d+)n(\d+)$/.exec(n);
    return [1, Number(nv?.[1] ?? 0), String(Number(nv?.[2] ?? 0)).padStart(10, "0")] as const;
  };
  const [ka, kb] = [key(a), key(b)];
  for (let i = 0; i < 3; i++) {
    if (ka[i] < kb[i]) return -1;
    if (ka[i] > kb[i]) return 1;
  }
  return 0;
}

// Power cuts under LFSX volumes on the block layer's devices, through the real path: a whole
// embedded system whose storage service formats volumes on an NVMe namespace of 512-byte LBAs, one
// of 4 KiB LBAs and a SATA disk, commits transactions on all three at once, and then loses power —
// the machine's PowerCut keeps a random prefix of each disk's unflushed writes and tears a sector
// of the last one. The system restarts on the same disk images, every volume is mounted again
// (journal recovery) and checked: each acknowledged commit is there, nothing of an aborted
// transaction is, a commit whose answer was lost is there entirely or not at all, each worker's
// commits survive as a prefix of its commit order, and fsck finds nothing wrong. Every other round
// cuts at the moment one volume issues a flush (a journal group, a checkpoint's nodes or a
// superblock copy all in the disk's cache, none durable yet), the others at a moment of the test's
// choosing. Rounds alternate the transport of the clients (in-process, gRPC) and build on what the
// rounds before left; ASTRA_POWERCUT_SEED replays a run.
//
// A power cut stops the storage service's CPU too: nothing it issues after the cut may reach a
// disk. The embedded storage service shares this process, so the test stops it at the instant of
// the cut by taking the devices out of its block layer (which fails what is in flight on them and
// everything after) before the machine cuts the disks' power.
import { afterAll, describe, expect, it } from "vitest";
import { DiskController, PowerCutMode } from "../../../gen/astra/machine/v1/devices_pb.ts";
import { MachineService, type PowerCutResponse } from "../../../gen/astra/machine/v1/machine_pb.ts";
import { LfsxService } from "../../../gen/astra/storage/v1/lfsx_pb.ts";
import { GrpcTransport } from "../../../lib/grpc.ts";
import type { EmbeddedSystem } from "../../../lib/host.ts";
import { type Client, client, type Transport } from "../../../lib/rpc.ts";
import type { storageModule } from "../../../services/storage/server.ts";
import { bootSystem, bytes, text } from "./helpers.ts";

type Lfsx = Client<typeof LfsxService>;

/** The volumes' devices, with where each is attached on the machine. */
const LOCATIONS = {
  nvme0n1: { controller: DiskController.NVME, port: 0, namespaceId: 1 },
  nvme0n2: { controller: DiskController.NVME, port: 0, namespaceId: 2 },
  sda: { controller: DiskController.AHCI, port: 0, namespaceId: 0 },
} as const;
const DEVICES = Object.keys(LOCATIONS) as (keyof typeof LOCATIONS)[];
const ROUNDS = 10;
const WORKERS = 3;
/** A small journal, so that checkpoints (and cuts during them) happen every few dozen commits. */
const JOURNAL_BLOCKS = 64;

/** One transaction's writes: a value, or null for a delete. */
type Writes = Map<string, string | null>;

interface DeviceModel {
  /** What the volume must hold: every write of every commit known to have happened. */
  readonly committed: Map<string, string>;
  /** Keys written by commits known to have happened and not yet deleted by any attempt. */
  readonly deletable: string[];
}

interface Attempt {
  device: string;
  worker: number;
  seq: number;
  writes: Writes;
  /** Commit was called; `acknowledged` when it answered. */
  committing: boolean;
  acknowledged: boolean;
}

const device = (name: string) => ({ target: { target: { case: "device" as const, value: name } } });

/** A pseudo-random generator of its own, so a failure names the seed that replays it. */
function generator(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function storageOf(system: EmbeddedSystem): ReturnType<typeof storageModule> {
  return system.modules.get("storage") as ReturnType<typeof storageModule>;
}

/** Applies a transaction's writes to a model of the volume. */
function apply(model: DeviceModel, writes: Writes): void {
  for (const [key, value] of writes) {
    if (value === null) model.committed.delete(key);
    else {
      model.committed.set(key, value);
      if (!key.startsWith("w/")) model.deletable.push(key);
    }
  }
}

/** Every key and value of a mounted volume. */
async function contents(lfsx: Lfsx, volume: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let continuation = new Uint8Array();
  do {
    const page = await lfsx.scan({ scope: { case: "volume", value: volume }, limit: 1000, continuation });
    for (const { key, value } of page.entries) out.set(text(key), text(value));
    continuation = new Uint8Array(page.continuation);
  } while (continuation.length > 0);
  return out;
}

/**
 * Checks a recovered volume against the model and the attempts of the round before the cut, and
 * brings the model up to date with the commits whose outcome only the recovered volume tells.
 */
function verify(
  name: string,
  model: DeviceModel,
  attempts: Attempt[],
  found: Map<string, string>,
  why: string,
) {
  // Whether an attempt's writes are all in the volume, or none of them; anything else is a torn
  // transaction. Its keys are its own, except deletes of keys committed earlier.
  const applied = (attempt: Attempt): boolean => {
    const states = [...attempt.writes].filter(([key]) => !key.startsWith("w/")).map(([key, value]) =>
      value === null ? !found.has(key) : found.get(key) === value
    );
    const all = states.every(Boolean);
    expect(all || !states.some(Boolean), `${why}: ${name} holds part of ${describeAttempt(attempt)}`).toBe(
      true,
    );
    return all;
  };
  const byWorker = new Map<number, Attempt[]>();
  for (const attempt of attempts) {
    if (!byWorker.has(attempt.worker)) byWorker.set(attempt.worker, []);
    byWorker.get(attempt.worker)!.push(attempt);
  }
  for (const attempt of attempts) {
    const present = applied(attempt);
    if (attempt.acknowledged) expect(present, `${why}: ${name} lost ${describeAttempt(attempt)}`).toBe(true);
    if (!attempt.committing) expect(present, `${why}: ${name} shows ${describeAttempt(attempt)}`).toBe(false);
    if (present) apply(model, attempt.writes);
  }
  // A worker's commits are ordered: what survives of them is a prefix, whose last one wrote its
  // progress key.
  for (const [worker, list] of byWorker) {
    const present = list.filter((a) => a.committing).map(applied);
    const prefix = present.indexOf(false) < 0 ? present.length : present.indexOf(false);
    expect(present.slice(prefix).some(Boolean), `${why}: ${name} worker ${worker} survives out of order`)
      .toBe(false);
  }
  for (const [key, value] of model.committed) {
    expect(found.get(key), `${why}: ${name} key ${key}`).toBe(value);
  }
  for (const key of found.keys()) {
    expect(model.committed.has(key), `${why}: ${name} holds ${key}, which no commit wrote`).toBe(true);
  }
}

function describeAttempt(attempt: Attempt): string {
  const state = attempt.acknowledged ? "acknowledged" : attempt.committing ? "unanswered" : "uncommitted";
  return `worker ${attempt.worker}'s transaction ${attempt.seq} (${state}, ${attempt.writes.size} writes)`;
}

/**
 * One worker: transactions of a few puts of fresh keys, an occasional large value and delete of an
 * older key, and its progress key; every fifth one is aborted instead of committed. Runs until a
 * call fails (the cut; anything else fails the test) or `run.stop` is set.
 */
async function worker(
  lfsx: Lfsx,
  volume: string,
  round: number,
  index: number,
  model: DeviceModel,
  random: () => number,
  attempts: Attempt[],
  run: { stop: boolean; failures: unknown[] },
): Promise<void> {
  for (let seq = 0; !run.stop; seq++) {
    const writes: Writes = new Map();
    for (let j = 0; j < 3; j++) {
      const large = random() < 0.05;
      const value = `r${round} w${index} t${seq} #${j} `;
      writes.set(
        `c/${round}/${index}/${String(seq).padStart(5, "0")}/${j}`,
        large ? value.repeat(1000) : value,
      );
    }
    if (random() < 0.3 && model.deletable.length > 0) {
      const victim = model.deletable.splice(Math.floor(random() * model.deletable.length), 1)[0];
      writes.set(victim, null);
    }
    writes.set(`w/${round}/${index}`, String(seq));
    const attempt: Attempt = {
      device: volume,
      worker: index,
      seq,
      writes,
      committing: false,
      acknowledged: false,
    };
    attempts.push(attempt);
    try {
      const { transactionId } = await lfsx.begin({ volume });
      for (const [key, value] of writes) {
        if (value === null) await lfsx.delete({ transactionId, key: bytes(key) });
        else await lfsx.put({ transactionId, key: bytes(key), value: bytes(value) });
      }
      if (seq % 5 === 4) {
        await lfsx.abort({ transactionId });
        continue;
      }
      attempt.committing = true;
      await lfsx.commit({ transactionId });
      attempt.acknowledged = true;
    } catch (err) {
      run.failures.push(err);
      return;
    }
  }
}

/**
 * The power cut: the storage service stops issuing I/O (its devices leave the block layer, which
 * fails what is in flight on them), then every disk loses its cache but a random prefix of its
 * unflushed writes, the last of them torn.
 */
async function powerCut(system: EmbeddedSystem, seed: number): Promise<PowerCutResponse> {
  const block = storageOf(system).disks.block;
  for (const name of DEVICES) block.remove(block.device(name), "the power went out");
  return await client(MachineService, system.router.transport()).powerCut({
    mode: PowerCutMode.RANDOM_PREFIX,
    seed: BigInt(seed),
    tearSector: true,
  });
}

/**
 * Arms a cut at the `n`-th flush LFSX issues to `name`: the moment its unflushed writes (a journal
 * group, a checkpoint's nodes, a superblock copy) are all in the disk's cache and none is durable.
 */
function cutAtFlush(system: EmbeddedSystem, name: string, n: number, cut: () => Promise<unknown>): void {
  const target = storageOf(system).disks.block.device(name);
  const flush = target.flush.bind(target);
  let flushes = 0;
  target.flush = async () => {
    if (++flushes === n) await cut();
    return await flush();
  };
}

describe("power cuts under LFSX volumes on NVMe and SATA disks", () => {
  const dataDir = Deno.makeTempDirSync({ prefix: "astra-lfsx-powercut-" });
  afterAll(() => Deno.remove(dataDir, { recursive: true }));

  it("keeps every acknowledged commit and nothing unacknowledged, round after round", async () => {
    const seed = Number(Deno.env.get("ASTRA_POWERCUT_SEED") ?? Math.floor(Math.random() * 2 ** 31));
    const random = generator(seed);
    const models = new Map<string, DeviceModel>(
      DEVICES.map((d) => [d, { committed: new Map(), deletable: [] }]),
    );
    let previous: Attempt[] = [];
    for (let round = 0; round <= ROUNDS; round++) {
      const system = await bootSystem(dataDir);
      const grpc = new GrpcTransport(system.gatewayAddress!);
      const transport: Transport = round % 2 === 0 ? system.router.transport() : grpc;
      const lfsx = client(LfsxService, transport);
      const why = `seed ${seed} (ASTRA_POWERCUT_SEED replays it), round ${round}`;
      try {
        for (const name of DEVICES) {
          if (round === 0) await lfsx.format({ ...device(name), journalBlocks: JOURNAL_BLOCKS });
          const mount = await lfsx.mount({ ...device(name), volume: name });
          expect(mount.recovery!.generation, why).toBeGreaterThan(0n);
          const check = await lfsx.fsck({ subject: { case: "volume", value: name } });
          expect(check.problems, `${why}: fsck of ${name}`).toEqual([]);
          const found = await contents(lfsx, name);
          verify(name, models.get(name)!, previous.filter((a) => a.device === name), found, why);
        }
        if (round === ROUNDS) break;

        previous = [];
        const run = { stop: false, failures: [] as unknown[] };
        let cutting: Promise<PowerCutResponse> | undefined;
        const cut = () => cutting ??= powerCut(system, seed + round + 1);
        // Odd rounds cut at a flush of one volume, each in turn; even ones at a moment of the
        // test's choosing, wherever each volume is then.
        const atFlush = round % 2 === 1 ? DEVICES[(round >> 1) % DEVICES.length] : undefined;
        if (atFlush) cutAtFlush(system, atFlush, 20 + Math.floor(random() * 100), cut);
        const workers = DEVICES.flatMap((name, d) =>
          Array.from({ length: WORKERS }, (_, w) => {
            const choices = generator(seed + round * 100 + d * WORKERS + w);
            return worker(lfsx, name, round, w, models.get(name)!, choices, previous, run);
          })
        );
        const target = 20 + Math.floor(random() * 120);
        const acknowledged = (name: string) =>
          previous.filter((a) => a.device === name && a.acknowledged).length;
        while (!cutting && (atFlush || !DEVICES.every((name) => acknowledged(name) >= target))) {
          if (run.failures.length > 0) throw run.failures[0];
          await new Promise((r) => setTimeout(r, 5));
        }
        const report = await cut();
        run.stop = true;
        await Promise.all(workers);
        expect(report.disks.length, why).toBe(4);
        if (atFlush) {
          // The flush it cut at had writes to make durable: the cut kept some of them, or none.
          const where = LOCATIONS[atFlush];
          const disk = report.disks.find((d) =>
            d.location!.controller === where.controller && d.location!.port === where.port &&
            d.location!.namespaceId === where.namespaceId
          )!;
          expect(disk.writesPersisted + disk.writesLost, `${why}: unflushed writes on ${atFlush}`)
            .toBeGreaterThan(0n);
        }
      } finally {
        grpc.close();
        await system.shutdown();
      }
    }
  }, 300_000);
});

// LFSX benchmark against SQLite, printed as one JSON object. Run: deno run -A bench/lfsx.ts
// The same workload runs on both engines in one invocation, each on its own file in one temporary
// directory: LFSX on a host image file (fdatasync on flush), SQLite through node:sqlite in WAL
// mode with synchronous=FULL, a WITHOUT ROWID table (a clustered B-tree, like LFSX's) and the same
// 64 MiB cache as LFSX's node cache.
//   inserts:         200,000 keys of 29 bytes with 100-byte values, in transactions of 1,000,
//                    until the data is home (LFSX: a checkpoint; SQLite checkpoints as it goes)
//   point reads:     random keys, each its own autocommit read
//   range scans:     100 entries each from a random key, autocommit
//   durable commits: one insert per transaction, acknowledged only once on stable storage
// Ratios are LFSX / SQLite (higher is better for LFSX); the target is at least 0.5 on each.
import { FileBlockDevice } from "../services/storage/lfsx/blockdev.ts";
import { Volume } from "../services/storage/lfsx/volume.ts";

// node:sqlite runs under Deno, but this project's dependency graph pins @types/node 18 (through
// testcontainers), which predates it; so the part used here is declared, and the module is named
// through a variable to keep the type checker from looking it up in those declarations.
interface SqliteStatement {
  run(...values: unknown[]): unknown;
  get(...values: unknown[]): unknown;
  all(...values: unknown[]): unknown[];
}
interface SqliteDatabase {
  exec(sql: string): void;
  prepare(sql: string): SqliteStatement;
  close(): void;
}
const SQLITE_MODULE = "node:sqlite";
const { DatabaseSync } = (await import(SQLITE_MODULE)) as {
  DatabaseSync: new (path: string) => SqliteDatabase;
};

const KEYS = 200_000;
const BATCH = 1_000;
const VALUE_BYTES = 100;
const POINT_READS = 200_000;
const SCANS = 5_000;
const SCAN_LENGTH = 100;
const DURABLE_COMMITS = 2_000;
const IMAGE_BLOCKS = 262_144; // 1 GiB
const CACHE_MIB = 64;

// xorshift32: deterministic randomness for the workloads.
function rng(seed: number): () => number {
  let x = seed | 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}

const encoder = new TextEncoder();
/** "user:" + 8 hex digits (a scrambled index, so inserts arrive in random key order) + ":" + 15 digits. */
function key(i: number): Uint8Array {
  const scrambled = (Math.imul(i, 2654435761) >>> 0).toString(16).padStart(8, "0");
  return encoder.encode(`user:${scrambled}:${String(i).padStart(15, "0")}`);
}

const keys = Array.from({ length: KEYS }, (_, i) => key(i));
const valueRandom = rng(7);
const values = Array.from(
  { length: 256 },
  () => Uint8Array.from({ length: VALUE_BYTES }, () => valueRandom() * 256),
);
const pointKeys = (() => {
  const random = rng(11);
  return Array.from({ length: POINT_READS }, () => keys[Math.floor(random() * KEYS)]);
})();
const scanStarts = (() => {
  const random = rng(13);
  return Array.from({ length: SCANS }, () => keys[Math.floor(random() * KEYS)]);
})();
const durableKeys = Array.from(
  { length: DURABLE_COMMITS },
  (_, i) => encoder.encode(`durable:${String(i).padStart(21, "0")}`),
);

interface Figures {
  inserts_per_second: number;
  point_reads_per_second: number;
  range_scans_per_second: number;
  durable_commits_per_second: number;
}

async function timed(fn: () => Promise<void> | void): Promise<number> {
  const start = performance.now();
  await fn();
  return (performance.now() - start) / 1000;
}

async function lfsx(dir: string): Promise<{ figures: Figures; details: Record<string, unknown> }> {
  const device = await FileBlockDevice.create(`${dir}/lfsx.img`, IMAGE_BLOCKS);
  await Volume.format(device, { label: "bench" });
  const volume = await Volume.mount(device, { cacheNodes: (CACHE_MIB * 1024 * 1024) / 4096 });
  try {
    // SQLite checkpoints its WAL into the database as it goes; LFSX's journal would hold all of
    // this, so a checkpoint that writes the tree home is part of the insert time.
    const insertSeconds = await timed(async () => {
      for (let i = 0; i < KEYS; i += BATCH) {
        const txn = volume.begin().id;
        for (let j = i; j < i + BATCH; j++) await volume.put(txn, keys[j], values[j & 255]);
        await volume.commit(txn);
      }
      await volume.checkpoint();
    });
    let found = 0;
    const readSeconds = await timed(async () => {
      for (const k of pointKeys) if (await volume.read(k)) found++;
    });
    let scanned = 0;
    const scanSeconds = await timed(async () => {
      for (const start of scanStarts) {
        scanned += (await volume.scanLatest({ start, limit: SCAN_LENGTH })).entries.length;
      }
    });
    const durableSeconds = await timed(async () => {
      for (const k of durableKeys) {
        const txn = volume.begin().id;
        await volume.put(txn, k, values[0]);
        await volume.commit(txn);
      }
    });
    if (found !== POINT_READS) throw new Error(`LFSX found ${found} of ${POINT_READS} keys`);
    const stats = volume.statistics();
    if (stats.tree.entries !== KEYS + DURABLE_COMMITS) {
      throw new Error(`LFSX holds ${stats.tree.entries} entries`);
    }
    return {
      figures: {
        inserts_per_second: KEYS / insertSeconds,
        point_reads_per_second: POINT_READS / readSeconds,
        range_scans_per_second: SCANS / scanSeconds,
        durable_commits_per_second: DURABLE_COMMITS / durableSeconds,
      },
      details: {
        scanned_entries: scanned,
        tree_height: stats.tree.height,
        checkpoints: stats.checkpoints.count,
        journal_groups: stats.journal.groups,
        cache_hits: stats.cache.hits,
        cache_misses: stats.cache.misses,
        device_flushes: device.stats.flushes,
      },
    };
  } finally {
    await volume.unmount();
    await device.close();
  }
}

async function sqlite(dir: string): Promise<{ figures: Figures; details: Record<string, unknown> }> {
  const db = new DatabaseSync(`${dir}/sqlite.db`);
  try {
    db.exec(
      `PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA cache_size = -${CACHE_MIB * 1024};`,
    );
    db.exec("CREATE TABLE kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID");
    const insert = db.prepare("INSERT INTO kv (k, v) VALUES (?, ?)");
    const select = db.prepare("SELECT v FROM kv WHERE k = ?");
    const scan = db.prepare("SELECT k, v FROM kv WHERE k >= ? ORDER BY k LIMIT ?");
    const insertSeconds = await timed(() => {
      for (let i = 0; i < KEYS; i += BATCH) {
        db.exec("BEGIN");
        for (let j = i; j < i + BATCH; j++) insert.run(keys[j], values[j & 255]);
        db.exec("COMMIT");
      }
    });
    let found = 0;
    const readSeconds = await timed(() => {
      for (const k of pointKeys) if (select.get(k)) found++;
    });
    let scanned = 0;
    const scanSeconds = await timed(() => {
      for (const start of scanStarts) scanned += scan.all(start, SCAN_LENGTH).length;
    });
    const durableSeconds = await timed(() => {
      for (const k of durableKeys) insert.run(k, values[0]);
    });
    if (found !== POINT_READS) throw new Error(`SQLite found ${found} of ${POINT_READS} keys`);
    return {
      figures: {
        inserts_per_second: KEYS / insertSeconds,
        point_reads_per_second: POINT_READS / readSeconds,
        range_scans_per_second: SCANS / scanSeconds,
        durable_commits_per_second: DURABLE_COMMITS / durableSeconds,
      },
      details: {
        scanned_entries: scanned,
        sqlite_version: (db.prepare("SELECT sqlite_version() AS v").get() as { v: string }).v,
      },
    };
  } finally {
    db.close();
  }
}

const dir = await Deno.makeTempDir({ prefix: "lfsx-bench-" });
try {
  const ours = await lfsx(dir);
  const reference = await sqlite(dir);
  const names = Object.keys(ours.figures) as (keyof Figures)[];
  const round = (n: number) => Math.round(n);
  const ratio = (n: number) => Math.round(n * 100) / 100;
  console.log(JSON.stringify(
    {
      benchmark: "lfsx",
      workload: {
        keys: KEYS,
        key_bytes: keys[0].length,
        value_bytes: VALUE_BYTES,
        transaction_size: BATCH,
        point_reads: POINT_READS,
        range_scans: SCANS,
        scan_length: SCAN_LENGTH,
        durable_commits: DURABLE_COMMITS,
        cache_mib: CACHE_MIB,
      },
      lfsx: { ...Object.fromEntries(names.map((n) => [n, round(ours.figures[n])])), details: ours.details },
      sqlite: {
        ...Object.fromEntries(names.map((n) => [n, round(reference.figures[n])])),
        details: reference.details,
      },
      lfsx_over_sqlite: Object.fromEntries(
        names.map((n) => [n, ratio(ours.figures[n] / reference.figures[n])]),
      ),
      target_ratio: 0.5,
    },
    null,
    2,
  ));
} finally {
  await Deno.remove(dir, { recursive: true });
}

// Block I/O benchmark, printed as one JSON object. Run: deno run -A bench/blk.ts
// 4 KiB random reads and writes at queue depth 1 and 32, on an NVMe namespace (nvme0n1) and a
// SATA disk behind AHCI (sda), along three paths, with the host's own I/O on the same image file
// as the reference, all in one invocation:
// - embedded: the block layer of the storage service in a whole embedded system, its drivers
//   programming the machine's controllers through MachineService, InterruptService and pmm over
//   the in-process transport;
// - grpc: BlockService's BlockIo stream over gRPC on loopback against that system's gateway, every
//   request of a case in flight on one stream, from a client in a worker thread (so client and
//   server each have a core); grpc-unary: the same with one ReadBlocks/WriteBlocks call per request
//   (NVMe random reads only, for comparison);
// - models: the same drivers and block layer on the machine's device models directly, without a
//   transport in between — the drivers' own cost;
// - reference: pread/pwrite (node:fs with a position) on the NVMe image file, one at a time (QD1)
//   and 32 at once through the thread pool (QD32).
// Targets: NVMe QD32 random read ≥ 50k IOPS embedded and ≥ 10k over gRPC; NVMe ≥ 2× AHCI at QD32.
// BLK_SECONDS (default 2) sets the measuring time of each case. Benchmarks never fail on time.
import { closeSync, openSync, readSync, writeSync } from "node:fs";
import { open as openFile } from "node:fs/promises";
import { BlockService } from "../gen/astra/storage/v1/block_pb.ts";
import { GrpcTransport } from "../lib/grpc.ts";
import { bootEmbedded } from "../lib/host.ts";
import { client } from "../lib/rpc.ts";
import { DiskImage } from "../services/machine/devices/diskimage.ts";
import { loadFactory } from "../services/index.ts";
import type { BlockDevice } from "../services/storage/block.ts";
import { BlockIoClient } from "../services/storage/block_io.ts";
import { DiskSubsystem } from "../services/storage/disks.ts";
import { DeviceMachine } from "../services/storage/hardware.ts";

const IO_BYTES = 4096;
const DISK_BYTES = 256 * 1024 * 1024;
const SECONDS = Number(Deno.env.get("BLK_SECONDS") ?? 2);
const WARMUP_OPS = 200;

type Op = "randread" | "randwrite";

interface Figure {
  iops: number;
  meanLatencyMicros: number;
}

interface Case extends Figure {
  device: string;
  driver: "nvme" | "ahci";
  path: "embedded" | "grpc" | "grpc-unary" | "models";
  op: Op;
  qd: number;
}

interface WorkerRequest {
  address: string;
  /** BlockIo stream, or a unary call per request. */
  stream: boolean;
  device: string;
  op: Op;
  qd: number;
  blockSize: number;
  blockCount: number;
  seconds: number;
}

// xorshift32: deterministic, allocation-free randomness for the offsets.
function rng(seed: number): () => number {
  let x = seed | 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}

/** Runs `qd` closed loops of `io` for `seconds` after a warm-up; IOPS and mean latency. */
async function load(qd: number, seconds: number, io: () => Promise<unknown>): Promise<Figure> {
  for (let i = 0; i < WARMUP_OPS; i++) await io();
  let ops = 0;
  let latency = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  await Promise.all(Array.from({ length: qd }, async () => {
    while (performance.now() < end) {
      const t = performance.now();
      await io();
      latency += performance.now() - t;
      ops++;
    }
  }));
  const elapsed = (performance.now() - start) / 1000;
  return { iops: Math.round(ops / elapsed), meanLatencyMicros: Math.round((latency / ops) * 1000) };
}

/** A closed-loop workload of 4 KiB requests at random aligned offsets of a block device. */
function blockIo(device: BlockDevice, op: Op, seed: number): () => Promise<unknown> {
  const perIo = IO_BYTES / device.blockSize;
  const slots = Math.floor(device.blockCount / perIo);
  const random = rng(seed);
  const data = new Uint8Array(IO_BYTES).fill(seed & 0xff);
  return op === "randread"
    ? () => device.readBlocks(Math.floor(random() * slots) * perIo, perIo)
    : () => device.writeBlocks(Math.floor(random() * slots) * perIo, data);
}

// ---- the gRPC client, in a worker ----

// One connection for every case, as a long-lived client has.
let workerTransport: GrpcTransport | undefined;

async function workerLoad(req: WorkerRequest): Promise<Figure> {
  workerTransport ??= new GrpcTransport(req.address);
  const block = client(BlockService, workerTransport, "bench");
  const perIo = IO_BYTES / req.blockSize;
  const slots = Math.floor(req.blockCount / perIo);
  const random = rng(req.qd * 7 + req.device.length);
  const data = new Uint8Array(IO_BYTES).fill(7);
  if (req.stream) {
    const stream = new BlockIoClient(block);
    const lba = () => Math.floor(random() * slots) * perIo;
    try {
      return await load(
        req.qd,
        req.seconds,
        req.op === "randread"
          ? () => stream.read(req.device, lba(), perIo)
          : () => stream.write(req.device, lba(), data),
      );
    } finally {
      await stream.close();
    }
  }
  const io = req.op === "randread"
    ? () =>
      block.readBlocks({
        device: req.device,
        lba: BigInt(Math.floor(random() * slots) * perIo),
        count: perIo,
      })
    : () =>
      block.writeBlocks({ device: req.device, lba: BigInt(Math.floor(random() * slots) * perIo), data });
  return await load(req.qd, req.seconds, io);
}

const IS_WORKER = (globalThis as { name?: string }).name === "blk-grpc-client";
if (IS_WORKER) {
  const scope = globalThis as unknown as {
    onmessage: (e: MessageEvent<WorkerRequest>) => void;
    postMessage: (m: unknown) => void;
  };
  scope.onmessage = async (e) => {
    try {
      scope.postMessage({ figure: await workerLoad(e.data) });
    } catch (err) {
      scope.postMessage({ error: String(err) });
    }
  };
}

function grpcClient(): { run(req: WorkerRequest): Promise<Figure>; close(): void } {
  const worker = new Worker(import.meta.url, { type: "module", name: "blk-grpc-client" });
  return {
    run: (req) =>
      new Promise((resolve, reject) => {
        worker.onmessage = (e: MessageEvent<{ figure?: Figure; error?: string }>) =>
          e.data.figure ? resolve(e.data.figure) : reject(new Error(e.data.error));
        worker.postMessage(req);
      }),
    close: () => worker.terminate(),
  };
}

// ---- the reference: the host's own I/O on the image file ----

async function reference(
  path: string,
): Promise<{ op: string; qd: number; iops: number; meanLatencyMicros: number }[]> {
  const slots = DISK_BYTES / IO_BYTES;
  const out = [];
  const fd = openSync(path, "r+");
  const buffer = new Uint8Array(IO_BYTES);
  for (const op of ["pread", "pwrite"] as const) {
    const random = rng(op.length);
    const figure = await load(1, SECONDS, () => {
      const position = Math.floor(random() * slots) * IO_BYTES;
      if (op === "pread") readSync(fd, buffer, 0, IO_BYTES, position);
      else writeSync(fd, buffer, 0, IO_BYTES, position);
      return Promise.resolve();
    });
    out.push({ op, qd: 1, ...figure });
  }
  closeSync(fd);
  const handle = await openFile(path, "r+");
  for (const op of ["pread", "pwrite"] as const) {
    const random = rng(op.length + 1);
    const figure = await load(32, SECONDS, () => {
      const position = Math.floor(random() * slots) * IO_BYTES;
      const own = new Uint8Array(IO_BYTES);
      return op === "pread"
        ? handle.read(own, 0, IO_BYTES, position)
        : handle.write(own, 0, IO_BYTES, position);
    });
    out.push({ op, qd: 32, ...figure });
  }
  await handle.close();
  return out;
}

// ---- the run ----

async function main(): Promise<void> {
  const dataDir = await Deno.makeTempDir({ prefix: "astra-bench-blk-" });
  // The machine takes its disks from the environment: one of each, the size of the working set.
  Deno.env.set("ASTRA_SATA_DISKS", `${DISK_BYTES / 1024 / 1024}M`);
  Deno.env.set("ASTRA_NVME_NAMESPACES", `${DISK_BYTES / 1024 / 1024}M:512`);
  const results: Case[] = [];
  const devices = [["nvme0n1", "nvme"], ["sda", "ahci"]] as const;
  const cases = devices.flatMap(([device, driver]) =>
    (["randread", "randwrite"] as Op[]).flatMap((op) => [1, 32].map((qd) => ({ device, driver, op, qd })))
  );

  const system = await bootEmbedded(loadFactory, { memoryBytes: 1024 ** 3, numaNodes: 1, cpus: 2, dataDir }, {
    gateway: "127.0.0.1:0",
  });
  const disks = (system.modules.get("storage") as unknown as { disks: DiskSubsystem }).disks;
  for (const c of cases) {
    const device = disks.block.device(c.device);
    results.push({ ...c, path: "embedded", ...await load(c.qd, SECONDS, blockIo(device, c.op, c.qd)) });
  }
  const grpc = grpcClient();
  const unaryCases = cases.filter((c) => c.driver === "nvme" && c.op === "randread");
  for (const [path, list] of [["grpc", cases], ["grpc-unary", unaryCases]] as const) {
    for (const c of list) {
      const device = disks.block.device(c.device);
      const figure = await grpc.run({
        address: system.gatewayAddress!,
        stream: path === "grpc",
        device: c.device,
        op: c.op,
        qd: c.qd,
        blockSize: device.blockSize,
        blockCount: device.blockCount,
        seconds: SECONDS,
      });
      results.push({ ...c, path, ...figure });
    }
  }
  grpc.close();
  await system.shutdown();

  // The same drivers on the device models, with image files of their own.
  const sata = await DiskImage.open({
    path: `${dataDir}/models-sata.img`,
    sizeBytes: DISK_BYTES,
    lbaSize: 512,
  });
  const nvme = await DiskImage.open({
    path: `${dataDir}/models-nvme.img`,
    sizeBytes: DISK_BYTES,
    lbaSize: 512,
  });
  const machine = new DeviceMachine({
    memoryBytes: 1024 ** 3,
    ahci: { ports: 1, disks: [{ port: 0, disk: sata }] },
    nvme: { namespaces: [{ nsid: 1, disk: nvme }] },
  });
  const models = new DiskSubsystem(machine.hardware());
  await models.probe();
  for (const c of cases) {
    const device = models.block.device(c.device);
    results.push({ ...c, path: "models", ...await load(c.qd, SECONDS, blockIo(device, c.op, c.qd)) });
  }
  await models.close();
  await Promise.all([sata.close(), nvme.close()]);

  const hostIo = await reference(`${dataDir}/disks/nvme0n1.img`);
  await Deno.remove(dataDir, { recursive: true });

  const find = (path: string, driver: string, op: Op, qd: number) =>
    results.find((r) => r.path === path && r.driver === driver && r.op === op && r.qd === qd)!.iops;
  const ratio = (a: number, b: number) => Math.round((a / b) * 100) / 100;
  const nvmeVsAhci: Record<string, number> = {};
  const vsHost: Record<string, number> = {};
  for (const path of ["embedded", "grpc", "models"]) {
    for (const op of ["randread", "randwrite"] as Op[]) {
      for (const qd of [1, 32]) {
        nvmeVsAhci[`${path} ${op} qd${qd}`] = ratio(find(path, "nvme", op, qd), find(path, "ahci", op, qd));
        const host = hostIo.find((h) => h.op === (op === "randread" ? "pread" : "pwrite") && h.qd === qd)!;
        vsHost[`nvme ${path} ${op} qd${qd}`] = ratio(find(path, "nvme", op, qd), host.iops);
      }
    }
  }
  const target = (name: string, goal: number, measured: number) => ({
    name,
    target: goal,
    measured,
    met: measured >= goal,
  });
  console.log(JSON.stringify(
    {
      benchmark: "blk",
      secondsPerCase: SECONDS,
      ioBytes: IO_BYTES,
      diskBytes: DISK_BYTES,
      results,
      reference: hostIo,
      ratios: { nvmeVsAhci, nvmeVsHostIo: vsHost },
      targets: [
        target("NVMe QD32 random read, embedded (IOPS)", 50_000, find("embedded", "nvme", "randread", 32)),
        target("NVMe QD32 random read, over gRPC (IOPS)", 10_000, find("grpc", "nvme", "randread", 32)),
        target("NVMe / AHCI at QD32 random read, embedded", 2, nvmeVsAhci["embedded randread qd32"]),
        target("NVMe / AHCI at QD32 random read, models", 2, nvmeVsAhci["models randread qd32"]),
      ],
    },
    null,
    2,
  ));
}

if (!IS_WORKER) await main();

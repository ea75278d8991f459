// pmm benchmark, printed as one JSON object. Run: deno run -A bench/pmm.ts
// - direct: the frame allocator and the kernel heap called as plain functions, no transport;
// - service: the pmm service with the machine holding guest memory (so every heap call does its
//   real ReadPhysical/WritePhysical work), called over gRPC on loopback, and over the in-process
//   transport as the reference the gRPC figures are compared against.
import { PmmService } from "../gen/astra/pmm/v1/pmm_pb.ts";
import { GrpcServer, GrpcTransport } from "../lib/grpc.ts";
import { InProcessRouter } from "../lib/inproc.ts";
import { peersFrom, type ServiceModule } from "../lib/module.ts";
import { client, type Transport } from "../lib/rpc.ts";
import { createMachine } from "../services/machine/server.ts";
import { FrameAllocator, type FrameRequest, type RunRequest } from "../services/pmm/frames.ts";
import { KernelHeap, SparsePhysicalMemory } from "../services/pmm/heap.ts";
import { MemoryType, normalizeMemoryMap, PAGE_SIZE } from "../services/pmm/memmap.ts";
import { createPmm } from "../services/pmm/server.ts";

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

// A 2 GiB, two-node machine with a low hole, firmware reservations and a device window.
function machine(): FrameAllocator {
  const frames = new FrameAllocator(normalizeMemoryMap([
    { base: 0, length: 0x9f000, type: MemoryType.USABLE, node: 0 },
    { base: 0x9f000, length: 0x61000, type: MemoryType.RESERVED, node: 0 },
    { base: MiB, length: GiB - MiB, type: MemoryType.USABLE, node: 0 },
    { base: GiB, length: GiB, type: MemoryType.USABLE, node: 1 },
    { base: 2 * GiB - 64 * 1024, length: 64 * 1024, type: MemoryType.ACPI_NVS, node: 1 },
    { base: 3 * GiB, length: 256 * MiB, type: MemoryType.DEVICE, node: 0 },
  ]));
  frames.reserveRegion(MiB, 16 * MiB, "kernel image");
  return frames;
}

// xorshift32: deterministic, allocation-free randomness for the workloads.
function rng(seed: number): () => number {
  let x = seed | 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}

function timeLoop(iterations: number, body: (i: number) => void): number {
  const start = performance.now();
  for (let i = 0; i < iterations; i++) body(i);
  return (performance.now() - start) / 1000;
}

// Single frames: a FIFO of 1024 live frames over a machine a quarter full (half allocated, then
// every other frame of that half freed at random); each step frees the oldest and allocates one.
function singleFrames(): number {
  const frames = machine();
  const random = rng(1);
  const background: number[] = [];
  const backgroundRequest: FrameRequest = { owner: "bench:background" };
  const half = frames.freeCount / 2;
  for (let i = 0; i < half; i++) background.push(frames.allocFrame(backgroundRequest));
  for (const address of background) if (random() < 0.5) frames.freeFrame(address);
  const request: FrameRequest = { owner: "bench:single", site: "bench/pmm.ts" };
  const ring = new Float64Array(1024);
  for (let i = 0; i < ring.length; i++) ring[i] = frames.allocFrame(request);
  const step = (i: number) => {
    const slot = i & 1023;
    frames.freeFrame(ring[slot]);
    ring[slot] = frames.allocFrame(request);
  };
  timeLoop(200_000, step);
  const iterations = 5_000_000;
  return iterations / timeLoop(iterations, step);
}

// 64-frame runs, first fit: a FIFO of 256 live runs; each step frees the oldest and allocates.
function contiguousRuns(): number {
  const frames = machine();
  const request: RunRequest = { owner: "bench:runs", site: "bench/pmm.ts", count: 64 };
  const ring = new Float64Array(256);
  for (let i = 0; i < ring.length; i++) ring[i] = frames.allocFrames(request);
  const step = (i: number) => {
    const slot = i & 255;
    frames.freeFrames(ring[slot], 64);
    ring[slot] = frames.allocFrames(request);
  };
  timeLoop(20_000, step);
  const iterations = 500_000;
  return iterations / timeLoop(iterations, step);
}

// kmalloc/kfree with sizes log-uniform over 8 B..64 KiB (every power-of-two class equally
// likely, uniform inside it): 4096 live allocations, each step frees a random one and
// allocates a replacement. Debug (red zones, poison) as configured.
function mixedHeap(debug: boolean): number {
  const frames = machine();
  const heap = new KernelHeap(frames, new SparsePhysicalMemory(2 * GiB), { debug });
  const random = rng(7);
  const sizes = new Uint32Array(1 << 16);
  for (let i = 0; i < sizes.length; i++) {
    const bits = 3 + Math.floor(random() * 14); // 2^3 .. 2^16
    sizes[i] = Math.max(8, Math.floor(2 ** (bits - 1) + random() * 2 ** (bits - 1)));
  }
  const slots = new Uint32Array(1 << 16);
  for (let i = 0; i < slots.length; i++) slots[i] = Math.floor(random() * 4096);
  const live = new Float64Array(4096);
  for (let i = 0; i < live.length; i++) live[i] = heap.kmalloc(sizes[i], "bench:heap", "bench/pmm.ts");
  const step = (i: number) => {
    const slot = slots[i & 0xffff];
    heap.kfree(live[slot]);
    live[slot] = heap.kmalloc(sizes[i & 0xffff], "bench:heap", "bench/pmm.ts");
  };
  timeLoop(100_000, step);
  const iterations = 2_000_000;
  return (2 * iterations) / timeLoop(iterations, step);
}

// --- the service, over a transport --------------------------------------------------------

/** Calls in flight at once in the service figures, as the issue asks. */
const IN_FLIGHT = 32;
const SERVICE_SECONDS = Number(Deno.env.get("BENCH_SECONDS") ?? 3);
const BULK_FRAMES = 4096;

interface Service {
  inProcess: Transport;
  grpc: GrpcTransport;
  close(): Promise<void>;
}

// A machine of 2 GiB in two nodes and pmm on it, wired as the embedded host wires them, served
// on a loopback gRPC port as well.
async function startService(): Promise<Service> {
  const router = new InProcessRouter();
  const local = router.transport();
  const peers = peersFrom(() => local);
  const config = { memoryBytes: 2 * GiB, numaNodes: 2, cpus: 2, dataDir: await Deno.makeTempDir() };
  const modules: ServiceModule[] = [createMachine(peers, config), createPmm(peers)];
  const server = new GrpcServer("bench");
  for (const m of modules) {
    m.bound.forEach((b) => {
      router.add(b);
      server.add(b);
    });
    await m.start();
  }
  const grpc = new GrpcTransport(await server.listen("127.0.0.1:0"));
  server.setServing(true);
  return {
    inProcess: local,
    grpc,
    async close() {
      grpc.close();
      await server.shutdown(500);
      for (const m of modules.reverse()) await m.stop();
      await Deno.remove(config.dataDir, { recursive: true });
    },
  };
}

// Calls per second of `pair` (which makes two calls) run by IN_FLIGHT workers for a while,
// after a warm-up.
async function callsPerSecond(pair: (worker: number) => Promise<void>): Promise<number> {
  const runFor = async (seconds: number) => {
    const end = performance.now() + seconds * 1000;
    let pairs = 0;
    const start = performance.now();
    await Promise.all(Array.from({ length: IN_FLIGHT }, async (_, worker) => {
      while (performance.now() < end) {
        await pair(worker);
        pairs++;
      }
    }));
    return (2 * pairs) / ((performance.now() - start) / 1000);
  };
  await runFor(0.5);
  return await runFor(SERVICE_SECONDS);
}

// AllocFrame + FreeFrame pairs.
function frameCalls(transport: Transport): Promise<number> {
  const pmm = client(PmmService, transport);
  return callsPerSecond(async (worker) => {
    const { address } = await pmm.allocFrame({ owner: `bench:frames ${worker}`, site: "bench/pmm.ts" });
    await pmm.freeFrame({ address });
  });
}

// Kmalloc + Kfree pairs with sizes log-uniform over 8 B..64 KiB, red zones and poison checked
// in the machine's memory.
function heapCalls(transport: Transport): Promise<number> {
  const pmm = client(PmmService, transport);
  const random = rng(11);
  return callsPerSecond(async (worker) => {
    const size = BigInt(Math.max(8, Math.floor(2 ** (3 + random() * 13))));
    const { address } = await pmm.kmalloc({ size, owner: `bench:heap ${worker}`, site: "bench/pmm.ts" });
    await pmm.kfree({ address });
  });
}

// Frames per second through AllocFramesBulk, one call of BULK_FRAMES frames at a time; each
// batch is given back with one ReleaseOwner, outside the timing.
async function bulkFramesPerSecond(transport: Transport): Promise<number> {
  const pmm = client(PmmService, transport);
  const owner = "bench:bulk";
  let frames = 0;
  let millis = 0;
  const batch = async () => {
    const start = performance.now();
    const { addresses } = await pmm.allocFramesBulk({
      owner,
      site: "bench/pmm.ts",
      count: BigInt(BULK_FRAMES),
    });
    const spent = performance.now() - start;
    await pmm.releaseOwner({ owner });
    return { frames: addresses.length, spent };
  };
  for (let i = 0; i < 5; i++) await batch();
  while (millis < SERVICE_SECONDS * 1000) {
    const b = await batch();
    frames += b.frames;
    millis += b.spent;
  }
  return frames / (millis / 1000);
}

// Both transports against one service, in-process first; every run gives back what it took, which
// is checked at the end (a benchmark that leaks would measure an ever fuller allocator).
async function serviceFigures() {
  const service = await startService();
  try {
    const pmm = client(PmmService, service.inProcess);
    const boot = (await pmm.getStatistics({})).frames;
    const figures = {
      inProcess: {
        frameCalls: await frameCalls(service.inProcess),
        heapCalls: await heapCalls(service.inProcess),
        bulkFrames: await bulkFramesPerSecond(service.inProcess),
      },
      grpc: {
        frameCalls: await frameCalls(service.grpc),
        heapCalls: await heapCalls(service.grpc),
        bulkFrames: await bulkFramesPerSecond(service.grpc),
      },
    };
    await pmm.defragment({});
    const after = (await pmm.getStatistics({})).frames;
    if (after?.used !== boot?.used) {
      throw new Error(`the benchmark leaked ${after!.used - boot!.used} frames`);
    }
    return figures;
  } finally {
    await service.close();
  }
}

const round = (n: number) => Math.round(n);
const ratio = (n: number) => Math.round(n * 1000) / 1000;
const service = await serviceFigures();
console.log(JSON.stringify(
  {
    benchmark: "pmm",
    page_size: PAGE_SIZE,
    direct: {
      single_frame_alloc_free_pairs_per_second: round(singleFrames()),
      contiguous_64_frame_allocs_per_second: round(contiguousRuns()),
      kmalloc_kfree_calls_per_second: round(mixedHeap(true)),
      kmalloc_kfree_calls_per_second_without_debug: round(mixedHeap(false)),
    },
    service: {
      calls_in_flight: IN_FLIGHT,
      bulk_call_frames: BULK_FRAMES,
      grpc: {
        frame_calls_per_second: round(service.grpc.frameCalls),
        heap_calls_per_second: round(service.grpc.heapCalls),
        bulk_frames_per_second: round(service.grpc.bulkFrames),
      },
      in_process_reference: {
        frame_calls_per_second: round(service.inProcess.frameCalls),
        heap_calls_per_second: round(service.inProcess.heapCalls),
        bulk_frames_per_second: round(service.inProcess.bulkFrames),
      },
      grpc_over_in_process: {
        frame_calls: ratio(service.grpc.frameCalls / service.inProcess.frameCalls),
        heap_calls: ratio(service.grpc.heapCalls / service.inProcess.heapCalls),
        bulk_frames: ratio(service.grpc.bulkFrames / service.inProcess.bulkFrames),
      },
    },
  },
  null,
  2,
));

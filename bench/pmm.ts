// In-process pmm benchmark: the frame allocator and the kernel heap called directly, no
// transport. Prints one JSON object. Run: deno run bench/pmm.ts
import { FrameAllocator, type FrameRequest, type RunRequest } from "../services/pmm/frames.ts";
import { KernelHeap, SparsePhysicalMemory } from "../services/pmm/heap.ts";
import { MemoryType, normalizeMemoryMap, PAGE_SIZE } from "../services/pmm/memmap.ts";

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

const round = (n: number) => Math.round(n);
console.log(JSON.stringify(
  {
    page_size: PAGE_SIZE,
    single_frame_alloc_free_pairs_per_second: round(singleFrames()),
    contiguous_64_frame_allocs_per_second: round(contiguousRuns()),
    kmalloc_kfree_calls_per_second: round(mixedHeap(true)),
    kmalloc_kfree_calls_per_second_without_debug: round(mixedHeap(false)),
  },
  null,
  2,
));

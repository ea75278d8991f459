// Issue 4's concurrency test, over the real gRPC transport: 64 clients, each on its own gRPC
// channel to a booted system's gateway, allocate and free frames, runs, bulk frames and heap
// blocks (and resize and fill them) at random for a minute, as the issue asks; set
// ASTRA_CONCURRENCY_SECONDS for a shorter or longer run.
//
// Every byte range handed out is tracked client-side in one registry for all clients, so a frame
// or heap block handed out twice (or a heap block inside a frame given to someone else) fails at
// once. A range leaves the registry before the call that gives it back is sent, so a legitimate
// reuse can never look like an overlap. Heap blocks are filled through the machine and checked
// before they are freed: pmm's red zone and poison writes must never reach a live block. At the
// end the statistics must add up exactly: against the registry while everything is still held,
// and back to the initial figures once everything is freed.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MachineService } from "../../gen/astra/machine/v1/machine_pb.ts";
import { PmmService } from "../../gen/astra/pmm/v1/pmm_pb.ts";
import { GrpcTransport } from "../../lib/grpc.ts";
import { bootEmbedded, type EmbeddedSystem } from "../../lib/host.ts";
import { client } from "../../lib/rpc.ts";
import { loadFactory } from "../../services/index.ts";

const CLIENTS = 64;
const SECONDS = Number(Deno.env.get("ASTRA_CONCURRENCY_SECONDS") ?? "60");
const P = 4096;
const MiB = 1024 * 1024;
/** Allocations a client holds at most; it frees more than it allocates above half of this. */
const MAX_HELD = 24;

type Pmm = ReturnType<typeof client<typeof PmmService>>;
type Machine = ReturnType<typeof client<typeof MachineService>>;

// xorshift32: each client's choices are reproducible from its seed.
function rng(seed: number): () => number {
  let x = seed | 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}

/** Every byte range any client holds, with who holds it; an overlap is a double hand-out. */
class LiveRanges {
  readonly #starts: number[] = [];
  readonly #ranges = new Map<number, { end: number; what: string }>();

  get size(): number {
    return this.#starts.length;
  }

  add(start: number, length: number, what: string): void {
    const end = start + length;
    const i = this.#lowerBound(start);
    const before = i > 0 ? this.#ranges.get(this.#starts[i - 1])! : undefined;
    const after = i < this.#starts.length ? this.#starts[i] : undefined;
    if (before && before.end > start) {
      throw new Error(`${what} at 0x${start.toString(16)} overlaps ${before.what}`);
    }
    if (after !== undefined && after < end) {
      throw new Error(`${what} at 0x${start.toString(16)} overlaps ${this.#ranges.get(after)!.what}`);
    }
    this.#starts.splice(i, 0, start);
    this.#ranges.set(start, { end, what });
  }

  remove(start: number): void {
    const i = this.#lowerBound(start);
    if (this.#starts[i] !== start) throw new Error(`no live range at 0x${start.toString(16)}`);
    this.#starts.splice(i, 1);
    this.#ranges.delete(start);
  }

  #lowerBound(value: number): number {
    let low = 0;
    let high = this.#starts.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (this.#starts[mid] < value) low = mid + 1;
      else high = mid;
    }
    return low;
  }
}

/** The test's clock, and the first failure, which stops every client. */
interface Run {
  deadline: number;
  failure?: unknown;
}

const running = (run: Run) => run.failure === undefined && performance.now() < run.deadline;

interface Block {
  address: bigint;
  size: number;
  /** The byte the client filled the block with, if it did. */
  fill?: number;
}

/** What one client holds and how it got there. */
interface Holdings {
  owner: string;
  frames: bigint[];
  runs: { address: bigint; count: number }[];
  blocks: Block[];
  /** Operations done (an operation may take several calls: a fill, a check, the RPC). */
  operations: number;
}

describe("pmm under 64 concurrent gRPC clients", () => {
  let system: EmbeddedSystem;
  let transports: GrpcTransport[];

  beforeAll(async () => {
    const dataDir = await Deno.makeTempDir({ prefix: "astra-pmm-concurrency-" });
    system = await bootEmbedded(loadFactory, { memoryBytes: 256 * MiB, numaNodes: 2, cpus: 2, dataDir }, {
      gateway: "127.0.0.1:0",
    });
    transports = Array.from({ length: CLIENTS }, () => new GrpcTransport(system.gatewayAddress!));
    await Promise.all(transports.map((t) => t.waitForReady(10_000)));
  }, 60_000);

  afterAll(async () => {
    transports.forEach((t) => t.close());
    await system.shutdown();
  });

  it(`never hands out a frame or heap block twice in ${SECONDS} s, and the figures add up`, async () => {
    const admin = client(PmmService, transports[0]);
    // Start from a heap holding no spare chunks, so the end can be compared exactly.
    await admin.defragment({});
    const initial = await admin.getStatistics({});
    const initialHeap = await admin.getHeapStatistics({});
    const initialChunks = await heapChunkFrames(admin);

    const live = new LiveRanges();
    const run: Run = { deadline: performance.now() + SECONDS * 1000 };
    const checker = checkWhileRunning(admin, run);
    const holdings = await Promise.all(transports.map(async (transport, i) => {
      const h: Holdings = { owner: `conc:${i}`, frames: [], runs: [], blocks: [], operations: 0 };
      try {
        await runClient(
          client(PmmService, transport),
          client(MachineService, transport),
          h,
          live,
          rng(i + 1),
          run,
        );
      } catch (e) {
        run.failure ??= e;
      }
      return h;
    }));
    await checker.catch((e) => run.failure ??= e);
    if (run.failure) throw run.failure;

    // Everything still held: the figures equal the registry's, client by client.
    const held = await admin.getStatistics({});
    const heldHeap = await admin.getHeapStatistics({});
    const clientFrames = holdings.reduce(
      (n, h) => n + h.frames.length + h.runs.reduce((m, r) => m + r.count, 0),
      0,
    );
    const blocks = holdings.flatMap((h) => h.blocks);
    expect(held.frames!.used - initial.frames!.used).toBe(
      BigInt(clientFrames) + (await heapChunkFrames(admin)) - initialChunks,
    );
    expect(heldHeap.liveAllocations - initialHeap.liveAllocations).toBe(BigInt(blocks.length));
    expect(heldHeap.requestedBytes - initialHeap.requestedBytes).toBe(
      BigInt(blocks.reduce((n, b) => n + b.size, 0)),
    );
    for (const h of holdings) {
      const leaks = await admin.checkLeaks({ owner: h.owner });
      expect(leaks.allocations.map((a) => a.address).sort()).toEqual(h.blocks.map((b) => b.address).sort());
      expect(leaks.frameRuns.map((r) => [r.address, Number(r.frames)]).sort()).toEqual(
        [...h.frames.map((a) => [a, 1]), ...h.runs.map((r) => [r.address, r.count])].sort(),
      );
    }
    expect(live.size).toBe(
      holdings.reduce((n, h) => n + h.frames.length + h.runs.length + h.blocks.length, 0),
    );

    // Everything freed: back to the initial figures.
    await Promise.all(holdings.map((h, i) => freeAll(client(PmmService, transports[i]), h, live)));
    expect(live.size).toBe(0);
    await admin.defragment({});
    const final = await admin.getStatistics({});
    expect(final.frames).toEqual(initial.frames);
    expect(final.nodes.map((n) => n.frames)).toEqual(initial.nodes.map((n) => n.frames));
    expect(final.regions.map((r) => r.frames)).toEqual(initial.regions.map((r) => r.frames));
    const finalHeap = await admin.getHeapStatistics({});
    expect(finalHeap).toMatchObject({
      liveAllocations: initialHeap.liveAllocations,
      requestedBytes: initialHeap.requestedBytes,
      failedAllocs: initialHeap.failedAllocs,
      errorsDetected: initialHeap.errorsDetected,
    });
    expect(finalHeap.figures!.heapBytes).toBe(initialHeap.figures!.heapBytes);
    for (const h of holdings) {
      expect(await admin.checkLeaks({ owner: h.owner })).toMatchObject({ allocations: [], frameRuns: [] });
    }
    const operations = holdings.reduce((n, h) => n + h.operations, 0);
    console.log(
      `pmm concurrency: ${CLIENTS} clients, ${operations} operations in ${SECONDS} s (${
        Math.round(operations / SECONDS)
      }/s), ` +
        `${Number(finalHeap.allocs - initialHeap.allocs)} heap allocations, ` +
        `${Number(final.framesAllocated - initial.framesAllocated)} frames allocated`,
    );
  }, SECONDS * 1000 + 90_000);
});

async function heapChunkFrames(pmm: Pmm): Promise<bigint> {
  return (await pmm.checkLeaks({ owner: "pmm:heap" })).frameRuns.reduce((n, r) => n + r.frames, 0n);
}

// While the clients run: every snapshot of the accounting adds up, overall, per node, per region.
async function checkWhileRunning(pmm: Pmm, run: Run): Promise<void> {
  const sum = (c: { free: bigint; used: bigint; reserved: bigint }) => c.free + c.used + c.reserved;
  while (running(run)) {
    const s = await pmm.getStatistics({});
    expect(sum(s.frames!)).toBe(s.frames!.total);
    for (const n of s.nodes) expect(sum(n.frames!)).toBe(n.frames!.total);
    for (const r of s.regions) expect(sum(r.frames!)).toBe(r.frames!.total);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function runClient(
  pmm: Pmm,
  machine: Machine,
  h: Holdings,
  live: LiveRanges,
  random: () => number,
  run: Run,
): Promise<void> {
  const pick = <T>(items: T[]): [T, number] => {
    const i = Math.floor(random() * items.length);
    return [items[i], i];
  };
  const takeFrame = (address: bigint, what: string) => live.add(Number(address), P, `${what} of ${h.owner}`);
  const takeBlock = (b: Block) => {
    live.add(Number(b.address), b.size, `heap block of ${b.size} B of ${h.owner}`);
    h.blocks.push(b);
  };
  // Heap sizes log-uniform over 1 B..64 KiB: every power-of-two class equally likely.
  const heapSize = () => Math.max(1, Math.floor(2 ** (random() * 16)));
  while (running(run)) {
    h.operations++;
    const held = h.frames.length + h.runs.length + h.blocks.length;
    const allocate = held < 2 || (held < MAX_HELD && random() < (held < MAX_HELD / 2 ? 0.7 : 0.4));
    const r = random();
    if (allocate) {
      if (r < 0.15) {
        const zero = random() < 0.2;
        const { address } = await pmm.allocFrame({ owner: h.owner, site: "frame", zero });
        takeFrame(address, "frame");
        h.frames.push(address);
        if (zero) await expectFilled(machine, address, P, 0, h.owner);
      } else if (r < 0.3) {
        const count = 1 + Math.floor(random() * 16);
        const alignment = [1, 4, 16][Math.floor(random() * 3)];
        const allocated = await pmm.allocFrames({
          owner: h.owner,
          site: "run",
          count: BigInt(count),
          alignment: BigInt(alignment),
        });
        expect(allocated.address % BigInt(alignment * P)).toBe(0n);
        live.add(Number(allocated.address), count * P, `run of ${count} frames of ${h.owner}`);
        h.runs.push({ address: allocated.address, count });
      } else if (r < 0.4) {
        const bulk = await pmm.allocFramesBulk({
          owner: h.owner,
          site: "bulk",
          count: BigInt(1 + Math.floor(random() * 8)),
        });
        for (const address of bulk.addresses) {
          takeFrame(address, "bulk frame");
          h.frames.push(address);
        }
      } else if (r < 0.85) {
        const size = heapSize();
        const { address } = await pmm.kmalloc({ owner: h.owner, site: "kmalloc", size: BigInt(size) });
        expect(address % 8n).toBe(0n);
        const block: Block = { address, size };
        takeBlock(block);
        if (random() < 0.5) await fill(machine, block, random);
      } else {
        const alignment = 2 ** (4 + Math.floor(random() * 9));
        const size = 1 + Math.floor(random() * 4096);
        const { address } = await pmm.kmallocAligned({
          owner: h.owner,
          site: "aligned",
          size: BigInt(size),
          alignment: BigInt(alignment),
        });
        expect(address % BigInt(alignment)).toBe(0n);
        takeBlock({ address, size });
      }
      continue;
    }
    if (r < 0.2 && h.frames.length > 0) {
      const [address, i] = pick(h.frames);
      h.frames.splice(i, 1);
      live.remove(Number(address));
      await pmm.freeFrame({ address });
    } else if (r < 0.4 && h.runs.length > 0) {
      const [victim, i] = pick(h.runs);
      h.runs.splice(i, 1);
      live.remove(Number(victim.address));
      await pmm.freeFrames({ address: victim.address, count: BigInt(victim.count) });
    } else if (r < 0.55 && h.blocks.length > 0) {
      const [block, i] = pick(h.blocks);
      await expectBlock(machine, block, h.owner);
      h.blocks.splice(i, 1);
      live.remove(Number(block.address));
      const size = heapSize();
      const moved = await pmm.krealloc({
        address: block.address,
        size: BigInt(size),
        owner: h.owner,
        site: "realloc",
      });
      const kept = Math.min(size, block.size);
      const resized: Block = { address: moved.address, size };
      takeBlock(resized);
      if (block.fill !== undefined) {
        await expectFilled(machine, moved.address, kept, block.fill, `${h.owner} after krealloc`);
        if (size > block.size) await fill(machine, resized, random);
        else resized.fill = block.fill;
      }
    } else if (h.blocks.length > 0) {
      const [block, i] = pick(h.blocks);
      await expectBlock(machine, block, h.owner);
      h.blocks.splice(i, 1);
      live.remove(Number(block.address));
      expect((await pmm.kfree({ address: block.address })).size).toBe(BigInt(block.size));
    }
  }
}

async function fill(machine: Machine, block: Block, random: () => number): Promise<void> {
  block.fill = 1 + Math.floor(random() * 250);
  await machine.writePhysical({ address: block.address, data: new Uint8Array(block.size).fill(block.fill) });
}

async function expectBlock(machine: Machine, block: Block, owner: string): Promise<void> {
  if (block.fill !== undefined) await expectFilled(machine, block.address, block.size, block.fill, owner);
}

async function expectFilled(machine: Machine, address: bigint, length: number, byte: number, who: string) {
  const { data } = await machine.readPhysical({ address, length: BigInt(length) });
  const wrong = data.findIndex((b) => b !== byte);
  expect(wrong, `byte ${wrong} of ${length} at 0x${address.toString(16)} held by ${who}`).toBe(-1);
}

async function freeAll(pmm: Pmm, h: Holdings, live: LiveRanges): Promise<void> {
  for (const address of h.frames) {
    live.remove(Number(address));
    await pmm.freeFrame({ address });
  }
  for (const run of h.runs) {
    live.remove(Number(run.address));
    await pmm.freeFrames({ address: run.address, count: BigInt(run.count) });
  }
  for (const block of h.blocks) {
    live.remove(Number(block.address));
    await pmm.kfree({ address: block.address });
  }
  h.frames = [];
  h.runs = [];
  h.blocks = [];
}

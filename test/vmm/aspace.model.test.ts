// Model-based test of address spaces under fork: random stores, loads, forks, exits, MADV_DONTNEED
// and unmap/remap across a family of address spaces, through the MMU, against a model that gives
// each process its own private bytes and one shared region. Every load must read what the model
// says; frames held always equal frames allocated; when the last process exits every frame has
// been freed exactly once.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { AddressSpace } from "../../services/vmm/aspace.ts";
import {
  MADV_DONTNEED,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
} from "../../services/vmm/vma.ts";
import { P, TestMachine } from "./env.ts";

const PRIVATE_BASE = 0x1000_0000;
const PRIVATE_PAGES = 4;
const SHARED_BASE = 0x2000_0000;
const SHARED_PAGES = 2;
const RW = PROT_READ | PROT_WRITE;

interface Process {
  space: AddressSpace;
  bytes: Map<number, number>;
}

interface Model {
  processes: Process[];
  shared: Map<number, number>;
}

interface Real {
  machine: TestMachine;
}

function offsetOf(page: number): number {
  return page * P + (page * 37) % P;
}

function pick(model: Model, index: number): Process {
  return model.processes[index % model.processes.length];
}

function expectConsistentFrames(machine: TestMachine): void {
  expect(machine.vmm.frames.size).toBe(machine.frames.live.size);
}

/** Every byte the model holds reads back in every process (a leak between processes shows at once). */
async function expectModelBytes(model: Model, machine: TestMachine): Promise<void> {
  for (const [n, process] of model.processes.entries()) {
    for (const [page, value] of process.bytes) {
      expect(await machine.load(process.space, PRIVATE_BASE + offsetOf(page)), `p${n} private ${page}`).toBe(
        value,
      );
    }
    for (const [page, value] of model.shared) {
      expect(await machine.load(process.space, SHARED_BASE + offsetOf(page)), `p${n} shared ${page}`).toBe(
        value,
      );
    }
  }
  expectConsistentFrames(machine);
}

class StoreCommand implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly process: number,
    readonly shared: boolean,
    readonly page: number,
    readonly value: number,
  ) {}
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    const process = pick(model, this.process);
    const page = this.page % (this.shared ? SHARED_PAGES : PRIVATE_PAGES);
    const ea = (this.shared ? SHARED_BASE : PRIVATE_BASE) + offsetOf(page);
    expect(await real.machine.store(process.space, ea, this.value)).toBeNull();
    (this.shared ? model.shared : process.bytes).set(page, this.value);
    await expectModelBytes(model, real.machine);
  }
  toString = () =>
    `store(p${this.process}, ${this.shared ? "shared" : "private"} ${this.page}, ${this.value})`;
}

class LoadCommand implements fc.AsyncCommand<Model, Real> {
  constructor(readonly process: number, readonly shared: boolean, readonly page: number) {}
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    const process = pick(model, this.process);
    const page = this.page % (this.shared ? SHARED_PAGES : PRIVATE_PAGES);
    const ea = (this.shared ? SHARED_BASE : PRIVATE_BASE) + offsetOf(page);
    const expected = (this.shared ? model.shared : process.bytes).get(page) ?? 0;
    expect(await real.machine.load(process.space, ea)).toBe(expected);
  }
  toString = () => `load(p${this.process}, ${this.shared ? "shared" : "private"} ${this.page})`;
}

class ForkCommand implements fc.AsyncCommand<Model, Real> {
  constructor(readonly process: number) {}
  check = (model: Readonly<Model>) => model.processes.length < 6;
  async run(model: Model, real: Real): Promise<void> {
    const parent = pick(model, this.process);
    const space = await parent.space.fork();
    model.processes.push({ space, bytes: new Map(parent.bytes) });
    await expectModelBytes(model, real.machine);
  }
  toString = () => `fork(p${this.process})`;
}

class ExitCommand implements fc.AsyncCommand<Model, Real> {
  constructor(readonly process: number) {}
  check = (model: Readonly<Model>) => model.processes.length > 1;
  async run(model: Model, real: Real): Promise<void> {
    const index = this.process % model.processes.length;
    await model.processes[index].space.destroy();
    model.processes.splice(index, 1);
    await expectModelBytes(model, real.machine);
  }
  toString = () => `exit(p${this.process})`;
}

class DontNeedCommand implements fc.AsyncCommand<Model, Real> {
  constructor(readonly process: number, readonly page: number) {}
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    const process = pick(model, this.process);
    const page = this.page % PRIVATE_PAGES;
    await process.space.madvise(PRIVATE_BASE + page * P, P, MADV_DONTNEED);
    process.bytes.delete(page);
    await expectModelBytes(model, real.machine);
  }
  toString = () => `dontneed(p${this.process}, ${this.page})`;
}

class RemapCommand implements fc.AsyncCommand<Model, Real> {
  constructor(readonly process: number, readonly page: number) {}
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    const process = pick(model, this.process);
    const page = this.page % PRIVATE_PAGES;
    await process.space.munmap(PRIVATE_BASE + page * P, P);
    await process.space.mmap(
      PRIVATE_BASE + page * P,
      P,
      RW,
      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
      null,
      0,
    );
    process.bytes.delete(page);
    await expectModelBytes(model, real.machine);
  }
  toString = () => `remap(p${this.process}, ${this.page})`;
}

const index = fc.nat(5);
const page = fc.nat(7);
const commands = [
  fc.tuple(index, fc.boolean(), page, fc.integer({ min: 1, max: 255 })).map(([p, s, g, v]) =>
    new StoreCommand(p, s, g, v)
  ),
  fc.tuple(index, fc.boolean(), page).map(([p, s, g]) => new LoadCommand(p, s, g)),
  index.map((p) => new ForkCommand(p)),
  index.map((p) => new ExitCommand(p)),
  fc.tuple(index, page).map(([p, g]) => new DontNeedCommand(p, g)),
  fc.tuple(index, page).map(([p, g]) => new RemapCommand(p, g)),
];

describe("address spaces under fork, against a model", () => {
  it("keep private memory private, shared memory shared, and free every frame exactly once", async () => {
    await fc.assert(
      fc.asyncProperty(fc.commands(commands, { maxCommands: 40, size: "max" }), async (cmds) => {
        const machine = new TestMachine();
        const first = machine.vmm.createAddressSpace();
        await first.mmap(
          PRIVATE_BASE,
          PRIVATE_PAGES * P,
          RW,
          MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
          null,
          0,
        );
        await first.mmap(SHARED_BASE, SHARED_PAGES * P, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, null, 0);
        const model: Model = { processes: [{ space: first, bytes: new Map() }], shared: new Map() };
        await fc.asyncModelRun(() => ({ model, real: { machine } }), cmds);
        for (const process of model.processes) await process.space.destroy();
        machine.expectAllFramesFree();
      }),
      { numRuns: 150 },
    );
  });
});

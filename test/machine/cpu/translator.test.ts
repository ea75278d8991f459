// The block translator against the interpreter: random loops of fixed-point, storage, compare,
// CR and floating-point instructions run both ways from the same state must end in the same state,
// instruction count included; self-modifying code, precise faults inside a region, exact budgets
// and the software TLB's fast path.

import { describe, expect, it } from "vitest";
import { INSTRUCTIONS, OP } from "../../../services/machine/cpu/decode.ts";
import type { OperandName } from "../../../services/machine/cpu/isa.ts";
import { Cpu, StopReason } from "../../../services/machine/cpu/interpreter.ts";
import { formatInstruction } from "../../../services/machine/cpu/disassemble.ts";
import { assemble } from "./qemu-oracle.ts";
import { Random } from "./generators.ts";
import { FlatMemory } from "../../../services/machine/cpu/flat.ts";

const BASE = 0x10000000;
const SIZE = 1 << 20;
const DATA = BASE + 0x40000;

/** Flat little-endian RAM at BASE with a software TLB covering it; counts slow-path accesses. */
const tlbMemory = () => new FlatMemory(BASE, SIZE, { tlbEntries: 1024 });

/** The instructions random programs draw from: templated ones and some that go through handlers. */
const BODY_MNEMONICS = [
  "add",
  "subf",
  "neg",
  "and",
  "or",
  "xor",
  "nand",
  "nor",
  "eqv",
  "andc",
  "orc",
  "addi",
  "addis",
  "andi.",
  "andis.",
  "ori",
  "oris",
  "xori",
  "xoris",
  "rlwinm",
  "rlwimi",
  "rlwnm",
  "rldicl",
  "rldicr",
  "rldic",
  "rldimi",
  "slw",
  "srw",
  "sraw",
  "srawi",
  "sld",
  "srd",
  "srad",
  "sradi",
  "extsb",
  "extsh",
  "extsw",
  "cntlzw",
  "cntlzd",
  "mullw",
  "mulld",
  "mulhw",
  "mulhwu",
  "mulhd",
  "mulli",
  "divw",
  "divwu",
  "divd",
  "addc",
  "adde",
  "subfc",
  "subfe",
  "addze",
  "addic",
  "addic.",
  "subfic",
  "cmp",
  "cmpi",
  "cmpl",
  "cmpli",
  "isel",
  "mfcr",
  "mtcrf",
  "crxor",
  "cror",
  "crandc",
  "popcntd",
  "cmpb",
  "lbz",
  "lhz",
  "lha",
  "lwz",
  "lwa",
  "ld",
  "stb",
  "sth",
  "stw",
  "std",
  "lbzx",
  "lwzx",
  "ldx",
  "stwx",
  "stdx",
  "lwzu",
  "stdu",
  "ldu",
  "mfspr",
  "mtspr",
  "fadd",
  "fmul",
  "lfd",
  "stfd",
] as const;

const WORKING = [3, 4, 5, 6, 7, 8, 9, 10, 11, 12];

function randomInstruction(random: Random): number {
  const mnemonic = random.pick(BODY_MNEMONICS);
  const def = INSTRUCTIONS[OP[mnemonic]];
  const values: Partial<Record<OperandName, number>> = {};
  const storage = /^(l|st)[bhwd]|^(l|st)fd/.test(mnemonic);
  for (const name of def.operands) {
    switch (name) {
      case "RT":
      case "RS":
        values[name] = random.pick(WORKING);
        break;
      case "RB":
        values[name] = storage ? random.pick([13, 14]) : random.pick(WORKING);
        break;
      case "RC":
        values[name] = random.pick(WORKING);
        break;
      case "RA":
        values[name] = storage ? random.pick([13, 14]) : random.pick(WORKING);
        break;
      case "RA0":
        values[name] = storage
          ? (def.operands.includes("RB") ? 0 : 31)
          : random.chance(0.1)
          ? 0
          : random.pick(WORKING);
        break;
      case "FRT":
      case "FRA":
      case "FRB":
      case "FRC":
      case "FRS":
        values[name] = random.below(4);
        break;
      case "D":
      case "DS":
        values[name] = 8 * random.below(32);
        break;
      case "SPR":
        values[name] = random.pick([8, 9, 1]);
        break;
      case "BF":
        values[name] = random.below(8);
        break;
      case "FXM":
        values[name] = random.below(256);
        break;
      case "L10":
        values[name] = random.below(2);
        break;
      default:
        values[name] = random.next() & 0xffff;
    }
  }
  if (mnemonic === "mtspr" || mnemonic === "mfspr") values.SPR = random.pick([8, 1]);
  if (/^(lwzu|stdu|ldu)$/.test(mnemonic)) values.D = 8 * random.below(4);
  const flags = def.flags.includes("Rc") && random.chance(0.4) ? (["Rc"] as const) : [];
  return assemble(mnemonic, values, [...flags]);
}

/** A loop: `body` instructions with forward conditional skips, run CTR times, then sc. */
function randomProgram(random: Random, body: number): number[] {
  const words: number[] = [];
  for (let i = 0; i < body; i++) {
    if (random.chance(0.08)) {
      words.push(assemble("cmpl", { BF: 7, L10: 1, RA: random.pick(WORKING), RB: random.pick(WORKING) }));
      words.push(assemble("bc", { BO: 12, BI: 28 + random.below(3), BD: 8 }));
    }
    words.push(randomInstruction(random));
  }
  words.push(assemble("bc", { BO: 16, BI: 0, BD: -4 * words.length }));
  words.push(assemble("sc", {}));
  return words;
}

function setupCpu(memory: FlatMemory, words: number[], random: Random): Cpu {
  words.forEach((w, i) => memory.view.setInt32(4 * i, w, true));
  for (let i = 0; i < 0x2000; i++) memory.bytes[0x40000 + i] = (i * 37 + 11) & 0xff;
  const cpu = new Cpu(memory, () => 0);
  cpu.pc = BASE;
  for (const r of WORKING) {
    cpu.gpr[2 * r] = random.next() | 0;
    cpu.gpr[2 * r + 1] = random.chance(0.5) ? random.next() | 0 : 0;
  }
  for (const [r, address] of [[31, DATA], [13, DATA + 0x800], [14, DATA + 0x1000]]) {
    cpu.gpr[2 * r] = address;
    cpu.gpr[2 * r + 1] = 0;
  }
  cpu.ctrLo = 40;
  cpu.xer = random.next() & 0xe0000000;
  cpu.cr = random.next() | 0;
  for (let f = 0; f < 4; f++) cpu.vsrDoubles[2 * f + 1] = random.next() / 1000;
  return cpu;
}

function snapshot(cpu: Cpu, memory: FlatMemory) {
  return {
    gpr: [...cpu.gpr],
    fpr: [0, 1, 2, 3].map((f) => cpu.vsrDoubles[2 * f + 1]),
    cr: cpu.cr,
    xer: cpu.xer,
    lr: [cpu.lrLo, cpu.lrHi],
    ctr: [cpu.ctrLo, cpu.ctrHi],
    fpscr: cpu.fpscr,
    pc: cpu.pc,
    retired: cpu.retired,
    data: [...memory.bytes.subarray(0x40000, 0x42000)],
  };
}

function runBoth(words: number[], seed: number, budget = 1_000_000) {
  const interpreted = tlbMemory(), translated = tlbMemory();
  const a = setupCpu(interpreted, words, new Random(seed));
  const b = setupCpu(translated, words, new Random(seed));
  b.enableTranslation({ hotThreshold: 2 });
  const stopA = a.run(budget), stopB = b.run(budget);
  return { a, b, stopA, stopB, interpreted, translated };
}

describe("the block translator agrees with the interpreter", () => {
  it("on random loops of fixed-point, storage, CR and floating-point instructions", () => {
    for (let seed = 1; seed <= 60; seed++) {
      const random = new Random(seed);
      const words = randomProgram(random, 10 + random.below(40));
      const { a, b, stopA, stopB, interpreted, translated } = runBoth(words, seed);
      const stoppedAt = formatInstruction(words[(a.pc - BASE) / 4] ?? 0);
      expect(stopA, `seed ${seed}: the program stopped at ${stoppedAt}`).toBe(StopReason.SystemCall);
      expect(stopB, `seed ${seed}`).toBe(stopA);
      expect(snapshot(b, translated), `seed ${seed}`).toEqual(snapshot(a, interpreted));
      expect(b.translation!.regions, `seed ${seed}`).toBeGreaterThan(0);
    }
  });

  it("stops after exactly the budget, wherever it falls", () => {
    const random = new Random(99);
    const words = randomProgram(random, 30);
    for (const budget of [1, 7, 50, 333, 1000, 1001, 1234]) {
      const { a, b, interpreted, translated } = runBoth(words, 99, budget);
      expect(b.retired, `budget ${budget}`).toBe(a.retired);
      expect(snapshot(b, translated), `budget ${budget}`).toEqual(snapshot(a, interpreted));
    }
  });

  it("reports a fault inside a region at the faulting instruction, with the registers before it", () => {
    const words = [
      assemble("addi", { RT: 3, RA0: 3, SI: 1 }),
      assemble("ld", { RT: 4, DS: 0, RA0: 5 }),
      assemble("addi", { RT: 5, RA0: 5, SI: 8 }),
      assemble("bc", { BO: 16, BI: 0, BD: -12 }),
      assemble("sc", {}),
    ];
    const memory = tlbMemory();
    words.forEach((w, i) => memory.view.setInt32(4 * i, w, true));
    const cpu = new Cpu(memory, () => 0);
    cpu.enableTranslation({ hotThreshold: 1 });
    cpu.pc = BASE;
    cpu.ctrLo = 1000;
    cpu.gpr[10] = BASE + SIZE - 8 * 20;
    expect(cpu.run(100_000)).toBe(StopReason.PageFault);
    expect(cpu.pc).toBe(BASE + 4);
    expect(cpu.faultAddress).toBe(BigInt(BASE + SIZE));
    expect(cpu.gpr[6]).toBe(21);
    expect(cpu.gpr[10]).toBe(BASE + SIZE);
    expect(cpu.retired).toBe(20 * 4 + 1);
    expect(cpu.translation!.regions).toBeGreaterThan(0);
  });

  it("runs code that a loop rewrites (self-modifying code through the store slow path)", () => {
    const patch = assemble("addi", { RT: 3, RA0: 3, SI: 100 });
    const words = [
      assemble("addi", { RT: 3, RA0: 3, SI: 1 }),
      assemble("stw", { RS: 9, D: 0, RA0: 10 }),
      assemble("bc", { BO: 16, BI: 0, BD: -8 }),
      assemble("sc", {}),
    ];
    const memory = tlbMemory();
    words.forEach((w, i) => memory.view.setInt32(4 * i, w, true));
    const cpu = new Cpu(memory, () => 0);
    cpu.enableTranslation({ hotThreshold: 1 });
    cpu.pc = BASE;
    cpu.ctrLo = 10;
    cpu.gpr[18] = patch;
    cpu.gpr[20] = BASE;
    expect(cpu.run(1000)).toBe(StopReason.SystemCall);
    // The first pass adds 1 and rewrites the addi; the other nine add 100.
    expect(cpu.gpr[6]).toBe(1 + 9 * 100);
    expect(cpu.translation!.invalidatedRegions).toBeGreaterThan(0);
  });

  it("loads and stores through the software TLB once pages are known", () => {
    const words = [
      assemble("lwz", { RT: 3, D: 0, RA0: 31 }),
      assemble("addi", { RT: 3, RA0: 3, SI: 1 }),
      assemble("stw", { RS: 3, D: 0, RA0: 31 }),
      assemble("bc", { BO: 16, BI: 0, BD: -12 }),
      assemble("sc", {}),
    ];
    const memory = tlbMemory();
    words.forEach((w, i) => memory.view.setInt32(4 * i, w, true));
    const cpu = new Cpu(memory, () => 0);
    cpu.enableTranslation({ hotThreshold: 1 });
    cpu.pc = BASE;
    cpu.ctrLo = 10_000;
    cpu.gpr[62] = DATA;
    expect(cpu.run(1_000_000)).toBe(StopReason.SystemCall);
    expect(memory.view.getInt32(DATA - BASE, true)).toBe(10_000);
    expect(memory.slowAccesses).toBeLessThan(100);
  });
});

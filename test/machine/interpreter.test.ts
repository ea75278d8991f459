// The fixed-point interpreter against the ISA's definitions: each instruction's result is
// recomputed with BigInt from the pseudocode of Power ISA v3.0B (ROTL64, MASK, EXTS...) for
// random and edge-case operands; small programs check branches, storage, reservations and stops.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { INSTRUCTIONS, OP, opEncoding } from "../../services/machine/cpu/decode.ts";
import { type FlagName, FLAGS, type OperandName, OPERANDS } from "../../services/machine/cpu/isa.ts";
import { Cpu, DCACHE_BLOCK_BYTES, implemented, StopReason } from "../../services/machine/cpu/interpreter.ts";
import { FlatMemory } from "../../services/machine/cpu/flat.ts";

const MASK64 = (1n << 64n) - 1n;
const BASE = 0x10000000;
const SIZE = 1 << 20;

/** Flat little-endian RAM at BASE; everything else faults. */
const flatMemory = () => new FlatMemory(BASE, SIZE);

/** Encodes an instruction from the table: operand values by name, and flags. */
function assemble(
  mnemonic: string,
  operands: Partial<Record<OperandName, number>>,
  flags: FlagName[] = [],
): number {
  const op = OP[mnemonic];
  if (op === undefined) throw new Error(`no instruction ${mnemonic}`);
  let word = opEncoding(op).value;
  for (const name of INSTRUCTIONS[op].operands) {
    const def = OPERANDS[name];
    let value = operands[name] ?? 0;
    if ("zeroMeans" in def && value === def.zeroMeans) value = 0;
    let raw = BigInt(value) >> BigInt("scale" in def ? def.scale : 0);
    const width = def.fields.reduce((sum, [first, last]) => sum + last - first + 1, 0);
    raw = BigInt.asUintN(width, raw);
    let remaining = width;
    for (const [first, last] of def.fields) {
      const size = last - first + 1;
      remaining -= size;
      const part = Number((raw >> BigInt(remaining)) & ((1n << BigInt(size)) - 1n));
      word |= part << (31 - last);
    }
  }
  for (const flag of flags) word |= 1 << (31 - FLAGS[flag].bit);
  return word | 0;
}

function newCpu(memory = flatMemory()): Cpu {
  return new Cpu(memory, () => 0x1234_5678_9abc, (bytes) => bytes.fill(0x5a));
}

function setGpr(cpu: Cpu, r: number, value: bigint): void {
  const v = value & MASK64;
  cpu.gpr[2 * r] = Number(v & 0xffffffffn) | 0;
  cpu.gpr[2 * r + 1] = Number(v >> 32n) | 0;
}

function gpr(cpu: Cpu, r: number): bigint {
  return (BigInt(cpu.gpr[2 * r + 1] >>> 0) << 32n) | BigInt(cpu.gpr[2 * r] >>> 0);
}

/** Runs one instruction at BASE with r4 = a, r5 = b, r6 = c; returns the CPU. */
function execute(word: number, a: bigint, b = 0n, c = 0n, setup?: (cpu: Cpu) => void): Cpu {
  const memory = flatMemory();
  new DataView(memory.bytes.buffer).setInt32(0, word, true);
  const cpu = newCpu(memory);
  cpu.pc = BASE;
  setGpr(cpu, 4, a);
  setGpr(cpu, 5, b);
  setGpr(cpu, 6, c);
  setup?.(cpu);
  const stop = cpu.run(1);
  expect(stop).toBe(StopReason.Budget);
  return cpu;
}

const signed = (x: bigint) => BigInt.asIntN(64, x);
const low32 = (x: bigint) => x & 0xffffffffn;
const exts32 = (x: bigint) => BigInt.asUintN(64, BigInt.asIntN(32, x));
/** ROTL64 of the ISA. */
const rotl64 = (x: bigint, n: number) => ((x << BigInt(n)) | (x >> BigInt(64 - n))) & MASK64;
/** MASK(mb, me) of the ISA: ones from bit mb to bit me (bit 0 the most significant), wrapping. */
function mask(mb: number, me: number): bigint {
  let m = 0n;
  for (let i = mb;; i = (i + 1) % 64) {
    m |= 1n << BigInt(63 - i);
    if (i === me) break;
  }
  return m;
}
/** ROTL32 of the ISA: the low word rotated, replicated in both halves. */
const rotl32 = (x: bigint, n: number) => rotl64(low32(x) | (low32(x) << 32n), n);
const crField = (lt: boolean, gt: boolean, so = 0) => (lt ? 8 : gt ? 4 : 2) | so;

const u64 = fc.oneof(
  fc.constantFrom(
    0n,
    1n,
    2n,
    MASK64,
    1n << 63n,
    (1n << 63n) - 1n,
    0xffffffffn,
    0x80000000n,
    0x7fffffffn,
    1n << 32n,
  ),
  fc.bigInt({ min: 0n, max: MASK64 }),
  fc.bigInt({ min: 0n, max: 0xffffffffn }),
  fc.bigInt({ min: 0n, max: 0xffffn }).map((x) => (MASK64 - x) & MASK64),
);
const RUNS = { numRuns: 300 };

describe("fixed-point arithmetic against the ISA definitions", () => {
  it("add, subf, neg with CA, OV and CR0", () => {
    fc.assert(
      fc.property(u64, u64, (a, b) => {
        const add = execute(assemble("add", { RT: 3, RA: 4, RB: 5 }, ["OE", "Rc"]), a, b);
        const sum = (a + b) & MASK64;
        expect(gpr(add, 3)).toBe(sum);
        const overflow = signed(a) + signed(b) !== signed(sum);
        expect(add.ov).toBe(overflow ? 1 : 0);
        expect(add.so).toBe(overflow ? 1 : 0);
        expect(add.crField(0)).toBe(crField(signed(sum) < 0n, signed(sum) > 0n, overflow ? 1 : 0));

        const subf = execute(assemble("subfc", { RT: 3, RA: 4, RB: 5 }), a, b);
        expect(gpr(subf, 3)).toBe((b - a) & MASK64);
        expect(subf.ca).toBe(b >= a ? 1 : 0);
        expect(subf.ca32).toBe(low32(b) >= low32(a) ? 1 : 0);

        const adde = execute(assemble("adde", { RT: 3, RA: 4, RB: 5 }), a, b, 0n, (cpu) => (cpu.ca = 1));
        expect(gpr(adde, 3)).toBe((a + b + 1n) & MASK64);
        expect(adde.ca).toBe(a + b + 1n > MASK64 ? 1 : 0);

        const neg = execute(assemble("neg", { RT: 3, RA: 4 }, ["OE"]), a);
        expect(gpr(neg, 3)).toBe((-a) & MASK64);
        expect(neg.ov).toBe(a === 1n << 63n ? 1 : 0);
      }),
      RUNS,
    );
  });

  it("immediate forms: addi, addis, addic., subfic, mulli", () => {
    fc.assert(
      fc.property(u64, fc.integer({ min: -32768, max: 32767 }), (a, si) => {
        const s = BigInt(si);
        expect(gpr(execute(assemble("addi", { RT: 3, RA0: 4, SI: si }), a), 3)).toBe((a + s) & MASK64);
        expect(gpr(execute(assemble("addi", { RT: 3, RA0: 0, SI: si }), a), 3)).toBe(s & MASK64);
        expect(gpr(execute(assemble("addis", { RT: 3, RA0: 4, SI: si }), a), 3)).toBe(
          (a + (s << 16n)) & MASK64,
        );
        const addic = execute(assemble("addic.", { RT: 3, RA: 4, SI: si }), a);
        expect(gpr(addic, 3)).toBe((a + (s & MASK64)) & MASK64);
        expect(addic.ca).toBe(a + (s & MASK64) > MASK64 ? 1 : 0);
        const r = signed((a + s) & MASK64);
        expect(addic.crField(0)).toBe(crField(r < 0n, r > 0n));
        const subfic = execute(assemble("subfic", { RT: 3, RA: 4, SI: si }), a);
        expect(gpr(subfic, 3)).toBe((s - a) & MASK64);
        expect(subfic.ca).toBe((s & MASK64) >= a ? 1 : 0);
        expect(gpr(execute(assemble("mulli", { RT: 3, RA: 4, SI: si }), a), 3)).toBe((a * s) & MASK64);
      }),
      RUNS,
    );
  });

  it("multiplication: mulld(o), mulhd, mulhdu, mullw, mulhw, mulhwu, maddhd, maddhdu, maddld", () => {
    fc.assert(
      fc.property(u64, u64, u64, (a, b, c) => {
        const mulld = execute(assemble("mulld", { RT: 3, RA: 4, RB: 5 }, ["OE"]), a, b);
        const product = signed(a) * signed(b);
        expect(gpr(mulld, 3)).toBe(product & MASK64);
        expect(mulld.ov).toBe(product !== signed(product & MASK64) ? 1 : 0);
        expect(gpr(execute(assemble("mulhd", { RT: 3, RA: 4, RB: 5 }), a, b), 3)).toBe(
          (product >> 64n) & MASK64,
        );
        expect(gpr(execute(assemble("mulhdu", { RT: 3, RA: 4, RB: 5 }), a, b), 3)).toBe((a * b) >> 64n);
        const wordProduct = BigInt.asIntN(32, a) * BigInt.asIntN(32, b);
        expect(gpr(execute(assemble("mullw", { RT: 3, RA: 4, RB: 5 }), a, b), 3)).toBe(wordProduct & MASK64);
        expect(low32(gpr(execute(assemble("mulhw", { RT: 3, RA: 4, RB: 5 }), a, b), 3))).toBe(
          low32(wordProduct >> 32n),
        );
        expect(low32(gpr(execute(assemble("mulhwu", { RT: 3, RA: 4, RB: 5 }), a, b), 3))).toBe(
          (low32(a) * low32(b)) >> 32n,
        );
        const signedSum = signed(a) * signed(b) + signed(c);
        expect(gpr(execute(assemble("maddhd", { RT: 3, RA: 4, RB: 5, RC: 6 }), a, b, c), 3)).toBe(
          (signedSum >> 64n) & MASK64,
        );
        expect(gpr(execute(assemble("maddld", { RT: 3, RA: 4, RB: 5, RC: 6 }), a, b, c), 3)).toBe(
          signedSum & MASK64,
        );
        expect(gpr(execute(assemble("maddhdu", { RT: 3, RA: 4, RB: 5, RC: 6 }), a, b, c), 3)).toBe(
          ((a * b + c) >> 64n) & MASK64,
        );
      }),
      RUNS,
    );
  });

  it("division: divd, divdu, divw, divwu, modsd, modud, modsw, moduw, divde, divdeu", () => {
    fc.assert(
      fc.property(u64, u64, (a, b) => {
        const run = (m: string) => gpr(execute(assemble(m, { RT: 3, RA: 4, RB: 5 }), a, b), 3);
        const sa = signed(a), sb = signed(b);
        if (b !== 0n && !(sa === -(1n << 63n) && sb === -1n)) {
          expect(run("divd")).toBe((sa / sb) & MASK64);
          expect(run("modsd")).toBe((sa % sb) & MASK64);
        }
        if (b !== 0n) {
          expect(run("divdu")).toBe(a / b);
          expect(run("modud")).toBe(a % b);
          const extended = (a << 64n) / b;
          if (extended <= MASK64) expect(run("divdeu")).toBe(extended);
          const signedExtended = (sa << 64n) / sb;
          if (signedExtended === signed(signedExtended & MASK64)) {
            expect(run("divde")).toBe(signedExtended & MASK64);
          }
        }
        const wa = BigInt.asIntN(32, a), wb = BigInt.asIntN(32, b);
        if (wb !== 0n && !(wa === -(1n << 31n) && wb === -1n)) {
          expect(low32(run("divw"))).toBe(low32(wa / wb));
          expect(low32(run("modsw"))).toBe(low32(wa % wb));
        }
        if (low32(b) !== 0n) {
          expect(low32(run("divwu"))).toBe(low32(a) / low32(b));
          expect(low32(run("moduw"))).toBe(low32(a) % low32(b));
        }
      }),
      RUNS,
    );
  });

  it("division by zero sets OV with OE and gives 0", () => {
    const cpu = execute(assemble("divd", { RT: 3, RA: 4, RB: 5 }, ["OE"]), 7n, 0n);
    expect(gpr(cpu, 3)).toBe(0n);
    expect(cpu.ov).toBe(1);
    expect(cpu.so).toBe(1);
  });
});

describe("logical, rotate and shift against the ISA definitions", () => {
  it("logical operations, sign extension, counts", () => {
    fc.assert(
      fc.property(u64, u64, (a, b) => {
        const run = (m: string) => gpr(execute(assemble(m, { RA: 3, RS: 4, RB: 5 }), a, b), 3);
        expect(run("and")).toBe(a & b);
        expect(run("or")).toBe(a | b);
        expect(run("xor")).toBe(a ^ b);
        expect(run("nand")).toBe(~(a & b) & MASK64);
        expect(run("nor")).toBe(~(a | b) & MASK64);
        expect(run("eqv")).toBe(~(a ^ b) & MASK64);
        expect(run("andc")).toBe(a & ~b & MASK64);
        expect(run("orc")).toBe((a | ~b) & MASK64);
        expect(run("extsb")).toBe(BigInt.asUintN(64, BigInt.asIntN(8, a)));
        expect(run("extsh")).toBe(BigInt.asUintN(64, BigInt.asIntN(16, a)));
        expect(run("extsw")).toBe(exts32(a));
        const bits = a.toString(2).padStart(64, "0");
        expect(run("cntlzd")).toBe(BigInt(a === 0n ? 64 : bits.indexOf("1")));
        expect(run("cnttzd")).toBe(BigInt(a === 0n ? 64 : 63 - bits.lastIndexOf("1")));
        expect(run("cntlzw")).toBe(BigInt(Math.clz32(Number(low32(a)))));
        expect(run("popcntd")).toBe(BigInt([...bits].filter((x) => x === "1").length));
        let bytes = 0n;
        for (let i = 0n; i < 64n; i += 8n) if (((a >> i) & 0xffn) === ((b >> i) & 0xffn)) bytes |= 0xffn << i;
        expect(run("cmpb")).toBe(bytes);
      }),
      RUNS,
    );
  });

  it("rotates: rlwinm, rlwnm, rlwimi, rldicl, rldicr, rldic, rldimi, rldcl", () => {
    fc.assert(
      fc.property(
        u64,
        u64,
        fc.integer({ min: 0, max: 63 }),
        fc.integer({ min: 0, max: 63 }),
        fc.integer({ min: 0, max: 31 }),
        (a, old, sh, mb, me) => {
          const ra = (cpu: Cpu) => setGpr(cpu, 3, old);
          const run = (m: string, ops: Partial<Record<OperandName, number>>, b = 0n) =>
            gpr(execute(assemble(m, { RA: 3, RS: 4, RB: 5, ...ops }), a, b, 0n, ra), 3);
          const sh5 = sh & 31, mb5 = mb & 31;
          const m32 = mask(mb5 + 32, me + 32);
          expect(run("rlwinm", { SH: sh5, MB: mb5, ME: me })).toBe(rotl32(a, sh5) & m32);
          expect(run("rlwnm", { MB: mb5, ME: me }, BigInt(sh))).toBe(rotl32(a, sh5) & m32);
          expect(run("rlwimi", { SH: sh5, MB: mb5, ME: me })).toBe(
            (rotl32(a, sh5) & m32) | (old & ~m32 & MASK64),
          );
          expect(run("rldicl", { SH6: sh, MB6: mb })).toBe(rotl64(a, sh) & mask(mb, 63));
          expect(run("rldicr", { SH6: sh, ME6: mb })).toBe(rotl64(a, sh) & mask(0, mb));
          expect(run("rldic", { SH6: sh, MB6: mb })).toBe(rotl64(a, sh) & mask(mb, 63 - sh));
          const m = mask(mb, 63 - sh);
          expect(run("rldimi", { SH6: sh, MB6: mb })).toBe((rotl64(a, sh) & m) | (old & ~m & MASK64));
          expect(run("rldcl", { MB6: mb }, BigInt(sh))).toBe(rotl64(a, sh) & mask(mb, 63));
        },
      ),
      RUNS,
    );
  });

  it("shifts: sld, srd, srad, slw, srw, sraw, sradi, srawi, extswsli with CA", () => {
    fc.assert(
      fc.property(u64, fc.integer({ min: 0, max: 127 }), (a, n) => {
        const run = (m: string, ops: Partial<Record<OperandName, number>> = {}) =>
          execute(assemble(m, { RA: 3, RS: 4, RB: 5, ...ops }), a, BigInt(n));
        const bn = BigInt(n);
        expect(gpr(run("sld"), 3)).toBe(n < 64 ? (a << bn) & MASK64 : 0n);
        expect(gpr(run("srd"), 3)).toBe(n < 64 ? a >> bn : 0n);
        const srad = run("srad");
        const shifted = signed(a) >> BigInt(Math.min(n, 64));
        expect(gpr(srad, 3)).toBe(shifted & MASK64);
        expect(srad.ca).toBe(signed(a) < 0n && shifted << BigInt(Math.min(n, 64)) !== signed(a) ? 1 : 0);
        const n6 = n & 63, w = BigInt.asIntN(32, a);
        expect(gpr(run("slw"), 3)).toBe(n6 < 32 ? (low32(a) << BigInt(n6)) & 0xffffffffn : 0n);
        expect(gpr(run("srw"), 3)).toBe(n6 < 32 ? low32(a) >> BigInt(n6) : 0n);
        const sraw = run("sraw");
        const wordShifted = w >> BigInt(Math.min(n6, 32));
        expect(gpr(sraw, 3)).toBe(wordShifted & MASK64);
        expect(sraw.ca).toBe(w < 0n && wordShifted << BigInt(Math.min(n6, 32)) !== w ? 1 : 0);
        expect(gpr(run("sradi", { SH6: n6 }), 3)).toBe((signed(a) >> BigInt(n6)) & MASK64);
        expect(gpr(run("srawi", { SH: n6 & 31 }), 3)).toBe((w >> BigInt(n6 & 31)) & MASK64);
        expect(gpr(run("extswsli", { SH6: n6 }), 3)).toBe((exts32(a) << BigInt(n6)) & MASK64);
      }),
      RUNS,
    );
  });

  it("compares set the CR field from signed and unsigned order", () => {
    fc.assert(
      fc.property(u64, u64, fc.integer({ min: 0, max: 7 }), (a, b, bf) => {
        const cr = (m: string, l: number) =>
          execute(assemble(m, { BF: bf, L10: l, RA: 4, RB: 5 }), a, b).crField(bf);
        expect(cr("cmp", 1)).toBe(crField(signed(a) < signed(b), signed(a) > signed(b)));
        expect(cr("cmpl", 1)).toBe(crField(a < b, a > b));
        const wa = BigInt.asIntN(32, a), wb = BigInt.asIntN(32, b);
        expect(cr("cmp", 0)).toBe(crField(wa < wb, wa > wb));
        expect(cr("cmpl", 0)).toBe(crField(low32(a) < low32(b), low32(a) > low32(b)));
      }),
      RUNS,
    );
  });

  it("converts between densely packed decimal and BCD (cdtbcd, cbcdtd) for every value", () => {
    for (let value = 0; value < 1000; value++) {
      const bcd = BigInt(parseInt(String(value).padStart(3, "0"), 16));
      // Two declets per word: put the same three digits in both halves of both words.
      const six = (bcd << 12n) | bcd;
      const input = (six << 32n) | six;
      const dpd = gpr(execute(assemble("cbcdtd", { RA: 3, RS: 4 }), input), 3);
      const back = gpr(execute(assemble("cdtbcd", { RA: 3, RS: 4 }), dpd), 3);
      expect(back).toBe(input);
    }
    expect(gpr(execute(assemble("cdtbcd", { RA: 3, RS: 4 }), 0x0ffn), 3)).toBe(0x999n);
    expect(gpr(execute(assemble("cbcdtd", { RA: 3, RS: 4 }), 0x999n), 3)).toBe(0x0ffn);
  });
});

/** Loads a program at BASE and runs it until it stops. */
function runProgram(words: number[], setup?: (cpu: Cpu, memory: FlatMemory) => void, budget = 10_000) {
  const memory = flatMemory();
  const view = new DataView(memory.bytes.buffer);
  words.forEach((w, i) => view.setInt32(4 * i, w, true));
  const cpu = newCpu(memory);
  cpu.pc = BASE;
  setGpr(cpu, 1, BigInt(BASE + SIZE - 256));
  setup?.(cpu, memory);
  const stop = cpu.run(budget);
  return { cpu, memory, view, stop };
}

const SC = assemble("sc", {});

describe("programs", () => {
  it("sums 1..100 in a bdnz loop and stops at sc with pc past it", () => {
    const program = [
      assemble("addi", { RT: 3, RA0: 0, SI: 0 }),
      assemble("addi", { RT: 4, RA0: 0, SI: 100 }),
      assemble("mtspr", { SPR: 9, RS: 4 }),
      assemble("add", { RT: 3, RA: 3, RB: 4 }),
      assemble("addi", { RT: 4, RA0: 4, SI: -1 }),
      assemble("bc", { BO: 16, BI: 0, BD: -8 }),
      SC,
    ];
    const { cpu, stop } = runProgram(program);
    expect(stop).toBe(StopReason.SystemCall);
    expect(cpu.systemCallVectored).toBe(false);
    expect(gpr(cpu, 3)).toBe(5050n);
    expect(cpu.pc).toBe(BASE + 4 * program.length);
    expect(cpu.retired).toBe(3 + 3 * 100 + 1);
  });

  it("calls and returns through LR, and branches on CR0 from a recorded result", () => {
    const program = [
      assemble("b", { LI: 12 }, ["LK"]), // call f at +12
      assemble("addi", { RT: 5, RA0: 0, SI: 1 }),
      SC,
      assemble("subf", { RT: 3, RA: 3, RB: 3 }, ["Rc"]), // f: r3 = 0, CR0 = EQ
      assemble("bc", { BO: 12, BI: 2, BD: 8 }), // beq +8
      assemble("addi", { RT: 6, RA0: 0, SI: 1 }),
      assemble("bclr", { BO: 20, BI: 0 }), // blr
    ];
    const { cpu, stop } = runProgram(program);
    expect(stop).toBe(StopReason.SystemCall);
    expect(gpr(cpu, 5)).toBe(1n);
    expect(gpr(cpu, 6)).toBe(0n);
    expect(cpu.crField(0)).toBe(2);
  });

  it("loads and stores every width, update and byte-reversed forms", () => {
    const data = BASE + 0x8000;
    const program = [
      assemble("std", { RS: 4, DS: 0, RA0: 10 }),
      assemble("lwz", { RT: 5, D: 4, RA0: 10 }),
      assemble("lha", { RT: 6, D: 6, RA0: 10 }),
      assemble("lbzu", { RT: 7, D: 7, RA: 11 }),
      assemble("ldbrx", { RT: 8, RA0: 0, RB: 10 }),
      assemble("stwbrx", { RS: 4, RA0: 0, RB: 12 }),
      assemble("lwa", { RT: 9, DS: 0, RA0: 12 }),
      SC,
    ];
    const { cpu, stop } = runProgram(program, (c) => {
      setGpr(c, 4, 0x8877665544332211n);
      setGpr(c, 10, BigInt(data));
      setGpr(c, 11, BigInt(data));
      setGpr(c, 12, BigInt(data + 16));
    });
    expect(stop).toBe(StopReason.SystemCall);
    expect(gpr(cpu, 5)).toBe(0x88776655n);
    expect(gpr(cpu, 6)).toBe(BigInt.asUintN(64, -0x7789n));
    expect(gpr(cpu, 7)).toBe(0x88n);
    expect(gpr(cpu, 11)).toBe(BigInt(data + 7));
    expect(gpr(cpu, 8)).toBe(0x1122334455667788n);
    expect(gpr(cpu, 9)).toBe(0x11223344n);
  });

  it("pairs lwarx with stwcx. and fails a store without a reservation", () => {
    const program = [
      assemble("lwarx", { RT: 5, RA0: 0, RB: 10 }),
      assemble("addi", { RT: 5, RA0: 5, SI: 1 }),
      assemble("stwcx.", { RS: 5, RA0: 0, RB: 10 }),
      assemble("mfcr", { RT: 6 }),
      assemble("stwcx.", { RS: 5, RA0: 0, RB: 10 }),
      assemble("mfcr", { RT: 7 }),
      assemble("lwz", { RT: 8, D: 0, RA0: 10 }),
      SC,
    ];
    const { cpu } = runProgram(program, (c, memory) => {
      setGpr(c, 10, BigInt(BASE + 0x9000));
      new DataView(memory.bytes.buffer).setInt32(0x9000, 41, true);
    });
    expect((Number(gpr(cpu, 6)) >>> 28) & 0xe).toBe(2);
    expect((Number(gpr(cpu, 7)) >>> 28) & 0xe).toBe(0);
    expect(gpr(cpu, 8)).toBe(42n);
  });

  it("zeroes a 128-byte block with dcbz", () => {
    const { memory, stop } = runProgram([assemble("dcbz", { RA0: 0, RB: 10 }), SC], (c, m) => {
      m.bytes.fill(0xff, 0xa000, 0xa200);
      setGpr(c, 10, BigInt(BASE + 0xa000 + 200));
    });
    expect(stop).toBe(StopReason.SystemCall);
    const block = 0xa000 + 128;
    expect(memory.bytes.subarray(block, block + DCACHE_BLOCK_BYTES).every((x) => x === 0)).toBe(true);
    expect(memory.bytes[block - 1]).toBe(0xff);
    expect(memory.bytes[block + DCACHE_BLOCK_BYTES]).toBe(0xff);
  });

  it("stops at a page fault with pc on the faulting instruction and registers unchanged", () => {
    const program = [
      assemble("addi", { RT: 3, RA0: 0, SI: 7 }),
      assemble("ldu", { RT: 4, DS: 8, RA: 10 }),
      SC,
    ];
    const { cpu, stop } = runProgram(program, (c) => setGpr(c, 10, 0x100n));
    expect(stop).toBe(StopReason.PageFault);
    expect(cpu.pc).toBe(BASE + 4);
    expect(cpu.faultAddress).toBe(0x108n);
    expect(cpu.faultAccess).toBe("read");
    expect(gpr(cpu, 10)).toBe(0x100n);
    expect(gpr(cpu, 3)).toBe(7n);
  });

  it("raises program interrupts for traps, illegal and privileged instructions", () => {
    const trap = runProgram([assemble("tw", { TO: 31, RA: 0, RB: 0 })]);
    expect(trap.stop).toBe(StopReason.Program);
    expect(trap.cpu.programReason).toBe("trap");
    expect(trap.cpu.pc).toBe(BASE);
    const noTrap = runProgram([assemble("tdi", { TO: 4, RA: 3, SI: 1 }), SC]);
    expect(noTrap.stop).toBe(StopReason.SystemCall);
    const illegal = runProgram([0]);
    expect(illegal.stop).toBe(StopReason.Program);
    expect(illegal.cpu.programReason).toBe("illegal-instruction");
    const privileged = runProgram([assemble("mfspr", { RT: 3, SPR: 26 })]);
    expect(privileged.cpu.programReason).toBe("privileged-instruction");
  });

  it("reads the timebase and the SPRs problem state may use", () => {
    const program = [
      assemble("mfspr", { RT: 3, SPR: 268 }),
      assemble("mtspr", { SPR: 815, RS: 4 }),
      assemble("mfspr", { RT: 5, SPR: 815 }),
      assemble("mtspr", { SPR: 1, RS: 6 }),
      assemble("mfspr", { RT: 7, SPR: 1 }),
      SC,
    ];
    const { cpu } = runProgram(program, (c) => {
      setGpr(c, 4, 0xdead_beef_0000_1000n);
      setGpr(c, 6, 0xe004_0000n | 0x7fn);
    });
    expect(gpr(cpu, 3)).toBe(0x1234_5678_9abcn);
    expect(gpr(cpu, 5)).toBe(0xdead_beef_0000_1000n);
    expect(gpr(cpu, 7)).toBe(0xe004_007fn);
    expect([cpu.so, cpu.ov, cpu.ca]).toEqual([1, 1, 1]);
  });

  it("re-decodes code that was overwritten by a store (self-modifying code)", () => {
    const patched = assemble("addi", { RT: 3, RA0: 0, SI: 2 });
    const program = [
      assemble("addi", { RT: 3, RA0: 0, SI: 1 }),
      SC,
      assemble("stw", { RS: 9, D: 0, RA0: 10 }),
      SC,
    ];
    const { cpu, stop } = runProgram(program, (c) => {
      setGpr(c, 9, BigInt(patched >>> 0));
      setGpr(c, 10, BigInt(BASE));
    });
    expect(stop).toBe(StopReason.SystemCall);
    expect(gpr(cpu, 3)).toBe(1n);
    expect(cpu.decodedPages).toBe(1);
    expect(cpu.run(10)).toBe(StopReason.SystemCall);
    cpu.pc = BASE;
    cpu.run(10);
    expect(gpr(cpu, 3)).toBe(2n);
  });

  it("stops with FacilityUnavailable on transactional-memory instructions", () => {
    for (const mnemonic of ["tbegin.", "tend."]) {
      const { cpu, stop } = runProgram([assemble(mnemonic, {})]);
      expect(stop, mnemonic).toBe(StopReason.FacilityUnavailable);
      expect(cpu.unavailableFacility).toBe(INSTRUCTIONS[OP[mnemonic]].facility);
      expect(cpu.pc).toBe(BASE);
    }
  });

  it("implements every instruction of the base, floating-point, vector, VSX, quad-precision, crypto and darn facilities", () => {
    const complete = ["base", "fp", "vmx", "vsx", "ieee128", "crypto", "darn"];
    const missing = INSTRUCTIONS.filter((def, op) => complete.includes(def.facility) && !implemented(op));
    expect(missing.map((d) => d.mnemonic)).toEqual([]);
  });
});

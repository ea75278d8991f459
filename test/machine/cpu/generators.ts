// Seeded random states and operands for the differential tests: floating-point values from every
// class (zeros, denormals, normals across the exponent range, infinities, quiet and signaling NaNs,
// single-precision values, integers, ties), consistent FPSCR states and instruction operands
// drawn from the ISA table.

import { INSTRUCTIONS, OP } from "../../../services/machine/cpu/decode.ts";
import type { FlagName, OperandName } from "../../../services/machine/cpu/isa.ts";
import {
  assemble,
  emptyState,
  HARNESS_GPRS,
  type MachineState,
  MEMORY_BASE,
  MEMORY_BYTES,
} from "./qemu-oracle.ts";

/** mulberry32: small, seeded, reproducible. */
export class Random {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** An integer in [0, n). */
  below(n: number): number {
    return Math.floor((this.next() / 4294967296) * n);
  }
  chance(p: number): boolean {
    return this.next() / 4294967296 < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)];
  }
  u64(): bigint {
    return (BigInt(this.next()) << 32n) | BigInt(this.next());
  }
}

const bitsOf = (x: number) => {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x, true);
  return view.getBigUint64(0, true);
};
const valueOf = (bits: bigint) => {
  const view = new DataView(new ArrayBuffer(8));
  view.setBigUint64(0, BigInt.asUintN(64, bits), true);
  return view.getFloat64(0, true);
};

/** The bits of a double from one of the interesting classes. */
export function interestingDouble(random: Random): bigint {
  const sign = random.chance(0.5) ? 1n << 63n : 0n;
  const fraction = () => random.u64() & ((1n << 52n) - 1n);
  const withExponent = (e: number) => sign | (BigInt(e) << 52n) | fraction();
  switch (random.below(16)) {
    case 0:
      return sign;
    case 1:
      return sign | (0x7ffn << 52n);
    case 2:
      return sign | (0x7ffn << 52n) | (1n << 51n) | (random.chance(0.5) ? fraction() : 0n);
    case 3:
      return sign | (0x7ffn << 52n) | (fraction() & ((1n << 51n) - 1n) | 1n);
    case 4:
      return sign | (fraction() >> BigInt(random.below(52)));
    case 5:
      return withExponent(1 + random.below(2046));
    case 6:
    case 7:
      return withExponent(1023 - 20 + random.below(40));
    case 8:
      return withExponent(2046 - random.below(3));
    case 9:
      return withExponent(1 + random.below(3));
    case 10:
      // A single-precision value: normal, near the edges of the single range, or single denormal.
      return (withExponent(random.pick([896 + random.below(254), 874 + random.below(23), 1149, 1150, 897]))) &
        ~((1n << 29n) - 1n);
    case 11:
      return bitsOf((random.chance(0.5) ? -1 : 1) * random.below(1 << 20));
    case 12:
      return bitsOf((random.chance(0.5) ? -1 : 1) * (random.below(1 << 16) + 0.5));
    case 13:
      return bitsOf((random.chance(0.5) ? -1 : 1) * Number(random.u64() >> BigInt(random.below(64))));
    case 14:
      return withExponent(1023 + 28 + random.below(40));
    default:
      return random.u64();
  }
}

/** A consistent FPSCR: no enabled exception already pending (FEX clear), FX set whenever a sticky bit is. */
export function randomFpscr(random: Random): bigint {
  let low = random.below(4);
  const enables = [0x80, 0x40, 0x20, 0x10, 0x08].filter(() => random.chance(0.12)).reduce((a, b) => a | b, 0);
  low |= enables;
  const sticky = [
    [0x10000000, 0x40],
    [0x08000000, 0x20],
    [0x04000000, 0x10],
    [0x02000000, 0x08],
    [0x01000000, 0x80],
    [0x00800000, 0x80],
    [0x00400000, 0x80],
    [0x00200000, 0x80],
    [0x00100000, 0x80],
    [0x00080000, 0x80],
    [0x00000400, 0x80],
    [0x00000200, 0x80],
    [0x00000100, 0x80],
  ] as const;
  let anyVx = false, anySticky = false;
  for (const [bit, enable] of sticky) {
    if ((enables & enable) === 0 && random.chance(0.15)) {
      low |= bit;
      anySticky = true;
      if (enable === 0x80) anyVx = true;
    }
  }
  if (anyVx) low |= 0x20000000;
  if (anySticky) low |= 0x80000000;
  if (random.chance(0.3)) low |= 0x00020000;
  low |= random.below(32) << 12;
  const drn = BigInt(random.below(8));
  return (drn << 32n) | BigInt(low >>> 0);
}

/** A state with interesting doubles in every VSR doubleword and random GPRs, CR, XER, CTR and memory. */
export function randomState(random: Random): MachineState {
  const s = emptyState();
  const view = new DataView(s.vsr.buffer);
  for (let n = 0; n < 64; n++) {
    view.setBigUint64(16 * n + 8, interestingDouble(random), true);
    view.setBigUint64(16 * n, random.chance(0.5) ? interestingDouble(random) : random.u64(), true);
  }
  for (const r of HARNESS_GPRS) s.gpr[r] = random.u64();
  s.fpscr = randomFpscr(random);
  s.cr = random.next() | 0;
  s.xer = BigInt(random.next() & 0xe00c0000);
  s.ctr = random.u64();
  s.vscr = random.chance(0.5) ? 0x10000 : 0;
  for (let i = 0; i < MEMORY_BYTES; i++) s.memory[i] = random.below(256);
  return s;
}

export function setDouble(s: MachineState, vsr: number, bits: bigint, doubleword = 0): void {
  new DataView(s.vsr.buffer).setBigUint64(
    16 * vsr + (doubleword === 0 ? 8 : 0),
    BigInt.asUintN(64, bits),
    true,
  );
}

export function getDouble(s: MachineState, vsr: number, doubleword = 0): bigint {
  return new DataView(s.vsr.buffer).getBigUint64(16 * vsr + (doubleword === 0 ? 8 : 0), true);
}

/**
 * Operands related so that arithmetic meets its hard cases: b close to −a (cancellation), c close
 * to −a·b (fused multiply-add cancellation), values whose sum or product is a tie.
 */
export function relatedOperand(random: Random, a: bigint, b: bigint): bigint {
  const x = valueOf(a), y = valueOf(b);
  const perturb = (v: number) => valueOf(bitsOf(v) + BigInt(random.below(5) - 2));
  switch (random.below(4)) {
    case 0:
      return bitsOf(perturb(-x));
    case 1:
      return bitsOf(perturb(-(x * y)));
    case 2:
      return bitsOf(x * 2 ** (random.below(60) - 30));
    default:
      return bitsOf(perturb(x));
  }
}

/** A generated instruction and the registers it uses (VSR numbers, GPR numbers), in operand order. */
export interface Operands {
  word: number;
  vsr: number[];
  gpr: number[];
}

const GPR_CHOICES = HARNESS_GPRS.filter((r) => r !== 0);

/**
 * A random encoding of an instruction: register operands drawn so that they sometimes coincide,
 * address operands pointing into the memory window (the state is adjusted), immediates random.
 */
export function randomOperands(
  random: Random,
  mnemonic: string,
  s: MachineState,
  flags: FlagName[] = [],
): Operands {
  const def = INSTRUCTIONS[OP[mnemonic]];
  const values: Partial<Record<OperandName, number>> = {};
  const vsr: number[] = [], gpr: number[] = [];
  const fprPool = [random.below(32), random.below(32), random.below(32)];
  const vsrPool = [random.below(64), random.below(64), random.below(64)];
  const isStorage = def.operands.some((o) => o === "RA0" || o === "D" || o === "DS" || o === "DQ") ||
    (def.operands.includes("RA") && def.operands.includes("RB") && /^(l|st)/.test(mnemonic));
  for (const name of def.operands) {
    switch (name) {
      case "FRT":
      case "FRS":
      case "FRA":
      case "FRB":
      case "FRC":
        values[name] = random.chance(0.7) ? random.pick(fprPool) : random.below(32);
        vsr.push(values[name]!);
        break;
      case "XT":
      case "XS":
      case "XA":
      case "XB":
      case "XC":
      case "XTQ":
        values[name] = random.chance(0.7) ? random.pick(vsrPool) : random.below(64);
        vsr.push(values[name]!);
        break;
      case "VRT":
      case "VRS":
      case "VRA":
      case "VRB":
      case "VRC":
        values[name] = random.chance(0.7) ? random.pick(vsrPool) & 31 : random.below(32);
        vsr.push(32 + values[name]!);
        break;
      case "RT":
      case "RS":
      case "RA":
      case "RB":
      case "RC":
      case "RA0":
        values[name] = random.pick(GPR_CHOICES);
        gpr.push(values[name]!);
        break;
      case "D":
      case "DS":
      case "DQ":
        values[name] = 0;
        break;
      default:
        values[name] = random.next() & 0xffff;
    }
  }
  if (isStorage) {
    // EA = (RA|0) + D or (RA|0) + (RB), inside the window with room for a 16-byte access.
    const offset = random.below(MEMORY_BYTES - 16);
    const displacementName = def.operands.find((o) => o === "D" || o === "DS" || o === "DQ");
    const base = def.operands.includes("RA0") ? "RA0" : "RA";
    if (displacementName) {
      const alignment = displacementName === "DQ" ? 16 : displacementName === "DS" ? 4 : 1;
      const displacement = (random.below(64) - 32) * alignment;
      const baseAddress = MEMORY_BASE + Math.floor(offset / alignment) * alignment - displacement;
      values[displacementName] = displacement;
      s.gpr[values[base]!] = BigInt(baseAddress);
    } else {
      const split = random.below(offset + 1);
      if (def.operands.includes("RB")) {
        if (base === "RA0" && random.chance(0.2)) {
          values.RA0 = 0;
          s.gpr[values.RB!] = BigInt(MEMORY_BASE + offset);
        } else {
          s.gpr[values[base]!] = BigInt(MEMORY_BASE + split);
          s.gpr[values.RB!] = BigInt(offset - split);
          if (values[base] === values.RB) s.gpr[values.RB!] = BigInt(Math.floor((MEMORY_BASE + offset) / 2));
        }
      } else {
        s.gpr[values[base]!] = BigInt(MEMORY_BASE + offset);
      }
    }
  }
  const word = assemble(mnemonic, values, flags);
  return { word, vsr, gpr };
}

/** The bits of a single from one of the interesting classes. */
export function interestingSingle(random: Random): number {
  const sign = random.chance(0.5) ? 0x80000000 : 0;
  const fraction = () => random.next() & 0x7fffff;
  switch (random.below(10)) {
    case 0:
      return sign;
    case 1:
      return sign | 0x7f800000;
    case 2:
      return sign | 0x7fc00000 | fraction();
    case 3:
      return sign | 0x7f800000 | ((fraction() & 0x3fffff) | 1);
    case 4:
      return sign | (fraction() >>> random.below(23));
    case 5:
      return sign | ((1 + random.below(254)) << 23) | fraction();
    case 6:
    case 7:
      return sign | ((127 - 10 + random.below(20)) << 23) | fraction();
    case 8:
      return sign | (random.pick([1, 2, 253, 254, 127 + 31, 127 + 32]) << 23) | fraction();
    default:
      return random.next();
  }
}

/**
 * A state for vector instructions: each VSR holds random bits, interesting doubles, interesting
 * singles, or bytes with zeros and repeats (the patterns string routines compare).
 */
export function randomVectorState(random: Random): MachineState {
  const s = randomState(random);
  const view = new DataView(s.vsr.buffer);
  for (let n = 0; n < 64; n++) {
    switch (random.below(4)) {
      case 0:
        for (let k = 0; k < 16; k += 4) view.setUint32(16 * n + k, random.next(), true);
        break;
      case 1:
        view.setBigUint64(16 * n, interestingDouble(random), true);
        view.setBigUint64(16 * n + 8, interestingDouble(random), true);
        break;
      case 2:
        for (let k = 0; k < 16; k += 4) view.setUint32(16 * n + k, interestingSingle(random) >>> 0, true);
        break;
      default: {
        const alphabet = [0, 0x61, 0x62, 0xff, random.below(256)];
        for (let k = 0; k < 16; k++) s.vsr[16 * n + k] = random.pick(alphabet);
      }
    }
  }
  return s;
}

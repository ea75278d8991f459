// The vector facilities: VMX (Altivec, with the ISA 2.07 and 3.0 additions) and VSX, on the
// 64 × 128-bit VSR file of the CPU (VR n is VSR 32 + n, FPR n is doubleword 0 of VSR n).
//
// Registers are stored as little-endian 128-bit values (see Cpu.vsrBytes), and every instruction
// is written against the ISA's element numbering, where element 0 is the most significant: ISA
// byte i of VSR v is vsrBytes[16v + 15 − i], halfword i is vsrHalves[8v + 7 − i], word i is
// vsrWords[4v + 3 − i] and doubleword i is vsrDoubles[2v + 1 − i]. Lane-wise operations, where
// numbering does not matter, run over storage indices directly. In little-endian mode the quadword
// loads (lvx, lxv, lxvx) are then plain copies of memory, while lxvd2x, lxvw4x, lxvh8x and lxvb16x
// place elements in ISA order and so reverse them.
//
// Results are built in a scratch register and copied to the target last, so that a target that is
// also a source reads correctly. Binary floating-point elements go through the compute layer of
// fpu.ts: VSX scalar instructions set FPRF, FR and FI like their FP counterparts, VSX vector
// instructions only raise exceptions and leave the target unchanged when one is enabled, and VMX
// floating point works in round-to-nearest with VSCR[NJ] flushing denormals and never touches
// the FPSCR.

import type { Cpu, Semantics } from "./interpreter.ts";
import { eaDisplacement, eaIndexed } from "./access.ts";
import { DOUBLE, type FloatFormat, HALF, RoundingMode, SINGLE } from "./float.ts";
import {
  classify,
  compareValues,
  computeAdd,
  computeDivide,
  computeFromInteger,
  computeMultiply,
  computeMultiplyAdd,
  computeReciprocalEstimate,
  computeRound,
  computeRoundToIntegral,
  computeSquareRoot,
  CONVERTED,
  convertToInteger,
  deliverScalar,
  doubleToSingle,
  FI,
  FPCC,
  FprfClass,
  FR,
  IntegerFormat,
  isNaNAt,
  isSignalingNaNAt,
  OUTCOME,
  raiseExceptions,
  RN,
  SINGLE_LIMITS,
  singleToDouble,
  testDivide,
  testSquareRoot,
  valueAt,
  VE,
  VX_CLASSES,
  VXCVI,
  VXSNAN,
  VXVC,
  XX,
} from "./fpu.ts";

// ---------------------------------------------------------------------------------------------
// Operand fields and the scratch result.

const vrt = (w: number) => 32 + ((w >>> 21) & 31);
const vra = (w: number) => 32 + ((w >>> 16) & 31);
const vrb = (w: number) => 32 + ((w >>> 11) & 31);
const vrc = (w: number) => 32 + ((w >>> 6) & 31);
const xt = (w: number) => ((w & 1) << 5) | ((w >>> 21) & 31);
const xa = (w: number) => ((w & 4) << 3) | ((w >>> 16) & 31);
const xb = (w: number) => ((w & 2) << 4) | ((w >>> 11) & 31);
const xc = (w: number) => ((w & 8) << 2) | ((w >>> 6) & 31);
/** XT of the DQ-form lxv/stxv: TX is bit 28. */
const xtq = (w: number) => ((w & 8) << 2) | ((w >>> 21) & 31);
const rt = (w: number) => (w >>> 21) & 31;
const ra = (w: number) => (w >>> 16) & 31;
const rb = (w: number) => (w >>> 11) & 31;
/** The record bit of the VC-form and XX3-form compares (bit 21). */
const recordVector = (w: number) => (w >>> 10) & 1;

const R = new Uint8Array(16);
const RH = new Uint16Array(R.buffer);
const RW = new Int32Array(R.buffer);
/** A second scratch register, for two-step operations. */
const S = new Uint8Array(16);
const SW = new Int32Array(S.buffer);

/** Copies the scratch result to VSR t. */
function commit(cpu: Cpu, t: number): void {
  const words = cpu.vsrWords, base = 4 * t;
  words[base] = RW[0];
  words[base + 1] = RW[1];
  words[base + 2] = RW[2];
  words[base + 3] = RW[3];
}

/** Loads VSR v into the scratch result. */
function fetchInto(cpu: Cpu, v: number, target: Int32Array): void {
  const words = cpu.vsrWords, base = 4 * v;
  target[0] = words[base];
  target[1] = words[base + 1];
  target[2] = words[base + 2];
  target[3] = words[base + 3];
}

const signed8 = (x: number) => (x << 24) >> 24;
const signed16 = (x: number) => (x << 16) >> 16;

/** Set by saturating operations; the instruction then sets VSCR[SAT]. */
let saturated = false;
const SAT = 1;
const NJ = 0x10000;

function clampSigned(x: number, bits: number): number {
  const max = 2 ** (bits - 1) - 1, min = -(2 ** (bits - 1));
  if (x > max) {
    saturated = true;
    return max;
  }
  if (x < min) {
    saturated = true;
    return min;
  }
  return x;
}

function clampUnsigned(x: number, bits: number): number {
  const max = 2 ** bits - 1;
  if (x > max) {
    saturated = true;
    return max;
  }
  if (x < 0) {
    saturated = true;
    return 0;
  }
  return x;
}

function noteSaturation(cpu: Cpu): void {
  if (saturated) cpu.vscr |= SAT;
  saturated = false;
}

// ---------------------------------------------------------------------------------------------
// Lane-wise integer operations.

/** Byte lanes: op on unsigned bytes, result taken modulo 256. */
function lanes8(op: (a: number, b: number) => number): Semantics {
  return (cpu, w) => {
    const bytes = cpu.vsrBytes, a = 16 * vra(w), b = 16 * vrb(w);
    for (let k = 0; k < 16; k++) R[k] = op(bytes[a + k], bytes[b + k]);
    noteSaturation(cpu);
    commit(cpu, vrt(w));
  };
}

/** Halfword lanes: op on unsigned halfwords, result modulo 2^16. */
function lanes16(op: (a: number, b: number) => number): Semantics {
  return (cpu, w) => {
    const halves = cpu.vsrHalves, a = 8 * vra(w), b = 8 * vrb(w);
    for (let k = 0; k < 8; k++) RH[k] = op(halves[a + k], halves[b + k]);
    noteSaturation(cpu);
    commit(cpu, vrt(w));
  };
}

/** Word lanes: op on int32 words. */
function lanes32(op: (a: number, b: number) => number): Semantics {
  return (cpu, w) => {
    const words = cpu.vsrWords, a = 4 * vra(w), b = 4 * vrb(w);
    for (let k = 0; k < 4; k++) RW[k] = op(words[a + k], words[b + k]);
    noteSaturation(cpu);
    commit(cpu, vrt(w));
  };
}

/** Doubleword lanes as BigInts (the doubleword arithmetic is rare enough). */
function lanes64(op: (a: bigint, b: bigint) => bigint): Semantics {
  return (cpu, w) => {
    const a = vra(w), b = vrb(w);
    for (let i = 0; i < 2; i++) {
      setDoublewordBig(
        RW,
        2 * i,
        op(doublewordBig(cpu.vsrWords, 4 * a + 2 * i), doublewordBig(cpu.vsrWords, 4 * b + 2 * i)),
      );
    }
    commit(cpu, vrt(w));
  };
}

/** The unsigned doubleword whose low word is at words[index]. */
function doublewordBig(words: Int32Array, index: number): bigint {
  return (BigInt(words[index + 1] >>> 0) << 32n) | BigInt(words[index] >>> 0);
}

function setDoublewordBig(words: Int32Array, index: number, value: bigint): void {
  words[index] = Number(value & 0xffffffffn) | 0;
  words[index + 1] = Number((value >> 32n) & 0xffffffffn) | 0;
}

/** A VSR as an unsigned 128-bit BigInt. */
function quadwordBig(words: Int32Array, base: number): bigint {
  return (doublewordBig(words, base + 2) << 64n) | doublewordBig(words, base);
}

function setQuadwordBig(target: Int32Array, value: bigint): void {
  const v = BigInt.asUintN(128, value);
  setDoublewordBig(target, 0, v & 0xffffffffffffffffn);
  setDoublewordBig(target, 2, v >> 64n);
}

/** Unary lanes over words. */
function unary32(op: (b: number) => number): Semantics {
  return (cpu, w) => {
    const words = cpu.vsrWords, b = 4 * vrb(w);
    for (let k = 0; k < 4; k++) RW[k] = op(words[b + k]);
    commit(cpu, vrt(w));
  };
}

function unary16(op: (b: number) => number): Semantics {
  return (cpu, w) => {
    const halves = cpu.vsrHalves, b = 8 * vrb(w);
    for (let k = 0; k < 8; k++) RH[k] = op(halves[b + k]);
    commit(cpu, vrt(w));
  };
}

function unary8(op: (b: number) => number): Semantics {
  return (cpu, w) => {
    const bytes = cpu.vsrBytes, b = 16 * vrb(w);
    for (let k = 0; k < 16; k++) R[k] = op(bytes[b + k]);
    commit(cpu, vrt(w));
  };
}

function unary64(op: (b: bigint) => bigint): Semantics {
  return (cpu, w) => {
    const b = vrb(w);
    for (let i = 0; i < 2; i++) setDoublewordBig(RW, 2 * i, op(doublewordBig(cpu.vsrWords, 4 * b + 2 * i)));
    commit(cpu, vrt(w));
  };
}

// Logical operations on whole registers (VMX and VSX share them).

function logical(op: (a: number, b: number) => number, vsx: boolean): Semantics {
  return (cpu, w) => {
    const words = cpu.vsrWords;
    const a = 4 * (vsx ? xa(w) : vra(w)), b = 4 * (vsx ? xb(w) : vrb(w)), t = 4 * (vsx ? xt(w) : vrt(w));
    const r0 = op(words[a], words[b]), r1 = op(words[a + 1], words[b + 1]);
    const r2 = op(words[a + 2], words[b + 2]), r3 = op(words[a + 3], words[b + 3]);
    words[t] = r0;
    words[t + 1] = r1;
    words[t + 2] = r2;
    words[t + 3] = r3;
  };
}

/** xxlor and vor get their own copy: register moves (xxlor t,a,a) are among the most frequent vector instructions. */
function orInstruction(vsx: boolean): Semantics {
  return (cpu, w) => {
    const words = cpu.vsrWords;
    const a = 4 * (vsx ? xa(w) : vra(w)), b = 4 * (vsx ? xb(w) : vrb(w)), t = 4 * (vsx ? xt(w) : vrt(w));
    const r0 = words[a] | words[b], r1 = words[a + 1] | words[b + 1];
    const r2 = words[a + 2] | words[b + 2], r3 = words[a + 3] | words[b + 3];
    words[t] = r0;
    words[t + 1] = r1;
    words[t + 2] = r2;
    words[t + 3] = r3;
  };
}

// Integer arithmetic.

const addModulo8 = (a: number, b: number) => a + b;
const addModulo16 = (a: number, b: number) => a + b;
const addModulo32 = (a: number, b: number) => (a + b) | 0;
const subtractModulo8 = (a: number, b: number) => a - b;
const subtractModulo16 = (a: number, b: number) => a - b;
const subtractModulo32 = (a: number, b: number) => (a - b) | 0;
const carryOut32 = (a: number, b: number) => ((a >>> 0) + (b >>> 0) > 0xffffffff ? 1 : 0);
/** The carry out of a + ~b + 1: 1 when a ≥ b unsigned. */
const borrowComplement32 = (a: number, b: number) => ((a >>> 0) >= (b >>> 0) ? 1 : 0);

/** a + b + carry (VRC bit 127) as 128-bit values, or the carry out of that sum. */
function addQuadword(subtract: boolean, withCarry: boolean, carryOut: boolean): Semantics {
  return (cpu, w) => {
    const words = cpu.vsrWords;
    const a = quadwordBig(words, 4 * vra(w));
    let b = quadwordBig(words, 4 * vrb(w));
    if (subtract) b = BigInt.asUintN(128, ~b);
    const carryIn = withCarry ? BigInt(words[4 * vrc(w)] & 1) : subtract ? 1n : 0n;
    const sum = a + b + carryIn;
    setQuadwordBig(RW, carryOut ? sum >> 128n : sum);
    commit(cpu, vrt(w));
  };
}

function averageUnsigned(a: number, b: number): number {
  return (a + b + 1) >>> 1;
}

const absoluteDifference = (a: number, b: number) => Math.abs(a - b);

/** Multiply even or odd elements of a width into double-width products. */
function multiplyElements(width: 8 | 16 | 32, odd: boolean, signed: boolean): Semantics {
  return (cpu, w) => {
    const a = vra(w), b = vrb(w);
    const count = 128 / (2 * width);
    for (let i = 0; i < count; i++) {
      const element = 2 * i + (odd ? 1 : 0);
      let x = elementValue(cpu, a, width, element), y = elementValue(cpu, b, width, element);
      if (signed) {
        x = signExtend(x, width);
        y = signExtend(y, width);
      }
      if (width === 32) {
        setElementBig(2 * width, i, BigInt(x) * BigInt(y));
      } else {
        setElement(2 * width, i, x * y);
      }
    }
    commit(cpu, vrt(w));
  };
}

/** An unsigned element of VSR v in ISA numbering. */
function elementValue(cpu: Cpu, v: number, width: number, i: number): number {
  switch (width) {
    case 8:
      return cpu.vsrBytes[16 * v + 15 - i];
    case 16:
      return cpu.vsrHalves[8 * v + 7 - i];
    default:
      return cpu.vsrWords[4 * v + 3 - i] >>> 0;
  }
}

function signExtend(x: number, width: number): number {
  return width === 32 ? x | 0 : (x << (32 - width)) >> (32 - width);
}

/** Sets element i (ISA numbering) of the scratch result, modulo 2^width. */
function setElement(width: number, i: number, value: number): void {
  switch (width) {
    case 8:
      R[15 - i] = value;
      break;
    case 16:
      RH[7 - i] = value;
      break;
    case 32:
      RW[3 - i] = value;
      break;
    default:
      setElementBig(64, i, BigInt(value));
  }
}

function setElementBig(width: number, i: number, value: bigint): void {
  if (width === 64) setDoublewordBig(RW, 2 - 2 * i, BigInt.asUintN(64, value));
  else setElement(width, i, Number(BigInt.asIntN(32, value)));
}

const vmuluwm: Semantics = lanes32((a, b) => Math.imul(a, b));

/** vmhaddshs and vmhraddshs: (a × b [+ 0x4000]) >> 15 + c, saturated. */
function multiplyHighAdd(round: boolean): Semantics {
  return (cpu, w) => {
    const halves = cpu.vsrHalves, a = 8 * vra(w), b = 8 * vrb(w), c = 8 * vrc(w);
    for (let k = 0; k < 8; k++) {
      const product = signed16(halves[a + k]) * signed16(halves[b + k]) + (round ? 0x4000 : 0);
      RH[k] = clampSigned((product >> 15) + signed16(halves[c + k]), 16);
    }
    noteSaturation(cpu);
    commit(cpu, vrt(w));
  };
}

const vmladduhm: Semantics = (cpu, w) => {
  const halves = cpu.vsrHalves, a = 8 * vra(w), b = 8 * vrb(w), c = 8 * vrc(w);
  for (let k = 0; k < 8; k++) RH[k] = Math.imul(halves[a + k], halves[b + k]) + halves[c + k];
  commit(cpu, vrt(w));
};

/**
 * Multiply-sum: each word of the result is the sum of the products of the a and b elements in it
 * plus the word of c; modulo 2^32 or saturated.
 */
function multiplySum(width: 8 | 16, aSigned: boolean, bSigned: boolean, saturate: boolean): Semantics {
  return (cpu, w) => {
    const a = vra(w), b = vrb(w), c = vrc(w);
    const perWord = 32 / width;
    for (let i = 0; i < 4; i++) {
      let sum = aSigned || bSigned ? cpu.vsrWords[4 * c + 3 - i] : cpu.vsrWords[4 * c + 3 - i] >>> 0;
      for (let j = 0; j < perWord; j++) {
        const e = perWord * i + j;
        let x = elementValue(cpu, a, width, e), y = elementValue(cpu, b, width, e);
        if (aSigned) x = signExtend(x, width);
        if (bSigned) y = signExtend(y, width);
        sum += x * y;
      }
      RW[3 - i] = saturate ? (aSigned || bSigned ? clampSigned(sum, 32) : clampUnsigned(sum, 32)) : sum | 0;
    }
    noteSaturation(cpu);
    commit(cpu, vrt(w));
  };
}

const vmsumudm: Semantics = (cpu, w) => {
  const words = cpu.vsrWords, a = 4 * vra(w), b = 4 * vrb(w);
  const sum = doublewordBig(words, a + 2) * doublewordBig(words, b + 2) +
    doublewordBig(words, a) * doublewordBig(words, b) + quadwordBig(words, 4 * vrc(w));
  setQuadwordBig(RW, sum);
  commit(cpu, vrt(w));
};

/** vsumsws, vsum2sws: sums of signed words into words 3 (and 1), saturated. */
function sumAcross(pairs: boolean): Semantics {
  return (cpu, w) => {
    const words = cpu.vsrWords, a = 4 * vra(w), b = 4 * vrb(w);
    const word = (base: number, i: number) => words[base + 3 - i];
    RW.fill(0);
    if (pairs) {
      RW[3 - 1] = clampSigned(word(a, 0) + word(a, 1) + word(b, 1), 32);
      RW[3 - 3] = clampSigned(word(a, 2) + word(a, 3) + word(b, 3), 32);
    } else {
      RW[0] = clampSigned(word(a, 0) + word(a, 1) + word(a, 2) + word(a, 3) + word(b, 3), 32);
    }
    noteSaturation(cpu);
    commit(cpu, vrt(w));
  };
}

/** vsum4ubs, vsum4sbs, vsum4shs: the elements of a in each word plus that word of b, saturated. */
function sumQuarters(width: 8 | 16, signed: boolean): Semantics {
  return (cpu, w) => {
    const a = vra(w), b = vrb(w), perWord = 32 / width;
    for (let i = 0; i < 4; i++) {
      let sum = signed ? cpu.vsrWords[4 * b + 3 - i] : cpu.vsrWords[4 * b + 3 - i] >>> 0;
      for (let j = 0; j < perWord; j++) {
        const x = elementValue(cpu, a, width, perWord * i + j);
        sum += signed ? signExtend(x, width) : x;
      }
      RW[3 - i] = signed ? clampSigned(sum, 32) : clampUnsigned(sum, 32);
    }
    noteSaturation(cpu);
    commit(cpu, vrt(w));
  };
}

/** vmul10uq, vmul10cuq, vmul10euq, vmul10ecuq. */
function multiplyByTen(extended: boolean, carry: boolean): Semantics {
  return (cpu, w) => {
    const value = quadwordBig(cpu.vsrWords, 4 * vra(w)) * 10n +
      (extended ? BigInt(cpu.vsrWords[4 * vrb(w)] & 0xf) : 0n);
    setQuadwordBig(RW, carry ? value >> 128n : value);
    commit(cpu, vrt(w));
  };
}

// Compares: all-ones or all-zeros elements; the record forms set CR6 to "all true" and "none true".

function recordCr6(cpu: Cpu, w: number): void {
  if (!recordVector(w)) return;
  const all = (RW[0] & RW[1] & RW[2] & RW[3]) === -1;
  const none = (RW[0] | RW[1] | RW[2] | RW[3]) === 0;
  cpu.setCrField(6, (all ? 8 : 0) | (none ? 2 : 0));
}

function compare8(test: (a: number, b: number) => boolean): Semantics {
  return (cpu, w) => {
    const bytes = cpu.vsrBytes, a = 16 * vra(w), b = 16 * vrb(w);
    for (let k = 0; k < 16; k++) R[k] = test(bytes[a + k], bytes[b + k]) ? 0xff : 0;
    commit(cpu, vrt(w));
    recordCr6(cpu, w);
  };
}

/** vcmpequb gets its own loop: glibc's string functions run it on every 16 bytes. */
const vcmpequb: Semantics = (cpu, w) => {
  const bytes = cpu.vsrBytes, a = 16 * vra(w), b = 16 * vrb(w);
  for (let k = 0; k < 16; k++) R[k] = bytes[a + k] === bytes[b + k] ? 0xff : 0;
  commit(cpu, vrt(w));
  if (recordVector(w)) recordCr6(cpu, w);
};

function compare16(test: (a: number, b: number) => boolean): Semantics {
  return (cpu, w) => {
    const halves = cpu.vsrHalves, a = 8 * vra(w), b = 8 * vrb(w);
    for (let k = 0; k < 8; k++) RH[k] = test(halves[a + k], halves[b + k]) ? 0xffff : 0;
    commit(cpu, vrt(w));
    recordCr6(cpu, w);
  };
}

function compare32(test: (a: number, b: number) => boolean): Semantics {
  return (cpu, w) => {
    const words = cpu.vsrWords, a = 4 * vra(w), b = 4 * vrb(w);
    for (let k = 0; k < 4; k++) RW[k] = test(words[a + k], words[b + k]) ? -1 : 0;
    commit(cpu, vrt(w));
    recordCr6(cpu, w);
  };
}

function compare64(test: (a: bigint, b: bigint) => boolean): Semantics {
  return (cpu, w) => {
    const words = cpu.vsrWords, a = 4 * vra(w), b = 4 * vrb(w);
    for (let k = 0; k < 4; k += 2) {
      const result = test(doublewordBig(words, a + k), doublewordBig(words, b + k)) ? -1 : 0;
      RW[k] = result;
      RW[k + 1] = result;
    }
    commit(cpu, vrt(w));
    recordCr6(cpu, w);
  };
}

// Rotates and shifts.

const rotate8 = (a: number, b: number) => ((a << (b & 7)) | (a >>> (8 - (b & 7)))) & 0xff;
const rotate16 = (a: number, b: number) => ((a << (b & 15)) | (a >>> (16 - (b & 15)))) & 0xffff;
const rotate32 = (a: number, n: number) => ((n & 31) === 0 ? a : (a << (n & 31)) | (a >>> (32 - (n & 31))));
const rotate64 = (a: bigint, b: bigint) =>
  BigInt.asUintN(64, (a << (b & 63n)) | (a >> ((64n - (b & 63n)) & 63n)));

/** MASK(mb, me) of a width (bit 0 the most significant), wrapping when mb > me. */
function maskBig(mb: number, me: number, width: number): bigint {
  const ones = (1n << BigInt(width)) - 1n;
  const from = ones >> BigInt(mb);
  const to = BigInt.asUintN(width, ones << BigInt(width - 1 - me));
  return mb <= me ? from & to : from | to;
}

/** vrlwmi, vrlwnm: rotate each word, then mask (and insert). */
function rotateWordMask(insert: boolean): Semantics {
  return (cpu, w) => {
    const words = cpu.vsrWords, a = 4 * vra(w), b = 4 * vrb(w), t = 4 * vrt(w);
    for (let k = 0; k < 4; k++) {
      const control = words[b + k];
      const mb = (control >>> 16) & 31, me = (control >>> 8) & 31;
      const mask = Number(maskBig(mb, me, 32)) | 0;
      const rotated = rotate32(words[a + k], control & 31);
      RW[k] = insert ? (rotated & mask) | (words[t + k] & ~mask) : rotated & mask;
    }
    commit(cpu, vrt(w));
  };
}

function rotateDoublewordMask(insert: boolean): Semantics {
  return (cpu, w) => {
    const words = cpu.vsrWords, a = 4 * vra(w), b = 4 * vrb(w), t = 4 * vrt(w);
    for (let k = 0; k < 4; k += 2) {
      const control = words[b + k];
      const mask = maskBig((control >>> 16) & 63, (control >>> 8) & 63, 64);
      const rotated = rotate64(doublewordBig(words, a + k), BigInt(control & 63));
      const value = insert ? (rotated & mask) | (doublewordBig(words, t + k) & ~mask) : rotated & mask;
      setDoublewordBig(RW, k, value);
    }
    commit(cpu, vrt(w));
  };
}

/** vsl, vsr: the whole register shifted by VRB[125:127] bits. */
function shiftQuadwordBits(left: boolean): Semantics {
  return (cpu, w) => {
    const value = quadwordBig(cpu.vsrWords, 4 * vra(w));
    const n = BigInt(cpu.vsrBytes[16 * vrb(w)] & 7);
    setQuadwordBig(RW, left ? value << n : value >> n);
    commit(cpu, vrt(w));
  };
}

/** vslo, vsro: the whole register shifted by VRB[121:124] octets. */
function shiftQuadwordOctets(left: boolean): Semantics {
  return (cpu, w) => {
    const value = quadwordBig(cpu.vsrWords, 4 * vra(w));
    const n = BigInt(8 * ((cpu.vsrBytes[16 * vrb(w)] >>> 3) & 15));
    setQuadwordBig(RW, left ? value << n : value >> n);
    commit(cpu, vrt(w));
  };
}

/** vslv, vsrv: each byte shifted by its own count, pulling bits from its neighbour. */
function shiftVariable(left: boolean): Semantics {
  return (cpu, w) => {
    const a = vra(w), b = vrb(w);
    const byte = (i: number) => (i < 0 || i > 15 ? 0 : cpu.vsrBytes[16 * a + 15 - i]);
    for (let i = 0; i < 16; i++) {
      const n = cpu.vsrBytes[16 * b + 15 - i] & 7;
      R[15 - i] = left ? ((byte(i) << 8 | byte(i + 1)) << n) >>> 8 : ((byte(i - 1) << 8 | byte(i)) >>> n);
    }
    commit(cpu, vrt(w));
  };
}

// Permutes, merges, splats, packs and unpacks (ISA element order).

const byteOf = (cpu: Cpu, v: number, i: number) => cpu.vsrBytes[16 * v + 15 - i];
const halfOf = (cpu: Cpu, v: number, i: number) => cpu.vsrHalves[8 * v + 7 - i];
const wordOf = (cpu: Cpu, v: number, i: number) => cpu.vsrWords[4 * v + 3 - i];

/** vperm, vpermr, xxperm, xxpermr: bytes of a || b selected by the bytes of c. */
function permute(reverse: boolean, vsx: boolean): Semantics {
  return (cpu, w) => {
    const bytes = cpu.vsrBytes;
    // xxperm XT,XA,XB permutes XA || XT under the control of XB.
    const first = vsx ? xa(w) : vra(w), second = vsx ? xt(w) : vrb(w), control = vsx ? xb(w) : vrc(w);
    for (let i = 0; i < 16; i++) {
      let index = bytes[16 * control + 15 - i] & 31;
      if (reverse) index = 31 - index;
      R[15 - i] = index < 16 ? bytes[16 * first + 15 - index] : bytes[16 * second + 31 - index];
    }
    commit(cpu, vsx ? xt(w) : vrt(w));
  };
}

const vpermxor: Semantics = (cpu, w) => {
  const a = vra(w), b = vrb(w), c = vrc(w);
  for (let i = 0; i < 16; i++) {
    const control = byteOf(cpu, c, i);
    R[15 - i] = byteOf(cpu, a, control >>> 4) ^ byteOf(cpu, b, control & 15);
  }
  commit(cpu, vrt(w));
};

function select(vsx: boolean): Semantics {
  return (cpu, w) => {
    const words = cpu.vsrWords;
    // vsel VRT,VRA,VRB,VRC and xxsel XT,XA,XB,XC: bits of b where c is 1, else of a.
    const a = 4 * (vsx ? xa(w) : vra(w)), b = 4 * (vsx ? xb(w) : vrb(w)), c = 4 * (vsx ? xc(w) : vrc(w));
    for (let k = 0; k < 4; k++) RW[k] = (words[a + k] & ~words[c + k]) | (words[b + k] & words[c + k]);
    commit(cpu, vsx ? xt(w) : vrt(w));
  };
}

/** vsldoi: bytes SHB..SHB+15 of a || b. */
const vsldoi: Semantics = (cpu, w) => {
  const shift = (w >>> 6) & 15, a = vra(w), b = vrb(w);
  for (let i = 0; i < 16; i++) {
    const index = i + shift;
    R[15 - i] = index < 16 ? byteOf(cpu, a, index) : byteOf(cpu, b, index - 16);
  }
  commit(cpu, vrt(w));
};

/** Merge: interleave elements of a and b from the high (first) or low (second) half. */
function merge(width: 8 | 16 | 32, high: boolean, vsx: boolean): Semantics {
  return (cpu, w) => {
    const a = vsx ? xa(w) : vra(w), b = vsx ? xb(w) : vrb(w);
    const count = 128 / width, half = count / 2, offset = high ? 0 : half;
    for (let i = 0; i < half; i++) {
      setElement(width, 2 * i, elementValue(cpu, a, width, offset + i));
      setElement(width, 2 * i + 1, elementValue(cpu, b, width, offset + i));
    }
    commit(cpu, vsx ? xt(w) : vrt(w));
  };
}

/** vmrgew, vmrgow: the even or odd words of a and b interleaved. */
function mergeEvenOdd(odd: boolean): Semantics {
  return (cpu, w) => {
    const a = vra(w), b = vrb(w), e = odd ? 1 : 0;
    RW[3] = wordOf(cpu, a, e);
    RW[2] = wordOf(cpu, b, e);
    RW[1] = wordOf(cpu, a, e + 2);
    RW[0] = wordOf(cpu, b, e + 2);
    commit(cpu, vrt(w));
  };
}

function splat(width: 8 | 16 | 32): Semantics {
  return (cpu, w) => {
    const count = 128 / width;
    const index = (w >>> 16) & (count - 1);
    const value = elementValue(cpu, vrb(w), width, index);
    for (let i = 0; i < count; i++) setElement(width, i, value);
    commit(cpu, vrt(w));
  };
}

function splatImmediate(width: 8 | 16 | 32): Semantics {
  return (cpu, w) => {
    const value = ((w >>> 16) << 27) >> 27;
    for (let i = 0; i < 128 / width; i++) setElement(width, i, value);
    commit(cpu, vrt(w));
  };
}

/**
 * Pack a and b elements of a width into half-width elements: modulo (the low half), or saturated
 * from signed or unsigned sources into signed or unsigned results.
 */
function pack(
  width: 16 | 32 | 64,
  sourceSigned: boolean,
  targetSigned: boolean,
  saturate: boolean,
): Semantics {
  return (cpu, w) => {
    const a = vra(w), b = vrb(w), count = 128 / width, target = width / 2;
    for (let i = 0; i < 2 * count; i++) {
      const source = i < count ? a : b, index = i % count;
      if (width === 64) {
        let value = doublewordBig(cpu.vsrWords, 4 * source + 2 - 2 * index);
        if (sourceSigned) value = BigInt.asIntN(64, value);
        if (saturate) {
          const max = targetSigned ? 0x7fffffffn : 0xffffffffn, min = targetSigned ? -0x80000000n : 0n;
          if (value > max) {
            value = max;
            saturated = true;
          } else if (value < min) {
            value = min;
            saturated = true;
          }
        }
        setElement(32, i, Number(BigInt.asIntN(32, value)));
      } else {
        let value = elementValue(cpu, source, width, index);
        if (sourceSigned) value = signExtend(value, width);
        if (saturate) value = targetSigned ? clampSigned(value, target) : clampUnsigned(value, target);
        setElement(target, i, value);
      }
    }
    noteSaturation(cpu);
    commit(cpu, vrt(w));
  };
}

/** vpkpx: 32-bit pixels to 1/5/5/5 pixels. */
const vpkpx: Semantics = (cpu, w) => {
  const a = vra(w), b = vrb(w);
  for (let i = 0; i < 8; i++) {
    const pixel = wordOf(cpu, i < 4 ? a : b, i % 4);
    const value = ((pixel >>> 24) & 1) << 15 | ((pixel >>> 19) & 31) << 10 | ((pixel >>> 11) & 31) << 5 |
      ((pixel >>> 3) & 31);
    RH[7 - i] = value;
  }
  commit(cpu, vrt(w));
};

/** Unpack the high or low half of b, sign-extending to double width. */
function unpack(width: 8 | 16 | 32, high: boolean): Semantics {
  return (cpu, w) => {
    const b = vrb(w), count = 64 / width, offset = high ? 0 : count;
    for (let i = 0; i < count; i++) {
      const value = signExtend(elementValue(cpu, b, width, offset + i), width);
      if (width === 32) setElementBig(64, i, BigInt(value));
      else setElement(2 * width, i, value);
    }
    commit(cpu, vrt(w));
  };
}

/** vupkhpx, vupklpx: 1/5/5/5 pixels to 8/8/8/8. */
function unpackPixel(high: boolean): Semantics {
  return (cpu, w) => {
    const b = vrb(w);
    for (let i = 0; i < 4; i++) {
      const pixel = halfOf(cpu, b, (high ? 0 : 4) + i);
      RW[3 - i] = ((pixel & 0x8000 ? 0xff : 0) << 24) | (((pixel >>> 10) & 31) << 16) |
        (((pixel >>> 5) & 31) << 8) |
        (pixel & 31);
    }
    commit(cpu, vrt(w));
  };
}

/** Sign extension within elements: vextsb2w, vextsh2w, vextsb2d, vextsh2d, vextsw2d. */
function extendSignWithin(from: 8 | 16 | 32, to: 32 | 64): Semantics {
  return (cpu, w) => {
    const b = 4 * vrb(w);
    for (let k = 0; k < 4; k += to / 32) {
      const low = cpu.vsrWords[b + k];
      const value = from === 32 ? low : (low << (32 - from)) >> (32 - from);
      RW[k] = value;
      if (to === 64) RW[k + 1] = value >> 31;
    }
    commit(cpu, vrt(w));
  };
}

// Extract and insert.

/** vextractub/uh/uw, vextractd: bytes UIM.. of b into doubleword 0, zero-extended; doubleword 1 zero. */
function extract(size: 1 | 2 | 4 | 8): Semantics {
  return (cpu, w) => {
    const index = (w >>> 16) & 15, b = vrb(w);
    R.fill(0);
    for (let j = 0; j < size && index + j < 16; j++) R[8 + size - 1 - j] = byteOf(cpu, b, index + j);
    commit(cpu, vrt(w));
  };
}

/** vinsertb/h/w/d: the low bytes of b's doubleword 0 into bytes UIM.. of the target. */
function insert(size: 1 | 2 | 4 | 8): Semantics {
  return (cpu, w) => {
    const index = (w >>> 16) & 15, b = vrb(w), t = vrt(w);
    fetchInto(cpu, t, RW);
    for (let j = 0; j < size && index + j < 16; j++) R[15 - index - j] = byteOf(cpu, b, 8 - size + j);
    commit(cpu, t);
  };
}

/** vextu[bhw][lr]x: an element at a byte index from RA (left) or from the right end, into RT. */
function extractToGpr(size: 1 | 2 | 4, fromRight: boolean): Semantics {
  return (cpu, w) => {
    const index = cpu.gpr[2 * ra(w)] & 15, b = vrb(w);
    const first = fromRight ? 16 - size - index : index;
    let value = 0;
    for (let j = 0; j < size; j++) {
      const i = first + j;
      value = value * 256 + (i >= 0 && i < 16 ? byteOf(cpu, b, i) : 0);
    }
    cpu.gpr[2 * rt(w)] = value | 0;
    cpu.gpr[2 * rt(w) + 1] = 0;
  };
}

// Bit manipulation.

function countLeadingZeros(width: number, x: number): number {
  return Math.clz32(x) - (32 - width);
}

function countTrailingZeros(width: number, x: number): number {
  if (x === 0) return width;
  return 31 - Math.clz32(x & -x);
}

function popcount(x: number): number {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (((x + (x >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

const countLeadingZeros64 = (x: bigint) => BigInt(x === 0n ? 64 : 64 - x.toString(2).length);
const countTrailingZeros64 = (x: bigint) => {
  if (x === 0n) return 64n;
  let n = 0n;
  while ((x & 1n) === 0n) {
    x >>= 1n;
    n++;
  }
  return n;
};
const popcount64 = (x: bigint) => BigInt(popcount(Number(x & 0xffffffffn)) + popcount(Number(x >> 32n)));

/** vclzlsbb, vctzlsbb: bytes whose least significant bit is 0, counted from the left or right end. */
function countLsbZeroBytes(fromRight: boolean): Semantics {
  return (cpu, w) => {
    const b = vrb(w);
    let count = 0;
    for (let j = 0; j < 16; j++) {
      if (byteOf(cpu, b, fromRight ? 15 - j : j) & 1) break;
      count++;
    }
    cpu.gpr[2 * rt(w)] = count;
    cpu.gpr[2 * rt(w) + 1] = 0;
  };
}

/** vprtybw, vprtybd, vprtybq: the parity of the least significant bits of the bytes of each element. */
function parity(bytesPerElement: 4 | 8 | 16): Semantics {
  return (cpu, w) => {
    const b = vrb(w);
    R.fill(0);
    for (let e = 0; e < 16 / bytesPerElement; e++) {
      let p = 0;
      for (let j = 0; j < bytesPerElement; j++) p ^= byteOf(cpu, b, e * bytesPerElement + j) & 1;
      R[15 - (e * bytesPerElement + bytesPerElement - 1)] = p;
    }
    commit(cpu, vrt(w));
  };
}

/** vgbbd: each doubleword as an 8×8 bit matrix of bytes, transposed. */
const vgbbd: Semantics = (cpu, w) => {
  const b = vrb(w);
  for (let d = 0; d < 2; d++) {
    for (let i = 0; i < 8; i++) {
      let result = 0;
      for (let j = 0; j < 8; j++) result |= ((byteOf(cpu, b, 8 * d + j) >>> (7 - i)) & 1) << (7 - j);
      R[15 - (8 * d + i)] = result;
    }
  }
  commit(cpu, vrt(w));
};

/** The bit of VSR v at ISA bit index i (0 the most significant). */
const bitOf = (cpu: Cpu, v: number, i: number) => (byteOf(cpu, v, i >>> 3) >>> (7 - (i & 7))) & 1;

const vbpermq: Semantics = (cpu, w) => {
  const a = vra(w), b = vrb(w);
  let mask = 0;
  for (let i = 0; i < 16; i++) {
    const index = byteOf(cpu, b, i);
    mask = (mask << 1) | (index < 128 ? bitOf(cpu, a, index) : 0);
  }
  RW.fill(0);
  RW[2] = mask;
  commit(cpu, vrt(w));
};

const vbpermd: Semantics = (cpu, w) => {
  const a = vra(w), b = vrb(w);
  RW.fill(0);
  for (let d = 0; d < 2; d++) {
    let mask = 0;
    for (let j = 0; j < 8; j++) {
      const index = byteOf(cpu, b, 8 * d + j);
      mask = (mask << 1) | (index < 64 ? bitOf(cpu, a, 64 * d + index) : 0);
    }
    RW[2 - 2 * d] = mask;
  }
  commit(cpu, vrt(w));
};

/** Carry-less product of two values of a width, as a BigInt. */
function carrylessProduct(a: bigint, b: bigint, width: number): bigint {
  let product = 0n;
  for (let i = 0; i < width; i++) if ((b >> BigInt(i)) & 1n) product ^= a << BigInt(i);
  return product;
}

/** vpmsumb/h/w/d: the carry-less products of element pairs, XORed into double-width results. */
function polynomialMultiplySum(width: 8 | 16 | 32 | 64): Semantics {
  return (cpu, w) => {
    const a = vra(w), b = vrb(w);
    if (width === 64) {
      const words = cpu.vsrWords;
      const value = carrylessProduct(doublewordBig(words, 4 * a + 2), doublewordBig(words, 4 * b + 2), 64) ^
        carrylessProduct(doublewordBig(words, 4 * a), doublewordBig(words, 4 * b), 64);
      setQuadwordBig(RW, value);
    } else {
      for (let i = 0; i < 128 / (2 * width); i++) {
        let value = 0n;
        for (const e of [2 * i, 2 * i + 1]) {
          value ^= carrylessProduct(
            BigInt(elementValue(cpu, a, width, e)),
            BigInt(elementValue(cpu, b, width, e)),
            width,
          );
        }
        if (width === 32) setElementBig(64, i, value);
        else setElement(2 * width, i, Number(value));
      }
    }
    commit(cpu, vrt(w));
  };
}

// ---------------------------------------------------------------------------------------------
// VMX floating point: single precision, round to nearest, VSCR[NJ] flushing denormal operands and
// results to zero, no FPSCR. NaN operands propagate quieted in the order a, b, c.

const FLOAT = new Float32Array(1);
const FLOAT_WORD = new Int32Array(FLOAT.buffer);
/** Double-format scratch operands for the compute layer. */
const OPERANDS = new Int32Array(6);

/** The vector rounding environment: round to nearest, no enables. */
const VECTOR_FPSCR = 0;

function isSingleNaN(word: number): boolean {
  return (word & 0x7f800000) === 0x7f800000 && (word & 0x7fffff) !== 0;
}

/** Flushes a single-precision denormal to zero (keeping its sign) when VSCR[NJ] is set. */
function flushed(cpu: Cpu, word: number): number {
  if ((cpu.vscr & NJ) !== 0 && (word & 0x7f800000) === 0) return word & 0x80000000;
  return word;
}

/** The single-precision word of OUTCOME (a single-precision result). */
function outcomeWord(): number {
  if (OUTCOME.nan) return doubleToSingle(OUTCOME.lo, OUTCOME.hi);
  FLOAT[0] = OUTCOME.value;
  return FLOAT_WORD[0];
}

function vectorFloat(
  operation: (a: number, b: number, c: number) => void,
  operandCount: 1 | 2 | 3,
): Semantics {
  return (cpu, w) => {
    // Unary operations (vrfi*, vrefp, vrsqrtefp) take VRB; the others VRA, VRB and VRC.
    const words = cpu.vsrWords,
      a = 4 * (operandCount === 1 ? vrb(w) : vra(w)),
      b = 4 * vrb(w),
      c = 4 * vrc(w);
    for (let k = 0; k < 4; k++) {
      singleToDouble(flushed(cpu, words[a + k]), OPERANDS, 0);
      if (operandCount > 1) singleToDouble(flushed(cpu, words[b + k]), OPERANDS, 2);
      if (operandCount > 2) singleToDouble(flushed(cpu, words[c + k]), OPERANDS, 4);
      operation(0, 2, 4);
      RW[k] = flushed(cpu, outcomeWord());
    }
    commit(cpu, vrt(w));
  };
}

const vaddfp = vectorFloat((a, b) => computeAdd(OPERANDS, a, b, false, SINGLE, VECTOR_FPSCR), 2);
const vsubfp = vectorFloat((a, b) => computeAdd(OPERANDS, a, b, true, SINGLE, VECTOR_FPSCR), 2);
// vmaddfp VRT,VRA,VRC,VRB: a × c + b; the operands arrive as (a, b, c) positions of VRA, VRB, VRC.
const vmaddfp = vectorFloat(
  (a, b, c) => computeMultiplyAdd(OPERANDS, a, c, b, false, false, SINGLE, VECTOR_FPSCR),
  3,
);
const vnmsubfp = vectorFloat(
  (a, b, c) => computeMultiplyAdd(OPERANDS, a, c, b, true, true, SINGLE, VECTOR_FPSCR),
  3,
);

/** vmaxfp, vminfp: NaNs propagate; +0 is greater than −0. */
function vectorMaxMin(max: boolean): Semantics {
  return (cpu, w) => {
    const words = cpu.vsrWords, a = 4 * vra(w), b = 4 * vrb(w);
    for (let k = 0; k < 4; k++) {
      const x = flushed(cpu, words[a + k]), y = flushed(cpu, words[b + k]);
      if (isSingleNaN(x) || isSingleNaN(y)) {
        RW[k] = (isSingleNaN(x) ? x : y) | 0x00400000;
        continue;
      }
      const vx = singleValue(x), vy = singleValue(y);
      let pick: number;
      if (vx === vy) pick = max ? (x < 0 ? y : x) : (x < 0 ? x : y);
      else pick = (vx > vy) === max ? x : y;
      RW[k] = pick;
    }
    commit(cpu, vrt(w));
  };
}

function singleValue(word: number): number {
  FLOAT_WORD[0] = word;
  return FLOAT[0];
}

/** vctsxs, vctuxs: single × 2^UIM to a saturated integer, truncated; NaN gives 0. */
function vmxToInteger(signed: boolean): Semantics {
  return (cpu, w) => {
    const words = cpu.vsrWords, b = 4 * vrb(w), scale = 2 ** ((w >>> 16) & 31);
    for (let k = 0; k < 4; k++) {
      const word = flushed(cpu, words[b + k]);
      if (isSingleNaN(word)) {
        RW[k] = 0;
        continue;
      }
      const value = Math.trunc(singleValue(word) * scale);
      RW[k] = signed ? clampSigned(value, 32) : clampUnsigned(value, 32);
    }
    noteSaturation(cpu);
    commit(cpu, vrt(w));
  };
}

/** vcfsx, vcfux: integer ÷ 2^UIM, rounded to single. */
function vmxFromInteger(signed: boolean): Semantics {
  return (cpu, w) => {
    const words = cpu.vsrWords, b = 4 * vrb(w), scale = 2 ** -((w >>> 16) & 31);
    for (let k = 0; k < 4; k++) {
      const value = signed ? words[b + k] : words[b + k] >>> 0;
      FLOAT[0] = value * scale;
      RW[k] = FLOAT_WORD[0];
    }
    commit(cpu, vrt(w));
  };
}

function vectorRoundToIntegral(mode: RoundingMode): Semantics {
  return vectorFloat((a) => computeRoundToIntegral(OPERANDS, a, mode, SINGLE, VECTOR_FPSCR), 1);
}

const vrefp = vectorFloat((a) => computeReciprocalEstimate(OPERANDS, a, false, SINGLE, VECTOR_FPSCR), 1);
const vrsqrtefp = vectorFloat(
  (a) => computeReciprocalEstimate(OPERANDS, a, true, SINGLE, VECTOR_FPSCR, SINGLE),
  1,
);

/** vexptefp, vlogefp: 2^x and log2(x) estimates, rounded to single. */
function vectorEstimate(f: (x: number) => number): Semantics {
  return (cpu, w) => {
    const words = cpu.vsrWords, b = 4 * vrb(w);
    for (let k = 0; k < 4; k++) {
      const word = flushed(cpu, words[b + k]);
      if (isSingleNaN(word)) {
        RW[k] = word | 0x00400000;
        continue;
      }
      FLOAT[0] = f(singleValue(word));
      RW[k] = flushed(cpu, FLOAT_WORD[0]);
    }
    commit(cpu, vrt(w));
  };
}

function vectorFloatCompare(test: (a: number, b: number) => boolean): Semantics {
  return (cpu, w) => {
    const words = cpu.vsrWords, a = 4 * vra(w), b = 4 * vrb(w);
    for (let k = 0; k < 4; k++) {
      RW[k] = test(singleValue(flushed(cpu, words[a + k])), singleValue(flushed(cpu, words[b + k]))) ? -1 : 0;
    }
    commit(cpu, vrt(w));
    recordCr6(cpu, w);
  };
}

/** vcmpbfp: bit 0 set when a > b, bit 1 when a < −b; the record form sets CR6[2] when all are in bounds. */
const vcmpbfp: Semantics = (cpu, w) => {
  const words = cpu.vsrWords, a = 4 * vra(w), b = 4 * vrb(w);
  for (let k = 0; k < 4; k++) {
    const x = singleValue(flushed(cpu, words[a + k])), y = singleValue(flushed(cpu, words[b + k]));
    const nan = x !== x || y !== y;
    RW[k] = (nan || !(x <= y) ? 0x80000000 : 0) | (nan || !(x >= -y) ? 0x40000000 : 0);
  }
  commit(cpu, vrt(w));
  if (recordVector(w)) cpu.setCrField(6, (RW[0] | RW[1] | RW[2] | RW[3]) === 0 ? 2 : 0);
};

/** VSCR keeps all 32 bits written to it (only NJ and SAT have an effect), as qemu does. */
const mfvscr: Semantics = (cpu, w) => {
  RW.fill(0);
  RW[0] = cpu.vscr;
  commit(cpu, vrt(w));
};

const mtvscr: Semantics = (cpu, w) => {
  cpu.vscr = cpu.vsrWords[4 * vrb(w)];
};

// ---------------------------------------------------------------------------------------------
// VMX loads and stores.

function vmxAddress(cpu: Cpu, w: number, access: "read" | "write"): number {
  return eaIndexed(cpu.gpr, ra(w), rb(w), access);
}

/** Reads 16 bytes at ea (little-endian register image) into a scratch register. */
function loadQuadword(cpu: Cpu, ea: number, target: Int32Array): void {
  cpu.memory.load64(ea, target, 0);
  cpu.memory.load64(ea + 8, target, 2);
}

function storeQuadword(cpu: Cpu, ea: number, source: Int32Array, base: number): void {
  cpu.memory.store64(ea, source[base], source[base + 1]);
  cpu.memory.store64(ea + 8, source[base + 2], source[base + 3]);
  cpu.noteStore(ea, 16);
}

const lvx: Semantics = (cpu, w) => {
  const ea = vmxAddress(cpu, w, "read");
  loadQuadword(cpu, ea - (ea % 16), RW);
  commit(cpu, vrt(w));
};

const stvx: Semantics = (cpu, w) => {
  const ea = vmxAddress(cpu, w, "write");
  storeQuadword(cpu, ea - (ea % 16), cpu.vsrWords, 4 * vrt(w));
};

/** lvebx, lvehx, lvewx: one element into its position; the other elements are left as they were. */
function loadElement(size: 1 | 2 | 4): Semantics {
  return (cpu, w) => {
    const ea = vmxAddress(cpu, w, "read");
    const aligned = ea - (ea % size), offset = aligned % 16, t = vrt(w);
    if (size === 1) cpu.vsrBytes[16 * t + offset] = cpu.memory.load8(aligned);
    else if (size === 2) cpu.vsrHalves[8 * t + offset / 2] = cpu.memory.load16(aligned);
    else cpu.vsrWords[4 * t + offset / 4] = cpu.memory.load32(aligned);
  };
}

function storeElement(size: 1 | 2 | 4): Semantics {
  return (cpu, w) => {
    const ea = vmxAddress(cpu, w, "write");
    const aligned = ea - (ea % size), offset = aligned % 16, s = vrt(w);
    if (size === 1) cpu.memory.store8(aligned, cpu.vsrBytes[16 * s + offset]);
    else if (size === 2) cpu.memory.store16(aligned, cpu.vsrHalves[8 * s + offset / 2]);
    else cpu.memory.store32(aligned, cpu.vsrWords[4 * s + offset / 4]);
    cpu.noteStore(aligned, size);
  };
}

/** lvsl, lvsr: the permute control vector for a misaligned address. */
function loadShift(right: boolean): Semantics {
  return (cpu, w) => {
    const shift = vmxAddress(cpu, w, "read") % 16;
    for (let i = 0; i < 16; i++) R[15 - i] = (right ? 16 - shift : shift) + i;
    commit(cpu, vrt(w));
  };
}

/** Data-stream touches and stops are hints. */
const hint: Semantics = () => {};

// ---------------------------------------------------------------------------------------------
// VSX loads, stores and moves.

function vsxIndexed(cpu: Cpu, w: number, access: "read" | "write"): number {
  return eaIndexed(cpu.gpr, ra(w), rb(w), access);
}

/** lxvx, lxv: the quadword as a little-endian value (a copy of memory). */
const lxvx: Semantics = (cpu, w) => {
  loadQuadword(cpu, vsxIndexed(cpu, w, "read"), RW);
  commit(cpu, xt(w));
};

const lxv: Semantics = (cpu, w) => {
  loadQuadword(cpu, eaDisplacement(cpu.gpr, ra(w), ((w << 16) >> 16) & ~15, "read"), RW);
  commit(cpu, xtq(w));
};

const stxvx: Semantics = (cpu, w) => storeQuadword(cpu, vsxIndexed(cpu, w, "write"), cpu.vsrWords, 4 * xt(w));

const stxv: Semantics = (cpu, w) =>
  storeQuadword(
    cpu,
    eaDisplacement(cpu.gpr, ra(w), ((w << 16) >> 16) & ~15, "write"),
    cpu.vsrWords,
    4 * xtq(w),
  );

/** lxvd2x: doubleword 0 from EA, doubleword 1 from EA + 8. */
const lxvd2x: Semantics = (cpu, w) => {
  const ea = vsxIndexed(cpu, w, "read");
  cpu.memory.load64(ea, RW, 2);
  cpu.memory.load64(ea + 8, RW, 0);
  commit(cpu, xt(w));
};

const stxvd2x: Semantics = (cpu, w) => {
  const ea = vsxIndexed(cpu, w, "write"), words = cpu.vsrWords, s = 4 * xt(w);
  cpu.memory.store64(ea, words[s + 2], words[s + 3]);
  cpu.memory.store64(ea + 8, words[s], words[s + 1]);
  cpu.noteStore(ea, 16);
};

/** lxvw4x, lxvh8x, lxvb16x: elements of a size in ISA order from ascending addresses. */
function loadElements(size: 1 | 2 | 4): Semantics {
  return (cpu, w) => {
    const ea = vsxIndexed(cpu, w, "read");
    loadQuadword(cpu, ea, SW);
    reverseElements(size);
    commit(cpu, xt(w));
  };
}

/** R ← S with the order of its elements of a size reversed. */
function reverseElements(size: 1 | 2 | 4): void {
  for (let i = 0; i < 16; i += size) {
    for (let j = 0; j < size; j++) R[15 - i - (size - 1 - j)] = S[i + j];
  }
}

function storeElements(size: 1 | 2 | 4): Semantics {
  return (cpu, w) => {
    const ea = vsxIndexed(cpu, w, "write");
    fetchInto(cpu, xt(w), SW);
    reverseElements(size);
    storeQuadword(cpu, ea, RW, 0);
  };
}

const lxvdsx: Semantics = (cpu, w) => {
  cpu.memory.load64(vsxIndexed(cpu, w, "read"), RW, 0);
  RW[2] = RW[0];
  RW[3] = RW[1];
  commit(cpu, xt(w));
};

const lxvwsx: Semantics = (cpu, w) => {
  RW.fill(cpu.memory.load32(vsxIndexed(cpu, w, "read")));
  commit(cpu, xt(w));
};

/** The byte count of lxvl and friends: RB[0:7], at most 16. */
const lengthOf = (cpu: Cpu, w: number) => Math.min(16, cpu.gpr[2 * rb(w) + 1] >>> 24);

/** lxvl: the first n bytes, as the low-order bytes of a little-endian value; lxvll: left-justified. */
function loadWithLength(leftJustified: boolean): Semantics {
  return (cpu, w) => {
    const ea = eaDisplacement(cpu.gpr, ra(w), 0, "read");
    const n = lengthOf(cpu, w);
    R.fill(0);
    for (let i = 0; i < n; i++) R[leftJustified ? 15 - i : i] = cpu.memory.load8(ea + i);
    commit(cpu, xt(w));
  };
}

function storeWithLength(leftJustified: boolean): Semantics {
  return (cpu, w) => {
    const ea = eaDisplacement(cpu.gpr, ra(w), 0, "write");
    const n = lengthOf(cpu, w), s = 16 * xt(w);
    for (let i = 0; i < n; i++) cpu.memory.store8(ea + i, cpu.vsrBytes[s + (leftJustified ? 15 - i : i)]);
    if (n > 0) cpu.noteStore(ea, n);
  };
}

/**
 * Scalar loads and GPR moves write doubleword 0 only; doubleword 1 keeps its value (undefined in
 * the ISA, unchanged in qemu).
 */
function writeDoubleword0(cpu: Cpu, t: number, lo: number, hi: number): void {
  const words = cpu.vsrWords;
  words[4 * t + 2] = lo;
  words[4 * t + 3] = hi;
}

const LOADED = new Int32Array(2);

function loadScalar(
  kind: "double" | "single" | "word-signed" | "word" | "byte" | "half",
  form: "x" | "ds",
): Semantics {
  return (cpu, w) => {
    const ea = form === "x"
      ? vsxIndexed(cpu, w, "read")
      : eaDisplacement(cpu.gpr, ra(w), ((w << 16) >> 16) & ~3, "read");
    const t = form === "x" ? xt(w) : vrt(w);
    switch (kind) {
      case "double":
        cpu.memory.load64(ea, LOADED, 0);
        // The DS-form loads (lxsd, lxssp) clear doubleword 1, as ISA 3.0 defines.
        if (form === "ds") cpu.vsrWords.fill(0, 4 * t, 4 * t + 2);
        return writeDoubleword0(cpu, t, LOADED[0], LOADED[1]);
      case "single":
        singleToDouble(cpu.memory.load32(ea), LOADED, 0);
        if (form === "ds") cpu.vsrWords.fill(0, 4 * t, 4 * t + 2);
        return writeDoubleword0(cpu, t, LOADED[0], LOADED[1]);
      case "word-signed": {
        const value = cpu.memory.load32(ea);
        return writeDoubleword0(cpu, t, value, value >> 31);
      }
      case "word":
        return writeDoubleword0(cpu, t, cpu.memory.load32(ea), 0);
      case "byte":
        return writeDoubleword0(cpu, t, cpu.memory.load8(ea), 0);
      case "half":
        return writeDoubleword0(cpu, t, cpu.memory.load16(ea), 0);
    }
  };
}

function storeScalar(kind: "double" | "single" | "word" | "byte" | "half", form: "x" | "ds"): Semantics {
  return (cpu, w) => {
    const ea = form === "x"
      ? vsxIndexed(cpu, w, "write")
      : eaDisplacement(cpu.gpr, ra(w), ((w << 16) >> 16) & ~3, "write");
    const s = form === "x" ? xt(w) : vrt(w), words = cpu.vsrWords;
    const lo = words[4 * s + 2], hi = words[4 * s + 3];
    switch (kind) {
      case "double":
        cpu.memory.store64(ea, lo, hi);
        break;
      case "single":
        cpu.memory.store32(ea, doubleToSingle(lo, hi));
        break;
      case "word":
        cpu.memory.store32(ea, lo);
        break;
      case "byte":
        cpu.memory.store8(ea, lo & 0xff);
        break;
      case "half":
        cpu.memory.store16(ea, lo & 0xffff);
        break;
    }
    cpu.noteStore(ea, kind === "double" ? 8 : kind === "byte" ? 1 : kind === "half" ? 2 : 4);
  };
}

const mfvsrd: Semantics = (cpu, w) => {
  const s = xt(w);
  cpu.gpr[2 * ra(w)] = cpu.vsrWords[4 * s + 2];
  cpu.gpr[2 * ra(w) + 1] = cpu.vsrWords[4 * s + 3];
};

const mfvsrwz: Semantics = (cpu, w) => {
  cpu.gpr[2 * ra(w)] = cpu.vsrWords[4 * xt(w) + 2];
  cpu.gpr[2 * ra(w) + 1] = 0;
};

const mfvsrld: Semantics = (cpu, w) => {
  const s = xt(w);
  cpu.gpr[2 * ra(w)] = cpu.vsrWords[4 * s];
  cpu.gpr[2 * ra(w) + 1] = cpu.vsrWords[4 * s + 1];
};

const mtvsrd: Semantics = (cpu, w) =>
  writeDoubleword0(cpu, xt(w), cpu.gpr[2 * ra(w)], cpu.gpr[2 * ra(w) + 1]);
const mtvsrwa: Semantics = (cpu, w) => {
  const value = cpu.gpr[2 * ra(w)];
  writeDoubleword0(cpu, xt(w), value, value >> 31);
};
const mtvsrwz: Semantics = (cpu, w) => writeDoubleword0(cpu, xt(w), cpu.gpr[2 * ra(w)], 0);

const mtvsrdd: Semantics = (cpu, w) => {
  const a = ra(w), b = rb(w);
  RW[2] = a === 0 ? 0 : cpu.gpr[2 * a];
  RW[3] = a === 0 ? 0 : cpu.gpr[2 * a + 1];
  RW[0] = cpu.gpr[2 * b];
  RW[1] = cpu.gpr[2 * b + 1];
  commit(cpu, xt(w));
};

const mtvsrws: Semantics = (cpu, w) => {
  RW.fill(cpu.gpr[2 * ra(w)]);
  commit(cpu, xt(w));
};

// ---------------------------------------------------------------------------------------------
// VSX permutes, splats and byte reversal.

/** xxpermdi: doubleword DM[0] of XA and DM[1] of XB. */
const xxpermdi: Semantics = (cpu, w) => {
  const dm = (w >>> 8) & 3, a = xa(w), b = xb(w), words = cpu.vsrWords;
  const first = 4 * a + (dm & 2 ? 0 : 2), second = 4 * b + (dm & 1 ? 0 : 2);
  RW[2] = words[first];
  RW[3] = words[first + 1];
  RW[0] = words[second];
  RW[1] = words[second + 1];
  commit(cpu, xt(w));
};

/** xxsldwi: words SHW..SHW+3 of XA || XB. */
const xxsldwi: Semantics = (cpu, w) => {
  const shift = (w >>> 8) & 3, a = xa(w), b = xb(w);
  for (let i = 0; i < 4; i++) {
    const index = i + shift;
    RW[3 - i] = index < 4 ? wordOf(cpu, a, index) : wordOf(cpu, b, index - 4);
  }
  commit(cpu, xt(w));
};

const xxspltw: Semantics = (cpu, w) => {
  RW.fill(wordOf(cpu, xb(w), (w >>> 16) & 3));
  commit(cpu, xt(w));
};

const xxspltib: Semantics = (cpu, w) => {
  R.fill((w >>> 11) & 0xff);
  commit(cpu, xt(w));
};

/** xxextractuw: bytes UIM..UIM+3 of XB into word 1; the rest zero. */
const xxextractuw: Semantics = (cpu, w) => {
  const index = (w >>> 16) & 15, b = xb(w);
  R.fill(0);
  for (let j = 0; j < 4 && index + j < 16; j++) R[11 - j] = byteOf(cpu, b, index + j);
  commit(cpu, xt(w));
};

/** xxinsertw: word 1 of XB into bytes UIM..UIM+3 of XT. */
const xxinsertw: Semantics = (cpu, w) => {
  const index = (w >>> 16) & 15, b = xb(w), t = xt(w);
  fetchInto(cpu, t, RW);
  for (let j = 0; j < 4 && index + j < 16; j++) R[15 - index - j] = byteOf(cpu, b, 4 + j);
  commit(cpu, t);
};

/** xxbrh, xxbrw, xxbrd, xxbrq: the bytes of each element reversed. */
function byteReverse(size: 2 | 4 | 8 | 16): Semantics {
  return (cpu, w) => {
    const b = 16 * xb(w), bytes = cpu.vsrBytes;
    for (let i = 0; i < 16; i += size) {
      for (let j = 0; j < size; j++) R[i + j] = bytes[b + i + size - 1 - j];
    }
    commit(cpu, xt(w));
  };
}

// ---------------------------------------------------------------------------------------------
// VSX binary floating point.

/** The position in cpu.vsrWords of doubleword i's low word. */
const dwAt = (v: number, i: number) => 4 * v + 2 - 2 * i;

/** A VSX scalar operation in double or single precision; the target's doubleword 1 becomes zero. */
function scalar(
  operation: (cpu: Cpu, a: number, b: number, t: number, format: FloatFormat) => void,
  format: FloatFormat,
): Semantics {
  return (cpu, w) => {
    operation(cpu, dwAt(xa(w), 0), dwAt(xb(w), 0), dwAt(xt(w), 0), format);
    deliverScalar(cpu, w, xt(w), format, false);
  };
}

const scalarAdd = (subtract: boolean) => (cpu: Cpu, a: number, b: number, _t: number, f: FloatFormat) =>
  computeAdd(cpu.vsrWords, a, b, subtract, f, cpu.fpscr);
const scalarMultiply = (cpu: Cpu, a: number, b: number, _t: number, f: FloatFormat) =>
  computeMultiply(cpu.vsrWords, a, b, f, cpu.fpscr);
const scalarDivide = (cpu: Cpu, a: number, b: number, _t: number, f: FloatFormat) =>
  computeDivide(cpu.vsrWords, a, b, f, cpu.fpscr);
const scalarSquareRoot = (cpu: Cpu, _a: number, b: number, _t: number, f: FloatFormat) =>
  computeSquareRoot(cpu.vsrWords, b, f, cpu.fpscr);
const scalarReciprocal = (root: boolean) => (cpu: Cpu, _a: number, b: number, _t: number, f: FloatFormat) =>
  computeReciprocalEstimate(cpu.vsrWords, b, root, f, cpu.fpscr);
const scalarRound = (cpu: Cpu, _a: number, b: number, _t: number, f: FloatFormat) =>
  computeRound(cpu.vsrWords, b, f, cpu.fpscr);

/**
 * The multiply-add forms: "a" (XT is the addend: XA × XB + XT) and "m" (XT is the multiplicand:
 * XA × XT + XB).
 */
function scalarMultiplyAdd(addendForm: boolean, subtract: boolean, negate: boolean) {
  return (cpu: Cpu, a: number, b: number, t: number, f: FloatFormat) => {
    if (addendForm) computeMultiplyAdd(cpu.vsrWords, a, b, t, subtract, negate, f, cpu.fpscr);
    else computeMultiplyAdd(cpu.vsrWords, a, t, b, subtract, negate, f, cpu.fpscr);
  };
}

/** Elements of a VSX vector instruction: count, width and their positions. */
interface VectorShape {
  readonly format: FloatFormat;
  readonly count: 2 | 4;
}
const DOUBLES: VectorShape = { format: DOUBLE, count: 2 };
const SINGLES: VectorShape = { format: SINGLE, count: 4 };

/**
 * Copies element i of VSR v into OPERANDS[slot] as a double: a doubleword as it is, a word
 * converted from single precision.
 */
function elementOperand(cpu: Cpu, shape: VectorShape, v: number, i: number, slot: number): void {
  if (shape.count === 2) {
    const at = dwAt(v, i);
    OPERANDS[slot] = cpu.vsrWords[at];
    OPERANDS[slot + 1] = cpu.vsrWords[at + 1];
  } else {
    singleToDouble(cpu.vsrWords[4 * v + 3 - i], OPERANDS, slot);
  }
}

/** Writes OUTCOME as element i of the scratch result. */
function setFloatElement(shape: VectorShape, i: number): void {
  if (shape.count === 4) {
    RW[3 - i] = outcomeWord();
  } else if (OUTCOME.nan) {
    RW[2 - 2 * i] = OUTCOME.lo;
    RW[3 - 2 * i] = OUTCOME.hi;
  } else {
    VECTOR_DOUBLE[0] = OUTCOME.value;
    RW[2 - 2 * i] = VECTOR_DOUBLE_WORDS[0];
    RW[3 - 2 * i] = VECTOR_DOUBLE_WORDS[1];
  }
}

const VECTOR_DOUBLE = new Float64Array(1);
const VECTOR_DOUBLE_WORDS = new Int32Array(VECTOR_DOUBLE.buffer);

/**
 * A VSX vector floating-point instruction: each element through the compute layer, exceptions
 * accumulated; the target is written only when no enabled exception occurred.
 */
function vectorArithmetic(
  shape: VectorShape,
  operation: (fpscr: number) => void,
  operands: 1 | 2 | 3,
): Semantics {
  return (cpu, w) => {
    const a = xa(w), b = xb(w), t = xt(w);
    let raised = 0, trap = false;
    for (let i = 0; i < shape.count; i++) {
      if (operands === 1) {
        elementOperand(cpu, shape, b, i, 0);
      } else {
        elementOperand(cpu, shape, a, i, 0);
        elementOperand(cpu, shape, b, i, 2);
        if (operands === 3) elementOperand(cpu, shape, t, i, 4);
      }
      operation(cpu.fpscr);
      raised |= OUTCOME.raised;
      if (OUTCOME.suppressed) trap = true;
      setFloatElement(shape, i);
    }
    const enabled = trap || enabledIn(raised, cpu.fpscr);
    if (!enabled) commit(cpu, t);
    finishVector(cpu, w, raised);
  };
}

function enabledIn(raised: number, fpscr: number): boolean {
  if (raised & VX_CLASSES && fpscr & VE) return true;
  return ((raised >>> 22) & fpscr & 0x78) !== 0;
}

function finishVector(cpu: Cpu, w: number, raised: number): void {
  if (raiseExceptions(cpu, raised) && cpu.floatingPointExceptions) cpu.programInterrupt("floating-point", w);
}

/** OPERANDS slots: element of XA (or XB for one-operand forms) at 0, XB at 2, XT at 4. */
const A_SLOT = 0, B_SLOT = 2, T_SLOT = 4;

function vectorOperation(shape: VectorShape, kind: "add" | "sub" | "mul" | "div"): Semantics {
  const f = shape.format;
  const operation = kind === "add"
    ? (fpscr: number) => computeAdd(OPERANDS, A_SLOT, B_SLOT, false, f, fpscr)
    : kind === "sub"
    ? (fpscr: number) => computeAdd(OPERANDS, A_SLOT, B_SLOT, true, f, fpscr)
    : kind === "mul"
    ? (fpscr: number) => computeMultiply(OPERANDS, A_SLOT, B_SLOT, f, fpscr)
    : (fpscr: number) => computeDivide(OPERANDS, A_SLOT, B_SLOT, f, fpscr);
  return vectorArithmetic(shape, operation, 2);
}

function vectorUnary(shape: VectorShape, operation: (fpscr: number, format: FloatFormat) => void): Semantics {
  return vectorArithmetic(shape, (fpscr) => operation(fpscr, shape.format), 1);
}

function vectorMultiplyAdd(
  shape: VectorShape,
  addendForm: boolean,
  subtract: boolean,
  negate: boolean,
): Semantics {
  const f = shape.format;
  return vectorArithmetic(
    shape,
    addendForm
      ? (fpscr) => computeMultiplyAdd(OPERANDS, A_SLOT, B_SLOT, T_SLOT, subtract, negate, f, fpscr)
      : (fpscr) => computeMultiplyAdd(OPERANDS, A_SLOT, T_SLOT, B_SLOT, subtract, negate, f, fpscr),
    3,
  );
}

// Maximum and minimum.

type MinMaxKind = "ieee" | "c" | "java";

/**
 * xsmaxdp/xsmindp and the vector forms (IEEE maxNum/minNum): a quiet NaN operand gives the other
 * operand; a signaling NaN raises VXSNAN and the first NaN, quieted, is the result. xsmaxcdp and
 * xsmincdp follow C's a > b ? a : b, giving b when either is a NaN. xsmaxjdp and xsminjdp follow
 * Java: a NaN operand is the result, a first. The C and Java forms return NaNs as they are. In
 * every form +0 is above −0.
 */
function maxMin(
  src: Int32Array,
  ia: number,
  ib: number,
  max: boolean,
  kind: MinMaxKind,
  fpscr: number,
): void {
  const aNaN = isNaNAt(src, ia), bNaN = isNaNAt(src, ib);
  const signaling = isSignalingNaNAt(src, ia) || isSignalingNaNAt(src, ib);
  let pick: number;
  if (aNaN || bNaN) {
    if (kind === "c") pick = ib;
    else if (kind === "java" || signaling || (aNaN && bNaN)) pick = aNaN ? ia : ib;
    else pick = aNaN ? ib : ia;
  } else {
    const a = valueAt(src, ia), b = valueAt(src, ib);
    if (a === b && kind !== "c") {
      const aNegative = src[ia + 1] < 0;
      pick = max ? (aNegative ? ib : ia) : (aNegative ? ia : ib);
    } else {
      pick = (max ? a > b : a < b) ? ia : ib;
    }
  }
  OUTCOME.nan = isNaNAt(src, pick);
  OUTCOME.lo = src[pick];
  OUTCOME.hi = OUTCOME.nan && kind === "ieee" ? src[pick + 1] | 0x00080000 : src[pick + 1];
  if (!OUTCOME.nan) OUTCOME.value = valueAt(src, pick);
  OUTCOME.raised = signaling ? VXSNAN : 0;
  OUTCOME.inexact = false;
  OUTCOME.incremented = false;
  OUTCOME.suppressed = signaling && (fpscr & VE) !== 0;
}

/** Scalar max/min: no FPRF, FR or FI change; doubleword 1 of the target becomes zero. */
function scalarMaxMin(max: boolean, kind: MinMaxKind): Semantics {
  return (cpu, w) => {
    maxMin(cpu.vsrWords, dwAt(xa(w), 0), dwAt(xb(w), 0), max, kind, cpu.fpscr);
    if (!OUTCOME.suppressed) {
      RW[0] = 0;
      RW[1] = 0;
      RW[2] = OUTCOME.lo;
      RW[3] = OUTCOME.hi;
      commit(cpu, xt(w));
    }
    finishVector(cpu, w, OUTCOME.raised);
  };
}

function vectorMaxMinInstruction(shape: VectorShape, max: boolean): Semantics {
  return vectorArithmetic(shape, (fpscr) => {
    maxMin(OPERANDS, A_SLOT, B_SLOT, max, "ieee", fpscr);
    if (shape.count === 4 && OUTCOME.nan) OUTCOME.lo &= ~0x1fffffff;
  }, 2);
}

// Compares.

/** xscmpudp, xscmpodp: like fcmpu and fcmpo, into CR field BF and FPCC. */
function scalarCompare(ordered: boolean): Semantics {
  return (cpu, w) => {
    const words = cpu.vsrWords, a = dwAt(xa(w), 0), b = dwAt(xb(w), 0);
    const result = compareValues(valueAt(words, a), valueAt(words, b));
    cpu.fpscr = (cpu.fpscr & ~FPCC) | (result << 12);
    cpu.setCrField((w >>> 23) & 7, result);
    let raised = 0;
    if (result === 1) {
      const signaling = isSignalingNaNAt(words, a) || isSignalingNaNAt(words, b);
      if (signaling) raised |= VXSNAN;
      if (ordered && (!signaling || (cpu.fpscr & VE) === 0)) raised |= VXVC;
    }
    finishVector(cpu, w, raised);
  };
}

/** xscmpexpdp: compares the biased exponents. */
const xscmpexpdp: Semantics = (cpu, w) => {
  const words = cpu.vsrWords, a = dwAt(xa(w), 0), b = dwAt(xb(w), 0);
  let result: number;
  if (isNaNAt(words, a) || isNaNAt(words, b)) result = 1;
  else {
    const ea = (words[a + 1] >>> 20) & 0x7ff, eb = (words[b + 1] >>> 20) & 0x7ff;
    result = ea < eb ? 8 : ea > eb ? 4 : 2;
  }
  cpu.fpscr = (cpu.fpscr & ~FPCC) | (result << 12);
  cpu.setCrField((w >>> 23) & 7, result);
};

/** xscmpeqdp, xscmpgtdp, xscmpgedp: an all-ones or all-zeros doubleword 0; doubleword 1 zero. */
function scalarCompareMask(test: (a: number, b: number) => boolean, ordered: boolean): Semantics {
  return (cpu, w) => {
    const words = cpu.vsrWords, a = dwAt(xa(w), 0), b = dwAt(xb(w), 0);
    const mask = test(valueAt(words, a), valueAt(words, b)) ? -1 : 0;
    const raised = compareExceptions(words, a, b, ordered, cpu.fpscr);
    if (!((raised & VX_CLASSES) && (cpu.fpscr & VE))) {
      RW[0] = 0;
      RW[1] = 0;
      RW[2] = mask;
      RW[3] = mask;
      commit(cpu, xt(w));
    }
    finishVector(cpu, w, raised);
  };
}

function compareExceptions(src: Int32Array, a: number, b: number, ordered: boolean, fpscr: number): number {
  const signaling = isSignalingNaNAt(src, a) || isSignalingNaNAt(src, b);
  if (signaling) return ordered && !(fpscr & VE) ? VXSNAN | VXVC : VXSNAN;
  if (ordered && (isNaNAt(src, a) || isNaNAt(src, b))) return VXVC;
  return 0;
}

/** xvcmpeq/gt/ge dp/sp: element masks, CR6 when Rc is set. */
function vectorCompare(
  shape: VectorShape,
  test: (a: number, b: number) => boolean,
  ordered: boolean,
): Semantics {
  return (cpu, w) => {
    const a = xa(w), b = xb(w);
    let raised = 0, all = true, none = true;
    for (let i = 0; i < shape.count; i++) {
      elementOperand(cpu, shape, a, i, 0);
      elementOperand(cpu, shape, b, i, 2);
      const result = test(valueAt(OPERANDS, 0), valueAt(OPERANDS, 2));
      raised |= compareExceptions(OPERANDS, 0, 2, ordered, cpu.fpscr);
      all &&= result;
      none &&= !result;
      const mask = result ? -1 : 0;
      if (shape.count === 4) RW[3 - i] = mask;
      else {
        RW[2 - 2 * i] = mask;
        RW[3 - 2 * i] = mask;
      }
    }
    const suppressed = (raised & VX_CLASSES) !== 0 && (cpu.fpscr & VE) !== 0;
    if (!suppressed) commit(cpu, xt(w));
    if (recordVector(w)) cpu.setCrField(6, suppressed ? 0 : (all ? 8 : 0) | (none ? 2 : 0));
    finishVector(cpu, w, raised);
  };
}

// Sign operations (no exceptions, no FPSCR).

/** xsabsdp, xsnabsdp, xsnegdp, xscpsgndp: on doubleword 0; doubleword 1 becomes zero. */
function scalarSign(operation: (hi: number, sign: number) => number): Semantics {
  return (cpu, w) => {
    const words = cpu.vsrWords, b = dwAt(xb(w), 0), a = dwAt(xa(w), 0);
    RW[0] = 0;
    RW[1] = 0;
    RW[2] = words[b];
    RW[3] = operation(words[b + 1], words[a + 1]);
    commit(cpu, xt(w));
  };
}

/** The vector sign operations, on each element's sign bit. */
function vectorSign(wordsPerElement: 1 | 2, operation: (hi: number, sign: number) => number): Semantics {
  return (cpu, w) => {
    const words = cpu.vsrWords, a = 4 * xa(w), b = 4 * xb(w);
    for (let k = 0; k < 4; k++) {
      const isHigh = wordsPerElement === 1 || (k & 1) === 1;
      RW[k] = isHigh ? operation(words[b + k], words[a + k]) : words[b + k];
    }
    commit(cpu, xt(w));
  };
}

const absolute = (hi: number) => hi & 0x7fffffff;
const negativeAbsolute = (hi: number) => hi | 0x80000000;
const negate = (hi: number) => hi ^ 0x80000000;
const copySign = (hi: number, sign: number) => (hi & 0x7fffffff) | (sign & 0x80000000);

// Conversions.

/**
 * xscvdpsp, xvcvdpsp: double to single in the current mode, the single in word 0 (scalar) or words
 * 0 and 2 (vector), duplicated into the neighbouring word as qemu does.
 */
const xscvdpsp: Semantics = (cpu, w) => {
  computeRound(cpu.vsrWords, dwAt(xb(w), 0), SINGLE, cpu.fpscr);
  const suppressed = OUTCOME.suppressed;
  let fpscr = cpu.fpscr & ~(FR | FI);
  if (OUTCOME.inexact) fpscr |= OUTCOME.incremented ? FR | FI : FI;
  if (!suppressed) {
    const word = outcomeWord();
    fpscr = (fpscr & ~0x1f000) | ((OUTCOME.nan ? FprfClass.QuietNaN : classify(OUTCOME.value, SINGLE)) << 12);
    RW.fill(0);
    RW[3] = word;
    RW[2] = word;
    commit(cpu, xt(w));
  }
  cpu.fpscr = fpscr;
  finishVector(cpu, w, OUTCOME.raised);
};

/**
 * xscvdpspn: the non-signalling format conversion (the ISA's ConvertDPtoSP_NS, SINGLE(x)): no
 * rounding and no exceptions; the word goes to words 0 and 1.
 */
const xscvdpspn: Semantics = (cpu, w) => {
  const words = cpu.vsrWords, b = dwAt(xb(w), 0);
  const word = doubleToSingle(words[b], words[b + 1]);
  RW[0] = 0;
  RW[1] = 0;
  RW[2] = word;
  RW[3] = word;
  commit(cpu, xt(w));
};

/** xscvspdp: single (word 0) to double, exact; a signaling NaN raises VXSNAN and is quieted. */
const xscvspdp: Semantics = (cpu, w) => {
  const word = cpu.vsrWords[4 * xb(w) + 3];
  singleToDouble(word, OPERANDS, 0);
  const signaling = isSignalingNaNAt(OPERANDS, 0);
  if (signaling) OPERANDS[1] |= 0x00080000;
  const raised = signaling ? VXSNAN : 0;
  const suppressed = signaling && (cpu.fpscr & VE) !== 0;
  if (!suppressed) {
    RW[0] = 0;
    RW[1] = 0;
    RW[2] = OPERANDS[0];
    RW[3] = OPERANDS[1];
    commit(cpu, xt(w));
    const nan = isNaNAt(OPERANDS, 0);
    const fprf = nan ? FprfClass.QuietNaN : classify(valueAt(OPERANDS, 0), DOUBLE);
    cpu.fpscr = (cpu.fpscr & ~(0x1f000 | FR | FI)) | (fprf << 12);
  }
  finishVector(cpu, w, raised);
};

/** xscvspdpn: single to double without exceptions. */
const xscvspdpn: Semantics = (cpu, w) => {
  singleToDouble(cpu.vsrWords[4 * xb(w) + 3], RW, 2);
  RW[0] = 0;
  RW[1] = 0;
  commit(cpu, xt(w));
};

/**
 * Scalar double to integer (xscvdp[su]x[dw]s), truncating, with FR and FI like fcti*; a word result
 * goes to words 0 and 1 (word 1 in the ISA, both in qemu), doubleword 1 becomes zero.
 */
function scalarToInteger(target: IntegerFormat): Semantics {
  return (cpu, w) => {
    convertToInteger(cpu.vsrWords, dwAt(xb(w), 0), target, RoundingMode.TowardZero);
    let fpscr = cpu.fpscr & ~(FR | FI);
    if (CONVERTED.inexact) fpscr |= CONVERTED.incremented ? FR | FI : FI;
    cpu.fpscr = fpscr;
    const word = target === IntegerFormat.Int32 || target === IntegerFormat.Uint32;
    writeConversion(cpu, w, CONVERTED.raised, () => {
      RW[0] = 0;
      RW[1] = 0;
      RW[2] = CONVERTED.lo;
      RW[3] = word ? CONVERTED.lo : CONVERTED.hi;
    });
  };
}

function writeConversion(cpu: Cpu, w: number, raised: number, build: () => void): void {
  const suppressed = (raised & VXCVI) !== 0 && (cpu.fpscr & VE) !== 0;
  if (!suppressed) {
    build();
    commit(cpu, xt(w));
  }
  finishVector(cpu, w, raised);
}

/**
 * Vector conversions to integers (truncating): doubles to doublewords or to words 0 and 2
 * (duplicated into 1 and 3, as qemu does), singles to words or, from words 0 and 2, to doublewords.
 */
function vectorToInteger(source: VectorShape, target: IntegerFormat): Semantics {
  const wordResults = target === IntegerFormat.Int32 || target === IntegerFormat.Uint32;
  // Source elements in ISA order: all of them, except singles widened to doublewords (0 and 2).
  const elements = source.count === 4 && !wordResults ? [0, 2] : source.count === 4 ? [0, 1, 2, 3] : [0, 1];
  return (cpu, w) => {
    const b = xb(w);
    let raised = 0;
    for (let i = 0; i < elements.length; i++) {
      elementOperand(cpu, source, b, elements[i], 0);
      convertToInteger(OPERANDS, 0, target, RoundingMode.TowardZero);
      raised |= CONVERTED.raised;
      CONVERSIONS[2 * i] = CONVERTED.lo;
      CONVERSIONS[2 * i + 1] = CONVERTED.hi;
    }
    writeConversion(cpu, w, raised, () => {
      if (wordResults && source.count === 4) {
        for (let i = 0; i < 4; i++) RW[3 - i] = CONVERSIONS[2 * i];
      } else if (wordResults) {
        for (let i = 0; i < 2; i++) {
          RW[3 - 2 * i] = CONVERSIONS[2 * i];
          RW[2 - 2 * i] = CONVERSIONS[2 * i];
        }
      } else {
        for (let i = 0; i < 2; i++) {
          RW[2 - 2 * i] = CONVERSIONS[2 * i];
          RW[3 - 2 * i] = CONVERSIONS[2 * i + 1];
        }
      }
    });
  };
}

/** The words of up to four conversion results: low and high word each. */
const CONVERSIONS = new Int32Array(8);

/** Scalar integer (doubleword 0) to double or single (xscv[su]xd[ds]p). */
function scalarFromInteger(signed: boolean, format: FloatFormat): Semantics {
  return (cpu, w) => {
    const b = dwAt(xb(w), 0);
    computeFromInteger(cpu.vsrWords[b], cpu.vsrWords[b + 1], signed, format, cpu.fpscr);
    deliverScalar(cpu, w, xt(w), format, false);
  };
}

/** Vector integer to floating-point conversions. */
function vectorFromInteger(sourceWords: boolean, signed: boolean, target: VectorShape): Semantics {
  return (cpu, w) => {
    const b = xb(w);
    let raised = 0;
    const count = sourceWords && target.count === 4 ? 4 : 2;
    for (let i = 0; i < count; i++) {
      let lo: number, hi: number;
      if (sourceWords) {
        // Words: all four for single results, words 0 and 2 for double results.
        lo = wordOf(cpu, b, target.count === 4 ? i : 2 * i);
        hi = signed ? lo >> 31 : 0;
      } else {
        const at = dwAt(b, i);
        lo = cpu.vsrWords[at];
        hi = cpu.vsrWords[at + 1];
      }
      computeFromInteger(lo, hi, signed, target.format, cpu.fpscr);
      raised |= OUTCOME.raised;
      if (target.count === 4 && !sourceWords) {
        const word = outcomeWord();
        RW[3 - 2 * i] = word;
        RW[2 - 2 * i] = word;
      } else {
        setFloatElement(target, i);
      }
    }
    if (!enabledIn(raised, cpu.fpscr)) commit(cpu, xt(w));
    finishVector(cpu, w, raised);
  };
}

/** xvcvdpsp: doubles to singles in words 0 and 2 (duplicated into 1 and 3). */
const xvcvdpsp: Semantics = (cpu, w) => {
  const b = xb(w);
  let raised = 0, trap = false;
  for (let i = 0; i < 2; i++) {
    computeRound(cpu.vsrWords, dwAt(b, i), SINGLE, cpu.fpscr);
    raised |= OUTCOME.raised;
    trap ||= OUTCOME.suppressed;
    const word = outcomeWord();
    RW[3 - 2 * i] = word;
    RW[2 - 2 * i] = word;
  }
  if (!trap && !enabledIn(raised, cpu.fpscr)) commit(cpu, xt(w));
  finishVector(cpu, w, raised);
};

/** xvcvspdp: singles in words 0 and 2 to doubles. */
const xvcvspdp: Semantics = (cpu, w) => {
  const b = xb(w);
  let raised = 0;
  for (let i = 0; i < 2; i++) {
    singleToDouble(wordOf(cpu, b, 2 * i), OPERANDS, 0);
    if (isSignalingNaNAt(OPERANDS, 0)) {
      raised |= VXSNAN;
      OPERANDS[1] |= 0x00080000;
    }
    RW[2 - 2 * i] = OPERANDS[0];
    RW[3 - 2 * i] = OPERANDS[1];
  }
  if (!enabledIn(raised, cpu.fpscr)) commit(cpu, xt(w));
  finishVector(cpu, w, raised);
};

// Half precision.

/** The binary16 encoding of OUTCOME (a half-precision result, or a NaN whose fraction is cut). */
function outcomeHalf(): number {
  if (OUTCOME.nan) return ((OUTCOME.hi >>> 16) & 0x8000) | 0x7e00 | ((OUTCOME.hi >>> 10) & 0x1ff);
  const x = OUTCOME.value;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const magnitude = Math.abs(x);
  if (magnitude === Infinity) return sign | 0x7c00;
  if (magnitude < HALF.minNormal) return sign | (magnitude * 2 ** 24);
  VECTOR_DOUBLE[0] = magnitude;
  const exponent = ((VECTOR_DOUBLE_WORDS[1] >>> 20) & 0x7ff) - 1023;
  return sign | ((exponent + 15) << 10) | (magnitude * 2 ** (10 - exponent) - 1024);
}

/** Writes the double-format words of a binary16 value to target[index], target[index + 1]. */
function halfToDouble(half: number, target: Int32Array, index: number): void {
  const sign = half & 0x8000 ? 0x80000000 : 0, exponent = (half >>> 10) & 31, fraction = half & 0x3ff;
  if (exponent === 31) {
    target[index] = 0;
    target[index + 1] = sign | 0x7ff00000 | (fraction << 10);
    return;
  }
  VECTOR_DOUBLE[0] = (exponent === 0 ? fraction * 2 ** -24 : (1024 + fraction) * 2 ** (exponent - 25)) *
    (sign ? -1 : 1);
  target[index] = VECTOR_DOUBLE_WORDS[0];
  target[index + 1] = VECTOR_DOUBLE_WORDS[1];
}

/** xscvdphp: double to half in the current mode, into halfword 3; FPRF of the half result. */
const xscvdphp: Semantics = (cpu, w) => {
  computeRound(cpu.vsrWords, dwAt(xb(w), 0), HALF, cpu.fpscr);
  let fpscr = cpu.fpscr & ~(FR | FI);
  if (OUTCOME.inexact) fpscr |= OUTCOME.incremented ? FR | FI : FI;
  if (!OUTCOME.suppressed) {
    const fprf = OUTCOME.nan ? FprfClass.QuietNaN : classify(OUTCOME.value, HALF);
    fpscr = (fpscr & ~0x1f000) | (fprf << 12);
    R.fill(0);
    RH[4] = outcomeHalf();
    commit(cpu, xt(w));
  }
  cpu.fpscr = fpscr;
  finishVector(cpu, w, OUTCOME.raised);
};

/** xscvhpdp: half (halfword 3) to double, exact; a signaling NaN raises VXSNAN and is quieted. */
const xscvhpdp: Semantics = (cpu, w) => {
  halfToDouble(cpu.vsrHalves[8 * xb(w) + 4], OPERANDS, 0);
  const signaling = isSignalingNaNAt(OPERANDS, 0);
  if (signaling) OPERANDS[1] |= 0x00080000;
  const suppressed = signaling && (cpu.fpscr & VE) !== 0;
  if (!suppressed) {
    RW[0] = 0;
    RW[1] = 0;
    RW[2] = OPERANDS[0];
    RW[3] = OPERANDS[1];
    commit(cpu, xt(w));
    const fprf = isNaNAt(OPERANDS, 0) ? FprfClass.QuietNaN : classify(valueAt(OPERANDS, 0), DOUBLE);
    cpu.fpscr = (cpu.fpscr & ~(0x1f000 | FR | FI)) | (fprf << 12);
  }
  finishVector(cpu, w, signaling ? VXSNAN : 0);
};

/** xvcvsphp: each single to half, in the low halfword of its word. */
const xvcvsphp: Semantics = (cpu, w) => {
  const b = xb(w);
  let raised = 0, trap = false;
  R.fill(0);
  for (let i = 0; i < 4; i++) {
    singleToDouble(wordOf(cpu, b, i), OPERANDS, 0);
    computeRound(OPERANDS, 0, HALF, cpu.fpscr);
    raised |= OUTCOME.raised;
    trap ||= OUTCOME.suppressed;
    RH[6 - 2 * i] = outcomeHalf();
  }
  if (!trap && !enabledIn(raised, cpu.fpscr)) commit(cpu, xt(w));
  finishVector(cpu, w, raised);
};

/** xvcvhpsp: the half in the low halfword of each word to single. */
const xvcvhpsp: Semantics = (cpu, w) => {
  const b = xb(w);
  let raised = 0;
  for (let i = 0; i < 4; i++) {
    halfToDouble(cpu.vsrHalves[8 * b + 6 - 2 * i], OPERANDS, 0);
    if (isSignalingNaNAt(OPERANDS, 0)) {
      raised |= VXSNAN;
      OPERANDS[1] |= 0x00080000;
    }
    RW[3 - i] = doubleToSingle(OPERANDS[0], OPERANDS[1]);
  }
  if (!enabledIn(raised, cpu.fpscr)) commit(cpu, xt(w));
  finishVector(cpu, w, raised);
};

/** Rounding to integral values: scalar (FPRF set, FR and FI cleared) and vector. */
function scalarRoundToIntegral(mode: RoundingMode | "current", signalsInexact: boolean): Semantics {
  return (cpu, w) => {
    const b = dwAt(xb(w), 0);
    const effective = mode === "current" ? (cpu.fpscr & RN) as RoundingMode : mode;
    computeRoundToIntegral(cpu.vsrWords, b, effective, DOUBLE, cpu.fpscr);
    if (signalsInexact) markInexactRounding(cpu.vsrWords, b);
    deliverScalar(cpu, w, xt(w), DOUBLE, false);
  };
}

/** xsrdpic, xvrdpic, xvrspic: the rounding is inexact when the value changed. */
function markInexactRounding(src: Int32Array, b: number): void {
  if (OUTCOME.nan || isNaNAt(src, b)) return;
  if (OUTCOME.value !== valueAt(src, b)) {
    OUTCOME.inexact = true;
    OUTCOME.raised |= XX;
  }
}

function vectorRoundToIntegralInstruction(
  shape: VectorShape,
  mode: RoundingMode | "current",
  signalsInexact: boolean,
): Semantics {
  return vectorArithmetic(shape, (fpscr) => {
    const effective = mode === "current" ? (fpscr & RN) as RoundingMode : mode;
    computeRoundToIntegral(OPERANDS, A_SLOT, effective, shape.format, fpscr);
    if (signalsInexact) markInexactRounding(OPERANDS, A_SLOT);
  }, 1);
}

/** xsrsp: round to single precision, the result in double format. */
const xsrsp = scalar(scalarRound, SINGLE);

// Exponent and significand access, test data class.

const xsxexpdp: Semantics = (cpu, w) => {
  cpu.gpr[2 * rt(w)] = (cpu.vsrWords[4 * xb(w) + 3] >>> 20) & 0x7ff;
  cpu.gpr[2 * rt(w) + 1] = 0;
};

const xsxsigdp: Semantics = (cpu, w) => {
  const hi = cpu.vsrWords[4 * xb(w) + 3], exponent = (hi >>> 20) & 0x7ff;
  const implicit = exponent !== 0 && exponent !== 0x7ff ? 0x100000 : 0;
  cpu.gpr[2 * rt(w)] = cpu.vsrWords[4 * xb(w) + 2];
  cpu.gpr[2 * rt(w) + 1] = (hi & 0xfffff) | implicit;
};

const xsiexpdp: Semantics = (cpu, w) => {
  const a = ra(w), b = rb(w);
  RW[0] = 0;
  RW[1] = 0;
  RW[2] = cpu.gpr[2 * a];
  RW[3] = (cpu.gpr[2 * a + 1] & 0x800fffff) | ((cpu.gpr[2 * b] & 0x7ff) << 20);
  commit(cpu, xt(w));
};

function vectorExtractExponent(doubles: boolean): Semantics {
  return (cpu, w) => {
    const b = 4 * xb(w), words = cpu.vsrWords;
    for (let k = 0; k < 4; k++) {
      if (doubles) RW[k] = k & 1 ? 0 : (words[b + k + 1] >>> 20) & 0x7ff;
      else RW[k] = (words[b + k] >>> 23) & 0xff;
    }
    commit(cpu, xt(w));
  };
}

function vectorExtractSignificand(doubles: boolean): Semantics {
  return (cpu, w) => {
    const b = 4 * xb(w), words = cpu.vsrWords;
    for (let k = 0; k < 4; k++) {
      if (doubles) {
        if (k & 1) {
          const exponent = (words[b + k] >>> 20) & 0x7ff;
          RW[k] = (words[b + k] & 0xfffff) | (exponent !== 0 && exponent !== 0x7ff ? 0x100000 : 0);
        } else RW[k] = words[b + k];
      } else {
        const exponent = (words[b + k] >>> 23) & 0xff;
        RW[k] = (words[b + k] & 0x7fffff) | (exponent !== 0 && exponent !== 0xff ? 0x800000 : 0);
      }
    }
    commit(cpu, xt(w));
  };
}

function vectorInsertExponent(doubles: boolean): Semantics {
  return (cpu, w) => {
    const a = 4 * xa(w), b = 4 * xb(w), words = cpu.vsrWords;
    for (let k = 0; k < 4; k++) {
      if (doubles) {
        RW[k] = k & 1 ? (words[a + k] & 0x800fffff) | ((words[b + k - 1] & 0x7ff) << 20) : words[a + k];
      } else {
        RW[k] = (words[a + k] & 0x807fffff) | ((words[b + k] & 0xff) << 23);
      }
    }
    commit(cpu, xt(w));
  };
}

/** Data class bits of DCMX: NaN, +∞, −∞, +0, −0, +denormal, −denormal. */
function dataClassMatch(hi: number, lo: number, single: boolean, dcmx: number): boolean {
  const negative = hi < 0;
  const exponentBits = single ? (hi >>> 23) & 0xff : (hi >>> 20) & 0x7ff;
  const maxExponent = single ? 0xff : 0x7ff;
  const fractionZero = single ? (hi & 0x7fffff) === 0 : (hi & 0xfffff) === 0 && lo === 0;
  if (exponentBits === maxExponent) {
    if (!fractionZero) return (dcmx & 0x40) !== 0;
    return (dcmx & (negative ? 0x10 : 0x20)) !== 0;
  }
  if (exponentBits === 0) {
    if (fractionZero) return (dcmx & (negative ? 0x04 : 0x08)) !== 0;
    return (dcmx & (negative ? 0x01 : 0x02)) !== 0;
  }
  return false;
}

/**
 * xststdcdp, xststdcsp: CR field BF and FPCC ← sign || 0 || match || 0; the sp form classifies the
 * double as a single and sets the last bit when the value is not representable as one.
 */
function scalarTestDataClass(single: boolean): Semantics {
  return (cpu, w) => {
    const words = cpu.vsrWords, b = dwAt(xb(w), 0), dcmx = (w >>> 16) & 0x7f;
    const hi = words[b + 1], lo = words[b];
    let match: boolean;
    const exponent = (hi >>> 20) & 0x7ff;
    if (single && exponent !== 0 && exponent < 897) {
      // Below the single-precision normal range: a single denormal held in double format.
      match = (dcmx & (hi < 0 ? 0x01 : 0x02)) !== 0;
    } else match = dataClassMatch(hi, lo, false, dcmx);
    let notSingle = false;
    if (single) {
      singleToDouble(doubleToSingle(lo, hi), OPERANDS, 0);
      notSingle = OPERANDS[0] !== lo || OPERANDS[1] !== hi;
    }
    const result = (hi < 0 ? 8 : 0) | (match ? 2 : 0) | (notSingle ? 1 : 0);
    cpu.fpscr = (cpu.fpscr & ~FPCC) | (result << 12);
    cpu.setCrField((w >>> 23) & 7, result);
  };
}

function vectorTestDataClass(doubles: boolean): Semantics {
  return (cpu, w) => {
    const words = cpu.vsrWords, b = 4 * xb(w);
    const dcmx = (((w >>> 6) & 1) << 6) | (((w >>> 2) & 1) << 5) | ((w >>> 16) & 31);
    for (let k = 0; k < 4; k += doubles ? 2 : 1) {
      const match = doubles
        ? dataClassMatch(words[b + k + 1], words[b + k], false, dcmx)
        : dataClassMatch(words[b + k], 0, true, dcmx);
      RW[k] = match ? -1 : 0;
      if (doubles) RW[k + 1] = RW[k];
    }
    commit(cpu, xt(w));
  };
}

/** xstdivdp, xstsqrtdp and the vector tests: CR field BF. */
const xstdivdp: Semantics = (cpu, w) => {
  const words = cpu.vsrWords;
  cpu.setCrField((w >>> 23) & 7, testDivide(valueAt(words, dwAt(xa(w), 0)), valueAt(words, dwAt(xb(w), 0))));
};

const xstsqrtdp: Semantics = (cpu, w) =>
  cpu.setCrField((w >>> 23) & 7, testSquareRoot(valueAt(cpu.vsrWords, dwAt(xb(w), 0))));

/** xvtdiv*, xvtsqrt*: FG and FE ORed over the elements, with bit 0 set. */
function vectorTest(shape: VectorShape, divide: boolean): Semantics {
  return (cpu, w) => {
    let flags = 8;
    for (let i = 0; i < shape.count; i++) {
      elementOperand(cpu, shape, xb(w), i, 2);
      const limits = shape.count === 4 ? SINGLE_LIMITS : undefined;
      if (divide) {
        elementOperand(cpu, shape, xa(w), i, 0);
        flags |= testDivide(valueAt(OPERANDS, 0), valueAt(OPERANDS, 2), limits);
      } else {
        flags |= testSquareRoot(valueAt(OPERANDS, 2), limits);
      }
    }
    cpu.setCrField((w >>> 23) & 7, flags);
  };
}

/** The semantics of the vector facilities, by semantics name. */
export const VECTOR_SEMANTICS: Record<string, Semantics> = {
  // VMX loads, stores and control.
  lvebx: loadElement(1),
  lvehx: loadElement(2),
  lvewx: loadElement(4),
  lvx,
  lvxl: lvx,
  stvebx: storeElement(1),
  stvehx: storeElement(2),
  stvewx: storeElement(4),
  stvx,
  stvxl: stvx,
  lvsl: loadShift(false),
  lvsr: loadShift(true),
  dst: hint,
  dstt: hint,
  dstst: hint,
  dststt: hint,
  dss: hint,
  dssall: hint,
  mfvscr,
  mtvscr,
  // Pack, unpack, merge, splat, permute, shift.
  vpkuhum: pack(16, false, false, false),
  vpkuwum: pack(32, false, false, false),
  vpkudum: pack(64, false, false, false),
  vpkuhus: pack(16, false, false, true),
  vpkuwus: pack(32, false, false, true),
  vpkudus: pack(64, false, false, true),
  vpkshus: pack(16, true, false, true),
  vpkswus: pack(32, true, false, true),
  vpksdus: pack(64, true, false, true),
  vpkshss: pack(16, true, true, true),
  vpkswss: pack(32, true, true, true),
  vpksdss: pack(64, true, true, true),
  vpkpx,
  vupkhsb: unpack(8, true),
  vupkhsh: unpack(16, true),
  vupkhsw: unpack(32, true),
  vupklsb: unpack(8, false),
  vupklsh: unpack(16, false),
  vupklsw: unpack(32, false),
  vupkhpx: unpackPixel(true),
  vupklpx: unpackPixel(false),
  vmrghb: merge(8, true, false),
  vmrghh: merge(16, true, false),
  vmrghw: merge(32, true, false),
  vmrglb: merge(8, false, false),
  vmrglh: merge(16, false, false),
  vmrglw: merge(32, false, false),
  vmrgew: mergeEvenOdd(false),
  vmrgow: mergeEvenOdd(true),
  vspltb: splat(8),
  vsplth: splat(16),
  vspltw: splat(32),
  vspltisb: splatImmediate(8),
  vspltish: splatImmediate(16),
  vspltisw: splatImmediate(32),
  vperm: permute(false, false),
  vpermr: permute(true, false),
  vpermxor,
  vsel: select(false),
  vsldoi,
  vsl: shiftQuadwordBits(true),
  vsr: shiftQuadwordBits(false),
  vslo: shiftQuadwordOctets(true),
  vsro: shiftQuadwordOctets(false),
  vslv: shiftVariable(true),
  vsrv: shiftVariable(false),
  vextractub: extract(1),
  vextractuh: extract(2),
  vextractuw: extract(4),
  vextractd: extract(8),
  vinsertb: insert(1),
  vinserth: insert(2),
  vinsertw: insert(4),
  vinsertd: insert(8),
  vextublx: extractToGpr(1, false),
  vextuhlx: extractToGpr(2, false),
  vextuwlx: extractToGpr(4, false),
  vextubrx: extractToGpr(1, true),
  vextuhrx: extractToGpr(2, true),
  vextuwrx: extractToGpr(4, true),
  // Integer arithmetic.
  vaddubm: lanes8(addModulo8),
  vadduhm: lanes16(addModulo16),
  vadduwm: lanes32(addModulo32),
  vaddudm: lanes64((a, b) => BigInt.asUintN(64, a + b)),
  vadduqm: addQuadword(false, false, false),
  vaddcuq: addQuadword(false, false, true),
  vaddcuw: lanes32(carryOut32),
  vaddubs: lanes8((a, b) => clampUnsigned(a + b, 8)),
  vadduhs: lanes16((a, b) => clampUnsigned(a + b, 16)),
  vadduws: lanes32((a, b) => clampUnsigned((a >>> 0) + (b >>> 0), 32)),
  vaddsbs: lanes8((a, b) => clampSigned(signed8(a) + signed8(b), 8)),
  vaddshs: lanes16((a, b) => clampSigned(signed16(a) + signed16(b), 16)),
  vaddsws: lanes32((a, b) => clampSigned(a + b, 32)),
  vaddeuqm: addQuadword(false, true, false),
  vaddecuq: addQuadword(false, true, true),
  vsububm: lanes8(subtractModulo8),
  vsubuhm: lanes16(subtractModulo16),
  vsubuwm: lanes32(subtractModulo32),
  vsubudm: lanes64((a, b) => BigInt.asUintN(64, a - b)),
  vsubuqm: addQuadword(true, false, false),
  vsubcuq: addQuadword(true, false, true),
  vsubcuw: lanes32(borrowComplement32),
  vsububs: lanes8((a, b) => clampUnsigned(a - b, 8)),
  vsubuhs: lanes16((a, b) => clampUnsigned(a - b, 16)),
  vsubuws: lanes32((a, b) => clampUnsigned((a >>> 0) - (b >>> 0), 32)),
  vsubsbs: lanes8((a, b) => clampSigned(signed8(a) - signed8(b), 8)),
  vsubshs: lanes16((a, b) => clampSigned(signed16(a) - signed16(b), 16)),
  vsubsws: lanes32((a, b) => clampSigned(a - b, 32)),
  vsubeuqm: addQuadword(true, true, false),
  vsubecuq: addQuadword(true, true, true),
  vmuleub: multiplyElements(8, false, false),
  vmuleuh: multiplyElements(16, false, false),
  vmuleuw: multiplyElements(32, false, false),
  vmulesb: multiplyElements(8, false, true),
  vmulesh: multiplyElements(16, false, true),
  vmulesw: multiplyElements(32, false, true),
  vmuloub: multiplyElements(8, true, false),
  vmulouh: multiplyElements(16, true, false),
  vmulouw: multiplyElements(32, true, false),
  vmulosb: multiplyElements(8, true, true),
  vmulosh: multiplyElements(16, true, true),
  vmulosw: multiplyElements(32, true, true),
  vmuluwm,
  vmhaddshs: multiplyHighAdd(false),
  vmhraddshs: multiplyHighAdd(true),
  vmladduhm,
  vmsumudm,
  vmsumubm: multiplySum(8, false, false, false),
  vmsummbm: multiplySum(8, true, false, false),
  vmsumuhm: multiplySum(16, false, false, false),
  vmsumuhs: multiplySum(16, false, false, true),
  vmsumshm: multiplySum(16, true, true, false),
  vmsumshs: multiplySum(16, true, true, true),
  vsumsws: sumAcross(false),
  vsum2sws: sumAcross(true),
  vsum4ubs: sumQuarters(8, false),
  vsum4sbs: sumQuarters(8, true),
  vsum4shs: sumQuarters(16, true),
  vnegw: unary32((b) => -b | 0),
  vnegd: unary64((b) => BigInt.asUintN(64, -b)),
  vextsb2w: extendSignWithin(8, 32),
  vextsh2w: extendSignWithin(16, 32),
  vextsb2d: extendSignWithin(8, 64),
  vextsh2d: extendSignWithin(16, 64),
  vextsw2d: extendSignWithin(32, 64),
  vavgub: lanes8(averageUnsigned),
  vavguh: lanes16(averageUnsigned),
  vavguw: lanes32((a, b) => Math.floor(((a >>> 0) + (b >>> 0) + 1) / 2) | 0),
  vavgsb: lanes8((a, b) => (signed8(a) + signed8(b) + 1) >> 1),
  vavgsh: lanes16((a, b) => (signed16(a) + signed16(b) + 1) >> 1),
  vavgsw: lanes32((a, b) => Math.floor((a + b + 1) / 2) | 0),
  vabsdub: lanes8(absoluteDifference),
  vabsduh: lanes16(absoluteDifference),
  vabsduw: lanes32((a, b) => Math.abs((a >>> 0) - (b >>> 0)) | 0),
  vmaxub: lanes8((a, b) => Math.max(a, b)),
  vmaxuh: lanes16((a, b) => Math.max(a, b)),
  vmaxuw: lanes32((a, b) => ((a >>> 0) > (b >>> 0) ? a : b)),
  vmaxud: lanes64((a, b) => (a > b ? a : b)),
  vmaxsb: lanes8((a, b) => (signed8(a) > signed8(b) ? a : b)),
  vmaxsh: lanes16((a, b) => (signed16(a) > signed16(b) ? a : b)),
  vmaxsw: lanes32((a, b) => Math.max(a, b)),
  vmaxsd: lanes64((a, b) => (BigInt.asIntN(64, a) > BigInt.asIntN(64, b) ? a : b)),
  vminub: lanes8((a, b) => Math.min(a, b)),
  vminuh: lanes16((a, b) => Math.min(a, b)),
  vminuw: lanes32((a, b) => ((a >>> 0) < (b >>> 0) ? a : b)),
  vminud: lanes64((a, b) => (a < b ? a : b)),
  vminsb: lanes8((a, b) => (signed8(a) < signed8(b) ? a : b)),
  vminsh: lanes16((a, b) => (signed16(a) < signed16(b) ? a : b)),
  vminsw: lanes32((a, b) => Math.min(a, b)),
  vminsd: lanes64((a, b) => (BigInt.asIntN(64, a) < BigInt.asIntN(64, b) ? a : b)),
  vmul10uq: multiplyByTen(false, false),
  vmul10cuq: multiplyByTen(false, true),
  vmul10euq: multiplyByTen(true, false),
  vmul10ecuq: multiplyByTen(true, true),
  // Integer compare.
  vcmpequb,
  vcmpequh: compare16((a, b) => a === b),
  vcmpequw: compare32((a, b) => a === b),
  vcmpequd: compare64((a, b) => a === b),
  vcmpneb: compare8((a, b) => a !== b),
  vcmpneh: compare16((a, b) => a !== b),
  vcmpnew: compare32((a, b) => a !== b),
  vcmpnezb: compare8((a, b) => a !== b || a === 0 || b === 0),
  vcmpnezh: compare16((a, b) => a !== b || a === 0 || b === 0),
  vcmpnezw: compare32((a, b) => a !== b || a === 0 || b === 0),
  vcmpgtub: compare8((a, b) => a > b),
  vcmpgtuh: compare16((a, b) => a > b),
  vcmpgtuw: compare32((a, b) => (a >>> 0) > (b >>> 0)),
  vcmpgtud: compare64((a, b) => a > b),
  vcmpgtsb: compare8((a, b) => signed8(a) > signed8(b)),
  vcmpgtsh: compare16((a, b) => signed16(a) > signed16(b)),
  vcmpgtsw: compare32((a, b) => a > b),
  vcmpgtsd: compare64((a, b) => BigInt.asIntN(64, a) > BigInt.asIntN(64, b)),
  // Logical, rotate, shift.
  vand: logical((a, b) => a & b, false),
  vandc: logical((a, b) => a & ~b, false),
  vor: orInstruction(false),
  vxor: logical((a, b) => a ^ b, false),
  vnor: logical((a, b) => ~(a | b), false),
  vorc: logical((a, b) => a | ~b, false),
  vnand: logical((a, b) => ~(a & b), false),
  veqv: logical((a, b) => ~(a ^ b), false),
  vrlb: lanes8(rotate8),
  vrlh: lanes16(rotate16),
  vrlw: lanes32(rotate32),
  vrld: lanes64(rotate64),
  vrlwmi: rotateWordMask(true),
  vrldmi: rotateDoublewordMask(true),
  vrlwnm: rotateWordMask(false),
  vrldnm: rotateDoublewordMask(false),
  vslb: lanes8((a, b) => a << (b & 7)),
  vslh: lanes16((a, b) => a << (b & 15)),
  vslw: lanes32((a, b) => a << (b & 31)),
  vsld: lanes64((a, b) => BigInt.asUintN(64, a << (b & 63n))),
  vsrb: lanes8((a, b) => a >>> (b & 7)),
  vsrh: lanes16((a, b) => a >>> (b & 15)),
  vsrw: lanes32((a, b) => a >>> (b & 31)),
  vsrd: lanes64((a, b) => a >> (b & 63n)),
  vsrab: lanes8((a, b) => signed8(a) >> (b & 7)),
  vsrah: lanes16((a, b) => signed16(a) >> (b & 15)),
  vsraw: lanes32((a, b) => a >> (b & 31)),
  vsrad: lanes64((a, b) => BigInt.asUintN(64, BigInt.asIntN(64, a) >> (b & 63n))),
  // Floating point.
  vaddfp,
  vsubfp,
  vmaddfp,
  vnmsubfp,
  vmaxfp: vectorMaxMin(true),
  vminfp: vectorMaxMin(false),
  vctsxs: vmxToInteger(true),
  vctuxs: vmxToInteger(false),
  vcfsx: vmxFromInteger(true),
  vcfux: vmxFromInteger(false),
  vrfim: vectorRoundToIntegral(RoundingMode.TowardNegative),
  vrfin: vectorRoundToIntegral(RoundingMode.NearestEven),
  vrfip: vectorRoundToIntegral(RoundingMode.TowardPositive),
  vrfiz: vectorRoundToIntegral(RoundingMode.TowardZero),
  vrefp,
  vrsqrtefp,
  vexptefp: vectorEstimate((x) => 2 ** x),
  vlogefp: vectorEstimate((x) => Math.log2(x)),
  vcmpeqfp: vectorFloatCompare((a, b) => a === b),
  vcmpgefp: vectorFloatCompare((a, b) => a >= b),
  vcmpgtfp: vectorFloatCompare((a, b) => a > b),
  vcmpbfp,
  // Bit manipulation.
  vclzb: unary8((b) => countLeadingZeros(8, b)),
  vclzh: unary16((b) => countLeadingZeros(16, b)),
  vclzw: unary32((b) => Math.clz32(b)),
  vclzd: unary64(countLeadingZeros64),
  vctzb: unary8((b) => countTrailingZeros(8, b)),
  vctzh: unary16((b) => countTrailingZeros(16, b)),
  vctzw: unary32((b) => countTrailingZeros(32, b)),
  vctzd: unary64(countTrailingZeros64),
  vclzlsbb: countLsbZeroBytes(false),
  vctzlsbb: countLsbZeroBytes(true),
  vprtybw: parity(4),
  vprtybd: parity(8),
  vprtybq: parity(16),
  vpopcntb: unary8(popcount),
  vpopcnth: unary16(popcount),
  vpopcntw: unary32(popcount),
  vpopcntd: unary64(popcount64),
  vgbbd,
  vbpermq,
  vbpermd,
  vpmsumb: polynomialMultiplySum(8),
  vpmsumh: polynomialMultiplySum(16),
  vpmsumw: polynomialMultiplySum(32),
  vpmsumd: polynomialMultiplySum(64),
  // VSX loads and stores.
  lxsdx: loadScalar("double", "x"),
  lxsiwax: loadScalar("word-signed", "x"),
  lxsiwzx: loadScalar("word", "x"),
  lxsspx: loadScalar("single", "x"),
  lxsibzx: loadScalar("byte", "x"),
  lxsihzx: loadScalar("half", "x"),
  lxsd: loadScalar("double", "ds"),
  lxssp: loadScalar("single", "ds"),
  lxvd2x,
  lxvw4x: loadElements(4),
  lxvh8x: loadElements(2),
  lxvb16x: loadElements(1),
  lxvdsx,
  lxvwsx,
  lxvx,
  lxvl: loadWithLength(false),
  lxvll: loadWithLength(true),
  lxv,
  stxsdx: storeScalar("double", "x"),
  stxsiwx: storeScalar("word", "x"),
  stxsspx: storeScalar("single", "x"),
  stxsibx: storeScalar("byte", "x"),
  stxsihx: storeScalar("half", "x"),
  stxsd: storeScalar("double", "ds"),
  stxssp: storeScalar("single", "ds"),
  stxvd2x,
  stxvw4x: storeElements(4),
  stxvh8x: storeElements(2),
  stxvb16x: storeElements(1),
  stxvx,
  stxvl: storeWithLength(false),
  stxvll: storeWithLength(true),
  stxv,
  mfvsrd,
  mfvsrwz,
  mfvsrld,
  mtvsrd,
  mtvsrwa,
  mtvsrwz,
  mtvsrdd,
  mtvsrws,
  // Scalar floating point.
  xsadddp: scalar(scalarAdd(false), DOUBLE),
  xssubdp: scalar(scalarAdd(true), DOUBLE),
  xsmuldp: scalar(scalarMultiply, DOUBLE),
  xsdivdp: scalar(scalarDivide, DOUBLE),
  xsaddsp: scalar(scalarAdd(false), SINGLE),
  xssubsp: scalar(scalarAdd(true), SINGLE),
  xsmulsp: scalar(scalarMultiply, SINGLE),
  xsdivsp: scalar(scalarDivide, SINGLE),
  xssqrtdp: scalar(scalarSquareRoot, DOUBLE),
  xssqrtsp: scalar(scalarSquareRoot, SINGLE),
  xsredp: scalar(scalarReciprocal(false), DOUBLE),
  xsresp: scalar(scalarReciprocal(false), SINGLE),
  xsrsqrtedp: scalar(scalarReciprocal(true), DOUBLE),
  xsrsqrtesp: scalar(scalarReciprocal(true), SINGLE),
  xstdivdp,
  xstsqrtdp,
  xsmaddadp: scalar(scalarMultiplyAdd(true, false, false), DOUBLE),
  xsmaddmdp: scalar(scalarMultiplyAdd(false, false, false), DOUBLE),
  xsmsubadp: scalar(scalarMultiplyAdd(true, true, false), DOUBLE),
  xsmsubmdp: scalar(scalarMultiplyAdd(false, true, false), DOUBLE),
  xsnmaddadp: scalar(scalarMultiplyAdd(true, false, true), DOUBLE),
  xsnmaddmdp: scalar(scalarMultiplyAdd(false, false, true), DOUBLE),
  xsnmsubadp: scalar(scalarMultiplyAdd(true, true, true), DOUBLE),
  xsnmsubmdp: scalar(scalarMultiplyAdd(false, true, true), DOUBLE),
  xsmaddasp: scalar(scalarMultiplyAdd(true, false, false), SINGLE),
  xsmaddmsp: scalar(scalarMultiplyAdd(false, false, false), SINGLE),
  xsmsubasp: scalar(scalarMultiplyAdd(true, true, false), SINGLE),
  xsmsubmsp: scalar(scalarMultiplyAdd(false, true, false), SINGLE),
  xsnmaddasp: scalar(scalarMultiplyAdd(true, false, true), SINGLE),
  xsnmaddmsp: scalar(scalarMultiplyAdd(false, false, true), SINGLE),
  xsnmsubasp: scalar(scalarMultiplyAdd(true, true, true), SINGLE),
  xsnmsubmsp: scalar(scalarMultiplyAdd(false, true, true), SINGLE),
  xsmaxdp: scalarMaxMin(true, "ieee"),
  xsmindp: scalarMaxMin(false, "ieee"),
  xsmaxcdp: scalarMaxMin(true, "c"),
  xsmincdp: scalarMaxMin(false, "c"),
  xsmaxjdp: scalarMaxMin(true, "java"),
  xsminjdp: scalarMaxMin(false, "java"),
  xscmpudp: scalarCompare(false),
  xscmpodp: scalarCompare(true),
  xscmpexpdp,
  xscmpeqdp: scalarCompareMask((a, b) => a === b, false),
  xscmpgtdp: scalarCompareMask((a, b) => a > b, true),
  xscmpgedp: scalarCompareMask((a, b) => a >= b, true),
  xscpsgndp: scalarSign(copySign),
  xsabsdp: scalarSign(absolute),
  xsnabsdp: scalarSign(negativeAbsolute),
  xsnegdp: scalarSign(negate),
  xscvdpsp,
  xscvdpspn,
  xscvspdp,
  xscvspdpn,
  xscvdpsxds: scalarToInteger(IntegerFormat.Int64),
  xscvdpsxws: scalarToInteger(IntegerFormat.Int32),
  xscvdpuxds: scalarToInteger(IntegerFormat.Uint64),
  xscvdpuxws: scalarToInteger(IntegerFormat.Uint32),
  xscvsxddp: scalarFromInteger(true, DOUBLE),
  xscvuxddp: scalarFromInteger(false, DOUBLE),
  xscvsxdsp: scalarFromInteger(true, SINGLE),
  xscvuxdsp: scalarFromInteger(false, SINGLE),
  xscvhpdp,
  xscvdphp,
  xsrdpi: scalarRoundToIntegral(RoundingMode.NearestAway, false),
  xsrdpic: scalarRoundToIntegral("current", true),
  xsrdpim: scalarRoundToIntegral(RoundingMode.TowardNegative, false),
  xsrdpip: scalarRoundToIntegral(RoundingMode.TowardPositive, false),
  xsrdpiz: scalarRoundToIntegral(RoundingMode.TowardZero, false),
  xsrsp,
  xsxexpdp,
  xsxsigdp,
  xsiexpdp,
  xststdcdp: scalarTestDataClass(false),
  xststdcsp: scalarTestDataClass(true),
  // Vector floating point.
  xvadddp: vectorOperation(DOUBLES, "add"),
  xvsubdp: vectorOperation(DOUBLES, "sub"),
  xvmuldp: vectorOperation(DOUBLES, "mul"),
  xvdivdp: vectorOperation(DOUBLES, "div"),
  xvaddsp: vectorOperation(SINGLES, "add"),
  xvsubsp: vectorOperation(SINGLES, "sub"),
  xvmulsp: vectorOperation(SINGLES, "mul"),
  xvdivsp: vectorOperation(SINGLES, "div"),
  xvsqrtdp: vectorUnary(DOUBLES, (fpscr, f) => computeSquareRoot(OPERANDS, A_SLOT, f, fpscr)),
  xvsqrtsp: vectorUnary(SINGLES, (fpscr, f) => computeSquareRoot(OPERANDS, A_SLOT, f, fpscr)),
  xvredp: vectorUnary(DOUBLES, (fpscr, f) => computeReciprocalEstimate(OPERANDS, A_SLOT, false, f, fpscr)),
  xvresp: vectorUnary(SINGLES, (fpscr, f) => computeReciprocalEstimate(OPERANDS, A_SLOT, false, f, fpscr)),
  xvrsqrtedp: vectorUnary(DOUBLES, (fpscr, f) => computeReciprocalEstimate(OPERANDS, A_SLOT, true, f, fpscr)),
  xvrsqrtesp: vectorUnary(
    SINGLES,
    (fpscr, f) => computeReciprocalEstimate(OPERANDS, A_SLOT, true, f, fpscr, f),
  ),
  xvtdivdp: vectorTest(DOUBLES, true),
  xvtdivsp: vectorTest(SINGLES, true),
  xvtsqrtdp: vectorTest(DOUBLES, false),
  xvtsqrtsp: vectorTest(SINGLES, false),
  xvmaddadp: vectorMultiplyAdd(DOUBLES, true, false, false),
  xvmaddmdp: vectorMultiplyAdd(DOUBLES, false, false, false),
  xvmsubadp: vectorMultiplyAdd(DOUBLES, true, true, false),
  xvmsubmdp: vectorMultiplyAdd(DOUBLES, false, true, false),
  xvnmaddadp: vectorMultiplyAdd(DOUBLES, true, false, true),
  xvnmaddmdp: vectorMultiplyAdd(DOUBLES, false, false, true),
  xvnmsubadp: vectorMultiplyAdd(DOUBLES, true, true, true),
  xvnmsubmdp: vectorMultiplyAdd(DOUBLES, false, true, true),
  xvmaddasp: vectorMultiplyAdd(SINGLES, true, false, false),
  xvmaddmsp: vectorMultiplyAdd(SINGLES, false, false, false),
  xvmsubasp: vectorMultiplyAdd(SINGLES, true, true, false),
  xvmsubmsp: vectorMultiplyAdd(SINGLES, false, true, false),
  xvnmaddasp: vectorMultiplyAdd(SINGLES, true, false, true),
  xvnmaddmsp: vectorMultiplyAdd(SINGLES, false, false, true),
  xvnmsubasp: vectorMultiplyAdd(SINGLES, true, true, true),
  xvnmsubmsp: vectorMultiplyAdd(SINGLES, false, true, true),
  xvmaxdp: vectorMaxMinInstruction(DOUBLES, true),
  xvmindp: vectorMaxMinInstruction(DOUBLES, false),
  xvmaxsp: vectorMaxMinInstruction(SINGLES, true),
  xvminsp: vectorMaxMinInstruction(SINGLES, false),
  xvcmpeqdp: vectorCompare(DOUBLES, (a, b) => a === b, false),
  xvcmpgtdp: vectorCompare(DOUBLES, (a, b) => a > b, true),
  xvcmpgedp: vectorCompare(DOUBLES, (a, b) => a >= b, true),
  xvcmpeqsp: vectorCompare(SINGLES, (a, b) => a === b, false),
  xvcmpgtsp: vectorCompare(SINGLES, (a, b) => a > b, true),
  xvcmpgesp: vectorCompare(SINGLES, (a, b) => a >= b, true),
  xvcpsgndp: vectorSign(2, copySign),
  xvcpsgnsp: vectorSign(1, copySign),
  xvabsdp: vectorSign(2, absolute),
  xvabssp: vectorSign(1, absolute),
  xvnabsdp: vectorSign(2, negativeAbsolute),
  xvnabssp: vectorSign(1, negativeAbsolute),
  xvnegdp: vectorSign(2, negate),
  xvnegsp: vectorSign(1, negate),
  xvcvdpsp,
  xvcvspdp,
  xvcvdpsxds: vectorToInteger(DOUBLES, IntegerFormat.Int64),
  xvcvdpsxws: vectorToInteger(DOUBLES, IntegerFormat.Int32),
  xvcvdpuxds: vectorToInteger(DOUBLES, IntegerFormat.Uint64),
  xvcvdpuxws: vectorToInteger(DOUBLES, IntegerFormat.Uint32),
  xvcvspsxds: vectorToInteger(SINGLES, IntegerFormat.Int64),
  xvcvspsxws: vectorToInteger(SINGLES, IntegerFormat.Int32),
  xvcvspuxds: vectorToInteger(SINGLES, IntegerFormat.Uint64),
  xvcvspuxws: vectorToInteger(SINGLES, IntegerFormat.Uint32),
  xvcvsxddp: vectorFromInteger(false, true, DOUBLES),
  xvcvsxdsp: vectorFromInteger(false, true, SINGLES),
  xvcvsxwdp: vectorFromInteger(true, true, DOUBLES),
  xvcvsxwsp: vectorFromInteger(true, true, SINGLES),
  xvcvuxddp: vectorFromInteger(false, false, DOUBLES),
  xvcvuxdsp: vectorFromInteger(false, false, SINGLES),
  xvcvuxwdp: vectorFromInteger(true, false, DOUBLES),
  xvcvuxwsp: vectorFromInteger(true, false, SINGLES),
  xvcvhpsp,
  xvcvsphp,
  xvrdpi: vectorRoundToIntegralInstruction(DOUBLES, RoundingMode.NearestAway, false),
  xvrdpic: vectorRoundToIntegralInstruction(DOUBLES, "current", true),
  xvrdpim: vectorRoundToIntegralInstruction(DOUBLES, RoundingMode.TowardNegative, false),
  xvrdpip: vectorRoundToIntegralInstruction(DOUBLES, RoundingMode.TowardPositive, false),
  xvrdpiz: vectorRoundToIntegralInstruction(DOUBLES, RoundingMode.TowardZero, false),
  xvrspi: vectorRoundToIntegralInstruction(SINGLES, RoundingMode.NearestAway, false),
  xvrspic: vectorRoundToIntegralInstruction(SINGLES, "current", true),
  xvrspim: vectorRoundToIntegralInstruction(SINGLES, RoundingMode.TowardNegative, false),
  xvrspip: vectorRoundToIntegralInstruction(SINGLES, RoundingMode.TowardPositive, false),
  xvrspiz: vectorRoundToIntegralInstruction(SINGLES, RoundingMode.TowardZero, false),
  xvxexpdp: vectorExtractExponent(true),
  xvxsigdp: vectorExtractSignificand(true),
  xvxexpsp: vectorExtractExponent(false),
  xvxsigsp: vectorExtractSignificand(false),
  xviexpdp: vectorInsertExponent(true),
  xviexpsp: vectorInsertExponent(false),
  xvtstdcdp: vectorTestDataClass(true),
  xvtstdcsp: vectorTestDataClass(false),
  // Logical, permute, splat, byte-reverse.
  xxland: logical((a, b) => a & b, true),
  xxlandc: logical((a, b) => a & ~b, true),
  xxlor: orInstruction(true),
  xxlxor: logical((a, b) => a ^ b, true),
  xxlnor: logical((a, b) => ~(a | b), true),
  xxlorc: logical((a, b) => a | ~b, true),
  xxlnand: logical((a, b) => ~(a & b), true),
  xxleqv: logical((a, b) => ~(a ^ b), true),
  xxsel: select(true),
  xxmrghw: merge(32, true, true),
  xxmrglw: merge(32, false, true),
  xxpermdi,
  xxsldwi,
  xxperm: permute(false, true),
  xxpermr: permute(true, true),
  xxspltw,
  xxspltib,
  xxextractuw,
  xxinsertw,
  xxbrh: byteReverse(2),
  xxbrw: byteReverse(4),
  xxbrd: byteReverse(8),
  xxbrq: byteReverse(16),
};

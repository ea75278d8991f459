// Binary floating point (Power ISA v3.0B Book I chapter 4): the FPSCR with its sticky exception
// bits, summaries and enables, NaN propagation, the invalid-operation classes, zero divide,
// overflow and underflow with the ISA's enabled (exponent-adjusted) and disabled results, FR, FI
// and FPRF, and every instruction of the "fp" facility.
//
// The arithmetic is split in two layers so that VSX scalar and vector instructions share it:
// compute* functions evaluate one operation on operand values for a format and an FPSCR (rounding
// mode and enables) into OUTCOME — the result, the exception bits it raises, whether it was
// inexact or rounded up in magnitude, and whether an enabled invalid operation or zero divide
// suppresses the write; the deliver* functions apply an OUTCOME to the FPSCR and a register.
//
// FPR n is doubleword 0 of VSR n (cpu.vsrDoubles[2n + 1]); writing an FPR sets doubleword 1 to
// zero, as qemu does (the ISA leaves it undefined). Operands are given as the position of their
// low word in an Int32Array (a VSR, or a scratch slot for converted single-precision elements):
// V8 may silence a signaling NaN that travels as a JS number, so NaNs are only ever handled as
// words, and a NaN result comes back in OUTCOME's words.

import type { Cpu, Semantics } from "./interpreter.ts";
import { eaDisplacement, eaIndexed, putAddress } from "./access.ts";
import {
  add,
  divide,
  DOUBLE,
  exactly,
  type FloatFormat,
  fromInteger64,
  fusedMultiplyAdd,
  multiply,
  ROUNDED,
  RoundingMode,
  roundToFormat,
  roundToIntegral,
  SINGLE,
  squareRoot,
} from "./float.ts";

// FPSCR bits 32:63, as masks of cpu.fpscr.
export const FX = 0x80000000 | 0;
export const FEX = 0x40000000;
export const VX = 0x20000000;
export const OX = 0x10000000;
export const UX = 0x08000000;
export const ZX = 0x04000000;
export const XX = 0x02000000;
export const VXSNAN = 0x01000000;
export const VXISI = 0x00800000;
export const VXIDI = 0x00400000;
export const VXZDZ = 0x00200000;
export const VXIMZ = 0x00100000;
export const VXVC = 0x00080000;
export const FR = 0x00040000;
export const FI = 0x00020000;
export const FPRF = 0x0001f000;
export const FPCC = 0x0000f000;
export const VXSOFT = 0x00000400;
export const VXSQRT = 0x00000200;
export const VXCVI = 0x00000100;
export const VE = 0x80;
export const OE = 0x40;
export const UE = 0x20;
export const ZE = 0x10;
export const XE = 0x08;
export const NI = 0x04;
export const RN = 0x03;
/** FPSCR bit 52, reserved: reads as zero. */
const RESERVED = 0x800;
/** All invalid-operation classes, whose OR is VX. */
export const VX_CLASSES = VXSNAN | VXISI | VXIDI | VXZDZ | VXIMZ | VXVC | VXSOFT | VXSQRT | VXCVI;
/** The bits whose change from 0 to 1 sets FX. */
const EXCEPTION_BITS = OX | UX | ZX | XX | VX_CLASSES;
/** An exception bit and its enable are 22 bits apart (OX/OE ... XX/XE, VX/VE). */
const ENABLE_SHIFT = 22;
/** The upper word's defined bits: DRN (FPSCR 29:31). */
const DRN_MASK = 0x7;

/** FPRF codes (C, FL, FG, FE, FU). */
export const FprfClass = {
  QuietNaN: 0x11,
  NegativeInfinity: 0x09,
  NegativeNormal: 0x08,
  NegativeDenormal: 0x18,
  NegativeZero: 0x12,
  PositiveZero: 0x02,
  PositiveDenormal: 0x14,
  PositiveNormal: 0x04,
  PositiveInfinity: 0x05,
} as const;

// Bit access to doubles.
const F64 = new Float64Array(1);
const W = new Int32Array(F64.buffer);

/** Whether the double whose words are at words[index] (low) and words[index + 1] (high) is a NaN. */
export function isNaNAt(words: Int32Array, index: number): boolean {
  const hi = words[index + 1];
  return (hi & 0x7ff00000) === 0x7ff00000 && ((hi & 0xfffff) | words[index]) !== 0;
}

export function isSignalingNaNAt(words: Int32Array, index: number): boolean {
  const hi = words[index + 1];
  return (hi & 0x7ff80000) === 0x7ff00000 && ((hi & 0x7ffff) | words[index]) !== 0;
}

export function valueAt(words: Int32Array, index: number): number {
  W[0] = words[index];
  W[1] = words[index + 1];
  return F64[0];
}

function negativeBit(x: number): boolean {
  F64[0] = x;
  return W[1] < 0;
}

/** The FPRF class of a result in a format. */
export function classify(x: number, format: FloatFormat): number {
  const negative = negativeBit(x);
  if (x === 0) return negative ? FprfClass.NegativeZero : FprfClass.PositiveZero;
  const magnitude = Math.abs(x);
  if (magnitude === Infinity) return negative ? FprfClass.NegativeInfinity : FprfClass.PositiveInfinity;
  if (magnitude < format.minNormal) return negative ? FprfClass.NegativeDenormal : FprfClass.PositiveDenormal;
  return negative ? FprfClass.NegativeNormal : FprfClass.PositiveNormal;
}

/** VX and FEX recomputed from the bits they summarize. */
export function summarize(fpscr: number): number {
  fpscr = fpscr & VX_CLASSES ? fpscr | VX : fpscr & ~VX;
  return (fpscr >>> ENABLE_SHIFT) & fpscr & 0xf8 ? fpscr | FEX : fpscr & ~FEX;
}

/** Whether raising `bits` with these enables is an enabled exception. */
export function enabledException(bits: number, fpscr: number): boolean {
  if (bits & VX_CLASSES && fpscr & VE) return true;
  return ((bits >>> ENABLE_SHIFT) & fpscr & 0x78) !== 0;
}

/**
 * Sets exception bits an instruction raised: sticky, FX when any of them changes from 0 to 1, the
 * summaries. Returns whether one of them is enabled.
 */
export function raiseExceptions(cpu: Cpu, bits: number): boolean {
  if (bits === 0) return false;
  const old = cpu.fpscr;
  let fpscr = old | bits;
  if (bits & EXCEPTION_BITS & ~old) fpscr |= FX;
  cpu.fpscr = summarize(fpscr);
  return enabledException(bits, cpu.fpscr);
}

/** The result of one operation, before it reaches the FPSCR and a register. */
export const OUTCOME = {
  /** The result, when it is not a NaN. */
  value: 0,
  /** The result is a NaN, whose words are lo and hi. */
  nan: false,
  lo: 0,
  hi: 0,
  /** Exception bits raised (VX classes, ZX, OX, UX, XX). */
  raised: 0,
  inexact: false,
  incremented: false,
  /** An enabled invalid operation or zero divide: the target is left unchanged. */
  suppressed: false,
};

function setOutcome(value: number, raised: number): void {
  OUTCOME.value = value;
  OUTCOME.nan = false;
  OUTCOME.raised = raised;
  OUTCOME.inexact = false;
  OUTCOME.incremented = false;
  OUTCOME.suppressed = false;
}

function setNaN(lo: number, hi: number, raised: number, fpscr: number): void {
  OUTCOME.nan = true;
  OUTCOME.lo = lo;
  OUTCOME.hi = hi;
  OUTCOME.raised = raised;
  OUTCOME.inexact = false;
  OUTCOME.incremented = false;
  OUTCOME.suppressed = (raised & VX_CLASSES) !== 0 && (fpscr & VE) !== 0;
}

/** An invalid operation: the default quiet NaN, unless VE suppresses the write. */
function invalid(raised: number, fpscr: number): void {
  setNaN(0, 0x7ff80000, raised, fpscr);
}

/**
 * NaN propagation: the first NaN operand (in the order given) quieted, its fraction cut to single
 * precision for a single-precision result; VXSNAN if any operand is signaling. Operands at index
 * −1 are absent.
 */
function propagateNaN(
  src: Int32Array,
  a: number,
  b: number,
  c: number,
  format: FloatFormat,
  fpscr: number,
): void {
  const first = a >= 0 && isNaNAt(src, a) ? a : b >= 0 && isNaNAt(src, b) ? b : c;
  const signaling = (a >= 0 && isSignalingNaNAt(src, a)) || (b >= 0 && isSignalingNaNAt(src, b)) ||
    (c >= 0 && isSignalingNaNAt(src, c));
  const lo = format === SINGLE ? src[first] & ~0x1fffffff : src[first];
  setNaN(lo, src[first + 1] | 0x00080000, signaling ? VXSNAN : 0, fpscr);
}

// The operation whose exact value an enabled overflow or underflow recomputes.
const Operation = { Add: 0, Multiply: 1, Divide: 2, SquareRoot: 3, MultiplyAdd: 4, Value: 5 } as const;
let operation: number = Operation.Value;
let operandA = 0, operandB = 0, operandC = 0;

function recompute(format: FloatFormat, mode: RoundingMode, adjust: number): void {
  switch (operation) {
    case Operation.Add:
      exactly.add(operandA, operandB, format, mode, adjust);
      break;
    case Operation.Multiply:
      exactly.multiply(operandA, operandB, format, mode, adjust);
      break;
    case Operation.Divide:
      exactly.divide(operandA, operandB, format, mode, adjust);
      break;
    case Operation.SquareRoot:
      exactly.squareRoot(operandA, format, mode, adjust);
      break;
    case Operation.MultiplyAdd:
      exactly.fusedMultiplyAdd(operandA, operandC, operandB, format, mode, adjust);
      break;
    default:
      exactly.value(operandA, format, mode, adjust);
  }
}

/**
 * Turns ROUNDED into OUTCOME: overflow and underflow, disabled (infinity or the largest number,
 * the denormalized result) or enabled (the exact result with its exponent adjusted by 1536 or 192).
 */
function rounded(format: FloatFormat, fpscr: number): void {
  let raised = 0;
  if (ROUNDED.overflow) {
    raised = OX;
    if (fpscr & OE) {
      recompute(format, (fpscr & RN) as RoundingMode, -format.wrap);
    } else {
      ROUNDED.inexact = true;
      ROUNDED.incremented = false;
    }
  } else if (ROUNDED.tiny) {
    if (fpscr & UE) {
      raised = UX;
      recompute(format, (fpscr & RN) as RoundingMode, format.wrap);
    } else if (ROUNDED.inexact) {
      raised = UX;
    }
  }
  OUTCOME.value = ROUNDED.value;
  OUTCOME.nan = false;
  OUTCOME.inexact = ROUNDED.inexact;
  OUTCOME.incremented = ROUNDED.inexact && ROUNDED.incremented;
  OUTCOME.raised = ROUNDED.inexact ? raised | XX : raised;
  OUTCOME.suppressed = false;
}

// ---------------------------------------------------------------------------------------------
// Operations (the compute layer).

/** a + b, or a − b. */
export function computeAdd(
  src: Int32Array,
  ia: number,
  ib: number,
  subtract: boolean,
  format: FloatFormat,
  fpscr: number,
): void {
  if (isNaNAt(src, ia) || isNaNAt(src, ib)) return propagateNaN(src, ia, ib, -1, format, fpscr);
  const a = valueAt(src, ia), b = valueAt(src, ib);
  const addend = subtract ? -b : b;
  const aInfinite = a === Infinity || a === -Infinity,
    bInfinite = addend === Infinity || addend === -Infinity;
  if (aInfinite || bInfinite) {
    if (aInfinite && bInfinite && a !== addend) return invalid(VXISI, fpscr);
    return setOutcome(aInfinite ? a : addend, 0);
  }
  operation = Operation.Add;
  operandA = a;
  operandB = addend;
  add(a, addend, format, (fpscr & RN) as RoundingMode);
  rounded(format, fpscr);
}

/** a × c. */
export function computeMultiply(
  src: Int32Array,
  ia: number,
  ic: number,
  format: FloatFormat,
  fpscr: number,
): void {
  if (isNaNAt(src, ia) || isNaNAt(src, ic)) return propagateNaN(src, ia, ic, -1, format, fpscr);
  const a = valueAt(src, ia), c = valueAt(src, ic);
  const aInfinite = a === Infinity || a === -Infinity, cInfinite = c === Infinity || c === -Infinity;
  if (aInfinite || cInfinite) {
    if (a === 0 || c === 0) return invalid(VXIMZ, fpscr);
    return setOutcome(negativeBit(a) !== negativeBit(c) ? -Infinity : Infinity, 0);
  }
  operation = Operation.Multiply;
  operandA = a;
  operandB = c;
  multiply(a, c, format, (fpscr & RN) as RoundingMode);
  rounded(format, fpscr);
}

/** A nonzero value divided by zero: an infinity, unless ZE suppresses the write. */
function zeroDivide(negative: boolean, fpscr: number): void {
  setOutcome(negative ? -Infinity : Infinity, ZX);
  OUTCOME.suppressed = (fpscr & ZE) !== 0;
}

/** a ÷ b. */
export function computeDivide(
  src: Int32Array,
  ia: number,
  ib: number,
  format: FloatFormat,
  fpscr: number,
): void {
  if (isNaNAt(src, ia) || isNaNAt(src, ib)) return propagateNaN(src, ia, ib, -1, format, fpscr);
  divideValues(valueAt(src, ia), valueAt(src, ib), format, fpscr);
}

function divideValues(a: number, b: number, format: FloatFormat, fpscr: number): void {
  const aInfinite = a === Infinity || a === -Infinity, bInfinite = b === Infinity || b === -Infinity;
  const negative = negativeBit(a) !== negativeBit(b);
  if (aInfinite && bInfinite) return invalid(VXIDI, fpscr);
  if (aInfinite) return setOutcome(negative ? -Infinity : Infinity, 0);
  if (bInfinite) return setOutcome(negative ? -0 : 0, 0);
  if (b === 0) return a === 0 ? invalid(VXZDZ, fpscr) : zeroDivide(negative, fpscr);
  operation = Operation.Divide;
  operandA = a;
  operandB = b;
  divide(a, b, format, (fpscr & RN) as RoundingMode);
  rounded(format, fpscr);
}

/** √b. */
export function computeSquareRoot(src: Int32Array, ib: number, format: FloatFormat, fpscr: number): void {
  if (isNaNAt(src, ib)) return propagateNaN(src, ib, -1, -1, format, fpscr);
  const b = valueAt(src, ib);
  if (b < 0) return invalid(VXSQRT, fpscr);
  if (b === Infinity || b === 0) return setOutcome(b, 0);
  operation = Operation.SquareRoot;
  operandA = b;
  squareRoot(b, format, (fpscr & RN) as RoundingMode);
  rounded(format, fpscr);
}

/**
 * ±(a × c ± b) with one rounding: fmadd, fmsub, fnmadd, fnmsub and their VSX forms. The result is
 * rounded, then negated; a NaN result is never negated, and NaNs propagate in the order a, b, c.
 */
export function computeMultiplyAdd(
  src: Int32Array,
  ia: number,
  ic: number,
  ib: number,
  subtract: boolean,
  negate: boolean,
  format: FloatFormat,
  fpscr: number,
): void {
  const a = valueAt(src, ia), c = valueAt(src, ic);
  const aInfinite = a === Infinity || a === -Infinity, cInfinite = c === Infinity || c === -Infinity;
  const infinityTimesZero = (aInfinite && c === 0) || (cInfinite && a === 0);
  if (isNaNAt(src, ia) || isNaNAt(src, ib) || isNaNAt(src, ic)) {
    propagateNaN(src, ia, ib, ic, format, fpscr);
    if (infinityTimesZero) setNaN(OUTCOME.lo, OUTCOME.hi, OUTCOME.raised | VXIMZ, fpscr);
    return;
  }
  if (infinityTimesZero) return invalid(VXIMZ, fpscr);
  const b = valueAt(src, ib);
  const addend = subtract ? -b : b;
  const addendInfinite = addend === Infinity || addend === -Infinity;
  let value: number;
  if (aInfinite || cInfinite) {
    const product = negativeBit(a) !== negativeBit(c) ? -Infinity : Infinity;
    if (addendInfinite && addend !== product) return invalid(VXISI, fpscr);
    value = product;
  } else if (addendInfinite) {
    value = addend;
  } else {
    operation = Operation.MultiplyAdd;
    operandA = a;
    operandB = addend;
    operandC = c;
    fusedMultiplyAdd(a, c, addend, format, (fpscr & RN) as RoundingMode);
    rounded(format, fpscr);
    if (negate) OUTCOME.value = -OUTCOME.value;
    return;
  }
  setOutcome(negate ? -value : value, 0);
}

/** Rounds a double to a format in the current mode (frsp, xsrsp, xscvdpsp). */
export function computeRound(src: Int32Array, ib: number, format: FloatFormat, fpscr: number): void {
  if (isNaNAt(src, ib)) return propagateNaN(src, ib, -1, -1, format, fpscr);
  roundValue(valueAt(src, ib), format, fpscr);
}

function roundValue(x: number, format: FloatFormat, fpscr: number): void {
  if (x === 0 || x === Infinity || x === -Infinity) return setOutcome(x, 0);
  operation = Operation.Value;
  operandA = x;
  roundToFormat(x, format, (fpscr & RN) as RoundingMode);
  rounded(format, fpscr);
}

/** A 64-bit integer to a format in the current mode (fcfid*, xscv[su]xd[ds]p). */
export function computeFromInteger(
  lo: number,
  hi: number,
  signed: boolean,
  format: FloatFormat,
  fpscr: number,
): void {
  fromInteger64(lo, hi, signed, format, (fpscr & RN) as RoundingMode);
  rounded(format, fpscr);
}

/** Rounds to an integral value in a fixed mode; never inexact (fri*, xsrdpi*). */
export function computeRoundToIntegral(
  src: Int32Array,
  ib: number,
  mode: RoundingMode,
  format: FloatFormat,
  fpscr: number,
): void {
  if (isNaNAt(src, ib)) return propagateNaN(src, ib, -1, -1, format, fpscr);
  setOutcome(roundToIntegral(valueAt(src, ib), mode), 0);
}

/**
 * Estimates: qemu computes reciprocals and reciprocal square roots as correctly rounded divisions
 * in the current mode (well inside the ISA's accuracy bound), and so does this: 1 / b, or
 * 1 / √b, each step rounded in `steps` precision, then rounded to the format. The FP and VSX
 * scalar forms work in double precision; the vector single-precision forms in single.
 */
export function computeReciprocalEstimate(
  src: Int32Array,
  ib: number,
  squareRootFirst: boolean,
  format: FloatFormat,
  fpscr: number,
  steps: FloatFormat = DOUBLE,
): void {
  if (isNaNAt(src, ib)) return propagateNaN(src, ib, -1, -1, format, fpscr);
  const b = valueAt(src, ib);
  if (squareRootFirst) {
    if (b < 0) return invalid(VXSQRT, fpscr);
    if (b === Infinity) return setOutcome(0, 0);
  }
  if (b === 0) return zeroDivide(negativeBit(b), fpscr);
  let divisor = b;
  if (squareRootFirst) {
    squareRoot(b, steps, (fpscr & RN) as RoundingMode);
    divisor = ROUNDED.value;
  }
  divideValues(1, divisor, steps, fpscr);
  if (format !== steps && !OUTCOME.suppressed) {
    const raised = OUTCOME.raised, inexact = OUTCOME.inexact;
    roundValue(OUTCOME.value, SINGLE, fpscr);
    OUTCOME.raised |= raised;
    OUTCOME.inexact ||= inexact;
  }
}

// ---------------------------------------------------------------------------------------------
// Delivery to the FPSCR and the FPRs.

/** Ends an instruction: CR1 from FPSCR[FX, FEX, VX, OX] when Rc is set, then an enabled exception's interrupt. */
function finish(cpu: Cpu, w: number, trap: boolean): void {
  if (w & 1) cpu.setCrField(1, cpu.fpscr >>> 28);
  if (trap && cpu.floatingPointExceptions) cpu.programInterrupt("floating-point", w);
}

export function writeFpr(cpu: Cpu, t: number, value: number): void {
  cpu.vsrDoubles[2 * t + 1] = value;
  cpu.vsrDoubles[2 * t] = 0;
}

export function writeFprWords(cpu: Cpu, t: number, lo: number, hi: number): void {
  const words = cpu.vsrWords;
  words[4 * t] = 0;
  words[4 * t + 1] = 0;
  words[4 * t + 2] = lo;
  words[4 * t + 3] = hi;
}

/**
 * Applies OUTCOME to the FPSCR and VSR t (an FPR, or a VSX scalar target): FR and FI, FPRF in the
 * format, the exceptions; the target is written unless an enabled invalid operation or zero
 * divide suppresses it (which also leaves FPRF alone).
 */
export function deliverScalar(cpu: Cpu, w: number, t: number, format: FloatFormat, record: boolean): void {
  let fpscr = cpu.fpscr & ~(FR | FI);
  if (OUTCOME.inexact) fpscr |= OUTCOME.incremented ? FR | FI : FI;
  if (!OUTCOME.suppressed) {
    if (OUTCOME.nan) {
      fpscr = (fpscr & ~FPRF) | (FprfClass.QuietNaN << 12);
      writeFprWords(cpu, t, OUTCOME.lo, OUTCOME.hi);
    } else {
      fpscr = (fpscr & ~FPRF) | (classify(OUTCOME.value, format) << 12);
      writeFpr(cpu, t, OUTCOME.value);
    }
  }
  cpu.fpscr = fpscr;
  const trap = raiseExceptions(cpu, OUTCOME.raised);
  finish(cpu, record ? w : w & ~1, trap);
}

// Field extraction.
const frtOf = (w: number) => (w >>> 21) & 31;
const fraOf = (w: number) => (w >>> 16) & 31;
const frbOf = (w: number) => (w >>> 11) & 31;
const frcOf = (w: number) => (w >>> 6) & 31;
const simm = (w: number) => (w << 16) >> 16;

const fpr = (cpu: Cpu, n: number) => cpu.vsrDoubles[2 * n + 1];
/** The position of FPR n's low word in cpu.vsrWords. */
const at = (n: number) => 4 * n + 2;

// ---------------------------------------------------------------------------------------------
// Arithmetic instructions.

function addition(subtract: boolean, format: FloatFormat): Semantics {
  return (cpu, w) => {
    computeAdd(cpu.vsrWords, at(fraOf(w)), at(frbOf(w)), subtract, format, cpu.fpscr);
    deliverScalar(cpu, w, frtOf(w), format, true);
  };
}

function multiplication(format: FloatFormat): Semantics {
  return (cpu, w) => {
    computeMultiply(cpu.vsrWords, at(fraOf(w)), at(frcOf(w)), format, cpu.fpscr);
    deliverScalar(cpu, w, frtOf(w), format, true);
  };
}

function division(format: FloatFormat): Semantics {
  return (cpu, w) => {
    computeDivide(cpu.vsrWords, at(fraOf(w)), at(frbOf(w)), format, cpu.fpscr);
    deliverScalar(cpu, w, frtOf(w), format, true);
  };
}

function squareRootInstruction(format: FloatFormat): Semantics {
  return (cpu, w) => {
    computeSquareRoot(cpu.vsrWords, at(frbOf(w)), format, cpu.fpscr);
    deliverScalar(cpu, w, frtOf(w), format, true);
  };
}

function multiplyAdd(subtract: boolean, negate: boolean, format: FloatFormat): Semantics {
  return (cpu, w) => {
    computeMultiplyAdd(
      cpu.vsrWords,
      at(fraOf(w)),
      at(frcOf(w)),
      at(frbOf(w)),
      subtract,
      negate,
      format,
      cpu.fpscr,
    );
    deliverScalar(cpu, w, frtOf(w), format, true);
  };
}

function estimate(squareRootFirst: boolean, format: FloatFormat): Semantics {
  return (cpu, w) => {
    computeReciprocalEstimate(cpu.vsrWords, at(frbOf(w)), squareRootFirst, format, cpu.fpscr);
    deliverScalar(cpu, w, frtOf(w), format, true);
  };
}

const frsp: Semantics = (cpu, w) => {
  computeRound(cpu.vsrWords, at(frbOf(w)), SINGLE, cpu.fpscr);
  deliverScalar(cpu, w, frtOf(w), SINGLE, true);
};

function roundToInteger(mode: RoundingMode): Semantics {
  return (cpu, w) => {
    computeRoundToIntegral(cpu.vsrWords, at(frbOf(w)), mode, DOUBLE, cpu.fpscr);
    deliverScalar(cpu, w, frtOf(w), DOUBLE, true);
  };
}

function fromInteger(signed: boolean, format: FloatFormat): Semantics {
  return (cpu, w) => {
    const b = frbOf(w);
    computeFromInteger(cpu.vsrWords[4 * b + 2], cpu.vsrWords[4 * b + 3], signed, format, cpu.fpscr);
    deliverScalar(cpu, w, frtOf(w), format, true);
  };
}

/** The result of a conversion to an integer, as two words, with the exceptions it raised. */
export const CONVERTED = { lo: 0, hi: 0, raised: 0, inexact: false, incremented: false };

/** The integer formats of fcti*, xscvdp[su]x[dw]s and the vector conversions. */
export const IntegerFormat = { Int32: 0, Uint32: 1, Int64: 2, Uint64: 3 } as const;
export type IntegerFormat = (typeof IntegerFormat)[keyof typeof IntegerFormat];

const INTEGER_MIN = [-2147483648, 0, -9223372036854775808, 0];
/** One past the largest value of each format. */
const INTEGER_LIMIT = [2147483648, 4294967296, 9223372036854775808, 18446744073709551616];

/**
 * Converts a double to an integer format in a mode into CONVERTED: NaNs and out-of-range values
 * raise VXCVI (and VXSNAN) and give the format's saturated value (the minimum for NaNs, 0 for the
 * unsigned formats).
 */
export function convertToInteger(
  src: Int32Array,
  index: number,
  target: IntegerFormat,
  mode: RoundingMode,
): void {
  CONVERTED.inexact = false;
  CONVERTED.incremented = false;
  let value: number;
  if (isNaNAt(src, index)) {
    CONVERTED.raised = isSignalingNaNAt(src, index) ? VXCVI | VXSNAN : VXCVI;
    value = INTEGER_MIN[target];
  } else {
    const x = valueAt(src, index);
    const integral = roundToIntegral(x, mode);
    if (integral < INTEGER_MIN[target]) {
      CONVERTED.raised = VXCVI;
      value = INTEGER_MIN[target];
    } else if (integral >= INTEGER_LIMIT[target]) {
      CONVERTED.raised = VXCVI;
      value = target === IntegerFormat.Uint64 ? -1 : INTEGER_LIMIT[target] - 1;
    } else {
      value = integral;
      CONVERTED.inexact = integral !== x;
      CONVERTED.incremented = Math.abs(integral) > Math.abs(x);
      CONVERTED.raised = CONVERTED.inexact ? XX : 0;
    }
  }
  if (target === IntegerFormat.Uint64 && value === -1) {
    CONVERTED.lo = -1;
    CONVERTED.hi = -1;
    return;
  }
  if (target === IntegerFormat.Int64 && value === INTEGER_LIMIT[target] - 1) {
    // 2^63 − 1 is not a double; the saturated value is built from words.
    CONVERTED.lo = -1;
    CONVERTED.hi = 0x7fffffff;
    return;
  }
  const hi = Math.floor(value / 4294967296);
  CONVERTED.lo = (value - hi * 4294967296) | 0;
  CONVERTED.hi = hi | 0;
}

/**
 * fctiw, fctid and their unsigned and round-toward-zero forms. The word forms leave the word
 * sign-extended into the high half for signed results (a NaN gives 0x8000_0000 zero-extended),
 * which is what qemu produces; the ISA leaves the high half undefined.
 */
function toInteger(target: IntegerFormat, towardZero: boolean): Semantics {
  return (cpu, w) => {
    const b = at(frbOf(w));
    const isNaN = isNaNAt(cpu.vsrWords, b);
    const mode = towardZero ? RoundingMode.TowardZero : (cpu.fpscr & RN) as RoundingMode;
    convertToInteger(cpu.vsrWords, b, target, mode);
    let fpscr = cpu.fpscr & ~(FR | FI);
    const invalidConversion = (CONVERTED.raised & VXCVI) !== 0;
    if (CONVERTED.inexact) fpscr |= CONVERTED.incremented ? FR | FI : FI;
    const suppressed = invalidConversion && (fpscr & VE) !== 0;
    if (invalidConversion && !suppressed) fpscr = (fpscr & ~FPCC) | (FprfClass.QuietNaN << 12);
    if (!suppressed) {
      let hi = CONVERTED.hi;
      if (target === IntegerFormat.Int32) hi = isNaN ? 0 : CONVERTED.lo >> 31;
      else if (target === IntegerFormat.Uint32) hi = 0;
      writeFprWords(cpu, frtOf(w), CONVERTED.lo, hi);
    }
    cpu.fpscr = fpscr;
    finish(cpu, w, raiseExceptions(cpu, CONVERTED.raised));
  };
}

// ---------------------------------------------------------------------------------------------
// Moves, select, compare and test.

function signOperation(operation: (hi: number, signSource: number) => number, usesA: boolean): Semantics {
  return (cpu, w) => {
    const words = cpu.vsrWords, b = frbOf(w);
    const signSource = usesA ? words[4 * fraOf(w) + 3] : 0;
    writeFprWords(cpu, frtOf(w), words[4 * b + 2], operation(words[4 * b + 3], signSource));
    if (w & 1) cpu.setCrField(1, cpu.fpscr >>> 28);
  };
}

const fmrgew: Semantics = (cpu, w) => {
  const words = cpu.vsrWords;
  writeFprWords(cpu, frtOf(w), words[4 * frbOf(w) + 3], words[4 * fraOf(w) + 3]);
};

const fmrgow: Semantics = (cpu, w) => {
  const words = cpu.vsrWords;
  writeFprWords(cpu, frtOf(w), words[4 * frbOf(w) + 2], words[4 * fraOf(w) + 2]);
};

const fsel: Semantics = (cpu, w) => {
  const a = fpr(cpu, fraOf(w));
  const source = a >= 0 ? frcOf(w) : frbOf(w);
  const words = cpu.vsrWords;
  writeFprWords(cpu, frtOf(w), words[4 * source + 2], words[4 * source + 3]);
  if (w & 1) cpu.setCrField(1, cpu.fpscr >>> 28);
};

/** The FPCC of a comparison: FL, FG, FE or FU. */
export function compareValues(a: number, b: number): number {
  if (a !== a || b !== b) return 1;
  return a < b ? 8 : a > b ? 4 : 2;
}

function compare(ordered: boolean): Semantics {
  return (cpu, w) => {
    const ia = at(fraOf(w)), ib = at(frbOf(w));
    const result = compareValues(fpr(cpu, fraOf(w)), fpr(cpu, frbOf(w)));
    cpu.fpscr = (cpu.fpscr & ~FPCC) | (result << 12);
    cpu.setCrField(rtBf(w), result);
    let raised = 0;
    if (result === 1) {
      const signaling = isSignalingNaNAt(cpu.vsrWords, ia) || isSignalingNaNAt(cpu.vsrWords, ib);
      if (signaling) raised |= VXSNAN;
      if (ordered && (!signaling || (cpu.fpscr & VE) === 0)) raised |= VXVC;
    }
    finish(cpu, w & ~1, raiseExceptions(cpu, raised));
  };
}

const rtBf = (w: number) => (w >>> 23) & 7;

/** The parameters of ftdiv and ftsqrt in a format: emin, emax and the fraction width. */
export interface TestLimits {
  readonly minExponent: number;
  readonly maxExponent: number;
  readonly fractionBits: number;
}

export const DOUBLE_LIMITS: TestLimits = { minExponent: -1022, maxExponent: 1023, fractionBits: 52 };
export const SINGLE_LIMITS: TestLimits = { minExponent: -126, maxExponent: 127, fractionBits: 23 };

/** The unbiased exponent of a double, or of a single held in double format. */
function unbiasedExponent(x: number, limits: TestLimits): number {
  const biased = (highWord(x) >>> 20) & 0x7ff;
  if (limits === DOUBLE_LIMITS) return biased - 1023;
  // A single in double format: its own exponent field, 0 for zeros and denormals.
  const single = biased - 1023 + 127;
  return single <= 0 ? -127 : single - 127;
}

/**
 * ftdiv's flags, also used by xstdivdp and the xvtdiv* instructions: 0b1 || FG || FE || 0. FE
 * means the quotient might not be computable without special handling, FG that b is denormal.
 */
export function testDivide(a: number, b: number, limits: TestLimits = DOUBLE_LIMITS): number {
  let fe = false, fg = false;
  const { minExponent: emin, maxExponent: emax, fractionBits } = limits;
  if (Math.abs(a) === Infinity || Math.abs(b) === Infinity || b === 0) {
    fe = fg = true;
  } else {
    const ea = unbiasedExponent(a, limits), eb = unbiasedExponent(b, limits);
    if (a !== a || b !== b) fe = true;
    else if (eb <= emin || eb >= emax - 2) fe = true;
    else if (a !== 0 && (ea - eb >= emax || ea - eb <= emin + 1 || ea <= emin + fractionBits)) fe = true;
    if (b === b && Math.abs(b) < 2 ** emin) fg = true;
  }
  return 8 | (fg ? 4 : 0) | (fe ? 2 : 0);
}

/** ftsqrt's flags, also used by xstsqrtdp and the xvtsqrt* instructions. */
export function testSquareRoot(b: number, limits: TestLimits = DOUBLE_LIMITS): number {
  let fe = false, fg = false;
  if (Math.abs(b) === Infinity || b === 0) {
    fe = fg = true;
  } else {
    if (b !== b || b < 0 || unbiasedExponent(b, limits) <= limits.minExponent + limits.fractionBits) {
      fe = true;
    }
    if (b === b && Math.abs(b) < 2 ** limits.minExponent) fg = true;
  }
  return 8 | (fg ? 4 : 0) | (fe ? 2 : 0);
}

function highWord(x: number): number {
  F64[0] = x;
  return W[1];
}

const ftdiv: Semantics = (cpu, w) =>
  cpu.setCrField(rtBf(w), testDivide(fpr(cpu, fraOf(w)), fpr(cpu, frbOf(w))));
const ftsqrt: Semantics = (cpu, w) => cpu.setCrField(rtBf(w), testSquareRoot(fpr(cpu, frbOf(w))));

// ---------------------------------------------------------------------------------------------
// The FPSCR instructions.

/** FPSCR[DRN, VE, OE, UE, ZE, XE, NI, RN]: the control fields mffscrn and friends return. */
const CONTROL_LOW = 0xff;
/** mffsl: the control fields with FR, FI and FPRF. */
const LIGHTWEIGHT_LOW = 0x0007f0ff;

function moveFromFpscr(cpu: Cpu, t: number, lowMask: number, highMask: number): void {
  writeFprWords(cpu, t, cpu.fpscr & lowMask, cpu.fpscrHigh & highMask);
}

const mffs: Semantics = (cpu, w) => {
  moveFromFpscr(cpu, frtOf(w), -1, -1);
  if (w & 1) cpu.setCrField(1, cpu.fpscr >>> 28);
};

const mffsce: Semantics = (cpu, w) => {
  moveFromFpscr(cpu, frtOf(w), -1, -1);
  cpu.fpscr = summarize(cpu.fpscr & ~(VE | OE | UE | ZE | XE));
};

const mffsl: Semantics = (cpu, w) => moveFromFpscr(cpu, frtOf(w), LIGHTWEIGHT_LOW, DRN_MASK);

const mffscdrn: Semantics = (cpu, w) => {
  const drn = cpu.vsrWords[4 * frbOf(w) + 3] & DRN_MASK;
  moveFromFpscr(cpu, frtOf(w), CONTROL_LOW, DRN_MASK);
  cpu.fpscrHigh = (cpu.fpscrHigh & ~DRN_MASK) | drn;
};

const mffscdrni: Semantics = (cpu, w) => {
  moveFromFpscr(cpu, frtOf(w), CONTROL_LOW, DRN_MASK);
  cpu.fpscrHigh = (cpu.fpscrHigh & ~DRN_MASK) | ((w >>> 11) & DRN_MASK);
};

const mffscrn: Semantics = (cpu, w) => {
  const rn = cpu.vsrWords[4 * frbOf(w) + 2] & RN;
  moveFromFpscr(cpu, frtOf(w), CONTROL_LOW, DRN_MASK);
  cpu.fpscr = (cpu.fpscr & ~RN) | rn;
};

const mffscrni: Semantics = (cpu, w) => {
  moveFromFpscr(cpu, frtOf(w), CONTROL_LOW, DRN_MASK);
  cpu.fpscr = (cpu.fpscr & ~RN) | ((w >>> 11) & RN);
};

/** mcrfs: copies an FPSCR field to a CR field and clears the exception bits it copied. */
const mcrfs: Semantics = (cpu, w) => {
  const field = (w >>> 18) & 7;
  const shift = 28 - 4 * field;
  cpu.setCrField(rtBf(w), (cpu.fpscr >>> shift) & 0xf);
  const copied = (0xf << shift) & (FX | EXCEPTION_BITS);
  cpu.fpscr = summarize(cpu.fpscr & ~copied);
};

/**
 * Writes FPSCR fields (mtfsf, mtfsfi): `lowMask` selects bits of the low word, `highMask` of the
 * high word. FEX and VX are never written directly; they follow the bits they summarize. An
 * enabled exception left set raises the interrupt, as qemu does.
 */
function storeFpscr(cpu: Cpu, w: number, lo: number, hi: number, lowMask: number, highMask: number): void {
  lowMask &= ~(FEX | VX | RESERVED);
  cpu.fpscr = summarize((cpu.fpscr & ~lowMask) | (lo & lowMask));
  cpu.fpscrHigh = (cpu.fpscrHigh & ~highMask) | (hi & highMask & DRN_MASK);
  finish(cpu, w, (cpu.fpscr & FEX) !== 0);
}

/** The mask of 4-bit fields selected by an 8-bit field mask (field 0 the most significant). */
function fieldsMask(mask: number): number {
  let bits = 0;
  for (let field = 0; field < 8; field++) if (mask & (0x80 >>> field)) bits |= 0xf << (28 - 4 * field);
  return bits;
}

const mtfsf: Semantics = (cpu, w) => {
  const flm = (w >>> 17) & 0xff, wholeRegister = (w >>> 25) & 1, upper = (w >>> 16) & 1;
  const b = frbOf(w), lo = cpu.vsrWords[4 * b + 2], hi = cpu.vsrWords[4 * b + 3];
  if (wholeRegister) return storeFpscr(cpu, w, lo, hi, -1, -1);
  const mask = fieldsMask(flm);
  if (upper) storeFpscr(cpu, w, 0, hi, 0, mask);
  else storeFpscr(cpu, w, lo, 0, mask, 0);
};

const mtfsfi: Semantics = (cpu, w) => {
  const field = (w >>> 23) & 7, value = (w >>> 12) & 0xf, upper = (w >>> 16) & 1;
  const shift = 28 - 4 * field;
  if (upper) storeFpscr(cpu, w, 0, value << shift, 0, 0xf << shift);
  else storeFpscr(cpu, w, value << shift, 0, 0xf << shift, 0);
};

const mtfsb0: Semantics = (cpu, w) => {
  const bit = 1 << (31 - frtOf(w));
  if (bit !== FEX && bit !== VX) cpu.fpscr = summarize(cpu.fpscr & ~bit);
  finish(cpu, w, false);
};

/** mtfsb1 cannot set FEX and VX (summaries), nor NI: non-IEEE mode is not implemented, as in qemu. */
const mtfsb1: Semantics = (cpu, w) => {
  const bit = 1 << (31 - frtOf(w));
  if (bit === FEX || bit === VX || bit === NI || bit === RESERVED) return finish(cpu, w, false);
  const old = cpu.fpscr, newly = bit & ~old;
  let fpscr = old | bit;
  if (newly & EXCEPTION_BITS) fpscr |= FX;
  cpu.fpscr = fpscr = summarize(fpscr);
  let trap = false;
  if (newly & EXCEPTION_BITS) trap = enabledException(newly, fpscr);
  else if (newly === VE) trap = (fpscr & VX) !== 0;
  else if (newly & (OE | UE | ZE | XE)) trap = ((newly << ENABLE_SHIFT) & fpscr) !== 0;
  finish(cpu, w, trap);
};

// ---------------------------------------------------------------------------------------------
// Loads and stores.

/**
 * Writes the double-format words of a single-precision value to target[index] (low) and
 * target[index + 1] (high): the ISA's DOUBLE(x), exact, NaNs keeping their payload.
 */
export function singleToDouble(word: number, target: Int32Array, index: number): void {
  const exponent = (word >>> 23) & 0xff;
  if (exponent !== 0) {
    // The exponent widens by repeating the complement of its top bit (all ones for 255).
    const fill = exponent === 0xff || (word & 0x40000000) === 0 ? 0x38000000 : 0;
    target[index] = word << 29;
    target[index + 1] = (word & 0xc0000000) | fill | ((word & 0x3fffffff) >>> 3);
    return;
  }
  const magnitude = word & 0x7fffffff;
  if (magnitude === 0) {
    target[index] = 0;
    target[index + 1] = word & 0x80000000;
    return;
  }
  F64[0] = (word < 0 ? -magnitude : magnitude) * 1.401298464324817e-45;
  target[index] = W[0];
  target[index + 1] = W[1];
}

/** The single-precision bits of a double (SINGLE(x)): truncating for values outside the format's range. */
export function doubleToSingle(lo: number, hi: number): number {
  const exponent = (hi >>> 20) & 0x7ff;
  if (exponent > 896) return (hi & 0xc0000000) | ((hi << 3) & 0x3ffffff8) | (lo >>> 29);
  let word = hi & 0x80000000;
  if (exponent >= 874) {
    const significandHigh = (hi & 0xfffff) | 0x100000;
    // (1.fraction) >> (896 + 30 − exponent), of the 53-bit significand's top bits.
    const shift = 896 + 30 - exponent - 29;
    const top = (significandHigh * 8 + (lo >>> 29)) >>> 0;
    word |= shift >= 32 ? 0 : top >>> shift;
  }
  return word;
}

function loadFloat(single: boolean, indexed: boolean, update: boolean): Semantics {
  return (cpu, w) => {
    const ea = indexed
      ? eaIndexed(cpu.gpr, fraOf(w), frbOf(w), "read")
      : eaDisplacement(cpu.gpr, fraOf(w), simm(w), "read");
    if (single) {
      const t = frtOf(w);
      singleToDouble(cpu.memory.load32(ea), cpu.vsrWords, 4 * t + 2);
      cpu.vsrWords[4 * t] = 0;
      cpu.vsrWords[4 * t + 1] = 0;
    } else {
      const t = frtOf(w);
      cpu.memory.load64(ea, cpu.vsrWords, 4 * t + 2);
      cpu.vsrWords[4 * t] = 0;
      cpu.vsrWords[4 * t + 1] = 0;
    }
    if (update) putAddress(cpu.gpr, fraOf(w), ea);
  };
}

function loadIntegerWord(signed: boolean): Semantics {
  return (cpu, w) => {
    const ea = eaIndexed(cpu.gpr, fraOf(w), frbOf(w), "read");
    const value = cpu.memory.load32(ea);
    writeFprWords(cpu, frtOf(w), value, signed ? value >> 31 : 0);
  };
}

function storeFloat(single: boolean, indexed: boolean, update: boolean): Semantics {
  return (cpu, w) => {
    const ea = indexed
      ? eaIndexed(cpu.gpr, fraOf(w), frbOf(w), "write")
      : eaDisplacement(cpu.gpr, fraOf(w), simm(w), "write");
    const words = cpu.vsrWords, s = frtOf(w);
    if (single) cpu.memory.store32(ea, doubleToSingle(words[4 * s + 2], words[4 * s + 3]));
    else cpu.memory.store64(ea, words[4 * s + 2], words[4 * s + 3]);
    cpu.noteStore(ea, single ? 4 : 8);
    if (update) putAddress(cpu.gpr, fraOf(w), ea);
  };
}

const stfiwx: Semantics = (cpu, w) => {
  const ea = eaIndexed(cpu.gpr, fraOf(w), frbOf(w), "write");
  cpu.memory.store32(ea, cpu.vsrWords[4 * frtOf(w) + 2]);
  cpu.noteStore(ea, 4);
};

/** The implementation of each instruction of the "fp" facility, by its semantics name. */
export const FLOATING_POINT_SEMANTICS: Record<string, Semantics> = {
  lfs: loadFloat(true, false, false),
  lfsu: loadFloat(true, false, true),
  lfsx: loadFloat(true, true, false),
  lfsux: loadFloat(true, true, true),
  lfd: loadFloat(false, false, false),
  lfdu: loadFloat(false, false, true),
  lfdx: loadFloat(false, true, false),
  lfdux: loadFloat(false, true, true),
  lfiwax: loadIntegerWord(true),
  lfiwzx: loadIntegerWord(false),
  stfs: storeFloat(true, false, false),
  stfsu: storeFloat(true, false, true),
  stfsx: storeFloat(true, true, false),
  stfsux: storeFloat(true, true, true),
  stfd: storeFloat(false, false, false),
  stfdu: storeFloat(false, false, true),
  stfdx: storeFloat(false, true, false),
  stfdux: storeFloat(false, true, true),
  stfiwx,
  fmr: signOperation((hi) => hi, false),
  fneg: signOperation((hi) => hi ^ 0x80000000, false),
  fabs: signOperation((hi) => hi & 0x7fffffff, false),
  fnabs: signOperation((hi) => hi | 0x80000000, false),
  fcpsgn: signOperation((hi, sign) => (hi & 0x7fffffff) | (sign & 0x80000000), true),
  fmrgew,
  fmrgow,
  fadd: addition(false, DOUBLE),
  fadds: addition(false, SINGLE),
  fsub: addition(true, DOUBLE),
  fsubs: addition(true, SINGLE),
  fmul: multiplication(DOUBLE),
  fmuls: multiplication(SINGLE),
  fdiv: division(DOUBLE),
  fdivs: division(SINGLE),
  fsqrt: squareRootInstruction(DOUBLE),
  fsqrts: squareRootInstruction(SINGLE),
  fre: estimate(false, DOUBLE),
  fres: estimate(false, SINGLE),
  frsqrte: estimate(true, DOUBLE),
  frsqrtes: estimate(true, SINGLE),
  ftdiv,
  ftsqrt,
  fmadd: multiplyAdd(false, false, DOUBLE),
  fmadds: multiplyAdd(false, false, SINGLE),
  fmsub: multiplyAdd(true, false, DOUBLE),
  fmsubs: multiplyAdd(true, false, SINGLE),
  fnmadd: multiplyAdd(false, true, DOUBLE),
  fnmadds: multiplyAdd(false, true, SINGLE),
  fnmsub: multiplyAdd(true, true, DOUBLE),
  fnmsubs: multiplyAdd(true, true, SINGLE),
  frsp,
  fctid: toInteger(IntegerFormat.Int64, false),
  fctidz: toInteger(IntegerFormat.Int64, true),
  fctidu: toInteger(IntegerFormat.Uint64, false),
  fctiduz: toInteger(IntegerFormat.Uint64, true),
  fctiw: toInteger(IntegerFormat.Int32, false),
  fctiwz: toInteger(IntegerFormat.Int32, true),
  fctiwu: toInteger(IntegerFormat.Uint32, false),
  fctiwuz: toInteger(IntegerFormat.Uint32, true),
  fcfid: fromInteger(true, DOUBLE),
  fcfidu: fromInteger(false, DOUBLE),
  fcfids: fromInteger(true, SINGLE),
  fcfidus: fromInteger(false, SINGLE),
  frin: roundToInteger(RoundingMode.NearestAway),
  friz: roundToInteger(RoundingMode.TowardZero),
  frip: roundToInteger(RoundingMode.TowardPositive),
  frim: roundToInteger(RoundingMode.TowardNegative),
  fcmpu: compare(false),
  fcmpo: compare(true),
  fsel,
  mffs,
  mffsce,
  mffscdrn,
  mffscdrni,
  mffscrn,
  mffscrni,
  mffsl,
  mcrfs,
  mtfsfi,
  mtfsf,
  mtfsb0,
  mtfsb1,
};

// The VSX scalar quad-precision facility (Power ISA v3.0B Book I chapter 7, the "qp" instructions,
// PPC_FEATURE2_HAS_IEEE128): IEEE binary128 arithmetic, fused multiply-add, square root,
// conversions to and from double precision and integers, rounding to an integral value and to
// double-extended precision, comparisons, data-class tests and the sign, exponent and significand
// operations.
//
// A quad-precision operand is a whole VSR: VRA, VRB and VRT name VSR 32..63, and the 128-bit
// value's most significant word (sign, 15-bit exponent, top of the 112-bit fraction) is
// vsrWords[4v + 3]. Values are handled as BigInt bit patterns and computed exactly by
// binary128.ts. The arithmetic rounds by FPSCR[RN], or to odd when the instruction's RO bit (31) is
// set, and reports to the FPSCR as the ISA's pseudocode does: the exception bits with FX and the
// summaries, FR and FI (both 0 after an invalid operation), FPRF of the result, and no write of VRT
// (nor of FPRF) when an enabled invalid operation or zero divide suppresses it; an enabled
// exception then raises the program interrupt, as fpu.ts does for the other floating-point
// instructions.

import type { Cpu, Semantics } from "./interpreter.ts";
import {
  type BinaryFormat,
  bitLength,
  decode,
  DOUBLE,
  type Enables,
  encode,
  exactSum,
  EXTENDED,
  finite,
  infinity,
  integerSquareRoot,
  isDenormal,
  isNaNValue,
  Kind,
  QUAD,
  quietBit,
  round,
  type Rounded,
  Rounding,
  roundToIntegral,
  signBit,
  type Value,
  zero,
} from "./binary128.ts";
import {
  FI,
  FPCC,
  FPRF,
  FprfClass,
  FR,
  OE,
  OX,
  raiseExceptions,
  RN,
  UE,
  UX,
  VE,
  VX_CLASSES,
  VXCVI,
  VXIDI,
  VXIMZ,
  VXISI,
  VXSNAN,
  VXSQRT,
  VXVC,
  VXZDZ,
  XX,
  ZE,
  ZX,
} from "./fpu.ts";

const vrt = (w: number) => 32 + ((w >>> 21) & 31);
const vra = (w: number) => 32 + ((w >>> 16) & 31);
const vrb = (w: number) => 32 + ((w >>> 11) & 31);
const bf = (w: number) => (w >>> 23) & 7;
/** RO (round to odd) of the arithmetic instructions and EX of xsrqpi share bit 31. */
const bit31 = (w: number) => (w & 1) !== 0;

const QUAD_SIGN = signBit(QUAD);
const QUAD_QUIET = quietBit(QUAD);
const EXPONENT_SHIFT = 112n;
const EXPONENT_FIELD = 0x7fffn << EXPONENT_SHIFT;
const FRACTION_FIELD = (1n << EXPONENT_SHIFT) - 1n;
const DEFAULT_NAN = EXPONENT_FIELD | QUAD_QUIET;
/** The fraction bits a NaN loses or gains between quad and double format (112 − 52). */
const NAN_PAYLOAD_SHIFT = 60n;

function readQuad(cpu: Cpu, v: number): bigint {
  const words = cpu.vsrWords, base = 4 * v;
  return (BigInt(words[base + 3] >>> 0) << 96n) | (BigInt(words[base + 2] >>> 0) << 64n) |
    (BigInt(words[base + 1] >>> 0) << 32n) | BigInt(words[base] >>> 0);
}

function writeQuad(cpu: Cpu, v: number, bits: bigint): void {
  const words = cpu.vsrWords, base = 4 * v;
  for (let k = 0; k < 4; k++) words[base + k] = Number((bits >> BigInt(32 * k)) & 0xffffffffn) | 0;
}

/** Doubleword 0 of VSR v (the ISA's leftmost doubleword). */
function readDoubleword0(cpu: Cpu, v: number): bigint {
  return readQuad(cpu, v) >> 64n;
}

/** Writes a doubleword result into doubleword 0 of VSR v; doubleword 1 becomes zero. */
function writeDoubleword0(cpu: Cpu, v: number, bits: bigint): void {
  writeQuad(cpu, v, BigInt.asUintN(64, bits) << 64n);
}

// ---------------------------------------------------------------------------------------------
// Outcomes and their delivery to the FPSCR.

/** The result of an instruction before it reaches the FPSCR and the target. */
interface Outcome {
  readonly bits: bigint;
  /** Exception bits raised (VX classes, ZX, OX, UX, XX). */
  readonly raised: number;
  readonly inexact: boolean;
  readonly incremented: boolean;
}

const exact = (bits: bigint, raised = 0): Outcome => ({ bits, raised, inexact: false, incremented: false });

/** An invalid operation: the default quiet NaN. */
const invalid = (raised: number): Outcome => exact(DEFAULT_NAN, raised);

function rounded(result: Rounded, format: BinaryFormat): Outcome {
  const raised = (result.overflow ? OX : 0) | (result.underflow ? UX : 0) | (result.inexact ? XX : 0);
  return {
    bits: encode(result.value, format),
    raised,
    inexact: result.inexact,
    incremented: result.incremented,
  };
}

const enablesOf = (fpscr: number): Enables => ({
  overflow: (fpscr & OE) !== 0,
  underflow: (fpscr & UE) !== 0,
});

/** The operands in NaN-precedence order, when one is a NaN: the first NaN quieted, VXSNAN for any signaling one. */
function propagateNaN(operands: readonly (readonly [Value, bigint])[]): Outcome | null {
  const first = operands.find(([value]) => isNaNValue(value));
  if (first === undefined) return null;
  const signaling = operands.some(([value]) => value.kind === Kind.SignalingNaN);
  return exact(first[1] | QUAD_QUIET, signaling ? VXSNAN : 0);
}

/** The FPRF code of an encoded result. */
function fprfOf(bits: bigint, format: BinaryFormat): number {
  const value = decode(bits, format);
  switch (value.kind) {
    case Kind.Zero:
      return value.negative ? FprfClass.NegativeZero : FprfClass.PositiveZero;
    case Kind.Infinity:
      return value.negative ? FprfClass.NegativeInfinity : FprfClass.PositiveInfinity;
    case Kind.Finite:
      if (isDenormal(value, format)) {
        return value.negative ? FprfClass.NegativeDenormal : FprfClass.PositiveDenormal;
      }
      return value.negative ? FprfClass.NegativeNormal : FprfClass.PositiveNormal;
    default:
      return FprfClass.QuietNaN;
  }
}

function finish(cpu: Cpu, w: number, raised: number): void {
  if (raiseExceptions(cpu, raised) && cpu.floatingPointExceptions) cpu.programInterrupt("floating-point", w);
}

/**
 * Applies an outcome: FR and FI, then, unless an enabled invalid operation or zero divide
 * suppresses it, the target (by `write`) and FPRF in the result's format; then the exceptions.
 */
function deliver(
  cpu: Cpu,
  w: number,
  outcome: Outcome,
  format: BinaryFormat,
  write: (cpu: Cpu, v: number, bits: bigint) => void,
): void {
  const invalidOperation = (outcome.raised & VX_CLASSES) !== 0;
  const suppressed = (invalidOperation && (cpu.fpscr & VE) !== 0) ||
    ((outcome.raised & ZX) !== 0 && (cpu.fpscr & ZE) !== 0);
  let fpscr = cpu.fpscr & ~(FR | FI);
  if (!invalidOperation) {
    if (outcome.inexact) fpscr |= FI;
    if (outcome.incremented) fpscr |= FR;
  }
  if (!suppressed) {
    write(cpu, vrt(w), outcome.bits);
    fpscr = (fpscr & ~FPRF) | (fprfOf(outcome.bits, format) << 12);
  }
  cpu.fpscr = fpscr;
  finish(cpu, w, outcome.raised);
}

// ---------------------------------------------------------------------------------------------
// Arithmetic.

/** Rounds an exact nonzero result to quad precision. */
function roundQuad(
  negative: boolean,
  significand: bigint,
  exponent: number,
  sticky: boolean,
  mode: Rounding,
  fpscr: number,
): Outcome {
  return rounded(round(negative, significand, exponent, sticky, QUAD, mode, enablesOf(fpscr)), QUAD);
}

/**
 * An exact zero or a rounded nonzero signed sum. An exact zero sum of terms of opposite signs is
 * −0 only when rounding toward −∞ (IEEE 754 6.3): the round-to-odd forms give +0 whatever
 * FPSCR[RN] says, as qemu does.
 */
function sumResult(
  sum: { negative: boolean; significand: bigint; exponent: number },
  aNegative: boolean,
  bNegative: boolean,
  mode: Rounding,
  fpscr: number,
): Outcome {
  if (sum.significand === 0n) {
    const negative = aNegative === bNegative ? aNegative : mode === Rounding.TowardNegative;
    return exact(encode(zero(negative), QUAD));
  }
  return roundQuad(sum.negative, sum.significand, sum.exponent, false, mode, fpscr);
}

function add(aBits: bigint, bBits: bigint, subtract: boolean, mode: Rounding, fpscr: number): Outcome {
  const a = decode(aBits, QUAD), b = decode(bBits, QUAD);
  const nan = propagateNaN([[a, aBits], [b, bBits]]);
  if (nan) return nan;
  const bNegative = b.negative !== subtract;
  if (a.kind === Kind.Infinity || b.kind === Kind.Infinity) {
    if (a.kind === b.kind && a.negative !== bNegative) return invalid(VXISI);
    return exact(encode(infinity(a.kind === Kind.Infinity ? a.negative : bNegative), QUAD));
  }
  const sum = exactSum(a.negative, a.significand, a.exponent, bNegative, b.significand, b.exponent);
  return sumResult(sum, a.negative, bNegative, mode, fpscr);
}

function multiply(aBits: bigint, bBits: bigint, mode: Rounding, fpscr: number): Outcome {
  const a = decode(aBits, QUAD), b = decode(bBits, QUAD);
  const nan = propagateNaN([[a, aBits], [b, bBits]]);
  if (nan) return nan;
  const negative = a.negative !== b.negative;
  if (a.kind === Kind.Infinity || b.kind === Kind.Infinity) {
    if (a.kind === Kind.Zero || b.kind === Kind.Zero) return invalid(VXIMZ);
    return exact(encode(infinity(negative), QUAD));
  }
  if (a.kind === Kind.Zero || b.kind === Kind.Zero) return exact(encode(zero(negative), QUAD));
  return roundQuad(negative, a.significand * b.significand, a.exponent + b.exponent, false, mode, fpscr);
}

function divide(aBits: bigint, bBits: bigint, mode: Rounding, fpscr: number): Outcome {
  const a = decode(aBits, QUAD), b = decode(bBits, QUAD);
  const nan = propagateNaN([[a, aBits], [b, bBits]]);
  if (nan) return nan;
  const negative = a.negative !== b.negative;
  if (a.kind === Kind.Infinity) {
    return b.kind === Kind.Infinity ? invalid(VXIDI) : exact(encode(infinity(negative), QUAD));
  }
  if (b.kind === Kind.Infinity) return exact(encode(zero(negative), QUAD));
  if (b.kind === Kind.Zero) {
    return a.kind === Kind.Zero ? invalid(VXZDZ) : exact(encode(infinity(negative), QUAD), ZX);
  }
  if (a.kind === Kind.Zero) return exact(encode(zero(negative), QUAD));
  // Enough quotient bits (precision + 2) that the remainder only decides the sticky bit.
  const shift = Math.max(0, QUAD.precision + 2 - (bitLength(a.significand) - bitLength(b.significand)));
  const dividend = a.significand << BigInt(shift);
  const quotient = dividend / b.significand;
  const sticky = quotient * b.significand !== dividend;
  return roundQuad(negative, quotient, a.exponent - b.exponent - shift, sticky, mode, fpscr);
}

function squareRoot(bBits: bigint, mode: Rounding, fpscr: number): Outcome {
  const b = decode(bBits, QUAD);
  const nan = propagateNaN([[b, bBits]]);
  if (nan) return nan;
  if (b.kind === Kind.Zero) return exact(bBits);
  if (b.negative) return invalid(VXSQRT);
  if (b.kind === Kind.Infinity) return exact(bBits);
  // An even exponent and a radicand of at least 2 × (precision + 2) bits.
  let shift = Math.max(0, 2 * (QUAD.precision + 2) - bitLength(b.significand));
  if (((b.exponent - shift) & 1) !== 0) shift += 1;
  const radicand = b.significand << BigInt(shift);
  const root = integerSquareRoot(radicand);
  return roundQuad(false, root, (b.exponent - shift) / 2, root * root !== radicand, mode, fpscr);
}

/**
 * ±(VRA × VRB ± VRT) with one rounding. The result is rounded, then negated (a NaN is never
 * negated); NaNs propagate in the order VRA, VRT, VRB, and ∞ × 0 with a NaN addend still raises
 * VXIMZ.
 */
function multiplyAdd(
  aBits: bigint,
  bBits: bigint,
  cBits: bigint,
  subtract: boolean,
  negate: boolean,
  mode: Rounding,
  fpscr: number,
): Outcome {
  const a = decode(aBits, QUAD), b = decode(bBits, QUAD), c = decode(cBits, QUAD);
  const infinityTimesZero = (a.kind === Kind.Infinity && b.kind === Kind.Zero) ||
    (a.kind === Kind.Zero && b.kind === Kind.Infinity);
  const nan = propagateNaN([[a, aBits], [c, cBits], [b, bBits]]);
  if (nan) return infinityTimesZero ? exact(nan.bits, nan.raised | VXIMZ) : nan;
  if (infinityTimesZero) return invalid(VXIMZ);
  const productNegative = a.negative !== b.negative;
  const addendNegative = c.negative !== subtract;
  let result: Outcome;
  if (a.kind === Kind.Infinity || b.kind === Kind.Infinity) {
    if (c.kind === Kind.Infinity && addendNegative !== productNegative) return invalid(VXISI);
    result = exact(encode(infinity(productNegative), QUAD));
  } else if (c.kind === Kind.Infinity) {
    result = exact(encode(infinity(addendNegative), QUAD));
  } else {
    const sum = exactSum(
      productNegative,
      a.significand * b.significand,
      a.exponent + b.exponent,
      addendNegative,
      c.significand,
      c.exponent,
    );
    result = sumResult(sum, productNegative, addendNegative, mode, fpscr);
  }
  return negate ? { ...result, bits: result.bits ^ QUAD_SIGN } : result;
}

const roundingOf = (
  cpu: Cpu,
  w: number,
): Rounding => (bit31(w) ? Rounding.Odd : (cpu.fpscr & RN) as Rounding);

function binary(operation: (a: bigint, b: bigint, mode: Rounding, fpscr: number) => Outcome): Semantics {
  return (cpu, w) => {
    const outcome = operation(readQuad(cpu, vra(w)), readQuad(cpu, vrb(w)), roundingOf(cpu, w), cpu.fpscr);
    deliver(cpu, w, outcome, QUAD, writeQuad);
  };
}

const xssqrtqp: Semantics = (cpu, w) =>
  deliver(cpu, w, squareRoot(readQuad(cpu, vrb(w)), roundingOf(cpu, w), cpu.fpscr), QUAD, writeQuad);

function multiplyAddInstruction(subtract: boolean, negate: boolean): Semantics {
  return (cpu, w) => {
    const outcome = multiplyAdd(
      readQuad(cpu, vra(w)),
      readQuad(cpu, vrb(w)),
      readQuad(cpu, vrt(w)),
      subtract,
      negate,
      roundingOf(cpu, w),
      cpu.fpscr,
    );
    deliver(cpu, w, outcome, QUAD, writeQuad);
  };
}

// ---------------------------------------------------------------------------------------------
// Conversions.

/** xscvqpdp[o]: rounds to double precision (by RN, or to odd) into doubleword 0. */
const xscvqpdp: Semantics = (cpu, w) => {
  const bits = readQuad(cpu, vrb(w));
  const b = decode(bits, QUAD);
  let outcome: Outcome;
  if (isNaNValue(b)) {
    const payload = (b.significand >> NAN_PAYLOAD_SHIFT) | quietBit(DOUBLE);
    const nan: Value = { kind: Kind.QuietNaN, negative: b.negative, significand: payload, exponent: 0 };
    outcome = exact(encode(nan, DOUBLE), b.kind === Kind.SignalingNaN ? VXSNAN : 0);
  } else if (b.kind === Kind.Finite) {
    const result = round(
      b.negative,
      b.significand,
      b.exponent,
      false,
      DOUBLE,
      roundingOf(cpu, w),
      enablesOf(cpu.fpscr),
    );
    outcome = rounded(result, DOUBLE);
  } else {
    outcome = exact(encode(b, DOUBLE));
  }
  deliver(cpu, w, outcome, DOUBLE, writeDoubleword0);
};

/** xscvdpqp: doubleword 0 as a double, exactly in quad precision. */
const xscvdpqp: Semantics = (cpu, w) => {
  const b = decode(readDoubleword0(cpu, vrb(w)), DOUBLE);
  let outcome: Outcome;
  if (isNaNValue(b)) {
    const payload = (b.significand << NAN_PAYLOAD_SHIFT) | QUAD_QUIET;
    const nan: Value = { kind: Kind.QuietNaN, negative: b.negative, significand: payload, exponent: 0 };
    outcome = exact(encode(nan, QUAD), b.kind === Kind.SignalingNaN ? VXSNAN : 0);
  } else {
    outcome = exact(encode(b, QUAD));
  }
  deliver(cpu, w, outcome, QUAD, writeQuad);
};

/** xscvsdqp, xscvudqp: the integer in doubleword 0, exactly in quad precision. */
function fromInteger(signed: boolean): Semantics {
  return (cpu, w) => {
    const doubleword = readDoubleword0(cpu, vrb(w));
    const integer = signed ? BigInt.asIntN(64, doubleword) : doubleword;
    const negative = integer < 0n;
    deliver(cpu, w, exact(encode(finite(negative, negative ? -integer : integer, 0), QUAD)), QUAD, writeQuad);
  };
}

/**
 * xscvqp[su][dw]z: truncates to an integer of `width` bits into doubleword 0 (a word result
 * sign- or zero-extended). NaNs and values out of range raise VXCVI (and VXSNAN) and give the
 * saturated value, the minimum for NaNs; FR becomes 0, FI tells an inexact in-range result, and
 * FPRF is left as it was (the ISA leaves it undefined).
 */
function toInteger(signed: boolean, width: 32 | 64): Semantics {
  const min = signed ? -(1n << BigInt(width - 1)) : 0n;
  const max = signed ? (1n << BigInt(width - 1)) - 1n : (1n << BigInt(width)) - 1n;
  return (cpu, w) => {
    const b = decode(readQuad(cpu, vrb(w)), QUAD);
    let result = 0n, raised = 0, inexact = false;
    if (isNaNValue(b)) {
      result = min;
      raised = b.kind === Kind.SignalingNaN ? VXCVI | VXSNAN : VXCVI;
    } else if (b.kind === Kind.Infinity || (b.kind === Kind.Finite && b.exponent > width)) {
      result = b.negative ? min : max;
      raised = VXCVI;
    } else if (b.kind === Kind.Finite) {
      const truncated = roundToIntegral(b, Rounding.TowardZero);
      const magnitude = truncated.value.significand << BigInt(truncated.value.exponent);
      const integer = b.negative ? -magnitude : magnitude;
      if (integer < min || integer > max) {
        result = integer < min ? min : max;
        raised = VXCVI;
      } else {
        result = integer;
        inexact = truncated.inexact;
        raised = inexact ? XX : 0;
      }
    }
    const invalidConversion = (raised & VXCVI) !== 0;
    cpu.fpscr = (cpu.fpscr & ~(FR | FI)) | (inexact ? FI : 0);
    if (!(invalidConversion && (cpu.fpscr & VE) !== 0)) writeDoubleword0(cpu, vrt(w), result);
    finish(cpu, w, raised);
  };
}

// ---------------------------------------------------------------------------------------------
// Rounding to an integral value and to double-extended precision.

/**
 * The rounding mode of xsrqpi and xsrqpxp: R=1 selects by RMC (nearest even, toward zero, toward
 * +∞, toward −∞); R=0 with RMC=0b00 is round to nearest away, with RMC=0b11 FPSCR[RN]. The ISA
 * reserves R=0 with RMC=0b01 or 0b10; they round to nearest even here.
 */
function roundingControl(cpu: Cpu, w: number): Rounding {
  const r = (w >>> 16) & 1, rmc = (w >>> 9) & 3;
  if (r === 1) return rmc as Rounding;
  if (rmc === 0) return Rounding.NearestAway;
  if (rmc === 3) return (cpu.fpscr & RN) as Rounding;
  return Rounding.NearestEven;
}

/** A signaling NaN quieted with VXSNAN; a quiet NaN, an infinity or a zero unchanged; null otherwise. */
function unchangedOrQuieted(bits: bigint, b: Value): Outcome | null {
  if (b.kind === Kind.SignalingNaN) return exact(bits | QUAD_QUIET, VXSNAN);
  if (b.kind === Kind.Finite) return null;
  return exact(bits);
}

/** xsrqpi, xsrqpix: FI and XX report an inexact result only for the x form (EX); FR becomes 0. */
const xsrqpi: Semantics = (cpu, w) => {
  const bits = readQuad(cpu, vrb(w));
  const b = decode(bits, QUAD);
  let outcome = unchangedOrQuieted(bits, b);
  if (outcome === null) {
    const result = roundToIntegral(b, roundingControl(cpu, w));
    const signalsInexact = result.inexact && bit31(w);
    outcome = {
      bits: encode(result.value, QUAD),
      raised: signalsInexact ? XX : 0,
      inexact: signalsInexact,
      incremented: false,
    };
  }
  deliver(cpu, w, outcome, QUAD, writeQuad);
};

/** xsrqpxp: rounds to a 64-bit significand within the quad exponent range, kept in quad format. */
const xsrqpxp: Semantics = (cpu, w) => {
  const bits = readQuad(cpu, vrb(w));
  const b = decode(bits, QUAD);
  let outcome = unchangedOrQuieted(bits, b);
  if (outcome === null) {
    const result = round(
      b.negative,
      b.significand,
      b.exponent,
      false,
      EXTENDED,
      roundingControl(cpu, w),
      enablesOf(cpu.fpscr),
    );
    outcome = rounded(result, QUAD);
  }
  deliver(cpu, w, outcome, QUAD, writeQuad);
};

// ---------------------------------------------------------------------------------------------
// Comparisons and tests.

/** Sets FPCC and CR field BF to a 4-bit comparison or test result. */
function setConditionField(cpu: Cpu, w: number, result: number): void {
  cpu.fpscr = (cpu.fpscr & ~FPCC) | (result << 12);
  cpu.setCrField(bf(w), result);
}

/** The order of two non-NaN encodings: their magnitudes with the sign applied, ±0 equal. */
function orderKey(bits: bigint): bigint {
  const magnitude = bits & ~QUAD_SIGN;
  return (bits & QUAD_SIGN) !== 0n ? -magnitude : magnitude;
}

/** xscmpuqp, xscmpoqp: FL, FG, FE or FU; the ordered form also raises VXVC for NaNs (for a signaling one only when VE is off). */
function compare(ordered: boolean): Semantics {
  return (cpu, w) => {
    const aBits = readQuad(cpu, vra(w)), bBits = readQuad(cpu, vrb(w));
    const a = decode(aBits, QUAD), b = decode(bBits, QUAD);
    let result: number, raised = 0;
    if (isNaNValue(a) || isNaNValue(b)) {
      result = 1;
      const signaling = a.kind === Kind.SignalingNaN || b.kind === Kind.SignalingNaN;
      if (signaling) raised |= VXSNAN;
      if (ordered && (!signaling || (cpu.fpscr & VE) === 0)) raised |= VXVC;
    } else {
      const ka = orderKey(aBits), kb = orderKey(bBits);
      result = ka < kb ? 8 : ka > kb ? 4 : 2;
    }
    setConditionField(cpu, w, result);
    finish(cpu, w, raised);
  };
}

/** xscmpexpqp: compares the biased exponents; unordered when either operand is a NaN. */
const xscmpexpqp: Semantics = (cpu, w) => {
  const aBits = readQuad(cpu, vra(w)), bBits = readQuad(cpu, vrb(w));
  let result: number;
  if (isNaNValue(decode(aBits, QUAD)) || isNaNValue(decode(bBits, QUAD))) result = 1;
  else {
    const ea = aBits & EXPONENT_FIELD, eb = bBits & EXPONENT_FIELD;
    result = ea < eb ? 8 : ea > eb ? 4 : 2;
  }
  setConditionField(cpu, w, result);
};

/** DCMX bits: NaN, +∞, −∞, +0, −0, +denormal, −denormal. */
function dataClassBit(b: Value): number {
  switch (b.kind) {
    case Kind.QuietNaN:
    case Kind.SignalingNaN:
      return 0x40;
    case Kind.Infinity:
      return b.negative ? 0x10 : 0x20;
    case Kind.Zero:
      return b.negative ? 0x04 : 0x08;
    default:
      return isDenormal(b, QUAD) ? (b.negative ? 0x01 : 0x02) : 0;
  }
}

/** xststdcqp: FPCC and CR field BF ← sign || 0 || match || 0. */
const xststdcqp: Semantics = (cpu, w) => {
  const b = decode(readQuad(cpu, vrb(w)), QUAD);
  const match = (dataClassBit(b) & (w >>> 16) & 0x7f) !== 0;
  setConditionField(cpu, w, (b.negative ? 8 : 0) | (match ? 2 : 0));
};

// ---------------------------------------------------------------------------------------------
// Sign, exponent and significand operations (no FPSCR effect).

function bitwise(operation: (b: bigint, a: bigint) => bigint): Semantics {
  return (cpu, w) => writeQuad(cpu, vrt(w), operation(readQuad(cpu, vrb(w)), readQuad(cpu, vra(w))));
}

/** xsxexpqp: the biased exponent in doubleword 0. */
const xsxexpqp = bitwise((b) => (b & EXPONENT_FIELD) >> (EXPONENT_SHIFT - 64n));

/** xsxsigqp: the significand, with the implicit bit for normal values (exponent neither 0 nor all ones). */
const xsxsigqp = bitwise((b) => {
  const exponent = b & EXPONENT_FIELD;
  const implicit = exponent !== 0n && exponent !== EXPONENT_FIELD ? 1n << EXPONENT_SHIFT : 0n;
  return (b & FRACTION_FIELD) | implicit;
});

/** xsiexpqp: VRA's sign and fraction with the exponent from the low 15 bits of VRB's doubleword 0. */
const xsiexpqp = bitwise((b, a) => (a & ~EXPONENT_FIELD) | (((b >> 64n) & 0x7fffn) << EXPONENT_SHIFT));

/** The implementation of each instruction of the "ieee128" facility, by its semantics name. */
export const QUAD_SEMANTICS: Record<string, Semantics> = {
  xsaddqp: binary((a, b, mode, fpscr) => add(a, b, false, mode, fpscr)),
  xssubqp: binary((a, b, mode, fpscr) => add(a, b, true, mode, fpscr)),
  xsmulqp: binary(multiply),
  xsdivqp: binary(divide),
  xssqrtqp,
  xsmaddqp: multiplyAddInstruction(false, false),
  xsmsubqp: multiplyAddInstruction(true, false),
  xsnmaddqp: multiplyAddInstruction(false, true),
  xsnmsubqp: multiplyAddInstruction(true, true),
  xscpsgnqp: bitwise((b, a) => (b & ~QUAD_SIGN) | (a & QUAD_SIGN)),
  xsabsqp: bitwise((b) => b & ~QUAD_SIGN),
  xsnabsqp: bitwise((b) => b | QUAD_SIGN),
  xsnegqp: bitwise((b) => b ^ QUAD_SIGN),
  xsxexpqp,
  xsxsigqp,
  xsiexpqp,
  xscmpuqp: compare(false),
  xscmpoqp: compare(true),
  xscmpexpqp,
  xststdcqp,
  xscvqpdp,
  xscvdpqp,
  xscvqpsdz: toInteger(true, 64),
  xscvqpswz: toInteger(true, 32),
  xscvqpudz: toInteger(false, 64),
  xscvqpuwz: toInteger(false, 32),
  xscvsdqp: fromInteger(true),
  xscvudqp: fromInteger(false),
  xsrqpi,
  xsrqpxp,
};

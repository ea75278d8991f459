// IEEE 754 binary128 (quad precision) and the other binary formats the quad-precision
// instructions convert to, as exact BigInt arithmetic: decoding an encoding into a value,
// correctly rounding an exact value in any of the ISA's rounding modes (round to odd included)
// with its overflow, underflow and inexact outcome, and encoding the result. The quad-precision
// instructions are rare next to double-precision code, so exactness matters more here than speed.

import { RoundingMode } from "./float.ts";

/** The rounding modes of FPSCR[RN], round to nearest away (xsrqpi) and round to odd (the "o" forms). */
export const Rounding = { ...RoundingMode, Odd: 5 } as const;
export type Rounding = (typeof Rounding)[keyof typeof Rounding];

/** A binary interchange format, or (EXTENDED) a precision and range to round to. */
export interface BinaryFormat {
  /** Significand bits, the implicit bit included. */
  readonly precision: number;
  readonly minExponent: number;
  readonly maxExponent: number;
  /** The exponent adjustment of an enabled overflow or underflow result (3 × 2^(exponent bits − 2)). */
  readonly wrap: number;
}

export const QUAD: BinaryFormat = { precision: 113, minExponent: -16382, maxExponent: 16383, wrap: 24576 };
export const DOUBLE: BinaryFormat = { precision: 53, minExponent: -1022, maxExponent: 1023, wrap: 1536 };
/** Double-extended precision (64-bit significand, quad exponent range): xsrqpxp's rounding, kept in quad format. */
export const EXTENDED: BinaryFormat = { precision: 64, minExponent: -16382, maxExponent: 16383, wrap: 24576 };

export const Kind = { Zero: 0, Finite: 1, Infinity: 2, QuietNaN: 3, SignalingNaN: 4 } as const;
export type Kind = (typeof Kind)[keyof typeof Kind];

/**
 * A decoded value. A finite nonzero value is significand × 2^exponent (significand > 0, not
 * necessarily normalized); a NaN keeps its fraction field in significand.
 */
export interface Value {
  readonly kind: Kind;
  readonly negative: boolean;
  readonly significand: bigint;
  readonly exponent: number;
}

export function bitLength(x: bigint): number {
  return x === 0n ? 0 : x.toString(2).length;
}

const fractionBits = (f: BinaryFormat) => BigInt(f.precision - 1);
const maxBiased = (f: BinaryFormat) => BigInt(2 * f.maxExponent + 1);

/** The sign bit of a format's encoding. */
export function signBit(f: BinaryFormat): bigint {
  return 1n << (fractionBits(f) + BigInt(bitLength(maxBiased(f))));
}

/** The quiet bit of a NaN's fraction. */
export function quietBit(f: BinaryFormat): bigint {
  return 1n << (fractionBits(f) - 1n);
}

export function decode(bits: bigint, f: BinaryFormat): Value {
  const fb = fractionBits(f);
  const fraction = bits & ((1n << fb) - 1n);
  const biased = (bits >> fb) & maxBiased(f);
  const negative = (bits & signBit(f)) !== 0n;
  if (biased === maxBiased(f)) {
    if (fraction === 0n) return { kind: Kind.Infinity, negative, significand: 0n, exponent: 0 };
    const kind = (fraction & quietBit(f)) !== 0n ? Kind.QuietNaN : Kind.SignalingNaN;
    return { kind, negative, significand: fraction, exponent: 0 };
  }
  if (biased === 0n) {
    if (fraction === 0n) return { kind: Kind.Zero, negative, significand: 0n, exponent: 0 };
    return {
      kind: Kind.Finite,
      negative,
      significand: fraction,
      exponent: f.minExponent - (f.precision - 1),
    };
  }
  return {
    kind: Kind.Finite,
    negative,
    significand: fraction | (1n << fb),
    exponent: Number(biased) - f.maxExponent - (f.precision - 1),
  };
}

/** The encoding of a value that the format represents exactly (a NaN's significand is its fraction). */
export function encode(value: Value, f: BinaryFormat): bigint {
  const sign = value.negative ? signBit(f) : 0n;
  const fb = fractionBits(f);
  switch (value.kind) {
    case Kind.Zero:
      return sign;
    case Kind.Infinity:
      return sign | (maxBiased(f) << fb);
    case Kind.QuietNaN:
    case Kind.SignalingNaN:
      return sign | (maxBiased(f) << fb) | (value.significand & ((1n << fb) - 1n));
  }
  const length = bitLength(value.significand);
  const leading = value.exponent + length - 1;
  // Normal: the significand shifted to exactly `precision` bits; denormal: to the smallest quantum.
  const quantum = leading >= f.minExponent ? leading - (f.precision - 1) : f.minExponent - (f.precision - 1);
  const shift = value.exponent - quantum;
  const significand = shift >= 0 ? value.significand << BigInt(shift) : value.significand >> BigInt(-shift);
  if (leading < f.minExponent) return sign | significand;
  return sign | (BigInt(leading + f.maxExponent) << fb) | (significand - (1n << fb));
}

/** Whether a decoded finite value is below the format's normal range. */
export function isDenormal(value: Value, f: BinaryFormat): boolean {
  return value.kind === Kind.Finite && value.exponent + bitLength(value.significand) - 1 < f.minExponent;
}

export const isNaNValue = (value: Value) => value.kind === Kind.QuietNaN || value.kind === Kind.SignalingNaN;

export function zero(negative: boolean): Value {
  return { kind: Kind.Zero, negative, significand: 0n, exponent: 0 };
}

export function infinity(negative: boolean): Value {
  return { kind: Kind.Infinity, negative, significand: 0n, exponent: 0 };
}

export function finite(negative: boolean, significand: bigint, exponent: number): Value {
  return significand === 0n ? zero(negative) : { kind: Kind.Finite, negative, significand, exponent };
}

/** The exceptions raised by enabling: FPSCR[OE] and FPSCR[UE]. */
export interface Enables {
  readonly overflow: boolean;
  readonly underflow: boolean;
}

/** A correctly rounded result and what the rounding found. */
export interface Rounded {
  readonly value: Value;
  readonly inexact: boolean;
  /** The magnitude was rounded up (FPSCR[FR]). */
  readonly incremented: boolean;
  readonly overflow: boolean;
  readonly underflow: boolean;
}

function overflowsToInfinity(negative: boolean, mode: Rounding): boolean {
  return mode === Rounding.NearestEven || mode === Rounding.NearestAway ||
    (mode === Rounding.TowardPositive && !negative) || (mode === Rounding.TowardNegative && negative);
}

/**
 * Whether rounding away the discarded part of a magnitude (remainder out of 2 × half units, plus
 * a sticky ε) adds one unit to the kept part; round to odd adds it to an even kept part, which is
 * the same as forcing its last bit to 1.
 */
function roundsUp(
  mode: Rounding,
  negative: boolean,
  kept: bigint,
  remainder: bigint,
  half: bigint,
  sticky: boolean,
): boolean {
  const inexact = remainder !== 0n || sticky;
  switch (mode) {
    case Rounding.NearestEven:
      return half !== 0n && (remainder > half || (remainder === half && (sticky || (kept & 1n) === 1n)));
    case Rounding.NearestAway:
      return half !== 0n && remainder >= half;
    case Rounding.TowardPositive:
      return inexact && !negative;
    case Rounding.TowardNegative:
      return inexact && negative;
    case Rounding.Odd:
      return inexact && (kept & 1n) === 0n;
    default:
      return false;
  }
}

/**
 * Rounds ±(significand + sticky·ε) × 2^exponent (significand > 0, 0 < ε < 1) to a format, as the
 * ISA's bfp_ROUND_TO_BFP* functions do. Tininess is detected before rounding. A tiny value is
 * denormalized, and underflows when the result is inexact, unless underflow is enabled: then its
 * exponent is raised by the format's wrap and it always underflows. An overflow gives infinity or
 * the largest finite value by the mode (round to odd gives the largest) when overflow is disabled,
 * the result with its exponent lowered by the wrap when enabled. Producers give at least
 * precision + 2 significant bits whenever sticky is set, so that ε stays below half a unit of the
 * result's last place.
 */
export function round(
  negative: boolean,
  significand: bigint,
  exponent: number,
  sticky: boolean,
  f: BinaryFormat,
  mode: Rounding,
  enables: Enables,
): Rounded {
  const p = f.precision;
  const leading = exponent + bitLength(significand) - 1;
  const tiny = leading < f.minExponent;
  const adjust = tiny && enables.underflow ? f.wrap : 0;
  let quantum = tiny && adjust === 0 ? f.minExponent - (p - 1) : leading + adjust - (p - 1);
  const shift = quantum - (exponent + adjust);
  let kept: bigint, remainder = 0n, half = 0n;
  if (shift <= 0) {
    kept = significand << BigInt(-shift);
  } else {
    kept = significand >> BigInt(shift);
    remainder = significand & ((1n << BigInt(shift)) - 1n);
    half = 1n << BigInt(shift - 1);
  }
  const inexact = remainder !== 0n || sticky;
  const up = roundsUp(mode, negative, kept, remainder, half, sticky);
  if (up) {
    kept += 1n;
    if (kept === 1n << BigInt(p)) {
      kept >>= 1n;
      quantum += 1;
    }
  }
  const underflow = tiny && (adjust !== 0 || inexact);
  if (!tiny && quantum + bitLength(kept) - 1 > f.maxExponent) {
    if (enables.overflow) {
      const value = finite(negative, kept, quantum - f.wrap);
      return { value, inexact, incremented: up, overflow: true, underflow: false };
    }
    const value = overflowsToInfinity(negative, mode)
      ? infinity(negative)
      : finite(negative, (1n << BigInt(p)) - 1n, f.maxExponent - (p - 1));
    return { value, inexact: true, incremented: false, overflow: true, underflow: false };
  }
  return { value: finite(negative, kept, quantum), inexact, incremented: up, overflow: false, underflow };
}

/** ⌊√n⌋ (Newton's iteration from above). */
export function integerSquareRoot(n: bigint): bigint {
  if (n < 2n) return n;
  let x = 1n << BigInt((bitLength(n) >> 1) + 1);
  for (;;) {
    const y = (x + n / x) >> 1n;
    if (y >= x) return x;
    x = y;
  }
}

/** An exact signed sum of two finite values (either may be zero): its magnitude, sign and exponent. */
export function exactSum(
  aNegative: boolean,
  aSignificand: bigint,
  aExponent: number,
  bNegative: boolean,
  bSignificand: bigint,
  bExponent: number,
): { negative: boolean; significand: bigint; exponent: number } {
  if (aSignificand === 0n) return { negative: bNegative, significand: bSignificand, exponent: bExponent };
  if (bSignificand === 0n) return { negative: aNegative, significand: aSignificand, exponent: aExponent };
  const exponent = Math.min(aExponent, bExponent);
  const a = aSignificand << BigInt(aExponent - exponent), b = bSignificand << BigInt(bExponent - exponent);
  const sum = (aNegative ? -a : a) + (bNegative ? -b : b);
  return { negative: sum < 0n, significand: sum < 0n ? -sum : sum, exponent };
}

/** A finite value rounded to an integral value in a mode (the ISA's bfp_ROUND_TO_INTEGER); zeros keep the sign. */
export function roundToIntegral(value: Value, mode: Rounding): { value: Value; inexact: boolean } {
  if (value.exponent >= 0) return { value, inexact: false };
  const shift = BigInt(-value.exponent);
  const kept = value.significand >> shift;
  const remainder = value.significand & ((1n << shift) - 1n);
  const half = 1n << (shift - 1n);
  const up = roundsUp(mode, value.negative, kept, remainder, half, false);
  return { value: finite(value.negative, up ? kept + 1n : kept, 0), inexact: remainder !== 0n };
}

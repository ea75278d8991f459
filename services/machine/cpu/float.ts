// IEEE 754 binary64 and binary32 arithmetic with the four rounding modes of FPSCR[RN], exact
// inexact/overflow/underflow detection and the ISA's exponent-adjusted results, on JS doubles.
//
// JS arithmetic rounds to nearest-even only. Every operation here therefore produces the
// round-to-nearest double r together with the sign of the exact residual (exact − r), found with
// error-free transformations (TwoSum, Dekker's product, Boldo–Melquiond's emulated FMA). From
// (r, residual) the result in any rounding mode and precision is exact: a directed mode moves r by
// one unit towards the exact value when r is on the wrong side of it, and a single-precision
// rounding breaks its ties by the residual. Where the transformations are not exact (results or
// error terms in the subnormal range, values near overflow) the operation is recomputed exactly
// with BigInt and rounded bit by bit: the slow path, which is also the tests' reference.
//
// Results come back in ROUNDED (module state, so that the hot path allocates nothing).

export const RoundingMode = {
  NearestEven: 0,
  TowardZero: 1,
  TowardPositive: 2,
  TowardNegative: 3,
  /** Round to nearest, ties away from zero: frin, xsrdpi, vrfin. Never in FPSCR[RN]. */
  NearestAway: 4,
} as const;
export type RoundingMode = (typeof RoundingMode)[keyof typeof RoundingMode];

export interface FloatFormat {
  readonly precision: number;
  readonly minExponent: number;
  readonly maxExponent: number;
  /** The exponent adjustment of an enabled overflow or underflow result (1536 or 192). */
  readonly wrap: number;
  readonly maxFinite: number;
  readonly minNormal: number;
}

export const DOUBLE: FloatFormat = {
  precision: 53,
  minExponent: -1022,
  maxExponent: 1023,
  wrap: 1536,
  maxFinite: Number.MAX_VALUE,
  minNormal: 2 ** -1022,
};

export const SINGLE: FloatFormat = {
  precision: 24,
  minExponent: -126,
  maxExponent: 127,
  wrap: 192,
  maxFinite: 3.4028234663852886e38,
  minNormal: 2 ** -126,
};

/** IEEE binary16, for the half-precision conversions of VSX; its enabled results are not adjusted. */
export const HALF: FloatFormat = {
  precision: 11,
  minExponent: -14,
  maxExponent: 15,
  wrap: 0,
  maxFinite: 65504,
  minNormal: 2 ** -14,
};

/** The outcome of the last rounding. */
export const ROUNDED = {
  value: 0,
  inexact: false,
  /** The significand was incremented in magnitude (FPSCR[FR]). */
  incremented: false,
  overflow: false,
  /** The exact result was nonzero and below the format's smallest normal magnitude (before rounding). */
  tiny: false,
};

// Bit access to doubles and singles.
const F64 = new Float64Array(1);
const F64_WORDS = new Int32Array(F64.buffer);
const F32 = new Float32Array(1);
const F32_WORD = new Int32Array(F32.buffer);

/** The high word (sign, exponent, top of the fraction) of a double. */
export function highWord(x: number): number {
  F64[0] = x;
  return F64_WORDS[1];
}

export function lowWord(x: number): number {
  F64[0] = x;
  return F64_WORDS[0];
}

export function fromWords(lo: number, hi: number): number {
  F64_WORDS[0] = lo;
  F64_WORDS[1] = hi;
  return F64[0];
}

export function singleFromWord(word: number): number {
  F32_WORD[0] = word;
  return F32[0];
}

/** The binary32 encoding of a value that is exactly representable as a single (not a NaN). */
export function singleWord(x: number): number {
  F32[0] = x;
  return F32_WORD[0];
}

export function isNegative(x: number): boolean {
  return x < 0 || (x === 0 && 1 / x < 0);
}

/** The neighbour of a finite double one unit in the last place away from zero (towards infinity). */
function nextAwayFromZero(x: number): number {
  F64[0] = x;
  const lo = F64_WORDS[0];
  F64_WORDS[0] = lo + 1;
  if (lo === -1) F64_WORDS[1] = F64_WORDS[1] + 1;
  return F64[0];
}

/** The neighbour of a nonzero finite double one unit in the last place towards zero. */
function nextTowardZero(x: number): number {
  F64[0] = x;
  const lo = F64_WORDS[0];
  F64_WORDS[0] = lo - 1;
  if (lo === 0) F64_WORDS[1] = F64_WORDS[1] - 1;
  return F64[0];
}

/** The next double towards +∞ (direction > 0) or −∞ (direction < 0). */
function nextInDirection(x: number, direction: number): number {
  if (x === 0) return direction > 0 ? 5e-324 : -5e-324;
  return (x > 0) === (direction > 0) ? nextAwayFromZero(x) : nextTowardZero(x);
}

function nextSingle(x: number, direction: number): number {
  if (x === 0) return direction > 0 ? 1.401298464324817e-45 : -1.401298464324817e-45;
  F32[0] = x;
  F32_WORD[0] += (x > 0) === (direction > 0) ? 1 : -1;
  return F32[0];
}

/** Whether a double's significand is odd. */
function oddSignificand(x: number): boolean {
  F64[0] = x;
  return (F64_WORDS[0] & 1) !== 0;
}

// Error-free transformations. Each leaves the error term in ERROR.
let ERROR = 0;

/** s = RN(a + b), ERROR = a + b − s exactly (for finite a, b without overflow). */
function twoSum(a: number, b: number): number {
  const s = a + b;
  const bVirtual = s - a;
  ERROR = (a - (s - bVirtual)) + (b - bVirtual);
  return s;
}

const SPLITTER = 134217729; // 2^27 + 1

/** p = RN(a × b), ERROR = a × b − p exactly (for |a|, |b|, |p| inside the safe range). */
function twoProduct(a: number, b: number): number {
  const p = a * b;
  let t = SPLITTER * a;
  const aHigh = t - (t - a), aLow = a - aHigh;
  t = SPLITTER * b;
  const bHigh = t - (t - b), bLow = b - bHigh;
  ERROR = ((aHigh * bHigh - p) + aHigh * bLow + aLow * bHigh) + aLow * bLow;
  return p;
}

/**
 * Magnitudes inside which Dekker's product and the residual computations are exact: the error
 * term of any product of such values is a representable double and nothing overflows.
 */
const SAFE_LOW = 2 ** -960;
const SAFE_HIGH = 2 ** 960;

function safe(x: number): boolean {
  const magnitude = Math.abs(x);
  return magnitude >= SAFE_LOW && magnitude <= SAFE_HIGH;
}

const signOf = (x: number) => (x > 0 ? 1 : x < 0 ? -1 : 0);

// ---------------------------------------------------------------------------------------------
// Exact values and bit-by-bit rounding (the slow path).

/**
 * An exact value ±(significand + sticky·ε) × 2^exponent, where ε is positive and below one unit of
 * the significand's last place. Producers give at least precision + 2 significant bits whenever
 * sticky is set, so that ε stays below half a unit of the rounded result's last place.
 */
export interface ExactValue {
  negative: boolean;
  significand: bigint;
  exponent: number;
  sticky: boolean;
}

function bitLength(x: bigint): number {
  return x === 0n ? 0 : x.toString(2).length;
}

/** x × 2^n for an integer-valued x whose result is representable (n may be below −1022). */
function scale(x: number, n: number): number {
  if (n > 1000) return x * 2 ** 1000 * 2 ** (n - 1000);
  if (n < -1000) return x * 2 ** (n + 600) * 2 ** -600;
  return x * 2 ** n;
}

/** The largest finite magnitude, or infinity, that an overflowing result rounds to in a mode. */
function overflowResult(negative: boolean, format: FloatFormat, mode: RoundingMode): number {
  const toInfinity = mode === RoundingMode.NearestEven || mode === RoundingMode.NearestAway ||
    (mode === RoundingMode.TowardPositive && !negative) || (mode === RoundingMode.TowardNegative && negative);
  const magnitude = toInfinity ? Infinity : format.maxFinite;
  return negative ? -magnitude : magnitude;
}

/**
 * Rounds an exact nonzero value to the format in a mode into ROUNDED. With `adjust` ≠ 0 the
 * exponent is first moved by it and the result is not denormalized (the ISA's enabled overflow and
 * underflow results); `tiny` and `overflow` then describe the unadjusted value only when adjust is 0.
 */
export function roundExact(value: ExactValue, format: FloatFormat, mode: RoundingMode, adjust = 0): void {
  const { negative, significand, sticky } = value;
  const exponent = value.exponent + adjust;
  const p = format.precision;
  const leading = exponent + bitLength(significand) - 1;
  let lsb = leading - (p - 1);
  const smallestLsb = format.minExponent - (p - 1);
  if (adjust === 0 && lsb < smallestLsb) lsb = smallestLsb;
  const shift = lsb - exponent;
  let quotient: bigint, remainder = 0n, half = 0n;
  if (shift <= 0) {
    quotient = significand << BigInt(-shift);
  } else {
    quotient = significand >> BigInt(shift);
    remainder = significand & ((1n << BigInt(shift)) - 1n);
    half = 1n << BigInt(shift - 1);
  }
  const inexact = remainder !== 0n || sticky;
  let up = false;
  switch (mode) {
    case RoundingMode.NearestEven:
      up = shift > 0 && (remainder > half || (remainder === half && (sticky || (quotient & 1n) === 1n)));
      break;
    case RoundingMode.NearestAway:
      up = shift > 0 && remainder >= half;
      break;
    case RoundingMode.TowardPositive:
      up = inexact && !negative;
      break;
    case RoundingMode.TowardNegative:
      up = inexact && negative;
      break;
  }
  if (up) {
    quotient += 1n;
    if (quotient === 1n << BigInt(p)) {
      quotient >>= 1n;
      lsb += 1;
    }
  }
  ROUNDED.tiny = adjust === 0 && leading < format.minExponent;
  ROUNDED.inexact = inexact;
  ROUNDED.incremented = up;
  const resultLeading = lsb + bitLength(quotient) - 1;
  if (resultLeading > format.maxExponent) {
    ROUNDED.overflow = true;
    ROUNDED.value = overflowResult(negative, format, mode);
    return;
  }
  ROUNDED.overflow = false;
  const magnitude = scale(Number(quotient), lsb);
  ROUNDED.value = negative ? -magnitude : magnitude;
}

/** The exact value of a finite nonzero double. */
export function exactOf(x: number, target: ExactValue): ExactValue {
  F64[0] = x;
  const hi = F64_WORDS[1], lo = F64_WORDS[0];
  const biased = (hi >>> 20) & 0x7ff;
  const fraction = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo >>> 0);
  target.negative = hi < 0;
  target.sticky = false;
  if (biased === 0) {
    target.significand = fraction;
    target.exponent = -1074;
  } else {
    target.significand = fraction | (1n << 52n);
    target.exponent = biased - 1075;
  }
  return target;
}

/**
 * The exact value described by a round-to-nearest double r and the sign of exact − r: r itself, or
 * a value strictly between r and its neighbour half an ulp away, which every rounding to 53 bits
 * or fewer treats like the exact one.
 */
function exactFromResidual(r: number, residual: number, target: ExactValue): ExactValue {
  exactOf(r, target);
  if (residual === 0) return target;
  const awayFromZero = (residual > 0) !== target.negative;
  target.significand = (target.significand << 2n) + (awayFromZero ? 0n : -1n);
  target.exponent -= 2;
  target.sticky = true;
  return target;
}

const SCRATCH_A: ExactValue = { negative: false, significand: 0n, exponent: 0, sticky: false };
const SCRATCH_B: ExactValue = { negative: false, significand: 0n, exponent: 0, sticky: false };
const SCRATCH_C: ExactValue = { negative: false, significand: 0n, exponent: 0, sticky: false };
const SCRATCH_PRODUCT: ExactValue = { negative: false, significand: 0n, exponent: 0, sticky: false };
const SCRATCH_RESULT: ExactValue = { negative: false, significand: 0n, exponent: 0, sticky: false };

/** a + b exactly (finite, nonzero sum assumed by the caller's rounding). */
function exactSum(a: ExactValue, b: ExactValue, target: ExactValue): ExactValue {
  const exponent = Math.min(a.exponent, b.exponent);
  const ma = a.significand << BigInt(a.exponent - exponent);
  const mb = b.significand << BigInt(b.exponent - exponent);
  const sum = (a.negative ? -ma : ma) + (b.negative ? -mb : mb);
  target.negative = sum < 0n;
  target.significand = sum < 0n ? -sum : sum;
  target.exponent = exponent;
  target.sticky = false;
  return target;
}

function exactProduct(a: ExactValue, b: ExactValue, target: ExactValue): ExactValue {
  target.negative = a.negative !== b.negative;
  target.significand = a.significand * b.significand;
  target.exponent = a.exponent + b.exponent;
  target.sticky = false;
  return target;
}

/** Enough bits that a quotient or root keeps precision + 2 bits after the worst normalization. */
const GUARD_BITS = 60;

function exactQuotient(a: ExactValue, b: ExactValue, target: ExactValue): ExactValue {
  const k = Math.max(0, GUARD_BITS + bitLength(b.significand) - bitLength(a.significand));
  const dividend = a.significand << BigInt(k);
  const q = dividend / b.significand;
  target.negative = a.negative !== b.negative;
  target.significand = q;
  target.exponent = a.exponent - b.exponent - k;
  target.sticky = q * b.significand !== dividend;
  return target;
}

function integerSquareRoot(n: bigint): bigint {
  if (n < 2n) return n;
  let x = 1n << BigInt(Math.ceil(bitLength(n) / 2));
  for (;;) {
    const y = (x + n / x) >> 1n;
    if (y >= x) return x;
    x = y;
  }
}

function exactSquareRoot(a: ExactValue, target: ExactValue): ExactValue {
  let k = Math.max(0, 2 * GUARD_BITS - bitLength(a.significand));
  if ((a.exponent - k) % 2 !== 0) k += 1;
  const radicand = a.significand << BigInt(k);
  const root = integerSquareRoot(radicand);
  target.negative = false;
  target.significand = root;
  target.exponent = (a.exponent - k) / 2;
  target.sticky = root * root !== radicand;
  return target;
}

// ---------------------------------------------------------------------------------------------
// Rounding from (r, residual): the fast path.

/**
 * Rounds the value described by (r, residual) to the format in a mode into ROUNDED. r is the
 * round-to-nearest double of the exact value and residual the sign of exact − r.
 */
export function roundResidual(r: number, residual: number, format: FloatFormat, mode: RoundingMode): void {
  if (format === DOUBLE) {
    const magnitude = Math.abs(r);
    if (magnitude > DOUBLE.minNormal && magnitude < DOUBLE.maxFinite) {
      return roundDoubleFast(r, residual, mode);
    }
  } else if (format === SINGLE) {
    const magnitude = Math.abs(r);
    if (magnitude > SINGLE.minNormal && magnitude < SINGLE.maxFinite) {
      return roundSingleFast(r, residual, mode);
    }
  }
  if (r === 0 && residual === 0) {
    ROUNDED.value = r;
    ROUNDED.inexact =
      ROUNDED.incremented =
      ROUNDED.overflow =
      ROUNDED.tiny =
        false;
    return;
  }
  roundExact(exactFromResidual(r, residual, SCRATCH_RESULT), format, mode);
}

/** The residual sign of the final result relative to the exact value after moving r. */
function setFastOutcome(value: number, residual: number): void {
  ROUNDED.value = value;
  ROUNDED.inexact = residual !== 0;
  // exact − value has the sign `residual`; the magnitude grew when that sign opposes the value's.
  ROUNDED.incremented = residual !== 0 && (residual > 0) !== (value > 0);
  ROUNDED.overflow = false;
  ROUNDED.tiny = false;
}

function roundDoubleFast(r: number, residual: number, mode: RoundingMode): void {
  if (residual === 0 || mode === RoundingMode.NearestEven || mode === RoundingMode.NearestAway) {
    // NearestAway never reaches here with a residual: only integer rounding uses it.
    return setFastOutcome(r, residual);
  }
  let moveTo = 0;
  if (mode === RoundingMode.TowardZero) {
    if ((residual > 0) !== (r > 0)) moveTo = -signOf(r);
  } else if (mode === RoundingMode.TowardPositive) {
    if (residual > 0) moveTo = 1;
  } else if (residual < 0) {
    moveTo = -1;
  }
  if (moveTo === 0) return setFastOutcome(r, residual);
  setFastOutcome(nextInDirection(r, moveTo), -residual);
}

function roundSingleFast(r: number, residual: number, mode: RoundingMode): void {
  let f = Math.fround(r);
  // The sign of exact − f: r's side of f, or the residual when r is f itself.
  let side = r !== f ? signOf(r - f) : residual;
  if (r !== f && residual !== 0 && signOf(residual) === side && 2 * r === f + nextSingle(f, side)) {
    // r is a tie between two singles and the exact value lies beyond it: round away from f.
    f = nextSingle(f, side);
    side = -side;
  }
  if (side !== 0 && mode !== RoundingMode.NearestEven) {
    let moveTo = 0;
    if (mode === RoundingMode.TowardZero) {
      if ((side > 0) !== (f > 0)) moveTo = -signOf(f);
    } else if (mode === RoundingMode.TowardPositive) {
      if (side > 0) moveTo = 1;
    } else if (side < 0) {
      moveTo = -1;
    }
    if (moveTo !== 0) {
      f = nextSingle(f, moveTo);
      side = -side;
    }
  }
  setFastOutcome(f, side);
}

// ---------------------------------------------------------------------------------------------
// Operations. Each takes finite operands (the caller handles NaNs, infinities and the invalid
// cases) and leaves the rounded result in ROUNDED. Exact zero results get the sign IEEE 754 gives
// them in the mode.

/** The sign of an exact zero sum of operands with these signs. */
function zeroSumSign(aNegative: boolean, bNegative: boolean, mode: RoundingMode): number {
  if (aNegative && bNegative) return -0;
  if (!aNegative && !bNegative) return 0;
  return mode === RoundingMode.TowardNegative ? -0 : 0;
}

function exactZero(value: number): void {
  ROUNDED.value = value;
  ROUNDED.inexact =
    ROUNDED.incremented =
    ROUNDED.overflow =
    ROUNDED.tiny =
      false;
}

/** Above this magnitude TwoSum's intermediate differences can overflow. */
const TWO_SUM_LIMIT = 2 ** 1022;

export function add(a: number, b: number, format: FloatFormat, mode: RoundingMode): void {
  const r = a + b;
  if (r === 0) return exactZero(zeroSumSign(isNegative(a), isNegative(b), mode));
  if (Math.abs(a) >= TWO_SUM_LIMIT || Math.abs(b) >= TWO_SUM_LIMIT || r === Infinity || r === -Infinity) {
    return roundExact(exactSum(exactOf(a, SCRATCH_A), exactOf(b, SCRATCH_B), SCRATCH_RESULT), format, mode);
  }
  const s = twoSum(a, b);
  roundResidual(s, signOf(ERROR), format, mode);
}

export function multiply(a: number, b: number, format: FloatFormat, mode: RoundingMode): void {
  if (a === 0 || b === 0) return exactZero(isNegative(a) !== isNegative(b) ? -0 : 0);
  const r = a * b;
  if (safe(r) && Math.abs(a) <= SAFE_HIGH && Math.abs(b) <= SAFE_HIGH) {
    twoProduct(a, b);
    return roundResidual(r, signOf(ERROR), format, mode);
  }
  roundExact(exactProduct(exactOf(a, SCRATCH_A), exactOf(b, SCRATCH_B), SCRATCH_RESULT), format, mode);
}

/** a / b for b ≠ 0. */
export function divide(a: number, b: number, format: FloatFormat, mode: RoundingMode): void {
  if (a === 0) return exactZero(isNegative(a) !== isNegative(b) ? -0 : 0);
  const q = a / b;
  if (safe(q) && safe(a) && safe(b)) {
    const product = twoProduct(q, b);
    const remainder = (a - product) - ERROR;
    return roundResidual(q, signOf(remainder) * signOf(b), format, mode);
  }
  roundExact(exactQuotient(exactOf(a, SCRATCH_A), exactOf(b, SCRATCH_B), SCRATCH_RESULT), format, mode);
}

/** √a for a > 0 (or ±0, which is its own root). */
export function squareRoot(a: number, format: FloatFormat, mode: RoundingMode): void {
  if (a === 0) return exactZero(a);
  const s = Math.sqrt(a);
  if (safe(a)) {
    const square = twoProduct(s, s);
    const remainder = (a - square) - ERROR;
    return roundResidual(s, signOf(remainder), format, mode);
  }
  roundExact(exactSquareRoot(exactOf(a, SCRATCH_A), SCRATCH_RESULT), format, mode);
}

/** a × c + b with a single rounding. */
export function fusedMultiplyAdd(
  a: number,
  c: number,
  b: number,
  format: FloatFormat,
  mode: RoundingMode,
): void {
  if (a === 0 || c === 0) {
    // The product is an exact zero: the sum is b, or a zero whose sign follows the sum rules.
    const productNegative = isNegative(a) !== isNegative(c);
    if (b === 0) return exactZero(zeroSumSign(productNegative, isNegative(b), mode));
    return roundResidual(b, 0, format, mode);
  }
  const productHigh = a * c;
  if (safe(productHigh) && Math.abs(a) <= SAFE_HIGH && Math.abs(c) <= SAFE_HIGH && Math.abs(b) <= SAFE_HIGH) {
    twoProduct(a, c);
    const productLow = ERROR;
    const high = twoSum(b, productHigh);
    const low = ERROR;
    let v = twoSum(low, productLow);
    const vError = ERROR;
    // v rounded to odd: when inexact, the neighbour of RN(low + productLow) with an odd significand.
    let vSide = signOf(vError);
    if (vSide !== 0 && !oddSignificand(v)) {
      v = nextInDirection(v, vSide);
      vSide = -vSide;
    }
    const z = twoSum(high, v);
    const zSide = signOf(ERROR);
    if (z === 0 && zSide === 0 && vSide === 0) {
      return exactZero(mode === RoundingMode.TowardNegative ? -0 : 0);
    }
    if (safe(z) && (zSide === 0 || vSide === 0 || zSide === vSide)) {
      return roundResidual(z, zSide !== 0 ? zSide : vSide, format, mode);
    }
  }
  if (!exactly.fusedMultiplyAdd(a, c, b, format, mode)) {
    exactZero(
      b === 0
        ? zeroSumSign(isNegative(a) !== isNegative(c), isNegative(b), mode)
        : zeroSumSign(true, false, mode),
    );
  }
}

/** A signed or unsigned 64-bit integer (as two words) converted to the format. */
export function fromInteger64(
  lo: number,
  hi: number,
  signed: boolean,
  format: FloatFormat,
  mode: RoundingMode,
): void {
  const high = (signed ? hi : hi >>> 0) * 4294967296;
  const low = lo >>> 0;
  const r = twoSum(high, low);
  if (r === 0) return exactZero(0);
  roundResidual(r, signOf(ERROR), format, mode);
}

/** Rounds a finite double to the format (frsp, xscvdpsp, conversions to single). */
export function roundToFormat(x: number, format: FloatFormat, mode: RoundingMode): void {
  if (x === 0) return exactZero(x);
  roundResidual(x, 0, format, mode);
}

/**
 * Rounds a finite double to an integral value in a mode (the integer roundings of fri*, fcti*,
 * xsrdpi*, vrfi*); the result is a double, exact for every magnitude.
 */
export function roundToIntegral(x: number, mode: RoundingMode): number {
  const magnitude = Math.abs(x);
  if (magnitude >= 4503599627370496) return x; // 2^52: already integral
  const floor = Math.floor(magnitude);
  const fraction = magnitude - floor;
  let rounded: number;
  switch (mode) {
    case RoundingMode.NearestEven:
      rounded = fraction > 0.5 || (fraction === 0.5 && floor % 2 === 1) ? floor + 1 : floor;
      break;
    case RoundingMode.NearestAway:
      rounded = fraction >= 0.5 ? floor + 1 : floor;
      break;
    case RoundingMode.TowardZero:
      rounded = floor;
      break;
    case RoundingMode.TowardPositive:
      rounded = x > 0 && fraction > 0 ? floor + 1 : floor;
      break;
    default:
      rounded = x < 0 && fraction > 0 ? floor + 1 : floor;
      break;
  }
  return x < 0 || (x === 0 && 1 / x < 0) ? -rounded : rounded;
}

// ---------------------------------------------------------------------------------------------
// The same operations computed exactly with BigInt, with an optional exponent adjustment: the
// ISA's results for enabled overflow and underflow, and the tests' reference for the fast paths.
// Each returns false, leaving ROUNDED alone, when the exact result is zero (its sign is the
// caller's rule to apply).

function roundNonzero(value: ExactValue, format: FloatFormat, mode: RoundingMode, adjust: number): boolean {
  if (value.significand === 0n) return false;
  roundExact(value, format, mode, adjust);
  return true;
}

export const exactly = {
  value(x: number, format: FloatFormat, mode: RoundingMode, adjust = 0): boolean {
    if (x === 0) return false;
    return roundNonzero(exactOf(x, SCRATCH_A), format, mode, adjust);
  },
  add(a: number, b: number, format: FloatFormat, mode: RoundingMode, adjust = 0): boolean {
    const sum = exactSum(exactOf(a, SCRATCH_A), exactOf(b, SCRATCH_B), SCRATCH_RESULT);
    return roundNonzero(sum, format, mode, adjust);
  },
  multiply(a: number, b: number, format: FloatFormat, mode: RoundingMode, adjust = 0): boolean {
    const product = exactProduct(exactOf(a, SCRATCH_A), exactOf(b, SCRATCH_B), SCRATCH_RESULT);
    return roundNonzero(product, format, mode, adjust);
  },
  divide(a: number, b: number, format: FloatFormat, mode: RoundingMode, adjust = 0): boolean {
    const quotient = exactQuotient(exactOf(a, SCRATCH_A), exactOf(b, SCRATCH_B), SCRATCH_RESULT);
    return roundNonzero(quotient, format, mode, adjust);
  },
  squareRoot(a: number, format: FloatFormat, mode: RoundingMode, adjust = 0): boolean {
    return roundNonzero(exactSquareRoot(exactOf(a, SCRATCH_A), SCRATCH_RESULT), format, mode, adjust);
  },
  fusedMultiplyAdd(
    a: number,
    c: number,
    b: number,
    format: FloatFormat,
    mode: RoundingMode,
    adjust = 0,
  ): boolean {
    const product = exactProduct(exactOf(a, SCRATCH_A), exactOf(c, SCRATCH_C), SCRATCH_PRODUCT);
    const sum = exactSum(product, exactOf(b, SCRATCH_B), SCRATCH_RESULT);
    return roundNonzero(sum, format, mode, adjust);
  },
};

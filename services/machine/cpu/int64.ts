// 64-bit integer arithmetic on 32-bit halves, for the interpreter's hot path (no BigInt).
// A value is a pair (lo, hi) of int32s; lo holds bits 32..63 of the ISA's numbering (the low
// word), hi bits 0..31. Results are written to RESULT (RESULT[0] = lo, RESULT[1] = hi) so that
// nothing is allocated; callers read them before the next call.

export const RESULT = new Int32Array(2);

const TWO_32 = 4294967296;

/** The high 32 bits of the unsigned product of two 32-bit values. */
export function mulhwu(a: number, b: number): number {
  const aL = a & 0xffff, aH = a >>> 16, bL = b & 0xffff, bH = b >>> 16;
  const ll = aL * bL, lh = aL * bH, hl = aH * bL, hh = aH * bH;
  const middle = (ll >>> 16) + (lh & 0xffff) + (hl & 0xffff);
  return (hh + (lh >>> 16) + (hl >>> 16) + (middle >>> 16)) | 0;
}

/** The high 32 bits of the signed product of two 32-bit values. */
export function mulhw(a: number, b: number): number {
  let hi = mulhwu(a, b);
  if (a < 0) hi = (hi - b) | 0;
  if (b < 0) hi = (hi - a) | 0;
  return hi;
}

/** The low 64 bits of a product (mulld). */
export function mul64(alo: number, ahi: number, blo: number, bhi: number): void {
  RESULT[0] = Math.imul(alo, blo);
  RESULT[1] = (mulhwu(alo, blo) + Math.imul(alo, bhi) + Math.imul(ahi, blo)) | 0;
}

/** The full unsigned 128-bit product as four words, least significant first. */
const PRODUCT = new Int32Array(4);

function mul128u(alo: number, ahi: number, blo: number, bhi: number): void {
  const p0lo = Math.imul(alo, blo) >>> 0, p0hi = mulhwu(alo, blo) >>> 0;
  const p1lo = Math.imul(alo, bhi) >>> 0, p1hi = mulhwu(alo, bhi) >>> 0;
  const p2lo = Math.imul(ahi, blo) >>> 0, p2hi = mulhwu(ahi, blo) >>> 0;
  const p3lo = Math.imul(ahi, bhi) >>> 0, p3hi = mulhwu(ahi, bhi) >>> 0;
  const word1 = p0hi + p1lo + p2lo;
  const carry1 = Math.floor(word1 / TWO_32);
  const word2 = p1hi + p2hi + p3lo + carry1;
  const carry2 = Math.floor(word2 / TWO_32);
  PRODUCT[0] = p0lo;
  PRODUCT[1] = word1;
  PRODUCT[2] = word2;
  PRODUCT[3] = p3hi + carry2;
}

/** The high 64 bits of the unsigned product (mulhdu). */
export function mulhdu(alo: number, ahi: number, blo: number, bhi: number): void {
  mul128u(alo, ahi, blo, bhi);
  RESULT[0] = PRODUCT[2];
  RESULT[1] = PRODUCT[3];
}

/** The high 64 bits of the signed product (mulhd). */
export function mulhd(alo: number, ahi: number, blo: number, bhi: number): void {
  mul128u(alo, ahi, blo, bhi);
  let lo = PRODUCT[2], hi = PRODUCT[3];
  // Signed high part = unsigned high part - (a < 0 ? b : 0) - (b < 0 ? a : 0), modulo 2^64.
  if (ahi < 0) {
    const borrow = (lo >>> 0) < (blo >>> 0) ? 1 : 0;
    lo = (lo - blo) | 0;
    hi = (hi - bhi - borrow) | 0;
  }
  if (bhi < 0) {
    const borrow = (lo >>> 0) < (alo >>> 0) ? 1 : 0;
    lo = (lo - alo) | 0;
    hi = (hi - ahi - borrow) | 0;
  }
  RESULT[0] = lo;
  RESULT[1] = hi;
}

/**
 * a * b + c as a 128-bit value (maddhd, maddhdu, maddld): RESULT gets the high 64 bits when
 * `high` is set, else the low 64 bits. `signed` selects signed a, b and sign-extended c.
 */
export function multiplyAdd(
  alo: number,
  ahi: number,
  blo: number,
  bhi: number,
  clo: number,
  chi: number,
  signed: boolean,
  high: boolean,
): void {
  mul128u(alo, ahi, blo, bhi);
  let w0 = PRODUCT[0] >>> 0, w1 = PRODUCT[1] >>> 0, w2 = PRODUCT[2] >>> 0, w3 = PRODUCT[3] >>> 0;
  if (signed) {
    // Turn the unsigned product into the signed one by subtracting the cross terms from the top half.
    if (ahi < 0) [w2, w3] = sub64u(w2, w3, blo >>> 0, bhi >>> 0);
    if (bhi < 0) [w2, w3] = sub64u(w2, w3, alo >>> 0, ahi >>> 0);
  }
  // Add c, sign-extended to 128 bits when signed.
  const extension = signed && chi < 0 ? 0xffffffff : 0;
  let sum = w0 + (clo >>> 0);
  w0 = sum >>> 0;
  sum = w1 + (chi >>> 0) + Math.floor(sum / TWO_32);
  w1 = sum >>> 0;
  sum = w2 + extension + Math.floor(sum / TWO_32);
  w2 = sum >>> 0;
  w3 = (w3 + extension + Math.floor(sum / TWO_32)) >>> 0;
  RESULT[0] = high ? w2 : w0;
  RESULT[1] = high ? w3 : w1;
}

function sub64u(alo: number, ahi: number, blo: number, bhi: number): [number, number] {
  const borrow = alo < blo ? 1 : 0;
  return [(alo - blo) >>> 0, (ahi - bhi - borrow) >>> 0];
}

/** 64-bit value of halves as a BigInt (for the rare paths that need exact wide arithmetic). */
export function toBigInt(lo: number, hi: number, signed: boolean): bigint {
  const value = (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
  return signed ? BigInt.asIntN(64, value) : value;
}

/** Writes a BigInt's low 64 bits to RESULT. */
function fromBigInt(value: bigint): void {
  const v = BigInt.asUintN(64, value);
  RESULT[0] = Number(v & 0xffffffffn) | 0;
  RESULT[1] = Number(v >> 32n) | 0;
}

/** Whether a 64-bit value is the sign extension of its low word (fits an int32). */
function fitsInt32(lo: number, hi: number): boolean {
  return hi === lo >> 31;
}

/**
 * Signed or unsigned 64-bit division (divd, divdu, modsd, modud). Returns false, leaving RESULT
 * untouched, when the ISA leaves the result undefined (division by zero, or the most negative
 * value divided by -1 for signed division).
 */
export function divide64(
  alo: number,
  ahi: number,
  blo: number,
  bhi: number,
  signed: boolean,
  remainder: boolean,
): boolean {
  if ((blo | bhi) === 0) return false;
  if (signed && ahi === -0x80000000 && alo === 0 && blo === -1 && bhi === -1) return false;
  if (ahi === 0 && bhi === 0 && alo >= 0 && blo >= 0) {
    // Both below 2^31: exact in double arithmetic.
    const q = Math.floor(alo / blo);
    RESULT[0] = remainder ? alo - q * blo : q;
    RESULT[1] = 0;
    return true;
  }
  if (signed && fitsInt32(alo, ahi) && fitsInt32(blo, bhi)) {
    const q = Math.trunc(alo / blo);
    const value = remainder ? alo - q * blo : q;
    RESULT[0] = value | 0;
    RESULT[1] = value < 0 ? -1 : 0;
    return true;
  }
  const a = toBigInt(alo, ahi, signed), b = toBigInt(blo, bhi, signed);
  fromBigInt(remainder ? a % b : a / b);
  return true;
}

/**
 * Extended division (divde, divdeu): the 128-bit dividend a || 64 zero bits divided by b.
 * Returns false when the quotient does not fit 64 bits or b is zero (result undefined).
 */
export function divideExtended64(
  alo: number,
  ahi: number,
  blo: number,
  bhi: number,
  signed: boolean,
): boolean {
  if ((blo | bhi) === 0) return false;
  const a = toBigInt(alo, ahi, signed) << 64n, b = toBigInt(blo, bhi, signed);
  const q = a / b;
  if (signed ? q !== BigInt.asIntN(64, q) : q !== BigInt.asUintN(64, q)) return false;
  fromBigInt(q);
  return true;
}

/** Rotates a 64-bit value left by n (0..63). */
export function rotl64(lo: number, hi: number, n: number): void {
  if (n >= 32) {
    const t = lo;
    lo = hi;
    hi = t;
    n -= 32;
  }
  if (n === 0) {
    RESULT[0] = lo;
    RESULT[1] = hi;
    return;
  }
  RESULT[0] = (lo << n) | (hi >>> (32 - n));
  RESULT[1] = (hi << n) | (lo >>> (32 - n));
}

/** The ISA's MASK(mb, me) over 64 bits (bit 0 the most significant), wrapping when mb > me. */
export function mask64(mb: number, me: number): void {
  // Ones from bit mb to 63 and from 0 to me, in ISA numbering.
  const fromHi = mb >= 32 ? 0 : (-1 >>> mb) | 0;
  const fromLo = mb <= 32 ? -1 : (-1 >>> (mb - 32)) | 0;
  const toHi = me >= 31 ? -1 : ~(-1 >>> (me + 1));
  const toLo = me >= 63 ? -1 : me < 32 ? 0 : ~(-1 >>> (me - 31));
  if (mb <= me) {
    RESULT[0] = fromLo & toLo;
    RESULT[1] = fromHi & toHi;
  } else {
    RESULT[0] = fromLo | toLo;
    RESULT[1] = fromHi | toHi;
  }
}

/** The ISA's MASK(mb + 32, me + 32) applied to a 32-bit rotation: the low-word mask. */
export function mask32(mb: number, me: number): number {
  const from = (-1 >>> mb) | 0;
  const to = me === 31 ? -1 : ~(-1 >>> (me + 1));
  return mb <= me ? from & to : from | to;
}

/** Counts leading zeros of a 64-bit value. */
export function clz64(lo: number, hi: number): number {
  return hi !== 0 ? Math.clz32(hi) : 32 + Math.clz32(lo);
}

/** Counts trailing zeros of a 32-bit value (32 for 0). */
export function ctz32(x: number): number {
  return x === 0 ? 32 : 31 - Math.clz32(x & -x);
}

export function popcount32(x: number): number {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (((x + (x >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

/** Signed comparison of two 64-bit values: -1, 0 or 1. */
export function compareSigned64(alo: number, ahi: number, blo: number, bhi: number): number {
  if (ahi !== bhi) return ahi < bhi ? -1 : 1;
  if (alo === blo) return 0;
  return (alo >>> 0) < (blo >>> 0) ? -1 : 1;
}

/** Unsigned comparison of two 64-bit values: -1, 0 or 1. */
export function compareUnsigned64(alo: number, ahi: number, blo: number, bhi: number): number {
  if (ahi !== bhi) return (ahi >>> 0) < (bhi >>> 0) ? -1 : 1;
  if (alo === blo) return 0;
  return (alo >>> 0) < (blo >>> 0) ? -1 : 1;
}

// Vector binary-coded decimal (Power ISA v3.0B Book I 6.16): signed packed decimal values of 31
// digits and a sign nibble in a VR, unsigned values of 32 digits, and conversions to and from
// zoned, national and signed quadword formats. Every instruction sets CR6: LT, GT or EQ from the
// result's sign and magnitude, SO for an overflow or an invalid operand. Where the ISA leaves the
// target undefined (invalid operands, a conversion that does not fit) this follows qemu: invalid
// add and subtract operands give all ones, other invalid cases leave the target unchanged or give
// the partial result qemu computes.
//
// Digit 0 is the sign nibble (bits 124:127), digit i the i-th nibble above it; values are handled
// as BigInts, which is fast enough for instructions no common program executes.

import type { Cpu, Semantics } from "./interpreter.ts";

const vrt = (w: number) => 32 + ((w >>> 21) & 31);
const vra = (w: number) => 32 + ((w >>> 16) & 31);
const vrb = (w: number) => 32 + ((w >>> 11) & 31);
/** PS: the preferred positive sign is 0xC (PS = 0) or 0xF (PS = 1). */
const preferredSign = (w: number) => (w >>> 9) & 1;

const LT = 8, GT = 4, EQ = 2, SO = 1;
const DIGITS = 31;
const LIMIT = 10n ** 31n;

function quadword(cpu: Cpu, v: number): bigint {
  const words = cpu.vsrWords, base = 4 * v;
  let value = 0n;
  for (let k = 3; k >= 0; k--) value = (value << 32n) | BigInt(words[base + k] >>> 0);
  return value;
}

function setQuadword(cpu: Cpu, v: number, value: bigint): void {
  const words = cpu.vsrWords, base = 4 * v;
  let rest = BigInt.asUintN(128, value);
  for (let k = 0; k < 4; k++) {
    words[base + k] = Number(rest & 0xffffffffn) | 0;
    rest >>= 32n;
  }
}

const nibble = (value: bigint, i: number) => Number((value >> BigInt(4 * i)) & 0xfn);

/** +1, −1, or 0 for an invalid sign nibble. */
function signOf(code: number): number {
  if (code === 0xa || code === 0xc || code === 0xe || code === 0xf) return 1;
  if (code === 0xb || code === 0xd) return -1;
  return 0;
}

interface Decimal {
  valid: boolean;
  negative: boolean;
  magnitude: bigint;
}

/** A signed packed decimal value: 31 digits and a sign. */
function signedDecimal(raw: bigint): Decimal {
  const sign = signOf(nibble(raw, 0));
  let valid = sign !== 0, magnitude = 0n;
  for (let i = DIGITS; i >= 1; i--) {
    const digit = nibble(raw, i);
    if (digit > 9) valid = false;
    magnitude = magnitude * 10n + BigInt(digit);
  }
  return { valid, negative: sign < 0, magnitude };
}

/** An unsigned packed decimal value: 32 digits. */
function unsignedDecimal(raw: bigint): Decimal {
  let valid = true, magnitude = 0n;
  for (let i = 31; i >= 0; i--) {
    const digit = nibble(raw, i);
    if (digit > 9) valid = false;
    magnitude = magnitude * 10n + BigInt(digit);
  }
  return { valid, negative: false, magnitude };
}

/** The packed digits of a magnitude (as many as fit in `digits` nibbles) shifted above `from`. */
function packDigits(magnitude: bigint, digits: number, from: number): bigint {
  let packed = 0n;
  for (let i = 0; i < digits; i++) {
    packed |= (magnitude % 10n) << BigInt(4 * (from + i));
    magnitude /= 10n;
  }
  return packed;
}

function signCode(negative: boolean, ps: number): number {
  return negative ? 0xd : ps ? 0xf : 0xc;
}

function encodeSigned(magnitude: bigint, negative: boolean, ps: number): bigint {
  return packDigits(magnitude % LIMIT, DIGITS, 1) | BigInt(signCode(negative, ps));
}

/** CR6 from a signed value's sign and magnitude. */
function compareField(negative: boolean, magnitude: bigint): number {
  if (magnitude === 0n) return EQ;
  return negative ? LT : GT;
}

function addOrSubtract(subtract: boolean): Semantics {
  return (cpu, w) => {
    const a = signedDecimal(quadword(cpu, vra(w))), b = signedDecimal(quadword(cpu, vrb(w)));
    if (!a.valid || !b.valid) {
      setQuadword(cpu, vrt(w), -1n);
      return cpu.setCrField(6, SO);
    }
    const bNegative = subtract ? !b.negative : b.negative;
    const sum = (a.negative ? -a.magnitude : a.magnitude) + (bNegative ? -b.magnitude : b.magnitude);
    const negative = sum < 0n, magnitude = negative ? -sum : sum;
    setQuadword(cpu, vrt(w), encodeSigned(magnitude, negative, preferredSign(w)));
    cpu.setCrField(6, compareField(negative, magnitude) | (magnitude >= LIMIT ? SO : 0));
  };
}

/** The shift count of bcds., bcdus., bcdsr.: VRA byte 7, signed. */
const shiftCount = (cpu: Cpu, w: number) => (cpu.vsrBytes[16 * vra(w) + 8] << 24) >> 24;

/**
 * bcds. and bcdsr.: the 31 digits shifted left (positive count) or right, the sign replaced by
 * the preferred one; bcdsr. rounds a right shift half up. Overflow when nonzero digits leave on the
 * left.
 */
function signedShift(round: boolean): Semantics {
  return (cpu, w) => {
    const raw = quadword(cpu, vrb(w));
    const b = signedDecimal(raw);
    if (!b.valid) return cpu.setCrField(6, SO);
    const count = Math.max(-31, Math.min(31, shiftCount(cpu, w)));
    let magnitude = b.magnitude, overflow = false;
    if (count > 0) {
      const shifted = magnitude * 10n ** BigInt(count);
      overflow = shifted >= LIMIT;
      magnitude = shifted % LIMIT;
    } else if (count < 0) {
      const divisor = 10n ** BigInt(-count);
      const lastOut = (magnitude / (divisor / 10n)) % 10n;
      magnitude /= divisor;
      if (round && lastOut >= 5n) magnitude = (magnitude + 1n) % LIMIT;
    }
    setQuadword(cpu, vrt(w), encodeSigned(magnitude, b.negative, preferredSign(w)));
    cpu.setCrField(6, compareField(b.negative, magnitude) | (overflow ? SO : 0));
  };
}

/** bcdus.: the 32 unsigned digits shifted. */
const bcdus: Semantics = (cpu, w) => {
  const b = unsignedDecimal(quadword(cpu, vrb(w)));
  if (!b.valid) return cpu.setCrField(6, SO);
  const count = shiftCount(cpu, w);
  const limit = 10n ** 32n;
  let magnitude = b.magnitude, overflow = false;
  if (count >= 32) {
    overflow = true;
    magnitude = 0n;
  } else if (count <= -32) {
    magnitude = 0n;
  } else if (count > 0) {
    const shifted = magnitude * 10n ** BigInt(count);
    overflow = shifted >= limit;
    magnitude = shifted % limit;
  } else if (count < 0) {
    magnitude /= 10n ** BigInt(-count);
  }
  setQuadword(cpu, vrt(w), packDigits(magnitude, 32, 0));
  cpu.setCrField(6, (magnitude === 0n ? EQ : GT) | (overflow ? SO : 0));
};

/** bcdtrunc.: keeps the rightmost VRA.halfword[3] digits. */
const bcdtrunc: Semantics = (cpu, w) => {
  const b = signedDecimal(quadword(cpu, vrb(w)));
  if (!b.valid) return cpu.setCrField(6, SO);
  const length = cpu.vsrHalves[8 * vra(w) + 4];
  let magnitude = b.magnitude, overflow = false;
  if (length < DIGITS) {
    const limit = 10n ** BigInt(length);
    overflow = magnitude >= limit;
    magnitude %= limit;
  }
  setQuadword(cpu, vrt(w), encodeSigned(magnitude, b.negative, preferredSign(w)));
  cpu.setCrField(6, compareField(b.negative, magnitude) | (overflow ? SO : 0));
};

/** bcdutrunc.: keeps the rightmost VRA.halfword[3] of the 32 unsigned digits. */
const bcdutrunc: Semantics = (cpu, w) => {
  const b = unsignedDecimal(quadword(cpu, vrb(w)));
  if (!b.valid) return cpu.setCrField(6, SO);
  const length = cpu.vsrHalves[8 * vra(w) + 4];
  let magnitude = b.magnitude, overflow = false;
  if (length < 32) {
    const limit = 10n ** BigInt(length);
    overflow = magnitude >= limit;
    magnitude %= limit;
  }
  setQuadword(cpu, vrt(w), packDigits(magnitude, 32, 0));
  cpu.setCrField(6, (magnitude === 0n ? EQ : GT) | (overflow ? SO : 0));
};

const bcdcpsgn: Semantics = (cpu, w) => {
  const rawA = quadword(cpu, vra(w)), rawB = quadword(cpu, vrb(w));
  const a = signedDecimal(rawA), b = signedDecimal(rawB);
  if (!a.valid || !b.valid) return cpu.setCrField(6, SO);
  setQuadword(cpu, vrt(w), (rawA & ~0xfn) | BigInt(nibble(rawB, 0)));
  cpu.setCrField(6, compareField(b.negative, a.magnitude));
};

const bcdsetsgn: Semantics = (cpu, w) => {
  const raw = quadword(cpu, vrb(w));
  const b = signedDecimal(raw);
  setQuadword(cpu, vrt(w), (raw & ~0xfn) | BigInt(signCode(b.negative, preferredSign(w))));
  cpu.setCrField(6, b.valid ? compareField(b.negative, b.magnitude) : SO);
};

/** bcdctsq.: to a signed quadword integer. */
const bcdctsq: Semantics = (cpu, w) => {
  const b = signedDecimal(quadword(cpu, vrb(w)));
  if (!b.valid) return cpu.setCrField(6, SO);
  setQuadword(cpu, vrt(w), b.negative ? -b.magnitude : b.magnitude);
  cpu.setCrField(6, compareField(b.negative, b.magnitude));
};

/** bcdcfsq.: from a signed quadword integer; a value of more than 31 digits overflows (target unchanged). */
const bcdcfsq: Semantics = (cpu, w) => {
  const value = BigInt.asIntN(128, quadword(cpu, vrb(w)));
  const negative = value < 0n, magnitude = negative ? -value : value;
  const field = negative ? LT : magnitude === 0n ? EQ : GT;
  if (magnitude >= LIMIT) return cpu.setCrField(6, field | SO);
  setQuadword(cpu, vrt(w), encodeSigned(magnitude, negative, preferredSign(w)));
  cpu.setCrField(6, field);
};

/** bcdctz.: to 16 zoned digits; the zone of the last byte holds the sign. */
const bcdctz: Semantics = (cpu, w) => {
  const b = signedDecimal(quadword(cpu, vrb(w)));
  if (!b.valid) return cpu.setCrField(6, SO);
  const ps = preferredSign(w), zone = ps ? 0xfn : 0x3n;
  let result = 0n, magnitude = b.magnitude;
  for (let i = 0; i < 16; i++) {
    result |= ((zone << 4n) | (magnitude % 10n)) << BigInt(8 * i);
    magnitude /= 10n;
  }
  const signZone = ps ? (b.negative ? 0xdn : 0xcn) : (b.negative ? 0x7n : 0x3n);
  result = (result & ~0xf0n) | (signZone << 4n);
  setQuadword(cpu, vrt(w), result);
  cpu.setCrField(6, compareField(b.negative, b.magnitude) | (b.magnitude >= 10n ** 16n ? SO : 0));
};

/** bcdcfz.: from 16 zoned digits. */
const bcdcfz: Semantics = (cpu, w) => {
  const raw = quadword(cpu, vrb(w)), ps = preferredSign(w);
  const zone = ps ? 0xf : 0x3, signZone = nibble(raw, 1);
  let valid = !(ps && signZone < 0xa), magnitude = 0n;
  for (let i = 15; i >= 0; i--) {
    const byte = Number((raw >> BigInt(8 * i)) & 0xffn);
    if ((i > 0 && byte >> 4 !== zone) || (byte & 0xf) > 9) valid = false;
    magnitude = magnitude * 10n + BigInt(byte & 0xf);
  }
  const negative = ps ? signZone === 0xb || signZone === 0xd : (signZone & 0x4) !== 0;
  if (!valid) return cpu.setCrField(6, SO);
  setQuadword(cpu, vrt(w), encodeSigned(magnitude, negative, 0));
  cpu.setCrField(6, compareField(negative, magnitude));
};

const NATIONAL_PLUS = 0x2b, NATIONAL_MINUS = 0x2d;

/** bcdctn.: to 7 national (UTF-16) digits and a sign character. */
const bcdctn: Semantics = (cpu, w) => {
  const b = signedDecimal(quadword(cpu, vrb(w)));
  if (!b.valid) return cpu.setCrField(6, SO);
  let result = BigInt(b.negative ? NATIONAL_MINUS : NATIONAL_PLUS), magnitude = b.magnitude;
  for (let i = 1; i < 8; i++) {
    result |= (0x30n + magnitude % 10n) << BigInt(16 * i);
    magnitude /= 10n;
  }
  setQuadword(cpu, vrt(w), result);
  cpu.setCrField(6, compareField(b.negative, b.magnitude) | (b.magnitude >= 10n ** 7n ? SO : 0));
};

/** bcdcfn.: from 7 national digits and a sign character. */
const bcdcfn: Semantics = (cpu, w) => {
  const raw = quadword(cpu, vrb(w));
  const sign = Number(raw & 0xffffn);
  let valid = sign === NATIONAL_PLUS || sign === NATIONAL_MINUS, magnitude = 0n;
  for (let i = 7; i >= 1; i--) {
    const character = Number((raw >> BigInt(16 * i)) & 0xffffn);
    if (character < 0x30 || character > 0x39) valid = false;
    magnitude = magnitude * 10n + BigInt(character & 0xf);
  }
  if (!valid) return cpu.setCrField(6, SO);
  const negative = sign === NATIONAL_MINUS;
  setQuadword(cpu, vrt(w), encodeSigned(magnitude, negative, preferredSign(w)));
  cpu.setCrField(6, compareField(negative, magnitude));
};

/** The decimal instructions, by semantics name (the mnemonic without its record dot). */
export const DECIMAL_SEMANTICS: Record<string, Semantics> = {
  bcdadd: addOrSubtract(false),
  bcdsub: addOrSubtract(true),
  bcdus: bcdus,
  bcds: signedShift(false),
  bcdtrunc: bcdtrunc,
  bcdutrunc: bcdutrunc,
  bcdsr: signedShift(true),
  bcdcpsgn: bcdcpsgn,
  bcdctsq: bcdctsq,
  bcdcfsq: bcdcfsq,
  bcdctz: bcdctz,
  bcdctn: bcdctn,
  bcdcfz: bcdcfz,
  bcdcfn: bcdcfn,
  bcdsetsgn: bcdsetsgn,
};

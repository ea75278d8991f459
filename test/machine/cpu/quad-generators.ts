// Seeded quad-precision operands for the differential tests: binary128 values from every class
// (zeros, infinities, quiet and signaling NaNs, denormals, the extremes of the exponent range,
// values exactly representable as doubles and halfway between doubles, integers and halves at
// the edges of the conversions), register states holding them, operands related so that
// arithmetic meets its hard cases, and a fixed list of special values for exhaustive grids.

import {
  decode,
  DOUBLE,
  encode,
  Kind,
  QUAD,
  round,
  Rounding,
} from "../../../services/machine/cpu/binary128.ts";
import type { MachineState } from "./qemu-oracle.ts";
import { interestingDouble, Random, randomVectorState } from "./generators.ts";

export const SIGN = 1n << 127n;
const FRACTION = (1n << 112n) - 1n;
const BIAS = 16383;
const NEAREST = { overflow: false, underflow: false } as const;

export function quad(negative: boolean, biased: number, fraction: bigint): bigint {
  return (negative ? SIGN : 0n) | (BigInt(biased) << 112n) | (fraction & FRACTION);
}

export const biasedOf = (bits: bigint) => Number((bits >> 112n) & 0x7fffn);
/** Not an infinity or a NaN. */
export const isFiniteQuad = (bits: bigint) => biasedOf(bits) !== 0x7fff;

function randomFraction(random: Random): bigint {
  return ((random.u64() << 64n) | random.u64()) & FRACTION;
}

/** A double's value in quad format (a NaN keeps its payload, as xscvdpqp moves it). */
export function quadFromDouble(bits: bigint): bigint {
  const value = decode(bits, DOUBLE);
  if (value.kind === Kind.QuietNaN || value.kind === Kind.SignalingNaN) {
    return quad(value.negative, 0x7fff, value.significand << 60n);
  }
  return encode(value, QUAD);
}

/** n / 2^scale in quad format (|n| < 2^113). */
export function quadFromInteger(n: bigint, scale = 0): bigint {
  const negative = n < 0n;
  const magnitude = negative ? -n : n;
  const kind = magnitude === 0n ? Kind.Zero : Kind.Finite;
  return encode({ kind, negative, significand: magnitude, exponent: -scale }, QUAD);
}

/** The integers at the edges of the conversions to 32- and 64-bit integers. */
const INTEGER_EDGES = [0n, 1n, 2n ** 31n, 2n ** 32n, 2n ** 63n, 2n ** 64n];

/** The bits of a quad from one of the interesting classes. */
export function interestingQuad(random: Random): bigint {
  const negative = random.chance(0.5);
  const sign = negative ? -1n : 1n;
  switch (random.below(17)) {
    case 0:
      return quad(negative, 0, 0n);
    case 1:
      return quad(negative, 0x7fff, 0n);
    case 2:
      return quad(negative, 0x7fff, (1n << 111n) | (random.chance(0.5) ? randomFraction(random) : 0n));
    case 3:
      return quad(negative, 0x7fff, (randomFraction(random) & ((1n << 111n) - 1n)) | 1n);
    case 4:
      return quad(negative, 0, randomFraction(random) >> BigInt(random.below(112)));
    case 5:
      return quad(negative, 1 + random.below(0x7ffe), randomFraction(random));
    case 6:
    case 7:
      return quad(negative, BIAS - 20 + random.below(40), randomFraction(random));
    case 8:
      return quad(negative, 0x7ffe - random.below(3), randomFraction(random));
    case 9:
      return quad(negative, 1 + random.below(3), randomFraction(random));
    case 10:
      return quadFromDouble(interestingDouble(random));
    case 11: {
      // Halfway between two doubles, or a unit of the quad's last place off it, across the
      // double range and at its edges (overflow, denormals, underflow to zero).
      const biased = random.pick([
        BIAS - 20 + random.below(40),
        BIAS + 1023,
        BIAS - 1022,
        BIAS - 1074,
        BIAS - 1060,
      ]);
      const tail = random.pick([1n << 59n, (1n << 59n) + 1n, (1n << 59n) - 1n, 1n]);
      return quad(negative, biased, (randomFraction(random) & ~((1n << 60n) - 1n)) | tail);
    }
    case 12:
      return quadFromInteger(sign * BigInt(random.below(1 << 20)));
    case 13:
      // n + 1/4, n + 1/2 or n + 3/4: the ties and near-ties of rounding to an integer.
      return quadFromInteger(sign * BigInt(random.below(1 << 12) * 4 + random.pick([1, 2, 3])), 2);
    case 14: {
      // At the edges of the integer formats, sometimes with a fraction.
      const edge = random.pick(INTEGER_EDGES) + BigInt(random.below(5) - 2);
      return quadFromInteger(sign * (edge * 4n + BigInt(random.below(4))), 2);
    }
    case 15: {
      // Near the exponent range of doubles.
      const offset = random.pick([1024, 1023, -1022, -1023, -1074, -1075, -1080]) + random.below(3) - 1;
      return quad(negative, BIAS + offset, randomFraction(random));
    }
    default:
      return (random.u64() << 64n) | random.u64();
  }
}

export function getQuad(s: MachineState, v: number): bigint {
  const view = new DataView(s.vsr.buffer);
  return (view.getBigUint64(16 * v + 8, true) << 64n) | view.getBigUint64(16 * v, true);
}

export function setQuad(s: MachineState, v: number, bits: bigint): void {
  const view = new DataView(s.vsr.buffer);
  view.setBigUint64(16 * v, BigInt.asUintN(64, bits), true);
  view.setBigUint64(16 * v + 8, BigInt.asUintN(64, bits >> 64n), true);
}

/** A random vector state whose VRs (VSR 32..63) mostly hold interesting quads. */
export function randomQuadState(random: Random): MachineState {
  const s = randomVectorState(random);
  for (let v = 32; v < 64; v++) if (random.chance(0.85)) setQuad(s, v, interestingQuad(random));
  return s;
}

/** A few units of the last place away. */
function perturb(random: Random, bits: bigint): bigint {
  return BigInt.asUintN(128, bits + BigInt(random.below(7) - 3));
}

/**
 * An addend related to a (for a + b, or a − b): −a nearby (cancellation, denormal differences),
 * a few significant bits at a's rounding position (ties), a nearby value of the same sign (overflow
 * near the largest values), or a much smaller one.
 */
export function relatedAddend(random: Random, a: bigint, subtract: boolean): bigint {
  if (!isFiniteQuad(a)) return a;
  const opposite = subtract ? a : a ^ SIGN;
  switch (random.below(4)) {
    case 0:
      return perturb(random, opposite);
    case 1: {
      const biased = Math.max(1, biasedOf(a) - 113 + random.below(6) - 2);
      return quad(random.chance(0.5), biased, BigInt(random.below(8)) << 109n);
    }
    case 2:
      return perturb(random, opposite ^ SIGN);
    default:
      return quad(random.chance(0.5), Math.max(0, biasedOf(a) - random.below(230)), randomFraction(random));
  }
}

/** The exact product's negation rounded to nearest, a few units off: fused multiply-add cancellation. */
export function cancellingAddend(random: Random, a: bigint, b: bigint): bigint {
  const x = decode(a, QUAD), y = decode(b, QUAD);
  if (x.kind !== Kind.Finite || y.kind !== Kind.Finite) return a;
  const product = round(
    x.negative === y.negative,
    x.significand * y.significand,
    x.exponent + y.exponent,
    false,
    QUAD,
    Rounding.NearestEven,
    NEAREST,
  );
  return perturb(random, encode(product.value, QUAD));
}

/** A square (of a value with at most 56 significant bits), or its neighbour. */
export function nearSquare(random: Random): bigint {
  const rootBits = quad(false, BIAS - 200 + random.below(400), randomFraction(random) & ~((1n << 57n) - 1n));
  const root = decode(rootBits, QUAD);
  const square = round(
    false,
    root.significand ** 2n,
    2 * root.exponent,
    false,
    QUAD,
    Rounding.NearestEven,
    NEAREST,
  );
  const bits = encode(square.value, QUAD);
  return random.chance(0.5) ? bits : perturb(random, bits);
}

/** b × q for a small q: a dividend with an exact quotient. */
export function exactMultiple(random: Random, b: bigint): bigint {
  const y = decode(b, QUAD);
  if (y.kind !== Kind.Finite) return b;
  const q = BigInt(1 + random.below(1000));
  const product = round(
    y.negative,
    y.significand * q,
    y.exponent,
    false,
    QUAD,
    Rounding.NearestEven,
    NEAREST,
  );
  return encode(product.value, QUAD);
}

const QUIET_NAN = quad(false, 0x7fff, (1n << 111n) | (0x1234n << 90n));
const SIGNALING_NAN = quad(false, 0x7fff, (1n << 110n) | (0x5678n << 90n));

/** Special operands, each with its negation: the grids of the differential test combine them all. */
export const SPECIAL_QUADS: readonly bigint[] = [
  quad(false, 0, 0n),
  quad(false, 0x7fff, 0n),
  QUIET_NAN,
  SIGNALING_NAN,
  quad(false, 0, 1n),
  quad(false, 0, FRACTION),
  quad(false, 1, 0n),
  quad(false, 0x7ffe, FRACTION),
  quad(false, BIAS, 0n),
  quad(false, BIAS, 1n),
  quad(false, BIAS + 1, 1n << 111n),
  quad(false, BIAS + 16000, 0n),
].flatMap((bits) => [bits, bits ^ SIGN]);

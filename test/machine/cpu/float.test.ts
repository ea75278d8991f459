// The floating-point core against its own exact BigInt recomputation: every operation, both
// formats and every rounding mode, on random and adversarial operands (cancellation, ties,
// subnormals, the edges of overflow). The fast paths must agree bit for bit, flags included.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  add,
  divide,
  DOUBLE,
  exactly,
  type FloatFormat,
  fromInteger64,
  fromWords,
  fusedMultiplyAdd,
  isNegative,
  multiply,
  ROUNDED,
  RoundingMode,
  roundToFormat,
  roundToIntegral,
  SINGLE,
  squareRoot,
} from "../../../services/machine/cpu/float.ts";

const MODES = [
  RoundingMode.NearestEven,
  RoundingMode.TowardZero,
  RoundingMode.TowardPositive,
  RoundingMode.TowardNegative,
] as const;
const FORMATS = [DOUBLE, SINGLE] as const;

interface Outcome {
  value: number;
  inexact: boolean;
  incremented: boolean;
  overflow: boolean;
  tiny: boolean;
}

function snapshot(): Outcome {
  return { ...ROUNDED };
}

function sameBits(a: number, b: number): boolean {
  return Object.is(a, b);
}

/** Finite doubles from every part of the range, biased towards the interesting ones. */
const finiteDouble = fc.oneof(
  { weight: 3, arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }) },
  {
    weight: 3,
    arbitrary: fc.tuple(fc.integer({ min: 0, max: 0x7fefffff }), fc.integer(), fc.boolean()).map(
      ([hi, lo, negative]) => fromWords(lo, hi | (negative ? 0x80000000 : 0)),
    ),
  },
  {
    weight: 2,
    arbitrary: fc.tuple(fc.integer({ min: 0, max: 0xfffff }), fc.integer(), fc.integer({ min: -60, max: 60 }))
      .map(([hi, lo, e]) => fromWords(lo, hi | 0x3ff00000) * 2 ** e),
  },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.integer({ min: 0, max: 0x001fffff }), fc.integer()).map(([hi, lo]) =>
      fromWords(lo, hi)
    ),
  },
  { weight: 1, arbitrary: fc.integer().map((x) => x / 2) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      0,
      -0,
      1,
      -1,
      Number.MAX_VALUE,
      -Number.MAX_VALUE,
      2 ** -1022,
      5e-324,
      -5e-324,
      3.4028234663852886e38,
      1.1754943508222875e-38,
      1.401298464324817e-45,
      0.5,
      1 + 2 ** -52,
      1 - 2 ** -53,
    ),
  },
);

const RUNS = { numRuns: 4000 };

/** Compares the fast operation with the exact one in every format and mode. */
function agree(
  fast: (format: FloatFormat, mode: RoundingMode) => void,
  exact: (format: FloatFormat, mode: RoundingMode) => boolean,
  zeroSign: (mode: RoundingMode) => number,
  label: () => string,
): void {
  for (const format of FORMATS) {
    for (const mode of MODES) {
      fast(format, mode);
      const got = snapshot();
      if (!exact(format, mode)) {
        Object.assign(ROUNDED, {
          value: zeroSign(mode),
          inexact: false,
          incremented: false,
          overflow: false,
          tiny: false,
        });
      }
      const want = snapshot();
      const context = `${label()} ${format === DOUBLE ? "double" : "single"} mode ${mode}`;
      expect(sameBits(got.value, want.value), `${context}: ${got.value} vs ${want.value}`).toBe(true);
      expect(got, context).toEqual({ ...want, value: got.value });
    }
  }
}

const sumZeroSign = (a: number, b: number) => (mode: RoundingMode) =>
  isNegative(a) && isNegative(b)
    ? -0
    : !isNegative(a) && !isNegative(b)
    ? 0
    : mode === RoundingMode.TowardNegative
    ? -0
    : 0;

describe("the floating-point core agrees with exact arithmetic", () => {
  it("add", () => {
    fc.assert(
      fc.property(finiteDouble, finiteDouble, (a, b) => {
        agree(
          (f, m) => add(a, b, f, m),
          (f, m) => exactly.add(a, b, f, m),
          sumZeroSign(a, b),
          () => `${a} + ${b}`,
        );
        const near = -a * (1 + 2 ** -30);
        if (Number.isFinite(near)) {
          agree(
            (f, m) => add(a, near, f, m),
            (f, m) => exactly.add(a, near, f, m),
            sumZeroSign(a, near),
            () => `${a} + ${near}`,
          );
        }
      }),
      RUNS,
    );
  });

  it("add near the top of the range, where TwoSum's intermediates overflow", () => {
    const large = fc.oneof(
      fc.tuple(fc.integer({ min: 0x7fc00000, max: 0x7fefffff }), fc.integer(), fc.boolean()).map(
        ([hi, lo, negative]) => fromWords(lo, hi | (negative ? 0x80000000 : 0)),
      ),
      fc.tuple(fc.integer({ min: -4, max: -1 }), fc.boolean()).map(([lo, negative]) =>
        fromWords(lo, 0x7fefffff | (negative ? 0x80000000 : 0))
      ),
    );
    fc.assert(
      fc.property(large, large, (a, b) => {
        agree(
          (f, m) => add(a, b, f, m),
          (f, m) => exactly.add(a, b, f, m),
          sumZeroSign(a, b),
          () => `${a} + ${b}`,
        );
      }),
      RUNS,
    );
  });

  it("multiply", () => {
    fc.assert(
      fc.property(finiteDouble, finiteDouble, (a, b) => {
        agree(
          (f, m) => multiply(a, b, f, m),
          (f, m) => a !== 0 && b !== 0 && exactly.multiply(a, b, f, m),
          () => isNegative(a) !== isNegative(b) ? -0 : 0,
          () => `${a} * ${b}`,
        );
      }),
      RUNS,
    );
  });

  it("divide", () => {
    fc.assert(
      fc.property(finiteDouble, finiteDouble, (a, b) => {
        if (b === 0) return;
        agree(
          (f, m) => divide(a, b, f, m),
          (f, m) => a !== 0 && exactly.divide(a, b, f, m),
          () => isNegative(a) !== isNegative(b) ? -0 : 0,
          () => `${a} / ${b}`,
        );
      }),
      RUNS,
    );
  });

  it("square root", () => {
    fc.assert(
      fc.property(finiteDouble, (x) => {
        const a = Math.abs(x);
        agree(
          (f, m) => squareRoot(a, f, m),
          (f, m) => a !== 0 && exactly.squareRoot(a, f, m),
          () => a,
          () => `sqrt ${a}`,
        );
      }),
      RUNS,
    );
  });

  it("fused multiply-add, including near-total cancellation", () => {
    fc.assert(
      fc.property(
        finiteDouble,
        finiteDouble,
        finiteDouble,
        fc.integer({ min: -80, max: 80 }),
        (a, c, b, k) => {
          const addends = [b, -(a * c), -(a * c) * (1 + 2 ** k * 2 ** -52), -(a * c) + b * 2 ** -60];
          for (const addend of addends) {
            if (!Number.isFinite(addend)) continue;
            agree(
              (f, m) => fusedMultiplyAdd(a, c, addend, f, m),
              (f, m) => exactly.fusedMultiplyAdd(a, c, addend, f, m),
              (m) =>
                a === 0 || c === 0
                  ? sumZeroSign(isNegative(a) !== isNegative(c) ? -1 : 1, addend)(m)
                  : m === RoundingMode.TowardNegative
                  ? -0
                  : 0,
              () => `${a} * ${c} + ${addend}`,
            );
          }
        },
      ),
      RUNS,
    );
  });

  it("conversions: integer to floating point and rounding to single precision", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(1n << 63n), max: (1n << 64n) - 1n }), finiteDouble, (n, x) => {
        const bits = BigInt.asUintN(64, n);
        const lo = Number(bits & 0xffffffffn) | 0, hi = Number(bits >> 32n) | 0;
        for (const signed of [true, false]) {
          const value = signed ? BigInt.asIntN(64, bits) : bits;
          for (const format of FORMATS) {
            for (const mode of MODES) {
              fromInteger64(lo, hi, signed, format, mode);
              const got = snapshot();
              // The reference: the integer's exact value as a sum of two exact doubles.
              const high = Number(value >> 11n << 11n), low = Number(value - (value >> 11n << 11n));
              if (!exactly.add(high, low, format, mode)) ROUNDED.value = 0;
              expect(got.value, `${value} ${mode}`).toBe(ROUNDED.value);
              expect(got.inexact).toBe(value !== 0n && ROUNDED.inexact);
            }
          }
        }
        for (const mode of MODES) {
          roundToFormat(x, SINGLE, mode);
          const got = snapshot();
          if (!exactly.value(x, SINGLE, mode)) {
            Object.assign(ROUNDED, { value: x, inexact: false, tiny: false });
          }
          expect(sameBits(got.value, ROUNDED.value), `${x} mode ${mode}`).toBe(true);
          expect(got).toEqual({ ...snapshot(), value: got.value });
        }
      }),
      RUNS,
    );
  });

  it("rounds to integral values in every mode, ties included", () => {
    const cases: [number, number[]][] = [
      [2.5, [2, 2, 3, 2, 3]],
      [-2.5, [-2, -2, -2, -3, -3]],
      [0.49999999999999994, [0, 0, 1, 0, 0]],
      [-0.3, [-0, -0, -0, -1, -0]],
      [3.5, [4, 3, 4, 3, 4]],
      [2 ** 52 + 1, [2 ** 52 + 1, 2 ** 52 + 1, 2 ** 52 + 1, 2 ** 52 + 1, 2 ** 52 + 1]],
    ];
    const modes = [...MODES, RoundingMode.NearestAway];
    for (const [x, expected] of cases) {
      expect(modes.map((m) => roundToIntegral(x, m)), String(x)).toEqual(expected);
    }
    expect(Object.is(roundToIntegral(-0.3, RoundingMode.NearestEven), -0)).toBe(true);
  });
});

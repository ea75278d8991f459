// VSX quad precision against Power ISA v3.0B: the binary128 format and its rounding, the
// round-to-odd property checked against the double-precision arithmetic of float.ts, the points
// where qemu (the differential oracle) deviates from the ISA, enabled exceptions with their
// exponent-adjusted results, and the facility's advertisement in AT_HWCAP2.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  decode,
  encode,
  integerSquareRoot,
  Kind,
  QUAD,
  round,
  Rounding,
} from "../../../services/machine/cpu/binary128.ts";
import {
  add,
  divide,
  DOUBLE,
  fusedMultiplyAdd,
  multiply,
  ROUNDED,
  type RoundingMode,
  squareRoot,
} from "../../../services/machine/cpu/float.ts";
import { HWCAP2, PPC_FEATURE2_HAS_IEEE128 } from "../../../services/machine/cpu/features.ts";
import { IMPLEMENTED_FACILITIES } from "../../../services/machine/cpu/interpreter.ts";
import { assemble, type CaseResult, emptyState, type MachineState, runOnCpu } from "./qemu-oracle.ts";
import { getDouble, setDouble } from "./generators.ts";
import { getQuad, quad, quadFromInteger, setQuad, SIGN } from "./quad-generators.ts";

const FX = 0x8000_0000n, FEX = 0x4000_0000n, OX = 0x1000_0000n, UX = 0x0800_0000n, XX = 0x0200_0000n;
const VXSNAN = 0x0100_0000n, VXIMZ = 0x0010_0000n, VXCVI = 0x100n, FR = 0x0004_0000n, FI = 0x0002_0000n;
const OE = 0x40n, UE = 0x20n;
const SIGFPE = 8;

const ONE = quad(false, 16383, 0n);
const BIAS = 16383;

const doubleBits = (x: number) => {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x, true);
  return view.getBigUint64(0, true);
};
const doubleValue = (b: bigint) => {
  const view = new DataView(new ArrayBuffer(8));
  view.setBigUint64(0, b, true);
  return view.getFloat64(0, true);
};

/** Runs one instruction (VRT = vs35, VRA = vs33, VRB = vs34 unless given) on a state. */
function execute(
  mnemonic: string,
  state: MachineState,
  options: { flags?: number; operands?: Record<string, number> } = {},
): CaseResult {
  const word = assemble(mnemonic, { VRT: 3, VRA: 1, VRB: 2, ...options.operands }) | (options.flags ?? 0);
  return runOnCpu({ word, state });
}

/** A state with quads in vs33 (VRA), vs34 (VRB) and vs35 (VRT, the multiply-add's addend). */
function quads(a: bigint, b: bigint, t = 0n, fpscr = 0n): MachineState {
  const s = emptyState();
  setQuad(s, 33, a);
  setQuad(s, 34, b);
  setQuad(s, 35, t);
  s.fpscr = fpscr;
  return s;
}

describe("the binary128 format", () => {
  it("decodes and encodes every non-NaN encoding back to itself", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }), (bits) => {
        const value = decode(bits, QUAD);
        fc.pre(value.kind !== Kind.QuietNaN && value.kind !== Kind.SignalingNaN);
        expect(encode(value, QUAD)).toBe(bits);
      }),
    );
  });

  it("rounds ties to even, to odd, and away, and denormalizes tiny values before rounding", () => {
    const enables = { overflow: false, underflow: false };
    // 1 + 2^-113 is a tie between 1 and 1 + 2^-112.
    const tie = (mode: Rounding) => round(false, (1n << 113n) + 1n, -113, false, QUAD, mode, enables);
    expect(encode(tie(Rounding.NearestEven).value, QUAD)).toBe(ONE);
    expect(encode(tie(Rounding.NearestAway).value, QUAD)).toBe(ONE + 1n);
    expect(encode(tie(Rounding.Odd).value, QUAD)).toBe(ONE + 1n);
    expect(tie(Rounding.Odd)).toMatchObject({ inexact: true, incremented: true });
    expect(encode(tie(Rounding.TowardZero).value, QUAD)).toBe(ONE);
    // Half the smallest denormal: a tie to zero that underflows; with underflow enabled, 2^-16495 × 2^24576.
    const half = round(false, 1n, -16495, false, QUAD, Rounding.NearestEven, enables);
    expect(half).toMatchObject({ inexact: true, underflow: true, value: { kind: Kind.Zero } });
    const wrapped = round(false, 1n, -16495, false, QUAD, Rounding.NearestEven, {
      ...enables,
      underflow: true,
    });
    expect(encode(wrapped.value, QUAD)).toBe(quad(false, BIAS - 16495 + 24576, 0n));
    expect(wrapped).toMatchObject({ inexact: false, underflow: true });
  });

  it("overflows to infinity or the largest value by the mode, and to the largest when rounding to odd", () => {
    const largest = quad(false, 0x7ffe, (1n << 112n) - 1n);
    const enables = { overflow: false, underflow: false };
    const overflow = (mode: Rounding, negative: boolean) =>
      encode(round(negative, 1n, 16384, false, QUAD, mode, enables).value, QUAD);
    expect(overflow(Rounding.NearestEven, false)).toBe(quad(false, 0x7fff, 0n));
    expect(overflow(Rounding.TowardZero, true)).toBe(largest | SIGN);
    expect(overflow(Rounding.TowardPositive, true)).toBe(largest | SIGN);
    expect(overflow(Rounding.TowardNegative, true)).toBe(quad(true, 0x7fff, 0n));
    expect(overflow(Rounding.Odd, false)).toBe(largest);
  });

  it("takes integer square roots", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 1n << 300n }), (n) => {
        const root = integerSquareRoot(n);
        expect(root * root <= n && (root + 1n) * (root + 1n) > n).toBe(true);
      }),
    );
  });
});

/**
 * Rounding to odd in quad precision, then to double precision, rounds correctly in any mode
 * (113 ≥ 2 × 53 + 2): the quad arithmetic must agree with float.ts's double arithmetic.
 */
describe("round to odd composes with double rounding", () => {
  const finiteDouble = fc.double({ noNaN: true, noDefaultInfinity: true });
  const mode = fc.integer({ min: 0, max: 3 });

  function viaQuad(mnemonic: string, operands: number[], rn: number): number {
    let s = emptyState();
    operands.forEach((x, i) => setDouble(s, 33 + i, doubleBits(x)));
    for (let i = 0; i < operands.length; i++) {
      s = execute("xscvdpqp", s, { operands: { VRT: 1 + i, VRB: 1 + i } }).state;
    }
    const [a, b, t] = [33, 34, 35].map((v) => getQuad(s, v));
    const roundedToOdd = execute(mnemonic, quads(a, b, t), { flags: 1 }).state;
    roundedToOdd.fpscr = BigInt(rn);
    const converted = execute("xscvqpdp", roundedToOdd, { operands: { VRT: 3, VRB: 3 } }).state;
    return doubleValue(getDouble(converted, 35));
  }

  /**
   * An exact zero sum of terms of opposite signs is +0 when rounding to odd, where float.ts gives
   * −0 rounding toward −∞: the sign of such a zero is not compared.
   */
  function agrees(got: number, expected: number, zeroSignFree: boolean): void {
    if (zeroSignFree && expected === 0) expect(got === 0, `${got} vs ${expected}`).toBe(true);
    else expect(Object.is(got, expected), `${got} vs ${expected}`).toBe(true);
  }

  /** x + y is an exact zero of terms with opposite signs. */
  const cancels = (x: number, y: number) => x === -y && !(x === 0 && Object.is(x, y));

  it("xsaddqpo, xssubqpo", () => {
    fc.assert(
      fc.property(finiteDouble, finiteDouble, mode, (a, b, rn) => {
        add(a, b, DOUBLE, rn as RoundingMode);
        agrees(viaQuad("xsaddqp", [a, b], rn), ROUNDED.value, cancels(a, b));
        add(a, -b, DOUBLE, rn as RoundingMode);
        agrees(viaQuad("xssubqp", [a, b], rn), ROUNDED.value, cancels(a, -b));
      }),
      { numRuns: 200 },
    );
  });

  it("xsmulqpo, xsdivqpo, xssqrtqpo", () => {
    fc.assert(
      fc.property(finiteDouble, finiteDouble, mode, (a, b, rn) => {
        multiply(a, b, DOUBLE, rn as RoundingMode);
        agrees(viaQuad("xsmulqp", [a, b], rn), ROUNDED.value, false);
        if (b !== 0) {
          divide(a, b, DOUBLE, rn as RoundingMode);
          agrees(viaQuad("xsdivqp", [a, b], rn), ROUNDED.value, false);
        }
        const root = Math.abs(a);
        squareRoot(root, DOUBLE, rn as RoundingMode);
        agrees(viaQuad("xssqrtqp", [0, root], rn), ROUNDED.value, false);
      }),
      { numRuns: 200 },
    );
  });

  it("xsmaddqpo", () => {
    fc.assert(
      fc.property(finiteDouble, finiteDouble, finiteDouble, mode, (a, b, c, rn) => {
        fusedMultiplyAdd(a, b, c, DOUBLE, rn as RoundingMode);
        agrees(viaQuad("xsmaddqp", [a, b, c], rn), ROUNDED.value, true);
      }),
      { numRuns: 200 },
    );
  });
});

describe("quad precision where the ISA and qemu differ", () => {
  const third = quad(false, BIAS - 2, 0x5555_5555_5555_5555_5555_5555_5555n);

  it("xsnmaddqp rounds, then negates (qemu rounds the negated value)", () => {
    // third × 3 = 1 − 2^-114, halfway below 1: toward +∞ it rounds to 1, negated −1.
    const result = getQuad(execute("xsnmaddqp", quads(third, quadFromInteger(3n), 0n, 2n)).state, 35);
    expect(result).toBe(ONE | SIGN);
  });

  it("xsnmsubqpo rounds to odd (qemu rounds by FPSCR[RN])", () => {
    // −(2^-113 × 1 − (−1)): 1 + 2^-113 is a tie that rounds to odd as 1 + 2^-112.
    const tiny = quad(false, BIAS - 113, 0n);
    const result = execute("xsnmsubqp", quads(tiny, ONE, ONE | SIGN), { flags: 1 });
    expect(getQuad(result.state, 35)).toBe((ONE + 1n) | SIGN);
    expect(result.state.fpscr & (XX | FI | FR)).toBe(XX | FI | FR);
  });

  it("xsrqpi with R=0, RMC=0b11 rounds by FPSCR[RN] (qemu swaps toward zero and toward −∞)", () => {
    const minusTwoAndAHalf = quadFromInteger(-5n, 1);
    const rounded = (rn: bigint) =>
      getQuad(
        execute("xsrqpi", quads(0n, minusTwoAndAHalf, 0n, rn), { operands: { R: 0, RMC: 3 } }).state,
        35,
      );
    expect(rounded(0n)).toBe(quadFromInteger(-2n));
    expect(rounded(1n)).toBe(quadFromInteger(-2n));
    expect(rounded(2n)).toBe(quadFromInteger(-2n));
    expect(rounded(3n)).toBe(quadFromInteger(-3n));
  });

  it("xsrqpxp keeps a quiet NaN's whole payload (qemu drops what double-extended cannot hold)", () => {
    const nan = quad(false, 0x7fff, (1n << 111n) | 0x1234_5678n);
    expect(getQuad(execute("xsrqpxp", quads(0n, nan), { operands: { R: 1, RMC: 0 } }).state, 35)).toBe(nan);
  });

  it("∞ × 0 + a signaling NaN raises both VXIMZ and VXSNAN (qemu raises VXIMZ only)", () => {
    const signaling = quad(false, 0x7fff, 1n);
    const result = execute("xsmaddqp", quads(quad(false, 0x7fff, 0n), 0n, signaling));
    expect(result.state.fpscr & (VXIMZ | VXSNAN)).toBe(VXIMZ | VXSNAN);
    expect(getQuad(result.state, 35)).toBe(signaling | (1n << 111n));
  });

  it("sets FPSCR[FR] when the rounded magnitude grew (qemu never sets it)", () => {
    const result = execute("xsdivqp", quads(ONE, quadFromInteger(3n), 0n, 2n));
    expect(result.state.fpscr & (FR | FI | XX)).toBe(FR | FI | XX);
  });
});

describe("quad-precision enabled exceptions and conversions", () => {
  it("an enabled overflow writes the result with its exponent lowered by 24576, then traps", () => {
    const largest = quad(false, 0x7ffe, 0n);
    const result = execute("xsmulqp", quads(largest, quadFromInteger(4n), 0n, OE));
    expect(result.signal).toBe(SIGFPE);
    // The harness stops before reading registers back on a signal: check the CPU state directly.
    const state = quads(largest, quadFromInteger(4n), 0n, OE);
    const cpuResult = runOnCpu({ word: assemble("xsmulqp", { VRT: 3, VRA: 1, VRB: 2 }), state }, {
      floatingPointExceptions: false,
    });
    expect(getQuad(cpuResult.state, 35)).toBe(quad(false, 0x7ffe + 2 - 24576, 0n));
    expect(cpuResult.state.fpscr & (FX | FEX | OX)).toBe(FX | FEX | OX);
  });

  it("an enabled underflow raises UX even for an exact tiny result, with the exponent raised by 24576", () => {
    const state = quads(1n, 0n, 0n, UE);
    const result = runOnCpu({ word: assemble("xsaddqp", { VRT: 3, VRA: 1, VRB: 2 }), state }, {
      floatingPointExceptions: false,
    });
    expect(getQuad(result.state, 35)).toBe(quad(false, BIAS - 16494 + 24576, 0n));
    expect(result.state.fpscr & (UX | XX | FEX)).toBe(UX | FEX);
  });

  it("xscvqpdp with overflow enabled adjusts the double's exponent by 1536", () => {
    const state = quads(0n, quad(false, BIAS + 1100, 0n), 0n, OE);
    const result = runOnCpu({ word: assemble("xscvqpdp", { VRT: 3, VRB: 2 }), state }, {
      floatingPointExceptions: false,
    });
    expect(doubleValue(getDouble(result.state, 35))).toBe(2 ** (1100 - 1536));
    expect(getDouble(result.state, 35, 1)).toBe(0n);
  });

  it("conversions to integers fill doubleword 0, saturate, and leave FPRF alone", () => {
    const nan = quad(false, 0x7fff, 1n << 111n);
    const convert = (mnemonic: string, b: bigint) => {
      const s = quads(0n, b, 0n, 0x1f000n);
      const result = execute(mnemonic, s).state;
      return { dw0: getDouble(result, 35), dw1: getDouble(result, 35, 1), fpscr: result.fpscr };
    };
    expect(convert("xscvqpswz", nan)).toMatchObject({ dw0: 0xffff_ffff_8000_0000n, dw1: 0n });
    expect(convert("xscvqpswz", nan).fpscr & (VXCVI | 0x1f000n)).toBe(VXCVI | 0x1f000n);
    expect(convert("xscvqpswz", quadFromInteger(-7n)).dw0).toBe(0xffff_ffff_ffff_fff9n);
    expect(convert("xscvqpuwz", quadFromInteger(1n << 40n)).dw0).toBe(0xffff_ffffn);
    const minusHalf = convert("xscvqpudz", quadFromInteger(-1n, 1));
    expect(minusHalf.dw0).toBe(0n);
    expect(minusHalf.fpscr & (VXCVI | XX | FI)).toBe(XX | FI);
    expect(convert("xscvqpsdz", quad(true, BIAS + 63, 0n)).dw0).toBe(1n << 63n);
    expect(convert("xscvqpsdz", quad(true, BIAS + 63, 1n << 62n)).fpscr & VXCVI).toBe(VXCVI);
  });
});

describe("the facility's advertisement", () => {
  it("executes every ieee128 instruction and advertises PPC_FEATURE2_HAS_IEEE128", () => {
    expect(IMPLEMENTED_FACILITIES.has("ieee128")).toBe(true);
    expect(HWCAP2 & PPC_FEATURE2_HAS_IEEE128).toBe(PPC_FEATURE2_HAS_IEEE128);
  });
});

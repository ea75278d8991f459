// Binary floating point against Power ISA v3.0B where qemu (the differential oracle) deviates
// from it, and the FPSCR's exception model: enabled exceptions, exponent-adjusted results, FX
// transitions, CR1, NaN propagation and the rounding modes.

import { describe, expect, it } from "vitest";
import { DOUBLE, exactly, ROUNDED } from "../../../services/machine/cpu/float.ts";
import { assemble, emptyState, type MachineState, runOnCpu, type TestCase } from "./qemu-oracle.ts";
import { getDouble, setDouble } from "./generators.ts";

const FX = 0x8000_0000n, FEX = 0x4000_0000n, VX = 0x2000_0000n, OX = 0x1000_0000n, UX = 0x0800_0000n;
const ZX = 0x0400_0000n, XX = 0x0200_0000n, VXSNAN = 0x0100_0000n, FR = 0x0004_0000n, FI = 0x0002_0000n;
const FPRF_SHIFT = 12n;
const OE = 0x40n, UE = 0x20n, ZE = 0x10n;

const bits = (x: number) => {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x, true);
  return view.getBigUint64(0, true);
};
const value = (b: bigint) => {
  const view = new DataView(new ArrayBuffer(8));
  view.setBigUint64(0, b, true);
  return view.getFloat64(0, true);
};

/** Runs one instruction with FPRs 2, 3, 4 holding a, b, c. */
function run(word: number, a: number | bigint, b: number | bigint = 0, c: number | bigint = 0, fpscr = 0n) {
  const state: MachineState = emptyState();
  setDouble(state, 2, typeof a === "bigint" ? a : bits(a));
  setDouble(state, 3, typeof b === "bigint" ? b : bits(b));
  setDouble(state, 4, typeof c === "bigint" ? c : bits(c));
  state.fpscr = fpscr;
  const result = runOnCpu({ word, state } as TestCase);
  return { ...result, frt: getDouble(result.state, 1), fpscr: result.state.fpscr };
}

const fprf = (fpscr: bigint) => Number((fpscr >> FPRF_SHIFT) & 0x1fn);
const A = { FRT: 1, FRA: 2, FRB: 3, FRC: 4 };

describe("floating point where the ISA and qemu differ", () => {
  it("sets FR when rounding increments the fraction", () => {
    const tenth = run(assemble("fdiv", A), 1, 10);
    expect(value(tenth.frt)).toBe(0.1);
    expect(tenth.fpscr & (FR | FI | XX)).toBe(FR | FI | XX);
    const third = run(assemble("fdiv", A), 1, 3);
    expect(third.fpscr & (FR | FI)).toBe(FI);
  });

  it("classifies single-precision results in single format: a single denormal is denormalized", () => {
    const sum = run(assemble("fadds", A), 2 ** -130, 2 ** -131);
    expect(value(sum.frt)).toBe(1.5 * 2 ** -130);
    expect(fprf(sum.fpscr)).toBe(0x14);
    expect(fprf(run(assemble("frsp", A), 0, -(2 ** -140)).fpscr)).toBe(0x18);
  });

  it("sets FPRF in fcfids, fcfidu and fcfidus", () => {
    for (const mnemonic of ["fcfids", "fcfidu", "fcfidus"]) {
      expect(fprf(run(assemble(mnemonic, A), 0, 7n).fpscr), mnemonic).toBe(0x04);
    }
  });

  it("leaves FI alone in fcmpu and FPRF's C bit alone in an unordered fcmpo", () => {
    const state = FI | (0x1fn << FPRF_SHIFT);
    const cmpu = run(assemble("fcmpu", { BF: 1, FRA: 2, FRB: 3 }), 1, 2, 0, state);
    expect(cmpu.fpscr & FI).toBe(FI);
    const cmpo = run(assemble("fcmpo", { BF: 1, FRA: 2, FRB: 3 }), 1, NaN, 0, FI);
    expect(cmpo.fpscr & (0x1fn << FPRF_SHIFT)).toBe(0x01n << FPRF_SHIFT);
  });

  it("rounds fnmadd and fnmsub before negating, in every mode", () => {
    const [a, c, b] = [0.1, 0.7, 0.3];
    const results = new Set<number>();
    for (const mode of [0, 1, 2, 3] as const) {
      exactly.fusedMultiplyAdd(a, c, b, DOUBLE, mode);
      const sum = ROUNDED.value;
      results.add(sum);
      expect(value(run(assemble("fnmadd", A), a, b, c, BigInt(mode)).frt), `mode ${mode}`).toBe(-sum);
      exactly.fusedMultiplyAdd(a, c, -b, DOUBLE, mode);
      expect(value(run(assemble("fnmsub", A), a, b, c, BigInt(mode)).frt), `mode ${mode}`).toBe(
        -ROUNDED.value,
      );
    }
    expect(results.size).toBe(2);
  });

  it("sets FX when mtfsb1 sets an exception bit", () => {
    const zx = run(assemble("mtfsb1", { BTF: 5 }), 0);
    expect(zx.fpscr & (FX | ZX)).toBe(FX | ZX);
  });

  it("gives ±∞ and ZX for fre and fres of ±0", () => {
    expect(value(run(assemble("fre", A), 0, -0).frt)).toBe(-Infinity);
    const single = run(assemble("fres", A), 0, 0);
    expect(value(single.frt)).toBe(Infinity);
    expect(single.fpscr & ZX).toBe(ZX);
  });
});

describe("the FPSCR's exception model", () => {
  it("raises a program interrupt for an enabled zero divide and leaves the target unchanged", () => {
    const result = run(assemble("fdiv", { FRT: 2, FRA: 2, FRB: 3 }), 1, 0, 0, ZE);
    expect(result.signal).toBe(8);
    expect(getDouble(result.state, 2)).toBe(bits(1));
    expect(result.fpscr & (ZX | FEX | FX)).toBe(ZX | FEX | FX);
  });

  it("sets FX only when an exception bit changes from 0 to 1", () => {
    const again = run(assemble("fdiv", A), 1, 3, 0, XX);
    expect(again.fpscr & FX).toBe(0n);
    expect(again.fpscr & XX).toBe(XX);
    const first = run(assemble("fdiv", A), 1, 3);
    expect(first.fpscr & FX).toBe(FX);
  });

  it("gives infinity or the largest number on a disabled overflow, by mode", () => {
    const big = Number.MAX_VALUE;
    const expected = [Infinity, big, Infinity, big];
    for (const mode of [0, 1, 2, 3]) {
      const result = run(assemble("fmul", A), big, 0, 2, BigInt(mode));
      expect(value(result.frt), `mode ${mode}`).toBe(expected[mode]);
      expect(result.fpscr & (OX | XX | FI)).toBe(OX | XX | FI);
    }
  });

  it("gives the exponent-adjusted result on an enabled overflow or underflow", () => {
    const overflow = run(assemble("fmul", { FRT: 5, FRA: 2, FRC: 4 }), 2 ** 1000, 0, 2 ** 1000, OE);
    expect(overflow.signal).toBe(8);
    const state = emptyState();
    setDouble(state, 2, bits(2 ** 1000));
    setDouble(state, 4, bits(2 ** 1000));
    state.fpscr = OE;
    const cpuResult = runWithoutTrap(assemble("fmul", A), state);
    expect(value(getDouble(cpuResult.state, 1))).toBe(2 ** (2000 - 1536));
    expect(cpuResult.state.fpscr & (OX | FEX)).toBe(OX | FEX);
    const single = emptyState();
    setDouble(single, 2, bits(2 ** -100));
    setDouble(single, 4, bits(2 ** -100));
    single.fpscr = UE;
    const singleResult = runWithoutTrap(assemble("fmuls", A), single);
    expect(value(getDouble(singleResult.state, 1))).toBe(2 ** (-200 + 192));
    expect(singleResult.state.fpscr & UX).toBe(UX);
  });

  it("propagates the first NaN operand quieted, in the order FRA, FRB, FRC, keeping its payload", () => {
    const signaling = 0x7ff0_0000_0000_1234n, quiet = 0x7ff8_0000_0000_5678n;
    const result = run(assemble("fmadd", A), 1, quiet, signaling);
    expect(result.frt).toBe(quiet);
    expect(result.fpscr & (VXSNAN | VX)).toBe(VXSNAN | VX);
    expect(run(assemble("fmadd", A), signaling, quiet, 1).frt).toBe(signaling | (1n << 51n));
  });

  it("copies FX, FEX, VX and OX to CR1 when Rc is set", () => {
    const result = run(assemble("fdiv", A, ["Rc"]), 1, 3);
    expect((result.state.cr >>> 24) & 0xf).toBe(0x8);
  });

  it("rounds in every mode", () => {
    const third = [bits(1 / 3), bits(1 / 3), bits(1 / 3) + 1n, bits(1 / 3)];
    for (const mode of [0, 1, 2, 3]) {
      expect(run(assemble("fdiv", A), 1, 3, 0, BigInt(mode)).frt, `mode ${mode}`).toBe(third[mode]);
      expect(run(assemble("fdiv", A), -1, 3, 0, BigInt(mode)).frt).toBe(
        (mode === 3 ? bits(1 / 3) + 1n : bits(1 / 3)) | (1n << 63n),
      );
    }
  });
});

/** Runs a case with enabled exceptions reported in the FPSCR only (MSR[FE0,FE1] = 0). */
function runWithoutTrap(word: number, state: MachineState) {
  return runOnCpu({ word, state }, { floatingPointExceptions: false });
}

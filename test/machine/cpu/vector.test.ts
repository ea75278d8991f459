// VMX, VSX, decimal and crypto instructions against Power ISA v3.0B: little-endian element order
// of the loads and stores, and the points where qemu (the differential oracle) deviates from the
// ISA — vrldmi, the exponential and logarithm estimates, decimal arithmetic and its CR6, the
// reciprocal estimates' ZX, enabled exceptions of vector compares, xststdcsp.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { assemble, emptyState, type MachineState, MEMORY_BASE, runOnCpu } from "./qemu-oracle.ts";

/** The 16 bytes of VSR n, most significant (ISA byte 0) first. */
function isaBytes(s: MachineState, n: number): number[] {
  return [...s.vsr.subarray(16 * n, 16 * n + 16)].reverse();
}

function setIsaBytes(s: MachineState, n: number, bytes: number[]): void {
  s.vsr.set([...bytes].reverse(), 16 * n);
}

function quadword(s: MachineState, n: number): bigint {
  return isaBytes(s, n).reduce((value, byte) => (value << 8n) | BigInt(byte), 0n);
}

function setQuadword(s: MachineState, n: number, value: bigint): void {
  const bytes: number[] = [];
  for (let i = 15; i >= 0; i--) bytes.push(Number((value >> BigInt(8 * i)) & 0xffn));
  setIsaBytes(s, n, bytes);
}

const hex = (bytes: number[]) => bytes.map((b) => b.toString(16).padStart(2, "0")).join("");

describe("little-endian element order of the vector loads and stores", () => {
  const memory = Array.from({ length: 16 }, (_, i) => i);
  const load = (mnemonic: string) => {
    const s = emptyState();
    s.memory.set(memory);
    s.gpr[4] = BigInt(MEMORY_BASE);
    const operands = mnemonic === "lxv" ? { XTQ: 1, DQ: 0, RA0: 4 } : { XT: 1, RA0: 0, RB: 4 };
    return hex(isaBytes(runOnCpu({ word: assemble(mnemonic, operands), state: s }).state, 1));
  };

  it("loads a quadword as a little-endian value (lxv, lxvx): memory byte 0 is the least significant", () => {
    expect(load("lxvx")).toBe("0f0e0d0c0b0a09080706050403020100");
    expect(load("lxv")).toBe("0f0e0d0c0b0a09080706050403020100");
  });

  it("loads elements in ISA order (lxvd2x, lxvw4x, lxvh8x, lxvb16x): element 0 from the lowest address", () => {
    expect(load("lxvd2x")).toBe("07060504030201000f0e0d0c0b0a0908");
    expect(load("lxvw4x")).toBe("03020100070605040b0a09080f0e0d0c");
    expect(load("lxvh8x")).toBe("010003020504070609080b0a0d0c0f0e");
    expect(load("lxvb16x")).toBe("000102030405060708090a0b0c0d0e0f");
  });

  it("stores what it loads", () => {
    for (
      const [loadMnemonic, storeMnemonic] of [["lxvd2x", "stxvd2x"], ["lxvw4x", "stxvw4x"], ["lxvx", "stxvx"]]
    ) {
      const s = emptyState();
      s.memory.set(memory);
      s.gpr[4] = BigInt(MEMORY_BASE);
      s.gpr[5] = BigInt(MEMORY_BASE + 64);
      const loaded = runOnCpu({ word: assemble(loadMnemonic, { XT: 40, RA0: 0, RB: 4 }), state: s }).state;
      const stored =
        runOnCpu({ word: assemble(storeMnemonic, { XS: 40, RA0: 0, RB: 5 }), state: loaded }).state;
      expect([...stored.memory.subarray(64, 80)], storeMnemonic).toEqual(memory);
    }
  });
});

describe("vector instructions where the ISA and qemu differ", () => {
  it("vrldmi keeps the target's bits outside the mask", () => {
    const s = emptyState();
    setQuadword(s, 33, 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210n);
    // mb = 32, me = 47, sh = 8 for both doublewords.
    const control = (32n << 16n) | (47n << 8n) | 8n;
    setQuadword(s, 34, (control << 64n) | control);
    setQuadword(s, 35, 0xffff_ffff_ffff_ffff_ffff_ffff_ffff_ffffn);
    const result = runOnCpu({ word: assemble("vrldmi", { VRT: 3, VRA: 1, VRB: 2 }), state: s }).state;
    expect(quadword(result, 35)).toBe(0xffff_ffff_abcd_ffff_ffff_ffff_5432_ffffn);
  });

  it("vexptefp and vlogefp estimate within the ISA's bounds and handle the special values", () => {
    const view = new DataView(new ArrayBuffer(4));
    const single = (x: number) => (view.setFloat32(0, x), view.getUint32(0));
    const fromSingle = (word: number) => (view.setUint32(0, word), view.getFloat32(0));
    const run = (mnemonic: string, inputs: number[]) => {
      const s = emptyState();
      s.vscr = 0;
      const data = new DataView(s.vsr.buffer);
      inputs.forEach((x, i) => data.setUint32(16 * 33 + 12 - 4 * i, single(x), true));
      const out = runOnCpu({ word: assemble(mnemonic, { VRT: 2, VRB: 1 }), state: s }).state;
      const outView = new DataView(out.vsr.buffer);
      return inputs.map((_, i) => fromSingle(outView.getUint32(16 * 34 + 12 - 4 * i, true)));
    };
    fc.assert(
      fc.property(
        fc.float({ min: -120, max: 120, noNaN: true }),
        fc.float({ min: Math.fround(1e-30), max: Math.fround(1e30), noNaN: true }),
        (x, y) => {
          const [exp] = run("vexptefp", [x]);
          expect(Math.abs(exp - 2 ** x) / 2 ** x).toBeLessThan(1 / 16);
          const [log] = run("vlogefp", [y]);
          expect(Math.abs(log - Math.log2(y))).toBeLessThan(1 / 32 + Math.abs(Math.log2(y)) / 16);
        },
      ),
      { numRuns: 300 },
    );
    expect(run("vexptefp", [-Infinity, Infinity, NaN, -1000])).toEqual([0, Infinity, NaN, 0]);
    expect(run("vlogefp", [0, Infinity, -1, NaN])).toEqual([-Infinity, Infinity, NaN, NaN]);
  });

  it("raises ZX in the reciprocal estimates of zero", () => {
    const s = emptyState();
    const result = runOnCpu({ word: assemble("xvrsqrtesp", { XT: 1, XB: 2 }), state: s }).state;
    expect(result.fpscr & 0x0400_0000n).toBe(0x0400_0000n);
    expect(runOnCpu({ word: assemble("xsredp", { XT: 1, XB: 2 }), state: s }).state.fpscr & 0x0400_0000n)
      .toBe(0x0400_0000n);
  });

  it("raises the program interrupt of an enabled VXVC in a vector compare", () => {
    const s = emptyState();
    s.fpscr = 0x80n;
    setQuadword(s, 2, 0x7ff8_0000_0000_0000_0000_0000_0000_0000n);
    expect(runOnCpu({ word: assemble("xvcmpgtdp", { XT: 1, XA: 2, XB: 3 }), state: s }).signal).toBe(8);
  });

  it("xststdcsp classifies values below the single normal range as denormals", () => {
    const s = emptyState();
    setQuadword(s, 3, 0x3800_0000_0000_0000n << 64n);
    const test = (dcmx: number) =>
      (runOnCpu({ word: assemble("xststdcsp", { BF: 0, XB: 3, DCMX: dcmx }), state: s }).state.cr >>> 28) &
      0xf;
    expect(test(0x02)).toBe(0x2);
    expect(test(0x7d)).toBe(0x0);
  });
});

describe("decimal arithmetic", () => {
  const LIMIT = 10n ** 31n;
  const encode = (value: bigint, negativeCode = 0xdn, positiveCode = 0xcn) => {
    const magnitude = value < 0n ? -value : value;
    let packed = 0n;
    for (let i = 0, m = magnitude; i < 31; i++, m /= 10n) packed |= (m % 10n) << BigInt(4 * (i + 1));
    return packed | (value < 0n ? negativeCode : positiveCode);
  };
  const decimal = fc.bigInt({ min: -(LIMIT - 1n), max: LIMIT - 1n });

  function run(mnemonic: string, a: bigint, b: bigint, flags: { PS?: number } = {}) {
    const s = emptyState();
    setQuadword(s, 33, a);
    setQuadword(s, 34, b);
    const result =
      runOnCpu({ word: assemble(mnemonic, { VRT: 3, VRA: 1, VRB: 2, ...flags }), state: s }).state;
    return { value: quadword(result, 35), cr6: (result.cr >>> 4) & 0xf };
  }

  it("adds and subtracts signed decimals, with CR6 from the result and SO on overflow", () => {
    fc.assert(
      fc.property(decimal, decimal, fc.integer({ min: 0, max: 1 }), (a, b, ps) => {
        for (const [mnemonic, exact] of [["bcdadd.", a + b], ["bcdsub.", a - b]] as const) {
          const { value, cr6 } = run(mnemonic, encode(a, 0xbn, 0xan), encode(b), { PS: ps });
          const magnitude = (exact < 0n ? -exact : exact) % LIMIT;
          const sign = exact < 0n ? 0xdn : ps ? 0xfn : 0xcn;
          expect(value).toBe((encode(magnitude) & ~0xfn) | sign);
          const field = exact < 0n ? 8 : exact > 0n ? 4 : 2;
          expect(cr6).toBe(field | ((exact < 0n ? -exact : exact) >= LIMIT ? 1 : 0));
        }
      }),
      { numRuns: 300 },
    );
  });

  it("reports invalid operands with SO alone and a zero sum with EQ alone", () => {
    expect(run("bcdadd.", 0x15n, encode(5n)).cr6).toBe(1);
    expect(run("bcdadd.", encode(1n) | 0xa0n, encode(5n)).cr6).toBe(1);
    expect(run("bcdadd.", encode(0n), encode(0n)).cr6).toBe(2);
  });

  it("gives unsigned shifts GT or EQ, never LT", () => {
    expect(run("bcdus.", 1n << 64n, 0x1234n).cr6).toBe(4);
    expect(run("bcdus.", 1n << 64n, 0n).cr6).toBe(2);
    expect(run("bcdus.", 1n << 64n, 0x1234n).value).toBe(0x12340n);
  });

  it("converts to and from signed quadwords", () => {
    fc.assert(
      fc.property(decimal, (a) => {
        expect(BigInt.asIntN(128, run("bcdctsq.", 0n, encode(a)).value)).toBe(a);
        expect(run("bcdcfsq.", 0n, BigInt.asUintN(128, a)).value).toBe(encode(a));
      }),
      { numRuns: 200 },
    );
  });
});

describe("crypto", () => {
  it("computes an AES round (FIPS-197 appendix B, round 1)", () => {
    const s = emptyState();
    setQuadword(s, 33, 0x193de3bea0f4e22b9ac68d2ae9f84808n);
    setQuadword(s, 34, 0xa0fafe1788542cb123a339392a6c7605n);
    const result = runOnCpu({ word: assemble("vcipher", { VRT: 3, VRA: 1, VRB: 2 }), state: s }).state;
    expect(quadword(result, 35)).toBe(0xa49c7ff2689f352b6b5bea43026a5049n);
  });

  it("undoes vcipherlast with vncipherlast", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }), (state) => {
        const s = emptyState();
        setQuadword(s, 33, state);
        const forward =
          runOnCpu({ word: assemble("vcipherlast", { VRT: 3, VRA: 1, VRB: 2 }), state: s }).state;
        const back =
          runOnCpu({ word: assemble("vncipherlast", { VRT: 4, VRA: 3, VRB: 2 }), state: forward }).state;
        expect(quadword(back, 36)).toBe(state);
      }),
      { numRuns: 50 },
    );
  });
});

// Runs generated single-instruction cases on qemu-ppc64le and on our CPU and collects the
// differences, a few per instruction, for the differential test suites.

import { INSTRUCTIONS, OP } from "../../../services/machine/cpu/decode.ts";
import type { FlagName } from "../../../services/machine/cpu/isa.ts";
import {
  type CaseResult,
  describeInputs,
  differences,
  type MachineState,
  runOnCpu,
  runOnQemu,
  type TestCase,
  type Tolerance,
} from "./qemu-oracle.ts";
import { type Operands, Random, randomOperands } from "./generators.ts";

export interface Suite {
  mnemonics: readonly string[];
  casesPerInstruction: number;
  seed: number;
  /** A fresh random state for a case. */
  state: (random: Random) => MachineState;
  /** Adjusts a generated case (operands related for hard cases, or kept where qemu and the ISA agree). */
  adjust?: (mnemonic: string, c: TestCase, operands: Operands, random: Random) => void;
  tolerance?: (mnemonic: string, c: TestCase, got: CaseResult) => Tolerance;
}

export interface SuiteResult {
  /** Up to three described failures per instruction. */
  failures: string[];
  /** Failing case counts per instruction. */
  summary: string;
  cases: number;
}

export async function runSuite(harness: string, suite: Suite): Promise<SuiteResult> {
  const random = new Random(suite.seed);
  const cases: { mnemonic: string; c: TestCase; operands: Operands }[] = [];
  for (const mnemonic of suite.mnemonics) {
    const def = INSTRUCTIONS[OP[mnemonic]];
    for (let i = 0; i < suite.casesPerInstruction; i++) {
      const state = suite.state(random);
      const flags: FlagName[] = [];
      for (const flag of ["Rc", "Rc21"] as const) {
        if (def.flags.includes(flag) && random.chance(0.5)) flags.push(flag);
      }
      const operands = randomOperands(random, mnemonic, state, flags);
      const c = { word: operands.word, state };
      suite.adjust?.(mnemonic, c, operands, random);
      cases.push({ mnemonic, c, operands });
    }
  }
  const want = await runOnQemu(harness, cases.map((x) => x.c));
  const failures: string[] = [];
  const failing = new Map<string, number>();
  cases.forEach(({ mnemonic, c, operands }, i) => {
    const got = runOnCpu(c);
    const diff = differences(want[i], got, suite.tolerance?.(mnemonic, c, got));
    if (diff.length === 0) return;
    const count = (failing.get(mnemonic) ?? 0) + 1;
    failing.set(mnemonic, count);
    if (count <= 3) failures.push(`${mnemonic}: ${describeInputs(c, operands)}\n    ${diff.join("\n    ")}`);
  });
  return {
    failures,
    summary: [...failing].map(([m, n]) => `${m}: ${n}`).join(", "),
    cases: cases.length,
  };
}

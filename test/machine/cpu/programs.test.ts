// Whole programs against qemu-ppc64le: the C programs in guest/ (glibc's printf, strtod, libm,
// fenv and IBM long double; its VMX/VSX string routines; gcc's vectorised loops; __float128 on
// the quad-precision instructions), built static at several optimisation levels and CPU targets,
// and the guest suite's programs that lean on the CPU alone (test/guest/programs, at the levels
// they state), run on the interpreter and on the translator through a minimal Linux shim, must
// print what they print under qemu and exit the same way.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toolchainMissing } from "../../requirements.ts";
import { runProgram } from "./linux-process.ts";

const PROGRAMS = ["float-formatting", "strings", "vectorized", "quad"];
const BUILDS: Record<string, string[]> = {
  "-O0": ["-O0"],
  "-O2": ["-O2"],
  "-O3 -mcpu=power8": ["-O3", "-mcpu=power8"],
  "-O3 -mcpu=power9": ["-O3", "-mcpu=power9"],
};
const GUEST_SUITE = new URL("../../guest/programs/", import.meta.url).pathname;
/** Guest-suite programs (with their check.h) and builds: long double and __float128 in hardware. */
const GUEST_SUITE_PROGRAMS: Record<string, string[]> = { long_double: ["-O3 -mcpu=power9"] };

/** Every program and build: its label, source, and compiler flags. */
const CASES = [
  ...PROGRAMS.flatMap((program) =>
    Object.entries(BUILDS).map(([label, flags]) => ({
      label: `${program} ${label}`,
      source: new URL(`./guest/${program}.c`, import.meta.url).pathname,
      flags,
    }))
  ),
  ...Object.entries(GUEST_SUITE_PROGRAMS).flatMap(([program, labels]) =>
    labels.map((label) => ({
      label: `${program} (guest suite) ${label}`,
      source: `${GUEST_SUITE}${program}.c`,
      flags: [...BUILDS[label], "-I", GUEST_SUITE],
    }))
  ),
];

const skip = toolchainMissing();

async function output(command: string, args: string[]): Promise<{ stdout: string; code: number }> {
  const result = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" }).output();
  if (result.stderr.length > 0 && command !== "qemu-ppc64le") {
    throw new Error(`${command} ${args.join(" ")}:\n${new TextDecoder().decode(result.stderr)}`);
  }
  return { stdout: new TextDecoder().decode(result.stdout), code: result.code };
}

describe.skipIf(skip !== undefined)(
  `static programs against qemu-ppc64le${skip ? ` (skipped: ${skip})` : ""}`,
  () => {
    let dir = "";
    const binaries = new Map<string, string>();

    beforeAll(async () => {
      dir = await Deno.makeTempDir({ prefix: "astra-cpu-programs-" });
      await Promise.all(CASES.map(async ({ label, source, flags }, index) => {
        const binary = `${dir}/program${index}`;
        await output("powerpc64le-linux-gnu-gcc", [
          "-static",
          "-Wall",
          "-Werror",
          ...flags,
          source,
          "-o",
          binary,
          "-lm",
        ]);
        binaries.set(label, binary);
      }));
    }, 300_000);

    afterAll(async () => {
      if (dir) await Deno.remove(dir, { recursive: true });
    });

    for (const { label } of CASES) {
      it(label, async () => {
        const binary = binaries.get(label)!;
        const reference = await output("qemu-ppc64le", [binary]);
        expect(reference.code).toBe(0);
        const image = await Deno.readFile(binary);
        for (const translate of [false, true]) {
          const result = runProgram(image, [binary], { translate });
          expect({ translate, stdout: result.stdout, exitCode: result.exitCode })
            .toEqual({ translate, stdout: reference.stdout, exitCode: reference.code });
        }
      }, 300_000);
    }
  },
);

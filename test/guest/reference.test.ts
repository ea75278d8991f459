// The guest programs under qemu-ppc64le alone: every program at every optimisation level it states,
// run twice. The two runs must be identical (the differential test relies on that determinism) and
// must meet the program's own expectations (exit status, a final "ok N"), so that a broken program,
// build or libc shows up here, before AstraLisp OS runs anything.

import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { toolchainMissing } from "../requirements.ts";
import {
  type Build,
  buildAll,
  buildKey,
  checkExpectations,
  compareOutcomes,
  Limiter,
  loadPrograms,
  PROCESS_LIMIT,
  qemuRunner,
  requestFor,
  runGuest,
  runLabel,
} from "./harness.ts";

const RUN_TIMEOUT_MS = 60_000;

const missing = toolchainMissing();
const programs = await loadPrograms();
const limiter = new Limiter(PROCESS_LIMIT);
let scratch = "";
let builds = new Map<string, Build>();

describe.skipIf(missing !== undefined)(
  `guest programs under qemu-ppc64le${missing ? ` (skipped: ${missing})` : ""}`,
  () => {
    beforeAll(async () => {
      scratch = await Deno.makeTempDir({ prefix: "astra-guest-reference-" });
      builds = await buildAll(programs, `${scratch}/bin`, limiter);
    }, 300_000);

    afterAll(async () => {
      if (scratch) await Deno.remove(scratch, { recursive: true });
    });

    test("there are at least 30 programs, some built at -O3 -mcpu=power9", () => {
      expect(programs.length).toBeGreaterThanOrEqual(30);
      expect(programs.filter((p) => p.levels.includes("O3-power9")).length).toBeGreaterThan(0);
    });

    for (const program of programs) {
      for (const level of program.levels) {
        for (const run of program.runs) {
          test.concurrent(runLabel(program, level, run), async () => {
            const build = builds.get(buildKey(program.name, level))!;
            expect(build.error, "the build failed").toBeUndefined();
            const request = requestFor(build, run, RUN_TIMEOUT_MS);
            const [first, second] = await Promise.all([
              runGuest(qemuRunner, request, scratch, limiter),
              runGuest(qemuRunner, request, scratch, limiter),
            ]);
            expect(checkExpectations(run, first), "what the program states about itself").toEqual([]);
            expect(compareOutcomes(first, { ...second, runner: "qemu again" }), "two runs differ").toEqual(
              [],
            );
          }, 2 * RUN_TIMEOUT_MS);
        }
      }
    }
  },
);

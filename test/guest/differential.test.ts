// The guest programs on AstraLisp OS against qemu-ppc64le: every program at every level it states,
// every run, once on each; stdout, stderr, exit status and the files left behind must be identical.
// The same runs go through the embedded transport and, one level per program, through gRPC.
// Until `./astra run` exists this skips with the CLI's own answer as the reason; once it exists,
// nothing but a missing toolchain (only outside CI) makes it skip.

import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { toolchainMissing } from "../requirements.ts";
import {
  astraRunMissing,
  astraRunner,
  type Build,
  buildAll,
  buildKey,
  compareOutcomes,
  type GuestProgram,
  Limiter,
  loadPrograms,
  type OptLevel,
  PROCESS_LIMIT,
  qemuRunner,
  requestFor,
  runGuest,
  type Transport,
} from "./harness.ts";

// An emulated CPU is many times slower than qemu's translator, and each run boots the system.
const RUN_TIMEOUT_MS = 240_000;
// Over gRPC every page fault is several unary calls between processes (vmm asks pmm for a frame
// and the machine to zero it and write the HPTE): malloc_stress touches tens of thousands of pages.
const GRPC_RUN_TIMEOUT_MS = 900_000;

const timeoutFor = (transport: Transport) => transport === "grpc" ? GRPC_RUN_TIMEOUT_MS : RUN_TIMEOUT_MS;

const missing = toolchainMissing() ?? await astraRunMissing();
const programs = await loadPrograms();
const limiter = new Limiter(PROCESS_LIMIT);
let scratch = "";
let builds = new Map<string, Build>();

/** The level a program's gRPC runs use: its most optimised one, where the most unusual code is. */
function grpcLevel(program: GuestProgram): OptLevel {
  return program.levels.at(-1)!;
}

/** Runs every run of one build on qemu and on AstraLisp OS; reports the differences of each run. */
async function expectSameAsQemu(program: GuestProgram, level: OptLevel, transport: Transport) {
  const build = builds.get(buildKey(program.name, level))!;
  expect(build.error, "the build failed").toBeUndefined();
  const differences: Record<string, string[]> = {};
  for (const run of program.runs) {
    const request = requestFor(build, run, timeoutFor(transport));
    const [reference, astra] = await Promise.all([
      runGuest(qemuRunner, request, scratch, limiter),
      runGuest(astraRunner(transport), request, scratch, limiter),
    ]);
    const found = compareOutcomes(reference, astra);
    if (found.length) differences[run.name] = found;
  }
  expect(differences, "differences from qemu-ppc64le, by run").toEqual({});
}

describe.skipIf(missing !== undefined)(
  `guest programs on AstraLisp OS against qemu-ppc64le${missing ? ` (skipped: ${missing})` : ""}`,
  () => {
    beforeAll(async () => {
      scratch = await Deno.makeTempDir({ prefix: "astra-guest-differential-" });
      builds = await buildAll(programs, `${scratch}/bin`, limiter);
    }, 300_000);

    afterAll(async () => {
      if (scratch) await Deno.remove(scratch, { recursive: true });
    });

    describe("embedded transport", () => {
      for (const program of programs) {
        for (const level of program.levels) {
          test.concurrent(
            `${program.name} -${level}`,
            () => expectSameAsQemu(program, level, "embedded"),
            program.runs.length * RUN_TIMEOUT_MS,
          );
        }
      }
    });

    describe("gRPC transport", () => {
      for (const program of programs) {
        const level = grpcLevel(program);
        test.concurrent(
          `${program.name} -${level}`,
          () => expectSameAsQemu(program, level, "grpc"),
          program.runs.length * GRPC_RUN_TIMEOUT_MS,
        );
      }
    });
  },
);

// The differential harness itself: program headers, comparisons and their messages, the limiter,
// directory snapshots, and both sides of the `./astra run` contract — the probe that decides
// whether the differential tests skip, and the command line the AstraLisp runner composes,
// checked end to end through a stand-in for `./astra run` built on qemu-ppc64le.

import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { toolchainMissing } from "../requirements.ts";
import {
  astraRunMissing,
  astraRunner,
  buildAll,
  checkExpectations,
  compareOutcomes,
  describeStreamDifference,
  type FileEntry,
  findExecutable,
  type GuestRun,
  Limiter,
  loadPrograms,
  parseProgram,
  qemuRunner,
  requestFor,
  runGuest,
  type Runner,
  type RunOutcome,
  type RunRequest,
  snapshot,
} from "./harness.ts";

const encode = (text: string) => new TextEncoder().encode(text);

function outcome(fields: Partial<RunOutcome> = {}): RunOutcome {
  return {
    runner: "qemu",
    stdout: encode("ok 1\n"),
    stderr: new Uint8Array(),
    status: 0,
    timedOut: false,
    heldOpen: false,
    files: [],
    ...fields,
  };
}

const RUN: GuestRun = { name: "default", args: [], env: {}, stdin: "", exit: 0 };

describe("program headers", () => {
  test("a program without directives is built at -O0 and -O2 and run once, plainly", () => {
    const program = parseProgram("plain", "/src/plain.c", "int main(void) { return 0; }\n");
    expect(program.levels).toEqual(["O0", "O2"]);
    expect(program.cflags).toEqual([]);
    expect(program.runs).toEqual([RUN]);
  });

  test("directives give levels, flags and runs", () => {
    const program = parseProgram(
      "p",
      "/src/p.c",
      [
        "// guest-levels: O0 O2 O3-power9",
        "// guest-cflags: -frounding-math -DX=1",
        '// guest-run: {"name": "a", "args": ["x", "y z"], "env": {"K": "v"}, "stdin": "in\\n", "exit": 3}',
        '// guest-run: {"name": "b"}',
        "int main(void) { return 0; }",
      ].join("\n"),
    );
    expect(program.levels).toEqual(["O0", "O2", "O3-power9"]);
    expect(program.cflags).toEqual(["-frounding-math", "-DX=1"]);
    expect(program.runs).toEqual([
      { name: "a", args: ["x", "y z"], env: { K: "v" }, stdin: "in\n", exit: 3 },
      { ...RUN, name: "b" },
    ]);
  });

  test.each([
    ["// guest-levels: O1", /unknown level O1/],
    ["// guest-stdin: x", /unknown directive guest-stdin/],
    ["// guest-run: {args: []}", /not JSON/],
    ["// guest-run: []", /must be a JSON object/],
    ['// guest-run: {"argv": []}', /unknown key "argv"/],
    ['// guest-run: {"args": "x"}', /args must be an array of strings/],
    ['// guest-run: {"env": {"K": 1}}', /env must map names to strings/],
    ['// guest-run: {"exit": 256}', /exit must be a status 0..255/],
    ['// guest-run: {"name": "two words"}', /run name must be a word/],
    ['// guest-run: {}\n// guest-run: {"stdin": "x"}', /two runs share a name/],
  ])("%s is refused", (header, message) => {
    expect(() => parseProgram("bad", "/src/bad.c", header)).toThrow(message);
  });

  test("every program in programs/ parses, and there are at least 30", async () => {
    const programs = await loadPrograms();
    expect(programs.length).toBeGreaterThanOrEqual(30);
    expect(programs.map((p) => p.name)).toEqual([...programs.map((p) => p.name)].sort());
  });
});

describe("comparing runs", () => {
  test("identical runs have no differences", () => {
    expect(compareOutcomes(outcome(), outcome({ runner: "astra" }))).toEqual([]);
  });

  test("a different line of output is reported with its number and both versions", () => {
    const difference = describeStreamDifference(
      "stdout",
      encode("one\ntwo\nthree\n"),
      encode("one\ntwo\nthr33\n"),
      ["qemu", "astra"],
    );
    expect(difference).toBe(
      'stdout: qemu wrote 14 bytes, astra 14; first difference at byte 11, line 3:\n  qemu: "three"\n  astra: "thr33"',
    );
  });

  test("a difference in the very first byte is on line 1", () => {
    expect(describeStreamDifference("stderr", encode("a\nb\n"), encode("x\nb\n"), ["qemu", "astra"]))
      .toContain(
        'first difference at byte 0, line 1:\n  qemu: "a"\n  astra: "x"',
      );
  });

  test("output that stops early says where and what is missing", () => {
    expect(describeStreamDifference("stdout", encode("one\ntwo\n"), encode("one\n"), ["qemu", "astra"])).toBe(
      'stdout: qemu wrote 8 bytes, astra 4; astra stops at byte 4 (line 2), qemu goes on with "two\\n"',
    );
    expect(describeStreamDifference("stdout", encode("one\n"), encode("one\nextra"), ["qemu", "astra"])).toBe(
      'stdout: qemu wrote 4 bytes, astra 9; qemu stops at byte 4 (line 2), astra goes on with "extra"',
    );
  });

  test("status, streams, files and timeouts are all compared", () => {
    const file = (path: string, digest: string, size = 1): FileEntry => ({
      path,
      kind: "file",
      size,
      digest,
    });
    const differences = compareOutcomes(
      outcome({ files: [file("kept", "aa"), file("changed", "bb"), file("gone", "cc")] }),
      outcome({
        runner: "astra",
        status: 139,
        stderr: encode("segfault\n"),
        timedOut: true,
        files: [file("kept", "aa"), file("changed", "dd", 2), {
          path: "new",
          kind: "directory",
          size: 0,
          digest: "",
        }],
      }),
    );
    expect(differences).toEqual([
      "astra timed out and was killed",
      "exit status: qemu 0, astra 139",
      'stderr: qemu wrote 0 bytes, astra 9; qemu stops at byte 0 (line 1), astra goes on with "segfault\\n"',
      "files: changed is a file of 1 bytes (sha256 bb…) after qemu, a file of 2 bytes (sha256 dd…) after astra",
      "files: gone is a file of 1 bytes (sha256 cc…) after qemu, missing after astra",
      "files: new is missing after qemu, a directory after astra",
    ]);
  });
});

describe("what a program states about itself", () => {
  test("a final ok line and the stated status pass", () => {
    expect(checkExpectations(RUN, outcome({ stdout: encode("results\nok 12\n") }))).toEqual([]);
    expect(checkExpectations({ ...RUN, exit: 42 }, outcome({ status: 42, stdout: encode("ok 1") }))).toEqual(
      [],
    );
  });

  test("a failed self-check, a wrong status or a missing ok line is reported with stderr", () => {
    const problems = checkExpectations(
      RUN,
      outcome({
        status: 1,
        stdout: encode("FAILED 1 of 3 checks\n"),
        stderr: encode("x.c:3: check failed\n"),
      }),
    );
    expect(problems).toEqual([
      "exit status 1, the program states 0",
      'the last line of stdout is "FAILED 1 of 3 checks", not "ok N"',
      "stderr:\nx.c:3: check failed",
    ]);
    expect(checkExpectations(RUN, outcome({ stdout: encode("ok 0\n") }))).toHaveLength(1);
  });
});

describe("the limiter", () => {
  test("runs every task, never more than its limit at once", async () => {
    const limiter = new Limiter(2);
    let active = 0, peak = 0;
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        limiter.run(async () => {
          peak = Math.max(peak, ++active);
          await new Promise((resolve) => setTimeout(resolve, 5));
          active--;
          return i;
        })),
    );
    expect(results).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(peak).toBe(2);
  });

  test("a failing task releases its place", async () => {
    const limiter = new Limiter(1);
    await expect(limiter.run(() => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
    expect(await limiter.run(() => Promise.resolve("next"))).toBe("next");
  });
});

describe("snapshots of a working directory", () => {
  let dir = "";
  beforeAll(async () => {
    dir = await Deno.makeTempDir({ prefix: "astra-guest-snapshot-" });
  });
  afterAll(async () => {
    await Deno.remove(dir, { recursive: true });
  });

  test("list files with their digests, directories and symlinks, sorted, without the program", async () => {
    await Deno.writeTextFile(`${dir}/program`, "binary");
    await Deno.mkdir(`${dir}/sub/deeper`, { recursive: true });
    await Deno.writeTextFile(`${dir}/sub/abc.txt`, "abc");
    await Deno.writeFile(`${dir}/empty`, new Uint8Array());
    await Deno.symlink("sub/abc.txt", `${dir}/link`);
    expect(await snapshot(dir, ["program"])).toEqual([
      {
        path: "empty",
        kind: "file",
        size: 0,
        digest: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
      },
      { path: "link", kind: "symlink", size: 11, digest: "sub/abc.txt" },
      { path: "sub", kind: "directory", size: 0, digest: "" },
      {
        path: "sub/abc.txt",
        kind: "file",
        size: 3,
        digest: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
      },
      { path: "sub/deeper", kind: "directory", size: 0, digest: "" },
    ]);
  });
});

describe("running in a fresh directory", () => {
  let dir = "";
  beforeAll(async () => {
    dir = await Deno.makeTempDir({ prefix: "astra-guest-run-" });
    await Deno.writeTextFile(`${dir}/program`, "not really a program");
  });
  afterAll(async () => {
    await Deno.remove(dir, { recursive: true });
  });

  /** A runner that runs a shell script in place of the program, with the request's arguments. */
  const shell = (script: string): Runner => ({
    name: "sh",
    commandLine: (request) => ({ command: "sh", args: ["-c", script, "sh", ...request.args] }),
  });

  const request = (fields: Partial<RunRequest> = {}): RunRequest => ({
    binary: `${dir}/program`,
    name: "program",
    args: [],
    env: {},
    stdin: "",
    timeoutMs: 10_000,
    ...fields,
  });

  test("feeds stdin, seeds files, and captures output, status and the files left behind", async () => {
    const result = await runGuest(
      shell('cat > copy.txt; cat seed/in.txt; echo "$1" >&2; rm seed/in.txt; exit 3'),
      request({ args: ["to stderr"], stdin: "from stdin", files: { "seed/in.txt": "seeded\n" } }),
      dir,
    );
    expect(new TextDecoder().decode(result.stdout)).toBe("seeded\n");
    expect(new TextDecoder().decode(result.stderr)).toBe("to stderr\n");
    expect(result.status).toBe(3);
    expect(result.timedOut).toBe(false);
    expect(result.files.map((f) => [f.path, f.kind, f.size])).toEqual([
      ["copy.txt", "file", 10],
      ["seed", "directory", 0],
    ]);
    expect([...Deno.readDirSync(dir)].map((e) => e.name)).toEqual(["program"]);
  });

  test("a guest that ignores its input is no error", async () => {
    const result = await runGuest(shell("exit 0"), request({ stdin: "x".repeat(1 << 20) }), dir);
    expect(result.status).toBe(0);
  });

  test("a run past its time is killed and says so", async () => {
    const result = await runGuest(shell("exec sleep 30"), request({ timeoutMs: 200 }), dir);
    expect(result.timedOut).toBe(true);
    expect(result.heldOpen).toBe(false);
    expect(result.status).toBe(128 + 15);
  });

  test("a process left holding the output open does not hold up the run, and is reported", async () => {
    const started = performance.now();
    const result = await runGuest(shell("echo started; sleep 5 & exit 0"), request(), dir);
    expect(performance.now() - started).toBeLessThan(10_000);
    expect(new TextDecoder().decode(result.stdout)).toBe("started\n");
    expect(result.status).toBe(0);
    expect(result.heldOpen).toBe(true);
    expect(compareOutcomes(outcome(), { ...result, stdout: encode("ok 1\n"), runner: "sh" })).toEqual([
      "sh exited while a process it started still held its standard streams open",
    ]);
  });
});

describe("the ./astra run probe", () => {
  let dir = "";
  beforeAll(async () => {
    dir = await Deno.makeTempDir({ prefix: "astra-guest-probe-" });
  });
  afterAll(async () => {
    await Deno.remove(dir, { recursive: true });
  });

  async function fakeAstra(name: string, script: string): Promise<string> {
    const path = `${dir}/${name}`;
    await Deno.writeTextFile(path, `#!/bin/sh\n${script}\n`);
    await Deno.chmod(path, 0o755);
    return path;
  }

  test("skips only when the CLI does not know the command", async () => {
    const unknown = await fakeAstra("unknown", `echo 'unknown command "run"' >&2; echo usage >&2; exit 2`);
    expect(await astraRunMissing(unknown)).toBe(
      './astra run is not implemented yet (./astra says: unknown command "run")',
    );
  });

  test.each([
    ["usage", "echo 'usage: ./astra run [--root DIR] PROGRAM [ARGS...]' >&2; exit 2"],
    ["crash", "echo 'Segmentation fault' >&2; exit 139"],
    ["success", "exit 0"],
  ])("does not skip when the command exists (%s)", async (name, script) => {
    expect(await astraRunMissing(await fakeAstra(name, script))).toBeUndefined();
  });
});

// A stand-in for `./astra run` that implements its documented command line on top of qemu-ppc64le:
// if the harness composes that command line correctly, the stand-in's runs equal qemu's own.
// QEMU_PATH is defined in front of it when it is written out.
const STAND_IN = `
const args = Deno.args.slice(1);
let root = Deno.cwd();
const env: Record<string, string> = {};
let clear = false;
while (args[0]?.startsWith("--")) {
  const flag = args.shift()!;
  if (flag === "--root") root = args.shift()!;
  else if (flag === "--transport") args.shift();
  else if (flag === "--clear-env") clear = true;
  else if (flag === "--env") {
    const pair = args.shift()!;
    env[pair.slice(0, pair.indexOf("="))] = pair.slice(pair.indexOf("=") + 1);
  } else Deno.exit(2);
}
const [program, ...rest] = args;
const status = await new Deno.Command(QEMU_PATH, {
  args: [program, ...rest],
  cwd: root,
  clearEnv: clear,
  env,
}).spawn().status;
Deno.exit(status.code);
`;

const missing = toolchainMissing();

describe.skipIf(missing !== undefined)(
  `the AstraLisp runner's command line, through a stand-in on qemu-ppc64le${
    missing ? ` (skipped: ${missing})` : ""
  }`,
  () => {
    let dir = "";
    beforeAll(async () => {
      dir = await Deno.makeTempDir({ prefix: "astra-guest-stand-in-" });
      const qemu = JSON.stringify(findExecutable("qemu-ppc64le"));
      await Deno.writeTextFile(`${dir}/stand-in.ts`, `const QEMU_PATH = ${qemu};\n${STAND_IN}`);
      await Deno.writeTextFile(
        `${dir}/astra`,
        `#!/bin/sh\nexec '${Deno.execPath()}' run --quiet --allow-all '${dir}/stand-in.ts' "$@"\n`,
      );
      await Deno.chmod(`${dir}/astra`, 0o755);
    });
    afterAll(async () => {
      await Deno.remove(dir, { recursive: true });
    });

    test("arguments, environment, stdin, status and files arrive intact", async () => {
      const programs = (await loadPrograms()).filter((p) =>
        ["argv_envp", "exit_codes", "files"].includes(p.name)
      );
      const limiter = new Limiter(2);
      const builds = await buildAll(programs.map((p) => ({ ...p, levels: ["O2"] })), `${dir}/bin`, limiter);
      for (const build of builds.values()) {
        expect(build.error).toBeUndefined();
        for (const run of build.program.runs) {
          const request = requestFor(build, run, 60_000);
          const [reference, standIn] = await Promise.all([
            runGuest(qemuRunner, request, dir, limiter),
            runGuest(astraRunner("embedded", `${dir}/astra`), request, dir, limiter),
          ]);
          expect(compareOutcomes(reference, standIn), `${build.program.name} ${run.name}`).toEqual([]);
          expect(checkExpectations(run, standIn)).toEqual([]);
        }
      }
    }, 120_000);
  },
);

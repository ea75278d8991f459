// The differential harness for guest programs: builds the C programs in programs/ with the
// ppc64le cross compiler, runs a built binary under a runner — qemu-ppc64le (the reference) or
// AstraLisp OS through `./astra run` — in a fresh working directory, and captures what the run
// did: stdout, stderr, exit status and the files left behind. Comparisons report each difference
// precisely enough to start debugging from the message alone.

import { fileURLToPath } from "node:url";

export const REPO = fileURLToPath(new URL("../..", import.meta.url)).replace(/\/$/, "");
export const PROGRAMS_DIR = fileURLToPath(new URL("programs", import.meta.url)).replace(/\/$/, "");
export const COMPILER = "powerpc64le-linux-gnu-gcc";
export const QEMU = "qemu-ppc64le";

export const OPT_LEVELS = ["O0", "O2", "O3-power9"] as const;
export type OptLevel = typeof OPT_LEVELS[number];

const OPT_FLAGS: Record<OptLevel, string[]> = {
  "O0": ["-O0"],
  "O2": ["-O2"],
  "O3-power9": ["-O3", "-mcpu=power9"],
};
const DEFAULT_LEVELS: OptLevel[] = ["O0", "O2"];
const COMMON_FLAGS = ["-static", "-std=gnu17", "-Wall", "-Werror", "-g0"];

// --- programs and what they state about themselves ----------------------------------------------

/** One run of a guest program: its arguments, environment, standard input and the exit status it must end with. */
export interface GuestRun {
  name: string;
  args: string[];
  env: Record<string, string>;
  stdin: string;
  exit: number;
}

export interface GuestProgram {
  name: string;
  source: string;
  levels: OptLevel[];
  cflags: string[];
  runs: GuestRun[];
}

const RUN_KEYS = new Set(["name", "args", "env", "stdin", "exit"]);

function parseRun(program: string, json: string): GuestRun {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (e) {
    throw new Error(`${program}: guest-run is not JSON (${(e as Error).message}): ${json}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error(`${program}: guest-run must be a JSON object: ${json}`);
  }
  const fields = value as Record<string, unknown>;
  for (const key of Object.keys(fields)) {
    if (!RUN_KEYS.has(key)) throw new Error(`${program}: guest-run has an unknown key "${key}"`);
  }
  const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === "string");
  const isStringMap = (v: unknown): v is Record<string, string> =>
    typeof v === "object" && v !== null && !Array.isArray(v) &&
    Object.values(v).every((s) => typeof s === "string");
  const { name = "default", args = [], env = {}, stdin = "", exit = 0 } = fields;
  if (typeof name !== "string" || !/^[\w.-]+$/.test(name)) {
    throw new Error(`${program}: run name must be a word: ${JSON.stringify(name)}`);
  }
  if (!isStrings(args)) throw new Error(`${program}: args must be an array of strings`);
  if (!isStringMap(env)) throw new Error(`${program}: env must map names to strings`);
  if (typeof stdin !== "string") throw new Error(`${program}: stdin must be a string`);
  if (typeof exit !== "number" || !Number.isInteger(exit) || exit < 0 || exit > 255) {
    throw new Error(`${program}: exit must be a status 0..255`);
  }
  return { name, args, env, stdin, exit };
}

/**
 * Reads the `// guest-...:` lines of a program's source:
 * - `// guest-levels: O0 O2 O3-power9` — the optimisation levels it is built at (default O0 O2);
 * - `// guest-cflags: -frounding-math` — extra compiler flags;
 * - `// guest-run: {"name", "args", "env", "stdin", "exit"}` — one run each (default: one run with no
 *   arguments, an empty environment and stdin, exit status 0).
 */
export function parseProgram(name: string, source: string, text: string): GuestProgram {
  let levels = DEFAULT_LEVELS;
  let cflags: string[] = [];
  const runs: GuestRun[] = [];
  for (const line of text.split("\n")) {
    const match = /^\/\/ guest-([a-z]+):\s*(.*)$/.exec(line);
    if (!match) continue;
    const [, directive, rest] = match;
    if (directive === "levels") {
      const named = rest.trim().split(/\s+/);
      for (const level of named) {
        if (!(OPT_LEVELS as readonly string[]).includes(level)) {
          throw new Error(`${name}: unknown level ${level} (known: ${OPT_LEVELS.join(", ")})`);
        }
      }
      levels = named as OptLevel[];
    } else if (directive === "cflags") {
      cflags = rest.trim().split(/\s+/);
    } else if (directive === "run") {
      runs.push(parseRun(name, rest));
    } else {
      throw new Error(`${name}: unknown directive guest-${directive}`);
    }
  }
  if (runs.length === 0) runs.push(parseRun(name, "{}"));
  const names = runs.map((r) => r.name);
  if (new Set(names).size !== names.length) {
    throw new Error(`${name}: two runs share a name (${names.join(", ")})`);
  }
  return { name, source, levels, cflags, runs };
}

/** Every program in programs/, sorted by name. */
export async function loadPrograms(dir = PROGRAMS_DIR): Promise<GuestProgram[]> {
  const programs: GuestProgram[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.isFile || !entry.name.endsWith(".c")) continue;
    const source = `${dir}/${entry.name}`;
    programs.push(parseProgram(entry.name.slice(0, -2), source, await Deno.readTextFile(source)));
  }
  return programs.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

// --- bounded parallelism ------------------------------------------------------------------------

/** Runs at most `limit` tasks at a time; the others wait their turn in order. */
export class Limiter {
  #active = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(readonly limit: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#active < this.limit) this.#active++;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    try {
      return await task();
    } finally {
      // A finishing task hands its place straight to the next in line, so no newcomer can slip in between.
      const next = this.#waiting.shift();
      if (next) next();
      else this.#active--;
    }
  }
}

/** Processes at a time per test file: the machines these tests run on have two shared cores. */
export const PROCESS_LIMIT = 2;

// --- building -----------------------------------------------------------------------------------

export interface Build {
  program: GuestProgram;
  level: OptLevel;
  /** Host path of the static ppc64le executable. */
  binary: string;
  /** The compiler's complaint when the build failed. */
  error?: string;
}

export function buildKey(program: string, level: OptLevel): string {
  return `${program}-${level}`;
}

async function build(program: GuestProgram, level: OptLevel, outDir: string): Promise<Build> {
  const binary = `${outDir}/${buildKey(program.name, level)}`;
  const args = [...COMMON_FLAGS, ...OPT_FLAGS[level], ...program.cflags, "-o", binary, program.source, "-lm"];
  const out = await new Deno.Command(COMPILER, { args, stdout: "piped", stderr: "piped" }).output();
  if (out.success) return { program, level, binary };
  const complaint = new TextDecoder().decode(out.stderr).trim() || `exit status ${out.code}`;
  return { program, level, binary, error: `${COMPILER} ${args.join(" ")}\n${complaint}` };
}

/** Builds every program at each of its levels into outDir, `limiter` bounding the compilers at work. */
export async function buildAll(
  programs: GuestProgram[],
  outDir: string,
  limiter: Limiter,
): Promise<Map<string, Build>> {
  await Deno.mkdir(outDir, { recursive: true });
  const builds = await Promise.all(
    programs.flatMap((program) =>
      program.levels.map((level) => limiter.run(() => build(program, level, outDir)))
    ),
  );
  return new Map(builds.map((b) => [buildKey(b.program.name, b.level), b]));
}

// --- running ------------------------------------------------------------------------------------

export interface RunRequest {
  /** Host path of the executable; it is copied into the working directory. */
  binary: string;
  /** Its name there: the guest runs `./name`. */
  name: string;
  args: string[];
  env: Record<string, string>;
  stdin: string | Uint8Array;
  /** Files to create in the working directory first (path relative to it → contents). */
  files?: Record<string, string | Uint8Array>;
  timeoutMs: number;
}

export interface FileEntry {
  /** Relative to the working directory, with "/" separators. */
  path: string;
  kind: "file" | "directory" | "symlink" | "other";
  size: number;
  /** sha256 of a file's contents, or a symlink's target; empty for directories. */
  digest: string;
}

export interface RunOutcome {
  runner: string;
  stdout: Uint8Array;
  stderr: Uint8Array;
  /** The exit status, 128 + N for a process killed by signal N. */
  status: number;
  timedOut: boolean;
  /** A process it started still held stdin, stdout or stderr open after it exited. */
  heldOpen: boolean;
  /** Everything in the working directory afterwards except the program itself, sorted by path. */
  files: FileEntry[];
}

export interface CommandLine {
  command: string;
  args: string[];
  /** The launcher's own environment; undefined inherits the caller's. */
  env?: Record<string, string>;
  clearEnv?: boolean;
}

export interface Runner {
  readonly name: string;
  commandLine(request: RunRequest, workDir: string): CommandLine;
}

/**
 * The absolute path of a command found on the caller's PATH. A child given its own PATH is looked
 * up on that one instead, and a guest's PATH says nothing about where qemu is.
 */
export function findExecutable(name: string): string {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (!dir) continue;
    try {
      const info = Deno.statSync(`${dir}/${name}`);
      if (info.isFile && (info.mode ?? 0) & 0o111) return `${dir}/${name}`;
    } catch {
      // Not in this directory.
    }
  }
  throw new Error(`${name} is not on PATH`);
}

/**
 * qemu-ppc64le, the reference. Its guest sees qemu's own environment, so qemu is started with
 * exactly the run's environment and nothing else.
 */
export const qemuRunner: Runner = {
  name: "qemu",
  commandLine: (request) => ({
    command: findExecutable(QEMU),
    args: [`./${request.name}`, ...request.args],
    env: request.env,
    clearEnv: true,
  }),
};

export type Transport = "embedded" | "grpc";

/** The repository's entry point, which `./astra run` is a command of. */
export const ASTRA = `${REPO}/astra`;

/**
 * AstraLisp OS: `./astra run --root DIR --transport T --clear-env --env K=V... ./NAME ARGS`. Several
 * runs may be under way at once (test files run in parallel), so `./astra run` must not rely on
 * fixed ports or other machine-wide resources.
 */
export function astraRunner(transport: Transport, executable = ASTRA): Runner {
  return {
    name: transport === "embedded" ? "astra" : `astra-${transport}`,
    commandLine: (request, workDir) => ({
      command: executable,
      args: [
        "run",
        "--root",
        workDir,
        "--transport",
        transport,
        "--clear-env",
        ...Object.entries(request.env).flatMap(([k, v]) => ["--env", `${k}=${v}`]),
        `./${request.name}`,
        ...request.args,
      ],
    }),
  };
}

async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Everything under dir, recursively, except the entries named in `exclude` at its top. */
export async function snapshot(dir: string, exclude: string[] = []): Promise<FileEntry[]> {
  const entries: FileEntry[] = [];
  const walk = async (relative: string) => {
    for await (const entry of Deno.readDir(relative ? `${dir}/${relative}` : dir)) {
      if (!relative && exclude.includes(entry.name)) continue;
      const path = relative ? `${relative}/${entry.name}` : entry.name;
      const full = `${dir}/${path}`;
      const info = await Deno.lstat(full);
      if (info.isSymlink) {
        entries.push({ path, kind: "symlink", size: info.size, digest: await Deno.readLink(full) });
      } else if (info.isDirectory) {
        entries.push({ path, kind: "directory", size: 0, digest: "" });
        await walk(path);
      } else if (info.isFile) {
        entries.push({
          path,
          kind: "file",
          size: info.size,
          digest: await sha256(await Deno.readFile(full)),
        });
      } else {
        entries.push({ path, kind: "other", size: 0, digest: "" });
      }
    }
  };
  await walk("");
  return entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** Sends a signal to a child that may have ended on its own in the meantime. */
function killQuietly(child: Deno.ChildProcess, signal: Deno.Signal): void {
  try {
    child.kill(signal);
  } catch {
    // Already ended: nothing left to stop.
  }
}

/** Time a process gets to stop after SIGTERM before it is killed outright. */
const KILL_GRACE_MS = 5_000;

/** Time the pipes get to deliver what an exited process wrote before they are abandoned. */
const DRAIN_MS = 2_000;

/** Resolves after `ms`, or never once cancelled (so that no timer outlives its use). */
function delay(ms: number): { elapsed: Promise<void>; cancel: () => void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const elapsed = new Promise<void>((resolve) => timer = setTimeout(resolve, ms));
  return { elapsed, cancel: () => clearTimeout(timer) };
}

/** Reads a stream to its end, or until cancelled. */
function collect(stream: ReadableStream<Uint8Array>) {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  const ended = (async () => {
    for (let read = await reader.read(); !read.done; read = await reader.read()) chunks.push(read.value);
  })().catch(() => {
    // Cancelled: what was read so far is all there is.
  });
  return {
    ended,
    cancel: () => reader.cancel(),
    bytes: () => {
      const bytes = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
      let offset = 0;
      for (const chunk of chunks) {
        bytes.set(chunk, offset);
        offset += chunk.length;
      }
      return bytes;
    },
  };
}

type Execution = Pick<RunOutcome, "stdout" | "stderr" | "status" | "timedOut" | "heldOpen">;

/**
 * Runs a command line with the request's stdin and deadline. Waits for the process itself, not for
 * its pipes: a process it started may keep them open after it exits, which is reported instead.
 */
async function execute(line: CommandLine, workDir: string, request: RunRequest): Promise<Execution> {
  const child = new Deno.Command(line.command, {
    args: line.args,
    cwd: workDir,
    env: line.env,
    clearEnv: line.clearEnv,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdout = collect(child.stdout), stderr = collect(child.stderr);
  const writer = child.stdin.getWriter();
  const input = typeof request.stdin === "string" ? new TextEncoder().encode(request.stdin) : request.stdin;
  const feeding = writer.write(input).then(() => writer.close()).catch(() => {
    // The guest ended without reading all of its input: that is its business, not an error.
  });
  let timedOut = false;
  let killer: ReturnType<typeof setTimeout> | undefined;
  const deadline = setTimeout(() => {
    timedOut = true;
    killQuietly(child, "SIGTERM");
    killer = setTimeout(() => killQuietly(child, "SIGKILL"), KILL_GRACE_MS);
  }, request.timeoutMs);
  const status = await child.status;
  clearTimeout(deadline);
  clearTimeout(killer);
  const grace = delay(DRAIN_MS);
  const heldOpen = await Promise.race([
    Promise.all([stdout.ended, stderr.ended, feeding]).then(() => false),
    grace.elapsed.then(() => true),
  ]);
  grace.cancel();
  if (heldOpen) {
    await Promise.all([stdout.cancel(), stderr.cancel(), writer.abort().catch(() => {})]);
  }
  return { stdout: stdout.bytes(), stderr: stderr.bytes(), status: status.code, timedOut, heldOpen };
}

/**
 * Runs one request under a runner in a fresh directory made inside `scratch`, and removes that
 * directory afterwards. The limiter, when given, bounds how many runs are under way at once.
 */
export async function runGuest(
  runner: Runner,
  request: RunRequest,
  scratch: string,
  limiter?: Limiter,
): Promise<RunOutcome> {
  const run = async (): Promise<RunOutcome> => {
    const workDir = await Deno.makeTempDir({ dir: scratch, prefix: `${runner.name}-${request.name}-` });
    try {
      await Deno.copyFile(request.binary, `${workDir}/${request.name}`);
      await Deno.chmod(`${workDir}/${request.name}`, 0o755);
      for (const [path, contents] of Object.entries(request.files ?? {})) {
        const target = `${workDir}/${path}`;
        await Deno.mkdir(target.slice(0, target.lastIndexOf("/")), { recursive: true });
        if (typeof contents === "string") await Deno.writeTextFile(target, contents);
        else await Deno.writeFile(target, contents);
      }
      const execution = await execute(runner.commandLine(request, workDir), workDir, request);
      return { runner: runner.name, ...execution, files: await snapshot(workDir, [request.name]) };
    } finally {
      await Deno.remove(workDir, { recursive: true });
    }
  };
  return limiter ? await limiter.run(run) : await run();
}

// --- comparing ----------------------------------------------------------------------------------

const decoder = new TextDecoder();
const EXCERPT = 160;

function excerpt(text: string): string {
  return JSON.stringify(text.length > EXCERPT ? `${text.slice(0, EXCERPT)}…` : text);
}

/** Where two byte streams first differ, as a line number and both versions of that line. */
export function describeStreamDifference(
  stream: string,
  expected: Uint8Array,
  actual: Uint8Array,
  names: [string, string],
): string | undefined {
  const length = Math.min(expected.length, actual.length);
  let at = 0;
  while (at < length && expected[at] === actual[at]) at++;
  if (at === expected.length && at === actual.length) return undefined;
  const lineStart = at === 0 ? 0 : expected.lastIndexOf(10, at - 1) + 1;
  const line = expected.subarray(0, lineStart).filter((b) => b === 10).length + 1;
  const lineOf = (bytes: Uint8Array) => {
    const end = bytes.indexOf(10, lineStart);
    return decoder.decode(bytes.subarray(lineStart, end === -1 ? bytes.length : end));
  };
  const [a, b] = names;
  const sizes = `${a} wrote ${expected.length} bytes, ${b} ${actual.length}`;
  if (at === expected.length || at === actual.length) {
    const [longer, longerName, shorterName] = at === expected.length ? [actual, b, a] : [expected, a, b];
    const rest = excerpt(decoder.decode(longer.subarray(at, at + EXCERPT)));
    return `${stream}: ${sizes}; ${shorterName} stops at byte ${at} (line ${line}), ${longerName} goes on with ${rest}`;
  }
  const mine = excerpt(lineOf(expected)), theirs = excerpt(lineOf(actual));
  return `${stream}: ${sizes}; first difference at byte ${at}, line ${line}:\n  ${a}: ${mine}\n  ${b}: ${theirs}`;
}

function describeEntry(entry: FileEntry): string {
  switch (entry.kind) {
    case "file":
      return `a file of ${entry.size} bytes (sha256 ${entry.digest.slice(0, 16)}…)`;
    case "symlink":
      return `a symlink to ${JSON.stringify(entry.digest)}`;
    default:
      return `a ${entry.kind}`;
  }
}

/** Differences between two runs of the same request, one message each; empty when they agree. */
export function compareOutcomes(expected: RunOutcome, actual: RunOutcome): string[] {
  const names: [string, string] = [expected.runner, actual.runner];
  const differences: string[] = [];
  for (const outcome of [expected, actual]) {
    if (outcome.timedOut) differences.push(`${outcome.runner} timed out and was killed`);
    if (outcome.heldOpen) {
      differences.push(
        `${outcome.runner} exited while a process it started still held its standard streams open`,
      );
    }
  }
  if (expected.status !== actual.status) {
    differences.push(`exit status: ${names[0]} ${expected.status}, ${names[1]} ${actual.status}`);
  }
  for (const stream of ["stdout", "stderr"] as const) {
    const difference = describeStreamDifference(stream, expected[stream], actual[stream], names);
    if (difference) differences.push(difference);
  }
  const after = (entry: FileEntry | undefined, runner: string) =>
    `${entry ? describeEntry(entry) : "missing"} after ${runner}`;
  const theirs = new Map(actual.files.map((f) => [f.path, f]));
  for (const mine of expected.files) {
    const other = theirs.get(mine.path);
    theirs.delete(mine.path);
    if (!other || mine.kind !== other.kind || mine.size !== other.size || mine.digest !== other.digest) {
      differences.push(`files: ${mine.path} is ${after(mine, names[0])}, ${after(other, names[1])}`);
    }
  }
  for (const extra of theirs.values()) {
    differences.push(`files: ${extra.path} is ${after(undefined, names[0])}, ${after(extra, names[1])}`);
  }
  return differences;
}

/**
 * What the program itself says about a run: the exit status its header states, and a last line of
 * stdout `ok N` (N checks passed) — a failed self-check ends with "FAILED" and status 1 instead.
 */
export function checkExpectations(run: GuestRun, outcome: RunOutcome): string[] {
  const problems: string[] = [];
  if (outcome.timedOut) problems.push(`${outcome.runner} timed out and was killed`);
  if (outcome.heldOpen) problems.push(`${outcome.runner} left a process holding its standard streams open`);
  if (outcome.status !== run.exit) {
    problems.push(`exit status ${outcome.status}, the program states ${run.exit}`);
  }
  const stdout = decoder.decode(outcome.stdout);
  const lines = stdout.split("\n");
  const last = lines.at(-1) === "" ? lines.at(-2) : lines.at(-1);
  const ok = last !== undefined && /^ok [1-9]\d*$/.test(last);
  if (!ok) problems.push(`the last line of stdout is ${excerpt(last ?? "")}, not "ok N"`);
  if (problems.length) {
    const stderr = decoder.decode(outcome.stderr).trim();
    if (stderr) problems.push(`stderr:\n${stderr.slice(0, 2000)}`);
  }
  return problems;
}

// --- is there an AstraLisp OS to run on? ----------------------------------------------------------

const PROBE_TIMEOUT_MS = 120_000;

/**
 * Why `./astra run` cannot be used yet (undefined when it can): only the CLI answering that it
 * does not know the command counts. Anything else — usage errors, crashes, hangs — means the
 * command exists, and the differential tests then run and report what they see.
 */
export async function astraRunMissing(executable = ASTRA): Promise<string | undefined> {
  const child = new Deno.Command(executable, {
    args: ["run"],
    cwd: REPO,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => killQuietly(child, "SIGKILL"), PROBE_TIMEOUT_MS);
  const out = await child.output();
  clearTimeout(timer);
  const stderr = decoder.decode(out.stderr);
  const unknown = /^unknown command "run"/m.exec(stderr);
  return unknown ? `./astra run is not implemented yet (./astra says: ${unknown[0]})` : undefined;
}

/** A test name for one run of one build. */
export function runLabel(program: GuestProgram, level: OptLevel, run: GuestRun): string {
  return program.runs.length > 1 ? `${program.name} -${level} ${run.name}` : `${program.name} -${level}`;
}

/** The request for one run of one build. */
export function requestFor(build: Build, run: GuestRun, timeoutMs: number): RunRequest {
  return {
    binary: build.binary,
    name: build.program.name,
    args: run.args,
    env: run.env,
    stdin: run.stdin,
    timeoutMs,
  };
}

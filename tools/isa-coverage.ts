// ISA coverage report: which instructions of real ppc64le programs the CPU's instruction table
// does not implement. objdump disassembles every executable section; each word objdump decodes is
// looked up in the decoder generated from services/machine/cpu/isa.ts.
//
//   deno run -A tools/isa-coverage.ts [--glibc] [--busybox] [--json] [ELF...]
//
// --glibc    builds a static glibc program with powerpc64le-linux-gnu-gcc (-O3 -mcpu=power9) and
//            reports on it;
// --busybox  fetches Debian's busybox-static for ppc64el with apt-get download into a temporary
//            folder (needs `dpkg --add-architecture ppc64el && apt-get update` done once);
// ELF...     any other static ppc64le executables.
// With no arguments, --glibc --busybox.

import { decodeOp } from "../services/machine/cpu/decode.ts";
import { formatInstruction } from "../services/machine/cpu/disassemble.ts";
import { executableSections, isRejected, OBJDUMP, objdumpAvailable, objdumpWords } from "./objdump.ts";

interface MnemonicUse {
  /** Words objdump decodes to this mnemonic. */
  count: number;
  /** Of those, words the instruction table does not decode. */
  missing: number;
  /** Of the decoded ones, words rendered differently from objdump. */
  renderedDifferently: number;
  /** Addresses of the first missing words, to look at. */
  examples: string[];
}

interface BinaryReport {
  /** What the binary is: its path, or how the tool obtained it. */
  binary: string;
  instructionWords: number;
  mnemonics: number;
  notImplemented: { mnemonic: string; count: number; examples: string[] }[];
  renderedDifferently: number;
}

const GLIBC_PROGRAM = `
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static int by_value(const void *x, const void *y) { return strcmp(*(char *const *)x, *(char *const *)y); }
int main(int argc, char **argv) {
  char line[512];
  qsort(argv, argc, sizeof *argv, by_value);
  snprintf(line, sizeof line, "%s %d %.17g %Lf %lld", argv[0], argc, sqrt(argc + 0.5), (long double)argc, (long long)time(0));
  double sum = 0;
  for (int i = 0; i < argc; i++) sum += strtod(argv[i], 0) * exp((double)i);
  printf("%s %zu %g %s\\n", line, strlen(line), sum, strstr(line, "1") ? "yes" : "no");
  return memcmp(line, argv[0], strlen(argv[0]));
}
`;

async function run(command: string, args: string[], cwd?: string): Promise<void> {
  const out = await new Deno.Command(command, { args, cwd, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${command} ${args.join(" ")} failed:\n${new TextDecoder().decode(out.stderr).trim()}`);
  }
}

async function buildGlibcProgram(dir: string): Promise<string> {
  const source = `${dir}/glibc-program.c`;
  const binary = `${dir}/glibc-program`;
  await Deno.writeTextFile(source, GLIBC_PROGRAM);
  await run("powerpc64le-linux-gnu-gcc", ["-static", "-O3", "-mcpu=power9", source, "-lm", "-o", binary]);
  return binary;
}

async function fetchBusybox(dir: string): Promise<string> {
  await run("apt-get", ["download", "busybox-static:ppc64el"], dir);
  const deb = [...Deno.readDirSync(dir)].find((e) =>
    e.name.startsWith("busybox-static") && e.name.endsWith(".deb")
  );
  if (!deb) throw new Error("apt-get download produced no busybox-static package");
  await run("dpkg", ["-x", `${dir}/${deb.name}`, `${dir}/busybox-root`]);
  return `${dir}/busybox-root/bin/busybox`;
}

async function report(binary: string, label: string): Promise<BinaryReport> {
  const uses = new Map<string, MnemonicUse>();
  let instructionWords = 0;
  let renderedDifferently = 0;
  for (const section of executableSections(await Deno.readFile(binary))) {
    const reference = await objdumpWords(section.words, section.address);
    for (let i = 0; i < section.words.length; i++) {
      if (isRejected(reference[i])) continue;
      instructionWords++;
      const mnemonic = reference[i].split(" ")[0];
      let use = uses.get(mnemonic);
      if (!use) uses.set(mnemonic, use = { count: 0, missing: 0, renderedDifferently: 0, examples: [] });
      use.count++;
      const address = section.address + BigInt(i * 4);
      if (decodeOp(section.words[i]) < 0) {
        use.missing++;
        if (use.examples.length < 3) use.examples.push(`0x${address.toString(16)}`);
      } else if (formatInstruction(section.words[i], address) !== reference[i]) {
        use.renderedDifferently++;
        renderedDifferently++;
      }
    }
  }
  const notImplemented = [...uses].filter(([, use]) => use.missing > 0)
    .map(([mnemonic, use]) => ({ mnemonic, count: use.missing, examples: use.examples }))
    .sort((a, b) => b.count - a.count);
  return { binary: label, instructionWords, mnemonics: uses.size, notImplemented, renderedDifferently };
}

function print(r: BinaryReport): void {
  console.log(
    `${r.binary}: ${r.instructionWords} instruction words, ${r.mnemonics} distinct objdump mnemonics`,
  );
  if (r.notImplemented.length === 0) console.log("  not implemented: none");
  for (const m of r.notImplemented) {
    console.log(`  not implemented: ${m.mnemonic} (${m.count} words, e.g. at ${m.examples.join(", ")})`);
  }
  if (r.renderedDifferently > 0) {
    console.log(`  rendered differently from objdump: ${r.renderedDifferently} words`);
  }
}

async function main(args: string[]): Promise<number> {
  if (!objdumpAvailable()) {
    console.error(`${OBJDUMP} is needed: apt-get install binutils-powerpc64le-linux-gnu`);
    return 2;
  }
  const json = args.includes("--json");
  const paths = args.filter((a) => !a.startsWith("--"));
  const unknown = args.filter((a) => a.startsWith("--") && !["--json", "--glibc", "--busybox"].includes(a));
  if (unknown.length > 0) {
    console.error(
      `unknown option ${unknown[0]}; usage: isa-coverage.ts [--glibc] [--busybox] [--json] [ELF...]`,
    );
    return 2;
  }
  const defaults = paths.length === 0 && !args.includes("--glibc") && !args.includes("--busybox");
  const dir = await Deno.makeTempDir({ prefix: "astra-isa-coverage-" });
  try {
    const binaries = paths.map((path) => ({ path, label: path }));
    if (defaults || args.includes("--glibc")) {
      binaries.push({
        path: await buildGlibcProgram(dir),
        label: "static glibc program (gcc -O3 -mcpu=power9)",
      });
    }
    if (defaults || args.includes("--busybox")) {
      binaries.push({ path: await fetchBusybox(dir), label: "Debian busybox-static (ppc64el)" });
    }
    const reports = [];
    for (const { path, label } of binaries) reports.push(await report(path, label));
    if (json) console.log(JSON.stringify(reports, null, 2));
    else reports.forEach(print);
    return 0;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));

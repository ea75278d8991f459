// `astra gen`: lint the contracts and regenerate gen/; `astra gen --check` fails when gen/ is not
// what the contracts produce (stale or hand-edited), without touching it.
import { fileURLToPath } from "node:url";

const REPO = fileURLToPath(new URL("..", import.meta.url));
const BUF = ["run", "-A", "npm:@bufbuild/buf@1.75.0"];

async function buf(args: string[], cwd = REPO): Promise<void> {
  const path = `${Deno.execPath().replace(/\/[^/]*$/, "")}:${Deno.env.get("PATH") ?? ""}`;
  const out = await new Deno.Command(Deno.execPath(), { args: [...BUF, ...args], cwd, env: { PATH: path } })
    .output();
  if (!out.success) {
    throw new Error(
      `buf ${args[0]} failed:\n${new TextDecoder().decode(out.stdout)}${
        new TextDecoder().decode(out.stderr)
      }`,
    );
  }
}

async function listFiles(dir: string, prefix = ""): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory) files.push(...await listFiles(`${dir}/${entry.name}`, rel));
    else files.push(rel);
  }
  return files.sort();
}

/** Differences between the generated tree and gen/, one line each; empty when identical. */
async function compare(fresh: string, committed: string): Promise<string[]> {
  const a = await listFiles(fresh);
  const b: string[] = await listFiles(committed).catch(() => []);
  const problems: string[] = [];
  for (const f of a) if (!b.includes(f)) problems.push(`missing: gen/${f}`);
  for (const f of b) if (!a.includes(f)) problems.push(`not produced by any contract: gen/${f}`);
  for (const f of a.filter((f) => b.includes(f))) {
    const [x, y] = await Promise.all([
      Deno.readTextFile(`${fresh}/${f}`),
      Deno.readTextFile(`${committed}/${f}`),
    ]);
    if (x !== y) problems.push(`stale: gen/${f}`);
  }
  return problems;
}

export async function gen(check: boolean): Promise<number> {
  await buf(["lint"]);
  const tmp = await Deno.makeTempDir({ prefix: "astra-gen-" });
  try {
    await buf(["generate", "-o", tmp]);
    const problems = await compare(`${tmp}/gen`, `${REPO}/gen`);
    if (check) {
      if (problems.length) {
        console.error(`gen/ does not match the contracts (run ./astra gen):\n  ${problems.join("\n  ")}`);
        return 1;
      }
      console.log("contracts: buf lint clean, gen/ up to date");
      return 0;
    }
    await Deno.remove(`${REPO}/gen`, { recursive: true }).catch(() => {});
    await Deno.rename(`${tmp}/gen`, `${REPO}/gen`);
    console.log(
      problems.length ? `regenerated gen/ (${problems.length} files changed)` : "gen/ already up to date",
    );
    return 0;
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

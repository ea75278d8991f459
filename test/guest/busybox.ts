// Debian's busybox-static for ppc64el, fetched at test time with apt: `apt-get download` into the
// test's temporary directory, then `dpkg -x`. A machine that has never seen the ppc64el archive
// gets the architecture added and its package lists updated first; `apt-get update` may fail on a
// ppc64el index caught mid-sync, and the download usually works all the same.

const PACKAGE = "busybox-static:ppc64el";

interface Result {
  success: boolean;
  output: string;
}

async function run(command: string, args: string[], cwd?: string): Promise<Result> {
  try {
    const out = await new Deno.Command(command, {
      args,
      cwd,
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    })
      .output();
    const decoder = new TextDecoder();
    return {
      success: out.success,
      output: `${decoder.decode(out.stdout)}${decoder.decode(out.stderr)}`.trim(),
    };
  } catch (e) {
    return { success: false, output: e instanceof Error ? e.message : String(e) };
  }
}

function lastLines(text: string, count = 6): string {
  return text.split("\n").slice(-count).join("\n");
}

/** apt drops privileges to `_apt`, which cannot write into a private temporary directory. */
function aptOptions(): string[] {
  return Deno.uid() === 0 ? ["-o", "APT::Sandbox::User=root"] : [];
}

async function download(dir: string): Promise<Result> {
  return await run("apt-get", [...aptOptions(), "download", PACKAGE], dir);
}

/** Makes the ppc64el archive known to apt; returns what went wrong, if anything did. */
async function addArchitecture(): Promise<string | undefined> {
  const foreign = await run("dpkg", ["--print-foreign-architectures"]);
  if (!foreign.output.split("\n").includes("ppc64el")) {
    const added = await run("dpkg", ["--add-architecture", "ppc64el"]);
    if (!added.success) return `dpkg --add-architecture ppc64el failed: ${lastLines(added.output)}`;
  }
  // A partial failure here (one index mid-sync) does not stop the download: only its result counts.
  await run("apt-get", ["update"]);
  return undefined;
}

export type Fetched = { binary: string } | { reason: string };

/**
 * Downloads busybox-static for ppc64el into dir and unpacks it there. Returns the path of the
 * binary, or why it could not be had.
 */
export async function fetchBusybox(dir: string): Promise<Fetched> {
  for (const tool of ["apt-get", "dpkg"]) {
    if (!(await run(tool, ["--version"])).success) return { reason: `${tool} is not available` };
  }
  let fetched = await download(dir);
  if (!fetched.success) {
    const problem = await addArchitecture();
    if (problem) return { reason: problem };
    fetched = await download(dir);
  }
  if (!fetched.success) return { reason: `apt-get download ${PACKAGE} failed: ${lastLines(fetched.output)}` };
  const packages: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && entry.name.startsWith("busybox-static_") && entry.name.endsWith(".deb")) {
      packages.push(entry.name);
    }
  }
  if (packages.length !== 1) {
    return { reason: `apt-get download left ${packages.length} busybox-static packages in ${dir}` };
  }
  const unpacked = `${dir}/unpacked`;
  const extracted = await run("dpkg", ["-x", `${dir}/${packages[0]}`, unpacked]);
  if (!extracted.success) return { reason: `dpkg -x ${packages[0]} failed: ${lastLines(extracted.output)}` };
  const binary = `${unpacked}/bin/busybox`;
  try {
    await Deno.stat(binary);
  } catch {
    return { reason: `${packages[0]} has no bin/busybox` };
  }
  return { binary };
}

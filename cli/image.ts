// `astra image`: makes a local Deno base image from the host's Deno binary, for machines whose
// Docker engine cannot pull images. It holds the binary, the glibc libraries it links, the CA
// bundle (so `deno install` reaches the npm registry during the build) and a writable /tmp, and
// writes .env so that `docker compose` builds on it.
import { fileURLToPath } from "node:url";

const REPO = fileURLToPath(new URL("..", import.meta.url));
export const LOCAL_BASE_IMAGE = `astralisp/deno-base:${Deno.version.deno}`;

async function run(cmd: string, args: string[], opts: { cwd?: string } = {}): Promise<string> {
  const out = await new Deno.Command(cmd, { args, cwd: opts.cwd, stderr: "inherit" }).output();
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")} failed with code ${out.code}`);
  return new TextDecoder().decode(out.stdout);
}

/** The shared libraries `binary` loads, as absolute paths (from ldd). */
async function linkedLibraries(binary: string): Promise<string[]> {
  const text = await run("ldd", [binary]);
  const libs = new Set<string>();
  for (const line of text.split("\n")) {
    const m = /(\/\S+)\s+\(0x/.exec(line);
    if (m) libs.add(m[1]);
  }
  return [...libs];
}

export async function makeBaseImage(tag = LOCAL_BASE_IMAGE): Promise<void> {
  const deno = Deno.execPath();
  const root = await Deno.makeTempDir({ prefix: "astra-image-" });
  try {
    const copy = async (src: string, dest: string) => {
      await Deno.mkdir(`${root}${dest.replace(/\/[^/]*$/, "")}`, { recursive: true });
      await Deno.copyFile(src, `${root}${dest}`);
    };
    await copy(deno, "/bin/deno");
    await Deno.chmod(`${root}/bin/deno`, 0o755);
    for (const lib of await linkedLibraries(deno)) {
      const real = await Deno.realPath(lib);
      await copy(real, lib);
    }
    await copy("/etc/ssl/certs/ca-certificates.crt", "/etc/ssl/certs/ca-certificates.crt");
    await Deno.mkdir(`${root}/tmp`, { mode: 0o1777 });
    await Deno.chmod(`${root}/tmp`, 0o1777);
    await Deno.mkdir(`${root}/etc`, { recursive: true });
    await Deno.writeTextFile(`${root}/etc/passwd`, "root:x:0:0:root:/root:/bin/deno\n");
    await Deno.writeTextFile(`${root}/etc/group`, "root:x:0:\n");
    await Deno.mkdir(`${root}/root`);
    const tar = `${root}.tar`;
    await run("tar", ["-C", root, "-cf", tar, "."]);
    await run("docker", [
      "import",
      "--change",
      "ENV DENO_TLS_CA_STORE=system",
      "--change",
      "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
      "--change",
      "ENV PATH=/bin:/usr/bin",
      "--change",
      'ENTRYPOINT ["/bin/deno"]',
      tar,
      tag,
    ]);
    await Deno.remove(tar);
    await Deno.writeTextFile(`${REPO}/.env`, `ASTRA_DENO_IMAGE=${tag}\n`);
    console.log(`made ${tag}; .env now points docker compose at it`);
  } finally {
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
}

// `astra run --trace` (ASTRA_TRACE_KERNEL_CALLS=1): every system call of a real program becomes a
// `sys.<name>` span with its arguments and result, and what the owning service does for the call
// (vmm writing HPTEs for an mprotect) is traced beneath it — over both transports.
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { toolchainMissing } from "../requirements.ts";

const REPO = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const missing = toolchainMissing();

const PROGRAM = `
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(void) {
  if (open("/no-such-file", O_RDONLY) >= 0) return 1;
  char *page = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  page[0] = 'x';
  if (mprotect(page, 4096, PROT_READ) != 0) return 2;
  write(1, "traced\\n", 7);
  return 0;
}
`;

describe.skipIf(missing !== undefined)(`astra run --trace ${missing ? `(skipped: ${missing})` : ""}`, () => {
  let dir = "";

  beforeAll(async () => {
    dir = await Deno.makeTempDir({ prefix: "astra-trace-test-" });
    await Deno.writeTextFile(`${dir}/traced.c`, PROGRAM);
    const built = await new Deno.Command("powerpc64le-linux-gnu-gcc", {
      args: ["-static", "-O2", "-o", `${dir}/traced`, `${dir}/traced.c`],
    }).output();
    if (!built.success) throw new Error(new TextDecoder().decode(built.stderr));
  });

  afterAll(async () => {
    if (dir) await Deno.remove(dir, { recursive: true });
  });

  for (const transport of ["embedded", "grpc"]) {
    test(`prints each system call with its result and its owner's work beneath (${transport})`, async () => {
      const run = await new Deno.Command(`${REPO}/astra`, {
        args: ["run", "--trace", "--transport", transport, "--root", dir, "./traced"],
        env: { ASTRA_TRACE_KERNEL_CALLS: "" },
      }).output();
      const stdout = new TextDecoder().decode(run.stdout);
      const stderr = new TextDecoder().decode(run.stderr);
      expect(run.code, stderr).toBe(0);
      expect(stdout).toBe("traced\n");
      expect(stderr).toMatch(/^astra run: \d+ system calls traced$/m);
      // The write: fd 1, 7 bytes, 7 written, by PID 1.
      expect(stderr).toMatch(
        /machine internal sys\.write\(0x1, 0x[0-9a-f]+, 0x7, [^)]*\) = 0x7 {2}\[pid 1\]/,
      );
      // A failed call carries its errno, not the raw register.
      expect(stderr).toMatch(/sys\.openat\(0xffffffffffffff9c, 0x[0-9a-f]+, 0x0, [^)]*\) = ENOENT/);
      // mprotect of a present page rewrites its HPTE: vmm's calls to the machine nest beneath.
      const lines = stderr.split("\n");
      const at = lines.findIndex((l) => /sys\.mprotect\(.*\) = 0x0/.test(l));
      expect(at).toBeGreaterThanOrEqual(0);
      expect(lines[at + 1]).toMatch(/^ {4}vmm client astra\.machine\.v1\.MachineService\/\w+/);
    }, 120_000);
  }

  test("without --trace no system call is traced", async () => {
    const run = await new Deno.Command(`${REPO}/astra`, {
      args: ["run", "--root", dir, "./traced"],
      env: { ASTRA_TRACE_KERNEL_CALLS: "" },
    }).output();
    expect(run.code).toBe(0);
    expect(new TextDecoder().decode(run.stderr)).toBe("");
  }, 60_000);
});

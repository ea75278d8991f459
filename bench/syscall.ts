// Kernel-call benchmark: the round trip of one trivial system call (getppid) from a static ppc64le
// program, on AstraLisp OS over the embedded and the gRPC transport, against qemu-ppc64le in the
// same invocation. The guest times two loops with clock_gettime: N getppid calls, and N calls of
// an empty function; the difference divided by N is the cost of one kernel call, with the loop and
// the boot subtracted out. Prints one JSON object.
//
//   deno run -A bench/syscall.ts [calls, default 20000]

const GUEST = `
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

__attribute__((noinline)) long empty(long x) { __asm__ volatile("" ::: "memory"); return x; }

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 20000, sum = 0;
  double t0 = now();
  for (long i = 0; i < n; i++) sum += syscall(SYS_getppid);
  double t1 = now();
  for (long i = 0; i < n; i++) sum += empty(i);
  double t2 = now();
  printf("{\\"calls\\":%ld,\\"syscallLoopNs\\":%.0f,\\"emptyLoopNs\\":%.0f,\\"sum\\":%ld}\\n", n, t1 - t0, t2 - t1, sum);
  return 0;
}
`;

const calls = Number(Deno.args[0] ?? 20000);
const repo = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const dir = await Deno.makeTempDir({ prefix: "astra-bench-syscall-" });

interface GuestReport {
  calls: number;
  syscallLoopNs: number;
  emptyLoopNs: number;
}

async function command(cmd: string, args: string[], cwd = dir): Promise<string> {
  const out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  return stdout;
}

async function measure(runner: string, cmd: string, args: string[]) {
  const wallStart = performance.now();
  const report = JSON.parse((await command(cmd, args)).trim()) as GuestReport;
  const perCallNs = (report.syscallLoopNs - report.emptyLoopNs) / report.calls;
  return {
    runner,
    perCallMicros: +(perCallNs / 1000).toFixed(3),
    wallSeconds: +((performance.now() - wallStart) / 1000).toFixed(2),
  };
}

try {
  await Deno.writeTextFile(`${dir}/getppid.c`, GUEST);
  await command("powerpc64le-linux-gnu-gcc", ["-static", "-O2", "-o", "getppid", "getppid.c"]);
  const qemu = await measure("qemu-ppc64le", "qemu-ppc64le", ["./getppid", String(calls)]);
  const astra = async (transport: string) =>
    await measure(`astra-${transport}`, `${repo}/astra`, [
      "run",
      "--root",
      dir,
      "--transport",
      transport,
      "./getppid",
      String(calls),
    ]);
  const embedded = await astra("embedded");
  const grpc = await astra("grpc");
  console.log(JSON.stringify(
    {
      benchmark: "kernel call round trip (getppid)",
      calls,
      qemu,
      embedded: {
        ...embedded,
        targetMicros: 5,
        ratioToQemu: +(embedded.perCallMicros / qemu.perCallMicros).toFixed(1),
      },
      grpc: { ...grpc, targetMicros: 60, ratioToQemu: +(grpc.perCallMicros / qemu.perCallMicros).toFixed(1) },
    },
    null,
    2,
  ));
} finally {
  await Deno.remove(dir, { recursive: true });
}

// CPU benchmark: SHA-256 over a buffer, compiled by powerpc64le-linux-gnu-gcc -O2 into a static
// program. qemu-ppc64le runs the program and times its hot function from inside the guest; the
// same function, loaded from the same binary into flat memory (no OS), runs on the interpreter and
// on the block translator, and the whole binary runs as a process on AstraLisp OS (`astra run`,
// timed from inside the guest like qemu). Prints one JSON object: instructions, seconds, MIPS and
// the slowdown against qemu of each. The digests must agree.
//
//   deno run -A bench/cpu.ts [buffer bytes, default 4 MiB]

import { Cpu, StopReason } from "../services/machine/cpu/interpreter.ts";
import { FlatMemory } from "../services/machine/cpu/flat.ts";

const GUEST = `
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static const uint32_t K[64] = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

__attribute__((noinline)) void sha256_blocks(uint32_t *state, const uint8_t *data, size_t blocks) {
  for (size_t b = 0; b < blocks; b++, data += 64) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
      w[i] = (uint32_t)data[4 * i] << 24 | (uint32_t)data[4 * i + 1] << 16 | (uint32_t)data[4 * i + 2] << 8 | data[4 * i + 3];
    for (int i = 16; i < 64; i++) {
      uint32_t s0 = ROTR(w[i - 15], 7) ^ ROTR(w[i - 15], 18) ^ (w[i - 15] >> 3);
      uint32_t s1 = ROTR(w[i - 2], 17) ^ ROTR(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = state[0], b2 = state[1], c = state[2], d = state[3];
    uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
    for (int i = 0; i < 64; i++) {
      uint32_t t1 = h + (ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
      uint32_t t2 = (ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22)) + ((a & b2) ^ (a & c) ^ (b2 & c));
      h = g; g = f; f = e; e = d + t1; d = c; c = b2; b2 = a; a = t1 + t2;
    }
    state[0] += a; state[1] += b2; state[2] += c; state[3] += d;
    state[4] += e; state[5] += f; state[6] += g; state[7] += h;
  }
}

__attribute__((noinline)) void fill(uint8_t *buffer, size_t size) {
  uint32_t x = 12345;
  for (size_t i = 0; i < size; i++) {
    x = x * 1103515245u + 12345u;
    buffer[i] = (uint8_t)(x >> 24);
  }
}

int main(int argc, char **argv) {
  size_t size = argc > 1 ? strtoul(argv[1], 0, 0) : 4u << 20;
  uint8_t *buffer = malloc(size);
  fill(buffer, size);
  uint32_t state[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  sha256_blocks(state, buffer, size / 64);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  for (int i = 0; i < 8; i++) printf("%08x", state[i]);
  printf("\\n%.9f\\n", (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
  return 0;
}
`;

const SIZE = Number(Deno.args[0] ?? 4 << 20);
const CROSS = "powerpc64le-linux-gnu";

async function run(command: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) throw new Error(`${command} failed: ${new TextDecoder().decode(out.stderr)}`);
  return new TextDecoder().decode(out.stdout);
}

/** Copies the PT_LOAD segments of a little-endian ELF64 file into memory. */
function loadSegments(image: Uint8Array, memory: FlatMemory): void {
  const view = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const headers = Number(view.getBigUint64(0x20, true));
  const size = view.getUint16(0x36, true), count = view.getUint16(0x38, true);
  for (let i = 0; i < count; i++) {
    const h = headers + i * size;
    if (view.getUint32(h, true) !== 1) continue;
    const offset = Number(view.getBigUint64(h + 8, true)), address = Number(view.getBigUint64(h + 16, true));
    const fileSize = Number(view.getBigUint64(h + 32, true));
    memory.bytes.set(image.subarray(offset, offset + fileSize), address - memory.base);
  }
}

async function symbols(binary: string): Promise<Map<string, number>> {
  const table = new Map<string, number>();
  for (const line of (await run(`${CROSS}-nm`, [binary])).split("\n")) {
    const [address, , name] = line.trim().split(/\s+/);
    if (name) table.set(name, parseInt(address, 16));
  }
  return table;
}

const IMAGE_BASE = 0x10000000;
const MEMORY_BYTES = 64 << 20;
const BUFFER = 0x11000000;
const STATE = 0x10f00000;
const STACK_TOP = 0x13ff0000;
/** An `sc` the called functions return to, so that the run stops there. */
const RETURN_STUB = 0x10f10000;
const SC = 0x44000002;

/** Calls a function through its global entry with arguments in r3.., until it returns. */
function call(cpu: Cpu, entry: number, args: number[]): { instructions: number; seconds: number } {
  cpu.gpr.fill(0);
  args.forEach((value, i) => (cpu.gpr[2 * (3 + i)] = value));
  cpu.gpr[2] = STACK_TOP;
  cpu.gpr[24] = entry;
  cpu.lrLo = RETURN_STUB;
  cpu.lrHi = 0;
  cpu.pc = entry;
  const before = cpu.retired, start = performance.now();
  for (;;) {
    const stop = cpu.run(50_000_000);
    if (stop === StopReason.SystemCall) break;
    if (stop !== StopReason.Budget) {
      throw new Error(`the guest stopped (${stop}) at 0x${cpu.pc.toString(16)}`);
    }
  }
  return { instructions: cpu.retired - before, seconds: (performance.now() - start) / 1000 };
}

function digest(memory: FlatMemory): string {
  let text = "";
  for (let i = 0; i < 8; i++) {
    text += memory.view.getUint32(STATE - IMAGE_BASE + 4 * i, true).toString(16).padStart(8, "0");
  }
  return text;
}

async function onCpu(binary: string, translate: boolean) {
  const memory = new FlatMemory(IMAGE_BASE, MEMORY_BYTES, { tlbEntries: 4096 });
  loadSegments(await Deno.readFile(binary), memory);
  memory.view.setInt32(RETURN_STUB - IMAGE_BASE, SC, true);
  const initial = [
    0x6a09e667,
    0xbb67ae85,
    0x3c6ef372,
    0xa54ff53a,
    0x510e527f,
    0x9b05688c,
    0x1f83d9ab,
    0x5be0cd19,
  ];
  initial.forEach((word, i) => memory.view.setUint32(STATE - IMAGE_BASE + 4 * i, word, true));
  const cpu = new Cpu(memory, () => 0);
  if (translate) cpu.enableTranslation();
  const table = await symbols(binary);
  call(cpu, table.get("fill")!, [BUFFER, SIZE]);
  const hash = call(cpu, table.get("sha256_blocks")!, [STATE, BUFFER, SIZE / 64]);
  return { ...hash, digest: digest(memory), translation: cpu.translation };
}

const dir = await Deno.makeTempDir({ prefix: "astra-bench-cpu-" });
try {
  await Deno.writeTextFile(`${dir}/sha256.c`, GUEST);
  const binary = `${dir}/sha256`;
  await run(`${CROSS}-gcc`, ["-static", "-O2", `${dir}/sha256.c`, "-o", binary]);
  const [qemuDigest, qemuSeconds] = (await run("qemu-ppc64le", [binary, String(SIZE)])).trim().split("\n");
  const interpreter = await onCpu(binary, false);
  const translator = await onCpu(binary, true);
  const astra = new URL("../astra", import.meta.url).pathname;
  const [systemDigest, systemSeconds] = (await run(astra, ["run", "--root", dir, "./sha256", String(SIZE)]))
    .trim().split("\n");
  for (
    const [name, found] of [
      ["interpreter", interpreter.digest],
      ["translator", translator.digest],
      ["astra run", systemDigest],
    ] as const
  ) {
    if (found !== qemuDigest) throw new Error(`${name} digest ${found} differs from qemu's ${qemuDigest}`);
  }
  const qemu = Number(qemuSeconds);
  const instructions = translator.instructions;
  const mips = (seconds: number) => Math.round(instructions / seconds / 1e4) / 100;
  const slowdown = (seconds: number) => Math.round((seconds / qemu) * 100) / 100;
  console.log(JSON.stringify(
    {
      workload: "sha256_blocks, gcc 12 -O2 static ppc64le",
      bytes: SIZE,
      instructions,
      digest: qemuDigest,
      qemu: { seconds: qemu, mips: mips(qemu) },
      interpreter: {
        seconds: interpreter.seconds,
        mips: mips(interpreter.seconds),
        times_qemu: slowdown(interpreter.seconds),
      },
      translator: {
        seconds: translator.seconds,
        mips: mips(translator.seconds),
        times_qemu: slowdown(translator.seconds),
        ...translator.translation,
      },
      // The same binary as a process on the whole system (embedded): MMU, demand paging, kernel calls.
      system: {
        seconds: Number(systemSeconds),
        mips: mips(Number(systemSeconds)),
        times_qemu: slowdown(Number(systemSeconds)),
        target_times_qemu: 25,
      },
    },
    null,
    2,
  ));
} finally {
  await Deno.remove(dir, { recursive: true });
}

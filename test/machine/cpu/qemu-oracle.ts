// Single-instruction differential testing against qemu-ppc64le. A case is an instruction word and
// a register state (r0 and r3..r12, FPSCR, CR, XER, CTR, VSCR, the 64 VSRs and a 256-byte memory
// window at a fixed address); qemu runs it through guest/harness.c, our CPU runs it from the same
// state, and the two resulting states (or the signals raised) are compared.

import { Cpu, MemoryFault, StopReason } from "../../../services/machine/cpu/interpreter.ts";
import { INSTRUCTIONS, OP, opEncoding } from "../../../services/machine/cpu/decode.ts";
import { type FlagName, FLAGS, type OperandName, OPERANDS } from "../../../services/machine/cpu/isa.ts";
import { FlatMemory } from "../../../services/machine/cpu/flat.ts";

export const MEMORY_BASE = 0x7e000000;
export const MEMORY_BYTES = 256;
/** The GPRs the harness loads and stores, in record order. */
export const HARNESS_GPRS = [0, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12] as const;
const GPR_SLOTS = 13;
const STATE_BYTES = GPR_SLOTS * 8 + 7 * 8 + 64 * 16 + MEMORY_BYTES;
const RECORD_BYTES = 8 + STATE_BYTES;

export interface MachineState {
  /** r0..r31 as 64-bit values (only HARNESS_GPRS are exchanged with qemu). */
  gpr: bigint[];
  /** The 64-bit FPSCR. */
  fpscr: bigint;
  cr: number;
  xer: bigint;
  ctr: bigint;
  vscr: number;
  /** vs0..vs63, each 16 bytes in little-endian order of the 128-bit value. */
  vsr: Uint8Array;
  memory: Uint8Array;
}

export interface CaseResult {
  /** The signal the instruction raised (0: none). */
  signal: number;
  state: MachineState;
}

export interface TestCase {
  word: number;
  state: MachineState;
}

export function emptyState(): MachineState {
  return {
    gpr: new Array<bigint>(32).fill(0n),
    fpscr: 0n,
    cr: 0,
    xer: 0n,
    ctr: 0n,
    vscr: 0x10000,
    vsr: new Uint8Array(64 * 16),
    memory: new Uint8Array(MEMORY_BYTES),
  };
}

export function cloneState(s: MachineState): MachineState {
  return { ...s, gpr: [...s.gpr], vsr: s.vsr.slice(), memory: s.memory.slice() };
}

function encodeState(view: DataView, offset: number, s: MachineState): void {
  HARNESS_GPRS.forEach((r, slot) => view.setBigUint64(offset + 8 * slot, BigInt.asUintN(64, s.gpr[r]), true));
  let o = offset + GPR_SLOTS * 8;
  for (const value of [s.fpscr, BigInt(s.cr >>> 0), s.xer, s.ctr, 0n, BigInt(s.vscr >>> 0), 0n]) {
    view.setBigUint64(o, BigInt.asUintN(64, value), true);
    o += 8;
  }
  new Uint8Array(view.buffer, o, 64 * 16).set(s.vsr);
  new Uint8Array(view.buffer, o + 64 * 16, MEMORY_BYTES).set(s.memory);
}

function decodeState(view: DataView, offset: number, base: MachineState): MachineState {
  const s = cloneState(base);
  HARNESS_GPRS.forEach((r, slot) => (s.gpr[r] = view.getBigUint64(offset + 8 * slot, true)));
  let o = offset + GPR_SLOTS * 8;
  const next = () => {
    const value = view.getBigUint64(o, true);
    o += 8;
    return value;
  };
  s.fpscr = next();
  s.cr = Number(next() & 0xffffffffn) | 0;
  s.xer = next();
  s.ctr = next();
  next();
  s.vscr = Number(next() & 0xffffffffn);
  next();
  s.vsr = new Uint8Array(view.buffer.slice(o, o + 64 * 16));
  s.memory = new Uint8Array(view.buffer.slice(o + 64 * 16, o + 64 * 16 + MEMORY_BYTES));
  return s;
}

const HARNESS_SOURCE = new URL("./guest/harness.c", import.meta.url).pathname;

/** Builds the harness into a temporary folder; returns its path. */
export async function buildHarness(dir: string): Promise<string> {
  const binary = `${dir}/harness`;
  const out = await new Deno.Command("powerpc64le-linux-gnu-gcc", {
    args: ["-static", "-O2", "-mcpu=power9", "-Wall", "-Werror", HARNESS_SOURCE, "-o", binary],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`harness build failed:\n${new TextDecoder().decode(out.stderr)}`);
  return binary;
}

/** Runs cases under qemu-ppc64le through the harness. */
export async function runOnQemu(harness: string, cases: readonly TestCase[]): Promise<CaseResult[]> {
  const input = new Uint8Array(cases.length * RECORD_BYTES);
  const view = new DataView(input.buffer);
  cases.forEach((c, i) => {
    view.setInt32(i * RECORD_BYTES, c.word, true);
    encodeState(view, i * RECORD_BYTES + 8, c.state);
  });
  const child = new Deno.Command("qemu-ppc64le", {
    args: [harness],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  const written = writer.write(input).then(() => writer.close());
  const [out] = await Promise.all([child.output(), written]);
  if (!out.success || out.stdout.length !== input.length) {
    throw new Error(
      `qemu-ppc64le harness failed (${out.stdout.length}/${input.length} bytes): ${
        new TextDecoder().decode(out.stderr)
      }`,
    );
  }
  const result = new DataView(out.stdout.buffer, out.stdout.byteOffset, out.stdout.byteLength);
  return cases.map((c, i) => ({
    signal: result.getUint32(i * RECORD_BYTES, true),
    state: decodeState(result, i * RECORD_BYTES + 8, c.state),
  }));
}

/** The memory window plus a code page, little-endian; everything else faults. */
class HarnessMemory extends FlatMemory {
  static readonly CODE = 0x10000000;
  constructor(private readonly word: number) {
    super(MEMORY_BASE, 65536);
  }

  override fetch(a: number) {
    if (a !== HarnessMemory.CODE) throw new MemoryFault(BigInt(a), "execute");
    return this.word;
  }
}

const SIGNAL = { SIGILL: 4, SIGTRAP: 5, SIGBUS: 7, SIGFPE: 8, SIGSEGV: 11 } as const;

/** Runs a case on our CPU, the way the kernel would report what it raised. */
export function runOnCpu(c: TestCase, options: { floatingPointExceptions?: boolean } = {}): CaseResult {
  const memory = new HarnessMemory(c.word);
  memory.bytes.set(c.state.memory);
  const cpu = new Cpu(memory, () => 0);
  cpu.floatingPointExceptions = options.floatingPointExceptions ?? true;
  const s = c.state;
  for (const r of HARNESS_GPRS) {
    const v = BigInt.asUintN(64, s.gpr[r]);
    cpu.gpr[2 * r] = Number(v & 0xffffffffn) | 0;
    cpu.gpr[2 * r + 1] = Number(v >> 32n) | 0;
  }
  cpu.fpscr = Number(s.fpscr & 0xffffffffn) | 0;
  cpu.fpscrHigh = Number(s.fpscr >> 32n) | 0;
  cpu.cr = s.cr;
  cpu.xer = Number(s.xer & 0xffffffffn) | 0;
  cpu.ctrLo = Number(s.ctr & 0xffffffffn) | 0;
  cpu.ctrHi = Number(s.ctr >> 32n) | 0;
  cpu.vscr = s.vscr;
  cpu.vsrBytes.set(s.vsr);
  cpu.pc = HarnessMemory.CODE;
  const stop = cpu.run(1);
  let signal = 0;
  if (stop === StopReason.Program) {
    signal = cpu.programReason === "trap"
      ? SIGNAL.SIGTRAP
      : cpu.programReason === "floating-point"
      ? SIGNAL.SIGFPE
      : SIGNAL.SIGILL;
  } else if (stop === StopReason.PageFault) signal = SIGNAL.SIGSEGV;
  else if (stop === StopReason.Alignment) signal = SIGNAL.SIGBUS;
  else if (stop === StopReason.FacilityUnavailable) signal = SIGNAL.SIGILL;
  const out = cloneState(s);
  for (const r of HARNESS_GPRS) {
    out.gpr[r] = (BigInt(cpu.gpr[2 * r + 1] >>> 0) << 32n) | BigInt(cpu.gpr[2 * r] >>> 0);
  }
  out.fpscr = (BigInt(cpu.fpscrHigh >>> 0) << 32n) | BigInt(cpu.fpscr >>> 0);
  out.cr = cpu.cr;
  out.xer = BigInt(cpu.xer >>> 0);
  out.ctr = (BigInt(cpu.ctrHi >>> 0) << 32n) | BigInt(cpu.ctrLo >>> 0);
  out.vscr = cpu.vscr >>> 0;
  out.vsr = cpu.vsrBytes.slice();
  out.memory = memory.bytes.slice(0, MEMORY_BYTES);
  return { signal, state: out };
}

/** Encodes an instruction from the table: operand values by name, and flags. */
export function assemble(
  mnemonic: string,
  operands: Partial<Record<OperandName, number>>,
  flags: FlagName[] = [],
): number {
  const op = OP[mnemonic];
  if (op === undefined) throw new Error(`no instruction ${mnemonic}`);
  let word = opEncoding(op).value;
  for (const name of INSTRUCTIONS[op].operands) {
    const def = OPERANDS[name];
    let value = operands[name] ?? 0;
    if ("zeroMeans" in def && value === def.zeroMeans) value = 0;
    let raw = BigInt(value) >> BigInt("scale" in def ? def.scale : 0);
    const width = def.fields.reduce((sum, [first, last]) => sum + last - first + 1, 0);
    raw = BigInt.asUintN(width, raw);
    let remaining = width;
    for (const [first, last] of def.fields) {
      const size = last - first + 1;
      remaining -= size;
      const part = Number((raw >> BigInt(remaining)) & ((1n << BigInt(size)) - 1n));
      word |= part << (31 - last);
    }
  }
  for (const flag of flags) word |= 1 << (31 - FLAGS[flag].bit);
  return word | 0;
}

const hex = (x: bigint, digits: number) =>
  "0x" + BigInt.asUintN(digits * 4, x).toString(16).padStart(digits, "0");

function vsrHex(bytes: Uint8Array, n: number): string {
  let text = "";
  for (let i = 15; i >= 0; i--) text += bytes[16 * n + i].toString(16).padStart(2, "0");
  return text;
}

/** What may legitimately differ between qemu and the ISA for an instruction: masks of state to ignore. */
export interface Tolerance {
  /** FPSCR bits not compared. */
  fpscrMask?: bigint;
  /** CR bits not compared. */
  crMask?: number;
}

/** The differences between two results, as readable lines (empty when they agree). */
export function differences(want: CaseResult, got: CaseResult, tolerance: Tolerance = {}): string[] {
  const lines: string[] = [];
  if (want.signal !== got.signal) lines.push(`signal: qemu ${want.signal}, cpu ${got.signal}`);
  if (want.signal !== 0 || got.signal !== 0) return lines;
  const w = want.state, g = got.state;
  for (const r of HARNESS_GPRS) {
    if (w.gpr[r] !== g.gpr[r]) lines.push(`r${r}: qemu ${hex(w.gpr[r], 16)}, cpu ${hex(g.gpr[r], 16)}`);
  }
  const ignored = tolerance.fpscrMask ?? 0n;
  if ((w.fpscr & ~ignored) !== (g.fpscr & ~ignored)) {
    lines.push(`fpscr: qemu ${hex(w.fpscr, 16)}, cpu ${hex(g.fpscr, 16)}`);
  }
  const crIgnored = tolerance.crMask ?? 0;
  if (((w.cr & ~crIgnored) >>> 0) !== ((g.cr & ~crIgnored) >>> 0)) {
    lines.push(`cr: qemu ${hex(BigInt(w.cr >>> 0), 8)}, cpu ${hex(BigInt(g.cr >>> 0), 8)}`);
  }
  if (w.xer !== g.xer) lines.push(`xer: qemu ${hex(w.xer, 8)}, cpu ${hex(g.xer, 8)}`);
  if (w.ctr !== g.ctr) lines.push(`ctr: qemu ${hex(w.ctr, 16)}, cpu ${hex(g.ctr, 16)}`);
  if (w.vscr !== g.vscr) lines.push(`vscr: qemu ${hex(BigInt(w.vscr), 8)}, cpu ${hex(BigInt(g.vscr), 8)}`);
  for (let n = 0; n < 64; n++) {
    const a = vsrHex(w.vsr, n), b = vsrHex(g.vsr, n);
    if (a !== b) lines.push(`vs${n}: qemu ${a}, cpu ${b}`);
  }
  for (let i = 0; i < MEMORY_BYTES; i++) {
    if (w.memory[i] !== g.memory[i]) {
      lines.push(`memory+${i}: qemu ${w.memory[i]}, cpu ${g.memory[i]}`);
      break;
    }
  }
  return lines;
}

/** The inputs of a case, for a failure message. */
export function describeInputs(c: TestCase, registers: { vsr?: number[]; gpr?: number[] }): string {
  const parts = [`word 0x${(c.word >>> 0).toString(16).padStart(8, "0")}`, `fpscr ${hex(c.state.fpscr, 16)}`];
  for (const r of registers.gpr ?? []) parts.push(`r${r}=${hex(c.state.gpr[r], 16)}`);
  for (const n of registers.vsr ?? []) parts.push(`vs${n}=${vsrHex(c.state.vsr, n)}`);
  return parts.join(" ");
}

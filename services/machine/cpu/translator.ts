// The block translator: hot guest code becomes JavaScript functions, built with `new Function` from
// the same decoded form as the interpreter (op ids from the table in isa.ts and the words).
//
// A region is the set of basic blocks reachable from a hot entry by direct branches and
// fall-throughs, within a few 4 KiB pages (loops often straddle a page boundary). Its function keeps the GPRs it touches, CR, LR and CTR in
// locals and dispatches between its blocks with a switch in a loop, so a loop inside the page runs
// without leaving the function. Every block checks the remaining budget first (budgets stay exact:
// a block that does not fit leaves the rest to the interpreter). CR0 of record forms is kept
// pending in locals while nothing reads it. Loads and stores check the software TLB inline and
// read or write host memory directly on a hit; a miss calls the CpuMemory. Instructions without a
// template here call the interpreter's handler, with the locals spilled around the call.
//
// Faults are precise: before each instruction that can fault, a local notes its pc; a MemoryFault
// thrown inside the region writes the locals back and leaves pc on that instruction. Stores that
// reach a page holding code (never through the TLB, see tlb.ts) invalidate the page's regions, and
// a region that sees the code version change leaves right after the instruction.

import type { Cpu, Semantics } from "./interpreter.ts";
import { EXTRACT, INSTRUCTIONS } from "./decode.ts";
import { OPERANDS } from "./isa.ts";
import { address, MemoryFault, TWO_32 } from "./access.ts";
import { mask32, mask64, mul64, mulhw, mulhwu, RESULT } from "./int64.ts";
import { StopReason } from "./stop.ts";
import { SoftwareTlb, TLB_PAGE_BYTES } from "./tlb.ts";

export interface TranslatorOptions {
  /** Times a block entry runs in the interpreter before its region is translated. */
  hotThreshold?: number;
  /**
   * The largest region, in instructions (one that calls a handler counts four): V8's optimizing
   * compiler takes time superlinear in function size.
   */
  maxRegionCost?: number;
}

export interface TranslatorStatistics {
  regions: number;
  /** Instructions compiled into regions, templated or not. */
  translatedInstructions: number;
  /** Of those, instructions that call the interpreter's handler. */
  handlerInstructions: number;
  /** Regions dropped because their page changed. */
  invalidatedRegions: number;
}

const PAGE_BYTES = TLB_PAGE_BYTES;
/** Effective addresses at or above 2^53 are never mapped; branches there are left to the interpreter. */
const ADDRESS_LIMIT = 2 ** 53;
const DEFAULT_HOT_THRESHOLD = 32;
const DEFAULT_MAX_REGION_COST = 512;
/** The cost of an instruction that calls its handler, relative to a templated one. */
const HANDLER_COST = 4;
/** The most pages one region may span; a store into any of them drops it. */
const MAX_REGION_PAGES = 4;

/** A translated region: run(cpu, budget, block) executes from one of its blocks. */
interface Region {
  readonly run: (cpu: Cpu, budget: number, block: number) => void;
  /** The pages its code comes from. */
  readonly pages: readonly number[];
}

/** A region entry point: a region and the index of the block that starts at the entry's pc. */
interface Entry {
  readonly region: Region;
  readonly block: number;
}

interface Instruction {
  readonly pc: number;
  readonly op: number;
  readonly word: number;
  readonly mnemonic: string;
}

interface Block {
  readonly start: number;
  readonly instructions: Instruction[];
  /** Where execution continues after the last instruction when it does not branch (or pc of an untranslatable one). */
  readonly next: number;
  /** Its size for the region limit. */
  readonly cost: number;
}

const BRANCHES = new Set(["b", "bc", "bclr", "bcctr", "bctar"]);
const ENDS_BLOCK = new Set([...BRANCHES, "sc", "scv"]);

/** A TLB with no entries, for memories without one: every access takes the slow path. */
const NO_TLB = new SoftwareTlb(1);

// Slow paths of the inline loads and stores (a TLB miss or a page-crossing access).
const WIDE = new Int32Array(2);

function loadSlow(cpu: Cpu, lo: number, hi: number, size: number): number {
  const ea = address(lo, hi, "read");
  const memory = cpu.memory;
  switch (size) {
    case 1:
      return memory.load8(ea);
    case 2:
      return memory.load16(ea);
    case 4:
      return memory.load32(ea);
    default:
      memory.load64(ea, WIDE, 0);
      return WIDE[0];
  }
}

function storeSlow(cpu: Cpu, lo: number, hi: number, size: number, valueLo: number, valueHi: number): void {
  const ea = address(lo, hi, "write");
  const memory = cpu.memory;
  switch (size) {
    case 1:
      memory.store8(ea, valueLo & 0xff);
      break;
    case 2:
      memory.store16(ea, valueLo & 0xffff);
      break;
    case 4:
      memory.store32(ea, valueLo);
      break;
    default:
      memory.store64(ea, valueLo, valueHi);
  }
  cpu.noteStore(ea, size);
}

// The loads and stores translated code calls. They are small enough for V8 to inline, and being
// shared by every region, their slow paths carry type feedback from the first TLB miss on, so a
// region's optimized code does not deoptimize the first time one of its accesses misses.

function load8(T: SoftwareTlb, cpu: Cpu, lo: number, hi: number): number {
  const p = lo >>> 12, s = p & T.mask;
  if (T.tagLo[s] === p && T.tagHi[s] === hi) return T.views[s].getUint8(T.offset[s] + (lo & 4095));
  return loadSlow(cpu, lo, hi, 1);
}

function load16(T: SoftwareTlb, cpu: Cpu, lo: number, hi: number): number {
  const p = lo >>> 12, s = p & T.mask;
  if (T.tagLo[s] === p && T.tagHi[s] === hi && (lo & 4095) <= 4094) {
    return T.views[s].getUint16(T.offset[s] + (lo & 4095), true);
  }
  return loadSlow(cpu, lo, hi, 2);
}

function load32(T: SoftwareTlb, cpu: Cpu, lo: number, hi: number): number {
  const p = lo >>> 12, s = p & T.mask;
  if (T.tagLo[s] === p && T.tagHi[s] === hi && (lo & 4095) <= 4092) {
    return T.views[s].getInt32(T.offset[s] + (lo & 4095), true);
  }
  return loadSlow(cpu, lo, hi, 4);
}

/** A doubleword: returns its low word and leaves the high word in WIDE[1]. */
function load64(T: SoftwareTlb, cpu: Cpu, lo: number, hi: number): number {
  const p = lo >>> 12, s = p & T.mask;
  if (T.tagLo[s] === p && T.tagHi[s] === hi && (lo & 4095) <= 4088) {
    const view = T.views[s], offset = T.offset[s] + (lo & 4095);
    WIDE[1] = view.getInt32(offset + 4, true);
    return view.getInt32(offset, true);
  }
  return loadSlow(cpu, lo, hi, 8);
}

/** Stores return true when the store changed code (the region must leave). */
function store8(T: SoftwareTlb, cpu: Cpu, lo: number, hi: number, value: number): boolean {
  const p = lo >>> 12, s = p & T.mask;
  if (T.tagLo[s] === p && T.tagHi[s] === hi && T.writable[s] !== 0) {
    T.views[s].setUint8(T.offset[s] + (lo & 4095), value);
    return false;
  }
  return storeAndCheck(cpu, lo, hi, 1, value, 0);
}

function store16(T: SoftwareTlb, cpu: Cpu, lo: number, hi: number, value: number): boolean {
  const p = lo >>> 12, s = p & T.mask;
  if (T.tagLo[s] === p && T.tagHi[s] === hi && T.writable[s] !== 0 && (lo & 4095) <= 4094) {
    T.views[s].setUint16(T.offset[s] + (lo & 4095), value, true);
    return false;
  }
  return storeAndCheck(cpu, lo, hi, 2, value, 0);
}

function store32(T: SoftwareTlb, cpu: Cpu, lo: number, hi: number, value: number): boolean {
  const p = lo >>> 12, s = p & T.mask;
  if (T.tagLo[s] === p && T.tagHi[s] === hi && T.writable[s] !== 0 && (lo & 4095) <= 4092) {
    T.views[s].setInt32(T.offset[s] + (lo & 4095), value, true);
    return false;
  }
  return storeAndCheck(cpu, lo, hi, 4, value, 0);
}

function store64(
  T: SoftwareTlb,
  cpu: Cpu,
  lo: number,
  hi: number,
  valueLo: number,
  valueHi: number,
): boolean {
  const p = lo >>> 12, s = p & T.mask;
  if (T.tagLo[s] === p && T.tagHi[s] === hi && T.writable[s] !== 0 && (lo & 4095) <= 4088) {
    const view = T.views[s], offset = T.offset[s] + (lo & 4095);
    view.setInt32(offset, valueLo, true);
    view.setInt32(offset + 4, valueHi, true);
    return false;
  }
  return storeAndCheck(cpu, lo, hi, 8, valueLo, valueHi);
}

function storeAndCheck(
  cpu: Cpu,
  lo: number,
  hi: number,
  size: number,
  valueLo: number,
  valueHi: number,
): boolean {
  const version = cpu.codeVersion;
  storeSlow(cpu, lo, hi, size, valueLo, valueHi);
  return cpu.codeVersion !== version;
}

/** What generated code calls; passed to the factory built by new Function. */
const RUNTIME = {
  load8,
  load16,
  load32,
  load64,
  store8,
  store16,
  store32,
  store64,
  WIDE,
  RESULT,
  mul64,
  mulhw,
  mulhwu,
  NO_TLB,
};

const hex = (n: number) => (n < 0 ? "-0x" + (-n).toString(16) : "0x" + n.toString(16));

/** An expression of zeros combined by &, | and ^: zero. */
const ZERO_EXPRESSION = /^[0\s()&|^]+$/;

/** What an instruction's handler may read or write besides memory, XER, the FPSCR and the VSRs. */
interface HandlerUsage {
  /** The GPRs it names, or null when it may touch any (the locals are all spilled). */
  readonly gprs: number[] | null;
  /** It reads or writes CR. */
  readonly cr: boolean;
  /** It reads or writes LR or CTR. */
  readonly linkOrCount: boolean;
}

/** Instructions whose handlers touch registers their operands do not name. */
const UNBOUNDED_REGISTERS = new Set(["lmw", "stmw", "lswi", "lswx", "stswi", "stswx", "lqarx", "stqcx."]);
const CR_INSTRUCTIONS = new Set(["mfcr", "mfocrf", "mtcrf", "mtocrf"]);

function handlerUsage(insn: Instruction): HandlerUsage {
  const def = INSTRUCTIONS[insn.op];
  const w = insn.word;
  const linkOrCount = insn.mnemonic === "mtspr" || insn.mnemonic === "mfspr";
  const recorded = (def.flags.includes("Rc") && (w & 1) !== 0) ||
    (def.flags.includes("Rc21") && (w & 0x400) !== 0);
  const cr = recorded || insn.mnemonic.endsWith(".") || CR_INSTRUCTIONS.has(insn.mnemonic) ||
    def.operands.some((name) => OPERANDS[name].kind === "crf" || OPERANDS[name].kind === "crb");
  if (UNBOUNDED_REGISTERS.has(insn.mnemonic) || def.constraints.includes("RT_EVEN")) {
    return { gprs: null, cr, linkOrCount };
  }
  const gprs: number[] = [];
  for (const name of def.operands) {
    const kind = OPERANDS[name].kind;
    if (kind !== "gpr" && kind !== "gpr0") continue;
    const r = EXTRACT[name](w);
    if (kind === "gpr0" && r === 0) continue;
    if (!gprs.includes(r)) gprs.push(r);
  }
  return { gprs, cr, linkOrCount };
}

/** Source code of one region under construction. */
class Emitter {
  readonly lines: string[] = [];
  /** GPRs held in locals. */
  readonly registers = new Set<number>();
  /** CR0 holds a pending record result (c0l, c0h, c0so) not yet folded into cr. */
  private cr0Pending = false;
  /**
   * Registers whose high word is known to be zero at this point of the block (32-bit code: loads
   * of words, rlwinm...): reads of it become the constant 0, which V8 folds away.
   */
  private readonly zeroHigh = new Set<number>();
  handlerCalls = 0;

  constructor(private readonly handlerIndex: (op: number) => string) {}

  emit(line: string): void {
    this.lines.push(line);
  }

  lo(r: number): string {
    this.registers.add(r);
    return `r${r}l`;
  }

  hi(r: number): string {
    this.registers.add(r);
    return this.zeroHigh.has(r) ? "0" : `r${r}h`;
  }

  /** The local holding rT's high word, for assignments. */
  highLocal(r: number): string {
    this.registers.add(r);
    return `r${r}h`;
  }

  /** Notes a direct assignment to a register (its high word is zero or unknown afterwards). */
  wrote(r: number, highIsZero: boolean): void {
    if (highIsZero) this.zeroHigh.add(r);
    else this.zeroHigh.delete(r);
  }

  /** Forgets what is known about register contents (at block starts and after handler calls). */
  forgetContents(): void {
    this.zeroHigh.clear();
  }

  /** (RA|0): the register's halves, or constant zero for r0. */
  lo0(r: number): string {
    return r === 0 ? "0" : this.lo(r);
  }

  hi0(r: number): string {
    return r === 0 ? "0" : this.hi(r);
  }

  /** rT ← (lo, hi), through temporaries so that sources equal to rT are read first. */
  set(r: number, lo: string, hi: string): void {
    this.emit(`t0 = ${lo}; t1 = ${hi}; ${this.lo(r)} = t0; ${this.highLocal(r)} = t1;`);
    this.wrote(r, ZERO_EXPRESSION.test(hi));
  }

  /** Records CR0 from rT's value (lazily). */
  record(r: number): void {
    this.emit(`c0l = ${this.lo(r)}; c0h = ${this.highLocal(r)}; c0so = cpu.so;`);
    this.cr0Pending = true;
  }

  /** Folds a pending CR0 into cr (before anything reads CR or CR leaves the region). */
  settleCr0(): void {
    if (!this.cr0Pending) return;
    this.emit("cr = (cr & 0x0fffffff) | (((c0h < 0 ? 8 : (c0h | c0l) !== 0 ? 4 : 2) | c0so) << 28);");
    this.cr0Pending = false;
  }

  /** CR0 is overwritten entirely: a pending record no longer matters. */
  dropCr0(): void {
    this.cr0Pending = false;
  }

  /** Sets CR field bf to a 4-bit expression. */
  setCrField(bf: number, value: string): void {
    if (bf === 0) this.dropCr0();
    const shift = 28 - 4 * bf;
    this.emit(`cr = (cr & ${hex(~(0xf << shift))}) | ((${value}) << ${shift});`);
  }

  /** The value (0 or 1) of CR bit `bit`. */
  crBit(bit: number): string {
    if (bit < 4) this.settleCr0();
    return `((cr >>> ${31 - bit}) & 1)`;
  }

  /**
   * Calls the interpreter's handler for an instruction. Only the state the handler can touch goes
   * through cpu: the GPRs it names (all locals when it may touch others), CR, LR and CTR.
   */
  callHandler(insn: Instruction, indexInBlock: number): void {
    this.settleCr0();
    this.handlerCalls++;
    this.emit(`at = ${insn.pc}; cpu.pc = ${insn.pc}; cpu.nia = ${insn.pc + 4};`);
    const usage = handlerUsage(insn);
    if (usage.gprs === null || usage.linkOrCount) {
      this.emit("/*SPILL*/");
    } else {
      const spill = usage.gprs.map((r) =>
        `g[${2 * r}] = ${this.lo(r)}; g[${2 * r + 1}] = ${this.highLocal(r)};`
      );
      if (usage.cr) spill.push("cpu.cr = cr;");
      if (spill.length > 0) this.emit(spill.join(" "));
    }
    this.emit(`H[${this.handlerIndex(insn.op)}](cpu, ${hex(insn.word)});`);
    if (usage.gprs === null || usage.linkOrCount) {
      this.emit("/*RELOAD*/");
      this.forgetContents();
    } else {
      const reload = usage.gprs.map((r) =>
        `${this.lo(r)} = g[${2 * r}]; ${this.highLocal(r)} = g[${2 * r + 1}];`
      );
      for (const r of usage.gprs) this.wrote(r, false);
      if (usage.cr) reload.push("cr = cpu.cr;");
      if (reload.length > 0) this.emit(reload.join(" "));
    }
    this.emit(
      `if (cpu.pendingStop !== ${StopReason.Budget}) { executed += cpu.pendingStop === ${StopReason.SystemCall} ? ${
        indexInBlock + 1
      } : ${indexInBlock}; pc = cpu.nia; break dispatch; }`,
    );
    this.emit(
      `if (cpu.codeVersion !== version) { executed += ${indexInBlock + 1}; pc = ${
        insn.pc + 4
      }; break dispatch; }`,
    );
  }
}

// Field extraction.
const rtOf = (w: number) => (w >>> 21) & 31;
const raOf = (w: number) => (w >>> 16) & 31;
const rbOf = (w: number) => (w >>> 11) & 31;
const simm = (w: number) => (w << 16) >> 16;
const uimm = (w: number) => w & 0xffff;
const record = (w: number) => (w & 1) !== 0;
const overflowEnable = (w: number) => ((w >>> 10) & 1) !== 0;
const sh6 = (w: number) => ((w >>> 11) & 31) | ((w & 2) << 4);
const mb6 = (w: number) => ((w >>> 6) & 31) | (w & 0x20);

/** rT ← a + b (64-bit) from halves expressions, optionally with a carry-in expression. */
function add64(e: Emitter, rt: number, alo: string, ahi: string, blo: string, bhi: string): void {
  e.emit(`t2 = (${alo} >>> 0) + (${blo} >>> 0);`);
  e.set(rt, "t2 | 0", `(${ahi} + ${bhi} + (t2 > 4294967295 ? 1 : 0)) | 0`);
}

/** rT ← a + constant (an int32, sign-extended). */
function addConstant(e: Emitter, rt: number, ra: number, value: number): void {
  if (ra === 0) return e.set(rt, `${value | 0}`, `${value < 0 ? -1 : 0}`);
  const lo = e.lo(ra), hi = e.hi(ra);
  if (value === 0) return e.set(rt, lo, hi);
  e.emit(`t2 = (${lo} >>> 0) + ${value >>> 0};`);
  e.set(rt, "t2 | 0", `(${hi} ${value < 0 ? "- 1 " : ""}+ (t2 > 4294967295 ? 1 : 0)) | 0`);
}

/** A 64-bit rotation left by a constant, into t2 (low) and t3 (high). */
function rotate64Constant(e: Emitter, lo: string, hi: string, n: number): void {
  if (n >= 32) [lo, hi] = [hi, lo];
  const k = n % 32;
  if (k === 0) e.emit(`t2 = ${lo}; t3 = ${hi};`);
  else e.emit(`t2 = (${lo} << ${k}) | (${hi} >>> ${32 - k}); t3 = (${hi} << ${k}) | (${lo} >>> ${32 - k});`);
}

/** The signed 4-bit comparison field of two 64-bit (or 32-bit) values. */
function compareField(
  signed: boolean,
  doubleword: boolean,
  alo: string,
  ahi: string,
  blo: string,
  bhi: string,
): string {
  const low = `((${alo} >>> 0) < (${blo} >>> 0) ? 8 : (${alo} >>> 0) > (${blo} >>> 0) ? 4 : 2)`;
  if (!doubleword) {
    return signed ? `((${alo} | 0) < (${blo} | 0) ? 8 : (${alo} | 0) > (${blo} | 0) ? 4 : 2)` : low;
  }
  const high = signed
    ? `${ahi} < ${bhi} ? 8 : ${ahi} > ${bhi} ? 4`
    : `(${ahi} >>> 0) < (${bhi} >>> 0) ? 8 : (${ahi} >>> 0) > (${bhi} >>> 0) ? 4`;
  return `(${high} : ${low})`;
}

/** An access size in bytes and how a load extends it. */
interface Access {
  readonly size: 1 | 2 | 4 | 8;
  readonly signed?: boolean;
  readonly store?: boolean;
  readonly indexed?: boolean;
  readonly ds?: boolean;
  readonly update?: boolean;
}

const ACCESSES: Record<string, Access> = {
  lbz: { size: 1 },
  lbzu: { size: 1, update: true },
  lbzx: { size: 1, indexed: true },
  lbzux: { size: 1, indexed: true, update: true },
  lhz: { size: 2 },
  lhzu: { size: 2, update: true },
  lhzx: { size: 2, indexed: true },
  lhzux: { size: 2, indexed: true, update: true },
  lha: { size: 2, signed: true },
  lhau: { size: 2, signed: true, update: true },
  lhax: { size: 2, signed: true, indexed: true },
  lwz: { size: 4 },
  lwzu: { size: 4, update: true },
  lwzx: { size: 4, indexed: true },
  lwzux: { size: 4, indexed: true, update: true },
  lwa: { size: 4, signed: true, ds: true },
  lwax: { size: 4, signed: true, indexed: true },
  ld: { size: 8, ds: true },
  ldu: { size: 8, ds: true, update: true },
  ldx: { size: 8, indexed: true },
  ldux: { size: 8, indexed: true, update: true },
  stb: { size: 1, store: true },
  stbu: { size: 1, store: true, update: true },
  stbx: { size: 1, store: true, indexed: true },
  stbux: { size: 1, store: true, indexed: true, update: true },
  sth: { size: 2, store: true },
  sthu: { size: 2, store: true, update: true },
  sthx: { size: 2, store: true, indexed: true },
  stw: { size: 4, store: true },
  stwu: { size: 4, store: true, update: true },
  stwx: { size: 4, store: true, indexed: true },
  stwux: { size: 4, store: true, indexed: true, update: true },
  std: { size: 8, store: true, ds: true },
  stdu: { size: 8, store: true, ds: true, update: true },
  stdx: { size: 8, store: true, indexed: true },
  stdux: { size: 8, store: true, indexed: true, update: true },
};

/** A load or store through the shared helpers; EA in el/eh. */
function access(e: Emitter, insn: Instruction, a: Access): void {
  const w = insn.word, ra = raOf(w), rt = rtOf(w);
  e.emit(`at = ${insn.pc};`);
  if (a.indexed) {
    const rb = rbOf(w);
    if (ra === 0) e.emit(`el = ${e.lo(rb)}; eh = ${e.hi(rb)};`);
    else {
      e.emit(`t2 = (${e.lo(ra)} >>> 0) + (${e.lo(rb)} >>> 0);`);
      e.emit(`el = t2 | 0; eh = (${e.hi(ra)} + ${e.hi(rb)} + (t2 > 4294967295 ? 1 : 0)) | 0;`);
    }
  } else {
    const displacement = a.ds ? simm(w) & ~3 : simm(w);
    if (ra === 0) e.emit(`el = ${displacement}; eh = ${displacement < 0 ? -1 : 0};`);
    else {
      e.emit(`t2 = (${e.lo(ra)} >>> 0) + ${displacement};`);
      const carry = displacement < 0 ? "- (t2 < 0 ? 1 : 0)" : "+ (t2 > 4294967295 ? 1 : 0)";
      e.emit(`el = t2 | 0; eh = (${e.hi(ra)} ${carry}) | 0;`);
    }
  }
  const size = a.size;
  if (a.store) {
    const value = size === 8 ? `${e.lo(rt)}, ${e.hi(rt)}` : e.lo(rt);
    const update = a.update ? `${e.lo(ra)} = el; ${e.highLocal(ra)} = eh; ` : "";
    e.emit(
      `if (store${size * 8}(T, cpu, el, eh, ${value})) { ${update}executed += INDEX + 1; pc = ${
        insn.pc + 4
      }; break dispatch; }`,
    );
    if (a.update) {
      e.emit(update);
      e.wrote(ra, false);
    }
    return;
  }
  e.emit(`t0 = load${size * 8}(T, cpu, el, eh);`);
  if (size === 8) e.emit("t1 = WIDE[1];");
  else {
    if (size === 2 && a.signed) e.emit("t0 = (t0 << 16) >> 16;");
    e.emit(`t1 = ${a.signed ? "t0 >> 31" : "0"};`);
  }
  e.emit(`${e.lo(rt)} = t0; ${e.highLocal(rt)} = t1;`);
  e.wrote(rt, size < 8 && !a.signed);
  if (a.update) {
    e.emit(`${e.lo(ra)} = el; ${e.highLocal(ra)} = eh;`);
    e.wrote(ra, false);
  }
}

/**
 * Templates: each emits an instruction's code and returns true, or returns false to have the
 * instruction call the interpreter's handler instead.
 */
const TEMPLATES: Record<string, (e: Emitter, insn: Instruction) => boolean> = {
  addi: (e, { word: w }) => (addConstant(e, rtOf(w), raOf(w), simm(w)), true),
  addis: (e, { word: w }) => (addConstant(e, rtOf(w), raOf(w), simm(w) << 16), true),
  add: (e, { word: w }) => {
    if (overflowEnable(w)) return false;
    add64(e, rtOf(w), e.lo(raOf(w)), e.hi(raOf(w)), e.lo(rbOf(w)), e.hi(rbOf(w)));
    if (record(w)) e.record(rtOf(w));
    return true;
  },
  subf: (e, { word: w }) => {
    if (overflowEnable(w)) return false;
    const a = raOf(w), b = rbOf(w);
    e.emit(`t2 = (${e.lo(b)} >>> 0) - (${e.lo(a)} >>> 0);`);
    e.set(rtOf(w), "t2 | 0", `(${e.hi(b)} - ${e.hi(a)} - (t2 < 0 ? 1 : 0)) | 0`);
    if (record(w)) e.record(rtOf(w));
    return true;
  },
  neg: (e, { word: w }) => {
    if (overflowEnable(w)) return false;
    const a = raOf(w);
    e.emit(`t2 = -(${e.lo(a)} >>> 0);`);
    e.set(rtOf(w), "t2 | 0", `(-${e.hi(a)} - (t2 < 0 ? 1 : 0)) | 0`);
    if (record(w)) e.record(rtOf(w));
    return true;
  },
  mullw: (e, { word: w }) => {
    if (overflowEnable(w)) return false;
    const a = e.lo(raOf(w)), b = e.lo(rbOf(w));
    e.set(rtOf(w), `Math.imul(${a}, ${b})`, `R.mulhw(${a}, ${b})`);
    if (record(w)) e.record(rtOf(w));
    return true;
  },
  mulhw: (e, { word: w }) => {
    e.emit(`t2 = R.mulhw(${e.lo(raOf(w))}, ${e.lo(rbOf(w))});`);
    e.set(rtOf(w), "t2", "t2 >> 31");
    if (record(w)) e.record(rtOf(w));
    return true;
  },
  mulhwu: (e, { word: w }) => {
    e.set(rtOf(w), `R.mulhwu(${e.lo(raOf(w))}, ${e.lo(rbOf(w))})`, "0");
    if (record(w)) e.record(rtOf(w));
    return true;
  },
  mulld: (e, { word: w }) => {
    if (overflowEnable(w)) return false;
    const a = raOf(w), b = rbOf(w);
    e.emit(`R.mul64(${e.lo(a)}, ${e.hi(a)}, ${e.lo(b)}, ${e.hi(b)});`);
    e.set(rtOf(w), "R.RESULT[0]", "R.RESULT[1]");
    if (record(w)) e.record(rtOf(w));
    return true;
  },
  mulli: (e, { word: w }) => {
    const a = raOf(w), value = simm(w);
    e.emit(`R.mul64(${e.lo(a)}, ${e.hi(a)}, ${value}, ${value < 0 ? -1 : 0});`);
    e.set(rtOf(w), "R.RESULT[0]", "R.RESULT[1]");
    return true;
  },
  divw: (e, { word: w }) => {
    if (overflowEnable(w)) return false;
    const a = e.lo(raOf(w)), b = e.lo(rbOf(w));
    e.emit(`t2 = ${b} === 0 || (${a} === -2147483648 && ${b} === -1) ? 0 : (${a} / ${b}) | 0;`);
    e.set(rtOf(w), "t2", "t2 >> 31");
    if (record(w)) e.record(rtOf(w));
    return true;
  },
  divwu: (e, { word: w }) => {
    if (overflowEnable(w)) return false;
    const a = e.lo(raOf(w)), b = e.lo(rbOf(w));
    e.emit(`t2 = ${b} === 0 ? 0 : ((${a} >>> 0) / (${b} >>> 0)) | 0;`);
    e.set(rtOf(w), "t2", "0");
    if (record(w)) e.record(rtOf(w));
    return true;
  },
  addic: (e, { word: w }) =>
    carrying(e, rtOf(w), e.lo(raOf(w)), e.hi(raOf(w)), `${simm(w)}`, `${simm(w) < 0 ? -1 : 0}`, "0", false),
  addicRecord: (e, { word: w }) => {
    carrying(e, rtOf(w), e.lo(raOf(w)), e.hi(raOf(w)), `${simm(w)}`, `${simm(w) < 0 ? -1 : 0}`, "0", false);
    e.record(rtOf(w));
    return true;
  },
  subfic: (e, { word: w }) =>
    carrying(
      e,
      rtOf(w),
      `~${e.lo(raOf(w))}`,
      `~${e.hi(raOf(w))}`,
      `${simm(w)}`,
      `${simm(w) < 0 ? -1 : 0}`,
      "1",
      false,
    ),
  addc: (e, { word: w }) =>
    !overflowEnable(w) &&
    carrying(e, rtOf(w), e.lo(raOf(w)), e.hi(raOf(w)), e.lo(rbOf(w)), e.hi(rbOf(w)), "0", record(w)),
  subfc: (e, { word: w }) =>
    !overflowEnable(w) &&
    carrying(
      e,
      rtOf(w),
      `~${e.lo(raOf(w))}`,
      `~${e.hi(raOf(w))}`,
      e.lo(rbOf(w)),
      e.hi(rbOf(w)),
      "1",
      record(w),
    ),
  adde: (e, { word: w }) =>
    !overflowEnable(w) &&
    carrying(e, rtOf(w), e.lo(raOf(w)), e.hi(raOf(w)), e.lo(rbOf(w)), e.hi(rbOf(w)), "cpu.ca", record(w)),
  subfe: (e, { word: w }) =>
    !overflowEnable(w) &&
    carrying(
      e,
      rtOf(w),
      `~${e.lo(raOf(w))}`,
      `~${e.hi(raOf(w))}`,
      e.lo(rbOf(w)),
      e.hi(rbOf(w)),
      "cpu.ca",
      record(w),
    ),
  addze: (e, { word: w }) =>
    !overflowEnable(w) && carrying(e, rtOf(w), e.lo(raOf(w)), e.hi(raOf(w)), "0", "0", "cpu.ca", record(w)),
  and: logical((a, b) => `${a} & ${b}`),
  or: logical((a, b) => `${a} | ${b}`),
  xor: logical((a, b) => `${a} ^ ${b}`),
  nand: logical((a, b) => `~(${a} & ${b})`),
  nor: logical((a, b) => `~(${a} | ${b})`),
  eqv: logical((a, b) => `~(${a} ^ ${b})`),
  andc: logical((a, b) => `${a} & ~${b}`),
  orc: logical((a, b) => `${a} | ~${b}`),
  andi: (e, { word: w }) => {
    e.set(raOf(w), `${e.lo(rtOf(w))} & ${uimm(w)}`, "0");
    e.record(raOf(w));
    return true;
  },
  andis: (e, { word: w }) => {
    e.set(raOf(w), `${e.lo(rtOf(w))} & ${hex(uimm(w) << 16)}`, "0");
    e.record(raOf(w));
    return true;
  },
  ori: (e, { word: w }) => (e.set(raOf(w), `${e.lo(rtOf(w))} | ${uimm(w)}`, e.hi(rtOf(w))), true),
  oris: (e, { word: w }) => (e.set(raOf(w), `${e.lo(rtOf(w))} | ${hex(uimm(w) << 16)}`, e.hi(rtOf(w))), true),
  xori: (e, { word: w }) => (e.set(raOf(w), `${e.lo(rtOf(w))} ^ ${uimm(w)}`, e.hi(rtOf(w))), true),
  xoris: (
    e,
    { word: w },
  ) => (e.set(raOf(w), `${e.lo(rtOf(w))} ^ ${hex(uimm(w) << 16)}`, e.hi(rtOf(w))), true),
  extsb: extend((s) => `(${s} << 24) >> 24`),
  extsh: extend((s) => `(${s} << 16) >> 16`),
  extsw: extend((s) => s),
  cntlzw: (e, { word: w }) => {
    e.set(raOf(w), `Math.clz32(${e.lo(rtOf(w))})`, "0");
    if (record(w)) e.record(raOf(w));
    return true;
  },
  cntlzd: (e, { word: w }) => {
    const s = rtOf(w);
    e.set(raOf(w), `${e.hi(s)} !== 0 ? Math.clz32(${e.hi(s)}) : 32 + Math.clz32(${e.lo(s)})`, "0");
    if (record(w)) e.record(raOf(w));
    return true;
  },
  rlwinm: (e, { word: w }) => {
    const sh = rbOf(w), mb = (w >>> 6) & 31, me = (w >>> 1) & 31, s = e.lo(rtOf(w));
    e.emit(`t2 = ${sh === 0 ? s : `(${s} << ${sh}) | (${s} >>> ${32 - sh})`};`);
    e.set(raOf(w), `t2 & ${hex(mask32(mb, me))}`, mb > me ? "t2" : "0");
    if (record(w)) e.record(raOf(w));
    return true;
  },
  rlwnm: (e, { word: w }) => {
    const mb = (w >>> 6) & 31, me = (w >>> 1) & 31, s = e.lo(rtOf(w));
    e.emit(`t3 = ${e.lo(rbOf(w))} & 31; t2 = t3 === 0 ? ${s} : (${s} << t3) | (${s} >>> (32 - t3));`);
    e.set(raOf(w), `t2 & ${hex(mask32(mb, me))}`, mb > me ? "t2" : "0");
    if (record(w)) e.record(raOf(w));
    return true;
  },
  rlwimi: (e, { word: w }) => {
    const sh = rbOf(w), mb = (w >>> 6) & 31, me = (w >>> 1) & 31, s = e.lo(rtOf(w)), a = raOf(w);
    const mask = mask32(mb, me);
    e.emit(`t2 = ${sh === 0 ? s : `(${s} << ${sh}) | (${s} >>> ${32 - sh})`};`);
    e.set(a, `(t2 & ${hex(mask)}) | (${e.lo(a)} & ${hex(~mask)})`, mb > me ? "t2" : e.hi(a));
    if (record(w)) e.record(a);
    return true;
  },
  rldicl: rotateMask((w) => [mb6(w), 63]),
  rldicr: rotateMask((w) => [0, mb6(w)]),
  rldic: rotateMask((w) => [mb6(w), 63 - sh6(w)]),
  rldimi: (e, { word: w }) => {
    const s = rtOf(w), a = raOf(w), n = sh6(w);
    rotate64Constant(e, e.lo(s), e.hi(s), n);
    mask64(mb6(w), 63 - n);
    const mlo = RESULT[0], mhi = RESULT[1];
    e.set(
      a,
      `(t2 & ${hex(mlo)}) | (${e.lo(a)} & ${hex(~mlo)})`,
      `(t3 & ${hex(mhi)}) | (${e.hi(a)} & ${hex(~mhi)})`,
    );
    if (record(w)) e.record(a);
    return true;
  },
  slw: (e, { word: w }) => {
    e.emit(`t2 = ${e.lo(rbOf(w))} & 63;`);
    e.set(raOf(w), `t2 < 32 ? ${e.lo(rtOf(w))} << t2 : 0`, "0");
    if (record(w)) e.record(raOf(w));
    return true;
  },
  srw: (e, { word: w }) => {
    e.emit(`t2 = ${e.lo(rbOf(w))} & 63;`);
    e.set(raOf(w), `t2 < 32 ? (${e.lo(rtOf(w))} >>> t2) | 0 : 0`, "0");
    if (record(w)) e.record(raOf(w));
    return true;
  },
  srawi: (e, { word: w }) => {
    const n = rbOf(w), s = e.lo(rtOf(w));
    const lost = n === 0 ? "0" : `${s} & ${hex((1 << n) - 1)}`;
    e.emit(`cpu.ca = cpu.ca32 = ${s} < 0 && (${lost}) !== 0 ? 1 : 0;`);
    e.emit(`t2 = ${s} >> ${n};`);
    e.set(raOf(w), "t2", "t2 >> 31");
    if (record(w)) e.record(raOf(w));
    return true;
  },
  sld: (e, { word: w }) => {
    const s = rtOf(w), l = e.lo(s), h = e.hi(s);
    e.emit(`t3 = ${e.lo(rbOf(w))} & 127;`);
    e.emit(
      `if (t3 >= 64) { t2 = 0; t3 = 0; } else if (t3 >= 32) { t3 = ${l} << (t3 - 32); t2 = 0; } else if (t3 !== 0) { t2 = ${l} << t3; t3 = (${h} << t3) | (${l} >>> (32 - t3)); } else { t2 = ${l}; t3 = ${h}; }`,
    );
    e.set(raOf(w), "t2", "t3");
    if (record(w)) e.record(raOf(w));
    return true;
  },
  srd: (e, { word: w }) => {
    const s = rtOf(w), l = e.lo(s), h = e.hi(s);
    e.emit(`t3 = ${e.lo(rbOf(w))} & 127;`);
    e.emit(
      `if (t3 >= 64) { t2 = 0; t3 = 0; } else if (t3 >= 32) { t2 = ${h} >>> (t3 - 32); t3 = 0; } else if (t3 !== 0) { t2 = (${l} >>> t3) | (${h} << (32 - t3)); t3 = ${h} >>> t3; } else { t2 = ${l}; t3 = ${h}; }`,
    );
    e.set(raOf(w), "t2 | 0", "t3 | 0");
    if (record(w)) e.record(raOf(w));
    return true;
  },
  sradi: (e, { word: w }) => {
    const n = sh6(w), s = rtOf(w), l = e.lo(s), h = e.hi(s);
    let lost: string;
    if (n === 0) lost = "0";
    else if (n < 32) lost = `${l} & ${hex((1 << n) - 1)}`;
    else lost = n === 32 ? l : `${l} | (${h} & ${hex((1 << (n - 32)) - 1)})`;
    e.emit(`cpu.ca = cpu.ca32 = ${h} < 0 && (${lost}) !== 0 ? 1 : 0;`);
    if (n === 0) e.emit(`t2 = ${l}; t3 = ${h};`);
    else if (n < 32) e.emit(`t2 = (${l} >>> ${n}) | (${h} << ${32 - n}); t3 = ${h} >> ${n};`);
    else e.emit(`t2 = ${h} >> ${n - 32}; t3 = ${h} >> 31;`);
    e.set(raOf(w), "t2", "t3");
    if (record(w)) e.record(raOf(w));
    return true;
  },
  cmp: (e, { word: w }) => compare(e, w, true, false),
  cmpl: (e, { word: w }) => compare(e, w, false, false),
  cmpi: (e, { word: w }) => compare(e, w, true, true),
  cmpli: (e, { word: w }) => compare(e, w, false, true),
  isel: (e, { word: w }) => {
    const a = raOf(w), b = rbOf(w);
    e.emit(`t2 = ${e.crBit((w >>> 6) & 31)};`);
    e.set(rtOf(w), `t2 ? ${e.lo0(a)} : ${e.lo(b)}`, `t2 ? ${e.hi0(a)} : ${e.hi(b)}`);
    return true;
  },
  crand: crLogical((a, b) => `${a} & ${b}`),
  crnand: crLogical((a, b) => `~(${a} & ${b})`),
  cror: crLogical((a, b) => `${a} | ${b}`),
  crnor: crLogical((a, b) => `~(${a} | ${b})`),
  crxor: crLogical((a, b) => `${a} ^ ${b}`),
  creqv: crLogical((a, b) => `~(${a} ^ ${b})`),
  crandc: crLogical((a, b) => `${a} & ~${b}`),
  crorc: crLogical((a, b) => `${a} | ~${b}`),
  mfcr: (e, { word: w }) => {
    e.settleCr0();
    e.set(rtOf(w), "cr", "0");
    return true;
  },
  mtcrf: (e, { word: w }) => {
    let mask = 0;
    const fxm = (w >>> 12) & 0xff;
    for (let field = 0; field < 8; field++) if (fxm & (0x80 >>> field)) mask |= 0xf << (28 - 4 * field);
    e.settleCr0();
    e.emit(`cr = (cr & ${hex(~mask)}) | (${e.lo(rtOf(w))} & ${hex(mask)});`);
    return true;
  },
  mfspr: (e, { word: w }) => {
    const spr = ((w >>> 16) & 31) | (((w >>> 11) & 31) << 5);
    if (spr === 8) e.set(rtOf(w), "lrl", "lrh");
    else if (spr === 9) e.set(rtOf(w), "ctrl", "ctrh");
    else return false;
    return true;
  },
  mtspr: (e, { word: w }) => {
    const spr = ((w >>> 16) & 31) | (((w >>> 11) & 31) << 5), s = rtOf(w);
    if (spr === 8) e.emit(`lrl = ${e.lo(s)}; lrh = ${e.hi(s)};`);
    else if (spr === 9) e.emit(`ctrl = ${e.lo(s)}; ctrh = ${e.hi(s)};`);
    else return false;
    return true;
  },
  xxlor: (e, { word: w }) => (copyOr(e, xt(w), xa(w), xb(w)), true),
  vor: (e, { word: w }) => (copyOr(e, 32 + rtOf(w), 32 + raOf(w), 32 + rbOf(w)), true),
  mfvsrwz: (e, { word: w }) => (e.set(raOf(w), `VW[${4 * xt(w) + 2}]`, "0"), true),
  mfvsrd: (e, { word: w }) => (e.set(raOf(w), `VW[${4 * xt(w) + 2}]`, `VW[${4 * xt(w) + 3}]`), true),
  mtvsrwz: (e, { word: w }) => {
    e.emit(`VW[${4 * xt(w) + 2}] = ${e.lo(raOf(w))}; VW[${4 * xt(w) + 3}] = 0;`);
    return true;
  },
  mtvsrd: (e, { word: w }) => {
    e.emit(`VW[${4 * xt(w) + 2}] = ${e.lo(raOf(w))}; VW[${4 * xt(w) + 3}] = ${e.hi(raOf(w))};`);
    return true;
  },
  fmr: (e, { word: w }) => {
    if (record(w)) return false;
    const t = 4 * rtOf(w), b = 4 * rbOf(w);
    e.emit(`VW[${t + 2}] = VW[${b + 2}]; VW[${t + 3}] = VW[${b + 3}]; VW[${t}] = 0; VW[${t + 1}] = 0;`);
    return true;
  },
  sync: () => true,
  isync: () => true,
  eieio: () => true,
  dcbt: () => true,
  dcbtst: () => true,
};
TEMPLATES.mtocrf = TEMPLATES.mtcrf;
for (const [mnemonic, shape] of Object.entries(ACCESSES)) {
  TEMPLATES[mnemonic] = (e, insn) => (access(e, insn, shape), true);
}

const xt = (w: number) => ((w & 1) << 5) | ((w >>> 21) & 31);
const xa = (w: number) => ((w & 4) << 3) | ((w >>> 16) & 31);
const xb = (w: number) => ((w & 2) << 4) | ((w >>> 11) & 31);

/** VSR t ← VSR a | VSR b (xxlor and vor; register moves when a = b). */
function copyOr(e: Emitter, t: number, a: number, b: number): void {
  const words = [0, 1, 2, 3].map((k) => a === b ? `VW[${4 * a + k}]` : `VW[${4 * a + k}] | VW[${4 * b + k}]`);
  e.emit(`t0 = ${words[0]}; t1 = ${words[1]}; t2 = ${words[2]}; t3 = ${words[3]};`);
  e.emit(`VW[${4 * t}] = t0; VW[${4 * t + 1}] = t1; VW[${4 * t + 2}] = t2; VW[${4 * t + 3}] = t3;`);
}

/** The carrying additions: rT ← a + b + carry-in, CA and CA32 from the sums. */
function carrying(
  e: Emitter,
  rt: number,
  alo: string,
  ahi: string,
  blo: string,
  bhi: string,
  carryIn: string,
  recordResult: boolean,
): boolean {
  e.emit(
    `t2 = ((${alo}) >>> 0) + ((${blo}) >>> 0) + ${carryIn}; t3 = ((${ahi}) >>> 0) + ((${bhi}) >>> 0) + (t2 > 4294967295 ? 1 : 0);`,
  );
  e.emit("cpu.ca32 = t2 > 4294967295 ? 1 : 0; cpu.ca = t3 > 4294967295 ? 1 : 0;");
  e.set(rt, "t2 | 0", "t3 | 0");
  if (recordResult) e.record(rt);
  return true;
}

function logical(operation: (a: string, b: string) => string): (e: Emitter, insn: Instruction) => boolean {
  return (e, { word: w }) => {
    const s = rtOf(w), b = rbOf(w);
    e.set(raOf(w), operation(e.lo(s), e.lo(b)), operation(e.hi(s), e.hi(b)));
    if (record(w)) e.record(raOf(w));
    return true;
  };
}

function extend(operation: (s: string) => string): (e: Emitter, insn: Instruction) => boolean {
  return (e, { word: w }) => {
    e.emit(`t2 = ${operation(e.lo(rtOf(w)))};`);
    e.set(raOf(w), "t2", "t2 >> 31");
    if (record(w)) e.record(raOf(w));
    return true;
  };
}

function rotateMask(bounds: (w: number) => [number, number]): (e: Emitter, insn: Instruction) => boolean {
  return (e, { word: w }) => {
    const s = rtOf(w);
    rotate64Constant(e, e.lo(s), e.hi(s), sh6(w));
    const [begin, end] = bounds(w);
    mask64(begin, end);
    e.set(raOf(w), `t2 & ${hex(RESULT[0])}`, `t3 & ${hex(RESULT[1])}`);
    if (record(w)) e.record(raOf(w));
    return true;
  };
}

function compare(e: Emitter, w: number, signed: boolean, immediate: boolean): boolean {
  const a = raOf(w), doubleword = ((w >>> 21) & 1) !== 0;
  let blo: string, bhi: string;
  if (immediate) {
    const value = signed ? simm(w) : uimm(w);
    blo = `${value}`;
    bhi = `${signed && value < 0 ? -1 : 0}`;
  } else {
    blo = e.lo(rbOf(w));
    bhi = e.hi(rbOf(w));
  }
  const field = compareField(signed, doubleword, e.lo(a), e.hi(a), blo, bhi);
  e.setCrField(rtOf(w) >>> 2, `${field} | cpu.so`);
  return true;
}

function crLogical(operation: (a: string, b: string) => string): (e: Emitter, insn: Instruction) => boolean {
  return (e, { word: w }) => {
    const bt = rtOf(w);
    e.emit(`t2 = (${operation(e.crBit(raOf(w)), e.crBit(rbOf(w)))}) & 1;`);
    if (bt < 4) e.settleCr0();
    e.emit(`cr = t2 ? cr | ${hex(1 << (31 - bt))} : cr & ${hex(~(1 << (31 - bt)))};`);
    return true;
  };
}

export class Translator {
  readonly statistics: TranslatorStatistics = {
    regions: 0,
    translatedInstructions: 0,
    handlerInstructions: 0,
    invalidatedRegions: 0,
  };
  private readonly entries = new Map<number, Entry>();
  private readonly regionsByPage = new Map<number, Region[]>();
  private readonly heat = new Map<number, number>();
  /**
   * Block starts the interpreter has executed: regions include only blocks seen to run, so that
   * their code has type feedback when V8 optimizes it (a cold path deoptimizes the whole region).
   */
  private readonly executedBlocks = new Set<number>();
  /** Entries that could not be translated (their first instruction is not decodable). */
  private readonly untranslatable = new Set<number>();
  private readonly hotThreshold: number;
  private readonly maxRegionCost: number;

  constructor(
    private readonly cpu: Cpu,
    private readonly handlers: readonly Semantics[],
    options: TranslatorOptions = {},
  ) {
    this.hotThreshold = options.hotThreshold ?? DEFAULT_HOT_THRESHOLD;
    this.maxRegionCost = options.maxRegionCost ?? DEFAULT_MAX_REGION_COST;
  }

  /**
   * Runs up to `budget` instructions (counted in cpu.executedThisRun): translated regions where
   * there are, the interpreter block by block elsewhere, until the budget is spent or the CPU
   * stops.
   */
  execute(budget: number): void {
    const cpu = this.cpu;
    while (cpu.executedThisRun < budget && cpu.pendingStop === StopReason.Budget) {
      const pc = cpu.pc;
      let entry = this.entries.get(pc);
      if (entry === undefined && !this.untranslatable.has(pc)) {
        this.executedBlocks.add(pc);
        const count = (this.heat.get(pc) ?? 0) + 1;
        this.heat.set(pc, count);
        if (count >= this.hotThreshold) {
          this.heat.delete(pc);
          entry = this.translate(pc);
        }
      }
      const remaining = budget - cpu.executedThisRun;
      if (entry !== undefined) {
        const before = cpu.executedThisRun;
        entry.region.run(cpu, remaining, entry.block);
        // A block larger than the remaining budget made no progress: finish in the interpreter.
        if (cpu.executedThisRun === before && cpu.pendingStop === StopReason.Budget && cpu.pc === pc) {
          cpu.interpret(remaining, false);
        }
      } else {
        cpu.interpret(remaining, true);
      }
    }
  }

  invalidatePage(page: number): void {
    const regions = this.regionsByPage.get(page);
    if (regions === undefined) return;
    this.regionsByPage.delete(page);
    const dropped = new Set(regions);
    for (const [pc, entry] of this.entries) if (dropped.has(entry.region)) this.entries.delete(pc);
    for (const pc of this.untranslatable) {
      if (Math.floor(pc / PAGE_BYTES) === page) this.untranslatable.delete(pc);
    }
    for (const pc of this.executedBlocks) {
      if (Math.floor(pc / PAGE_BYTES) === page) this.executedBlocks.delete(pc);
    }
    this.statistics.invalidatedRegions += regions.length;
  }

  invalidateAll(): void {
    for (const regions of this.regionsByPage.values()) this.statistics.invalidatedRegions += regions.length;
    this.entries.clear();
    this.regionsByPage.clear();
    this.untranslatable.clear();
    this.heat.clear();
    this.executedBlocks.clear();
  }

  /** Builds the region whose entry is pc; undefined when pc cannot start one. */
  private translate(entry: number): Entry | undefined {
    const blocks = this.discover(entry);
    if (blocks.length === 0 || blocks[0].instructions.length === 0) {
      this.untranslatable.add(entry);
      return undefined;
    }
    const region = this.compile(blocks);
    // A first call with no budget runs the prologue and epilogue, so that V8 has type feedback
    // for them before it optimizes the region (its long loops would otherwise be optimized with
    // the exit path never seen, and deoptimize on every exit).
    region.run(this.cpu, 0, 0);
    for (const page of region.pages) {
      const list = this.regionsByPage.get(page) ?? [];
      list.push(region);
      this.regionsByPage.set(page, list);
    }
    this.statistics.regions++;
    blocks.forEach((block, index) => {
      if (!this.entries.has(block.start)) this.entries.set(block.start, { region, block: index });
    });
    return this.entries.get(entry);
  }

  /**
   * The blocks reachable from entry by direct branches and fall-throughs that the interpreter has
   * executed, within MAX_REGION_PAGES pages around it.
   */
  private discover(entry: number): Block[] {
    const firstPage = Math.floor(entry / PAGE_BYTES) - (MAX_REGION_PAGES >> 1);
    const low = Math.max(0, firstPage * PAGE_BYTES), high = (firstPage + MAX_REGION_PAGES) * PAGE_BYTES;
    const blocks: Block[] = [];
    const seen = new Set<number>();
    const work = [entry];
    let total = 0;
    while (work.length > 0 && total < this.maxRegionCost) {
      const start = work.shift()!;
      if (seen.has(start)) continue;
      seen.add(start);
      const block = this.scan(start, high, this.maxRegionCost - total);
      if (block.instructions.length === 0) continue;
      blocks.push(block);
      total += block.cost;
      for (const target of this.successors(block)) {
        // Code another region already holds is reached through it rather than translated twice.
        if (
          target >= low && target < high && !seen.has(target) && this.executedBlocks.has(target) &&
          !this.entries.has(target)
        ) {
          work.push(target);
        }
      }
    }
    return blocks;
  }

  /**
   * Decodes a basic block from start: up to a branch, sc, the region's end, an undecodable word or
   * the cost limit.
   */
  private scan(start: number, end: number, limit: number): Block {
    const instructions: Instruction[] = [];
    let pc = start, cost = 0;
    while (pc < end && cost < limit) {
      let op: number;
      try {
        op = this.cpu.decodeAt(pc);
      } catch (error) {
        if (error instanceof MemoryFault) break;
        throw error;
      }
      if (op < 0) break;
      const mnemonic = INSTRUCTIONS[op].mnemonic;
      const word = this.cpu.fetchedWord;
      if (BRANCHES.has(mnemonic) && !this.directTargetsInRange(pc, mnemonic, word)) break;
      instructions.push({ pc, op, word, mnemonic });
      cost += TEMPLATES[INSTRUCTIONS[op].semantics] === undefined ? HANDLER_COST : 1;
      pc += 4;
      if (ENDS_BLOCK.has(mnemonic)) break;
    }
    return { start, instructions, next: pc, cost };
  }

  /** Direct branch targets outside [0, 2^53) are left to the interpreter (they fault). */
  private directTargetsInRange(pc: number, mnemonic: string, word: number): boolean {
    const target = directTarget(pc, mnemonic, word);
    return target === null || (target >= 0 && target < ADDRESS_LIMIT);
  }

  /**
   * Where a block continues: its branch target, and the next instruction unless the block ends in
   * an unconditional branch that does not link (after sc and calls, execution returns there).
   */
  private successors(block: Block): number[] {
    const last = block.instructions[block.instructions.length - 1];
    if (!ENDS_BLOCK.has(last.mnemonic)) return [block.next];
    const targets: number[] = [];
    const target = directTarget(last.pc, last.mnemonic, last.word);
    if (target !== null) targets.push(target);
    const links = BRANCHES.has(last.mnemonic) && (last.word & 1) !== 0;
    if (links || !isUnconditional(last.mnemonic, last.word)) targets.push(last.pc + 4);
    return targets;
  }

  private compile(blocks: Block[]): Region {
    const handlerIndices = new Map<number, number>();
    const handlers: Semantics[] = [];
    const handlerIndex = (op: number) => {
      let index = handlerIndices.get(op);
      if (index === undefined) {
        index = handlers.length;
        handlers.push(this.handlers[op]);
        handlerIndices.set(op, index);
      }
      return String(index);
    };
    const e = new Emitter(handlerIndex);
    const blockIndex = new Map(blocks.map((block, index) => [block.start, index]));
    blocks.forEach((block, index) => this.compileBlock(e, block, index, blockIndex));
    this.statistics.translatedInstructions += blocks.reduce((n, b) => n + b.instructions.length, 0);
    this.statistics.handlerInstructions += e.handlerCalls;

    const registers = [...e.registers].sort((a, b) => a - b);
    const load = registers.map((r) => `r${r}l = g[${2 * r}]; r${r}h = g[${2 * r + 1}];`).join(" ");
    const store = registers.map((r) => `g[${2 * r}] = r${r}l; g[${2 * r + 1}] = r${r}h;`).join(" ");
    const spill = `${store} cpu.cr = cr; cpu.lrLo = lrl; cpu.lrHi = lrh; cpu.ctrLo = ctrl; cpu.ctrHi = ctrh;`;
    const reload = `${load} cr = cpu.cr; lrl = cpu.lrLo; lrh = cpu.lrHi; ctrl = cpu.ctrLo; ctrh = cpu.ctrHi;`;
    const declarations = registers.map((r) => `r${r}l = 0, r${r}h = 0`).join(", ");
    const body = e.lines.map((line) => line === "/*SPILL*/" ? spill : line === "/*RELOAD*/" ? reload : line)
      .join("\n");
    const starts = blocks.map((b) => b.start).join(", ");
    const source = `
const starts = [${starts}];
const { load8, load16, load32, load64, store8, store16, store32, store64, WIDE } = R;
return function region(cpu, budget, block) {
  const g = cpu.gpr, VW = cpu.vsrWords;
  const T = cpu.memory.tlb ?? R.NO_TLB;
  const version = cpu.codeVersion;
  let ${declarations ? declarations + ", " : ""}cr = 0, lrl = 0, lrh = 0, ctrl = 0, ctrh = 0;
  let c0l = 0, c0h = 0, c0so = 0, t0 = 0, t1 = 0, t2 = 0, t3 = 0, el = 0, eh = 0;
  let executed = 0, at = 0, pc = 0;
  ${reload}
  try {
    dispatch: for (;;) {
      switch (block) {
${body}
      }
    }
  } catch (error) {
    ${spill}
    cpu.pc = at;
    cpu.executedThisRun += executed + (at - starts[block]) / 4;
    throw error;
  }
  ${spill}
  cpu.pc = pc;
  cpu.executedThisRun += executed;
};`;
    const factory = new Function("R", "H", source) as (
      runtime: typeof RUNTIME,
      handlers: readonly Semantics[],
    ) => Region["run"];
    const pages = new Set<number>();
    for (const block of blocks) {
      for (const insn of block.instructions) pages.add(Math.floor(insn.pc / PAGE_BYTES));
    }
    return { run: factory(RUNTIME, handlers), pages: [...pages] };
  }

  private compileBlock(e: Emitter, block: Block, index: number, blockIndex: Map<number, number>): void {
    const count = block.instructions.length;
    e.forgetContents();
    e.emit(`case ${index}: {`);
    e.emit(`if (executed + ${count} > budget) { pc = ${block.start}; break dispatch; }`);
    block.instructions.forEach((insn, k) => {
      if (ENDS_BLOCK.has(insn.mnemonic)) return;
      const mark = e.lines.length;
      const template = TEMPLATES[INSTRUCTIONS[insn.op].semantics];
      if (template === undefined || !template(e, insn)) {
        e.lines.length = mark;
        e.callHandler(insn, k);
      } else {
        for (let i = mark; i < e.lines.length; i++) e.lines[i] = e.lines[i].replaceAll("INDEX", String(k));
      }
    });
    const last = block.instructions[count - 1];
    if (!ENDS_BLOCK.has(last.mnemonic)) {
      e.settleCr0();
      e.emit(`executed += ${count};`);
      this.jump(e, block.next, blockIndex);
    } else if (last.mnemonic === "sc" || last.mnemonic === "scv") {
      e.callHandler(last, count - 1);
      e.emit(`executed += ${count}; pc = ${last.pc + 4}; break dispatch;`);
    } else {
      this.branch(e, last, count, blockIndex);
    }
    e.emit("}");
  }

  /** Continues at a pc: within the region, or by leaving it. */
  private jump(e: Emitter, target: number, blockIndex: Map<number, number>): void {
    const index = blockIndex.get(target);
    if (index !== undefined) e.emit(`block = ${index}; continue dispatch;`);
    else e.emit(`pc = ${target}; break dispatch;`);
  }

  private branch(e: Emitter, insn: Instruction, count: number, blockIndex: Map<number, number>): void {
    const w = insn.word, link = (w & 1) !== 0;
    const linkValue = () => {
      const next = insn.pc + 4;
      e.emit(`lrl = ${next | 0}; lrh = ${Math.floor(next / TWO_32)};`);
    };
    if (insn.mnemonic === "b") {
      e.settleCr0();
      e.emit(`executed += ${count};`);
      if (link) linkValue();
      this.jump(e, directTarget(insn.pc, "b", w)!, blockIndex);
      return;
    }
    const bo = rtOf(w), bi = raOf(w);
    const conditions: string[] = [];
    if ((bo & 4) === 0) {
      e.emit("ctrh = (ctrh - (ctrl === 0 ? 1 : 0)) | 0; ctrl = (ctrl - 1) | 0;");
      conditions.push((bo & 2) !== 0 ? "(ctrl | ctrh) === 0" : "(ctrl | ctrh) !== 0");
    }
    if ((bo & 0x10) === 0) conditions.push(`${e.crBit(bi)} === ${(bo >>> 3) & 1}`);
    e.settleCr0();
    const taken = conditions.length === 0 ? "true" : conditions.join(" && ");
    e.emit(`executed += ${count};`);
    if (insn.mnemonic === "bc") {
      if (link) linkValue();
      e.emit(`if (${taken}) {`);
      this.jump(e, directTarget(insn.pc, "bc", w)!, blockIndex);
      e.emit("}");
      this.jump(e, insn.pc + 4, blockIndex);
      return;
    }
    // bclr, bcctr, bctar: the target is read before LR is updated, then the region is left.
    const source = insn.mnemonic === "bclr"
      ? "lrl, lrh"
      : insn.mnemonic === "bcctr"
      ? "ctrl, ctrh"
      : "cpu.tarLo, cpu.tarHi";
    const [sourceLo, sourceHi] = source.split(", ");
    e.emit(`t2 = ${sourceLo}; t3 = ${sourceHi};`);
    if (link) linkValue();
    e.emit(`if (${taken}) {`);
    e.emit(
      "if ((t3 >>> 0) >= 0x200000) { cpu.branchTo(t2, t3); pc = cpu.nia; } else pc = (t3 >>> 0) * 4294967296 + ((t2 & ~3) >>> 0);",
    );
    e.emit("break dispatch; }");
    this.jump(e, insn.pc + 4, blockIndex);
  }
}

/** The target of a direct branch (b, bc), or null for the others. */
function directTarget(pc: number, mnemonic: string, word: number): number | null {
  const absolute = (word & 2) !== 0;
  if (mnemonic === "b") {
    const displacement = ((word << 6) >> 8) << 2;
    return absolute ? displacement : pc + displacement;
  }
  if (mnemonic === "bc") {
    const displacement = simm(word) & ~3;
    return absolute ? displacement : pc + displacement;
  }
  return null;
}

/** A branch that is always taken (b, or BO = 1z1zz), or sc and scv. */
function isUnconditional(mnemonic: string, word: number): boolean {
  if (mnemonic === "b") return true;
  if (!BRANCHES.has(mnemonic)) return false;
  const bo = rtOf(word);
  return (bo & 0x14) === 0x14;
}

// The CPU: its state, with 64-bit registers as pairs of int32 halves (no BigInt on the hot path),
// and the instruction interpreter, with a decoded-instruction cache per guest page and CR0
// computed lazily from the last recorded result.
//
// Every instruction of the table has its semantics in one place, chosen by the table entry's
// semantics name: the fixed-point, branch, condition-register, storage and SPR instructions here;
// binary floating point in fpu.ts; VMX and VSX in vector.ts; VSX quad precision in quad.ts; vector
// decimal in decimal.ts; the vector crypto instructions in crypto.ts. Instructions of the
// facilities no file implements (transactional memory) stop the CPU with FacilityUnavailable, as
// a POWER CPU raises a facility-unavailable interrupt for a facility that is off. The block
// translator (translator.ts, enabled with enableTranslation) runs hot code as JavaScript built
// from the same decoded instructions and calls these semantics for what it has no template for.
//
// The CPU runs until a budget of instructions is spent or an instruction needs the kernel side:
// a system call, a program interrupt (illegal or privileged instruction, trap, enabled
// floating-point exception), a storage fault, an alignment interrupt. run() then returns the
// reason, with the details in the CPU's fields, and the machine resumes it with run() again once
// the trap is answered.

import { decodeOp, INSTRUCTIONS } from "./decode.ts";
import type { Facility } from "./isa.ts";
import {
  clz64,
  compareSigned64,
  compareUnsigned64,
  ctz32,
  divide64,
  divideExtended64,
  mask32,
  mask64,
  mul64,
  mulhd,
  mulhdu,
  mulhw,
  mulhwu,
  multiplyAdd,
  popcount32,
  RESULT,
  rotl64,
  toBigInt,
} from "./int64.ts";
import { FLOATING_POINT_SEMANTICS } from "./fpu.ts";
import { VECTOR_SEMANTICS } from "./vector.ts";
import { Translator, type TranslatorOptions, type TranslatorStatistics } from "./translator.ts";
import { StopReason } from "./stop.ts";
import { DECIMAL_SEMANTICS } from "./decimal.ts";
import { CRYPTO_SEMANTICS } from "./crypto.ts";
import { QUAD_SEMANTICS } from "./quad.ts";
import {
  type AccessKind,
  type CpuMemory,
  eaDisplacement,
  eaIndexed,
  type FaultCause,
  HIGH_WORD_LIMIT,
  MemoryFault,
  putAddress,
  TWO_32,
} from "./access.ts";

/** Effective addresses are kept as numbers below this bound (2^53). */
const ADDRESS_LIMIT = 2 ** 53;
const PAGE_SHIFT = 12;
const PAGE_SIZE = 1 << PAGE_SHIFT;
const UNDECODED = -2;
/** Size of a data cache block, zeroed by dcbz (AT_DCACHEBSIZE). */
export const DCACHE_BLOCK_BYTES = 128;

export { type AccessKind, type CpuMemory, type FaultCause, MemoryFault };

export { StopReason };

/** "floating-point": an enabled floating-point exception (FPSCR[FEX] set); the FPSCR tells which. */
export type ProgramReason = "illegal-instruction" | "privileged-instruction" | "trap" | "floating-point";

/** One page of decoded instructions: op ids (UNDECODED until first executed) and their words. */
interface CodePage {
  readonly ops: Int16Array;
  readonly words: Int32Array;
}

/** The state of one CPU (one hardware thread). */
export class Cpu {
  /** r0..r31 as (low, high) word pairs: r[n] is gpr[2n] (bits 32:63) and gpr[2n + 1] (bits 0:31). */
  readonly gpr = new Int32Array(64);
  /** Address of the instruction to execute. */
  pc = 0;
  /** Address of the next instruction, set before each instruction executes; branches change it. */
  nia = 0;
  lrLo = 0;
  lrHi = 0;
  ctrLo = 0;
  ctrHi = 0;
  tarLo = 0;
  tarHi = 0;
  dscrLo = 0;
  dscrHi = 0;
  pprLo = 0;
  /** PPR bits 0:31 hold the thread priority; 4 (medium) after reset. */
  pprHi = 0x00100000;
  vrsave = 0;
  /** User AMR (storage key masks); kept, not enforced. */
  amrLo = 0;
  amrHi = 0;
  /** XER as its fields: SO, OV, CA, OV32, CA32 (0 or 1) and the byte count of string instructions. */
  so = 0;
  ov = 0;
  ca = 0;
  ov32 = 0;
  ca32 = 0;
  xerBytes = 0;
  /** The condition register, except CR0 while a lazy result is pending. */
  private crBits = 0;
  private cr0Pending = false;
  private cr0Lo = 0;
  private cr0Hi = 0;
  private cr0So = 0;
  /** The load-and-reserve reservation. */
  reservationValid = false;
  reservationAddress = 0;
  reservationSize = 0;
  /**
   * The vector-scalar registers vs0..vs63, 16 bytes each, every register stored as its 128-bit
   * value in little-endian byte order (the order stxv writes in little-endian mode): ISA byte i of
   * vs[n] is vsrBytes[16n + 15 − i], ISA halfword i is vsrHalves[8n + 7 − i], ISA word i is
   * vsrWords[4n + 3 − i], ISA doubleword i is
   * vsrDoubles[2n + 1 − i]. FPR n is doubleword 0 of vs[n]; VR n is vs[32 + n].
   */
  readonly vsrBytes = new Uint8Array(64 * 16);
  readonly vsrHalves = new Uint16Array(this.vsrBytes.buffer);
  readonly vsrWords = new Int32Array(this.vsrBytes.buffer);
  readonly vsrDoubles = new Float64Array(this.vsrBytes.buffer);
  /** FPSCR bits 32:63 (status, enables, RN). */
  fpscr = 0;
  /** FPSCR bits 0:31 (DRN in bits 29:31). */
  fpscrHigh = 0;
  /**
   * MSR[FE0, FE1] ≠ 0: an enabled floating-point exception raises a program interrupt (precise
   * mode). Linux sets it with prctl(PR_SET_FPEXC), which glibc's feenableexcept calls; qemu-user
   * always behaves as if it were set.
   */
  floatingPointExceptions = true;
  /** VSCR bits 96:127 of the 128-bit register: NJ (0x10000) and SAT (1). Linux starts threads with NJ set. */
  vscr = 0x00010000;
  /** Instructions completed. */
  retired = 0;

  /** Details of the last stop. */
  systemCallVectored = false;
  faultAddress = 0n;
  faultAccess: AccessKind = "read";
  faultCause: FaultCause = "not-mapped";
  programReason: ProgramReason = "illegal-instruction";
  unavailableFacility: Facility = "base";
  stopInstruction = 0;

  private stop: StopReason = StopReason.Budget;
  private readonly codePages = new Map<number, CodePage>();
  /** Bumped whenever decoded code is invalidated, so that a running loop drops its cached page. */
  private codeGeneration = 0;
  /** Instructions completed in the current run() call (the translator's regions add to it). */
  executedThisRun = 0;
  /** The block translator, when translation is enabled. */
  private translator: Translator | null = null;
  /** A branch target beyond 2^53, kept exactly for the fault it raises on fetch. */
  private wideTarget: bigint | null = null;

  constructor(
    readonly memory: CpuMemory,
    /** The timebase now, in ticks (mftb). */
    readonly timebase: () => number,
    /** Fills a buffer with random bytes (darn). */
    readonly random: (bytes: Uint8Array) => void = (bytes) => crypto.getRandomValues(bytes),
  ) {}

  /** The condition register. */
  get cr(): number {
    if (this.cr0Pending) this.settleCr0();
    return this.crBits;
  }

  set cr(value: number) {
    this.cr0Pending = false;
    this.crBits = value | 0;
  }

  /** XER as the 64-bit SPR reads it (low word; the high word is zero). */
  get xer(): number {
    return (this.so << 31) | (this.ov << 30) | (this.ca << 29) | (this.ov32 << 19) | (this.ca32 << 18) |
      (this.xerBytes & 0x7f);
  }

  set xer(value: number) {
    this.so = (value >>> 31) & 1;
    this.ov = (value >>> 30) & 1;
    this.ca = (value >>> 29) & 1;
    this.ov32 = (value >>> 19) & 1;
    this.ca32 = (value >>> 18) & 1;
    this.xerBytes = value & 0x7f;
  }

  /** Records a result for CR0 (LT, GT, EQ from its sign, SO from XER) without computing it yet. */
  recordCr0(lo: number, hi: number): void {
    this.cr0Pending = true;
    this.cr0Lo = lo;
    this.cr0Hi = hi;
    this.cr0So = this.so;
  }

  private settleCr0(): void {
    const lo = this.cr0Lo, hi = this.cr0Hi;
    const field = hi < 0 ? 8 : (hi | lo) !== 0 ? 4 : 2;
    this.crBits = (this.crBits & 0x0fffffff) | ((field | this.cr0So) << 28);
    this.cr0Pending = false;
  }

  /** Sets CR field `field` (0..7) to a 4-bit value. */
  setCrField(field: number, value: number): void {
    const shift = 28 - 4 * field;
    this.cr = (this.cr & ~(0xf << shift)) | ((value & 0xf) << shift);
  }

  crField(field: number): number {
    return (this.cr >>> (28 - 4 * field)) & 0xf;
  }

  crBit(bit: number): number {
    return (this.cr >>> (31 - bit)) & 1;
  }

  /**
   * Forgets decoded and translated instructions of the pages overlapping [address, address +
   * length) (icbi, code stores, mmap).
   */
  invalidateCode(address: number, length: number): void {
    const first = Math.floor(address / PAGE_SIZE), last = Math.floor((address + length - 1) / PAGE_SIZE);
    for (let page = first; page <= last; page++) {
      this.codePages.delete(page);
      this.translator?.invalidatePage(page);
    }
    this.codeGeneration++;
  }

  /** Forgets all decoded and translated code (a switch to another address space). */
  invalidateAllCode(): void {
    this.codePages.clear();
    this.translator?.invalidateAll();
    this.codeGeneration++;
  }

  /** Bumped whenever code is invalidated; translated regions compare it after calls that may store. */
  get codeVersion(): number {
    return this.codeGeneration;
  }

  /** The stop the current instruction requested (Budget while none). */
  get pendingStop(): StopReason {
    return this.stop;
  }

  /**
   * Translates hot code into JavaScript functions from now on (see translator.ts). The
   * interpreter still runs cold code and finishes budgets exactly.
   */
  enableTranslation(options: TranslatorOptions = {}): void {
    this.translator ??= new Translator(this, HANDLERS, options);
  }

  /** Statistics of the translator, or null when translation is off. */
  get translation(): TranslatorStatistics | null {
    return this.translator?.statistics ?? null;
  }

  /**
   * The op id of the instruction at pc (−1 if it is not a valid instruction), decoded into its
   * page's cache; fetchedWord holds its word afterwards. May throw MemoryFault (execute access).
   */
  decodeAt(pc: number): number {
    const page = this.codePage(Math.floor(pc / PAGE_SIZE));
    const slot = (pc % PAGE_SIZE) >>> 2;
    let op = page.ops[slot];
    if (op === UNDECODED) {
      const fetched = this.memory.fetch(pc);
      page.words[slot] = fetched;
      op = decodeOp(fetched);
      page.ops[slot] = op;
    }
    this.fetchedWord = page.words[slot];
    return op;
  }

  /** The word of the instruction decodeAt last returned. */
  fetchedWord = 0;

  /** Pages with decoded instructions (each holds at most 1024). */
  get decodedPages(): number {
    return this.codePages.size;
  }

  /** The address of the instruction to execute, exact even for a target beyond 2^53. */
  get pc64(): bigint {
    return this.wideTarget !== null && this.pc === Number.MAX_SAFE_INTEGER
      ? this.wideTarget
      : BigInt(this.pc);
  }

  /** Continues at a 64-bit address (a context switch, a signal handler); the low two bits are ignored. */
  setPc64(address: bigint): void {
    const value = BigInt.asUintN(64, address);
    this.wideTarget = null;
    this.branchTo(Number(value & 0xffffffffn) | 0, Number(value >> 32n) | 0);
    this.pc = this.nia;
  }

  /** Continues at `target` after a branch (and keeps targets beyond 2^53 exact for their fault). */
  branchTo(lo: number, hi: number): void {
    if (hi >>> 0 >= HIGH_WORD_LIMIT) {
      this.wideTarget = toBigInt(lo & ~3, hi, false);
      this.nia = Number.MAX_SAFE_INTEGER;
      return;
    }
    this.nia = (hi >>> 0) * TWO_32 + ((lo & ~3) >>> 0);
  }

  /** Stops after the current instruction with a program interrupt at it. */
  programInterrupt(reason: ProgramReason, word: number): void {
    this.stop = StopReason.Program;
    this.programReason = reason;
    this.stopInstruction = word;
    this.nia = this.pc;
  }

  /** Stops after the current instruction with a system call; the thread resumes after it. */
  systemCall(vectored: boolean): void {
    this.stop = StopReason.SystemCall;
    this.systemCallVectored = vectored;
  }

  /** Stops with an alignment interrupt at the current instruction. */
  alignmentInterrupt(address: number, word: number): void {
    this.stop = StopReason.Alignment;
    this.faultAddress = BigInt(address);
    this.stopInstruction = word;
    this.nia = this.pc;
  }

  /** Stops at the current instruction: its facility is not provided. */
  facilityUnavailable(facility: Facility, word: number): void {
    this.stop = StopReason.FacilityUnavailable;
    this.unavailableFacility = facility;
    this.stopInstruction = word;
    this.nia = this.pc;
  }

  /** Marks stores into pages that hold decoded instructions (self-modifying code). */
  noteStore(address: number, size: number): void {
    if (this.codePages.size === 0) return;
    const first = Math.floor(address / PAGE_SIZE), last = Math.floor((address + size - 1) / PAGE_SIZE);
    if (this.codePages.has(first) || (last !== first && this.codePages.has(last))) {
      this.invalidateCode(address, size);
    }
  }

  /**
   * The decode cache of a page of code. Creating it revokes the page's write entry in the memory's
   * software TLB, so that stores into code always reach noteStore.
   */
  private codePage(pageNumber: number): CodePage {
    let page = this.codePages.get(pageNumber);
    if (page === undefined) {
      page = { ops: new Int16Array(PAGE_SIZE / 4).fill(UNDECODED), words: new Int32Array(PAGE_SIZE / 4) };
      this.codePages.set(pageNumber, page);
      this.memory.tlb?.revokeWrite(pageNumber * PAGE_SIZE);
    }
    return page;
  }

  /**
   * Executes up to `budget` instructions and returns why it stopped. Registers, pc and the stop
   * details are in this object.
   */
  run(budget: number): StopReason {
    this.stop = StopReason.Budget;
    this.executedThisRun = 0;
    try {
      if (this.translator === null) this.interpret(budget, false);
      else this.translator.execute(budget);
    } catch (error) {
      if (!(error instanceof MemoryFault)) throw error;
      this.stop = StopReason.PageFault;
      this.faultAddress = error.address;
      this.faultAccess = error.access;
      this.faultCause = error.faultCause;
    }
    if (this.stop !== StopReason.PageFault) this.wideTarget = null;
    this.retired += this.executedThisRun;
    return this.stop;
  }

  /**
   * Interprets up to `budget` instructions, or up to the end of the basic block (a branch, taken or
   * not) when `untilBranch` is set; adds them to executedThisRun. A MemoryFault propagates with
   * pc on the faulting instruction.
   */
  interpret(budget: number, untilBranch: boolean): void {
    let executed = 0;
    // The page being executed, cached in locals; a code invalidation bumps codeGeneration.
    let pageBase = -PAGE_SIZE;
    let ops = EMPTY_PAGE.ops;
    let words = EMPTY_PAGE.words;
    let generation = this.codeGeneration;
    try {
      while (executed < budget) {
        const pc = this.pc;
        let offset = pc - pageBase;
        if (offset < 0 || offset >= PAGE_SIZE || generation !== this.codeGeneration) {
          if (this.wideTarget !== null && pc === Number.MAX_SAFE_INTEGER) {
            throw new MemoryFault(this.wideTarget, "execute");
          }
          const pageNumber = Math.floor(pc / PAGE_SIZE);
          const page = this.codePage(pageNumber);
          pageBase = pageNumber * PAGE_SIZE;
          ops = page.ops;
          words = page.words;
          generation = this.codeGeneration;
          offset = pc - pageBase;
        }
        const slot = offset >>> 2;
        let op = ops[slot];
        if (op === UNDECODED) {
          const fetched = this.memory.fetch(pc);
          words[slot] = fetched;
          op = decodeOp(fetched);
          ops[slot] = op;
        }
        const word = words[slot];
        this.nia = pc + 4;
        if (op < 0) {
          this.programInterrupt("illegal-instruction", word);
          break;
        }
        HANDLERS[op](this, word);
        if (this.stop !== StopReason.Budget) {
          if (this.stop === StopReason.SystemCall) {
            executed++;
            this.pc = this.nia;
          }
          break;
        }
        const next = this.nia;
        this.pc = next;
        executed++;
        if (untilBranch && ENDS_BLOCK[op] !== 0) break;
      }
    } catch (error) {
      this.executedThisRun += executed;
      throw error;
    }
    this.executedThisRun += executed;
  }
}

/** A page that matches no pc, to start the run loop's page cache with. */
const EMPTY_PAGE: CodePage = { ops: new Int16Array(0), words: new Int32Array(0) };

export type Semantics = (cpu: Cpu, word: number) => void;

// Field extraction (ISA bit numbers in the comments).
const rtOf = (w: number) => (w >>> 21) & 31; // 6:10 (RT, RS, BO, TO)
const raOf = (w: number) => (w >>> 16) & 31; // 11:15
const rbOf = (w: number) => (w >>> 11) & 31; // 16:20
const simm = (w: number) => (w << 16) >> 16; // 16:31
const uimm = (w: number) => w & 0xffff;
const overflowEnable = (w: number) => (w >>> 10) & 1; // 21

/** Writes rT = (lo, hi). */
function put(cpu: Cpu, r: number, lo: number, hi: number): void {
  cpu.gpr[2 * r] = lo;
  cpu.gpr[2 * r + 1] = hi;
}

/** Writes a result and records CR0 when Rc is set. */
function putRecord(cpu: Cpu, w: number, r: number, lo: number, hi: number): void {
  cpu.gpr[2 * r] = lo;
  cpu.gpr[2 * r + 1] = hi;
  if (w & 1) cpu.recordCr0(lo, hi);
}

// Branches.

/** Evaluates BO/BI, decrementing CTR when BO says so; true if the branch is taken. */
function branchCondition(cpu: Cpu, bo: number, bi: number): boolean {
  let ctrOk = true;
  if ((bo & 4) === 0) {
    const lo = (cpu.ctrLo - 1) | 0;
    if (lo === -1) cpu.ctrHi = (cpu.ctrHi - 1) | 0;
    cpu.ctrLo = lo;
    const zero = (lo | cpu.ctrHi) === 0;
    ctrOk = (bo & 2) !== 0 ? zero : !zero;
  }
  const condOk = (bo & 0x10) !== 0 || cpu.crBit(bi) === ((bo >>> 3) & 1);
  return ctrOk && condOk;
}

function setLinkRegister(cpu: Cpu): void {
  const next = cpu.pc + 4;
  cpu.lrLo = next | 0;
  cpu.lrHi = Math.floor(next / TWO_32) | 0;
}

function branchRelative(cpu: Cpu, displacement: number, absolute: boolean): void {
  const target = absolute ? displacement : cpu.pc + displacement;
  if (target >= 0 && target < ADDRESS_LIMIT) cpu.nia = target;
  else cpu.branchTo(target | 0, target < 0 ? -1 : Math.floor(target / TWO_32) | 0);
}

const b: Semantics = (cpu, w) => {
  const displacement = ((w << 6) >> 8) << 2;
  if (w & 1) setLinkRegister(cpu);
  branchRelative(cpu, displacement, (w & 2) !== 0);
};

const bc: Semantics = (cpu, w) => {
  const taken = branchCondition(cpu, rtOf(w), raOf(w));
  if (w & 1) setLinkRegister(cpu);
  if (taken) branchRelative(cpu, simm(w) & ~3, (w & 2) !== 0);
};

const bclr: Semantics = (cpu, w) => {
  const lo = cpu.lrLo, hi = cpu.lrHi;
  const taken = branchCondition(cpu, rtOf(w), raOf(w));
  if (w & 1) setLinkRegister(cpu);
  if (taken) cpu.branchTo(lo, hi);
};

const bcctr: Semantics = (cpu, w) => {
  const taken = branchCondition(cpu, rtOf(w), raOf(w));
  if (w & 1) setLinkRegister(cpu);
  if (taken) cpu.branchTo(cpu.ctrLo, cpu.ctrHi);
};

const bctar: Semantics = (cpu, w) => {
  const taken = branchCondition(cpu, rtOf(w), raOf(w));
  if (w & 1) setLinkRegister(cpu);
  if (taken) cpu.branchTo(cpu.tarLo, cpu.tarHi);
};

// Condition register.

function crLogical(operation: (a: number, b: number) => number): Semantics {
  return (cpu, w) => {
    const bt = rtOf(w);
    const value = operation(cpu.crBit(raOf(w)), cpu.crBit(rbOf(w))) & 1;
    const mask = 1 << (31 - bt);
    cpu.cr = value ? cpu.cr | mask : cpu.cr & ~mask;
  };
}

const mcrf: Semantics = (cpu, w) => cpu.setCrField(rtOf(w) >>> 2, cpu.crField(raOf(w) >>> 2));

const mcrxrx: Semantics = (cpu, w) =>
  cpu.setCrField(rtOf(w) >>> 2, (cpu.ov << 3) | (cpu.ov32 << 2) | (cpu.ca << 1) | cpu.ca32);

const mfcr: Semantics = (cpu, w) => put(cpu, rtOf(w), cpu.cr, 0);

/** The CR bits of the fields FXM selects. */
function fieldMask(fxm: number): number {
  let mask = 0;
  for (let field = 0; field < 8; field++) if (fxm & (0x80 >>> field)) mask |= 0xf << (28 - 4 * field);
  return mask;
}

const mfocrf: Semantics = (cpu, w) => put(cpu, rtOf(w), cpu.cr & fieldMask((w >>> 12) & 0xff), 0);

const mtcrf: Semantics = (cpu, w) => {
  const mask = fieldMask((w >>> 12) & 0xff);
  cpu.cr = (cpu.cr & ~mask) | (cpu.gpr[2 * rtOf(w)] & mask);
};

const setb: Semantics = (cpu, w) => {
  const field = cpu.crField(raOf(w) >>> 2);
  if (field & 8) put(cpu, rtOf(w), -1, -1);
  else put(cpu, rtOf(w), (field >>> 2) & 1, 0);
};

const isel: Semantics = (cpu, w) => {
  const ra = raOf(w), rb = rbOf(w);
  const g = cpu.gpr;
  if (cpu.crBit((w >>> 6) & 31)) put(cpu, rtOf(w), ra === 0 ? 0 : g[2 * ra], ra === 0 ? 0 : g[2 * ra + 1]);
  else put(cpu, rtOf(w), g[2 * rb], g[2 * rb + 1]);
};

// Fixed-point arithmetic.

/** Carry out of the last add(): of the 64-bit sum and of its low word. */
let carry64 = 0;
let carry32 = 0;

/** a + b + carryIn into RESULT, setting carry64/carry32. */
function add(alo: number, ahi: number, blo: number, bhi: number, carryIn: number): void {
  const low = (alo >>> 0) + (blo >>> 0) + carryIn;
  carry32 = low > 0xffffffff ? 1 : 0;
  const high = (ahi >>> 0) + (bhi >>> 0) + carry32;
  carry64 = high > 0xffffffff ? 1 : 0;
  RESULT[0] = low | 0;
  RESULT[1] = high | 0;
}

/** Sets OV, OV32 (and SO) for the sum in RESULT of addends a and b, when OE is set. */
function recordOverflow(cpu: Cpu, w: number, alo: number, ahi: number, blo: number, bhi: number): void {
  if (!overflowEnable(w)) return;
  const lo = RESULT[0], hi = RESULT[1];
  cpu.ov = ((ahi ^ hi) & (bhi ^ hi)) < 0 ? 1 : 0;
  cpu.ov32 = ((alo ^ lo) & (blo ^ lo)) < 0 ? 1 : 0;
  cpu.so |= cpu.ov;
}

function setCarry(cpu: Cpu): void {
  cpu.ca = carry64;
  cpu.ca32 = carry32;
}

/** The XO-form additions: rt = a + b + carry-in with a, b chosen by the instruction. */
function addForm(
  operands: (cpu: Cpu, w: number) => void,
  carryIn: (cpu: Cpu) => number,
  setsCarry: boolean,
): Semantics {
  return (cpu, w) => {
    operands(cpu, w);
    const alo = A_LO, ahi = A_HI, blo = B_LO, bhi = B_HI;
    add(alo, ahi, blo, bhi, carryIn(cpu));
    if (setsCarry) setCarry(cpu);
    recordOverflow(cpu, w, alo, ahi, blo, bhi);
    putRecord(cpu, w, rtOf(w), RESULT[0], RESULT[1]);
  };
}

// Operand staging for addForm (module-level so the closures allocate nothing).
let A_LO = 0, A_HI = 0, B_LO = 0, B_HI = 0;

const raRb = (cpu: Cpu, w: number) => {
  const g = cpu.gpr, ra = raOf(w), rb = rbOf(w);
  A_LO = g[2 * ra];
  A_HI = g[2 * ra + 1];
  B_LO = g[2 * rb];
  B_HI = g[2 * rb + 1];
};
const notRaRb = (cpu: Cpu, w: number) => {
  raRb(cpu, w);
  A_LO = ~A_LO;
  A_HI = ~A_HI;
};
const raMinusOne = (cpu: Cpu, w: number) => {
  const g = cpu.gpr, ra = raOf(w);
  A_LO = g[2 * ra];
  A_HI = g[2 * ra + 1];
  B_LO = -1;
  B_HI = -1;
};
const notRaMinusOne = (cpu: Cpu, w: number) => {
  raMinusOne(cpu, w);
  A_LO = ~A_LO;
  A_HI = ~A_HI;
};
const raZero = (cpu: Cpu, w: number) => {
  const g = cpu.gpr, ra = raOf(w);
  A_LO = g[2 * ra];
  A_HI = g[2 * ra + 1];
  B_LO = 0;
  B_HI = 0;
};
const notRaZero = (cpu: Cpu, w: number) => {
  raZero(cpu, w);
  A_LO = ~A_LO;
  A_HI = ~A_HI;
};
const none = () => 0;
const one = () => 1;
const carry = (cpu: Cpu) => cpu.ca;
const addWithOverflow = addForm(raRb, none, false);
const subtractWithOverflow = addForm(notRaRb, one, false);

/** add: the common case (no OE) needs no carry bookkeeping. */
const addSemantics: Semantics = (cpu, w) => {
  if (overflowEnable(w)) return addWithOverflow(cpu, w);
  const g = cpu.gpr, a = 2 * raOf(w), bIndex = 2 * rbOf(w);
  const low = (g[a] >>> 0) + (g[bIndex] >>> 0);
  putRecord(cpu, w, rtOf(w), low | 0, (g[a + 1] + g[bIndex + 1] + (low > 0xffffffff ? 1 : 0)) | 0);
};

/** subf: RB - RA. */
const subfSemantics: Semantics = (cpu, w) => {
  if (overflowEnable(w)) return subtractWithOverflow(cpu, w);
  const g = cpu.gpr, a = 2 * raOf(w), bIndex = 2 * rbOf(w);
  const low = (g[bIndex] >>> 0) - (g[a] >>> 0);
  putRecord(cpu, w, rtOf(w), low | 0, (g[bIndex + 1] - g[a + 1] - (low < 0 ? 1 : 0)) | 0);
};

const addi: Semantics = (cpu, w) => {
  const ra = raOf(w), si = simm(w);
  if (ra === 0) return put(cpu, rtOf(w), si, si >> 31);
  add(cpu.gpr[2 * ra], cpu.gpr[2 * ra + 1], si, si >> 31, 0);
  put(cpu, rtOf(w), RESULT[0], RESULT[1]);
};

const addis: Semantics = (cpu, w) => {
  const ra = raOf(w), high = simm(w) << 16;
  if (ra === 0) return put(cpu, rtOf(w), high, high >> 31);
  add(cpu.gpr[2 * ra], cpu.gpr[2 * ra + 1], high, high >> 31, 0);
  put(cpu, rtOf(w), RESULT[0], RESULT[1]);
};

const addpcis: Semantics = (cpu, w) => {
  const d = (((w >>> 6) & 0x3ff) << 6 | ((w >>> 16) & 31) << 1 | (w & 1)) << 16 >> 16;
  const next = cpu.pc + 4;
  add(next | 0, Math.floor(next / TWO_32) | 0, d << 16, d >> 15, 0);
  put(cpu, rtOf(w), RESULT[0], RESULT[1]);
};

function addImmediateCarrying(record: boolean): Semantics {
  return (cpu, w) => {
    const ra = raOf(w), si = simm(w);
    add(cpu.gpr[2 * ra], cpu.gpr[2 * ra + 1], si, si >> 31, 0);
    setCarry(cpu);
    put(cpu, rtOf(w), RESULT[0], RESULT[1]);
    if (record) cpu.recordCr0(RESULT[0], RESULT[1]);
  };
}

const subfic: Semantics = (cpu, w) => {
  const ra = raOf(w), si = simm(w);
  add(~cpu.gpr[2 * ra], ~cpu.gpr[2 * ra + 1], si, si >> 31, 1);
  setCarry(cpu);
  put(cpu, rtOf(w), RESULT[0], RESULT[1]);
};

const addex: Semantics = (cpu, w) => {
  if (((w >>> 9) & 3) !== 0) return cpu.programInterrupt("illegal-instruction", w);
  const g = cpu.gpr, ra = raOf(w), rb = rbOf(w);
  // addex with CY = 0 uses OV as its carry, so that two carry chains can be interleaved.
  add(g[2 * ra], g[2 * ra + 1], g[2 * rb], g[2 * rb + 1], cpu.ov);
  cpu.ov = carry64;
  cpu.ov32 = carry32;
  put(cpu, rtOf(w), RESULT[0], RESULT[1]);
};

const mulli: Semantics = (cpu, w) => {
  const ra = raOf(w), si = simm(w);
  mul64(cpu.gpr[2 * ra], cpu.gpr[2 * ra + 1], si, si >> 31);
  put(cpu, rtOf(w), RESULT[0], RESULT[1]);
};

const mullw: Semantics = (cpu, w) => {
  const a = cpu.gpr[2 * raOf(w)], bValue = cpu.gpr[2 * rbOf(w)];
  const lo = Math.imul(a, bValue), hi = mulhw(a, bValue);
  if (overflowEnable(w)) {
    cpu.ov = cpu.ov32 = hi !== lo >> 31 ? 1 : 0;
    cpu.so |= cpu.ov;
  }
  putRecord(cpu, w, rtOf(w), lo, hi);
};

const mulhwSemantics: Semantics = (cpu, w) => {
  const high = mulhw(cpu.gpr[2 * raOf(w)], cpu.gpr[2 * rbOf(w)]);
  putRecord(cpu, w, rtOf(w), high, high >> 31);
};

const mulhwuSemantics: Semantics = (cpu, w) => {
  putRecord(cpu, w, rtOf(w), mulhwu(cpu.gpr[2 * raOf(w)], cpu.gpr[2 * rbOf(w)]), 0);
};

const mulld: Semantics = (cpu, w) => {
  const g = cpu.gpr, ra = raOf(w), rb = rbOf(w);
  const alo = g[2 * ra], ahi = g[2 * ra + 1], blo = g[2 * rb], bhi = g[2 * rb + 1];
  if (overflowEnable(w)) {
    mulhd(alo, ahi, blo, bhi);
    const highLo = RESULT[0], highHi = RESULT[1];
    mul64(alo, ahi, blo, bhi);
    // The product fits 64 bits iff the high half is the sign extension of the low half.
    const sign = RESULT[1] >> 31;
    cpu.ov = highLo !== sign || highHi !== sign ? 1 : 0;
    cpu.ov32 = cpu.ov;
    cpu.so |= cpu.ov;
  } else {
    mul64(alo, ahi, blo, bhi);
  }
  putRecord(cpu, w, rtOf(w), RESULT[0], RESULT[1]);
};

function multiplyHigh64(operation: typeof mulhd): Semantics {
  return (cpu, w) => {
    const g = cpu.gpr, ra = raOf(w), rb = rbOf(w);
    operation(g[2 * ra], g[2 * ra + 1], g[2 * rb], g[2 * rb + 1]);
    putRecord(cpu, w, rtOf(w), RESULT[0], RESULT[1]);
  };
}

function multiplyAddForm(signed: boolean, high: boolean): Semantics {
  return (cpu, w) => {
    const g = cpu.gpr, ra = raOf(w), rb = rbOf(w), rc = (w >>> 6) & 31;
    multiplyAdd(g[2 * ra], g[2 * ra + 1], g[2 * rb], g[2 * rb + 1], g[2 * rc], g[2 * rc + 1], signed, high);
    put(cpu, rtOf(w), RESULT[0], RESULT[1]);
  };
}

/**
 * Sets OV/OV32/SO for a division whose result is undefined (or clears them), when OE is set. The
 * modulo instructions are X-form: their bit 21 is opcode, and they leave XER alone.
 */
function divideOverflow(cpu: Cpu, w: number, overflow: boolean, remainder: boolean): void {
  if (remainder || !overflowEnable(w)) return;
  cpu.ov = cpu.ov32 = overflow ? 1 : 0;
  cpu.so |= cpu.ov;
}

/** 32-bit divisions: divw, divwu, divwe, divweu, modsw, moduw. An undefined result is 0. */
function divideWord(signed: boolean, extended: boolean, remainder: boolean): Semantics {
  return (cpu, w) => {
    const a = cpu.gpr[2 * raOf(w)], d = cpu.gpr[2 * rbOf(w)];
    let quotient: number | null = null;
    if (d !== 0) {
      if (extended) {
        const dividend = signed ? BigInt(a) << 32n : BigInt(a >>> 0) << 32n;
        const q = dividend / (signed ? BigInt(d) : BigInt(d >>> 0));
        const fits = signed ? q >= -0x80000000n && q <= 0x7fffffffn : q <= 0xffffffffn;
        quotient = fits ? Number(q) : null;
      } else if (signed) {
        if (!(a === -0x80000000 && d === -1)) quotient = remainder ? a % d : Math.trunc(a / d);
      } else {
        quotient = remainder ? (a >>> 0) % (d >>> 0) : Math.floor((a >>> 0) / (d >>> 0));
      }
    }
    divideOverflow(cpu, w, quotient === null, remainder);
    const lo = quotient === null ? 0 : quotient | 0;
    const hi = signed ? lo >> 31 : 0;
    if (remainder) put(cpu, rtOf(w), lo, hi);
    else putRecord(cpu, w, rtOf(w), lo, hi);
  };
}

/** 64-bit divisions: divd, divdu, modsd, modud. An undefined result is 0. */
function divideDoubleword(signed: boolean, remainder: boolean): Semantics {
  return (cpu, w) => {
    const g = cpu.gpr, ra = raOf(w), rb = rbOf(w);
    const ok = divide64(g[2 * ra], g[2 * ra + 1], g[2 * rb], g[2 * rb + 1], signed, remainder);
    divideOverflow(cpu, w, !ok, remainder);
    const lo = ok ? RESULT[0] : 0, hi = ok ? RESULT[1] : 0;
    if (remainder) put(cpu, rtOf(w), lo, hi);
    else putRecord(cpu, w, rtOf(w), lo, hi);
  };
}

function divideDoublewordExtended(signed: boolean): Semantics {
  return (cpu, w) => {
    const g = cpu.gpr, ra = raOf(w), rb = rbOf(w);
    const ok = divideExtended64(g[2 * ra], g[2 * ra + 1], g[2 * rb], g[2 * rb + 1], signed);
    divideOverflow(cpu, w, !ok, false);
    putRecord(cpu, w, rtOf(w), ok ? RESULT[0] : 0, ok ? RESULT[1] : 0);
  };
}

const darn: Semantics = (cpu, w) => {
  const level = (w >>> 16) & 3;
  if (level === 3) return put(cpu, rtOf(w), -1, -1);
  const bytes = new Uint8Array(8);
  cpu.random(bytes);
  const view = new DataView(bytes.buffer);
  const lo = view.getInt32(0, true), hi = view.getInt32(4, true);
  // 0xFFFF_FFFF_FFFF_FFFF is the error value: a random draw of it is replaced.
  if (level === 0) put(cpu, rtOf(w), lo === -1 ? 0 : lo, 0);
  else put(cpu, rtOf(w), lo, lo === -1 && hi === -1 ? 0 : hi);
};

// Compare and trap.

function crFieldOf(comparison: number, so: number): number {
  return (comparison < 0 ? 8 : comparison > 0 ? 4 : 2) | so;
}

function compareForm(signed: boolean, immediate: boolean): Semantics {
  return (cpu, w) => {
    const g = cpu.gpr, ra = raOf(w);
    const doubleword = (w >>> 21) & 1;
    let blo: number, bhi: number;
    if (immediate) {
      blo = signed ? simm(w) : uimm(w);
      bhi = signed ? blo >> 31 : 0;
    } else {
      blo = g[2 * rbOf(w)];
      bhi = g[2 * rbOf(w) + 1];
    }
    const alo = g[2 * ra];
    let ahi = g[2 * ra + 1];
    if (!doubleword) {
      ahi = signed ? alo >> 31 : 0;
      bhi = signed ? blo >> 31 : 0;
    }
    const comparison = signed ? compareSigned64(alo, ahi, blo, bhi) : compareUnsigned64(alo, ahi, blo, bhi);
    cpu.setCrField(rtOf(w) >>> 2, crFieldOf(comparison, cpu.so));
  };
}

const cmprb: Semantics = (cpu, w) => {
  const value = cpu.gpr[2 * raOf(w)] & 0xff, ranges = cpu.gpr[2 * rbOf(w)];
  const inRange = (low: number, high: number) => value >= low && value <= high;
  let inside = inRange(ranges & 0xff, (ranges >>> 8) & 0xff);
  if ((w >>> 21) & 1) inside ||= inRange((ranges >>> 16) & 0xff, ranges >>> 24);
  cpu.setCrField(rtOf(w) >>> 2, inside ? 4 : 0);
};

/** Whether any byte of a word equals a byte value. */
function hasByte(word: number, value: number): boolean {
  return (word & 0xff) === value || ((word >>> 8) & 0xff) === value || ((word >>> 16) & 0xff) === value ||
    word >>> 24 === value;
}

const cmpeqb: Semantics = (cpu, w) => {
  const value = cpu.gpr[2 * raOf(w)] & 0xff, rb = rbOf(w);
  const found = hasByte(cpu.gpr[2 * rb], value) || hasByte(cpu.gpr[2 * rb + 1], value);
  cpu.setCrField(rtOf(w) >>> 2, found ? 4 : 0);
};

/** Whether the TO conditions hold for a against b. */
function trapConditions(to: number, signedComparison: number, unsignedComparison: number): boolean {
  return ((to & 16) !== 0 && signedComparison < 0) || ((to & 8) !== 0 && signedComparison > 0) ||
    ((to & 4) !== 0 && signedComparison === 0) || ((to & 2) !== 0 && unsignedComparison < 0) ||
    ((to & 1) !== 0 && unsignedComparison > 0);
}

function trapForm(doubleword: boolean, immediate: boolean): Semantics {
  return (cpu, w) => {
    const g = cpu.gpr, ra = raOf(w);
    const alo = g[2 * ra];
    let ahi = g[2 * ra + 1], blo: number, bhi: number;
    if (immediate) {
      blo = simm(w);
      bhi = blo >> 31;
    } else {
      blo = g[2 * rbOf(w)];
      bhi = g[2 * rbOf(w) + 1];
    }
    if (!doubleword) {
      ahi = alo >> 31;
      bhi = blo >> 31;
    }
    const signed = compareSigned64(alo, ahi, blo, bhi);
    const unsigned = doubleword ? compareUnsigned64(alo, ahi, blo, bhi) : compareUnsigned64(alo, 0, blo, 0);
    if (trapConditions(rtOf(w), signed, unsigned)) cpu.programInterrupt("trap", w);
  };
}

// Logical.

// One function per operation rather than a shared higher-order one: each call site stays monomorphic.
const and: Semantics = (cpu, w) => {
  const g = cpu.gpr, s = 2 * rtOf(w), b = 2 * rbOf(w);
  putRecord(cpu, w, raOf(w), g[s] & g[b], g[s + 1] & g[b + 1]);
};
const or: Semantics = (cpu, w) => {
  const g = cpu.gpr, s = 2 * rtOf(w), b = 2 * rbOf(w);
  putRecord(cpu, w, raOf(w), g[s] | g[b], g[s + 1] | g[b + 1]);
};
const xor: Semantics = (cpu, w) => {
  const g = cpu.gpr, s = 2 * rtOf(w), b = 2 * rbOf(w);
  putRecord(cpu, w, raOf(w), g[s] ^ g[b], g[s + 1] ^ g[b + 1]);
};
const nand: Semantics = (cpu, w) => {
  const g = cpu.gpr, s = 2 * rtOf(w), b = 2 * rbOf(w);
  putRecord(cpu, w, raOf(w), ~(g[s] & g[b]), ~(g[s + 1] & g[b + 1]));
};
const nor: Semantics = (cpu, w) => {
  const g = cpu.gpr, s = 2 * rtOf(w), b = 2 * rbOf(w);
  putRecord(cpu, w, raOf(w), ~(g[s] | g[b]), ~(g[s + 1] | g[b + 1]));
};
const eqv: Semantics = (cpu, w) => {
  const g = cpu.gpr, s = 2 * rtOf(w), b = 2 * rbOf(w);
  putRecord(cpu, w, raOf(w), ~(g[s] ^ g[b]), ~(g[s + 1] ^ g[b + 1]));
};
const andc: Semantics = (cpu, w) => {
  const g = cpu.gpr, s = 2 * rtOf(w), b = 2 * rbOf(w);
  putRecord(cpu, w, raOf(w), g[s] & ~g[b], g[s + 1] & ~g[b + 1]);
};
const orc: Semantics = (cpu, w) => {
  const g = cpu.gpr, s = 2 * rtOf(w), b = 2 * rbOf(w);
  putRecord(cpu, w, raOf(w), g[s] | ~g[b], g[s + 1] | ~g[b + 1]);
};

const andi: Semantics = (cpu, w) => {
  const lo = cpu.gpr[2 * rtOf(w)] & uimm(w);
  put(cpu, raOf(w), lo, 0);
  cpu.recordCr0(lo, 0);
};
const andis: Semantics = (cpu, w) => {
  const lo = cpu.gpr[2 * rtOf(w)] & (uimm(w) << 16);
  put(cpu, raOf(w), lo, 0);
  cpu.recordCr0(lo, 0);
};
const ori: Semantics = (cpu, w) => {
  const s = 2 * rtOf(w);
  put(cpu, raOf(w), cpu.gpr[s] | uimm(w), cpu.gpr[s + 1]);
};
const oris: Semantics = (cpu, w) => {
  const s = 2 * rtOf(w);
  put(cpu, raOf(w), cpu.gpr[s] | (uimm(w) << 16), cpu.gpr[s + 1]);
};
const xori: Semantics = (cpu, w) => {
  const s = 2 * rtOf(w);
  put(cpu, raOf(w), cpu.gpr[s] ^ uimm(w), cpu.gpr[s + 1]);
};
const xoris: Semantics = (cpu, w) => {
  const s = 2 * rtOf(w);
  put(cpu, raOf(w), cpu.gpr[s] ^ (uimm(w) << 16), cpu.gpr[s + 1]);
};

function extendSign(bits: number): Semantics {
  return (cpu, w) => {
    const lo = bits === 32 ? cpu.gpr[2 * rtOf(w)] : (cpu.gpr[2 * rtOf(w)] << (32 - bits)) >> (32 - bits);
    putRecord(cpu, w, raOf(w), lo, lo >> 31);
  };
}

const cntlzw: Semantics = (cpu, w) => putRecord(cpu, w, raOf(w), Math.clz32(cpu.gpr[2 * rtOf(w)]), 0);
const cntlzd: Semantics = (cpu, w) =>
  putRecord(cpu, w, raOf(w), clz64(cpu.gpr[2 * rtOf(w)], cpu.gpr[2 * rtOf(w) + 1]), 0);
const cnttzw: Semantics = (cpu, w) => putRecord(cpu, w, raOf(w), ctz32(cpu.gpr[2 * rtOf(w)]), 0);
const cnttzd: Semantics = (cpu, w) => {
  const lo = cpu.gpr[2 * rtOf(w)], hi = cpu.gpr[2 * rtOf(w) + 1];
  putRecord(cpu, w, raOf(w), lo !== 0 ? ctz32(lo) : 32 + ctz32(hi), 0);
};

/** popcntb: the population count of each byte, in that byte. */
function popcountBytes(x: number): number {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (x + (x >>> 4)) & 0x0f0f0f0f;
}

const popcntb: Semantics = (cpu, w) =>
  put(cpu, raOf(w), popcountBytes(cpu.gpr[2 * rtOf(w)]), popcountBytes(cpu.gpr[2 * rtOf(w) + 1]));
const popcntw: Semantics = (cpu, w) =>
  put(cpu, raOf(w), popcount32(cpu.gpr[2 * rtOf(w)]), popcount32(cpu.gpr[2 * rtOf(w) + 1]));
const popcntd: Semantics = (cpu, w) =>
  put(cpu, raOf(w), popcount32(cpu.gpr[2 * rtOf(w)]) + popcount32(cpu.gpr[2 * rtOf(w) + 1]), 0);

/** The parity of the least significant bits of the bytes of a word. */
function byteParity(x: number): number {
  return (x ^ (x >>> 8) ^ (x >>> 16) ^ (x >>> 24)) & 1;
}

const prtyw: Semantics = (cpu, w) =>
  put(cpu, raOf(w), byteParity(cpu.gpr[2 * rtOf(w)]), byteParity(cpu.gpr[2 * rtOf(w) + 1]));
const prtyd: Semantics = (cpu, w) =>
  put(cpu, raOf(w), byteParity(cpu.gpr[2 * rtOf(w)]) ^ byteParity(cpu.gpr[2 * rtOf(w) + 1]), 0);

function compareBytes(a: number, b: number): number {
  let result = 0;
  for (let shift = 0; shift < 32; shift += 8) if (((a ^ b) >>> shift & 0xff) === 0) result |= 0xff << shift;
  return result;
}

const cmpb: Semantics = (cpu, w) => {
  const g = cpu.gpr, rs = rtOf(w), rb = rbOf(w);
  put(cpu, raOf(w), compareBytes(g[2 * rs], g[2 * rb]), compareBytes(g[2 * rs + 1], g[2 * rb + 1]));
};

const bpermd: Semantics = (cpu, w) => {
  const g = cpu.gpr, rs = rtOf(w), rb = rbOf(w);
  let result = 0;
  for (let i = 0; i < 8; i++) {
    const word = i < 4 ? g[2 * rs + 1] : g[2 * rs];
    const index = (word >>> (24 - 8 * (i & 3))) & 0xff;
    if (index < 64) {
      const bit = index < 32 ? (g[2 * rb + 1] >>> (31 - index)) & 1 : (g[2 * rb] >>> (63 - index)) & 1;
      result |= bit << (7 - i);
    }
  }
  put(cpu, raOf(w), result, 0);
};

// Decimal assist (addg6s, cdtbcd, cbcdtd).

const addg6s: Semantics = (cpu, w) => {
  const g = cpu.gpr, ra = raOf(w), rb = rbOf(w);
  const alo = g[2 * ra], ahi = g[2 * ra + 1], blo = g[2 * rb], bhi = g[2 * rb + 1];
  add(alo, ahi, blo, bhi, 0);
  // Bit k of a ^ b ^ sum is the carry into bit k; a digit's carry out is the carry into the next.
  const carriesLo = alo ^ blo ^ RESULT[0], carriesHi = ahi ^ bhi ^ RESULT[1];
  let lo = 0, hi = 0;
  for (let digit = 0; digit < 8; digit++) {
    const outLo = digit < 7 ? (carriesLo >>> (4 * digit + 4)) & 1 : carriesHi & 1;
    const outHi = digit < 7 ? (carriesHi >>> (4 * digit + 4)) & 1 : carry64;
    if (!outLo) lo |= 6 << (4 * digit);
    if (!outHi) hi |= 6 << (4 * digit);
  }
  put(cpu, rtOf(w), lo, hi);
};

/** Densely packed decimal: declet (10 bits) → three BCD digits (12 bits), IEEE 754-2008 table 3.3. */
const DPD_TO_BCD = new Uint16Array(1024);
/** Three BCD digits (as 0..999) → canonical declet. */
const BCD_TO_DPD = new Uint16Array(1000);

for (let declet = 0; declet < 1024; declet++) {
  const bit = (n: number) => (declet >>> n) & 1;
  const [p, q, r, s, t, u, v, wBit, x, y] = [9, 8, 7, 6, 5, 4, 3, 2, 1, 0].map(bit);
  const pqr = (p << 2) | (q << 1) | r, stu = (s << 2) | (t << 1) | u, wxy = (wBit << 2) | (x << 1) | y;
  let d2: number, d1: number, d0: number;
  if (!v) [d2, d1, d0] = [pqr, stu, wxy];
  else if (!wBit && !x) [d2, d1, d0] = [pqr, stu, 8 | y];
  else if (!wBit && x) [d2, d1, d0] = [pqr, 8 | u, (s << 2) | (t << 1) | y];
  else if (wBit && !x) [d2, d1, d0] = [8 | r, stu, (p << 2) | (q << 1) | y];
  else if (!s && !t) [d2, d1, d0] = [8 | r, 8 | u, (p << 2) | (q << 1) | y];
  else if (!s && t) [d2, d1, d0] = [8 | r, (p << 2) | (q << 1) | u, 8 | y];
  else if (s && !t) [d2, d1, d0] = [pqr, 8 | u, 8 | y];
  else [d2, d1, d0] = [8 | r, 8 | u, 8 | y];
  DPD_TO_BCD[declet] = (d2 << 8) | (d1 << 4) | d0;
}
for (let declet = 1023; declet >= 0; declet--) {
  const bcd = DPD_TO_BCD[declet];
  // Iterating downwards leaves the canonical (lowest) declet of each value.
  BCD_TO_DPD[(bcd >> 8) * 100 + ((bcd >> 4) & 15) * 10 + (bcd & 15)] = declet;
}

function dpdToBcdWord(word: number): number {
  return (DPD_TO_BCD[(word >>> 10) & 0x3ff] << 12) | DPD_TO_BCD[word & 0x3ff];
}

function bcdToDpdWord(word: number): number {
  const digits = (value: number) => ((value >> 8) & 15) * 100 + ((value >> 4) & 15) * 10 + (value & 15);
  return (BCD_TO_DPD[digits(word >>> 12) % 1000] << 10) | BCD_TO_DPD[digits(word) % 1000];
}

const cdtbcd: Semantics = (cpu, w) =>
  put(cpu, raOf(w), dpdToBcdWord(cpu.gpr[2 * rtOf(w)]), dpdToBcdWord(cpu.gpr[2 * rtOf(w) + 1]));
const cbcdtd: Semantics = (cpu, w) =>
  put(cpu, raOf(w), bcdToDpdWord(cpu.gpr[2 * rtOf(w)]), bcdToDpdWord(cpu.gpr[2 * rtOf(w) + 1]));

// Rotate and shift.

/** ROTL32 of the low word, replicated in both halves as the ISA defines it, into RESULT. */
function rotl32(x: number, n: number): number {
  return n === 0 ? x : (x << n) | (x >>> (32 - n));
}

const rlwinm: Semantics = (cpu, w) => {
  const mb = (w >>> 6) & 31, me = (w >>> 1) & 31;
  const rotated = rotl32(cpu.gpr[2 * rtOf(w)], rbOf(w));
  putRecord(cpu, w, raOf(w), rotated & mask32(mb, me), mb > me ? rotated : 0);
};

const rlwnm: Semantics = (cpu, w) => {
  const mb = (w >>> 6) & 31, me = (w >>> 1) & 31;
  const rotated = rotl32(cpu.gpr[2 * rtOf(w)], cpu.gpr[2 * rbOf(w)] & 31);
  putRecord(cpu, w, raOf(w), rotated & mask32(mb, me), mb > me ? rotated : 0);
};

const rlwimi: Semantics = (cpu, w) => {
  const mb = (w >>> 6) & 31, me = (w >>> 1) & 31, ra = raOf(w);
  const rotated = rotl32(cpu.gpr[2 * rtOf(w)], rbOf(w));
  const mask = mask32(mb, me);
  const lo = (rotated & mask) | (cpu.gpr[2 * ra] & ~mask);
  const hi = mb > me ? rotated : cpu.gpr[2 * ra + 1];
  putRecord(cpu, w, ra, lo, hi);
};

const sh6 = (w: number) => ((w >>> 11) & 31) | ((w & 2) << 4);
const mb6 = (w: number) => ((w >>> 6) & 31) | (w & 0x20);

/** rldicl, rldicr, rldic, rldcl, rldcr: rotate, then AND with MASK(begin, end). */
function rotateDoubleword(
  amount: (cpu: Cpu, w: number) => number,
  maskBounds: (w: number, n: number) => readonly [number, number],
): Semantics {
  return (cpu, w) => {
    const rs = rtOf(w), n = amount(cpu, w);
    rotl64(cpu.gpr[2 * rs], cpu.gpr[2 * rs + 1], n);
    const rlo = RESULT[0], rhi = RESULT[1];
    const [begin, end] = maskBounds(w, n);
    mask64(begin, end);
    putRecord(cpu, w, raOf(w), rlo & RESULT[0], rhi & RESULT[1]);
  };
}

const immediateShift = (_cpu: Cpu, w: number) => sh6(w);
const registerShift = (cpu: Cpu, w: number) => cpu.gpr[2 * rbOf(w)] & 63;

const rldimi: Semantics = (cpu, w) => {
  const rs = rtOf(w), ra = raOf(w), n = sh6(w);
  rotl64(cpu.gpr[2 * rs], cpu.gpr[2 * rs + 1], n);
  const rlo = RESULT[0], rhi = RESULT[1];
  mask64(mb6(w), 63 - n);
  const mlo = RESULT[0], mhi = RESULT[1];
  putRecord(cpu, w, ra, (rlo & mlo) | (cpu.gpr[2 * ra] & ~mlo), (rhi & mhi) | (cpu.gpr[2 * ra + 1] & ~mhi));
};

const slw: Semantics = (cpu, w) => {
  const n = cpu.gpr[2 * rbOf(w)] & 63;
  putRecord(cpu, w, raOf(w), n < 32 ? cpu.gpr[2 * rtOf(w)] << n : 0, 0);
};

const srw: Semantics = (cpu, w) => {
  const n = cpu.gpr[2 * rbOf(w)] & 63;
  putRecord(cpu, w, raOf(w), n < 32 ? cpu.gpr[2 * rtOf(w)] >>> n : 0, 0);
};

/** sraw and srawi: shift the low word right arithmetically; CA if a negative value lost 1 bits. */
function shiftRightAlgebraicWord(cpu: Cpu, w: number, n: number): void {
  const value = cpu.gpr[2 * rtOf(w)];
  let result: number, lost: boolean;
  if (n < 32) {
    result = value >> n;
    lost = n !== 0 && (value & ((1 << n) - 1)) !== 0;
  } else {
    result = value >> 31;
    lost = value !== 0;
  }
  cpu.ca = cpu.ca32 = value < 0 && lost ? 1 : 0;
  putRecord(cpu, w, raOf(w), result, result >> 31);
}

const sraw: Semantics = (cpu, w) => shiftRightAlgebraicWord(cpu, w, cpu.gpr[2 * rbOf(w)] & 63);
const srawi: Semantics = (cpu, w) => shiftRightAlgebraicWord(cpu, w, rbOf(w));

function setResult(lo: number, hi: number): void {
  RESULT[0] = lo;
  RESULT[1] = hi;
}

/** 64-bit shift left by n (0..127; 64 and above give 0) into RESULT. */
function shiftLeft64(lo: number, hi: number, n: number): void {
  if (n >= 64) setResult(0, 0);
  else if (n >= 32) setResult(0, lo << (n - 32));
  else if (n === 0) setResult(lo, hi);
  else setResult(lo << n, (hi << n) | (lo >>> (32 - n)));
}

/** 64-bit shift right by n (0..127), logical or arithmetic, into RESULT. */
function shiftRight64(lo: number, hi: number, n: number, arithmetic: boolean): void {
  const fill = arithmetic ? hi >> 31 : 0;
  if (n >= 64) setResult(fill, fill);
  else if (n >= 32) setResult(arithmetic ? hi >> (n - 32) : hi >>> (n - 32), fill);
  else if (n === 0) setResult(lo, hi);
  else setResult((lo >>> n) | (hi << (32 - n)), arithmetic ? hi >> n : hi >>> n);
}

const sld: Semantics = (cpu, w) => {
  const rs = rtOf(w);
  shiftLeft64(cpu.gpr[2 * rs], cpu.gpr[2 * rs + 1], cpu.gpr[2 * rbOf(w)] & 127);
  putRecord(cpu, w, raOf(w), RESULT[0], RESULT[1]);
};

const srd: Semantics = (cpu, w) => {
  const rs = rtOf(w);
  shiftRight64(cpu.gpr[2 * rs], cpu.gpr[2 * rs + 1], cpu.gpr[2 * rbOf(w)] & 127, false);
  putRecord(cpu, w, raOf(w), RESULT[0], RESULT[1]);
};

/** srad and sradi: CA if a negative value lost 1 bits. */
function shiftRightAlgebraicDoubleword(cpu: Cpu, w: number, n: number): void {
  const rs = rtOf(w), lo = cpu.gpr[2 * rs], hi = cpu.gpr[2 * rs + 1];
  shiftLeft64(lo, hi, 64 - Math.min(n, 64));
  const lost = n >= 64 ? (lo | hi) !== 0 : n !== 0 && (RESULT[0] | RESULT[1]) !== 0;
  shiftRight64(lo, hi, n, true);
  cpu.ca = cpu.ca32 = hi < 0 && lost ? 1 : 0;
  putRecord(cpu, w, raOf(w), RESULT[0], RESULT[1]);
}

const srad: Semantics = (cpu, w) => shiftRightAlgebraicDoubleword(cpu, w, cpu.gpr[2 * rbOf(w)] & 127);
const sradi: Semantics = (cpu, w) => shiftRightAlgebraicDoubleword(cpu, w, sh6(w));

const extswsli: Semantics = (cpu, w) => {
  const value = cpu.gpr[2 * rtOf(w)];
  shiftLeft64(value, value >> 31, sh6(w));
  putRecord(cpu, w, raOf(w), RESULT[0], RESULT[1]);
};

// Loads and stores.

interface AccessShape {
  /** Bytes accessed: 1, 2, 4 or 8. */
  readonly size: 1 | 2 | 4 | 8;
  /** Sign-extend a loaded value. */
  readonly signed?: boolean;
  /** Byte-reversed (lhbrx, stwbrx...). */
  readonly reversed?: boolean;
  /** X-form: EA = (RA|0) + (RB); otherwise a displacement. */
  readonly indexed?: boolean;
  /** DS-form displacement (low two bits are opcode). */
  readonly ds?: boolean;
  /** Update form: RA = EA afterwards. */
  readonly update?: boolean;
}

function effectiveAddress(cpu: Cpu, w: number, shape: AccessShape, access: AccessKind): number {
  if (shape.indexed) return eaIndexed(cpu.gpr, raOf(w), rbOf(w), access);
  return eaDisplacement(cpu.gpr, raOf(w), shape.ds ? simm(w) & ~3 : simm(w), access);
}

function swap16(x: number): number {
  return ((x & 0xff) << 8) | ((x >>> 8) & 0xff);
}

function swap32(x: number): number {
  return ((x & 0xff) << 24) | ((x & 0xff00) << 8) | ((x >>> 8) & 0xff00) | (x >>> 24);
}

const LOADED = new Int32Array(2);

function load(shape: AccessShape): Semantics {
  return (cpu, w) => {
    const ea = effectiveAddress(cpu, w, shape, "read");
    const memory = cpu.memory;
    let lo: number, hi: number;
    switch (shape.size) {
      case 1:
        lo = memory.load8(ea);
        hi = 0;
        break;
      case 2: {
        const value = shape.reversed ? swap16(memory.load16(ea)) : memory.load16(ea);
        lo = shape.signed ? (value << 16) >> 16 : value;
        hi = shape.signed ? lo >> 31 : 0;
        break;
      }
      case 4: {
        const value = shape.reversed ? swap32(memory.load32(ea)) : memory.load32(ea);
        lo = value | 0;
        hi = shape.signed ? lo >> 31 : 0;
        break;
      }
      case 8:
        memory.load64(ea, LOADED, 0);
        lo = shape.reversed ? swap32(LOADED[1]) : LOADED[0];
        hi = shape.reversed ? swap32(LOADED[0]) : LOADED[1];
        break;
    }
    put(cpu, rtOf(w), lo, hi);
    if (shape.update) putAddress(cpu.gpr, raOf(w), ea);
  };
}

function store(shape: AccessShape): Semantics {
  return (cpu, w) => {
    const ea = effectiveAddress(cpu, w, shape, "write");
    const memory = cpu.memory, rs = rtOf(w), lo = cpu.gpr[2 * rs], hi = cpu.gpr[2 * rs + 1];
    switch (shape.size) {
      case 1:
        memory.store8(ea, lo & 0xff);
        break;
      case 2:
        memory.store16(ea, shape.reversed ? swap16(lo) : lo & 0xffff);
        break;
      case 4:
        memory.store32(ea, shape.reversed ? swap32(lo) : lo);
        break;
      case 8:
        if (shape.reversed) memory.store64(ea, swap32(hi), swap32(lo));
        else memory.store64(ea, lo, hi);
        break;
    }
    cpu.noteStore(ea, shape.size);
    if (shape.update) putAddress(cpu.gpr, raOf(w), ea);
  };
}

/** lmw, stmw and the string instructions take an alignment interrupt in little-endian mode. */
const multipleOrString: Semantics = (cpu, w) => {
  const indexed = (w >>> 26) === 31 && ((w >>> 1) & 0x3ff) !== 597 && ((w >>> 1) & 0x3ff) !== 725;
  const ea = indexed
    ? eaIndexed(cpu.gpr, raOf(w), rbOf(w), "read")
    : (w >>> 26) === 31
    ? eaDisplacement(cpu.gpr, raOf(w), 0, "read")
    : eaDisplacement(cpu.gpr, raOf(w), simm(w), "read");
  cpu.alignmentInterrupt(ea, w);
};

function loadAndReserve(size: 1 | 2 | 4 | 8 | 16): Semantics {
  return (cpu, w) => {
    const ea = eaIndexed(cpu.gpr, raOf(w), rbOf(w), "read");
    if (ea % size !== 0) return cpu.alignmentInterrupt(ea, w);
    const memory = cpu.memory, rt = rtOf(w);
    if (size === 16) {
      // Little-endian quadword: RT gets the high-order doubleword at EA + 8.
      memory.load64(ea + 8, LOADED, 0);
      const highLo = LOADED[0], highHi = LOADED[1];
      memory.load64(ea, LOADED, 0);
      put(cpu, rt, highLo, highHi);
      put(cpu, rt + 1, LOADED[0], LOADED[1]);
    } else if (size === 8) {
      memory.load64(ea, LOADED, 0);
      put(cpu, rt, LOADED[0], LOADED[1]);
    } else {
      const value = size === 1 ? memory.load8(ea) : size === 2 ? memory.load16(ea) : memory.load32(ea);
      put(cpu, rt, value | 0, 0);
    }
    cpu.reservationValid = true;
    cpu.reservationAddress = ea;
    cpu.reservationSize = size;
  };
}

function storeConditional(size: 1 | 2 | 4 | 8 | 16): Semantics {
  return (cpu, w) => {
    const ea = eaIndexed(cpu.gpr, raOf(w), rbOf(w), "write");
    if (ea % size !== 0) return cpu.alignmentInterrupt(ea, w);
    const succeeded = cpu.reservationValid && cpu.reservationAddress === ea && cpu.reservationSize === size;
    if (succeeded) {
      const memory = cpu.memory, rs = rtOf(w), g = cpu.gpr;
      if (size === 16) {
        memory.store64(ea + 8, g[2 * rs], g[2 * rs + 1]);
        memory.store64(ea, g[2 * rs + 2], g[2 * rs + 3]);
      } else if (size === 8) memory.store64(ea, g[2 * rs], g[2 * rs + 1]);
      else if (size === 4) memory.store32(ea, g[2 * rs]);
      else if (size === 2) memory.store16(ea, g[2 * rs] & 0xffff);
      else memory.store8(ea, g[2 * rs] & 0xff);
      cpu.noteStore(ea, size);
    }
    cpu.reservationValid = false;
    cpu.setCrField(0, (succeeded ? 2 : 0) | cpu.so);
  };
}

const dcbz: Semantics = (cpu, w) => {
  const ea = eaIndexed(cpu.gpr, raOf(w), rbOf(w), "write");
  const block = ea - (ea % DCACHE_BLOCK_BYTES);
  for (let offset = 0; offset < DCACHE_BLOCK_BYTES; offset += 8) cpu.memory.store64(block + offset, 0, 0);
  cpu.noteStore(block, DCACHE_BLOCK_BYTES);
};

const icbi: Semantics = (cpu, w) => {
  const ea = eaIndexed(cpu.gpr, raOf(w), rbOf(w), "read");
  cpu.invalidateCode(ea - (ea % PAGE_SIZE), PAGE_SIZE);
};

/** Cache hints and barriers: the emulated memory is coherent and accesses complete in order. */
const noEffect: Semantics = () => {};

// Special-purpose registers.

const SPR_XER = 1, SPR_DSCR_USER = 3, SPR_LR = 8, SPR_CTR = 9, SPR_AMR_USER = 13, SPR_VRSAVE = 256;
const SPR_TB = 268, SPR_TBU = 269, SPR_TAR = 815, SPR_PPR = 896, SPR_PPR32 = 898;

/** SPR numbers with this bit set are privileged (the high bit of the field's first half). */
const PRIVILEGED_SPR = 0x10;

const sprNumber = (w: number) => ((w >>> 16) & 31) | (((w >>> 11) & 31) << 5);

const mfspr: Semantics = (cpu, w) => {
  const spr = sprNumber(w), rt = rtOf(w);
  switch (spr) {
    case SPR_XER:
      return put(cpu, rt, cpu.xer, 0);
    case SPR_LR:
      return put(cpu, rt, cpu.lrLo, cpu.lrHi);
    case SPR_CTR:
      return put(cpu, rt, cpu.ctrLo, cpu.ctrHi);
    case SPR_DSCR_USER:
      return put(cpu, rt, cpu.dscrLo, cpu.dscrHi);
    case SPR_AMR_USER:
      return put(cpu, rt, cpu.amrLo, cpu.amrHi);
    case SPR_VRSAVE:
      return put(cpu, rt, cpu.vrsave, 0);
    case SPR_TB: {
      const tb = cpu.timebase();
      return put(cpu, rt, tb | 0, Math.floor(tb / TWO_32) | 0);
    }
    case SPR_TBU:
      return put(cpu, rt, Math.floor(cpu.timebase() / TWO_32) | 0, 0);
    case SPR_TAR:
      return put(cpu, rt, cpu.tarLo, cpu.tarHi);
    case SPR_PPR:
      return put(cpu, rt, cpu.pprLo, cpu.pprHi);
    case SPR_PPR32:
      return put(cpu, rt, cpu.pprHi, 0);
  }
  cpu.programInterrupt(spr & PRIVILEGED_SPR ? "privileged-instruction" : "illegal-instruction", w);
};

const mtspr: Semantics = (cpu, w) => {
  const spr = sprNumber(w), rs = rtOf(w), lo = cpu.gpr[2 * rs], hi = cpu.gpr[2 * rs + 1];
  switch (spr) {
    case SPR_XER:
      cpu.xer = lo;
      return;
    case SPR_LR:
      cpu.lrLo = lo;
      cpu.lrHi = hi;
      return;
    case SPR_CTR:
      cpu.ctrLo = lo;
      cpu.ctrHi = hi;
      return;
    case SPR_DSCR_USER:
      cpu.dscrLo = lo;
      cpu.dscrHi = hi;
      return;
    case SPR_AMR_USER:
      cpu.amrLo = lo;
      cpu.amrHi = hi;
      return;
    case SPR_VRSAVE:
      cpu.vrsave = lo;
      return;
    case SPR_TAR:
      cpu.tarLo = lo;
      cpu.tarHi = hi;
      return;
    case SPR_PPR:
      cpu.pprLo = lo;
      cpu.pprHi = hi;
      return;
    case SPR_PPR32:
      cpu.pprHi = lo;
      return;
  }
  cpu.programInterrupt(spr & PRIVILEGED_SPR ? "privileged-instruction" : "illegal-instruction", w);
};

const sc: Semantics = (cpu, w) => {
  if (((w >>> 5) & 0x7f) !== 0) return cpu.programInterrupt("privileged-instruction", w);
  cpu.systemCall(false);
};

const scv: Semantics = (cpu) => cpu.systemCall(true);

/** The implementation of each instruction, by the semantics name its table entry gives. */
const SEMANTICS: Record<string, Semantics> = {
  b,
  bc,
  bclr,
  bcctr,
  bctar,
  sc,
  scv,
  mcrf,
  crnor: crLogical((a, bValue) => ~(a | bValue)),
  crandc: crLogical((a, bValue) => a & ~bValue),
  crxor: crLogical((a, bValue) => a ^ bValue),
  crnand: crLogical((a, bValue) => ~(a & bValue)),
  crand: crLogical((a, bValue) => a & bValue),
  creqv: crLogical((a, bValue) => ~(a ^ bValue)),
  crorc: crLogical((a, bValue) => a | ~bValue),
  cror: crLogical((a, bValue) => a | bValue),
  mcrxrx,
  mfcr,
  mfocrf,
  mtcrf,
  mtocrf: mtcrf,
  setb,
  addi,
  addis,
  addpcis,
  addic: addImmediateCarrying(false),
  addicRecord: addImmediateCarrying(true),
  subfic,
  mulli,
  add: addSemantics,
  subf: subfSemantics,
  addc: addForm(raRb, none, true),
  subfc: addForm(notRaRb, one, true),
  adde: addForm(raRb, carry, true),
  subfe: addForm(notRaRb, carry, true),
  addme: addForm(raMinusOne, carry, true),
  subfme: addForm(notRaMinusOne, carry, true),
  addze: addForm(raZero, carry, true),
  subfze: addForm(notRaZero, carry, true),
  neg: addForm(notRaZero, one, false),
  addex,
  mullw,
  mulhw: mulhwSemantics,
  mulhwu: mulhwuSemantics,
  divw: divideWord(true, false, false),
  divwu: divideWord(false, false, false),
  divwe: divideWord(true, true, false),
  divweu: divideWord(false, true, false),
  modsw: divideWord(true, false, true),
  moduw: divideWord(false, false, true),
  mulld,
  mulhd: multiplyHigh64(mulhd),
  mulhdu: multiplyHigh64(mulhdu),
  maddhd: multiplyAddForm(true, true),
  maddhdu: multiplyAddForm(false, true),
  maddld: multiplyAddForm(true, false),
  divd: divideDoubleword(true, false),
  divdu: divideDoubleword(false, false),
  divde: divideDoublewordExtended(true),
  divdeu: divideDoublewordExtended(false),
  modsd: divideDoubleword(true, true),
  modud: divideDoubleword(false, true),
  darn,
  cmpi: compareForm(true, true),
  cmp: compareForm(true, false),
  cmpli: compareForm(false, true),
  cmpl: compareForm(false, false),
  cmprb,
  cmpeqb,
  twi: trapForm(false, true),
  tw: trapForm(false, false),
  tdi: trapForm(true, true),
  td: trapForm(true, false),
  isel,
  andi,
  andis,
  ori,
  oris,
  xori,
  xoris,
  and,
  xor,
  nand,
  or,
  nor,
  eqv,
  andc,
  orc,
  extsb: extendSign(8),
  extsh: extendSign(16),
  extsw: extendSign(32),
  cntlzw,
  cntlzd,
  cnttzw,
  cnttzd,
  cmpb,
  popcntb,
  popcntw,
  popcntd,
  prtyw,
  prtyd,
  bpermd,
  addg6s,
  cdtbcd,
  cbcdtd,
  rlwinm,
  rlwnm,
  rlwimi,
  rldicl: rotateDoubleword(immediateShift, (w) => [mb6(w), 63]),
  rldicr: rotateDoubleword(immediateShift, (w) => [0, mb6(w)]),
  rldic: rotateDoubleword(immediateShift, (w, n) => [mb6(w), 63 - n]),
  rldimi,
  rldcl: rotateDoubleword(registerShift, (w) => [mb6(w), 63]),
  rldcr: rotateDoubleword(registerShift, (w) => [0, mb6(w)]),
  slw,
  srw,
  srawi,
  sraw,
  sld,
  srd,
  sradi,
  srad,
  extswsli,
  lbz: load({ size: 1 }),
  lbzu: load({ size: 1, update: true }),
  lbzx: load({ size: 1, indexed: true }),
  lbzux: load({ size: 1, indexed: true, update: true }),
  lhz: load({ size: 2 }),
  lhzu: load({ size: 2, update: true }),
  lhzx: load({ size: 2, indexed: true }),
  lhzux: load({ size: 2, indexed: true, update: true }),
  lha: load({ size: 2, signed: true }),
  lhau: load({ size: 2, signed: true, update: true }),
  lhax: load({ size: 2, signed: true, indexed: true }),
  lhaux: load({ size: 2, signed: true, indexed: true, update: true }),
  lwz: load({ size: 4 }),
  lwzu: load({ size: 4, update: true }),
  lwzx: load({ size: 4, indexed: true }),
  lwzux: load({ size: 4, indexed: true, update: true }),
  lwa: load({ size: 4, signed: true, ds: true }),
  lwax: load({ size: 4, signed: true, indexed: true }),
  lwaux: load({ size: 4, signed: true, indexed: true, update: true }),
  ld: load({ size: 8, ds: true }),
  ldu: load({ size: 8, ds: true, update: true }),
  ldx: load({ size: 8, indexed: true }),
  ldux: load({ size: 8, indexed: true, update: true }),
  stb: store({ size: 1 }),
  stbu: store({ size: 1, update: true }),
  stbx: store({ size: 1, indexed: true }),
  stbux: store({ size: 1, indexed: true, update: true }),
  sth: store({ size: 2 }),
  sthu: store({ size: 2, update: true }),
  sthx: store({ size: 2, indexed: true }),
  sthux: store({ size: 2, indexed: true, update: true }),
  stw: store({ size: 4 }),
  stwu: store({ size: 4, update: true }),
  stwx: store({ size: 4, indexed: true }),
  stwux: store({ size: 4, indexed: true, update: true }),
  std: store({ size: 8, ds: true }),
  stdu: store({ size: 8, ds: true, update: true }),
  stdx: store({ size: 8, indexed: true }),
  stdux: store({ size: 8, indexed: true, update: true }),
  lhbrx: load({ size: 2, reversed: true, indexed: true }),
  lwbrx: load({ size: 4, reversed: true, indexed: true }),
  ldbrx: load({ size: 8, reversed: true, indexed: true }),
  sthbrx: store({ size: 2, reversed: true, indexed: true }),
  stwbrx: store({ size: 4, reversed: true, indexed: true }),
  stdbrx: store({ size: 8, reversed: true, indexed: true }),
  lmw: multipleOrString,
  stmw: multipleOrString,
  lswi: multipleOrString,
  lswx: multipleOrString,
  stswi: multipleOrString,
  stswx: multipleOrString,
  lbarx: loadAndReserve(1),
  lharx: loadAndReserve(2),
  lwarx: loadAndReserve(4),
  ldarx: loadAndReserve(8),
  lqarx: loadAndReserve(16),
  stbcx: storeConditional(1),
  sthcx: storeConditional(2),
  stwcx: storeConditional(4),
  stdcx: storeConditional(8),
  stqcx: storeConditional(16),
  sync: noEffect,
  eieio: noEffect,
  isync: noEffect,
  wait: noEffect,
  dcbz,
  dcbst: noEffect,
  dcbf: noEffect,
  dcbt: noEffect,
  dcbtst: noEffect,
  icbi,
  icbt: noEffect,
  mfspr,
  mtspr,
};

/** Every implemented instruction, by the semantics name its table entry gives. */
const ALL_SEMANTICS: Record<string, Semantics> = {
  ...SEMANTICS,
  ...FLOATING_POINT_SEMANTICS,
  ...VECTOR_SEMANTICS,
  ...QUAD_SEMANTICS,
  ...DECIMAL_SEMANTICS,
  ...CRYPTO_SEMANTICS,
};

/**
 * The facilities this CPU executes completely; the loader advertises AT_HWCAP/AT_HWCAP2 bits from
 * them. An instruction of any other facility stops the CPU with FacilityUnavailable.
 */
export const IMPLEMENTED_FACILITIES: ReadonlySet<Facility> = new Set(
  [...new Set(INSTRUCTIONS.map((def) => def.facility))].filter((facility) =>
    INSTRUCTIONS.every((def) => def.facility !== facility || ALL_SEMANTICS[def.semantics] !== undefined)
  ),
);

/** Per op id: its implementation, or the facility-unavailable stop for facilities not provided. */
export const HANDLERS: readonly Semantics[] = INSTRUCTIONS.map((def) => {
  if (IMPLEMENTED_FACILITIES.has(def.facility)) return ALL_SEMANTICS[def.semantics];
  return (cpu: Cpu, word: number) => cpu.facilityUnavailable(def.facility, word);
});

/** Per op id: 1 for the instructions that end a basic block (branches). */
const ENDS_BLOCK = Uint8Array.from(
  INSTRUCTIONS,
  (def) => (["b", "bc", "bclr", "bcctr", "bctar"].includes(def.mnemonic) ? 1 : 0),
);

/** Whether the interpreter executes an op (rather than stopping with FacilityUnavailable). */
export function implemented(op: number): boolean {
  return IMPLEMENTED_FACILITIES.has(INSTRUCTIONS[op].facility);
}

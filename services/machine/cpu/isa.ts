// The Power ISA v3.0B problem-state instruction set as one declarative table. Everything that
// knows about instruction encodings — the decoder, the disassembler, the interpreter and the block
// translator — is derived from INSTRUCTIONS; nothing else lists opcodes.
//
// Bits are numbered as in the ISA: bit 0 is the most significant bit of the 32-bit word.
// An entry fixes its primary opcode (bits 0-5), its extended-opcode fields (`xo`) and, where the
// ISA reuses an operand position as a further opcode (`fixed`, e.g. bits 11-15 of vclzlsbb).
// Every bit that is neither fixed, an operand, a flag nor listed in `ignored` is reserved and must
// be zero: a word with a reserved bit set is not that instruction (an illegal instruction to the
// CPU), which is also how binutils treats it.

/** An inclusive range of ISA bit numbers [first, last]. */
export type BitRange = readonly [first: number, last: number];

/** A field [first, last] that must hold `value`. */
export type FieldValue = readonly [first: number, last: number, value: number];

export type Form =
  | "I"
  | "B"
  | "SC"
  | "D"
  | "DS"
  | "DQ"
  | "DX"
  | "X"
  | "XL"
  | "XFX"
  | "XFL"
  | "XO"
  | "XS"
  | "A"
  | "M"
  | "MD"
  | "MDS"
  | "VA"
  | "VC"
  | "VX"
  | "XX1"
  | "XX2"
  | "XX3"
  | "XX4"
  | "Z23";

/**
 * The facility an instruction belongs to; the loader advertises AT_HWCAP/AT_HWCAP2 bits from the
 * facilities the interpreter implements.
 */
export type Facility =
  | "base" // fixed-point, branch, CR, storage control (Book I/II, 64-bit server)
  | "fp" // binary floating point
  | "vmx" // vector (Altivec) incl. ISA 2.07/3.0 additions and vector BCD
  | "vsx" // vector-scalar
  | "crypto" // VMX crypto (PPC_FEATURE2_VEC_CRYPTO)
  | "ieee128" // VSX quad-precision scalar (PPC_FEATURE2_HAS_IEEE128)
  | "htm" // transactional memory (PPC_FEATURE2_HTM)
  | "darn"; // random number (PPC_FEATURE2_DARN)

export type OperandKind =
  | "gpr" // r0..r31
  | "gpr0" // r1..r31, or the value 0 when the field is 0 ("(RA|0)")
  | "fpr"
  | "vr"
  | "vsr" // vs0..vs63
  | "crf" // a CR field, cr0..cr7
  | "crb" // a CR bit, 0..31
  | "imm" // an unsigned or signed immediate
  | "disp" // a displacement, written d(RA)
  | "rel" // a branch displacement (relative, or absolute with AA=1)
  | "spr"; // a special-purpose register number

export interface OperandDef {
  readonly kind: OperandKind;
  /** Bit ranges concatenated most significant first. */
  readonly fields: readonly BitRange[];
  readonly signed?: boolean;
  /** The field holds the value shifted right by this many bits (DS, DQ, BD, LI). */
  readonly scale?: number;
  /** A zero field means this value (NB: 0 encodes 32). */
  readonly zeroMeans?: number;
  /** Values the ISA reserves: a word holding one is not a valid instruction. */
  readonly reserved?: readonly number[];
  /** The operand may be omitted in assembly; it then has this value. */
  readonly optional?: number;
}

/** Operands by their ISA names. Where the ISA reuses a name at another position, a suffix tells them apart. */
export const OPERANDS = {
  RT: { kind: "gpr", fields: [[6, 10]] },
  RS: { kind: "gpr", fields: [[6, 10]] },
  RA: { kind: "gpr", fields: [[11, 15]] },
  RA0: { kind: "gpr0", fields: [[11, 15]] },
  RB: { kind: "gpr", fields: [[16, 20]] },
  RC: { kind: "gpr", fields: [[21, 25]] },
  FRT: { kind: "fpr", fields: [[6, 10]] },
  FRS: { kind: "fpr", fields: [[6, 10]] },
  FRA: { kind: "fpr", fields: [[11, 15]] },
  FRB: { kind: "fpr", fields: [[16, 20]] },
  FRC: { kind: "fpr", fields: [[21, 25]] },
  VRT: { kind: "vr", fields: [[6, 10]] },
  VRS: { kind: "vr", fields: [[6, 10]] },
  VRA: { kind: "vr", fields: [[11, 15]] },
  VRB: { kind: "vr", fields: [[16, 20]] },
  VRC: { kind: "vr", fields: [[21, 25]] },
  XT: { kind: "vsr", fields: [[31, 31], [6, 10]] },
  XS: { kind: "vsr", fields: [[31, 31], [6, 10]] },
  XA: { kind: "vsr", fields: [[29, 29], [11, 15]] },
  XB: { kind: "vsr", fields: [[30, 30], [16, 20]] },
  XC: { kind: "vsr", fields: [[28, 28], [21, 25]] },
  /** XT/XS of the DQ-form lxv/stxv: TX is bit 28. */
  XTQ: { kind: "vsr", fields: [[28, 28], [6, 10]] },
  BF: { kind: "crf", fields: [[6, 8]] },
  BFA: { kind: "crf", fields: [[11, 13]] },
  BT: { kind: "crb", fields: [[6, 10]] },
  /** mtfsb0/mtfsb1: an FPSCR bit. */
  BTF: { kind: "imm", fields: [[6, 10]] },
  /** mtfsfi: an FPSCR field. */
  BFF: { kind: "imm", fields: [[6, 8]] },
  BA: { kind: "crb", fields: [[11, 15]] },
  BB: { kind: "crb", fields: [[16, 20]] },
  BI: { kind: "crb", fields: [[11, 15]] },
  /** The CR bit selected by isel. */
  BC: { kind: "crb", fields: [[21, 25]] },
  BO: { kind: "imm", fields: [[6, 10]] },
  BH: { kind: "imm", fields: [[19, 20]], optional: 0 },
  BD: { kind: "rel", fields: [[16, 29]], signed: true, scale: 2 },
  LI: { kind: "rel", fields: [[6, 29]], signed: true, scale: 2 },
  LEV: { kind: "imm", fields: [[20, 26]], optional: 0 },
  /** scv takes its level as a required operand. */
  LEVSCV: { kind: "imm", fields: [[20, 26]] },
  SI: { kind: "imm", fields: [[16, 31]], signed: true },
  UI: { kind: "imm", fields: [[16, 31]] },
  D: { kind: "disp", fields: [[16, 31]], signed: true },
  DS: { kind: "disp", fields: [[16, 29]], signed: true, scale: 2 },
  DQ: { kind: "disp", fields: [[16, 27]], signed: true, scale: 4 },
  /** addpcis: d0 || d1 || d2, the high half of the PC-relative addend. */
  DX: { kind: "imm", fields: [[16, 25], [11, 15], [31, 31]], signed: true },
  SH: { kind: "imm", fields: [[16, 20]] },
  SH6: { kind: "imm", fields: [[30, 30], [16, 20]] },
  MB: { kind: "imm", fields: [[21, 25]] },
  ME: { kind: "imm", fields: [[26, 30]] },
  MB6: { kind: "imm", fields: [[26, 26], [21, 25]] },
  ME6: { kind: "imm", fields: [[26, 26], [21, 25]] },
  SPR: { kind: "spr", fields: [[16, 20], [11, 15]] },
  FXM: { kind: "imm", fields: [[12, 19]] },
  FLM: { kind: "imm", fields: [[7, 14]] },
  /** cmp/cmpi/cmpl/cmpli, cmprb: 64-bit (1) or 32-bit (0) comparison. */
  L10: { kind: "imm", fields: [[10, 10]] },
  /** sync: 0 heavyweight, 1 lightweight, 2 ptesync. */
  LSYNC: { kind: "imm", fields: [[9, 10]], optional: 0, reserved: [3] },
  /** dcbf: 0 flush, 1 local, 3 flush of the primary cache. */
  LDCBF: { kind: "imm", fields: [[9, 10]], optional: 0, reserved: [2] },
  /** darn: 0 conditioned 32-bit, 1 conditioned 64-bit, 2 raw 64-bit. */
  LDARN: { kind: "imm", fields: [[14, 15]] },
  /** mtfsf: L=1 writes the whole FPSCR. */
  LFSF: { kind: "imm", fields: [[6, 6]], optional: 0 },
  W: { kind: "imm", fields: [[15, 15]], optional: 0 },
  U: { kind: "imm", fields: [[16, 19]] },
  TO: { kind: "imm", fields: [[6, 10]] },
  NB: { kind: "imm", fields: [[16, 20]], zeroMeans: 32 },
  TH: { kind: "imm", fields: [[6, 10]], optional: 0 },
  /** icbt cache level; binutils reads the reserved bit 6 with it. */
  CT: { kind: "imm", fields: [[6, 10]], optional: 0 },
  /** larx: exclusive-access hint. */
  EH: { kind: "imm", fields: [[31, 31]], optional: 0 },
  /** addex: which carry (0: CA, 1: OV). */
  CY: { kind: "imm", fields: [[21, 22]] },
  STRM: { kind: "imm", fields: [[9, 10]] },
  SIM: { kind: "imm", fields: [[11, 15]], signed: true },
  UIM5: { kind: "imm", fields: [[11, 15]] },
  UIM4: { kind: "imm", fields: [[12, 15]] },
  UIM3: { kind: "imm", fields: [[13, 15]] },
  UIM2: { kind: "imm", fields: [[14, 15]] },
  SHB: { kind: "imm", fields: [[22, 25]] },
  ST: { kind: "imm", fields: [[16, 16]] },
  SIX: { kind: "imm", fields: [[17, 20]] },
  PS: { kind: "imm", fields: [[22, 22]] },
  DM: { kind: "imm", fields: [[22, 23]] },
  SHW: { kind: "imm", fields: [[22, 23]] },
  IMM8: { kind: "imm", fields: [[13, 20]] },
  DCMX: { kind: "imm", fields: [[9, 15]] },
  /** xvtstdc*: dc || dm || dx. */
  DCMXV: { kind: "imm", fields: [[25, 25], [29, 29], [11, 15]] },
  /** xsrqpi/xsrqpxp: R and RMC select the rounding. */
  R: { kind: "imm", fields: [[15, 15]] },
  RMC: { kind: "imm", fields: [[21, 22]] },
  DRM: { kind: "imm", fields: [[18, 20]] },
  RM: { kind: "imm", fields: [[19, 20]] },
  /** tbegin.: rollback-only transaction. */
  RTM: { kind: "imm", fields: [[10, 10]], optional: 0 },
  /** tend.: end all nested transactions. */
  ATM: { kind: "imm", fields: [[6, 6]], optional: 0 },
  /** tsr.: 1 resume, 0 suspend. */
  LTSR: { kind: "imm", fields: [[10, 10]] },
  /** tabort[wd]ci.: a 5-bit signed immediate in the RB position. */
  SI5: { kind: "imm", fields: [[16, 20]], signed: true },
} as const satisfies Record<string, OperandDef>;

export type OperandName = keyof typeof OPERANDS;

/** Single-bit fields that vary an instruction without changing what it is; each adds a suffix. */
export const FLAGS = {
  /** Record: set CR0 (CR6 for vector compares, CR1 for FP). */
  Rc: { bit: 31, suffix: "." },
  /** Record bit of the VC-form and XX3-form vector compares. */
  Rc21: { bit: 21, suffix: "." },
  /** Record overflow in XER[OV,SO]. */
  OE: { bit: 21, suffix: "o" },
  /** Set LR to the next instruction. */
  LK: { bit: 31, suffix: "l" },
  /** Absolute branch target. */
  AA: { bit: 30, suffix: "a" },
  /** Quad-precision arithmetic rounded to odd. */
  RO: { bit: 31, suffix: "o" },
  /** xsrqpi: signal inexact. */
  EX: { bit: 31, suffix: "x" },
} as const;

export type FlagName = keyof typeof FLAGS;

/** Operand combinations the ISA calls invalid forms; the decoder rejects them, as binutils does. */
export type Constraint =
  | "RA_NOT_ZERO" // update-form stores and FP loads
  | "RA_NOT_ZERO_NOT_RT" // update-form loads
  | "RA_NOT_RT" // lswi, lswx, lqarx
  | "RB_NOT_RT" // lswx, lqarx
  | "RA_BELOW_RT" // lmw: RA may not be among the registers loaded (RA = RT = 0 included)
  | "ONE_FXM_BIT" // mtocrf/mfocrf name exactly one CR field
  | "BO_VALID" // conditional branches: z bits zero, "at" hint not 0b01, "always" exactly 0b10100
  | "BO_CTR_UNCHANGED" // bcctr may not decrement CTR
  | "RT_EVEN"; // quadword larx/stcx. use an even/odd register pair

export interface InstructionDef {
  /** The mnemonic without flag suffixes: "add" covers add, add., addo and addo. */
  readonly mnemonic: string;
  readonly form: Form;
  readonly opcode: number;
  /** The extended opcode field(s). */
  readonly xo: readonly FieldValue[];
  /** Operand positions the ISA reuses as further opcode bits. */
  readonly fixed: readonly FieldValue[];
  readonly operands: readonly OperandName[];
  readonly flags: readonly FlagName[];
  readonly constraints: readonly Constraint[];
  /** Reserved bits the hardware ignores: neither required zero nor part of an operand. */
  readonly ignored: readonly BitRange[];
  readonly facility: Facility;
  /** The name of the function implementing the instruction. */
  readonly semantics: string;
}

/** The standard extended-opcode position of each form (none for I, B, D, M). */
const FORM_XO: Record<Form, BitRange | null> = {
  I: null,
  B: null,
  SC: [30, 31],
  D: null,
  DS: [30, 31],
  DQ: [29, 31],
  DX: [26, 30],
  X: [21, 30],
  XL: [21, 30],
  XFX: [21, 30],
  XFL: [21, 30],
  XO: [22, 30],
  XS: [21, 29],
  A: [26, 30],
  M: null,
  MD: [27, 29],
  MDS: [27, 30],
  VA: [26, 31],
  VC: [22, 31],
  VX: [21, 31],
  XX1: [21, 30],
  XX2: [21, 29],
  XX3: [21, 28],
  XX4: [26, 27],
  Z23: [23, 30],
};

interface EntryOptions {
  readonly fixed?: readonly FieldValue[];
  readonly constraints?: readonly Constraint[];
  readonly ignored?: readonly BitRange[];
  readonly semantics?: string;
  /** Replaces the form's standard extended-opcode field (split or narrowed opcodes). */
  readonly xo?: readonly FieldValue[];
}

function entry(
  form: Form,
  mnemonic: string,
  opcode: number,
  xo: number | null,
  operands: string,
  flags = "",
  options: EntryOptions = {},
): InstructionDef {
  const position = FORM_XO[form];
  let xoFields: readonly FieldValue[];
  if (options.xo) xoFields = options.xo;
  else if (xo === null) xoFields = [];
  else if (position) xoFields = [[position[0], position[1], xo]];
  else throw new Error(`isa: ${mnemonic}: form ${form} has no extended opcode`);
  return {
    mnemonic,
    form,
    opcode,
    xo: xoFields,
    fixed: options.fixed ?? [],
    operands: operands ? (operands.split(" ") as OperandName[]) : [],
    flags: flags ? (flags.split(" ") as FlagName[]) : [],
    constraints: options.constraints ?? [],
    ignored: options.ignored ?? [],
    facility: "base",
    semantics: options.semantics ?? mnemonic.replace(/\.$/, ""),
  };
}

function facility(name: Facility, entries: InstructionDef[]): InstructionDef[] {
  return entries.map((e) => ({ ...e, facility: name }));
}

// Short constructors, one per form. Arguments: mnemonic, primary opcode, extended opcode,
// operands (space-separated), flags (space-separated), options.
type Ctor = (
  mnemonic: string,
  opcode: number,
  xo: number,
  operands: string,
  flags?: string,
  options?: EntryOptions,
) => InstructionDef;
type NoXoCtor = (
  mnemonic: string,
  opcode: number,
  operands: string,
  flags?: string,
  options?: EntryOptions,
) => InstructionDef;
type VecCtor = (
  mnemonic: string,
  xo: number,
  operands: string,
  flags?: string,
  options?: EntryOptions,
) => InstructionDef;

const I: NoXoCtor = (m, op, ops, fl, o) => entry("I", m, op, null, ops, fl, o);
const B: NoXoCtor = (m, op, ops, fl, o) => entry("B", m, op, null, ops, fl, o);
const D: NoXoCtor = (m, op, ops, fl, o) => entry("D", m, op, null, ops, fl, o);
const M: NoXoCtor = (m, op, ops, fl, o) => entry("M", m, op, null, ops, fl, o);
const SC: Ctor = (m, op, xo, ops, fl, o) => entry("SC", m, op, xo, ops, fl, o);
const DS: Ctor = (m, op, xo, ops, fl, o) => entry("DS", m, op, xo, ops, fl, o);
const DQ: Ctor = (m, op, xo, ops, fl, o) => entry("DQ", m, op, xo, ops, fl, o);
const DX: Ctor = (m, op, xo, ops, fl, o) => entry("DX", m, op, xo, ops, fl, o);
const X: Ctor = (m, op, xo, ops, fl, o) => entry("X", m, op, xo, ops, fl, o);
const XL: Ctor = (m, op, xo, ops, fl, o) => entry("XL", m, op, xo, ops, fl, o);
const XFX: Ctor = (m, op, xo, ops, fl, o) => entry("XFX", m, op, xo, ops, fl, o);
const XFL: Ctor = (m, op, xo, ops, fl, o) => entry("XFL", m, op, xo, ops, fl, o);
const XO: Ctor = (m, op, xo, ops, fl, o) => entry("XO", m, op, xo, ops, fl, o);
const XS: Ctor = (m, op, xo, ops, fl, o) => entry("XS", m, op, xo, ops, fl, o);
const A: Ctor = (m, op, xo, ops, fl, o) => entry("A", m, op, xo, ops, fl, o);
const MD: Ctor = (m, op, xo, ops, fl, o) => entry("MD", m, op, xo, ops, fl, o);
const MDS: Ctor = (m, op, xo, ops, fl, o) => entry("MDS", m, op, xo, ops, fl, o);
const XX1: Ctor = (m, op, xo, ops, fl, o) => entry("XX1", m, op, xo, ops, fl, o);
const Z23: Ctor = (m, op, xo, ops, fl, o) => entry("Z23", m, op, xo, ops, fl, o);
const VA: VecCtor = (m, xo, ops, fl, o) => entry("VA", m, 4, xo, ops, fl, o);
const VX: VecCtor = (m, xo, ops, fl, o) => entry("VX", m, 4, xo, ops, fl, o);
const VC: VecCtor = (m, xo, ops, fl, o) => entry("VC", m, 4, xo, ops, fl ?? "Rc21", o);
const XX2: VecCtor = (m, xo, ops, fl, o) => entry("XX2", m, 60, xo, ops, fl, o);
const XX3: VecCtor = (m, xo, ops, fl, o) => entry("XX3", m, 60, xo, ops, fl, o);
const XX4: VecCtor = (m, xo, ops, fl, o) => entry("XX4", m, 60, xo, ops, fl, o);
/** XX3-form vector compare: the record bit sits at 21, the opcode in 22-28. */
const XX3C: VecCtor = (m, xo, ops) => entry("XX3", m, 60, null, ops, "Rc21", { xo: [[22, 28, xo]] });
/** X-form instruction whose bits 11-15 are a further opcode. */
const sub = (value: number): EntryOptions => ({ fixed: [[11, 15, value]] });

const UPDATE_LOAD: EntryOptions = { constraints: ["RA_NOT_ZERO_NOT_RT"] };
const UPDATE_STORE: EntryOptions = { constraints: ["RA_NOT_ZERO"] };

const BRANCH = [
  I("b", 18, "LI", "AA LK"),
  B("bc", 16, "BO BI BD", "AA LK", { constraints: ["BO_VALID"] }),
  XL("bclr", 19, 16, "BO BI BH", "LK", { constraints: ["BO_VALID"] }),
  XL("bcctr", 19, 528, "BO BI BH", "LK", { constraints: ["BO_VALID", "BO_CTR_UNCHANGED"] }),
  XL("bctar", 19, 560, "BO BI BH", "LK", { constraints: ["BO_VALID"] }),
  SC("sc", 17, 2, "LEV", "", { ignored: [[16, 19], [27, 29]] }),
  SC("scv", 17, 1, "LEVSCV", "", { ignored: [[16, 19], [27, 29]] }),
];

const CONDITION_REGISTER = [
  XL("mcrf", 19, 0, "BF BFA"),
  XL("crnor", 19, 33, "BT BA BB"),
  XL("crandc", 19, 129, "BT BA BB"),
  XL("crxor", 19, 193, "BT BA BB"),
  XL("crnand", 19, 225, "BT BA BB"),
  XL("crand", 19, 257, "BT BA BB"),
  XL("creqv", 19, 289, "BT BA BB"),
  XL("crorc", 19, 417, "BT BA BB"),
  XL("cror", 19, 449, "BT BA BB"),
  X("mcrxrx", 31, 576, "BF"),
  X("mfcr", 31, 19, "RT", "", { fixed: [[11, 11, 0]] }),
  XFX("mfocrf", 31, 19, "RT FXM", "", { fixed: [[11, 11, 1]], constraints: ["ONE_FXM_BIT"] }),
  XFX("mtcrf", 31, 144, "FXM RS", "", { fixed: [[11, 11, 0]] }),
  XFX("mtocrf", 31, 144, "FXM RS", "", { fixed: [[11, 11, 1]], constraints: ["ONE_FXM_BIT"] }),
  X("setb", 31, 128, "RT BFA"),
];

const FIXED_POINT_ARITHMETIC = [
  D("addi", 14, "RT RA0 SI"),
  D("addis", 15, "RT RA0 SI"),
  DX("addpcis", 19, 2, "RT DX"),
  D("addic", 12, "RT RA SI"),
  D("addic.", 13, "RT RA SI", "", { semantics: "addicRecord" }),
  D("subfic", 8, "RT RA SI"),
  D("mulli", 7, "RT RA SI"),
  XO("add", 31, 266, "RT RA RB", "OE Rc"),
  XO("subf", 31, 40, "RT RA RB", "OE Rc"),
  XO("addc", 31, 10, "RT RA RB", "OE Rc"),
  XO("subfc", 31, 8, "RT RA RB", "OE Rc"),
  XO("adde", 31, 138, "RT RA RB", "OE Rc"),
  XO("subfe", 31, 136, "RT RA RB", "OE Rc"),
  XO("addme", 31, 234, "RT RA", "OE Rc"),
  XO("subfme", 31, 232, "RT RA", "OE Rc"),
  XO("addze", 31, 202, "RT RA", "OE Rc"),
  XO("subfze", 31, 200, "RT RA", "OE Rc"),
  XO("neg", 31, 104, "RT RA", "OE Rc"),
  Z23("addex", 31, 170, "RT RA RB CY"),
  XO("mullw", 31, 235, "RT RA RB", "OE Rc"),
  XO("mulhw", 31, 75, "RT RA RB", "Rc"),
  XO("mulhwu", 31, 11, "RT RA RB", "Rc"),
  XO("divw", 31, 491, "RT RA RB", "OE Rc"),
  XO("divwu", 31, 459, "RT RA RB", "OE Rc"),
  XO("divwe", 31, 427, "RT RA RB", "OE Rc"),
  XO("divweu", 31, 395, "RT RA RB", "OE Rc"),
  X("modsw", 31, 779, "RT RA RB"),
  X("moduw", 31, 267, "RT RA RB"),
  XO("mulld", 31, 233, "RT RA RB", "OE Rc"),
  XO("mulhd", 31, 73, "RT RA RB", "Rc"),
  XO("mulhdu", 31, 9, "RT RA RB", "Rc"),
  VA("maddhd", 48, "RT RA RB RC"),
  VA("maddhdu", 49, "RT RA RB RC"),
  VA("maddld", 51, "RT RA RB RC"),
  XO("divd", 31, 489, "RT RA RB", "OE Rc"),
  XO("divdu", 31, 457, "RT RA RB", "OE Rc"),
  XO("divde", 31, 425, "RT RA RB", "OE Rc"),
  XO("divdeu", 31, 393, "RT RA RB", "OE Rc"),
  X("modsd", 31, 777, "RT RA RB"),
  X("modud", 31, 265, "RT RA RB"),
];

const FIXED_POINT_COMPARE_AND_TRAP = [
  D("cmpi", 11, "BF L10 RA SI", "", { ignored: [[9, 9]] }),
  X("cmp", 31, 0, "BF L10 RA RB"),
  D("cmpli", 10, "BF L10 RA UI", "", { ignored: [[9, 9]] }),
  X("cmpl", 31, 32, "BF L10 RA RB"),
  X("cmprb", 31, 192, "BF L10 RA RB"),
  X("cmpeqb", 31, 224, "BF RA RB"),
  D("twi", 3, "TO RA SI"),
  X("tw", 31, 4, "TO RA RB"),
  D("tdi", 2, "TO RA SI"),
  X("td", 31, 68, "TO RA RB"),
  A("isel", 31, 15, "RT RA0 RB BC", "", { ignored: [[31, 31]] }),
];

const FIXED_POINT_LOGICAL = [
  D("andi.", 28, "RA RS UI"),
  D("andis.", 29, "RA RS UI"),
  D("ori", 24, "RA RS UI"),
  D("oris", 25, "RA RS UI"),
  D("xori", 26, "RA RS UI"),
  D("xoris", 27, "RA RS UI"),
  X("and", 31, 28, "RA RS RB", "Rc"),
  X("xor", 31, 316, "RA RS RB", "Rc"),
  X("nand", 31, 476, "RA RS RB", "Rc"),
  X("or", 31, 444, "RA RS RB", "Rc"),
  X("nor", 31, 124, "RA RS RB", "Rc"),
  X("eqv", 31, 284, "RA RS RB", "Rc"),
  X("andc", 31, 60, "RA RS RB", "Rc"),
  X("orc", 31, 412, "RA RS RB", "Rc"),
  X("extsb", 31, 954, "RA RS", "Rc"),
  X("extsh", 31, 922, "RA RS", "Rc"),
  X("extsw", 31, 986, "RA RS", "Rc"),
  X("cntlzw", 31, 26, "RA RS", "Rc"),
  X("cntlzd", 31, 58, "RA RS", "Rc"),
  X("cnttzw", 31, 538, "RA RS", "Rc"),
  X("cnttzd", 31, 570, "RA RS", "Rc"),
  X("cmpb", 31, 508, "RA RS RB"),
  XO("addg6s", 31, 74, "RT RA RB"),
  X("cdtbcd", 31, 282, "RA RS"),
  X("cbcdtd", 31, 314, "RA RS"),
  X("popcntb", 31, 122, "RA RS"),
  X("popcntw", 31, 378, "RA RS"),
  X("popcntd", 31, 506, "RA RS"),
  X("prtyw", 31, 154, "RA RS"),
  X("prtyd", 31, 186, "RA RS"),
  X("bpermd", 31, 252, "RA RS RB"),
];

const FIXED_POINT_ROTATE_AND_SHIFT = [
  M("rlwinm", 21, "RA RS SH MB ME", "Rc"),
  M("rlwnm", 23, "RA RS RB MB ME", "Rc"),
  M("rlwimi", 20, "RA RS SH MB ME", "Rc"),
  MD("rldicl", 30, 0, "RA RS SH6 MB6", "Rc"),
  MD("rldicr", 30, 1, "RA RS SH6 ME6", "Rc"),
  MD("rldic", 30, 2, "RA RS SH6 MB6", "Rc"),
  MD("rldimi", 30, 3, "RA RS SH6 MB6", "Rc"),
  MDS("rldcl", 30, 8, "RA RS RB MB6", "Rc"),
  MDS("rldcr", 30, 9, "RA RS RB ME6", "Rc"),
  X("slw", 31, 24, "RA RS RB", "Rc"),
  X("srw", 31, 536, "RA RS RB", "Rc"),
  X("srawi", 31, 824, "RA RS SH", "Rc"),
  X("sraw", 31, 792, "RA RS RB", "Rc"),
  X("sld", 31, 27, "RA RS RB", "Rc"),
  X("srd", 31, 539, "RA RS RB", "Rc"),
  XS("sradi", 31, 413, "RA RS SH6", "Rc"),
  X("srad", 31, 794, "RA RS RB", "Rc"),
  XS("extswsli", 31, 445, "RA RS SH6", "Rc"),
];

const FIXED_POINT_LOAD_STORE = [
  D("lbz", 34, "RT D RA0"),
  D("lbzu", 35, "RT D RA", "", UPDATE_LOAD),
  X("lbzx", 31, 87, "RT RA0 RB"),
  X("lbzux", 31, 119, "RT RA RB", "", UPDATE_LOAD),
  D("lhz", 40, "RT D RA0"),
  D("lhzu", 41, "RT D RA", "", UPDATE_LOAD),
  X("lhzx", 31, 279, "RT RA0 RB"),
  X("lhzux", 31, 311, "RT RA RB", "", UPDATE_LOAD),
  D("lha", 42, "RT D RA0"),
  D("lhau", 43, "RT D RA", "", UPDATE_LOAD),
  X("lhax", 31, 343, "RT RA0 RB"),
  X("lhaux", 31, 375, "RT RA RB", "", UPDATE_LOAD),
  D("lwz", 32, "RT D RA0"),
  D("lwzu", 33, "RT D RA", "", UPDATE_LOAD),
  X("lwzx", 31, 23, "RT RA0 RB"),
  X("lwzux", 31, 55, "RT RA RB", "", UPDATE_LOAD),
  DS("lwa", 58, 2, "RT DS RA0"),
  X("lwax", 31, 341, "RT RA0 RB"),
  X("lwaux", 31, 373, "RT RA RB", "", UPDATE_LOAD),
  DS("ld", 58, 0, "RT DS RA0"),
  DS("ldu", 58, 1, "RT DS RA", "", UPDATE_LOAD),
  X("ldx", 31, 21, "RT RA0 RB"),
  X("ldux", 31, 53, "RT RA RB", "", UPDATE_LOAD),
  D("stb", 38, "RS D RA0"),
  D("stbu", 39, "RS D RA", "", UPDATE_STORE),
  X("stbx", 31, 215, "RS RA0 RB"),
  X("stbux", 31, 247, "RS RA RB", "", UPDATE_STORE),
  D("sth", 44, "RS D RA0"),
  D("sthu", 45, "RS D RA", "", UPDATE_STORE),
  X("sthx", 31, 407, "RS RA0 RB"),
  X("sthux", 31, 439, "RS RA RB", "", UPDATE_STORE),
  D("stw", 36, "RS D RA0"),
  D("stwu", 37, "RS D RA", "", UPDATE_STORE),
  X("stwx", 31, 151, "RS RA0 RB"),
  X("stwux", 31, 183, "RS RA RB", "", UPDATE_STORE),
  DS("std", 62, 0, "RS DS RA0"),
  DS("stdu", 62, 1, "RS DS RA", "", UPDATE_STORE),
  X("stdx", 31, 149, "RS RA0 RB"),
  X("stdux", 31, 181, "RS RA RB", "", UPDATE_STORE),
  X("lhbrx", 31, 790, "RT RA0 RB"),
  X("lwbrx", 31, 534, "RT RA0 RB"),
  X("ldbrx", 31, 532, "RT RA0 RB"),
  X("sthbrx", 31, 918, "RS RA0 RB"),
  X("stwbrx", 31, 662, "RS RA0 RB"),
  X("stdbrx", 31, 660, "RS RA0 RB"),
  D("lmw", 46, "RT D RA0", "", { constraints: ["RA_BELOW_RT"] }),
  D("stmw", 47, "RS D RA0"),
  X("lswi", 31, 597, "RT RA0 NB", "", { constraints: ["RA_NOT_RT"] }),
  X("lswx", 31, 533, "RT RA0 RB", "", { constraints: ["RA_NOT_RT", "RB_NOT_RT"] }),
  X("stswi", 31, 725, "RS RA0 NB"),
  X("stswx", 31, 661, "RS RA0 RB"),
];

const STORAGE_SYNCHRONIZATION_AND_CACHE = [
  X("lbarx", 31, 52, "RT RA0 RB EH"),
  X("lharx", 31, 116, "RT RA0 RB EH"),
  X("lwarx", 31, 20, "RT RA0 RB EH"),
  X("ldarx", 31, 84, "RT RA0 RB EH"),
  X("lqarx", 31, 276, "RT RA0 RB EH", "", { constraints: ["RT_EVEN", "RA_NOT_RT", "RB_NOT_RT"] }),
  X("stbcx.", 31, 694, "RS RA0 RB", "", { fixed: [[31, 31, 1]] }),
  X("sthcx.", 31, 726, "RS RA0 RB", "", { fixed: [[31, 31, 1]] }),
  X("stwcx.", 31, 150, "RS RA0 RB", "", { fixed: [[31, 31, 1]] }),
  X("stdcx.", 31, 214, "RS RA0 RB", "", { fixed: [[31, 31, 1]] }),
  X("stqcx.", 31, 182, "RS RA0 RB", "", { fixed: [[31, 31, 1]], constraints: ["RT_EVEN"] }),
  X("sync", 31, 598, "LSYNC"),
  X("eieio", 31, 854, ""),
  XL("isync", 19, 150, ""),
  // ISA 3.0B reserves every WC value but 0, so the field is reserved here.
  X("wait", 31, 30, ""),
  X("dcbz", 31, 1014, "RA0 RB"),
  X("dcbst", 31, 54, "RA0 RB"),
  X("dcbf", 31, 86, "RA0 RB LDCBF"),
  X("dcbt", 31, 278, "RA0 RB TH"),
  X("dcbtst", 31, 246, "RA0 RB TH"),
  X("icbi", 31, 982, "RA0 RB"),
  X("icbt", 31, 22, "CT RA0 RB"),
];

const SPECIAL_PURPOSE_REGISTERS = [
  XFX("mfspr", 31, 339, "RT SPR"),
  XFX("mtspr", 31, 467, "SPR RS"),
];

const FLOATING_POINT = facility("fp", [
  D("lfs", 48, "FRT D RA0"),
  D("lfsu", 49, "FRT D RA", "", UPDATE_STORE),
  X("lfsx", 31, 535, "FRT RA0 RB"),
  X("lfsux", 31, 567, "FRT RA RB", "", UPDATE_STORE),
  D("lfd", 50, "FRT D RA0"),
  D("lfdu", 51, "FRT D RA", "", UPDATE_STORE),
  X("lfdx", 31, 599, "FRT RA0 RB"),
  X("lfdux", 31, 631, "FRT RA RB", "", UPDATE_STORE),
  X("lfiwax", 31, 855, "FRT RA0 RB"),
  X("lfiwzx", 31, 887, "FRT RA0 RB"),
  D("stfs", 52, "FRS D RA0"),
  D("stfsu", 53, "FRS D RA", "", UPDATE_STORE),
  X("stfsx", 31, 663, "FRS RA0 RB"),
  X("stfsux", 31, 695, "FRS RA RB", "", UPDATE_STORE),
  D("stfd", 54, "FRS D RA0"),
  D("stfdu", 55, "FRS D RA", "", UPDATE_STORE),
  X("stfdx", 31, 727, "FRS RA0 RB"),
  X("stfdux", 31, 759, "FRS RA RB", "", UPDATE_STORE),
  X("stfiwx", 31, 983, "FRS RA0 RB"),
  X("fmr", 63, 72, "FRT FRB", "Rc"),
  X("fneg", 63, 40, "FRT FRB", "Rc"),
  X("fabs", 63, 264, "FRT FRB", "Rc"),
  X("fnabs", 63, 136, "FRT FRB", "Rc"),
  X("fcpsgn", 63, 8, "FRT FRA FRB", "Rc"),
  X("fmrgew", 63, 966, "FRT FRA FRB"),
  X("fmrgow", 63, 838, "FRT FRA FRB"),
  A("fadd", 63, 21, "FRT FRA FRB", "Rc"),
  A("fadds", 59, 21, "FRT FRA FRB", "Rc"),
  A("fsub", 63, 20, "FRT FRA FRB", "Rc"),
  A("fsubs", 59, 20, "FRT FRA FRB", "Rc"),
  A("fmul", 63, 25, "FRT FRA FRC", "Rc"),
  A("fmuls", 59, 25, "FRT FRA FRC", "Rc"),
  A("fdiv", 63, 18, "FRT FRA FRB", "Rc"),
  A("fdivs", 59, 18, "FRT FRA FRB", "Rc"),
  A("fsqrt", 63, 22, "FRT FRB", "Rc"),
  A("fsqrts", 59, 22, "FRT FRB", "Rc"),
  A("fre", 63, 24, "FRT FRB", "Rc"),
  A("fres", 59, 24, "FRT FRB", "Rc"),
  A("frsqrte", 63, 26, "FRT FRB", "Rc"),
  A("frsqrtes", 59, 26, "FRT FRB", "Rc"),
  X("ftdiv", 63, 128, "BF FRA FRB"),
  X("ftsqrt", 63, 160, "BF FRB"),
  A("fmadd", 63, 29, "FRT FRA FRC FRB", "Rc"),
  A("fmadds", 59, 29, "FRT FRA FRC FRB", "Rc"),
  A("fmsub", 63, 28, "FRT FRA FRC FRB", "Rc"),
  A("fmsubs", 59, 28, "FRT FRA FRC FRB", "Rc"),
  A("fnmadd", 63, 31, "FRT FRA FRC FRB", "Rc"),
  A("fnmadds", 59, 31, "FRT FRA FRC FRB", "Rc"),
  A("fnmsub", 63, 30, "FRT FRA FRC FRB", "Rc"),
  A("fnmsubs", 59, 30, "FRT FRA FRC FRB", "Rc"),
  X("frsp", 63, 12, "FRT FRB", "Rc"),
  X("fctid", 63, 814, "FRT FRB", "Rc"),
  X("fctidz", 63, 815, "FRT FRB", "Rc"),
  X("fctidu", 63, 942, "FRT FRB", "Rc"),
  X("fctiduz", 63, 943, "FRT FRB", "Rc"),
  X("fctiw", 63, 14, "FRT FRB", "Rc"),
  X("fctiwz", 63, 15, "FRT FRB", "Rc"),
  X("fctiwu", 63, 142, "FRT FRB", "Rc"),
  X("fctiwuz", 63, 143, "FRT FRB", "Rc"),
  X("fcfid", 63, 846, "FRT FRB", "Rc"),
  X("fcfidu", 63, 974, "FRT FRB", "Rc"),
  X("fcfids", 59, 846, "FRT FRB", "Rc"),
  X("fcfidus", 59, 974, "FRT FRB", "Rc"),
  X("frin", 63, 392, "FRT FRB", "Rc"),
  X("friz", 63, 424, "FRT FRB", "Rc"),
  X("frip", 63, 456, "FRT FRB", "Rc"),
  X("frim", 63, 488, "FRT FRB", "Rc"),
  X("fcmpu", 63, 0, "BF FRA FRB"),
  X("fcmpo", 63, 32, "BF FRA FRB"),
  A("fsel", 63, 23, "FRT FRA FRC FRB", "Rc"),
  X("mffs", 63, 583, "FRT", "Rc", sub(0)),
  X("mffsce", 63, 583, "FRT", "", sub(1)),
  X("mffscdrn", 63, 583, "FRT FRB", "", sub(20)),
  X("mffscdrni", 63, 583, "FRT DRM", "", sub(21)),
  X("mffscrn", 63, 583, "FRT FRB", "", sub(22)),
  X("mffscrni", 63, 583, "FRT RM", "", sub(23)),
  X("mffsl", 63, 583, "FRT", "", sub(24)),
  X("mcrfs", 63, 64, "BF BFA"),
  X("mtfsfi", 63, 134, "BFF U W", "Rc"),
  XFL("mtfsf", 63, 711, "FLM FRB LFSF W", "Rc"),
  X("mtfsb0", 63, 70, "BTF", "Rc"),
  X("mtfsb1", 63, 38, "BTF", "Rc"),
]);

const VECTOR = facility("vmx", [
  // Loads, stores and permute control.
  X("lvebx", 31, 7, "VRT RA0 RB"),
  X("lvehx", 31, 39, "VRT RA0 RB"),
  X("lvewx", 31, 71, "VRT RA0 RB"),
  X("lvx", 31, 103, "VRT RA0 RB"),
  X("lvxl", 31, 359, "VRT RA0 RB"),
  X("stvebx", 31, 135, "VRS RA0 RB"),
  X("stvehx", 31, 167, "VRS RA0 RB"),
  X("stvewx", 31, 199, "VRS RA0 RB"),
  X("stvx", 31, 231, "VRS RA0 RB"),
  X("stvxl", 31, 487, "VRS RA0 RB"),
  X("lvsl", 31, 6, "VRT RA0 RB"),
  X("lvsr", 31, 38, "VRT RA0 RB"),
  // Data-stream touches are hints that POWER9 ignores, reserved bits included.
  X("dst", 31, 342, "RA RB STRM", "", { fixed: [[6, 6, 0]], ignored: [[7, 8], [31, 31]] }),
  X("dstt", 31, 342, "RA RB STRM", "", { fixed: [[6, 6, 1]], ignored: [[7, 8], [31, 31]] }),
  X("dstst", 31, 374, "RA RB STRM", "", { fixed: [[6, 6, 0]], ignored: [[7, 8], [31, 31]] }),
  X("dststt", 31, 374, "RA RB STRM", "", { fixed: [[6, 6, 1]], ignored: [[7, 8], [31, 31]] }),
  X("dss", 31, 822, "STRM", "", { fixed: [[6, 6, 0]], ignored: [[7, 8], [11, 20], [31, 31]] }),
  X("dssall", 31, 822, "", "", { fixed: [[6, 6, 1]], ignored: [[7, 20], [31, 31]] }),
  VX("mfvscr", 1540, "VRT"),
  VX("mtvscr", 1604, "VRB"),
  // Pack, unpack, merge, splat, permute, shift.
  VX("vpkuhum", 14, "VRT VRA VRB"),
  VX("vpkuwum", 78, "VRT VRA VRB"),
  VX("vpkudum", 1102, "VRT VRA VRB"),
  VX("vpkuhus", 142, "VRT VRA VRB"),
  VX("vpkuwus", 206, "VRT VRA VRB"),
  VX("vpkudus", 1230, "VRT VRA VRB"),
  VX("vpkshus", 270, "VRT VRA VRB"),
  VX("vpkswus", 334, "VRT VRA VRB"),
  VX("vpksdus", 1358, "VRT VRA VRB"),
  VX("vpkshss", 398, "VRT VRA VRB"),
  VX("vpkswss", 462, "VRT VRA VRB"),
  VX("vpksdss", 1486, "VRT VRA VRB"),
  VX("vpkpx", 782, "VRT VRA VRB"),
  VX("vupkhsb", 526, "VRT VRB"),
  VX("vupkhsh", 590, "VRT VRB"),
  VX("vupkhsw", 1614, "VRT VRB"),
  VX("vupklsb", 654, "VRT VRB"),
  VX("vupklsh", 718, "VRT VRB"),
  VX("vupklsw", 1742, "VRT VRB"),
  VX("vupkhpx", 846, "VRT VRB"),
  VX("vupklpx", 974, "VRT VRB"),
  VX("vmrghb", 12, "VRT VRA VRB"),
  VX("vmrghh", 76, "VRT VRA VRB"),
  VX("vmrghw", 140, "VRT VRA VRB"),
  VX("vmrglb", 268, "VRT VRA VRB"),
  VX("vmrglh", 332, "VRT VRA VRB"),
  VX("vmrglw", 396, "VRT VRA VRB"),
  VX("vmrgew", 1932, "VRT VRA VRB"),
  VX("vmrgow", 1676, "VRT VRA VRB"),
  VX("vspltb", 524, "VRT VRB UIM4"),
  VX("vsplth", 588, "VRT VRB UIM3"),
  VX("vspltw", 652, "VRT VRB UIM2"),
  VX("vspltisb", 780, "VRT SIM"),
  VX("vspltish", 844, "VRT SIM"),
  VX("vspltisw", 908, "VRT SIM"),
  VA("vperm", 43, "VRT VRA VRB VRC"),
  VA("vpermr", 59, "VRT VRA VRB VRC"),
  VA("vpermxor", 45, "VRT VRA VRB VRC"),
  VA("vsel", 42, "VRT VRA VRB VRC"),
  VA("vsldoi", 44, "VRT VRA VRB SHB"),
  VX("vsl", 452, "VRT VRA VRB"),
  VX("vsr", 708, "VRT VRA VRB"),
  VX("vslo", 1036, "VRT VRA VRB"),
  VX("vsro", 1100, "VRT VRA VRB"),
  VX("vslv", 1860, "VRT VRA VRB"),
  VX("vsrv", 1796, "VRT VRA VRB"),
  VX("vextractub", 525, "VRT VRB UIM4"),
  VX("vextractuh", 589, "VRT VRB UIM4"),
  VX("vextractuw", 653, "VRT VRB UIM4"),
  VX("vextractd", 717, "VRT VRB UIM4"),
  VX("vinsertb", 781, "VRT VRB UIM4"),
  VX("vinserth", 845, "VRT VRB UIM4"),
  VX("vinsertw", 909, "VRT VRB UIM4"),
  VX("vinsertd", 973, "VRT VRB UIM4"),
  VX("vextublx", 1549, "RT RA VRB"),
  VX("vextuhlx", 1613, "RT RA VRB"),
  VX("vextuwlx", 1677, "RT RA VRB"),
  VX("vextubrx", 1805, "RT RA VRB"),
  VX("vextuhrx", 1869, "RT RA VRB"),
  VX("vextuwrx", 1933, "RT RA VRB"),
  // Integer arithmetic.
  VX("vaddubm", 0, "VRT VRA VRB"),
  VX("vadduhm", 64, "VRT VRA VRB"),
  VX("vadduwm", 128, "VRT VRA VRB"),
  VX("vaddudm", 192, "VRT VRA VRB"),
  VX("vadduqm", 256, "VRT VRA VRB"),
  VX("vaddcuq", 320, "VRT VRA VRB"),
  VX("vaddcuw", 384, "VRT VRA VRB"),
  VX("vaddubs", 512, "VRT VRA VRB"),
  VX("vadduhs", 576, "VRT VRA VRB"),
  VX("vadduws", 640, "VRT VRA VRB"),
  VX("vaddsbs", 768, "VRT VRA VRB"),
  VX("vaddshs", 832, "VRT VRA VRB"),
  VX("vaddsws", 896, "VRT VRA VRB"),
  VA("vaddeuqm", 60, "VRT VRA VRB VRC"),
  VA("vaddecuq", 61, "VRT VRA VRB VRC"),
  VX("vsububm", 1024, "VRT VRA VRB"),
  VX("vsubuhm", 1088, "VRT VRA VRB"),
  VX("vsubuwm", 1152, "VRT VRA VRB"),
  VX("vsubudm", 1216, "VRT VRA VRB"),
  VX("vsubuqm", 1280, "VRT VRA VRB"),
  VX("vsubcuq", 1344, "VRT VRA VRB"),
  VX("vsubcuw", 1408, "VRT VRA VRB"),
  VX("vsububs", 1536, "VRT VRA VRB"),
  VX("vsubuhs", 1600, "VRT VRA VRB"),
  VX("vsubuws", 1664, "VRT VRA VRB"),
  VX("vsubsbs", 1792, "VRT VRA VRB"),
  VX("vsubshs", 1856, "VRT VRA VRB"),
  VX("vsubsws", 1920, "VRT VRA VRB"),
  VA("vsubeuqm", 62, "VRT VRA VRB VRC"),
  VA("vsubecuq", 63, "VRT VRA VRB VRC"),
  VX("vmuleub", 520, "VRT VRA VRB"),
  VX("vmuleuh", 584, "VRT VRA VRB"),
  VX("vmuleuw", 648, "VRT VRA VRB"),
  VX("vmulesb", 776, "VRT VRA VRB"),
  VX("vmulesh", 840, "VRT VRA VRB"),
  VX("vmulesw", 904, "VRT VRA VRB"),
  VX("vmuloub", 8, "VRT VRA VRB"),
  VX("vmulouh", 72, "VRT VRA VRB"),
  VX("vmulouw", 136, "VRT VRA VRB"),
  VX("vmulosb", 264, "VRT VRA VRB"),
  VX("vmulosh", 328, "VRT VRA VRB"),
  VX("vmulosw", 392, "VRT VRA VRB"),
  VX("vmuluwm", 137, "VRT VRA VRB"),
  VA("vmhaddshs", 32, "VRT VRA VRB VRC"),
  VA("vmhraddshs", 33, "VRT VRA VRB VRC"),
  VA("vmladduhm", 34, "VRT VRA VRB VRC"),
  VA("vmsumudm", 35, "VRT VRA VRB VRC"),
  VA("vmsumubm", 36, "VRT VRA VRB VRC"),
  VA("vmsummbm", 37, "VRT VRA VRB VRC"),
  VA("vmsumuhm", 38, "VRT VRA VRB VRC"),
  VA("vmsumuhs", 39, "VRT VRA VRB VRC"),
  VA("vmsumshm", 40, "VRT VRA VRB VRC"),
  VA("vmsumshs", 41, "VRT VRA VRB VRC"),
  VX("vsumsws", 1928, "VRT VRA VRB"),
  VX("vsum2sws", 1672, "VRT VRA VRB"),
  VX("vsum4ubs", 1544, "VRT VRA VRB"),
  VX("vsum4sbs", 1800, "VRT VRA VRB"),
  VX("vsum4shs", 1608, "VRT VRA VRB"),
  VX("vnegw", 1538, "VRT VRB", "", sub(6)),
  VX("vnegd", 1538, "VRT VRB", "", sub(7)),
  VX("vextsb2w", 1538, "VRT VRB", "", sub(16)),
  VX("vextsh2w", 1538, "VRT VRB", "", sub(17)),
  VX("vextsb2d", 1538, "VRT VRB", "", sub(24)),
  VX("vextsh2d", 1538, "VRT VRB", "", sub(25)),
  VX("vextsw2d", 1538, "VRT VRB", "", sub(26)),
  VX("vavgub", 1026, "VRT VRA VRB"),
  VX("vavguh", 1090, "VRT VRA VRB"),
  VX("vavguw", 1154, "VRT VRA VRB"),
  VX("vavgsb", 1282, "VRT VRA VRB"),
  VX("vavgsh", 1346, "VRT VRA VRB"),
  VX("vavgsw", 1410, "VRT VRA VRB"),
  VX("vabsdub", 1027, "VRT VRA VRB"),
  VX("vabsduh", 1091, "VRT VRA VRB"),
  VX("vabsduw", 1155, "VRT VRA VRB"),
  VX("vmaxub", 2, "VRT VRA VRB"),
  VX("vmaxuh", 66, "VRT VRA VRB"),
  VX("vmaxuw", 130, "VRT VRA VRB"),
  VX("vmaxud", 194, "VRT VRA VRB"),
  VX("vmaxsb", 258, "VRT VRA VRB"),
  VX("vmaxsh", 322, "VRT VRA VRB"),
  VX("vmaxsw", 386, "VRT VRA VRB"),
  VX("vmaxsd", 450, "VRT VRA VRB"),
  VX("vminub", 514, "VRT VRA VRB"),
  VX("vminuh", 578, "VRT VRA VRB"),
  VX("vminuw", 642, "VRT VRA VRB"),
  VX("vminud", 706, "VRT VRA VRB"),
  VX("vminsb", 770, "VRT VRA VRB"),
  VX("vminsh", 834, "VRT VRA VRB"),
  VX("vminsw", 898, "VRT VRA VRB"),
  VX("vminsd", 962, "VRT VRA VRB"),
  VX("vmul10uq", 513, "VRT VRA"),
  VX("vmul10cuq", 1, "VRT VRA"),
  VX("vmul10euq", 577, "VRT VRA VRB"),
  VX("vmul10ecuq", 65, "VRT VRA VRB"),
  // Integer compare.
  VC("vcmpequb", 6, "VRT VRA VRB"),
  VC("vcmpequh", 70, "VRT VRA VRB"),
  VC("vcmpequw", 134, "VRT VRA VRB"),
  VC("vcmpequd", 199, "VRT VRA VRB"),
  VC("vcmpneb", 7, "VRT VRA VRB"),
  VC("vcmpneh", 71, "VRT VRA VRB"),
  VC("vcmpnew", 135, "VRT VRA VRB"),
  VC("vcmpnezb", 263, "VRT VRA VRB"),
  VC("vcmpnezh", 327, "VRT VRA VRB"),
  VC("vcmpnezw", 391, "VRT VRA VRB"),
  VC("vcmpgtub", 518, "VRT VRA VRB"),
  VC("vcmpgtuh", 582, "VRT VRA VRB"),
  VC("vcmpgtuw", 646, "VRT VRA VRB"),
  VC("vcmpgtud", 711, "VRT VRA VRB"),
  VC("vcmpgtsb", 774, "VRT VRA VRB"),
  VC("vcmpgtsh", 838, "VRT VRA VRB"),
  VC("vcmpgtsw", 902, "VRT VRA VRB"),
  VC("vcmpgtsd", 967, "VRT VRA VRB"),
  // Logical, rotate, shift.
  VX("vand", 1028, "VRT VRA VRB"),
  VX("vandc", 1092, "VRT VRA VRB"),
  VX("vor", 1156, "VRT VRA VRB"),
  VX("vxor", 1220, "VRT VRA VRB"),
  VX("vnor", 1284, "VRT VRA VRB"),
  VX("vorc", 1348, "VRT VRA VRB"),
  VX("vnand", 1412, "VRT VRA VRB"),
  VX("veqv", 1668, "VRT VRA VRB"),
  VX("vrlb", 4, "VRT VRA VRB"),
  VX("vrlh", 68, "VRT VRA VRB"),
  VX("vrlw", 132, "VRT VRA VRB"),
  VX("vrld", 196, "VRT VRA VRB"),
  VX("vrlwmi", 133, "VRT VRA VRB"),
  VX("vrldmi", 197, "VRT VRA VRB"),
  VX("vrlwnm", 389, "VRT VRA VRB"),
  VX("vrldnm", 453, "VRT VRA VRB"),
  VX("vslb", 260, "VRT VRA VRB"),
  VX("vslh", 324, "VRT VRA VRB"),
  VX("vslw", 388, "VRT VRA VRB"),
  VX("vsld", 1476, "VRT VRA VRB"),
  VX("vsrb", 516, "VRT VRA VRB"),
  VX("vsrh", 580, "VRT VRA VRB"),
  VX("vsrw", 644, "VRT VRA VRB"),
  VX("vsrd", 1732, "VRT VRA VRB"),
  VX("vsrab", 772, "VRT VRA VRB"),
  VX("vsrah", 836, "VRT VRA VRB"),
  VX("vsraw", 900, "VRT VRA VRB"),
  VX("vsrad", 964, "VRT VRA VRB"),
  // Floating point.
  VX("vaddfp", 10, "VRT VRA VRB"),
  VX("vsubfp", 74, "VRT VRA VRB"),
  VA("vmaddfp", 46, "VRT VRA VRC VRB"),
  VA("vnmsubfp", 47, "VRT VRA VRC VRB"),
  VX("vmaxfp", 1034, "VRT VRA VRB"),
  VX("vminfp", 1098, "VRT VRA VRB"),
  VX("vctsxs", 970, "VRT VRB UIM5"),
  VX("vctuxs", 906, "VRT VRB UIM5"),
  VX("vcfsx", 842, "VRT VRB UIM5"),
  VX("vcfux", 778, "VRT VRB UIM5"),
  VX("vrfim", 714, "VRT VRB"),
  VX("vrfin", 522, "VRT VRB"),
  VX("vrfip", 650, "VRT VRB"),
  VX("vrfiz", 586, "VRT VRB"),
  VX("vrefp", 266, "VRT VRB"),
  VX("vrsqrtefp", 330, "VRT VRB"),
  VX("vexptefp", 394, "VRT VRB"),
  VX("vlogefp", 458, "VRT VRB"),
  VC("vcmpeqfp", 198, "VRT VRA VRB"),
  VC("vcmpgefp", 454, "VRT VRA VRB"),
  VC("vcmpgtfp", 710, "VRT VRA VRB"),
  VC("vcmpbfp", 966, "VRT VRA VRB"),
  // Bit manipulation.
  VX("vclzb", 1794, "VRT VRB"),
  VX("vclzh", 1858, "VRT VRB"),
  VX("vclzw", 1922, "VRT VRB"),
  VX("vclzd", 1986, "VRT VRB"),
  VX("vctzb", 1538, "VRT VRB", "", sub(28)),
  VX("vctzh", 1538, "VRT VRB", "", sub(29)),
  VX("vctzw", 1538, "VRT VRB", "", sub(30)),
  VX("vctzd", 1538, "VRT VRB", "", sub(31)),
  VX("vclzlsbb", 1538, "RT VRB", "", sub(0)),
  VX("vctzlsbb", 1538, "RT VRB", "", sub(1)),
  VX("vprtybw", 1538, "VRT VRB", "", sub(8)),
  VX("vprtybd", 1538, "VRT VRB", "", sub(9)),
  VX("vprtybq", 1538, "VRT VRB", "", sub(10)),
  VX("vpopcntb", 1795, "VRT VRB"),
  VX("vpopcnth", 1859, "VRT VRB"),
  VX("vpopcntw", 1923, "VRT VRB"),
  VX("vpopcntd", 1987, "VRT VRB"),
  VX("vgbbd", 1292, "VRT VRB"),
  VX("vbpermq", 1356, "VRT VRA VRB"),
  VX("vbpermd", 1484, "VRT VRA VRB"),
  VX("vpmsumb", 1032, "VRT VRA VRB"),
  VX("vpmsumh", 1096, "VRT VRA VRB"),
  VX("vpmsumw", 1160, "VRT VRA VRB"),
  VX("vpmsumd", 1224, "VRT VRA VRB"),
  // Decimal (BCD) in vector registers; the record bit is always set.
  VX("bcdadd.", 1, "VRT VRA VRB PS", "", { xo: [[21, 21, 1], [23, 31, 1]] }),
  VX("bcdsub.", 65, "VRT VRA VRB PS", "", { xo: [[21, 21, 1], [23, 31, 65]] }),
  VX("bcdus.", 129, "VRT VRA VRB", "", { xo: [[21, 21, 1], [23, 31, 129]] }),
  VX("bcds.", 193, "VRT VRA VRB PS", "", { xo: [[21, 21, 1], [23, 31, 193]] }),
  VX("bcdtrunc.", 257, "VRT VRA VRB PS", "", { xo: [[21, 21, 1], [23, 31, 257]] }),
  VX("bcdutrunc.", 321, "VRT VRA VRB", "", { xo: [[21, 21, 1], [23, 31, 321]] }),
  VX("bcdsr.", 449, "VRT VRA VRB PS", "", { xo: [[21, 21, 1], [23, 31, 449]] }),
  VX("bcdcpsgn.", 833, "VRT VRA VRB"),
  VX("bcdctsq.", 1409, "VRT VRB", "", sub(0)),
  VX("bcdcfsq.", 1409, "VRT VRB PS", "", { xo: [[21, 21, 1], [23, 31, 385]], fixed: [[11, 15, 2]] }),
  VX("bcdctz.", 1409, "VRT VRB PS", "", { xo: [[21, 21, 1], [23, 31, 385]], fixed: [[11, 15, 4]] }),
  VX("bcdctn.", 1409, "VRT VRB", "", sub(5)),
  VX("bcdcfz.", 1409, "VRT VRB PS", "", { xo: [[21, 21, 1], [23, 31, 385]], fixed: [[11, 15, 6]] }),
  VX("bcdcfn.", 1409, "VRT VRB PS", "", { xo: [[21, 21, 1], [23, 31, 385]], fixed: [[11, 15, 7]] }),
  VX("bcdsetsgn.", 1409, "VRT VRB PS", "", { xo: [[21, 21, 1], [23, 31, 385]], fixed: [[11, 15, 31]] }),
]);

const VECTOR_CRYPTO = facility("crypto", [
  VX("vcipher", 1288, "VRT VRA VRB"),
  VX("vcipherlast", 1289, "VRT VRA VRB"),
  VX("vncipher", 1352, "VRT VRA VRB"),
  VX("vncipherlast", 1353, "VRT VRA VRB"),
  VX("vsbox", 1480, "VRT VRA"),
  VX("vshasigmaw", 1666, "VRT VRA ST SIX"),
  VX("vshasigmad", 1730, "VRT VRA ST SIX"),
]);

const VECTOR_SCALAR = facility("vsx", [
  // Loads and stores.
  XX1("lxsdx", 31, 588, "XT RA0 RB"),
  XX1("lxsiwax", 31, 76, "XT RA0 RB"),
  XX1("lxsiwzx", 31, 12, "XT RA0 RB"),
  XX1("lxsspx", 31, 524, "XT RA0 RB"),
  XX1("lxsibzx", 31, 781, "XT RA0 RB"),
  XX1("lxsihzx", 31, 813, "XT RA0 RB"),
  DS("lxsd", 57, 2, "VRT DS RA0"),
  DS("lxssp", 57, 3, "VRT DS RA0"),
  XX1("lxvd2x", 31, 844, "XT RA0 RB"),
  XX1("lxvw4x", 31, 780, "XT RA0 RB"),
  XX1("lxvh8x", 31, 812, "XT RA0 RB"),
  XX1("lxvb16x", 31, 876, "XT RA0 RB"),
  XX1("lxvdsx", 31, 332, "XT RA0 RB"),
  XX1("lxvwsx", 31, 364, "XT RA0 RB"),
  XX1("lxvx", 31, 268, "XT RA0 RB"),
  XX1("lxvl", 31, 269, "XT RA0 RB"),
  XX1("lxvll", 31, 301, "XT RA0 RB"),
  DQ("lxv", 61, 1, "XTQ DQ RA0"),
  XX1("stxsdx", 31, 716, "XS RA0 RB"),
  XX1("stxsiwx", 31, 140, "XS RA0 RB"),
  XX1("stxsspx", 31, 652, "XS RA0 RB"),
  XX1("stxsibx", 31, 909, "XS RA0 RB"),
  XX1("stxsihx", 31, 941, "XS RA0 RB"),
  DS("stxsd", 61, 2, "VRS DS RA0"),
  DS("stxssp", 61, 3, "VRS DS RA0"),
  XX1("stxvd2x", 31, 972, "XS RA0 RB"),
  XX1("stxvw4x", 31, 908, "XS RA0 RB"),
  XX1("stxvh8x", 31, 940, "XS RA0 RB"),
  XX1("stxvb16x", 31, 1004, "XS RA0 RB"),
  XX1("stxvx", 31, 396, "XS RA0 RB"),
  XX1("stxvl", 31, 397, "XS RA0 RB"),
  XX1("stxvll", 31, 429, "XS RA0 RB"),
  DQ("stxv", 61, 5, "XTQ DQ RA0"),
  // Moves between GPRs and VSRs.
  XX1("mfvsrd", 31, 51, "RA XS"),
  XX1("mfvsrwz", 31, 115, "RA XS"),
  XX1("mfvsrld", 31, 307, "RA XS"),
  XX1("mtvsrd", 31, 179, "XT RA"),
  XX1("mtvsrwa", 31, 211, "XT RA"),
  XX1("mtvsrwz", 31, 243, "XT RA"),
  XX1("mtvsrdd", 31, 435, "XT RA0 RB"),
  XX1("mtvsrws", 31, 403, "XT RA"),
  // Scalar double and single precision.
  XX3("xsadddp", 32, "XT XA XB"),
  XX3("xssubdp", 40, "XT XA XB"),
  XX3("xsmuldp", 48, "XT XA XB"),
  XX3("xsdivdp", 56, "XT XA XB"),
  XX3("xsaddsp", 0, "XT XA XB"),
  XX3("xssubsp", 8, "XT XA XB"),
  XX3("xsmulsp", 16, "XT XA XB"),
  XX3("xsdivsp", 24, "XT XA XB"),
  XX2("xssqrtdp", 75, "XT XB"),
  XX2("xssqrtsp", 11, "XT XB"),
  XX2("xsredp", 90, "XT XB"),
  XX2("xsresp", 26, "XT XB"),
  XX2("xsrsqrtedp", 74, "XT XB"),
  XX2("xsrsqrtesp", 10, "XT XB"),
  XX3("xstdivdp", 61, "BF XA XB"),
  XX2("xstsqrtdp", 106, "BF XB"),
  XX3("xsmaddadp", 33, "XT XA XB"),
  XX3("xsmaddmdp", 41, "XT XA XB"),
  XX3("xsmsubadp", 49, "XT XA XB"),
  XX3("xsmsubmdp", 57, "XT XA XB"),
  XX3("xsnmaddadp", 161, "XT XA XB"),
  XX3("xsnmaddmdp", 169, "XT XA XB"),
  XX3("xsnmsubadp", 177, "XT XA XB"),
  XX3("xsnmsubmdp", 185, "XT XA XB"),
  XX3("xsmaddasp", 1, "XT XA XB"),
  XX3("xsmaddmsp", 9, "XT XA XB"),
  XX3("xsmsubasp", 17, "XT XA XB"),
  XX3("xsmsubmsp", 25, "XT XA XB"),
  XX3("xsnmaddasp", 129, "XT XA XB"),
  XX3("xsnmaddmsp", 137, "XT XA XB"),
  XX3("xsnmsubasp", 145, "XT XA XB"),
  XX3("xsnmsubmsp", 153, "XT XA XB"),
  XX3("xsmaxdp", 160, "XT XA XB"),
  XX3("xsmindp", 168, "XT XA XB"),
  XX3("xsmaxcdp", 128, "XT XA XB"),
  XX3("xsmincdp", 136, "XT XA XB"),
  XX3("xsmaxjdp", 144, "XT XA XB"),
  XX3("xsminjdp", 152, "XT XA XB"),
  XX3("xscmpudp", 35, "BF XA XB"),
  XX3("xscmpodp", 43, "BF XA XB"),
  XX3("xscmpexpdp", 59, "BF XA XB"),
  XX3("xscmpeqdp", 3, "XT XA XB"),
  XX3("xscmpgtdp", 11, "XT XA XB"),
  XX3("xscmpgedp", 19, "XT XA XB"),
  XX3("xscpsgndp", 176, "XT XA XB"),
  XX2("xsabsdp", 345, "XT XB"),
  XX2("xsnabsdp", 361, "XT XB"),
  XX2("xsnegdp", 377, "XT XB"),
  XX2("xscvdpsp", 265, "XT XB"),
  XX2("xscvdpspn", 267, "XT XB"),
  XX2("xscvspdp", 329, "XT XB"),
  XX2("xscvspdpn", 331, "XT XB"),
  XX2("xscvdpsxds", 344, "XT XB"),
  XX2("xscvdpsxws", 88, "XT XB"),
  XX2("xscvdpuxds", 328, "XT XB"),
  XX2("xscvdpuxws", 72, "XT XB"),
  XX2("xscvsxddp", 376, "XT XB"),
  XX2("xscvuxddp", 360, "XT XB"),
  XX2("xscvsxdsp", 312, "XT XB"),
  XX2("xscvuxdsp", 296, "XT XB"),
  XX2("xscvhpdp", 347, "XT XB", "", sub(16)),
  XX2("xscvdphp", 347, "XT XB", "", sub(17)),
  XX2("xsrdpi", 73, "XT XB"),
  XX2("xsrdpic", 107, "XT XB"),
  XX2("xsrdpim", 121, "XT XB"),
  XX2("xsrdpip", 105, "XT XB"),
  XX2("xsrdpiz", 89, "XT XB"),
  XX2("xsrsp", 281, "XT XB"),
  XX2("xsxexpdp", 347, "RT XB", "", sub(0)),
  XX2("xsxsigdp", 347, "RT XB", "", sub(1)),
  X("xsiexpdp", 60, 918, "XT RA RB"),
  XX2("xststdcdp", 362, "BF XB DCMX"),
  XX2("xststdcsp", 298, "BF XB DCMX"),
  // Vector double and single precision.
  XX3("xvadddp", 96, "XT XA XB"),
  XX3("xvsubdp", 104, "XT XA XB"),
  XX3("xvmuldp", 112, "XT XA XB"),
  XX3("xvdivdp", 120, "XT XA XB"),
  XX3("xvaddsp", 64, "XT XA XB"),
  XX3("xvsubsp", 72, "XT XA XB"),
  XX3("xvmulsp", 80, "XT XA XB"),
  XX3("xvdivsp", 88, "XT XA XB"),
  XX2("xvsqrtdp", 203, "XT XB"),
  XX2("xvsqrtsp", 139, "XT XB"),
  XX2("xvredp", 218, "XT XB"),
  XX2("xvresp", 154, "XT XB"),
  XX2("xvrsqrtedp", 202, "XT XB"),
  XX2("xvrsqrtesp", 138, "XT XB"),
  XX3("xvtdivdp", 125, "BF XA XB"),
  XX3("xvtdivsp", 93, "BF XA XB"),
  XX2("xvtsqrtdp", 234, "BF XB"),
  XX2("xvtsqrtsp", 170, "BF XB"),
  XX3("xvmaddadp", 97, "XT XA XB"),
  XX3("xvmaddmdp", 105, "XT XA XB"),
  XX3("xvmsubadp", 113, "XT XA XB"),
  XX3("xvmsubmdp", 121, "XT XA XB"),
  XX3("xvnmaddadp", 225, "XT XA XB"),
  XX3("xvnmaddmdp", 233, "XT XA XB"),
  XX3("xvnmsubadp", 241, "XT XA XB"),
  XX3("xvnmsubmdp", 249, "XT XA XB"),
  XX3("xvmaddasp", 65, "XT XA XB"),
  XX3("xvmaddmsp", 73, "XT XA XB"),
  XX3("xvmsubasp", 81, "XT XA XB"),
  XX3("xvmsubmsp", 89, "XT XA XB"),
  XX3("xvnmaddasp", 193, "XT XA XB"),
  XX3("xvnmaddmsp", 201, "XT XA XB"),
  XX3("xvnmsubasp", 209, "XT XA XB"),
  XX3("xvnmsubmsp", 217, "XT XA XB"),
  XX3("xvmaxdp", 224, "XT XA XB"),
  XX3("xvmindp", 232, "XT XA XB"),
  XX3("xvmaxsp", 192, "XT XA XB"),
  XX3("xvminsp", 200, "XT XA XB"),
  XX3C("xvcmpeqdp", 99, "XT XA XB"),
  XX3C("xvcmpgtdp", 107, "XT XA XB"),
  XX3C("xvcmpgedp", 115, "XT XA XB"),
  XX3C("xvcmpeqsp", 67, "XT XA XB"),
  XX3C("xvcmpgtsp", 75, "XT XA XB"),
  XX3C("xvcmpgesp", 83, "XT XA XB"),
  XX3("xvcpsgndp", 240, "XT XA XB"),
  XX3("xvcpsgnsp", 208, "XT XA XB"),
  XX2("xvabsdp", 473, "XT XB"),
  XX2("xvabssp", 409, "XT XB"),
  XX2("xvnabsdp", 489, "XT XB"),
  XX2("xvnabssp", 425, "XT XB"),
  XX2("xvnegdp", 505, "XT XB"),
  XX2("xvnegsp", 441, "XT XB"),
  XX2("xvcvdpsp", 393, "XT XB"),
  XX2("xvcvspdp", 457, "XT XB"),
  XX2("xvcvdpsxds", 472, "XT XB"),
  XX2("xvcvdpsxws", 216, "XT XB"),
  XX2("xvcvdpuxds", 456, "XT XB"),
  XX2("xvcvdpuxws", 200, "XT XB"),
  XX2("xvcvspsxds", 408, "XT XB"),
  XX2("xvcvspsxws", 152, "XT XB"),
  XX2("xvcvspuxds", 392, "XT XB"),
  XX2("xvcvspuxws", 136, "XT XB"),
  XX2("xvcvsxddp", 504, "XT XB"),
  XX2("xvcvsxdsp", 440, "XT XB"),
  XX2("xvcvsxwdp", 248, "XT XB"),
  XX2("xvcvsxwsp", 184, "XT XB"),
  XX2("xvcvuxddp", 488, "XT XB"),
  XX2("xvcvuxdsp", 424, "XT XB"),
  XX2("xvcvuxwdp", 232, "XT XB"),
  XX2("xvcvuxwsp", 168, "XT XB"),
  XX2("xvcvhpsp", 475, "XT XB", "", sub(24)),
  XX2("xvcvsphp", 475, "XT XB", "", sub(25)),
  XX2("xvrdpi", 201, "XT XB"),
  XX2("xvrdpic", 235, "XT XB"),
  XX2("xvrdpim", 249, "XT XB"),
  XX2("xvrdpip", 233, "XT XB"),
  XX2("xvrdpiz", 217, "XT XB"),
  XX2("xvrspi", 137, "XT XB"),
  XX2("xvrspic", 171, "XT XB"),
  XX2("xvrspim", 185, "XT XB"),
  XX2("xvrspip", 169, "XT XB"),
  XX2("xvrspiz", 153, "XT XB"),
  XX2("xvxexpdp", 475, "XT XB", "", sub(0)),
  XX2("xvxsigdp", 475, "XT XB", "", sub(1)),
  XX2("xvxexpsp", 475, "XT XB", "", sub(8)),
  XX2("xvxsigsp", 475, "XT XB", "", sub(9)),
  XX3("xviexpdp", 248, "XT XA XB"),
  XX3("xviexpsp", 216, "XT XA XB"),
  XX2("xvtstdcdp", 0, "XT XB DCMXV", "", { xo: [[21, 24, 15], [26, 28, 5]] }),
  XX2("xvtstdcsp", 0, "XT XB DCMXV", "", { xo: [[21, 24, 13], [26, 28, 5]] }),
  // Logical, permute, splat, byte-reverse.
  XX3("xxland", 130, "XT XA XB"),
  XX3("xxlandc", 138, "XT XA XB"),
  XX3("xxlor", 146, "XT XA XB"),
  XX3("xxlxor", 154, "XT XA XB"),
  XX3("xxlnor", 162, "XT XA XB"),
  XX3("xxlorc", 170, "XT XA XB"),
  XX3("xxlnand", 178, "XT XA XB"),
  XX3("xxleqv", 186, "XT XA XB"),
  XX4("xxsel", 3, "XT XA XB XC"),
  XX3("xxmrghw", 18, "XT XA XB"),
  XX3("xxmrglw", 50, "XT XA XB"),
  XX3("xxpermdi", 0, "XT XA XB DM", "", { xo: [[21, 21, 0], [24, 28, 10]] }),
  XX3("xxsldwi", 0, "XT XA XB SHW", "", { xo: [[21, 21, 0], [24, 28, 2]] }),
  XX3("xxperm", 26, "XT XA XB"),
  XX3("xxpermr", 58, "XT XA XB"),
  XX2("xxspltw", 164, "XT XB UIM2"),
  X("xxspltib", 60, 360, "XT IMM8", "", { fixed: [[11, 12, 0]] }),
  XX2("xxextractuw", 165, "XT XB UIM4"),
  XX2("xxinsertw", 181, "XT XB UIM4"),
  XX2("xxbrh", 475, "XT XB", "", sub(7)),
  XX2("xxbrw", 475, "XT XB", "", sub(15)),
  XX2("xxbrd", 475, "XT XB", "", sub(23)),
  XX2("xxbrq", 475, "XT XB", "", sub(31)),
]);

const QUAD_PRECISION = facility("ieee128", [
  X("xsaddqp", 63, 4, "VRT VRA VRB", "RO"),
  X("xssubqp", 63, 516, "VRT VRA VRB", "RO"),
  X("xsmulqp", 63, 36, "VRT VRA VRB", "RO"),
  X("xsdivqp", 63, 548, "VRT VRA VRB", "RO"),
  X("xssqrtqp", 63, 804, "VRT VRB", "RO", sub(27)),
  X("xsmaddqp", 63, 388, "VRT VRA VRB", "RO"),
  X("xsmsubqp", 63, 420, "VRT VRA VRB", "RO"),
  X("xsnmaddqp", 63, 452, "VRT VRA VRB", "RO"),
  X("xsnmsubqp", 63, 484, "VRT VRA VRB", "RO"),
  X("xscpsgnqp", 63, 100, "VRT VRA VRB"),
  X("xsabsqp", 63, 804, "VRT VRB", "", sub(0)),
  X("xsnabsqp", 63, 804, "VRT VRB", "", sub(8)),
  X("xsnegqp", 63, 804, "VRT VRB", "", sub(16)),
  X("xsxexpqp", 63, 804, "VRT VRB", "", sub(2)),
  X("xsxsigqp", 63, 804, "VRT VRB", "", sub(18)),
  X("xsiexpqp", 63, 868, "VRT VRA VRB"),
  X("xscmpuqp", 63, 644, "BF VRA VRB"),
  X("xscmpoqp", 63, 132, "BF VRA VRB"),
  X("xscmpexpqp", 63, 164, "BF VRA VRB"),
  X("xststdcqp", 63, 708, "BF VRB DCMX"),
  X("xscvqpdp", 63, 836, "VRT VRB", "RO", sub(20)),
  X("xscvdpqp", 63, 836, "VRT VRB", "", sub(22)),
  X("xscvqpsdz", 63, 836, "VRT VRB", "", sub(25)),
  X("xscvqpswz", 63, 836, "VRT VRB", "", sub(9)),
  X("xscvqpudz", 63, 836, "VRT VRB", "", sub(17)),
  X("xscvqpuwz", 63, 836, "VRT VRB", "", sub(1)),
  X("xscvsdqp", 63, 836, "VRT VRB", "", sub(10)),
  X("xscvudqp", 63, 836, "VRT VRB", "", sub(2)),
  Z23("xsrqpi", 63, 5, "R VRT VRB RMC", "EX", { ignored: [[11, 14]] }),
  Z23("xsrqpxp", 63, 37, "R VRT VRB RMC", "", { ignored: [[11, 14]] }),
]);

const TRANSACTIONAL_MEMORY = facility("htm", [
  X("tbegin.", 31, 654, "RTM", "", { fixed: [[31, 31, 1]] }),
  X("tend.", 31, 686, "ATM", "", { fixed: [[31, 31, 1]] }),
  X("tabort.", 31, 910, "RA", "", { fixed: [[31, 31, 1]] }),
  X("tabortwc.", 31, 782, "TO RA RB", "", { fixed: [[31, 31, 1]] }),
  X("tabortwci.", 31, 846, "TO RA SI5", "", { fixed: [[31, 31, 1]] }),
  X("tabortdc.", 31, 814, "TO RA RB", "", { fixed: [[31, 31, 1]] }),
  X("tabortdci.", 31, 878, "TO RA SI5", "", { fixed: [[31, 31, 1]] }),
  X("tsr.", 31, 750, "LTSR", "", { fixed: [[31, 31, 1]] }),
  X("tcheck", 31, 718, "BF"),
]);

const RANDOM = facility("darn", [
  X("darn", 31, 755, "RT LDARN"),
]);

/** Every instruction the CPU knows; an instruction's index here is its op id. */
export const INSTRUCTIONS: readonly InstructionDef[] = [
  ...BRANCH,
  ...CONDITION_REGISTER,
  ...FIXED_POINT_ARITHMETIC,
  ...FIXED_POINT_COMPARE_AND_TRAP,
  ...FIXED_POINT_LOGICAL,
  ...FIXED_POINT_ROTATE_AND_SHIFT,
  ...FIXED_POINT_LOAD_STORE,
  ...STORAGE_SYNCHRONIZATION_AND_CACHE,
  ...SPECIAL_PURPOSE_REGISTERS,
  ...FLOATING_POINT,
  ...VECTOR,
  ...VECTOR_CRYPTO,
  ...VECTOR_SCALAR,
  ...QUAD_PRECISION,
  ...TRANSACTIONAL_MEMORY,
  ...RANDOM,
];

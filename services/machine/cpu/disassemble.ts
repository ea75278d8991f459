// Renders decoded instructions as GNU objdump does for `-M power9`: the same mnemonics, including
// the extended (simplified) mnemonics objdump prefers (li, mr, nop, blr, bne cr1, cmpdi, rotldi,
// mflr, xxswapd...), and the same operand syntax. The differential test compares this output with
// powerpc64le-linux-gnu-objdump word for word, so the rules below follow binutils' opcode table.

import { decodeFlags, decodeOp, EXTRACT, FlagBit, INSTRUCTIONS } from "./decode.ts";
import { type InstructionDef, type OperandDef, type OperandName, OPERANDS } from "./isa.ts";

export interface Disassembly {
  readonly mnemonic: string;
  /** Comma-separated operands, empty if none. */
  readonly operands: string;
}

/** One instruction being rendered. */
interface Insn {
  readonly def: InstructionDef;
  readonly word: number;
  readonly address: bigint;
  readonly flags: number;
}

/** An operand as printed. */
interface Item {
  readonly text: string;
  /** An optional operand (binutils PPC_OPERAND_OPTIONAL)... */
  readonly optional: boolean;
  /** ...holding its default value. */
  readonly atDefault: boolean;
}

const CR_BIT_NAMES = ["lt", "gt", "eq", "so"];

function crBit(bit: number): string {
  const field = bit >> 2;
  return field === 0 ? CR_BIT_NAMES[bit & 3] : `4*cr${field}+${CR_BIT_NAMES[bit & 3]}`;
}

function hex(value: bigint): string {
  return `0x${value.toString(16)}`;
}

/** A branch target: relative to the instruction, or absolute (printed as 32 bits, like objdump). */
function target(insn: Insn, displacement: number): string {
  if (insn.flags & FlagBit.AA) return hex(BigInt(displacement >>> 0));
  return hex(BigInt.asUintN(64, insn.address + BigInt(displacement)));
}

function get(insn: Insn, name: OperandName): number {
  return EXTRACT[name](insn.word);
}

function formatValue(insn: Insn, def: OperandDef, value: number): string {
  switch (def.kind) {
    case "gpr":
      return `r${value}`;
    case "gpr0":
      return value === 0 ? "0" : `r${value}`;
    case "fpr":
      return `f${value}`;
    case "vr":
      return `v${value}`;
    case "vsr":
      return `vs${value}`;
    case "crf":
      return `cr${value}`;
    case "crb":
      return crBit(value);
    case "rel":
      return target(insn, value);
    case "imm":
    case "disp":
    case "spr":
      return String(value);
  }
}

function required(text: string): Item {
  return { text, optional: false, atDefault: false };
}

function optional(text: string, atDefault: boolean): Item {
  return { text, optional: true, atDefault };
}

/** An operand by name, optional if the table says so. */
function operand(insn: Insn, name: OperandName): Item {
  const def: OperandDef = OPERANDS[name];
  const value = get(insn, name);
  const text = formatValue(insn, def, value);
  return def.optional === undefined ? required(text) : optional(text, value === def.optional);
}

/** "d(RA)" for a displacement followed by its base register. */
function displacement(insn: Insn, disp: OperandName, base: OperandName): Item {
  return required(`${get(insn, disp)}(${formatValue(insn, OPERANDS[base], get(insn, base))})`);
}

/** Joins operands; an optional operand is left out when it and every later optional one are at their defaults. */
function join(items: readonly Item[]): string {
  const shown: string[] = [];
  for (let i = 0; i < items.length; i++) {
    if (items[i].optional && items.slice(i).every((it) => !it.optional || it.atDefault)) continue;
    shown.push(items[i].text);
  }
  return shown.join(",");
}

function genericItems(insn: Insn): Item[] {
  const operands = insn.def.operands;
  const items: Item[] = [];
  for (let i = 0; i < operands.length; i++) {
    if (OPERANDS[operands[i]].kind === "disp") {
      items.push(displacement(insn, operands[i], operands[i + 1]));
      i++;
    } else {
      items.push(operand(insn, operands[i]));
    }
  }
  return items;
}

/** The flag suffixes of a mnemonic, in binutils' order: o before ., l before a. */
function suffixes(insn: Insn): string {
  const f = insn.flags;
  return (f & FlagBit.OE ? "o" : "") + (f & FlagBit.RO ? "o" : "") + (f & FlagBit.EX ? "x" : "") +
    (f & FlagBit.LK ? "l" : "") + (f & FlagBit.AA ? "a" : "") + (f & FlagBit.Rc ? "." : "");
}

function result(mnemonic: string, items: readonly Item[]): Disassembly {
  return { mnemonic, operands: join(items) };
}

function generic(insn: Insn): Disassembly {
  return result(insn.def.mnemonic + suffixes(insn), genericItems(insn));
}

// Conditional branches. BO encodes what is tested (CR bit, CTR, both or neither) and the
// "at" prediction hint; binutils prints the hint as a +/- suffix after any l/a suffix.

type BranchKind = "" | "lr" | "ctr" | "tar";

/** "+" (taken), "-" (not taken) or "" from the "at" hint bits of BO. */
function hint(bo: number): string {
  let at = -1;
  if ((bo & 0x14) === 0x04) at = bo & 3;
  else if ((bo & 0x14) === 0x10) at = ((bo >> 2) & 2) | (bo & 1);
  return at === 3 ? "+" : at === 2 ? "-" : "";
}

const CR_TRUE = ["lt", "gt", "eq", "so"];
const CR_FALSE = ["ge", "le", "ne", "ns"];

function conditionalBranch(insn: Insn, kind: BranchKind): Disassembly {
  const bo = get(insn, "BO");
  const bi = get(insn, "BI");
  const link = (insn.flags & FlagBit.LK ? "l" : "") + (insn.flags & FlagBit.AA ? "a" : "");
  const tail: Item[] = kind === ""
    ? [required(target(insn, get(insn, "BD")))]
    : [optional(String(get(insn, "BH")), get(insn, "BH") === 0)];
  const crField = optional(`cr${bi >> 2}`, bi >> 2 === 0);
  const suffix = kind + link + hint(bo);
  if ((bo & 0x10) === 0) {
    if (bo & 0x04) {
      const condition = (bo & 0x08 ? CR_TRUE : CR_FALSE)[bi & 3];
      return result(`b${condition}${suffix}`, [crField, ...tail]);
    }
    const test = `bd${bo & 0x02 ? "z" : "nz"}${bo & 0x08 ? "t" : "f"}`;
    return result(test + suffix, [required(crBit(bi)), ...tail]);
  }
  if (bi === 0) {
    if (bo & 0x04) {
      if (kind !== "") return result(`b${kind}${link}`, tail);
    } else {
      return result(`bd${bo & 0x02 ? "z" : "nz"}${suffix}`, tail);
    }
  }
  return result(`${insn.def.mnemonic}${link}${hint(bo)}`, [
    required(String(bo)),
    required(crBit(bi)),
    ...tail,
  ]);
}

// Trap conditions by TO value, in binutils' order of preference.
const TRAP_CONDITIONS: Record<number, string> = {
  1: "lgt",
  2: "llt",
  4: "eq",
  5: "lge",
  6: "lle",
  8: "gt",
  12: "ge",
  16: "lt",
  20: "le",
  24: "ne",
  31: "u",
};

function trap(insn: Insn, immediate: boolean): Disassembly | null {
  const to = get(insn, "TO");
  const condition = TRAP_CONDITIONS[to];
  if (condition === undefined) return null;
  const width = insn.def.mnemonic[1];
  const last = immediate ? String(get(insn, "SI")) : `r${get(insn, "RB")}`;
  return result(`t${width}${condition}${immediate ? "i" : ""}`, [
    required(`r${get(insn, "RA")}`),
    required(last),
  ]);
}

// Special-purpose registers binutils names in mfspr/mtspr (mf<name> RT / mt<name> RS).
const MFSPR_NAMES: Record<number, string> = {
  1: "xer",
  3: "udscr",
  4: "rtcu",
  5: "rtcl",
  8: "lr",
  9: "ctr",
  13: "uamr",
  17: "dscr",
  18: "dsisr",
  19: "dar",
  22: "dec",
  25: "sdr1",
  26: "srr0",
  27: "srr1",
  28: "cfar",
  29: "amr",
  136: "ctrl",
  157: "uamor",
  256: "vrsave",
  268: "tb",
  269: "tbu",
  280: "asr",
  282: "ear",
  287: "pvr",
  336: "hmer",
  337: "hmeer",
  349: "amor",
  769: "ummcr2",
  770: "ummcra",
  771: "upmc1",
  772: "upmc2",
  773: "upmc3",
  774: "upmc4",
  775: "upmc5",
  776: "upmc6",
  779: "ummcr0",
  780: "usiar",
  781: "usdar",
  782: "ummcr1",
  800: "bescrs",
  801: "bescrsu",
  802: "bescrr",
  803: "bescrru",
  804: "ebbhr",
  805: "ebbrr",
  806: "bescr",
  815: "tar",
  848: "ic",
  849: "vtb",
  896: "ppr",
  898: "ppr32",
};

const MTSPR_NAMES: Record<number, string> = {
  1: "xer",
  3: "udscr",
  8: "lr",
  9: "ctr",
  13: "uamr",
  17: "dscr",
  18: "dsisr",
  19: "dar",
  20: "rtcu",
  21: "rtcl",
  22: "dec",
  25: "sdr1",
  26: "srr0",
  27: "srr1",
  28: "cfar",
  29: "amr",
  128: "tfhar",
  129: "tfiar",
  130: "texasr",
  131: "texasru",
  152: "ctrl",
  157: "uamor",
  256: "vrsave",
  280: "asr",
  282: "ear",
  284: "tbl",
  285: "tbu",
  336: "hmer",
  337: "hmeer",
  349: "amor",
  769: "ummcr2",
  770: "ummcra",
  771: "upmc1",
  772: "upmc2",
  773: "upmc3",
  774: "upmc4",
  775: "upmc5",
  776: "upmc6",
  779: "ummcr0",
  786: "mmcra",
  787: "pmc1",
  788: "pmc2",
  789: "pmc3",
  790: "pmc4",
  791: "pmc5",
  792: "pmc6",
  795: "mmcr0",
  798: "mmcr1",
  800: "bescrs",
  801: "bescrsu",
  802: "bescrr",
  803: "bescrru",
  804: "ebbhr",
  805: "ebbrr",
  806: "bescr",
  815: "tar",
  848: "ic",
  849: "vtb",
  896: "ppr",
  898: "ppr32",
};

/** SPRs binutils names with an index operand: SPRG0-3 and the BAT pairs. */
function indexedSpr(spr: number): { name: string; index: number } | null {
  if (spr >= 272 && spr <= 275) return { name: "sprg", index: spr - 272 };
  if (spr >= 528 && spr <= 543) {
    const bat = spr - 528;
    return { name: `${bat & 8 ? "d" : "i"}bat${bat & 1 ? "l" : "u"}`, index: (bat >> 1) & 3 };
  }
  return null;
}

function moveFromSpr(insn: Insn): Disassembly | null {
  const spr = get(insn, "SPR");
  const rt = required(`r${get(insn, "RT")}`);
  const name = MFSPR_NAMES[spr];
  if (name !== undefined) return result(`mf${name}`, [rt]);
  const indexed = indexedSpr(spr);
  return indexed ? result(`mf${indexed.name}`, [rt, required(String(indexed.index))]) : null;
}

function moveToSpr(insn: Insn): Disassembly | null {
  const spr = get(insn, "SPR");
  const rs = required(`r${get(insn, "RS")}`);
  const name = MTSPR_NAMES[spr];
  if (name !== undefined) return result(`mt${name}`, [rs]);
  const indexed = indexedSpr(spr);
  return indexed ? result(`mt${indexed.name}`, [required(String(indexed.index)), rs]) : null;
}

/** mfvsrd and friends: binutils names the FPR (VSR 0-31) and VR (VSR 32-63) halves separately. */
function vsrMove(fpr: string, vr: string, vsrOperand: OperandName, gprFirst: boolean) {
  return (insn: Insn): Disassembly => {
    const vsr = get(insn, vsrOperand);
    const reg = required(vsr < 32 ? `f${vsr}` : `v${vsr - 32}`);
    const gpr = required(`r${get(insn, "RA")}`);
    return result(vsr < 32 ? fpr : vr, gprFirst ? [gpr, reg] : [reg, gpr]);
  };
}

/** dcbt/dcbtst by touch hint: ct (0-7), ds (8-15), t (16), otherwise the plain form. */
function dataCacheTouch(prefix: string) {
  return (insn: Insn): Disassembly => {
    const th = get(insn, "TH");
    const address = [operand(insn, "RA0"), operand(insn, "RB")];
    if (th < 8) return result(`${prefix}ct`, [...address, optional(String(th), th === 0)]);
    if (th < 16) return result(`${prefix}ds`, [...address, optional(String(th), th === 8)]);
    if (th === 16) return result(`${prefix}t`, address);
    return result(prefix, [...address, required(String(th))]);
  };
}

type Alias = (insn: Insn) => Disassembly | null;

function reg(insn: Insn, name: OperandName): Item {
  return required(formatValue(insn, OPERANDS[name], get(insn, name)));
}

/** Extended mnemonics by base mnemonic; the first that applies wins, else the generic form. */
const ALIASES: Record<string, Alias> = {
  bc: (insn) => conditionalBranch(insn, ""),
  bclr: (insn) => conditionalBranch(insn, "lr"),
  bcctr: (insn) => conditionalBranch(insn, "ctr"),
  bctar: (insn) => conditionalBranch(insn, "tar"),
  crnor: (insn) =>
    get(insn, "BA") === get(insn, "BB") ? result("crnot", [reg(insn, "BT"), reg(insn, "BA")]) : null,
  crxor: (insn) =>
    get(insn, "BT") === get(insn, "BA") && get(insn, "BA") === get(insn, "BB")
      ? result("crclr", [reg(insn, "BT")])
      : null,
  creqv: (insn) =>
    get(insn, "BT") === get(insn, "BA") && get(insn, "BA") === get(insn, "BB")
      ? result("crset", [reg(insn, "BT")])
      : null,
  cror: (insn) =>
    get(insn, "BA") === get(insn, "BB") ? result("crmove", [reg(insn, "BT"), reg(insn, "BA")]) : null,
  mtcrf: (insn) => get(insn, "FXM") === 0xff ? result("mtcr", [reg(insn, "RS")]) : null,
  addi: (insn) => get(insn, "RA0") === 0 ? result("li", [reg(insn, "RT"), reg(insn, "SI")]) : null,
  addis: (insn) => get(insn, "RA0") === 0 ? result("lis", [reg(insn, "RT"), reg(insn, "SI")]) : null,
  addpcis: (insn) => get(insn, "DX") === 0 ? result("lnia", [reg(insn, "RT")]) : null,
  cmpi: (insn) =>
    result(get(insn, "L10") ? "cmpdi" : "cmpwi", [operandBf(insn), reg(insn, "RA"), reg(insn, "SI")]),
  cmp: (insn) =>
    result(get(insn, "L10") ? "cmpd" : "cmpw", [operandBf(insn), reg(insn, "RA"), reg(insn, "RB")]),
  cmpli: (insn) =>
    result(get(insn, "L10") ? "cmpldi" : "cmplwi", [operandBf(insn), reg(insn, "RA"), reg(insn, "UI")]),
  cmpl: (insn) =>
    result(get(insn, "L10") ? "cmpld" : "cmplw", [operandBf(insn), reg(insn, "RA"), reg(insn, "RB")]),
  tw: (insn) =>
    get(insn, "TO") === 31 && get(insn, "RA") === 0 && get(insn, "RB") === 0
      ? result("trap", [])
      : trap(insn, false),
  td: (insn) => trap(insn, false),
  twi: (insn) => trap(insn, true),
  tdi: (insn) => trap(insn, true),
  isel: (insn) => {
    const bc = get(insn, "BC");
    if (bc > 2 || insn.word & 1) return null;
    return result(`isel${CR_BIT_NAMES[bc]}`, [reg(insn, "RT"), reg(insn, "RA0"), reg(insn, "RB")]);
  },
  ori: (insn) => (insn.word & 0x03ffffff) === 0 ? result("nop", []) : null,
  xori: (insn) => (insn.word & 0x03ffffff) === 0 ? result("xnop", []) : null,
  or: (insn) =>
    get(insn, "RS") === get(insn, "RB")
      ? result(`mr${suffixes(insn)}`, [reg(insn, "RA"), reg(insn, "RS")])
      : null,
  nor: (insn) =>
    get(insn, "RS") === get(insn, "RB")
      ? result(`not${suffixes(insn)}`, [reg(insn, "RA"), reg(insn, "RS")])
      : null,
  rlwinm: (insn) => {
    const sh = get(insn, "SH"), mb = get(insn, "MB"), me = get(insn, "ME");
    const ra = [reg(insn, "RA"), reg(insn, "RS")];
    const s = suffixes(insn);
    if (mb === 0 && me === 31) return result(`rotlwi${s}`, [...ra, required(String(sh))]);
    if (sh === 0 && me === 31) return result(`clrlwi${s}`, [...ra, required(String(mb))]);
    if (mb === 0 && me === 31 - sh) return result(`slwi${s}`, [...ra, required(String(sh))]);
    if (sh !== 0 && me === 31 && sh === 32 - mb) return result(`srwi${s}`, [...ra, required(String(mb))]);
    if (sh === 0 && mb === 0) return result(`clrrwi${s}`, [...ra, required(String(31 - me))]);
    return null;
  },
  rlwnm: (insn) =>
    get(insn, "MB") === 0 && get(insn, "ME") === 31
      ? result(`rotlw${suffixes(insn)}`, [reg(insn, "RA"), reg(insn, "RS"), reg(insn, "RB")])
      : null,
  rldicl: (insn) => {
    const sh = get(insn, "SH6"), mb = get(insn, "MB6");
    const ra = [reg(insn, "RA"), reg(insn, "RS")];
    const s = suffixes(insn);
    if (mb === 0) return result(`rotldi${s}`, [...ra, required(String(sh))]);
    if (sh === 0) return result(`clrldi${s}`, [...ra, required(String(mb))]);
    if (sh + mb === 64) return result(`srdi${s}`, [...ra, required(String(mb))]);
    return null;
  },
  rldicr: (insn) => {
    const sh = get(insn, "SH6"), me = get(insn, "ME6");
    const ra = [reg(insn, "RA"), reg(insn, "RS")];
    const s = suffixes(insn);
    if (sh === 0) return result(`clrrdi${s}`, [...ra, required(String(63 - me))]);
    if (sh + me === 63) return result(`sldi${s}`, [...ra, required(String(sh))]);
    return null;
  },
  rldcl: (insn) =>
    get(insn, "MB6") === 0
      ? result(`rotld${suffixes(insn)}`, [reg(insn, "RA"), reg(insn, "RS"), reg(insn, "RB")])
      : null,
  sync: (insn) => result(["hwsync", "lwsync", "ptesync"][get(insn, "LSYNC")], []),
  dcbf: (insn) => {
    const l = get(insn, "LDCBF");
    if (l === 0) return null;
    return result(l === 1 ? "dcbfl" : "dcbflp", [reg(insn, "RA0"), reg(insn, "RB")]);
  },
  dcbt: dataCacheTouch("dcbt"),
  dcbtst: dataCacheTouch("dcbtst"),
  mfspr: moveFromSpr,
  mtspr: moveToSpr,
  vor: (insn) =>
    get(insn, "VRA") === get(insn, "VRB") ? result("vmr", [reg(insn, "VRT"), reg(insn, "VRA")]) : null,
  vnor: (insn) =>
    get(insn, "VRA") === get(insn, "VRB") ? result("vnot", [reg(insn, "VRT"), reg(insn, "VRA")]) : null,
  mfvsrd: vsrMove("mffprd", "mfvrd", "XS", true),
  mfvsrwz: vsrMove("mffprwz", "mfvrwz", "XS", true),
  mtvsrd: vsrMove("mtfprd", "mtvrd", "XT", false),
  mtvsrwa: vsrMove("mtfprwa", "mtvrwa", "XT", false),
  mtvsrwz: vsrMove("mtfprwz", "mtvrwz", "XT", false),
  xxlor: (insn) =>
    get(insn, "XA") === get(insn, "XB") ? result("xxmr", [reg(insn, "XT"), reg(insn, "XA")]) : null,
  xxlnor: (insn) =>
    get(insn, "XA") === get(insn, "XB") ? result("xxlnot", [reg(insn, "XT"), reg(insn, "XA")]) : null,
  xvcpsgndp: (insn) =>
    get(insn, "XA") === get(insn, "XB") ? result("xvmovdp", [reg(insn, "XT"), reg(insn, "XA")]) : null,
  xvcpsgnsp: (insn) =>
    get(insn, "XA") === get(insn, "XB") ? result("xvmovsp", [reg(insn, "XT"), reg(insn, "XA")]) : null,
  xxpermdi: (insn) => {
    const dm = get(insn, "DM");
    const same = get(insn, "XA") === get(insn, "XB");
    const xt = reg(insn, "XT"), xa = reg(insn, "XA"), xb = reg(insn, "XB");
    if ((dm === 0 || dm === 3) && same) return result("xxspltd", [xt, xa, required(String(dm & 1))]);
    if (dm === 0) return result("xxmrghd", [xt, xa, xb]);
    if (dm === 3) return result("xxmrgld", [xt, xa, xb]);
    if (dm === 2 && same) return result("xxswapd", [xt, xa]);
    return null;
  },
  "tend.": (insn) => get(insn, "ATM") ? result("tendall.", []) : null,
  "tsr.": (insn) => result(get(insn, "LTSR") ? "tresume." : "tsuspend.", []),
};

/** The BF of a compare, omitted when it is cr0. */
function operandBf(insn: Insn): Item {
  const bf = get(insn, "BF");
  return optional(`cr${bf}`, bf === 0);
}

/**
 * Disassembles one instruction word at `address` (used for relative branch targets), or returns
 * null if the word is not a valid instruction.
 */
export function disassemble(word: number, address: bigint | number = 0n): Disassembly | null {
  word |= 0;
  const op = decodeOp(word);
  if (op < 0) return null;
  const insn: Insn = { def: INSTRUCTIONS[op], word, address: BigInt(address), flags: decodeFlags(op, word) };
  const alias = ALIASES[insn.def.mnemonic];
  return (alias && alias(insn)) ?? generic(insn);
}

/** One line as objdump prints it after the address and bytes: "mnemonic operands" or ".long 0x...". */
export function formatInstruction(word: number, address: bigint | number = 0n): string {
  const text = disassemble(word, address);
  if (text === null) return `.long 0x${(word >>> 0).toString(16)}`;
  return text.operands === "" ? text.mnemonic : `${text.mnemonic} ${text.operands}`;
}

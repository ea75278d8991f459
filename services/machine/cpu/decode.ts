// The instruction decoder, built at module load from the declarative table in isa.ts.
//
// For every primary opcode the builder collects the bits that any of its instructions uses as an
// extended opcode and turns them into an index (a decode ROM in the manner of Microwatt's): one
// table cell per combination of those bits, each holding the few instructions that can match it.
// Decoding a word is then: primary opcode → cell index → compare the word against each candidate's
// fixed bits (mask/value) → check the candidate's operand constraints. The table is checked for
// ambiguity while it is built, so at most one instruction matches any word.
//
// The compact decoded form is the op id (an instruction's index in INSTRUCTIONS) together with
// the word itself: an interpreter caches op ids per guest page and reads operands straight from
// the word with the extractors below; a block translator does the same once per instruction.

import {
  type BitRange,
  type Constraint,
  type FlagName,
  FLAGS,
  type InstructionDef,
  INSTRUCTIONS,
  type OperandDef,
  type OperandName,
  OPERANDS,
} from "./isa.ts";

export { INSTRUCTIONS };
export type { InstructionDef, OperandName };

/** The bits of an ISA bit range as a mask of the 32-bit word. */
function rangeMask(first: number, last: number): number {
  const width = last - first + 1;
  return width === 32 ? -1 : (((1 << width) - 1) << (31 - last)) | 0;
}

function compileExtractor(def: OperandDef): (word: number) => number {
  const fields = def.fields.map(([first, last]) => ({ shift: 31 - last, width: last - first + 1 }));
  const width = fields.reduce((sum, f) => sum + f.width, 0);
  const signBit = 2 ** (width - 1);
  const scale = 2 ** (def.scale ?? 0);
  const signed = def.signed === true;
  const zeroMeans = def.zeroMeans;
  return (word: number): number => {
    let value = 0;
    for (const f of fields) value = value * 2 ** f.width + ((word >>> f.shift) & ((1 << f.width) - 1));
    if (signed && value >= signBit) value -= 2 * signBit;
    if (zeroMeans !== undefined && value === 0) return zeroMeans;
    return value * scale;
  };
}

/** Operand extractors: the architectural value of each operand of a word. */
export const EXTRACT = Object.fromEntries(
  Object.entries(OPERANDS).map(([name, def]) => [name, compileExtractor(def)]),
) as Readonly<Record<OperandName, (word: number) => number>>;

/** Bit positions of the flags in DecodedInstruction.flags. */
export const FlagBit = {
  Rc: 1,
  OE: 2,
  LK: 4,
  AA: 8,
  RO: 16,
  EX: 32,
} as const;

const FLAG_BIT_OF: Record<FlagName, number> = {
  Rc: FlagBit.Rc,
  Rc21: FlagBit.Rc,
  OE: FlagBit.OE,
  LK: FlagBit.LK,
  AA: FlagBit.AA,
  RO: FlagBit.RO,
  EX: FlagBit.EX,
};

const CONSTRAINT_BIT: Record<Constraint, number> = {
  RA_NOT_ZERO: 1,
  RA_NOT_ZERO_NOT_RT: 2,
  RA_NOT_RT: 4,
  RB_NOT_RT: 8,
  RA_BELOW_RT: 16,
  ONE_FXM_BIT: 32,
  BO_VALID: 64,
  BO_CTR_UNCHANGED: 128,
  RT_EVEN: 256,
};
/** Marks an op with an operand that has reserved values (checked after the constraint bits). */
const RESERVED_OPERAND = 512;

const count = INSTRUCTIONS.length;
/** Per op: the bits that must match, and their required values. */
const opMask = new Int32Array(count);
const opValue = new Int32Array(count);
const opConstraints = new Int32Array(count);
/** Per op: the flag bits present, as [word mask, FlagBit] pairs. */
const opFlagMasks: (readonly (readonly [number, number])[])[] = [];
/** Per op: operands with reserved values, as [extractor, reserved values]. */
const opReservedOperands: (readonly (readonly [(word: number) => number, readonly number[]])[])[] = [];

function maskOf(ranges: readonly BitRange[]): number {
  let mask = 0;
  for (const [first, last] of ranges) mask |= rangeMask(first, last);
  return mask;
}

for (let op = 0; op < count; op++) {
  const def = INSTRUCTIONS[op];
  const where = `isa: ${def.mnemonic}`;
  const opcodeFields = [[0, 5, def.opcode] as const, ...def.xo, ...def.fixed];
  let fixedMask = 0;
  let value = 0;
  for (const [first, last, v] of opcodeFields) {
    const m = rangeMask(first, last);
    if (fixedMask & m) throw new Error(`${where}: opcode fields overlap`);
    if (v < 0 || v >= 2 ** (last - first + 1)) {
      throw new Error(`${where}: value ${v} does not fit ${first}-${last}`);
    }
    fixedMask |= m;
    value |= (v << (31 - last)) & m;
  }
  let variable = 0;
  const claim = (m: number, what: string) => {
    if ((variable | fixedMask) & m) throw new Error(`${where}: ${what} overlaps another field`);
    variable |= m;
  };
  for (const name of def.operands) {
    const operand = OPERANDS[name];
    if (!operand) throw new Error(`${where}: unknown operand ${name}`);
    claim(maskOf(operand.fields), `operand ${name}`);
  }
  const flags: (readonly [number, number])[] = [];
  for (const name of def.flags) {
    const m = rangeMask(FLAGS[name].bit, FLAGS[name].bit);
    claim(m, `flag ${name}`);
    flags.push([m, FLAG_BIT_OF[name]]);
  }
  claim(maskOf(def.ignored), "an ignored range");
  opMask[op] = ~variable;
  opValue[op] = value;
  opFlagMasks.push(flags);
  const reserved = def.operands.flatMap((name) => {
    const values = (OPERANDS[name] as OperandDef).reserved;
    return values ? [[EXTRACT[name], values] as const] : [];
  });
  opReservedOperands.push(reserved);
  opConstraints[op] = def.constraints.reduce((bits, c) => bits | CONSTRAINT_BIT[c], 0) |
    (reserved.length > 0 ? RESERVED_OPERAND : 0);
}

/** The decode ROM of one primary opcode. */
interface PrimaryTable {
  /** Contiguous runs of index bits: [right shift, width mask, destination shift]. */
  readonly runs: Int32Array;
  /** Offset of this primary's first cell in CELL_START. */
  readonly base: number;
}

const primaryTables: (PrimaryTable | undefined)[] = new Array(64);
const cellStarts: number[] = [];
const cellCandidates: number[] = [];

function popcount(x: number): number {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (((x + (x >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

/** The runs of set bits of a mask, lowest first, as [right shift, width]. */
function bitRuns(mask: number): [number, number][] {
  const runs: [number, number][] = [];
  let bit = 0;
  while (bit < 32) {
    if ((mask >>> bit) & 1) {
      const start = bit;
      while (bit < 32 && (mask >>> bit) & 1) bit++;
      runs.push([start, bit - start]);
    } else bit++;
  }
  return runs;
}

const MAX_INDEX_BITS = 16;

for (let primary = 0; primary < 64; primary++) {
  const ops: number[] = [];
  for (let op = 0; op < count; op++) if (INSTRUCTIONS[op].opcode === primary) ops.push(op);
  if (ops.length === 0) continue;
  for (let i = 0; i < ops.length; i++) {
    for (let j = i + 1; j < ops.length; j++) {
      const a = ops[i], b = ops[j];
      if (((opValue[a] ^ opValue[b]) & opMask[a] & opMask[b]) === 0) {
        throw new Error(
          `isa: ${INSTRUCTIONS[a].mnemonic} and ${INSTRUCTIONS[b].mnemonic} match the same words`,
        );
      }
    }
  }
  let indexMask = 0;
  for (const op of ops) {
    indexMask |= maskOf(INSTRUCTIONS[op].xo.map(([first, last]) => [first, last] as const));
  }
  if (popcount(indexMask) > MAX_INDEX_BITS) {
    throw new Error(`isa: primary opcode ${primary} needs too wide an index`);
  }
  const runs: number[] = [];
  let destination = 0;
  for (const [shift, width] of bitRuns(indexMask)) {
    runs.push(shift, (1 << width) - 1, destination);
    destination += width;
  }
  const cells = 1 << destination;
  const base = cellStarts.length;
  // Order candidates most specific first so that the common case exits early.
  ops.sort((a, b) => popcount(opMask[b]) - popcount(opMask[a]));
  for (let cell = 0; cell < cells; cell++) {
    // The word bits this cell stands for.
    let bits = 0;
    for (let r = 0; r < runs.length; r += 3) bits |= ((cell >>> runs[r + 2]) & runs[r + 1]) << runs[r];
    cellStarts.push(cellCandidates.length);
    for (const op of ops) {
      if (((bits ^ opValue[op]) & opMask[op] & indexMask) === 0) cellCandidates.push(op);
    }
  }
  primaryTables[primary] = { runs: Int32Array.from(runs), base };
}
cellStarts.push(cellCandidates.length);

const CELL_START = Int32Array.from(cellStarts);
const CANDIDATES = Int32Array.from(cellCandidates);

function popcount8(x: number): number {
  return popcount(x & 0xff);
}

/**
 * Whether a BO value is valid (Power ISA 2.0 and later, binutils' valid_bo_post_v2): the z bits
 * are zero, the "at" hint is not the reserved 0b01, and "branch always" is exactly 0b10100.
 */
function validBo(bo: number): boolean {
  if ((bo & 0x14) === 0) return (bo & 1) === 0;
  if ((bo & 0x14) === 0x14) return bo === 0x14;
  if ((bo & 0x14) === 0x04) return (bo & 3) !== 1;
  return (bo & 9) !== 1;
}

function constraintsHold(op: number, bits: number, word: number): boolean {
  const rt = (word >>> 21) & 31;
  const ra = (word >>> 16) & 31;
  const rb = (word >>> 11) & 31;
  if (bits & CONSTRAINT_BIT.RA_NOT_ZERO && ra === 0) return false;
  if (bits & CONSTRAINT_BIT.RA_NOT_ZERO_NOT_RT && (ra === 0 || ra === rt)) return false;
  if (bits & CONSTRAINT_BIT.RA_NOT_RT && ra === rt) return false;
  if (bits & CONSTRAINT_BIT.RB_NOT_RT && rb === rt) return false;
  if (bits & CONSTRAINT_BIT.RA_BELOW_RT && ra >= rt) return false;
  if (bits & CONSTRAINT_BIT.ONE_FXM_BIT && popcount8(word >>> 12) !== 1) return false;
  if (bits & CONSTRAINT_BIT.BO_VALID && !validBo(rt)) return false;
  if (bits & CONSTRAINT_BIT.BO_CTR_UNCHANGED && (rt & 4) === 0) return false;
  if (bits & CONSTRAINT_BIT.RT_EVEN && (rt & 1) !== 0) return false;
  if (bits & RESERVED_OPERAND) {
    for (const [extract, values] of opReservedOperands[op]) if (values.includes(extract(word))) return false;
  }
  return true;
}

/**
 * The op id of a 32-bit instruction word (its index in INSTRUCTIONS), or -1 if the word is not a
 * valid instruction. Allocation-free; this is what the interpreter calls on a decode-cache miss.
 */
export function decodeOp(word: number): number {
  const table = primaryTables[word >>> 26];
  if (table === undefined) return -1;
  const runs = table.runs;
  let index = 0;
  for (let r = 0; r < runs.length; r += 3) index |= ((word >>> runs[r]) & runs[r + 1]) << runs[r + 2];
  const cell = table.base + index;
  for (let i = CELL_START[cell], end = CELL_START[cell + 1]; i < end; i++) {
    const op = CANDIDATES[i];
    if (
      (word & opMask[op]) === opValue[op] &&
      (opConstraints[op] === 0 || constraintsHold(op, opConstraints[op], word))
    ) {
      return op;
    }
  }
  return -1;
}

/** The FlagBit set of a decoded word. */
export function decodeFlags(op: number, word: number): number {
  let flags = 0;
  for (const [mask, bit] of opFlagMasks[op]) if (word & mask) flags |= bit;
  return flags;
}

/** An instruction with its operands extracted, in the order of its definition. */
export interface DecodedInstruction {
  readonly op: number;
  readonly def: InstructionDef;
  readonly word: number;
  /** Operand values in def.operands order (registers as numbers, immediates and displacements scaled). */
  readonly operands: Int32Array;
  /** FlagBit set: Rc, OE, LK, AA, RO, EX. */
  readonly flags: number;
}

/** Decodes a word fully, or returns null for an invalid instruction. */
export function decode(word: number): DecodedInstruction | null {
  word |= 0;
  const op = decodeOp(word);
  if (op < 0) return null;
  const def = INSTRUCTIONS[op];
  const operands = new Int32Array(def.operands.length);
  for (let i = 0; i < operands.length; i++) operands[i] = EXTRACT[def.operands[i]](word);
  return { op, def, word, operands, flags: decodeFlags(op, word) };
}

/** Op ids by mnemonic (without flag suffixes), for switch statements in interpreters and translators. */
export const OP: Readonly<Record<string, number>> = Object.freeze(
  Object.fromEntries(INSTRUCTIONS.map((def, op) => [def.mnemonic, op])),
);

/** The fixed bits of an op: a word w is this op iff (w & mask) === value and its constraints hold. */
export function opEncoding(op: number): { mask: number; value: number } {
  return { mask: opMask[op], value: opValue[op] };
}

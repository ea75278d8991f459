// The initial stack of a new program, laid out byte for byte as Linux does it for a 64-bit
// ppc64 task (fs/exec.c copies the strings, fs/binfmt_elf.c's create_elf_tables builds the
// tables), without the stack randomisation, so that a run is reproducible:
//
//   stackTop - 8       a zero word
//   below it           the AT_EXECFN string, the envp strings, the argv strings (argv[0] lowest)
//   16-byte boundary   then the platform and base-platform strings, then 16 AT_RANDOM bytes
//   gap                down to a 16-byte boundary
//   stack pointer →    argc, argv[0..argc-1], 0, envp[0..envc-1], 0, auxv pairs ending with AT_NULL
//
// Register values follow the ELFv2 ABI's process initialisation: r1 = stack pointer, r3 = argc,
// r4 = argv, r5 = envp, r6 = auxv, r7 = 0 and r12 = the entry point. Linux leaves r3..r7 zero and
// glibc then reads everything from the stack; the ABI values serve both kinds of start code.
import { Errno, invalidArgument } from "../../lib/errors.ts";
import { type AuxvEntry, buildAuxv, CACHE_BLOCK_SIZE, MIN_SIGNAL_STACK_SIZE } from "./auxv.ts";
import type { ElfLoadPlan } from "./elf.ts";

/** A program argument or environment string: text (encoded as UTF-8) or raw bytes. */
export type ArgumentString = string | Uint8Array;

/** Fills the array with random bytes; crypto.getRandomValues in production, a seed in tests. */
export type RandomFill = (target: Uint8Array) => void;

/** Linux's default RLIMIT_STACK (_STK_LIM): 8 MiB. */
export const DEFAULT_STACK_LIMIT = 8n * 1024n * 1024n;
/** Linux always allows at least ARG_MAX (32 4-KiB pages) of arguments, whatever RLIMIT_STACK. */
const ARG_MAX = 131072n;
/** Arguments may never take more than 3/4 of _STK_LIM. */
const ARG_SPACE_CEILING = DEFAULT_STACK_LIMIT / 4n * 3n;
const RANDOM_BYTES = 16;
const WORD = 8n;

export interface InitialStackInput {
  plan: ElfLoadPlan;
  /** One past the highest stack address, 16-byte aligned; the stack grows down from here. */
  stackTop: bigint;
  argv: readonly ArgumentString[];
  envp: readonly ArgumentString[];
  /** The program path as execve received it (AT_EXECFN). */
  execFn: ArgumentString;
  credentials: { uid: number; euid: number; gid: number; egid: number };
  /** AT_HWCAP and AT_HWCAP2: exactly what the machine's CPU implements. */
  hwcap: number;
  hwcap2: number;
  /** AT_PLATFORM and AT_BASE_PLATFORM, e.g. "power9". */
  platform: string;
  basePlatform: string;
  random: RandomFill;
  /** RLIMIT_STACK's soft limit, which bounds the room for argv and envp. */
  stackLimit?: bigint;
  dcacheBlockSize?: number;
  icacheBlockSize?: number;
  minSignalStackSize?: number;
}

/** The register state the first instruction sees (ThreadEntry in the contract). */
export interface InitialRegisters {
  pc: bigint;
  r1: bigint;
  r3: bigint;
  r4: bigint;
  r5: bigint;
  r6: bigint;
  r7: bigint;
  r12: bigint;
}

export interface InitialStack {
  /** The initial r1: the address of argc and of bytes[0]. */
  stackPointer: bigint;
  /** Everything in [stackPointer, stackTop), to be written to guest memory. */
  bytes: Uint8Array;
  registers: InitialRegisters;
  /** The vector as written, AT_NULL included (kept for /proc/PID/auxv). */
  auxv: AuxvEntry[];
  /** Linux's mm->arg_start/arg_end/env_start/env_end (/proc/PID/cmdline and environ). */
  argStart: bigint;
  argEnd: bigint;
  envStart: bigint;
  envEnd: bigint;
  execFnAddress: bigint;
  randomAddress: bigint;
}

const encoder = new TextEncoder();

function toBytes(value: ArgumentString, what: string): Uint8Array {
  const bytes = typeof value === "string" ? encoder.encode(value) : value;
  if (bytes.includes(0)) throw invalidArgument(what, `${what} contains a NUL byte`);
  return bytes;
}

function checkUnsigned32(value: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw invalidArgument(what, `${what} ${value} is not an unsigned 32-bit value`);
  }
}

/** A 32-bit capability mask; JavaScript's `|` yields it negative when bit 31 is set. */
function capabilityBits(value: number, what: string): number {
  if (!Number.isInteger(value) || value < -0x80000000 || value > 0xffffffff) {
    throw invalidArgument(what, `${what} ${value} is not a 32-bit mask`);
  }
  return value >>> 0;
}

/** How many bytes of strings argv and envp may take (fs/exec.c bprm_stack_limits). */
function argumentSpace(stackLimit: bigint, pointerCount: number): bigint {
  let limit = stackLimit / 4n < ARG_SPACE_CEILING ? stackLimit / 4n : ARG_SPACE_CEILING;
  if (limit < ARG_MAX) limit = ARG_MAX;
  return limit - BigInt(pointerCount) * WORD;
}

/** Builds the initial stack and registers of a program described by a load plan. */
export function buildInitialStack(input: InitialStackInput): InitialStack {
  const { plan, stackTop } = input;
  if (stackTop % 16n !== 0n || stackTop <= 0n || stackTop > 1n << 64n) {
    throw invalidArgument(
      "stackTop",
      `stack top 0x${stackTop.toString(16)} is not a 16-byte aligned address`,
    );
  }
  const { uid, euid, gid, egid } = input.credentials;
  checkUnsigned32(uid, "uid");
  checkUnsigned32(euid, "euid");
  checkUnsigned32(gid, "gid");
  checkUnsigned32(egid, "egid");
  const hwcap = capabilityBits(input.hwcap, "hwcap");
  const hwcap2 = capabilityBits(input.hwcap2, "hwcap2");

  // Linux gives a program started with no arguments an empty argv[0], so that code reading
  // argv[1] onwards does not walk into envp.
  const argvSource = input.argv.length === 0 ? [""] : input.argv;
  const argv = argvSource.map((a, i) => toBytes(a, `argv[${i}]`));
  const envp = input.envp.map((e, i) => toBytes(e, `envp[${i}]`));
  const execFn = toBytes(input.execFn, "execFn");
  const platform = toBytes(input.platform, "platform");
  const basePlatform = toBytes(input.basePlatform, "basePlatform");

  const maxStringBytes = plan.pageSize * 32;
  for (const [what, list] of [["argv", argv], ["envp", envp], ["execFn", [execFn]]] as const) {
    for (const s of list) {
      if (s.length + 1 > maxStringBytes) {
        throw invalidArgument(
          what,
          `an ${what} string of ${s.length} bytes exceeds MAX_ARG_STRLEN (${maxStringBytes})`,
          Errno.E2BIG,
        );
      }
    }
  }
  const space = argumentSpace(input.stackLimit ?? DEFAULT_STACK_LIMIT, argv.length + envp.length);
  const stringBytes = [...argv, ...envp, execFn].reduce((n, s) => n + BigInt(s.length + 1), 0n);
  if (space <= 0n || stringBytes > space) {
    throw invalidArgument(
      "argv",
      `arguments and environment need ${stringBytes} bytes of strings and ${argv.length + envp.length} ` +
        `pointers; the stack limit leaves room for ${space < 0n ? 0n : space} bytes of strings`,
      Errno.E2BIG,
    );
  }

  // Strings, top down: Linux copies the filename first, then envp, then argv, each list last
  // string first, so that every list ends up in ascending order.
  const placed: Array<{ address: bigint; bytes: Uint8Array }> = [];
  let p = stackTop - WORD;
  const place = (bytes: Uint8Array): bigint => {
    p -= BigInt(bytes.length + 1);
    placed.push({ address: p, bytes });
    return p;
  };
  const execFnAddress = place(execFn);
  const envAddresses = envp.map(() => 0n);
  for (let i = envp.length - 1; i >= 0; i--) envAddresses[i] = place(envp[i]);
  const argAddresses = argv.map(() => 0n);
  for (let i = argv.length - 1; i >= 0; i--) argAddresses[i] = place(argv[i]);
  const argStart = argAddresses[0];
  const envStart = envp.length > 0 ? envAddresses[0] : execFnAddress;

  p &= ~15n;
  const platformAddress = place(platform);
  const basePlatformAddress = place(basePlatform);
  const randomBytes = new Uint8Array(RANDOM_BYTES);
  input.random(randomBytes);
  p -= BigInt(RANDOM_BYTES);
  const randomAddress = p;
  placed.push({ address: randomAddress, bytes: randomBytes });

  const auxv = buildAuxv({
    phdr: plan.phdrAddress,
    phent: plan.phdrEntrySize,
    phnum: plan.phdrCount,
    pageSize: plan.pageSize,
    entry: plan.entry,
    uid,
    euid,
    gid,
    egid,
    // Set-ID execution: libc then ignores LD_* and similar environment variables.
    secure: uid !== euid || gid !== egid,
    hwcap,
    hwcap2,
    dcacheBlockSize: input.dcacheBlockSize ?? CACHE_BLOCK_SIZE,
    icacheBlockSize: input.icacheBlockSize ?? CACHE_BLOCK_SIZE,
    minSignalStackSize: input.minSignalStackSize ?? MIN_SIGNAL_STACK_SIZE,
    random: randomAddress,
    platform: platformAddress,
    basePlatform: basePlatformAddress,
    execFn: execFnAddress,
  });

  const auxvWords = BigInt(auxv.length * 2);
  const pointerWords = BigInt(argv.length + 1 + envp.length + 1 + 1);
  const stackPointer = (p - auxvWords * WORD - pointerWords * WORD) & ~15n;
  if (stackPointer < 0n) {
    throw invalidArgument(
      "stackTop",
      `stack top 0x${stackTop.toString(16)} leaves no room for the initial stack`,
    );
  }

  const bytes = new Uint8Array(Number(stackTop - stackPointer));
  const view = new DataView(bytes.buffer);
  for (const { address, bytes: s } of placed) bytes.set(s, Number(address - stackPointer));
  let cursor = 0;
  const putWord = (value: bigint) => {
    view.setBigUint64(cursor, value, true);
    cursor += 8;
  };
  putWord(BigInt(argv.length));
  for (const address of argAddresses) putWord(address);
  putWord(0n);
  for (const address of envAddresses) putWord(address);
  putWord(0n);
  const auxvAddress = stackPointer + BigInt(cursor);
  for (const { type, value } of auxv) {
    putWord(BigInt(type));
    putWord(value);
  }

  return {
    stackPointer,
    bytes,
    registers: {
      pc: plan.entry,
      r1: stackPointer,
      r3: BigInt(argv.length),
      r4: stackPointer + WORD,
      r5: stackPointer + WORD * BigInt(argv.length + 2),
      r6: auxvAddress,
      r7: 0n,
      r12: plan.entry,
    },
    auxv,
    argStart,
    argEnd: envStart,
    envStart,
    envEnd: execFnAddress,
    execFnAddress,
    randomAddress,
  };
}

import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { AstraError, Errno } from "../../lib/errors.ts";
import {
  AT_BASE,
  AT_BASE_PLATFORM,
  AT_CLKTCK,
  AT_DCACHEBSIZE,
  AT_EGID,
  AT_ENTRY,
  AT_EUID,
  AT_EXECFN,
  AT_FLAGS,
  AT_GID,
  AT_HWCAP,
  AT_HWCAP2,
  AT_ICACHEBSIZE,
  AT_IGNOREPPC,
  AT_MINSIGSTKSZ,
  AT_NULL,
  AT_PAGESZ,
  AT_PHDR,
  AT_PHENT,
  AT_PHNUM,
  AT_PLATFORM,
  AT_RANDOM,
  AT_SECURE,
  AT_UCACHEBSIZE,
  AT_UID,
  PPC_FEATURE2_ARCH_2_07,
  PPC_FEATURE2_ARCH_3_00,
  PPC_FEATURE_64,
  PPC_FEATURE_HAS_ALTIVEC,
  PPC_FEATURE_HAS_FPU,
  PPC_FEATURE_HAS_VSX,
  PPC_FEATURE_TRUE_LE,
} from "../../services/sched/auxv.ts";
import { parseElfExecutable } from "../../services/sched/elf.ts";
import { buildInitialStack, type InitialStack, type InitialStackInput } from "../../services/sched/stack.ts";
import { buildElf, TEXT_VADDR, validExecSpec } from "./elf-image.ts";

const STACK_TOP = 0x7fff_ffff_0000n;
const HWCAP = PPC_FEATURE_64 | PPC_FEATURE_HAS_FPU | PPC_FEATURE_HAS_ALTIVEC | PPC_FEATURE_HAS_VSX |
  PPC_FEATURE_TRUE_LE;
const HWCAP2 = PPC_FEATURE2_ARCH_2_07 | PPC_FEATURE2_ARCH_3_00;

/** A deterministic random source: bytes seed, seed+1, ... */
function counting(seed: number) {
  return (target: Uint8Array) => target.forEach((_, i) => (target[i] = (seed + i) & 0xff));
}

function input(overrides: Partial<InitialStackInput> = {}): InitialStackInput {
  return {
    plan: parseElfExecutable(buildElf(validExecSpec())),
    stackTop: STACK_TOP,
    argv: ["/bin/prog", "a b", "ünï"],
    envp: ["HOME=/", "EMPTY="],
    execFn: "./prog",
    credentials: { uid: 1000, euid: 1000, gid: 100, egid: 100 },
    hwcap: HWCAP,
    hwcap2: HWCAP2,
    platform: "power9",
    basePlatform: "power8",
    random: counting(0xa0),
    ...overrides,
  };
}

/** Reads the stack back the way a libc start routine does, checking every pointer on the way. */
class GuestStack {
  readonly view: DataView;
  constructor(readonly stack: InitialStack, readonly top: bigint) {
    this.view = new DataView(stack.bytes.buffer, stack.bytes.byteOffset, stack.bytes.byteLength);
    expect(BigInt(stack.bytes.length)).toBe(top - stack.stackPointer);
  }

  offset(address: bigint): number {
    expect(address).toBeGreaterThanOrEqual(this.stack.stackPointer);
    expect(address).toBeLessThan(this.top);
    return Number(address - this.stack.stackPointer);
  }

  word(address: bigint): bigint {
    return this.view.getBigUint64(this.offset(address), true);
  }

  cString(address: bigint): Uint8Array {
    const start = this.offset(address);
    const end = this.stack.bytes.indexOf(0, start);
    expect(end).toBeGreaterThanOrEqual(start);
    return this.stack.bytes.slice(start, end);
  }

  text(address: bigint): string {
    return new TextDecoder().decode(this.cString(address));
  }

  parse() {
    const sp = this.stack.stackPointer;
    const argc = Number(this.word(sp));
    const argvPointers = Array.from({ length: argc }, (_, i) => this.word(sp + 8n * BigInt(i + 1)));
    expect(this.word(sp + 8n * BigInt(argc + 1))).toBe(0n);
    const envpBase = sp + 8n * BigInt(argc + 2);
    const envpPointers: bigint[] = [];
    for (let a = envpBase; this.word(a) !== 0n; a += 8n) envpPointers.push(this.word(a));
    const auxvBase = envpBase + 8n * BigInt(envpPointers.length + 1);
    const auxv: Array<[number, bigint]> = [];
    for (let a = auxvBase;; a += 16n) {
      const type = Number(this.word(a));
      auxv.push([type, this.word(a + 8n)]);
      if (type === AT_NULL) break;
    }
    return { argc, argvPointers, envpBase, envpPointers, auxvBase, auxv };
  }
}

describe("initial stack", () => {
  it("lays out argc, argv, envp and the auxiliary vector with every pointer resolving", () => {
    const spec = input();
    const stack = buildInitialStack(spec);
    const guest = new GuestStack(stack, STACK_TOP);
    const { argc, argvPointers, envpBase, envpPointers, auxvBase, auxv } = guest.parse();

    expect(stack.stackPointer % 16n).toBe(0n);
    expect(argc).toBe(3);
    expect(argvPointers.map((p) => guest.text(p))).toEqual(["/bin/prog", "a b", "ünï"]);
    expect(envpPointers.map((p) => guest.text(p))).toEqual(["HOME=/", "EMPTY="]);

    const values = new Map(auxv);
    expect(auxv.length).toBe(values.size + 1); // only AT_IGNOREPPC repeats
    const plan = spec.plan;
    expect(values.get(AT_PHDR)).toBe(plan.phdrAddress);
    expect(values.get(AT_PHDR)).toBe(TEXT_VADDR + 64n);
    expect(values.get(AT_PHENT)).toBe(56n);
    expect(values.get(AT_PHNUM)).toBe(5n);
    expect(values.get(AT_PAGESZ)).toBe(4096n);
    expect(values.get(AT_BASE)).toBe(0n);
    expect(values.get(AT_FLAGS)).toBe(0n);
    expect(values.get(AT_ENTRY)).toBe(TEXT_VADDR + 0x180n);
    expect(values.get(AT_UID)).toBe(1000n);
    expect(values.get(AT_EUID)).toBe(1000n);
    expect(values.get(AT_GID)).toBe(100n);
    expect(values.get(AT_EGID)).toBe(100n);
    expect(values.get(AT_SECURE)).toBe(0n);
    expect(values.get(AT_HWCAP)).toBe(BigInt(HWCAP));
    // PPC_FEATURE2_ARCH_2_07 is bit 31: the `|` above made HWCAP2 negative, the vector holds it unsigned.
    expect(HWCAP2).toBeLessThan(0);
    expect(values.get(AT_HWCAP2)).toBe(0x80800000n);
    expect(values.get(AT_DCACHEBSIZE)).toBe(128n);
    expect(values.get(AT_ICACHEBSIZE)).toBe(128n);
    expect(values.get(AT_UCACHEBSIZE)).toBe(0n);
    expect(values.get(AT_CLKTCK)).toBe(100n);
    expect(values.get(AT_MINSIGSTKSZ)).toBe(2528n);
    expect(guest.text(values.get(AT_PLATFORM)!)).toBe("power9");
    expect(guest.text(values.get(AT_BASE_PLATFORM)!)).toBe("power8");
    expect(guest.text(values.get(AT_EXECFN)!)).toBe("./prog");
    const random = values.get(AT_RANDOM)!;
    expect([...stack.bytes.slice(guest.offset(random), guest.offset(random) + 16)]).toEqual(
      Array.from({ length: 16 }, (_, i) => 0xa0 + i),
    );

    // Linux's order: ARCH_DLINFO first, AT_NULL last.
    expect(auxv.map(([t]) => t)).toEqual([
      AT_IGNOREPPC,
      AT_IGNOREPPC,
      AT_DCACHEBSIZE,
      AT_ICACHEBSIZE,
      AT_UCACHEBSIZE,
      AT_MINSIGSTKSZ,
      AT_HWCAP,
      AT_PAGESZ,
      AT_CLKTCK,
      AT_PHDR,
      AT_PHENT,
      AT_PHNUM,
      AT_BASE,
      AT_FLAGS,
      AT_ENTRY,
      AT_UID,
      AT_EUID,
      AT_GID,
      AT_EGID,
      AT_SECURE,
      AT_RANDOM,
      AT_HWCAP2,
      AT_EXECFN,
      AT_PLATFORM,
      AT_BASE_PLATFORM,
      AT_NULL,
    ]);
    expect(stack.auxv.map((e) => [e.type, e.value])).toEqual(auxv);

    // The ELFv2 process-initialisation registers.
    expect(stack.registers).toEqual({
      pc: TEXT_VADDR + 0x180n,
      r1: stack.stackPointer,
      r3: 3n,
      r4: stack.stackPointer + 8n,
      r5: envpBase,
      r6: auxvBase,
      r7: 0n,
      r12: TEXT_VADDR + 0x180n,
    });
  });

  it("places the strings where Linux does: contiguous below a zero top word, execfn highest", () => {
    const stack = buildInitialStack(input());
    const guest = new GuestStack(stack, STACK_TOP);
    const { argvPointers, envpPointers, auxv } = guest.parse();
    expect(guest.word(STACK_TOP - 8n)).toBe(0n);
    const execFn = new Map(auxv).get(AT_EXECFN)!;
    expect(execFn + BigInt("./prog".length + 1)).toBe(STACK_TOP - 8n);
    // argv[0] lowest, every string directly after the previous one's NUL, envp, then execfn.
    const ordered = [...argvPointers, ...envpPointers, execFn];
    for (let i = 1; i < ordered.length; i++) {
      expect(ordered[i]).toBe(ordered[i - 1] + BigInt(guest.cString(ordered[i - 1]).length + 1));
    }
    expect(stack.argStart).toBe(argvPointers[0]);
    expect(stack.argEnd).toBe(envpPointers[0]);
    expect(stack.envStart).toBe(envpPointers[0]);
    expect(stack.envEnd).toBe(execFn);
    expect(stack.execFnAddress).toBe(execFn);
    // Below the strings, after rounding down to 16: platform, base platform, the random bytes.
    const values = new Map(auxv);
    const boundary = argvPointers[0] & ~15n;
    expect(values.get(AT_PLATFORM)).toBe(boundary - 7n);
    expect(values.get(AT_BASE_PLATFORM)).toBe(boundary - 14n);
    expect(values.get(AT_RANDOM)).toBe(boundary - 30n);
    expect(stack.randomAddress).toBe(boundary - 30n);
    // The first 16-byte aligned auxv word is AT_IGNOREPPC (> 16), as old glibc requires.
    const auxvBase = stack.registers.r6;
    const aligned = (auxvBase + 15n) & ~15n;
    expect(guest.word(aligned)).toBe(BigInt(AT_IGNOREPPC));
  });

  it("marks set-ID execution secure", () => {
    const stack = buildInitialStack(input({ credentials: { uid: 1000, euid: 0, gid: 100, egid: 100 } }));
    const values = new Map(new GuestStack(stack, STACK_TOP).parse().auxv);
    expect(values.get(AT_SECURE)).toBe(1n);
    expect(values.get(AT_EUID)).toBe(0n);
  });

  it("gives a program started without arguments an empty argv[0], as Linux does", () => {
    const stack = buildInitialStack(input({ argv: [], envp: [] }));
    const guest = new GuestStack(stack, STACK_TOP);
    const { argc, argvPointers, envpPointers } = guest.parse();
    expect(argc).toBe(1);
    expect(guest.text(argvPointers[0])).toBe("");
    expect(envpPointers).toEqual([]);
    expect(stack.registers.r3).toBe(1n);
  });

  it("keeps byte-string arguments that are not UTF-8 as they are", () => {
    const raw = new Uint8Array([0xff, 0xfe, 0x41]);
    const stack = buildInitialStack(input({ argv: ["p", raw] }));
    const guest = new GuestStack(stack, STACK_TOP);
    expect([...guest.cString(guest.parse().argvPointers[1])]).toEqual([0xff, 0xfe, 0x41]);
  });

  it("relocated plans put the relocated addresses in the vector", () => {
    const spec = validExecSpec();
    spec.type = 3;
    for (const h of spec.headers) if (h.vaddr >= TEXT_VADDR) h.vaddr -= TEXT_VADDR;
    spec.entry -= TEXT_VADDR;
    const plan = parseElfExecutable(buildElf(spec));
    const values = new Map(buildInitialStack(input({ plan })).auxv.map((e) => [e.type, e.value]));
    expect(values.get(AT_ENTRY)).toBe(plan.loadBias + 0x180n);
    expect(values.get(AT_PHDR)).toBe(plan.loadBias + 64n);
  });

  it("refuses a NUL inside a string and a misaligned stack top with EINVAL", () => {
    const errnoOf = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        expect(e).toBeInstanceOf(AstraError);
        return (e as AstraError).errno;
      }
      return undefined;
    };
    expect(errnoOf(() => buildInitialStack(input({ argv: ["a\0b"] })))).toBe(Errno.EINVAL);
    expect(errnoOf(() => buildInitialStack(input({ envp: [new Uint8Array([0x41, 0])] })))).toBe(Errno.EINVAL);
    expect(errnoOf(() => buildInitialStack(input({ stackTop: STACK_TOP + 8n })))).toBe(Errno.EINVAL);
    expect(errnoOf(() => buildInitialStack(input({ hwcap: 2 ** 32 })))).toBe(Errno.EINVAL);
  });

  it("enforces Linux's argument limits with E2BIG, to the byte", () => {
    const errnoOf = (fn: () => unknown) => {
      try {
        fn();
        return 0;
      } catch (e) {
        return (e as AstraError).errno;
      }
    };
    // One string may take at most 32 pages (4 KiB here), its NUL included.
    const longest = "x".repeat(4096 * 32 - 1);
    expect(errnoOf(() => buildInitialStack(input({ argv: ["p", longest] })))).toBe(0);
    expect(errnoOf(() => buildInitialStack(input({ argv: ["p", `${longest}x`] })))).toBe(Errno.E2BIG);

    // All strings together get a quarter of RLIMIT_STACK (at most 6 MiB, at least ARG_MAX), less
    // 8 bytes per argv and envp pointer; execfn counts as a string, not as a pointer.
    const exactly = (room: number, count: number): string[] => {
      const bytes = room - ("./prog".length + 1);
      const chunk = Math.ceil(bytes / count);
      return Array.from({ length: count }, (_, i) => "y".repeat(Math.min(chunk, bytes - i * chunk) - 1));
    };
    const cases: Array<[bigint, number]> = [
      [1024n * 1024n, 262144], // 1 MiB stack: a quarter of it
      [4096n, 131072], // a tiny stack still leaves ARG_MAX
      [64n * 1024n * 1024n, 6 * 1024 * 1024], // a huge one is capped at 3/4 of 8 MiB
    ];
    for (const [stackLimit, space] of cases) {
      const count = Math.ceil(space / 100000) + 1;
      const argv = exactly(space - 8 * count, count);
      expect(argv.every((a) => a.length + 1 <= 4096 * 32)).toBe(true);
      expect(errnoOf(() => buildInitialStack(input({ argv, envp: [], stackLimit })))).toBe(0);
      const oneMore = [...argv.slice(0, -1), `${argv[argv.length - 1]}y`];
      expect(errnoOf(() => buildInitialStack(input({ argv: oneMore, envp: [], stackLimit })))).toBe(
        Errno.E2BIG,
      );
    }
  });

  it("round-trips arbitrary arguments and environments", () => {
    const text = fc.string({ unit: "grapheme", maxLength: 40 }).filter((s) => !s.includes("\0"));
    fc.assert(
      fc.property(
        fc.array(text, { maxLength: 20 }),
        fc.array(text, { maxLength: 20 }),
        text,
        fc.integer({ min: 0, max: 255 }),
        fc.nat(0xffff).map((n) => STACK_TOP - BigInt(n) * 16n),
        (argv, envp, execFn, seed, top) => {
          const stack = buildInitialStack(
            input({ argv, envp, execFn, random: counting(seed), stackTop: top }),
          );
          const guest = new GuestStack(stack, top);
          const parsed = guest.parse();
          const expectedArgv = argv.length === 0 ? [""] : argv;
          expect(parsed.argc).toBe(expectedArgv.length);
          expect(parsed.argvPointers.map((p) => guest.text(p))).toEqual(expectedArgv);
          expect(parsed.envpPointers.map((p) => guest.text(p))).toEqual(envp);
          const values = new Map(parsed.auxv);
          expect(guest.text(values.get(AT_EXECFN)!)).toBe(execFn);
          expect(stack.stackPointer % 16n).toBe(0n);
          expect(stack.registers.r6).toBe(parsed.auxvBase);
          const random = guest.offset(values.get(AT_RANDOM)!);
          expect(stack.bytes[random]).toBe(seed);
          // Nothing the tables hold overlaps the strings: the auxv ends below the random bytes.
          expect(parsed.auxvBase + BigInt(parsed.auxv.length * 16)).toBeLessThanOrEqual(
            values.get(AT_RANDOM)!,
          );
        },
      ),
      { numRuns: 300 },
    );
  });
});

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { AstraError, Errno } from "../../lib/errors.ts";
import {
  DEFAULT_STATIC_PIE_BASE,
  DEFAULT_USER_ADDRESS_LIMIT,
  DEFAULT_USER_ADDRESS_MIN,
  type ElfLoadOptions,
  type ElfLoadPlan,
  parseElfExecutable,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
} from "../../services/sched/elf.ts";
import { toolchainMissing } from "../requirements.ts";
import {
  buildElf,
  DATA_OFFSET,
  DATA_VADDR,
  type ElfSpec,
  elfWith,
  PF_R,
  PF_W,
  PF_X,
  type ProgramHeaderSpec,
  PT_GNU_STACK,
  PT_INTERP,
  PT_LOAD,
  PT_PHDR,
  PT_TLS,
  TEXT_VADDR,
  validExecSpec,
} from "./elf-image.ts";

function refusal(image: Uint8Array): AstraError {
  try {
    parseElfExecutable(image);
  } catch (e) {
    expect(e).toBeInstanceOf(AstraError);
    const err = e as AstraError;
    expect(err.errno).toBe(Errno.ENOEXEC);
    expect(err.detail.service).toBe("sched");
    return err;
  }
  throw new Error("the loader accepted an image it should refuse");
}

/** Checks, independently of the loader, what any plan it returns must satisfy. */
function checkPlanInvariants(plan: ElfLoadPlan, fileSize: number): void {
  const page = BigInt(plan.pageSize);
  expect(plan.segments.length).toBeGreaterThan(0);
  plan.segments.forEach((s, i) => {
    expect(s.filesz).toBeLessThanOrEqual(s.memsz);
    if (s.filesz > 0n) expect(s.fileOffset + s.filesz).toBeLessThanOrEqual(BigInt(fileSize));
    expect(s.vaddr).toBeGreaterThanOrEqual(DEFAULT_USER_ADDRESS_MIN);
    expect(s.mapEnd).toBeLessThanOrEqual(DEFAULT_USER_ADDRESS_LIMIT);
    expect(s.mapStart % page).toBe(0n);
    expect(s.mapEnd % page).toBe(0n);
    expect(s.mapStart).toBeLessThanOrEqual(s.vaddr);
    expect(s.mapEnd).toBeGreaterThanOrEqual(s.vaddr + s.memsz);
    expect(s.mapFileOffset % page).toBe(0n);
    expect(s.vaddr - s.mapStart).toBe(s.fileOffset - s.mapFileOffset);
    if (i > 0) {
      expect(s.vaddr).toBeGreaterThanOrEqual(plan.segments[i - 1].vaddr + plan.segments[i - 1].memsz);
    }
  });
  const entrySegment = plan.segments.find((s) => plan.entry >= s.vaddr && plan.entry < s.vaddr + s.memsz);
  expect(entrySegment).toBeDefined();
  expect(entrySegment!.prot & PROT_EXEC).toBe(PROT_EXEC);
  expect(plan.entry % 4n).toBe(0n);
  expect(plan.brkStart).toBe(plan.segments[plan.segments.length - 1].mapEnd);
}

describe("ELF loader: accepted images", () => {
  it("plans an ET_EXEC: segments, protections, page mapping, entry, PT_PHDR, TLS and brk", () => {
    const plan = parseElfExecutable(buildElf(validExecSpec()));
    expect(plan.kind).toBe("exec");
    expect(plan.loadBias).toBe(0n);
    expect(plan.entry).toBe(TEXT_VADDR + 0x180n);
    expect(plan.segments).toEqual([
      {
        vaddr: TEXT_VADDR,
        memsz: 0x1c0n,
        fileOffset: 0n,
        filesz: 0x1c0n,
        prot: PROT_READ | PROT_EXEC,
        mapStart: TEXT_VADDR,
        mapEnd: TEXT_VADDR + 0x1000n,
        mapFileOffset: 0n,
      },
      {
        vaddr: DATA_VADDR,
        memsz: 0x2000n,
        fileOffset: DATA_OFFSET,
        filesz: 0x80n,
        prot: PROT_READ | PROT_WRITE,
        mapStart: 0x10010000n,
        mapEnd: 0x10013000n,
        mapFileOffset: 0n,
      },
    ]);
    expect(plan.phdrAddress).toBe(TEXT_VADDR + 64n);
    expect(plan.phdrEntrySize).toBe(56);
    expect(plan.phdrCount).toBe(5);
    expect(plan.tls).toEqual({ vaddr: DATA_VADDR, filesz: 0x10n, memsz: 0x28n, align: 8n });
    expect(plan.stackExecutable).toBe(false);
    expect(plan.pageSize).toBe(4096);
    expect(plan.brkStart).toBe(0x10013000n);
  });

  it("honours a 64 KiB page size in the mapping view, the brk and the header limit", () => {
    const plan = parseElfExecutable(buildElf(validExecSpec()), { pageSize: 65536 });
    expect(plan.pageSize).toBe(65536);
    expect(plan.segments[0]).toMatchObject({ mapStart: TEXT_VADDR, mapEnd: TEXT_VADDR + 0x10000n });
    expect(plan.segments[1]).toMatchObject({ mapStart: 0x10010000n, mapEnd: 0x10020000n, mapFileOffset: 0n });
    expect(plan.brkStart).toBe(0x10020000n);
    expect(() => parseElfExecutable(elfWith((s) => (s.phnum = 1171)), { pageSize: 65536 })).toThrow(
      /at most 1170/,
    );
    // 4 KiB congruence is not enough for 64 KiB pages.
    expect(() => parseElfExecutable(elfWith((s) => (s.headers[2].vaddr += 0x1000n)), { pageSize: 65536 }))
      .toThrow(/differ modulo the page size 0x10000/);
  });

  it("reports an executable stack only for PT_GNU_STACK with PF_X", () => {
    const execStack = elfWith((s) => (s.headers[4].flags = PF_R | PF_W | PF_X));
    expect(parseElfExecutable(execStack).stackExecutable).toBe(true);
    const noGnuStack = elfWith((s) => (s.headers[4].type = 0x6474e552));
    expect(parseElfExecutable(noGnuStack).stackExecutable).toBe(false);
  });

  it("ignores an empty PT_LOAD and finds the program headers without PT_PHDR", () => {
    const plan = parseElfExecutable(elfWith((s) => {
      s.headers[0] = {
        type: PT_LOAD,
        flags: PF_R,
        offset: 0n,
        vaddr: 0x20000000n,
        filesz: 0n,
        memsz: 0n,
        align: 8n,
      };
    }));
    expect(plan.segments).toHaveLength(2);
    expect(plan.phdrAddress).toBe(TEXT_VADDR + 64n);
  });

  it("gives AT_PHDR 0 when no segment loads the table and there is no PT_PHDR", () => {
    const plan = parseElfExecutable(elfWith((s) => {
      s.headers[0].type = 0x70000000;
      s.headers[1].offset = 0x10000n;
      s.headers[1].filesz = 0n;
    }));
    expect(plan.phdrAddress).toBe(0n);
  });

  it("relocates a static PIE to the default base, or to a requested one rounded up to its alignment", () => {
    const pie = (s: ElfSpec) => {
      s.type = 3;
      for (const h of s.headers) if (h.type !== PT_GNU_STACK) h.vaddr -= TEXT_VADDR;
      s.entry -= TEXT_VADDR;
    };
    const plan = parseElfExecutable(elfWith(pie));
    expect(plan.kind).toBe("static-pie");
    expect(plan.loadBias).toBe(DEFAULT_STATIC_PIE_BASE);
    expect(plan.entry).toBe(DEFAULT_STATIC_PIE_BASE + 0x180n);
    expect(plan.segments.map((s) => s.vaddr)).toEqual([
      DEFAULT_STATIC_PIE_BASE,
      DEFAULT_STATIC_PIE_BASE + 0x10200n,
    ]);
    expect(plan.phdrAddress).toBe(DEFAULT_STATIC_PIE_BASE + 64n);
    expect(plan.tls?.vaddr).toBe(DEFAULT_STATIC_PIE_BASE + 0x10200n);

    const moved = parseElfExecutable(elfWith(pie), { staticPieBase: 0x7000_1234n });
    expect(moved.loadBias).toBe(0x7001_0000n);
  });

  it("refuses bad options with EINVAL, not ENOEXEC", () => {
    for (
      const options of [{ pageSize: 1000 }, { pageSize: 2048 }, { userAddressMin: 10n, userAddressLimit: 5n }]
    ) {
      try {
        parseElfExecutable(buildElf(validExecSpec()), options);
        throw new Error("accepted");
      } catch (e) {
        expect((e as AstraError).errno).toBe(Errno.EINVAL);
      }
    }
  });
});

describe("ELF loader: refusals carry ENOEXEC and say what is wrong", () => {
  const cases: Array<[string, () => Uint8Array, RegExp]> = [
    [
      "bad magic",
      () => {
        const image = buildElf(validExecSpec());
        image[1] = 0x46;
        return image;
      },
      /not an ELF file: the magic is \[7f 46 4c 46\], expected \[7f 45 4c 46\]/,
    ],
    ["a three-byte file", () => new Uint8Array([0x7f, 0x45, 0x4c]), /not an ELF file/],
    ["a shell script", () => new TextEncoder().encode("#!/bin/sh\necho hi\n"), /magic is \[23 21 2f 62\]/],
    ["ELFCLASS32", () => elfWith((s) => (s.elfClass = 1)), /32-bit ELF \(ELFCLASS32\)/],
    ["class 7", () => elfWith((s) => (s.elfClass = 7)), /invalid ELF class 7/],
    ["data encoding 3", () => elfWith((s) => (s.data = 3)), /invalid ELF data encoding 3/],
    ["identification version 2", () => elfWith((s) => (s.identVersion = 2)), /identification version 2/],
    ["a truncated header", () => buildElf(validExecSpec()).slice(0, 40), /truncated ELF header: .*40 bytes/],
    ["ET_REL", () => elfWith((s) => (s.type = 1)), /relocatable object \(ET_REL\)/],
    ["ET_CORE", () => elfWith((s) => (s.type = 4)), /core dump \(ET_CORE\)/],
    ["e_type 0xfe00", () => elfWith((s) => (s.type = 0xfe00)), /unknown ELF type 0xfe00/],
    ["an x86-64 program", () => elfWith((s) => (s.machine = 62)), /e_machine 62 \(x86-64\) is not PowerPC64/],
    ["32-bit PowerPC", () => elfWith((s) => (s.machine = 20)), /32-bit PowerPC/],
    ["e_version 0", () => elfWith((s) => (s.version = 0)), /unsupported ELF version 0/],
    ["little-endian ELFv1", () => elfWith((s) => (s.flags = 1)), /ELFv1 .* not supported/],
    ["no ABI in e_flags", () => elfWith((s) => (s.flags = 0)), /e_flags ABI 0 is not ELFv2/],
    ["e_phentsize 32", () => elfWith((s) => (s.phentsize = 32)), /e_phentsize 32 is not .* 56/],
    ["no program headers", () => elfWith((s) => (s.phnum = 0)), /no program headers/],
    [
      "2000 program headers",
      () => elfWith((s) => (s.phnum = 2000)),
      /too many program headers: e_phnum 2000, at most 73/,
    ],
    [
      "a program header table past the end",
      () => elfWith((s) => (s.phoff = 0x200n)),
      /program header table \[0x200, 0x318\) extends past the end of the file \(640 bytes\)/,
    ],
    [
      "a dynamic executable",
      () =>
        elfWith((s) => {
          s.headers[0] = {
            type: PT_INTERP,
            flags: PF_R,
            offset: 0x160n,
            vaddr: 0n,
            filesz: 17n,
            memsz: 17n,
            align: 1n,
          };
          s.contents = [{ offset: 0x160, bytes: new TextEncoder().encode("/lib64/ld64.so.2\0") }];
        }),
      /dynamically linked executable \(PT_INTERP \/lib64\/ld64\.so\.2\)/,
    ],
    [
      "filesz above memsz",
      () => elfWith((s) => (s.headers[2].memsz = 0x40n)),
      /p_filesz 0x80 exceeds p_memsz 0x40/,
    ],
    [
      "a segment past the end of the file",
      () => elfWith((s) => (s.fileSize = 0x240)),
      /program header 2 \(PT_LOAD\): file bytes \[0x200, 0x280\) extend past the end of the file \(576 bytes\)/,
    ],
    [
      "offset and address that disagree modulo the page",
      () => elfWith((s) => (s.headers[2].vaddr += 0x800n)),
      /p_offset 0x200 and p_vaddr 0x10010a00 differ modulo the page size 0x1000/,
    ],
    [
      "unsorted PT_LOAD segments",
      () =>
        elfWith((s) => {
          const [text, data] = [s.headers[1], s.headers[2]];
          s.headers[1] = data;
          s.headers[2] = text;
        }),
      /not sorted by address/,
    ],
    [
      "overlapping PT_LOAD segments",
      () => elfWith((s) => (s.headers[1].memsz = 0x10300n)),
      /PT_LOAD segments overlap: program header 2 \(PT_LOAD\) starts at 0x10010200/,
    ],
    [
      "a segment below the lowest user address",
      () =>
        elfWith((s) => {
          s.headers[1].vaddr = 0n;
          s.headers[0].vaddr = 64n;
          s.entry = 0x180n;
        }),
      /\[0x0, 0x1c0\) is outside the user address range \[0x10000, 0x800000000000\)/,
    ],
    [
      "a segment above the user address limit",
      () => elfWith((s) => (s.headers[2].memsz = 1n << 47n)),
      /outside the user address range/,
    ],
    [
      "a segment that wraps around",
      () => elfWith((s) => (s.headers[2].memsz = (1n << 64n) - 0x100n)),
      /wraps around the address space/,
    ],
    [
      "an entry outside every segment",
      () => elfWith((s) => (s.entry = 0x30000000n)),
      /entry point 0x30000000 is not inside any PT_LOAD/,
    ],
    [
      "an entry in a data segment",
      () => elfWith((s) => (s.entry = DATA_VADDR + 0x10n)),
      /without execute permission/,
    ],
    [
      "a misaligned entry",
      () => elfWith((s) => (s.entry += 2n)),
      /entry point 0x10000182 is not 4-byte aligned/,
    ],
    ["p_align 3", () => elfWith((s) => (s.headers[1].align = 3n)), /p_align 0x3 is not a power of two/],
    [
      "two PT_TLS",
      () => elfWith((s) => (s.headers[4] = { ...s.headers[3] })),
      /more than one PT_TLS \(program headers 3 and 4\)/,
    ],
    [
      "a TLS image outside the loaded file bytes",
      () => elfWith((s) => (s.headers[3].vaddr = DATA_VADDR + 0x100n)),
      /PT_TLS initialisation image .* is not inside the file bytes of a PT_LOAD/,
    ],
    [
      "a PT_PHDR that disagrees",
      () => elfWith((s) => (s.headers[0].vaddr += 8n)),
      /PT_PHDR declares the program headers at 0x10000048, but they are loaded at 0x10000040/,
    ],
    [
      "a PT_PHDR not loaded",
      () =>
        elfWith((s) => {
          s.headers[1].filesz = s.headers[1].memsz = 0x100n;
          s.entry = TEXT_VADDR + 0xf0n;
        }),
      /no PT_LOAD segment loads them/,
    ],
    [
      "no PT_LOAD",
      () =>
        elfWith((
          s,
        ) => (s.headers = s.headers.filter((h) =>
          h.type !== PT_LOAD && h.type !== PT_PHDR && h.type !== PT_TLS
        ))),
      /no PT_LOAD segment/,
    ],
  ];

  for (const [what, image, message] of cases) {
    it(`refuses ${what}`, () => {
      expect(refusal(image()).message).toMatch(message);
    });
  }

  it("recognises big-endian ppc64 and says it is not supported yet", () => {
    const image = buildElf(validExecSpec());
    image[5] = 2;
    image[18] = 0;
    image[19] = 21;
    expect(refusal(image).message).toBe(
      "big-endian ppc64 (ELFv1) executables are not supported yet: only little-endian ELFv2 (ppc64le) runs",
    );
    image[19] = 62;
    expect(refusal(image).message).toBe("big-endian ELF is not a ppc64le executable");
  });
});

describe("ELF loader: fuzzing", () => {
  const valid = buildElf(validExecSpec());
  const headerBytes = 64 + 5 * 56;

  /** True when the image was loadable (and its plan sound), false when refused with ENOEXEC. */
  function parseOrEnoexec(image: Uint8Array, options: ElfLoadOptions = {}): boolean {
    let plan: ElfLoadPlan;
    try {
      plan = parseElfExecutable(image, options);
    } catch (e) {
      if (!(e instanceof AstraError) || e.errno !== Errno.ENOEXEC) throw e;
      return false;
    }
    checkPlanInvariants(plan, image.length);
    return true;
  }

  it("random byte changes and truncations give a sound plan or ENOEXEC, nothing else", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(headerBytes + 31), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 12,
        }),
        fc.option(fc.nat(valid.length), { nil: undefined }),
        (writes, truncateTo) => {
          const image = valid.slice(0, truncateTo ?? valid.length);
          for (const [offset, byte] of writes) if (offset < image.length) image[offset] = byte;
          parseOrEnoexec(image);
        },
      ),
      { numRuns: 20000 },
    );
  });

  it("random 64-bit field values in the header and program headers give a sound plan or ENOEXEC", () => {
    const interesting = fc.oneof(
      fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
      fc.constantFrom(0n, 1n, 8n, 0x10000n, 0x10000000n, 1n << 47n, (1n << 64n) - 1n, 1n << 63n),
    );
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat((headerBytes - 8) / 8), interesting), { minLength: 1, maxLength: 4 }),
        (writes) => {
          const image = valid.slice();
          const view = new DataView(image.buffer);
          for (const [slot, value] of writes) view.setBigUint64(slot * 8, value, true);
          parseOrEnoexec(image);
        },
      ),
      { numRuns: 10000 },
    );
  });

  it("generated executables, mostly well-formed and then perturbed, give a sound plan or ENOEXEC", () => {
    // Segments laid out the way a linker does (ascending, congruent offsets, 4 KiB pages), then
    // at most one field of one header replaced, so that both plans and refusals are exercised.
    const segment = fc.record({
      gap: fc.nat(0x7f).map((n) => BigInt(n) * 8n),
      filesz: fc.nat(0xff).map((n) => BigInt(n) * 8n),
      bss: fc.constantFrom(0n, 0x10n, 0x1000n),
      flags: fc.integer({ min: 0, max: 7 }),
    });
    const perturbation = fc.record({
      header: fc.nat(5),
      field: fc.constantFrom("type", "flags", "offset", "vaddr", "filesz", "memsz", "align"),
      value: fc.constantFrom(0n, 1n, 3n, 8n, 0x40n, 0x1000n, 0x10000000n, 1n << 47n, (1n << 64n) - 8n),
    });
    let accepted = 0;
    const runs = 5000;
    fc.assert(
      fc.property(
        fc.array(segment, { minLength: 1, maxLength: 3 }),
        fc.boolean(),
        fc.boolean(),
        fc.nat(0x3f).map((n) => BigInt(n) * 4n),
        fc.option(perturbation, { nil: undefined }),
        (segments, pie, withTls, entryOffset, change) => {
          const base = pie ? 0n : 0x10000000n;
          const headers: ProgramHeaderSpec[] = [
            { type: PT_PHDR, flags: PF_R, offset: 64n, vaddr: base + 64n, filesz: 0n, memsz: 0n, align: 8n },
          ];
          segments.forEach((seg, i) => {
            // The first segment starts at offset 0 so that it loads the program headers.
            const gap = i === 0 ? 0n : seg.gap;
            const at = BigInt(i) * 0x2000n + gap;
            headers.push({
              type: PT_LOAD,
              flags: i === 0 ? seg.flags | PF_R | PF_X : seg.flags,
              offset: BigInt(i) * 0x1000n + gap,
              vaddr: base + at,
              filesz: i === 0 ? seg.filesz + 0x200n : seg.filesz,
              memsz: (i === 0 ? seg.filesz + 0x200n : seg.filesz) + seg.bss,
              align: 0x1000n,
            });
          });
          const last = headers[headers.length - 1];
          if (withTls) {
            headers.push({ ...last, type: PT_TLS, flags: PF_R, filesz: last.filesz / 2n, align: 8n });
          }
          headers.push({
            type: PT_GNU_STACK,
            flags: PF_R | PF_W,
            offset: 0n,
            vaddr: 0n,
            filesz: 0n,
            memsz: 0n,
            align: 16n,
          });
          headers[0].filesz = headers[0].memsz = BigInt(headers.length * 56);
          if (change && change.header < headers.length) {
            const target = headers[change.header] as unknown as Record<string, bigint | number>;
            target[change.field] = typeof target[change.field] === "number"
              ? Number(change.value & 0xffffffffn)
              : change.value;
          }
          const image = buildElf({
            ...validExecSpec(),
            type: pie ? 3 : 2,
            entry: headers[1].vaddr + entryOffset,
            headers,
            fileSize: 0x4000,
          });
          if (parseOrEnoexec(image, { pageSize: 4096 })) accepted++;
        },
      ),
      { numRuns: runs },
    );
    // The generator is only worth something if many of its images are loadable.
    expect(accepted).toBeGreaterThan(runs / 4);
  });
});

// --- real binaries from the cross compiler -----------------------------------------------------

const missing = toolchainMissing();

interface ReadelfHeader {
  type: string;
  offset: bigint;
  vaddr: bigint;
  filesz: bigint;
  memsz: bigint;
  flags: string;
  align: bigint;
}

interface Readelf {
  elfType: string;
  entry: bigint;
  phoff: bigint;
  headers: ReadelfHeader[];
}

async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return text;
}

async function readelf(path: string): Promise<Readelf> {
  const text = await run("powerpc64le-linux-gnu-readelf", ["-lhW", path]);
  const field = (name: string) => text.match(new RegExp(`^\\s*${name}:\\s*(.*)$`, "m"))![1].trim();
  const headers: ReadelfHeader[] = [];
  const row =
    /^\s+([A-Z_]+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s([RWE ]{3})\s+0x([0-9a-f]+)$/gm;
  for (const m of text.matchAll(row)) {
    headers.push({
      type: m[1],
      offset: BigInt(`0x${m[2]}`),
      vaddr: BigInt(`0x${m[3]}`),
      filesz: BigInt(`0x${m[4]}`),
      memsz: BigInt(`0x${m[5]}`),
      flags: m[6],
      align: BigInt(`0x${m[7]}`),
    });
  }
  return {
    elfType: field("Type").split(" ")[0],
    entry: BigInt(field("Entry point address")),
    phoff: BigInt(field("Start of program headers").split(" ")[0]),
    headers,
  };
}

function protFrom(flags: string): number {
  return (flags.includes("R") ? PROT_READ : 0) | (flags.includes("W") ? PROT_WRITE : 0) |
    (flags.includes("E") ? PROT_EXEC : 0);
}

// A glibc program with thread-local data, linked statically.
const GLIBC_PROGRAM = `#include <stdio.h>
__thread int counter = 5;
int main(int argc, char **argv) { printf("%d %s\\n", argc + counter, argv[0]); return 0; }
`;

// Debian's cross glibc ships no rcrt1.o, so the static PIE is freestanding: its own _start making
// raw system calls, and a TLS variable so that PT_TLS is present.
const FREESTANDING_PROGRAM = `static long sc3(long n, long a, long b, long c) {
  register long r0 __asm__("r0") = n; register long r3 __asm__("r3") = a;
  register long r4 __asm__("r4") = b; register long r5 __asm__("r5") = c;
  __asm__ volatile("sc" : "+r"(r0), "+r"(r3), "+r"(r4), "+r"(r5) : : "memory", "cr0", "r6", "r7", "r8",
                   "r9", "r10", "r11", "r12");
  return r3;
}
__thread long thread_counter = 7;
static const char message[] = "static pie\\n";
void _start(void) { sc3(4, 1, (long)message, sizeof message - 1); sc3(234, 0, 0, 0); }
`;

describe.skipIf(missing !== undefined)(
  `ELF loader on binaries built by powerpc64le-linux-gnu-gcc${missing ? ` (skipped: ${missing})` : ""}`,
  () => {
    let dir = "";
    const binaries: Record<string, { image: Uint8Array; readelf: Readelf }> = {};

    beforeAll(async () => {
      dir = await Deno.makeTempDir({ prefix: "astra-sched-elf-" });
      await Deno.writeTextFile(`${dir}/glibc.c`, GLIBC_PROGRAM);
      await Deno.writeTextFile(`${dir}/freestanding.c`, FREESTANDING_PROGRAM);
      const builds: Array<[string, string[]]> = [
        ["static", ["-O2", "-static", "-o", `${dir}/static`, `${dir}/glibc.c`]],
        [
          "static-pie",
          [
            "-O2",
            "-static-pie",
            "-nostdlib",
            "-ffreestanding",
            "-fPIE",
            "-o",
            `${dir}/static-pie`,
            `${dir}/freestanding.c`,
          ],
        ],
        ["dynamic", ["-O2", "-o", `${dir}/dynamic`, `${dir}/glibc.c`]],
      ];
      for (const [name, args] of builds) {
        await run("powerpc64le-linux-gnu-gcc", args);
        binaries[name] = {
          image: await Deno.readFile(`${dir}/${name}`),
          readelf: await readelf(`${dir}/${name}`),
        };
      }
    }, 120_000);

    afterAll(async () => {
      if (dir) await Deno.remove(dir, { recursive: true });
    });

    function compareWithReadelf(plan: ElfLoadPlan, info: Readelf): void {
      const loads = info.headers.filter((h) => h.type === "LOAD" && h.memsz > 0n);
      expect(plan.segments.length).toBe(loads.length);
      plan.segments.forEach((s, i) => {
        expect(s.vaddr - plan.loadBias).toBe(loads[i].vaddr);
        expect(s.fileOffset).toBe(loads[i].offset);
        expect(s.filesz).toBe(loads[i].filesz);
        expect(s.memsz).toBe(loads[i].memsz);
        expect(s.prot).toBe(protFrom(loads[i].flags));
      });
      expect(plan.entry - plan.loadBias).toBe(info.entry);
      expect(plan.phdrCount).toBe(info.headers.length);
      const holder = loads.find((h) => h.offset <= info.phoff && info.phoff < h.offset + h.filesz)!;
      expect(plan.phdrAddress - plan.loadBias).toBe(holder.vaddr + info.phoff - holder.offset);
      const tls = info.headers.find((h) => h.type === "TLS")!;
      expect(plan.tls).toEqual({
        vaddr: tls.vaddr + plan.loadBias,
        filesz: tls.filesz,
        memsz: tls.memsz,
        align: tls.align,
      });
      const gnuStack = info.headers.find((h) => h.type === "GNU_STACK");
      expect(plan.stackExecutable).toBe(gnuStack?.flags.includes("E") ?? false);
    }

    it("plans the static glibc executable exactly as readelf describes it", () => {
      const { image, readelf: info } = binaries.static;
      expect(info.elfType).toBe("EXEC");
      const plan = parseElfExecutable(image);
      expect(plan.kind).toBe("exec");
      expect(plan.loadBias).toBe(0n);
      compareWithReadelf(plan, info);
      checkPlanInvariants(plan, image.length);
    });

    it("plans the static PIE at the load base, as readelf describes it relocated", () => {
      const { image, readelf: info } = binaries["static-pie"];
      expect(info.elfType).toBe("DYN");
      expect(info.headers.some((h) => h.type === "INTERP")).toBe(false);
      const plan = parseElfExecutable(image);
      expect(plan.kind).toBe("static-pie");
      expect(plan.loadBias).toBe(DEFAULT_STATIC_PIE_BASE);
      compareWithReadelf(plan, info);
      checkPlanInvariants(plan, image.length);
    });

    it("refuses the dynamically linked build, naming its interpreter", () => {
      const { image, readelf: info } = binaries.dynamic;
      const interp = info.headers.find((h) => h.type === "INTERP")!;
      const path = new TextDecoder().decode(
        image.subarray(Number(interp.offset), Number(interp.offset + interp.filesz) - 1),
      );
      expect(refusal(image).message).toContain(`(PT_INTERP ${path})`);
    });

    it("refuses every truncation of the static PIE that cuts into what must be loaded", () => {
      const { image } = binaries["static-pie"];
      const plan = parseElfExecutable(image);
      const needed = plan.segments.reduce(
        (n, s) => (s.fileOffset + s.filesz > n ? s.fileOffset + s.filesz : n),
        0n,
      );
      for (const cut of [0, 3, 16, 63, 64, 100, Number(needed) - 1]) {
        refusal(image.slice(0, cut));
      }
      expect(parseElfExecutable(image.slice(0, Number(needed))).entry).toBe(plan.entry);
    });

    it("survives random corruption of the real static executable's headers", () => {
      const { image } = binaries.static;
      const headerEnd = 64 + 56 * 6;
      fc.assert(
        fc.property(
          fc.array(fc.tuple(fc.nat(headerEnd - 1), fc.integer({ min: 0, max: 255 })), {
            minLength: 1,
            maxLength: 8,
          }),
          (writes) => {
            const copy = image.slice();
            for (const [offset, byte] of writes) copy[offset] = byte;
            try {
              checkPlanInvariants(parseElfExecutable(copy), copy.length);
            } catch (e) {
              if (!(e instanceof AstraError) || e.errno !== Errno.ENOEXEC) throw e;
            }
          },
        ),
        { numRuns: 500 },
      );
    });
  },
);

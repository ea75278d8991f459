// The ELF64 loader's front half: it validates a static ppc64le executable and turns it into a
// load plan (what to map where, the entry point, the TLS template, what the auxiliary vector
// needs). It only reads the image; mapping the plan is vmm's work.
//
// Accepted: ELFCLASS64, little-endian, EM_PPC64, ELFv2 (e_flags & 3 == 2), ET_EXEC or a static
// PIE (ET_DYN without PT_INTERP). Everything else is refused with ENOEXEC and a message that
// names the field at fault, the way Linux's load_elf_binary refuses, but saying why.
//
// All addresses and sizes are bigint: they are uint64 fields in the file and in the contract.
import { AstraError, Code, Errno, invalidArgument } from "../../lib/errors.ts";

export const EM_PPC64 = 21;
export const ET_EXEC = 2;
export const ET_DYN = 3;

export const PT_LOAD = 1;
export const PT_DYNAMIC = 2;
export const PT_INTERP = 3;
export const PT_PHDR = 6;
export const PT_TLS = 7;
export const PT_GNU_STACK = 0x6474e551;

export const PF_X = 1;
export const PF_W = 2;
export const PF_R = 4;

/** mmap protection bits, as vmm takes them. */
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const PROT_EXEC = 4;

export const ELF64_HEADER_SIZE = 64;
export const ELF64_PHDR_SIZE = 56;

/**
 * The default granule of the plan: 4 KiB, what qemu-ppc64le (the project's oracle) reports in
 * AT_PAGESZ. ppc64 linkers align segments to 64 KiB, which is also 4 KiB aligned, so binaries
 * made for Linux's 64 KiB pages load too; pass 65536 to behave like a 64 KiB-page kernel.
 */
export const DEFAULT_PAGE_SIZE = 4096;
/** Lowest user address: Debian's vm.mmap_min_addr. */
export const DEFAULT_USER_ADDRESS_MIN = 0x10000n;
/** One past the highest user address: ppc64's DEFAULT_MAP_WINDOW (128 TiB). */
export const DEFAULT_USER_ADDRESS_LIMIT = 1n << 47n;
/** Where a static PIE's lowest segment goes by default: ppc64's ELF_ET_DYN_BASE (4 GiB). */
export const DEFAULT_STATIC_PIE_BASE = 0x1_0000_0000n;

/** Linux's limit on the program header table: one page, and never more than 64 KiB. */
const PHDR_TABLE_MAX_BYTES = 65536;

const EI_CLASS = 4;
const EI_DATA = 5;
const EI_VERSION = 6;
const ELFCLASS32 = 1;
const ELFCLASS64 = 2;
const ELFDATA2LSB = 1;
const ELFDATA2MSB = 2;
const EV_CURRENT = 1;
const ET_REL = 1;
const ET_CORE = 4;
const EF_PPC64_ABI_MASK = 3;
const EF_PPC64_ABI_ELFV1 = 1;
const EF_PPC64_ABI_ELFV2 = 2;
const U64_LIMIT = 1n << 64n;
const MAX_INTERP_SHOWN = 256;

/** Machines people are likely to hand us by mistake, for the refusal message. */
const MACHINE_NAMES: Record<number, string> = {
  3: "i386",
  20: "32-bit PowerPC",
  22: "s390",
  40: "ARM",
  62: "x86-64",
  183: "AArch64",
  243: "RISC-V",
};

export interface ElfLoadOptions {
  /** Mapping granule: a power of two, at least 4096. */
  pageSize?: number;
  /** Lowest address a segment may occupy. */
  userAddressMin?: bigint;
  /** One past the highest address a segment may occupy. */
  userAddressLimit?: bigint;
  /** Static PIE only: the lowest segment is placed at this address rounded up to its alignment. */
  staticPieBase?: bigint;
  /**
   * The file's size when `image` is only its beginning (at least the ELF header and the program
   * header table): the loader reads no more of a file than it must, the segments map the rest.
   */
  fileSize?: bigint;
}

/** One PT_LOAD segment, relocated by the load bias. */
export interface LoadSegment {
  /** Address of the segment's first byte. */
  vaddr: bigint;
  memsz: bigint;
  /** File offset of the segment's first byte. */
  fileOffset: bigint;
  /** Bytes taken from the file; the rest up to memsz is zero (.bss). */
  filesz: bigint;
  /** PROT_* bits. */
  prot: number;
  /**
   * The page-granular mapping Linux makes: [mapStart, mapEnd) is mapped; the file backs it from
   * mapFileOffset up to vaddr + filesz, and everything after that is zero (so with filesz 0 the
   * whole range is anonymous and mapFileOffset means nothing).
   */
  mapStart: bigint;
  mapEnd: bigint;
  mapFileOffset: bigint;
}

/** PT_TLS: the initialisation image libc copies into every thread's TLS block. */
export interface TlsTemplate {
  vaddr: bigint;
  /** .tdata bytes. */
  filesz: bigint;
  /** .tdata plus .tbss. */
  memsz: bigint;
  align: bigint;
}

export interface ElfLoadPlan {
  kind: "exec" | "static-pie";
  pageSize: number;
  /**
   * Added to every p_vaddr: 0 for ET_EXEC; for a static PIE, where the base puts its lowest page
   * (negative if the PIE's own addresses lie above the base).
   */
  loadBias: bigint;
  entry: bigint;
  /** Sorted by address, disjoint. */
  segments: LoadSegment[];
  /** Where the program headers are in memory (AT_PHDR; 0 when no segment loads them). */
  phdrAddress: bigint;
  /** AT_PHENT. */
  phdrEntrySize: number;
  /** AT_PHNUM. */
  phdrCount: number;
  tls: TlsTemplate | null;
  /** PT_GNU_STACK with PF_X; without PT_GNU_STACK a 64-bit ppc stack is not executable. */
  stackExecutable: boolean;
  /** The initial program break: the page-aligned end of the highest segment. */
  brkStart: bigint;
}

interface ProgramHeader {
  index: number;
  type: number;
  flags: number;
  offset: bigint;
  vaddr: bigint;
  filesz: bigint;
  memsz: bigint;
  align: bigint;
}

function refuse(message: string, facts: Record<string, string> = {}): AstraError {
  return new AstraError(Code.INVALID_ARGUMENT, Errno.ENOEXEC, message, {
    argument: "program_path",
    service: "sched",
    facts,
  });
}

function hex(value: bigint | number): string {
  return `0x${value.toString(16)}`;
}

function isPowerOfTwo(value: bigint): boolean {
  return value > 0n && (value & (value - 1n)) === 0n;
}

/** p_align: 0 and 1 mean "no constraint", anything else must be a power of two. */
function validAlignment(align: bigint): boolean {
  return align <= 1n || isPowerOfTwo(align);
}

function alignDown(value: bigint, granule: bigint): bigint {
  return value - (value % granule);
}

function alignUp(value: bigint, granule: bigint): bigint {
  return alignDown(value + granule - 1n, granule);
}

function resolveOptions(options: ElfLoadOptions) {
  const pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE;
  if (!Number.isSafeInteger(pageSize) || pageSize < 4096 || !isPowerOfTwo(BigInt(pageSize))) {
    throw invalidArgument("pageSize", `page size ${pageSize} is not a power of two of at least 4096`);
  }
  const userAddressMin = options.userAddressMin ?? DEFAULT_USER_ADDRESS_MIN;
  const userAddressLimit = options.userAddressLimit ?? DEFAULT_USER_ADDRESS_LIMIT;
  if (userAddressMin < 0n || userAddressLimit > U64_LIMIT || userAddressMin >= userAddressLimit) {
    throw invalidArgument(
      "userAddressLimit",
      `user address range [${hex(userAddressMin)}, ${hex(userAddressLimit)}) is empty or not 64-bit`,
    );
  }
  const staticPieBase = options.staticPieBase ?? DEFAULT_STATIC_PIE_BASE;
  if (staticPieBase < 0n || staticPieBase >= U64_LIMIT) {
    throw invalidArgument("staticPieBase", `static PIE base ${hex(staticPieBase)} is not a 64-bit address`);
  }
  return { pageSize, page: BigInt(pageSize), userAddressMin, userAddressLimit, staticPieBase };
}

function checkIdentification(image: Uint8Array): void {
  if (image.length < 4 || image[0] !== 0x7f || image[1] !== 0x45 || image[2] !== 0x4c || image[3] !== 0x46) {
    const seen = Array.from(image.subarray(0, 4), (b) => b.toString(16).padStart(2, "0")).join(" ");
    throw refuse(`not an ELF file: the magic is [${seen}], expected [7f 45 4c 46]`);
  }
  if (image.length < 16) {
    throw refuse(`truncated ELF identification: the file has ${image.length} bytes, the header needs 16`);
  }
  const elfClass = image[EI_CLASS];
  if (elfClass === ELFCLASS32) {
    throw refuse("32-bit ELF (ELFCLASS32) is not supported: only 64-bit ppc64le executables run");
  }
  if (elfClass !== ELFCLASS64) throw refuse(`invalid ELF class ${elfClass} in e_ident[EI_CLASS]`);
  const data = image[EI_DATA];
  if (data === ELFDATA2MSB) {
    const bigEndianPpc64 = image.length >= 20 && ((image[18] << 8) | image[19]) === EM_PPC64;
    throw refuse(
      bigEndianPpc64
        ? "big-endian ppc64 (ELFv1) executables are not supported yet: only little-endian ELFv2 (ppc64le) runs"
        : "big-endian ELF is not a ppc64le executable",
    );
  }
  if (data !== ELFDATA2LSB) throw refuse(`invalid ELF data encoding ${data} in e_ident[EI_DATA]`);
  if (image[EI_VERSION] !== EV_CURRENT) {
    throw refuse(`unsupported ELF identification version ${image[EI_VERSION]} (expected ${EV_CURRENT})`);
  }
}

function readProgramHeader(view: DataView, offset: number, index: number): ProgramHeader {
  return {
    index,
    type: view.getUint32(offset, true),
    flags: view.getUint32(offset + 4, true),
    offset: view.getBigUint64(offset + 8, true),
    vaddr: view.getBigUint64(offset + 16, true),
    filesz: view.getBigUint64(offset + 32, true),
    memsz: view.getBigUint64(offset + 40, true),
    align: view.getBigUint64(offset + 48, true),
  };
}

function interpreterName(image: Uint8Array, ph: ProgramHeader): string {
  const fileEnd = BigInt(image.length);
  if (ph.offset >= fileEnd || ph.filesz === 0n) return "";
  const end = ph.offset + ph.filesz > fileEnd ? fileEnd : ph.offset + ph.filesz;
  const bytes = image.subarray(Number(ph.offset), Number(end));
  const nul = bytes.indexOf(0);
  const name = bytes.subarray(0, Math.min(nul < 0 ? bytes.length : nul, MAX_INTERP_SHOWN));
  return new TextDecoder("utf-8", { fatal: false }).decode(name);
}

function protection(flags: number): number {
  return ((flags & PF_R) ? PROT_READ : 0) | ((flags & PF_W) ? PROT_WRITE : 0) |
    ((flags & PF_X) ? PROT_EXEC : 0);
}

function segmentName(ph: ProgramHeader): string {
  return `program header ${ph.index} (${ph.type === PT_LOAD ? "PT_LOAD" : "PT_TLS"})`;
}

/** Checks common to PT_LOAD and PT_TLS: sizes, file range, alignment. */
function checkFileBackedHeader(ph: ProgramHeader, fileSize: bigint): void {
  const name = segmentName(ph);
  if (ph.filesz > ph.memsz) {
    throw refuse(`${name}: p_filesz ${hex(ph.filesz)} exceeds p_memsz ${hex(ph.memsz)}`);
  }
  if (ph.filesz > 0n && ph.offset + ph.filesz > fileSize) {
    throw refuse(
      `${name}: file bytes [${hex(ph.offset)}, ${hex(ph.offset + ph.filesz)}) extend past the end of the ` +
        `file (${fileSize} bytes); the file is truncated`,
    );
  }
  if (ph.vaddr + ph.memsz > U64_LIMIT) {
    throw refuse(
      `${name}: p_vaddr ${hex(ph.vaddr)} + p_memsz ${hex(ph.memsz)} wraps around the address space`,
    );
  }
  if (!validAlignment(ph.align)) {
    throw refuse(`${name}: p_align ${hex(ph.align)} is not a power of two`);
  }
}

/**
 * Validates a static ppc64le ELF executable and returns its load plan. Throws an AstraError with
 * ENOEXEC for anything malformed or unsupported, EINVAL for bad options.
 */
export function parseElfExecutable(image: Uint8Array, options: ElfLoadOptions = {}): ElfLoadPlan {
  const { pageSize, page, userAddressMin, userAddressLimit, staticPieBase } = resolveOptions(options);
  checkIdentification(image);
  if (image.length < ELF64_HEADER_SIZE) {
    throw refuse(`truncated ELF header: the file has ${image.length} bytes, the ELF64 header needs 64`);
  }
  const view = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const fileSize = options.fileSize ?? BigInt(image.length);
  if (fileSize < BigInt(image.length)) {
    throw invalidArgument(
      "fileSize",
      `file size ${fileSize} is smaller than the ${image.length} bytes given`,
    );
  }

  const type = view.getUint16(16, true);
  if (type === ET_REL) throw refuse("relocatable object (ET_REL) is not an executable: link it first");
  if (type === ET_CORE) throw refuse("core dump (ET_CORE) is not an executable");
  if (type !== ET_EXEC && type !== ET_DYN) throw refuse(`unknown ELF type ${hex(type)} in e_type`);

  const machine = view.getUint16(18, true);
  if (machine !== EM_PPC64) {
    const known = MACHINE_NAMES[machine] ? ` (${MACHINE_NAMES[machine]})` : "";
    throw refuse(`e_machine ${machine}${known} is not PowerPC64 (${EM_PPC64})`);
  }
  const version = view.getUint32(20, true);
  if (version !== EV_CURRENT) throw refuse(`unsupported ELF version ${version} in e_version (expected 1)`);

  const abi = view.getUint32(48, true) & EF_PPC64_ABI_MASK;
  if (abi === EF_PPC64_ABI_ELFV1) {
    throw refuse("little-endian ELFv1 (e_flags ABI 1) is not supported: only the ELFv2 ABI runs");
  }
  if (abi !== EF_PPC64_ABI_ELFV2) {
    throw refuse(
      `e_flags ABI ${abi} is not ELFv2 (2): Linux would run it with ELFv1 function descriptors, ` +
        "which ppc64le programs do not have",
    );
  }

  const entryField = view.getBigUint64(24, true);
  const phoff = view.getBigUint64(32, true);
  const phentsize = view.getUint16(54, true);
  const phnum = view.getUint16(56, true);
  if (phentsize !== ELF64_PHDR_SIZE) {
    throw refuse(`e_phentsize ${phentsize} is not the ELF64 program header size ${ELF64_PHDR_SIZE}`);
  }
  if (phnum === 0) throw refuse("no program headers (e_phnum is 0): nothing to load");
  const maxPhnum = Math.floor(Math.min(PHDR_TABLE_MAX_BYTES, pageSize) / ELF64_PHDR_SIZE);
  if (phnum > maxPhnum) throw refuse(`too many program headers: e_phnum ${phnum}, at most ${maxPhnum}`);
  const tableBytes = BigInt(phnum * ELF64_PHDR_SIZE);
  if (phoff + tableBytes > fileSize) {
    throw refuse(
      `program header table [${hex(phoff)}, ${hex(phoff + tableBytes)}) extends past the end of the file ` +
        `(${fileSize} bytes); the file is truncated`,
    );
  }
  if (phoff + tableBytes > BigInt(image.length)) {
    throw invalidArgument(
      "image",
      `the ${image.length} bytes given end before the program header table [${hex(phoff)}, ${
        hex(phoff + tableBytes)
      })`,
    );
  }

  const loads: ProgramHeader[] = [];
  let tlsHeader: ProgramHeader | null = null;
  let phdrHeader: ProgramHeader | null = null;
  let stackExecutable = false;
  for (let i = 0; i < phnum; i++) {
    const ph = readProgramHeader(view, Number(phoff) + i * ELF64_PHDR_SIZE, i);
    switch (ph.type) {
      case PT_INTERP: {
        const interp = interpreterName(image, ph);
        throw refuse(
          `dynamically linked executable (PT_INTERP${interp ? ` ${interp}` : ""}) is not supported: ` +
            "only static executables run",
        );
      }
      case PT_LOAD:
        checkFileBackedHeader(ph, fileSize);
        if ((ph.vaddr - ph.offset) % page !== 0n) {
          throw refuse(
            `${segmentName(ph)}: p_offset ${hex(ph.offset)} and p_vaddr ${hex(ph.vaddr)} differ modulo the ` +
              `page size ${hex(page)}, so the file cannot be mapped`,
          );
        }
        // Linux maps nothing for an empty segment.
        if (ph.memsz === 0n) break;
        if (loads.length > 0) {
          const previous = loads[loads.length - 1];
          if (ph.vaddr < previous.vaddr) {
            throw refuse(
              `PT_LOAD segments are not sorted by address: ${segmentName(ph)} at ${hex(ph.vaddr)} follows ` +
                `${segmentName(previous)} at ${hex(previous.vaddr)}`,
            );
          }
          if (ph.vaddr < previous.vaddr + previous.memsz) {
            throw refuse(
              `PT_LOAD segments overlap: ${segmentName(ph)} starts at ${hex(ph.vaddr)}, inside ` +
                `${segmentName(previous)} [${hex(previous.vaddr)}, ${hex(previous.vaddr + previous.memsz)})`,
            );
          }
        }
        loads.push(ph);
        break;
      case PT_TLS:
        if (tlsHeader) throw refuse(`more than one PT_TLS (program headers ${tlsHeader.index} and ${i})`);
        checkFileBackedHeader(ph, fileSize);
        tlsHeader = ph;
        break;
      case PT_PHDR:
        if (phdrHeader) throw refuse(`more than one PT_PHDR (program headers ${phdrHeader.index} and ${i})`);
        phdrHeader = ph;
        break;
      case PT_GNU_STACK:
        stackExecutable = (ph.flags & PF_X) !== 0;
        break;
      default:
        // PT_DYNAMIC (a static PIE relocates itself), PT_NOTE, PT_GNU_RELRO, PT_GNU_EH_FRAME and
        // the rest need nothing from the loader.
        break;
    }
  }
  if (loads.length === 0) throw refuse("no PT_LOAD segment with a non-zero size: nothing to load");

  let loadBias = 0n;
  if (type === ET_DYN) {
    let alignment = page;
    for (const ph of loads) if (ph.align > alignment) alignment = ph.align;
    loadBias = alignUp(staticPieBase, alignment) - alignDown(loads[0].vaddr, page);
  }

  const segments = loads.map((ph): LoadSegment => {
    const vaddr = ph.vaddr + loadBias;
    const end = vaddr + ph.memsz;
    const mapStart = alignDown(vaddr, page);
    const mapEnd = alignUp(end, page);
    if (vaddr < userAddressMin || mapEnd > userAddressLimit) {
      throw refuse(
        `${segmentName(ph)}: [${hex(vaddr)}, ${hex(end)}) is outside the user address range ` +
          `[${hex(userAddressMin)}, ${hex(userAddressLimit)})`,
        { loadBias: hex(loadBias) },
      );
    }
    return {
      vaddr,
      memsz: ph.memsz,
      fileOffset: ph.offset,
      filesz: ph.filesz,
      prot: protection(ph.flags),
      mapStart,
      mapEnd,
      mapFileOffset: ph.offset - (vaddr - mapStart),
    };
  });

  const entry = entryField + loadBias;
  if (entry % 4n !== 0n) throw refuse(`entry point ${hex(entry)} is not 4-byte aligned`);
  const entrySegment = segments.find((s) => entry >= s.vaddr && entry < s.vaddr + s.memsz);
  if (!entrySegment) throw refuse(`entry point ${hex(entry)} is not inside any PT_LOAD segment`);
  if ((entrySegment.prot & PROT_EXEC) === 0) {
    throw refuse(`entry point ${hex(entry)} is in a segment without execute permission`);
  }

  // AT_PHDR is where the table lands in memory: the segment whose file bytes contain it.
  let phdrAddress = 0n;
  const holder = segments.find((s) => phoff >= s.fileOffset && phoff + tableBytes <= s.fileOffset + s.filesz);
  if (holder) phdrAddress = holder.vaddr + (phoff - holder.fileOffset);
  if (phdrHeader) {
    const declared = phdrHeader.vaddr + loadBias;
    if (!holder) {
      throw refuse(
        `PT_PHDR declares the program headers at ${hex(declared)}, but no PT_LOAD segment loads them`,
      );
    }
    if (declared !== phdrAddress) {
      throw refuse(
        `PT_PHDR declares the program headers at ${hex(declared)}, but they are loaded at ${
          hex(phdrAddress)
        }`,
      );
    }
  }

  let tls: TlsTemplate | null = null;
  if (tlsHeader) {
    const vaddr = tlsHeader.vaddr + loadBias;
    const imageEnd = vaddr + tlsHeader.filesz;
    if (
      tlsHeader.filesz > 0n && !segments.some((s) => vaddr >= s.vaddr && imageEnd <= s.vaddr + s.filesz)
    ) {
      throw refuse(
        `PT_TLS initialisation image [${hex(vaddr)}, ${hex(imageEnd)}) is not inside the file bytes of a ` +
          "PT_LOAD segment",
      );
    }
    tls = { vaddr, filesz: tlsHeader.filesz, memsz: tlsHeader.memsz, align: tlsHeader.align };
  }

  const last = segments[segments.length - 1];
  return {
    kind: type === ET_EXEC ? "exec" : "static-pie",
    pageSize,
    loadBias,
    entry,
    segments,
    phdrAddress,
    phdrEntrySize: ELF64_PHDR_SIZE,
    phdrCount: phnum,
    tls,
    stackExecutable,
    brkStart: last.mapEnd,
  };
}

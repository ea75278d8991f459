// Builds small ELF64 images for the loader tests: a valid little-endian ppc64 ELFv2 executable by
// default, with every header field open to change so each refusal can be provoked on its own.

export const PT_LOAD = 1;
export const PT_INTERP = 3;
export const PT_PHDR = 6;
export const PT_TLS = 7;
export const PT_GNU_STACK = 0x6474e551;
export const PF_X = 1;
export const PF_W = 2;
export const PF_R = 4;

export interface ProgramHeaderSpec {
  type: number;
  flags: number;
  offset: bigint;
  vaddr: bigint;
  filesz: bigint;
  memsz: bigint;
  align: bigint;
}

export interface ElfSpec {
  /** e_ident[EI_CLASS], [EI_DATA], [EI_VERSION]. */
  elfClass: number;
  data: number;
  identVersion: number;
  type: number;
  machine: number;
  version: number;
  entry: bigint;
  flags: number;
  phoff: bigint;
  phentsize: number;
  /** e_phnum; defaults to the number of headers. */
  phnum?: number;
  headers: ProgramHeaderSpec[];
  /** The whole file's size; the header and table are written into it. */
  fileSize: number;
  /** Extra bytes to place at file offsets (segment contents, an interpreter path). */
  contents: Array<{ offset: number; bytes: Uint8Array }>;
}

export const TEXT_VADDR = 0x10000000n;
export const DATA_OFFSET = 0x200n;
export const DATA_VADDR = 0x10010200n;

/** A valid static ET_EXEC: PT_PHDR, text R+X at 0x10000000, data RW with .bss and PT_TLS. */
export function validExecSpec(): ElfSpec {
  return {
    elfClass: 2,
    data: 1,
    identVersion: 1,
    type: 2,
    machine: 21,
    version: 1,
    entry: TEXT_VADDR + 0x180n,
    flags: 2,
    phoff: 64n,
    phentsize: 56,
    headers: [
      {
        type: PT_PHDR,
        flags: PF_R,
        offset: 64n,
        vaddr: TEXT_VADDR + 64n,
        filesz: 280n,
        memsz: 280n,
        align: 8n,
      },
      {
        type: PT_LOAD,
        flags: PF_R | PF_X,
        offset: 0n,
        vaddr: TEXT_VADDR,
        filesz: 0x1c0n,
        memsz: 0x1c0n,
        align: 0x10000n,
      },
      {
        type: PT_LOAD,
        flags: PF_R | PF_W,
        offset: DATA_OFFSET,
        vaddr: DATA_VADDR,
        filesz: 0x80n,
        memsz: 0x2000n,
        align: 0x10000n,
      },
      {
        type: PT_TLS,
        flags: PF_R,
        offset: DATA_OFFSET,
        vaddr: DATA_VADDR,
        filesz: 0x10n,
        memsz: 0x28n,
        align: 8n,
      },
      { type: PT_GNU_STACK, flags: PF_R | PF_W, offset: 0n, vaddr: 0n, filesz: 0n, memsz: 0n, align: 16n },
    ],
    fileSize: 0x280,
    contents: [],
  };
}

export function buildElf(spec: ElfSpec): Uint8Array {
  const image = new Uint8Array(spec.fileSize);
  for (const { offset, bytes } of spec.contents) image.set(bytes, offset);
  const view = new DataView(image.buffer);
  image.set([0x7f, 0x45, 0x4c, 0x46, spec.elfClass, spec.data, spec.identVersion], 0);
  view.setUint16(16, spec.type, true);
  view.setUint16(18, spec.machine, true);
  view.setUint32(20, spec.version, true);
  view.setBigUint64(24, spec.entry, true);
  view.setBigUint64(32, spec.phoff, true);
  view.setUint32(48, spec.flags, true);
  view.setUint16(52, 64, true);
  view.setUint16(54, spec.phentsize, true);
  view.setUint16(56, spec.phnum ?? spec.headers.length, true);
  spec.headers.forEach((h, i) => {
    const at = Number(spec.phoff) + i * 56;
    if (at + 56 > image.length) return;
    view.setUint32(at, h.type, true);
    view.setUint32(at + 4, h.flags, true);
    view.setBigUint64(at + 8, h.offset, true);
    view.setBigUint64(at + 16, h.vaddr, true);
    view.setBigUint64(at + 24, h.vaddr, true);
    view.setBigUint64(at + 32, h.filesz, true);
    view.setBigUint64(at + 40, h.memsz, true);
    view.setBigUint64(at + 48, h.align, true);
  });
  return image;
}

/** The valid executable with some of its fields replaced. */
export function elfWith(change: (spec: ElfSpec) => void): Uint8Array {
  const spec = validExecSpec();
  change(spec);
  return buildElf(spec);
}

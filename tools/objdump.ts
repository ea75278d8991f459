// GNU objdump as the reference disassembler for the POWER decoder: the differential test and the
// ISA coverage report both run it over batches of instruction words and read back one line per word.

export const OBJDUMP = "powerpc64le-linux-gnu-objdump";

/** Whether the cross objdump can be run here. */
export function objdumpAvailable(): boolean {
  try {
    return new Deno.Command(OBJDUMP, { args: ["--version"], stdout: "null", stderr: "null" }).outputSync()
      .success;
  } catch {
    return false;
  }
}

/** The line objdump prints for a word it does not know. */
export function isRejected(text: string): boolean {
  return text.startsWith(".long");
}

/**
 * Disassembles little-endian words with `objdump -D -z -b binary -m powerpc:common64 -EL -M power9`,
 * one process per call, the words laid out from address `vma`. Returns objdump's text for each word
 * ("mnemonic operands" with single spaces, or ".long 0x...").
 */
export async function objdumpWords(words: Uint32Array, vma = 0n): Promise<string[]> {
  const file = await Deno.makeTempFile({ prefix: "astra-objdump-", suffix: ".bin" });
  try {
    const bytes = new Uint8Array(words.length * 4);
    const view = new DataView(bytes.buffer);
    for (let i = 0; i < words.length; i++) view.setUint32(i * 4, words[i], true);
    await Deno.writeFile(file, bytes);
    const args = ["-D", "-z", "-b", "binary", "-m", "powerpc:common64", "-EL", "-M", "power9"];
    if (vma !== 0n) args.push(`--adjust-vma=0x${vma.toString(16)}`);
    const out = await new Deno.Command(OBJDUMP, { args: [...args, file], stdout: "piped", stderr: "piped" })
      .output();
    if (!out.success) throw new Error(`${OBJDUMP} failed: ${new TextDecoder().decode(out.stderr)}`);
    return parseListing(new TextDecoder().decode(out.stdout), words.length, vma);
  } finally {
    await Deno.remove(file);
  }
}

const LINE = /^\s*([0-9a-f]+):\t(?:[0-9a-f]{2} ){4}\t(.*)$/;

function parseListing(listing: string, count: number, vma: bigint): string[] {
  const texts = new Array<string>(count).fill("");
  for (const line of listing.split("\n")) {
    const match = LINE.exec(line);
    if (!match) continue;
    const index = Number((BigInt(`0x${match[1]}`) - vma) / 4n);
    if (index >= 0 && index < count) texts[index] = match[2].replace(/\s+/g, " ").trim();
  }
  const missing = texts.indexOf("");
  if (missing >= 0) throw new Error(`${OBJDUMP} printed no line for word ${missing}`);
  return texts;
}

/** The executable sections of an ELF64 little-endian file, with their load addresses. */
export function executableSections(
  image: Uint8Array,
): { name: string; address: bigint; words: Uint32Array }[] {
  const view = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const magic = view.getUint32(0, false);
  if (magic !== 0x7f454c46 || image[4] !== 2 || image[5] !== 1) {
    throw new Error("not an ELF64 little-endian file");
  }
  const sectionHeaders = Number(view.getBigUint64(0x28, true));
  const entrySize = view.getUint16(0x3a, true);
  const count = view.getUint16(0x3c, true);
  const namesIndex = view.getUint16(0x3e, true);
  const header = (i: number) => sectionHeaders + i * entrySize;
  const namesOffset = Number(view.getBigUint64(header(namesIndex) + 0x18, true));
  const SHT_PROGBITS = 1;
  const SHF_EXECINSTR = 4n;
  const sections = [];
  for (let i = 0; i < count; i++) {
    const h = header(i);
    const type = view.getUint32(h + 4, true);
    const flags = view.getBigUint64(h + 8, true);
    if (type !== SHT_PROGBITS || (flags & SHF_EXECINSTR) === 0n) continue;
    let end = namesOffset + view.getUint32(h, true);
    const start = end;
    while (image[end] !== 0) end++;
    const name = new TextDecoder().decode(image.subarray(start, end));
    const address = view.getBigUint64(h + 0x10, true);
    const offset = Number(view.getBigUint64(h + 0x18, true));
    const size = Number(view.getBigUint64(h + 0x20, true));
    const words = new Uint32Array(Math.floor(size / 4));
    for (let w = 0; w < words.length; w++) words[w] = view.getUint32(offset + w * 4, true);
    sections.push({ name, address, words });
  }
  return sections;
}

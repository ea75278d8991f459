// Just enough of Linux to run a small static ppc64le program on the CPU alone, for the CPU's
// tests: the ELF's PT_LOAD segments in one flat memory (with a software TLB), the ELFv2 initial
// stack with the auxiliary vector glibc reads, and the system calls glibc's startup, stdio and
// exit make. The real loader and kernel calls belong to the sched, vmm and storage services; this
// exists so that the CPU can be checked against qemu on whole programs before they are wired up.

import { Cpu, StopReason } from "../../../services/machine/cpu/interpreter.ts";
import { FlatMemory } from "../../../services/machine/cpu/flat.ts";
import { HWCAP, HWCAP2 } from "../../../services/machine/cpu/features.ts";
import { TLB_PAGE_BYTES } from "../../../services/machine/cpu/tlb.ts";

const BASE = 0x10000000;
const MEMORY_BYTES = 96 << 20;
const STACK_TOP = BASE + MEMORY_BYTES - 0x10000;
const MMAP_BASE = BASE + (48 << 20);

/** Flat guest memory at BASE with a software TLB; everything else faults. */
const processMemory = () => new FlatMemory(BASE, MEMORY_BYTES, { tlbEntries: 4096 });

const ENOSYS = 38, ENOTTY = 25, EBADF = 9;

export interface ProcessResult {
  stdout: string;
  exitCode: number;
  instructions: number;
}

/**
 * Runs a static ppc64le ELF to its exit. `args[0]` is the program's absolute path, which is what
 * the kernel's readlink("/proc/self/exe") gives and what glibc's static startup relies on.
 */
export function runProgram(
  image: Uint8Array,
  args: string[],
  options: { translate: boolean },
): ProcessResult {
  if (!args[0]?.startsWith("/")) {
    throw new Error(`args[0] must be the program's absolute path, not ${args[0]}`);
  }
  const memory = processMemory();
  const elf = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const entry = Number(elf.getBigUint64(0x18, true));
  const phoff = Number(elf.getBigUint64(0x20, true));
  const phentsize = elf.getUint16(0x36, true), phnum = elf.getUint16(0x38, true);
  let end = 0, phdr = 0;
  for (let i = 0; i < phnum; i++) {
    const h = phoff + i * phentsize;
    const type = elf.getUint32(h, true);
    const offset = Number(elf.getBigUint64(h + 8, true)), address = Number(elf.getBigUint64(h + 16, true));
    const fileSize = Number(elf.getBigUint64(h + 32, true)),
      memorySize = Number(elf.getBigUint64(h + 40, true));
    if (type !== 1) continue;
    memory.bytes.set(image.subarray(offset, offset + fileSize), address - BASE);
    if (offset === 0) phdr = address + phoff;
    end = Math.max(end, address + memorySize);
  }
  let brk = Math.ceil(end / 0x10000) * 0x10000, mmapNext = MMAP_BASE;

  // The initial stack: strings, AT_RANDOM bytes, then argc, argv, envp and the auxiliary vector.
  let sp = STACK_TOP;
  const pushString = (text: string) => {
    const bytes = new TextEncoder().encode(text + "\0");
    sp -= bytes.length;
    memory.bytes.set(bytes, sp - BASE);
    return sp;
  };
  const argv = args.map(pushString);
  const platform = pushString("power9");
  sp -= 16;
  const random = sp;
  for (let i = 0; i < 16; i++) memory.bytes[random - BASE + i] = (i * 37 + 5) & 0xff;
  const auxv: [number, number][] = [
    [3, phdr],
    [4, phentsize],
    [5, phnum],
    [6, TLB_PAGE_BYTES],
    [9, entry],
    [25, random],
    [16, HWCAP],
    [26, HWCAP2],
    [19, 128],
    [20, 128],
    [21, 0],
    [15, platform],
    [11, 0],
    [12, 0],
    [13, 0],
    [14, 0],
    [23, 0],
    [31, argv[0]],
    [0, 0],
  ];
  const words = [args.length, ...argv, 0, 0, ...auxv.flat()];
  sp = (sp - 8 * words.length) & ~15;
  words.forEach((value, i) => memory.view.setBigUint64(sp - BASE + 8 * i, BigInt(value), true));

  const cpu = new Cpu(memory, () => Math.floor(performance.now() * 512_000));
  if (options.translate) cpu.enableTranslation();
  cpu.pc = entry;
  cpu.gpr[2] = sp;
  cpu.gpr[24] = entry;
  const stdout: number[] = [];
  const gpr = (r: number) => (cpu.gpr[2 * r + 1] >>> 0) * 4294967296 + (cpu.gpr[2 * r] >>> 0);
  const result = (value: number) => {
    const negative = value < 0;
    cpu.gpr[6] = negative ? -value : value;
    cpu.gpr[7] = negative ? 0 : Math.floor(value / 4294967296);
    cpu.setCrField(0, (cpu.crField(0) & ~1) | (negative ? 1 : 0));
  };

  for (;;) {
    const stop = cpu.run(100_000_000);
    if (stop === StopReason.Budget) continue;
    if (stop !== StopReason.SystemCall) {
      throw new Error(`the program stopped (${stop}, ${cpu.programReason}) at 0x${cpu.pc.toString(16)}`);
    }
    const number = cpu.gpr[0];
    switch (number) {
      case 1: // exit
      case 234: // exit_group
        return {
          stdout: new TextDecoder().decode(new Uint8Array(stdout)),
          exitCode: cpu.gpr[6] & 0xff,
          instructions: cpu.retired,
        };
      case 4: { // write
        const fd = gpr(3), buffer = gpr(4), length = gpr(5);
        if (fd !== 1 && fd !== 2) {
          result(-EBADF);
          break;
        }
        if (fd === 1) { for (let i = 0; i < length; i++) stdout.push(memory.bytes[buffer - BASE + i]); }
        result(length);
        break;
      }
      case 45: { // brk
        const requested = gpr(3);
        if (requested > brk && requested < MMAP_BASE) brk = requested;
        result(brk);
        break;
      }
      case 90: { // mmap: anonymous memory only
        const length = Math.ceil(gpr(4) / 0x10000) * 0x10000;
        if (mmapNext + length > STACK_TOP - (1 << 20)) {
          result(-12);
          break;
        }
        memory.bytes.fill(0, mmapNext - BASE, mmapNext - BASE + length);
        result(mmapNext);
        mmapNext += length;
        break;
      }
      case 291: { // newfstatat: stdout and stderr are pipes
        const statBuffer = gpr(5);
        memory.bytes.fill(0, statBuffer - BASE, statBuffer - BASE + 144);
        memory.view.setUint32(statBuffer - BASE + 24, 0o010600, true);
        memory.view.setBigUint64(statBuffer - BASE + 56, 4096n, true);
        result(0);
        break;
      }
      case 54: // ioctl
        result(-ENOTTY);
        break;
      case 85: { // readlink of /proc/self/exe
        const name = new TextEncoder().encode(args[0]);
        memory.bytes.set(name.subarray(0, gpr(5)), gpr(4) - BASE);
        result(Math.min(name.length, gpr(5)));
        break;
      }
      case 359: { // getrandom
        const buffer = gpr(3), length = gpr(4);
        for (let i = 0; i < length; i++) memory.bytes[buffer - BASE + i] = (i * 73 + 11) & 0xff;
        result(length);
        break;
      }
      case 232: // set_tid_address
        result(1000);
        break;
      case 125: // mprotect
      case 91: // munmap
      case 325: // prlimit64
      case 174: // rt_sigprocmask
      case 173: // rt_sigaction
        result(0);
        break;
      default:
        result(-ENOSYS);
    }
  }
}

// The ELF auxiliary vector of a new ppc64 process, in the order Linux's create_elf_tables writes
// it (fs/binfmt_elf.c with arch/powerpc/include/asm/elf.h's ARCH_DLINFO first). glibc reads the
// cache block size for dcbz, the HWCAP bits for its string routines and AT_PHDR for PT_TLS even in
// a static program, so the values must be right, not merely present.

// Generic types (include/uapi/linux/auxvec.h).
export const AT_NULL = 0;
export const AT_PHDR = 3;
export const AT_PHENT = 4;
export const AT_PHNUM = 5;
export const AT_PAGESZ = 6;
export const AT_BASE = 7;
export const AT_FLAGS = 8;
export const AT_ENTRY = 9;
export const AT_UID = 11;
export const AT_EUID = 12;
export const AT_GID = 13;
export const AT_EGID = 14;
export const AT_PLATFORM = 15;
export const AT_HWCAP = 16;
export const AT_CLKTCK = 17;
export const AT_SECURE = 23;
export const AT_BASE_PLATFORM = 24;
export const AT_RANDOM = 25;
export const AT_HWCAP2 = 26;
export const AT_EXECFN = 31;
export const AT_MINSIGSTKSZ = 51;
// powerpc types (arch/powerpc/include/uapi/asm/auxvec.h).
export const AT_DCACHEBSIZE = 19;
export const AT_ICACHEBSIZE = 20;
export const AT_UCACHEBSIZE = 21;
export const AT_IGNOREPPC = 22;

/**
 * AT_HWCAP bits a 64-bit server CPU can advertise (arch/powerpc/include/uapi/asm/cputable.h); the
 * machine composes the value from what it implements.
 */
export const PPC_FEATURE_32 = 0x80000000;
export const PPC_FEATURE_64 = 0x40000000;
export const PPC_FEATURE_HAS_ALTIVEC = 0x10000000;
export const PPC_FEATURE_HAS_FPU = 0x08000000;
export const PPC_FEATURE_HAS_MMU = 0x04000000;
export const PPC_FEATURE_UNIFIED_CACHE = 0x01000000;
export const PPC_FEATURE_NO_TB = 0x00100000;
export const PPC_FEATURE_POWER4 = 0x00080000;
export const PPC_FEATURE_POWER5 = 0x00040000;
export const PPC_FEATURE_POWER5_PLUS = 0x00020000;
export const PPC_FEATURE_SMT = 0x00004000;
export const PPC_FEATURE_ICACHE_SNOOP = 0x00002000;
export const PPC_FEATURE_ARCH_2_05 = 0x00001000;
export const PPC_FEATURE_HAS_DFP = 0x00000400;
export const PPC_FEATURE_POWER6_EXT = 0x00000200;
export const PPC_FEATURE_ARCH_2_06 = 0x00000100;
export const PPC_FEATURE_HAS_VSX = 0x00000080;
export const PPC_FEATURE_PSERIES_PERFMON_COMPAT = 0x00000040;
export const PPC_FEATURE_TRUE_LE = 0x00000002;
export const PPC_FEATURE_PPC_LE = 0x00000001;

/** AT_HWCAP2 bits. */
export const PPC_FEATURE2_ARCH_2_07 = 0x80000000;
export const PPC_FEATURE2_HTM = 0x40000000;
export const PPC_FEATURE2_DSCR = 0x20000000;
export const PPC_FEATURE2_EBB = 0x10000000;
export const PPC_FEATURE2_ISEL = 0x08000000;
export const PPC_FEATURE2_TAR = 0x04000000;
export const PPC_FEATURE2_VEC_CRYPTO = 0x02000000;
export const PPC_FEATURE2_HTM_NOSC = 0x01000000;
export const PPC_FEATURE2_ARCH_3_00 = 0x00800000;
export const PPC_FEATURE2_HAS_IEEE128 = 0x00400000;
export const PPC_FEATURE2_DARN = 0x00200000;
export const PPC_FEATURE2_SCV = 0x00100000;
export const PPC_FEATURE2_HTM_NO_SUSPEND = 0x00080000;
export const PPC_FEATURE2_ARCH_3_1 = 0x00040000;
export const PPC_FEATURE2_MMA = 0x00020000;

/** POWER caches move 128-byte blocks; glibc's memset sizes dcbz by AT_DCACHEBSIZE. */
export const CACHE_BLOCK_SIZE = 128;
/** USER_HZ: the unit of times() and clock_t. */
export const CLOCK_TICKS_PER_SECOND = 100;
/**
 * Linux's get_min_sigframe_size() for a 64-bit task: sizeof(struct rt_sigframe) (a 1696-byte
 * ucontext, two unused longs, a 7-instruction trampoline, two pointers, a 128-byte siginfo and the
 * 512-byte ELFv2 red zone, 16-byte aligned: 2400) plus the 128-byte __SIGNAL_FRAMESIZE. The
 * machine implements no transactional memory, so there is no second (transactional) ucontext.
 */
export const MIN_SIGNAL_STACK_SIZE = 2528;

export interface AuxvEntry {
  type: number;
  value: bigint;
}

/** Everything the auxiliary vector says, addresses already final. */
export interface AuxvValues {
  phdr: bigint;
  phent: number;
  phnum: number;
  pageSize: number;
  entry: bigint;
  uid: number;
  euid: number;
  gid: number;
  egid: number;
  secure: boolean;
  hwcap: number;
  hwcap2: number;
  dcacheBlockSize: number;
  icacheBlockSize: number;
  minSignalStackSize: number;
  /** Addresses of the 16 AT_RANDOM bytes and of the strings on the new stack. */
  random: bigint;
  platform: bigint;
  basePlatform: bigint;
  execFn: bigint;
}

/**
 * The auxiliary vector in Linux's order, AT_NULL last. Left out on purpose: AT_SYSINFO_EHDR
 * (there is no vDSO, so libc makes real system calls), the AT_L*_CACHE* geometry (no cache
 * hierarchy is modelled; qemu-user leaves it out too), AT_HWCAP3/4 and the rseq entries (glibc
 * 2.36 does not read them and rseq answers ENOSYS).
 */
export function buildAuxv(values: AuxvValues): AuxvEntry[] {
  const pairs: Array<[number, bigint | number]> = [
    // ARCH_DLINFO comes first: the two AT_IGNOREPPC entries keep the first 16-byte aligned word
    // of the vector above 16 for old 32-bit glibc.
    [AT_IGNOREPPC, AT_IGNOREPPC],
    [AT_IGNOREPPC, AT_IGNOREPPC],
    [AT_DCACHEBSIZE, values.dcacheBlockSize],
    [AT_ICACHEBSIZE, values.icacheBlockSize],
    [AT_UCACHEBSIZE, 0],
    [AT_MINSIGSTKSZ, values.minSignalStackSize],
    [AT_HWCAP, values.hwcap],
    [AT_PAGESZ, values.pageSize],
    [AT_CLKTCK, CLOCK_TICKS_PER_SECOND],
    [AT_PHDR, values.phdr],
    [AT_PHENT, values.phent],
    [AT_PHNUM, values.phnum],
    // No interpreter: a static program is its own loader.
    [AT_BASE, 0],
    [AT_FLAGS, 0],
    [AT_ENTRY, values.entry],
    [AT_UID, values.uid],
    [AT_EUID, values.euid],
    [AT_GID, values.gid],
    [AT_EGID, values.egid],
    [AT_SECURE, values.secure ? 1 : 0],
    [AT_RANDOM, values.random],
    [AT_HWCAP2, values.hwcap2],
    [AT_EXECFN, values.execFn],
    [AT_PLATFORM, values.platform],
    [AT_BASE_PLATFORM, values.basePlatform],
    [AT_NULL, 0],
  ];
  return pairs.map(([type, value]) => ({ type, value: BigInt(value) }));
}

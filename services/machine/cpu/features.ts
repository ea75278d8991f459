// The CPU features a program may rely on, as Linux advertises them in AT_HWCAP and AT_HWCAP2
// (arch/powerpc/include/uapi/asm/cputable.h). Exactly what this CPU implements is set: no
// decimal floating point, no transactional memory, no scv (its facility is off, as on a kernel
// that does not enable it), no event-based branches.

/** AT_HWCAP bits. */
export const PPC_FEATURE_32 = 0x80000000;
export const PPC_FEATURE_64 = 0x40000000;
export const PPC_FEATURE_HAS_ALTIVEC = 0x10000000;
export const PPC_FEATURE_HAS_FPU = 0x08000000;
export const PPC_FEATURE_HAS_MMU = 0x04000000;
export const PPC_FEATURE_ARCH_2_05 = 0x00001000;
export const PPC_FEATURE_ARCH_2_06 = 0x00000100;
export const PPC_FEATURE_HAS_VSX = 0x00000080;
export const PPC_FEATURE_TRUE_LE = 0x00000002;

/** AT_HWCAP2 bits. */
export const PPC_FEATURE2_ARCH_2_07 = 0x80000000;
export const PPC_FEATURE2_DSCR = 0x20000000;
export const PPC_FEATURE2_ISEL = 0x08000000;
export const PPC_FEATURE2_TAR = 0x04000000;
export const PPC_FEATURE2_VEC_CRYPTO = 0x02000000;
export const PPC_FEATURE2_ARCH_3_00 = 0x00800000;
export const PPC_FEATURE2_HAS_IEEE128 = 0x00400000;
export const PPC_FEATURE2_DARN = 0x00200000;

/** AT_HWCAP: 32- and 64-bit, AltiVec, FPU, MMU, ISA 2.05 and 2.06, VSX, true little-endian. */
export const HWCAP = (PPC_FEATURE_32 | PPC_FEATURE_64 | PPC_FEATURE_HAS_ALTIVEC | PPC_FEATURE_HAS_FPU |
  PPC_FEATURE_HAS_MMU | PPC_FEATURE_ARCH_2_05 | PPC_FEATURE_ARCH_2_06 | PPC_FEATURE_HAS_VSX |
  PPC_FEATURE_TRUE_LE) >>> 0;

/** AT_HWCAP2: ISA 2.07 and 3.00, user DSCR, isel, TAR, vector crypto, quad precision, darn. */
export const HWCAP2 = (PPC_FEATURE2_ARCH_2_07 | PPC_FEATURE2_DSCR | PPC_FEATURE2_ISEL | PPC_FEATURE2_TAR |
  PPC_FEATURE2_VEC_CRYPTO | PPC_FEATURE2_ARCH_3_00 | PPC_FEATURE2_HAS_IEEE128 | PPC_FEATURE2_DARN) >>> 0;

/** The processor version register: POWER9 DD2.2, what AT_PLATFORM "power9" names. */
export const PVR_POWER9 = 0x004e1202;

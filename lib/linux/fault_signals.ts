// The signals a memory fault raises and their si_code values (include/uapi/asm-generic/signal.h
// and siginfo.h; powerpc uses the generic numbering).

export const SIGBUS = 7;
export const SIGKILL = 9;
export const SIGSEGV = 11;

/** SIGSEGV: no mapping at the address. */
export const SEGV_MAPERR = 1;
/** SIGSEGV: a mapping forbids the access. */
export const SEGV_ACCERR = 2;
/** SIGBUS: the address names nothing that can be supplied (a file mapping past its end). */
export const BUS_ADRERR = 2;

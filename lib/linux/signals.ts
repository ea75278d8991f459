// Linux signal facts for ppc64, which uses the generic numbering (include/uapi/asm-generic/signal.h,
// signal-defs.h and siginfo.h): signal numbers and names, si_code values, sigaction flags and
// sigaltstack states. What a kernel does with them lives with sched (services/sched/signals.ts)
// and the machine (services/machine/cpu_signals.ts).

export const SIGHUP = 1;
export const SIGINT = 2;
export const SIGQUIT = 3;
export const SIGILL = 4;
export const SIGTRAP = 5;
export const SIGABRT = 6;
export const SIGBUS = 7;
export const SIGFPE = 8;
export const SIGKILL = 9;
export const SIGUSR1 = 10;
export const SIGSEGV = 11;
export const SIGUSR2 = 12;
export const SIGPIPE = 13;
export const SIGALRM = 14;
export const SIGTERM = 15;
export const SIGSTKFLT = 16;
export const SIGCHLD = 17;
export const SIGCONT = 18;
export const SIGSTOP = 19;
export const SIGTSTP = 20;
export const SIGTTIN = 21;
export const SIGTTOU = 22;
export const SIGURG = 23;
export const SIGXCPU = 24;
export const SIGXFSZ = 25;
export const SIGVTALRM = 26;
export const SIGPROF = 27;
export const SIGWINCH = 28;
export const SIGIO = 29;
export const SIGPWR = 30;
export const SIGSYS = 31;
export const SIGRTMIN = 32;
export const SIGRTMAX = 64;
/** Signals are numbered 1..NSIG. */
export const NSIG = 64;

const NAMES: readonly string[] = [
  "",
  "SIGHUP",
  "SIGINT",
  "SIGQUIT",
  "SIGILL",
  "SIGTRAP",
  "SIGABRT",
  "SIGBUS",
  "SIGFPE",
  "SIGKILL",
  "SIGUSR1",
  "SIGSEGV",
  "SIGUSR2",
  "SIGPIPE",
  "SIGALRM",
  "SIGTERM",
  "SIGSTKFLT",
  "SIGCHLD",
  "SIGCONT",
  "SIGSTOP",
  "SIGTSTP",
  "SIGTTIN",
  "SIGTTOU",
  "SIGURG",
  "SIGXCPU",
  "SIGXFSZ",
  "SIGVTALRM",
  "SIGPROF",
  "SIGWINCH",
  "SIGIO",
  "SIGPWR",
  "SIGSYS",
];

export function isValidSignal(signal: number): boolean {
  return Number.isInteger(signal) && signal >= 1 && signal <= NSIG;
}

/** "SIGSEGV", or "SIGRTMIN+3" for real-time signals; "signal 99" for a number that is none. */
export function signalName(signal: number): string {
  if (!isValidSignal(signal)) return `signal ${signal}`;
  return signal < SIGRTMIN
    ? NAMES[signal]
    : signal === SIGRTMIN
    ? "SIGRTMIN"
    : `SIGRTMIN+${signal - SIGRTMIN}`;
}

// si_code values: who sent a signal, or why the kernel raised it.
export const SI_USER = 0;
/** A signal the kernel sends on its own behalf (a bad signal frame, say). */
export const SI_KERNEL = 0x80;
export const SI_QUEUE = -1;
export const SI_TIMER = -2;
export const SI_SIGIO = -5;
export const SI_TKILL = -6;
export const ILL_ILLOPC = 1;
export const ILL_PRVOPC = 5;
export const FPE_INTDIV = 1;
export const FPE_FLTDIV = 3;
export const FPE_FLTOVF = 4;
export const FPE_FLTUND = 5;
export const FPE_FLTRES = 6;
export const FPE_FLTINV = 7;
export const FPE_FLTUNK = 14;
/** SIGSEGV: no mapping at the address. */
export const SEGV_MAPERR = 1;
/** SIGSEGV: a mapping forbids the access. */
export const SEGV_ACCERR = 2;
export const BUS_ADRALN = 1;
/** SIGBUS: the address names nothing that can be supplied (a file mapping past its end). */
export const BUS_ADRERR = 2;
export const TRAP_BRKPT = 1;
export const CLD_EXITED = 1;
export const CLD_KILLED = 2;
export const CLD_DUMPED = 3;
export const CLD_TRAPPED = 4;
export const CLD_STOPPED = 5;
export const CLD_CONTINUED = 6;

/** sizeof(siginfo_t). */
export const SIGINFO_SIZE = 128;

// sa_flags bits (asm-generic/signal-defs.h, SA_RESTORER from powerpc's asm/signal.h).
export const SA_NOCLDSTOP = 0x00000001n;
export const SA_NOCLDWAIT = 0x00000002n;
export const SA_SIGINFO = 0x00000004n;
export const SA_UNSUPPORTED = 0x00000400n;
export const SA_EXPOSE_TAGBITS = 0x00000800n;
export const SA_RESTORER = 0x04000000n;
export const SA_ONSTACK = 0x08000000n;
export const SA_RESTART = 0x10000000n;
export const SA_NODEFER = 0x40000000n;
export const SA_RESETHAND = 0x80000000n;

// sigaltstack's ss_flags.
export const SS_ONSTACK = 1;
export const SS_DISABLE = 2;
export const SS_AUTODISARM = 0x80000000;

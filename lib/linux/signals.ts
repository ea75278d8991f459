// Linux signal names by number (powerpc uses the generic numbering), for messages people read.
const NAMES = [
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

/** "SIGSEGV" for 11; real-time signals as "SIGRTMIN+n". */
export function signalName(signal: number): string {
  if (signal >= 1 && signal < NAMES.length) return NAMES[signal];
  if (signal >= 32 && signal <= 64) return `SIGRTMIN+${signal - 32}`;
  return `signal ${signal}`;
}

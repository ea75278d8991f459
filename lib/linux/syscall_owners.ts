// Who answers each guest system call: the service that owns the state it reads or changes. The
// machine's trap path sends a call on that service's KernelCall stream; a number nobody owns is
// answered ENOSYS by the machine itself.
import { type SyscallName, SYSCALLS } from "./syscall_numbers.ts";
import { VFS_KERNEL_CALLS } from "./vfs_calls.ts";

export type SyscallOwner = "sched" | "vmm" | "storage" | "machine";

/** Processes, threads, signals, time, identity, limits: SchedService.KernelCall. */
const SCHED_CALLS: readonly SyscallName[] = [
  "exit",
  "exit_group",
  "getpid",
  "getppid",
  "gettid",
  "getuid",
  "geteuid",
  "getgid",
  "getegid",
  "kill",
  "tkill",
  "tgkill",
  "rt_sigaction",
  "rt_sigprocmask",
  "rt_sigpending",
  "rt_sigsuspend",
  "sigaltstack",
  "prlimit64",
  "getrlimit",
  "setrlimit",
  "ugetrlimit",
  "getrusage",
  "set_tid_address",
  "set_robust_list",
  "rseq",
  "sched_yield",
  "sched_getaffinity",
  "prctl",
  "futex",
  "uname",
  "clock_gettime",
  "clock_getres",
  "gettimeofday",
  "time",
  "nanosleep",
  "clock_nanosleep",
  "getrandom",
  "setpgid",
  "getpgid",
  "setsid",
  "getsid",
  "wait4",
  "clone",
  "fork",
  "vfork",
  "execve",
  "pause",
  "getpgrp",
  "getresuid",
  "getresgid",
  "get_robust_list",
  "getgroups",
];

/** The address space: VmmService.KernelCall. */
const VMM_CALLS: readonly SyscallName[] = ["brk", "mmap", "munmap", "mprotect", "mremap", "madvise"];

/** The signal frame is the machine's: the CPU run loop restores it. */
const MACHINE_CALLS: readonly SyscallName[] = ["rt_sigreturn"];

const OWNERS: readonly (SyscallOwner | undefined)[] = (() => {
  const owners: (SyscallOwner | undefined)[] = new Array(Math.max(...Object.values(SYSCALLS)) + 1);
  const assign = (owner: SyscallOwner, number: number) => {
    if (owners[number]) {
      throw new Error(`system call ${number} has two owners: ${owners[number]} and ${owner}`);
    }
    owners[number] = owner;
  };
  for (const name of SCHED_CALLS) assign("sched", SYSCALLS[name]);
  for (const name of VMM_CALLS) assign("vmm", SYSCALLS[name]);
  for (const number of VFS_KERNEL_CALLS.keys()) assign("storage", number);
  for (const name of MACHINE_CALLS) assign("machine", SYSCALLS[name]);
  return owners;
})();

/** The owner of a system call number; undefined when no one implements it (ENOSYS). */
export function syscallOwner(number: number): SyscallOwner | undefined {
  return OWNERS[number];
}

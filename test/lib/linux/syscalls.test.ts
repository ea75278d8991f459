// The shared Linux tables: every ppc64 system call number, who owns each, and the VFS's per-call
// copy-in table that the machine and storage both read.
import { describe, expect, it } from "vitest";
import { IOC_READ, IOC_WRITE, ioctlDirection, ioctlRequest, ioctlSize } from "../../../lib/linux/ioctl.ts";
import { syscallOwner } from "../../../lib/linux/syscall_owners.ts";
import { syscallName, SYSCALLS } from "../../../lib/linux/syscall_numbers.ts";
import { MAX_IO_BYTES, VFS_KERNEL_CALLS, VFS_SYSCALLS } from "../../../lib/linux/vfs_calls.ts";
import { MAX_IO_BYTES as VFS_MAX_IO_BYTES } from "../../../services/storage/vfs/files.ts";

describe("system call numbers", () => {
  it("names every call of the ppc64 table once", () => {
    const numbers = Object.values(SYSCALLS);
    expect(numbers).toHaveLength(403);
    expect(new Set(numbers).size).toBe(numbers.length);
    expect([SYSCALLS.read, SYSCALLS.rt_sigreturn, SYSCALLS.exit_group, SYSCALLS.newfstatat, SYSCALLS.rseq])
      .toEqual([3, 172, 234, 291, 387]);
    for (const [name, number] of Object.entries(SYSCALLS)) expect(syscallName(number)).toBe(name);
    expect(syscallName(9999)).toBeUndefined();
  });
});

describe("owners", () => {
  it("gives each call to the service that owns its state", () => {
    for (const name of ["getppid", "futex", "execve", "clone", "wait4", "ugetrlimit", "getrandom"] as const) {
      expect(syscallOwner(SYSCALLS[name])).toBe("sched");
    }
    for (const name of ["brk", "mmap", "munmap", "mprotect", "mremap", "madvise"] as const) {
      expect(syscallOwner(SYSCALLS[name])).toBe("vmm");
    }
    for (const number of VFS_KERNEL_CALLS.keys()) expect(syscallOwner(number)).toBe("storage");
    expect(syscallOwner(SYSCALLS.rt_sigreturn)).toBe("machine");
    expect(syscallOwner(SYSCALLS.socket)).toBeUndefined();
    expect(syscallOwner(9999)).toBeUndefined();
  });
});

describe("the VFS's per-call table", () => {
  it("numbers its calls from the system call table", () => {
    for (const [name, number] of Object.entries(VFS_SYSCALLS)) {
      expect(number).toBe(SYSCALLS[name as keyof typeof SYSCALLS]);
      expect(VFS_KERNEL_CALLS.get(number)?.name).toBe(name);
    }
    expect(VFS_KERNEL_CALLS.get(SYSCALLS.writev)?.inputs).toEqual([
      { kind: "iovec", arg: 1, countArg: 2, buffers: true },
    ]);
  });

  it("copies no more than the VFS moves in one call", () => {
    expect(MAX_IO_BYTES).toBe(VFS_MAX_IO_BYTES);
  });

  it("decodes the ioctl requests it encodes", () => {
    const request = ioctlRequest(IOC_WRITE | IOC_READ, "t", 19, 44);
    expect([ioctlDirection(request), ioctlSize(request), request & 0xffff]).toEqual([6, 44, 0x7413]);
  });
});

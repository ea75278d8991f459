// The ioctl request encoding on powerpc: 3 direction bits (NONE = 1, READ = 2, WRITE = 4) at 29,
// 13 size bits at 16, type at 8, number at 0 (arch/powerpc/include/uapi/asm/ioctl.h). The
// machine reads it to know which argument bytes a request takes in; the VFS to build requests.

export const IOC_NONE = 1;
export const IOC_READ = 2;
export const IOC_WRITE = 4;

export function ioctlDirection(request: number): number {
  return (request >>> 29) & 0x7;
}

export function ioctlSize(request: number): number {
  return (request >>> 16) & 0x1fff;
}

/** _IOC(direction, type, nr, size). */
export function ioctlRequest(direction: number, type: string, nr: number, size: number): number {
  return ((direction << 29) | (size << 16) | (type.charCodeAt(0) << 8) | nr) >>> 0;
}

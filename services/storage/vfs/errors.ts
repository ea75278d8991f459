// How the VFS fails: every error is an AstraError carrying the errno the guest gets, with the gRPC
// status that errno belongs to. Errors from the host's file APIs are translated by their errno
// name, so a guest sees exactly what the host kernel answered.
import { AstraError, Code, Errno } from "../../../lib/errors.ts";

export { Errno };

const CODE_OF_ERRNO: Partial<Record<Errno, Code>> = {
  [Errno.ENOENT]: Code.NOT_FOUND,
  [Errno.ESRCH]: Code.NOT_FOUND,
  [Errno.ENXIO]: Code.NOT_FOUND,
  [Errno.ENODEV]: Code.NOT_FOUND,
  [Errno.EEXIST]: Code.ALREADY_EXISTS,
  [Errno.EPERM]: Code.PERMISSION_DENIED,
  [Errno.EACCES]: Code.PERMISSION_DENIED,
  [Errno.EROFS]: Code.PERMISSION_DENIED,
  [Errno.EMFILE]: Code.RESOURCE_EXHAUSTED,
  [Errno.ENFILE]: Code.RESOURCE_EXHAUSTED,
  [Errno.ENOSPC]: Code.RESOURCE_EXHAUSTED,
  [Errno.ENOMEM]: Code.RESOURCE_EXHAUSTED,
  [Errno.EAGAIN]: Code.UNAVAILABLE,
  [Errno.EINTR]: Code.ABORTED,
  [Errno.ENOSYS]: Code.UNIMPLEMENTED,
  [Errno.ERANGE]: Code.OUT_OF_RANGE,
  [Errno.EOVERFLOW]: Code.OUT_OF_RANGE,
  [Errno.EFBIG]: Code.OUT_OF_RANGE,
  [Errno.EIO]: Code.INTERNAL,
  [Errno.EINVAL]: Code.INVALID_ARGUMENT,
  [Errno.EFAULT]: Code.INVALID_ARGUMENT,
  [Errno.ENAMETOOLONG]: Code.INVALID_ARGUMENT,
  [Errno.EILSEQ]: Code.INVALID_ARGUMENT,
};

/** A failed call: `errno` for the guest, a sentence for people, the argument at fault. */
export function vfsError(errno: Errno, message: string, argument = ""): AstraError {
  return new AstraError(CODE_OF_ERRNO[errno] ?? Code.FAILED_PRECONDITION, errno, message, {
    argument,
    service: "storage",
  });
}

/** Host errno names the Errno enum has no member for, and what the guest gets instead. */
const HOST_ERRNO_FALLBACK: Record<string, Errno> = {
  // The host's own descriptor table is full: for the guest that is the system-wide limit.
  EMFILE: Errno.ENFILE,
  EDQUOT: Errno.ENOSPC,
  EWOULDBLOCK: Errno.EAGAIN,
  EOPNOTSUPP: Errno.ENOTSUP,
  ETXTBSY: Errno.EACCES,
};

/** The errno a host file API failure stands for (Deno sets `code` to the errno's name). */
export function hostErrno(err: unknown): Errno | undefined {
  const code = (err as { code?: unknown })?.code;
  if (typeof code === "string") {
    if (code in HOST_ERRNO_FALLBACK) return HOST_ERRNO_FALLBACK[code];
    const errno = Errno[code as keyof typeof Errno];
    if (typeof errno === "number" && errno !== Errno.UNSPECIFIED) return errno;
  }
  if (err instanceof Deno.errors.NotCapable || err instanceof Deno.errors.PermissionDenied) {
    return Errno.EACCES;
  }
  return undefined;
}

/** A host file API failure as the guest's error; `what` says what was being done. */
export function hostError(err: unknown, what: string): AstraError {
  if (err instanceof AstraError) return err;
  const errno = hostErrno(err) ?? Errno.EIO;
  const text = err instanceof Error ? err.message : String(err);
  return vfsError(errno, `${what}: ${text}`);
}

/** Runs a host file operation, translating what it throws. */
export function onHost<T>(what: string, op: () => T): T {
  try {
    return op();
  } catch (err) {
    throw hostError(err, what);
  }
}

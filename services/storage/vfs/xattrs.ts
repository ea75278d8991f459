// Extended attributes. No file system here keeps any (Deno's file API has no call for a host
// folder's), so the *xattr calls answer as Linux does on a file system without xattr support:
// the name is checked, then xattr_permission's namespace rules and the security module's, and
// then EOPNOTSUPP; a list of names is empty.
import type { AstraError } from "../../../lib/errors.ts";
import { type Credentials, ownsOrCapable, permits } from "./credentials.ts";
import { Errno, vfsError } from "./errors.ts";
import type { FsStat } from "./filesystem.ts";
import {
  R_OK,
  S_IFDIR,
  S_IFMT,
  S_IFREG,
  S_ISVTX,
  W_OK,
  XATTR_CREATE,
  XATTR_NAME_MAX,
  XATTR_REPLACE,
  XATTR_SIZE_MAX,
} from "./linux.ts";

const decoder = new TextDecoder();

/**
 * An attribute name: 1 to XATTR_NAME_MAX bytes (ERANGE otherwise, as import_xattr_name says).
 * The calls check it before looking the file up.
 */
export function xattrName(bytes: Uint8Array): string {
  if (bytes.length === 0 || bytes.length > XATTR_NAME_MAX) {
    throw vfsError(Errno.ERANGE, `an attribute name is 1 to ${XATTR_NAME_MAX} bytes`, "name");
  }
  return decoder.decode(bytes);
}

/** setxattr's flags: XATTR_CREATE, XATTR_REPLACE (checked first of all, as setxattr_copy does). */
export function checkXattrFlags(flags: number): void {
  if (flags & ~(XATTR_CREATE | XATTR_REPLACE)) {
    throw vfsError(Errno.EINVAL, `flags 0x${flags.toString(16)} has unknown bits`, "flags");
  }
}

/** setxattr's value size, checked after the name. */
export function checkXattrSize(size: number): void {
  if (size > XATTR_SIZE_MAX) {
    throw vfsError(Errno.E2BIG, `a value of ${size} bytes is larger than ${XATTR_SIZE_MAX}`, "size");
  }
}

function isPosixAcl(name: string): boolean {
  return name === "system.posix_acl_access" || name === "system.posix_acl_default";
}

/**
 * How reading (getxattr) or changing (setxattr, removexattr) attribute `name` of a node fails:
 * POSIX ACLs are not supported; trusted.* is root's (ENODATA to read, EPERM to write); user.* is
 * only on regular files and directories, and on a sticky directory only its owner's to change;
 * security.* is root's to change; the rest need read or write permission; then EOPNOTSUPP.
 */
export function xattrRefusal(stat: FsStat, name: string, write: boolean, caller: Credentials): AstraError {
  const refused = (errno: Errno, why: string) => vfsError(errno, why, "name");
  if (isPosixAcl(name)) return refused(Errno.ENOTSUP, "POSIX ACLs are not supported here");
  const type = stat.mode & S_IFMT;
  const root = caller.uid === 0;
  if (name.startsWith("trusted.")) {
    if (!root) return refused(write ? Errno.EPERM : Errno.ENODATA, "trusted.* attributes are root's");
  } else if (name.startsWith("user.")) {
    if (type !== S_IFREG && type !== S_IFDIR) {
      return refused(write ? Errno.EPERM : Errno.ENODATA, "user.* attributes are on files and directories");
    }
    if (write && type === S_IFDIR && (stat.mode & S_ISVTX) && !ownsOrCapable(stat, caller)) {
      return refused(Errno.EPERM, "a sticky directory's user.* attributes are its owner's");
    }
  }
  const exempt = name.startsWith("security.") || name.startsWith("system.") || name.startsWith("trusted.");
  if (!exempt && !permits(stat, write ? W_OK : R_OK, caller)) {
    return refused(Errno.EACCES, `no ${write ? "write" : "read"} permission`);
  }
  if (write && name.startsWith("security.") && name !== "security.capability" && !root) {
    return refused(Errno.EPERM, "security.* attributes are root's to change");
  }
  return refused(Errno.ENOTSUP, "this file system keeps no extended attributes");
}

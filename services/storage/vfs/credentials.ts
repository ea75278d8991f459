// Whose authority guest calls run with: the host process's user and group, which the host kernel
// enforces on a host folder's files, and which the VFS applies itself wherever it decides (access
// and search permission, and the nodes it keeps in memory). Root (uid 0) has every capability.
import { F_OK, S_IFDIR, S_IFMT, X_OK } from "./linux.ts";

export interface Credentials {
  uid: number;
  gid: number;
}

/** Whether `credentials` grant `mode` (R_OK | W_OK | X_OK) on a node, as generic_permission decides. */
export function permits(
  stat: { mode: number; uid: number; gid: number },
  mode: number,
  credentials: Credentials,
): boolean {
  if (mode === F_OK) return true;
  const { uid, gid } = credentials;
  if (uid === 0) {
    // Root may read and write anything, and execute anything with an execute bit.
    return (mode & X_OK) === 0 || (stat.mode & S_IFMT) === S_IFDIR || (stat.mode & 0o111) !== 0;
  }
  const shift = stat.uid === uid ? 6 : stat.gid === gid ? 3 : 0;
  return (((stat.mode >> shift) & 7) & mode) === mode;
}

/** inode_owner_or_capable: the caller owns the node or is root. */
export function ownsOrCapable(stat: { uid: number }, credentials: Credentials): boolean {
  return credentials.uid === 0 || credentials.uid === stat.uid;
}

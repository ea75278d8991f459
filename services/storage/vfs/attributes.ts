// chmod, chown and utimensat on nodes whose attributes the VFS keeps in memory (/dev's nodes,
// pipes): each change checked for the caller and applied as Linux's notify_change and
// setattr_prepare do. A host folder's nodes are changed on the host, whose kernel checks them.
import { type Credentials, ownsOrCapable, permits } from "./credentials.ts";
import { Errno, vfsError } from "./errors.ts";
import type { AttributeChange, TimeChange, Timestamp } from "./filesystem.ts";
import { S_IALLUGO, S_IFDIR, S_IFMT, S_ISGID, S_ISUID, S_IXGRP, W_OK } from "./linux.ts";

/** The attributes of a node kept in memory. */
export interface MemoryAttributes {
  /** st_mode: type and permission bits. */
  mode: number;
  uid: number;
  gid: number;
  accessTime: Timestamp;
  modifyTime: Timestamp;
  changeTime: Timestamp;
}

/** The current time, as every change stamps it. */
export function currentTime(): Timestamp {
  const ms = Date.now();
  return { seconds: Math.floor(ms / 1000), nanoseconds: (ms % 1000) * 1_000_000 };
}

/** in_group_or_capable: whether the caller may keep S_ISGID on a file of group `gid`. */
function inGroupOrCapable(gid: number, caller: Credentials): boolean {
  return caller.uid === 0 || caller.gid === gid;
}

/**
 * Checks `change` for `caller` in Linux's order — may_setattr (a touch without ownership needs
 * write permission: EACCES), then setattr_prepare's ownership rules (EPERM) — and returns the
 * attributes it leaves. chown also drops set-user-ID from a non-directory, and set-group-ID where
 * setattr_should_drop_sgid says so, which needs the right to chmod.
 */
export function checkAttributeChange(
  current: MemoryAttributes,
  change: AttributeChange,
  caller: Credentials,
): MemoryAttributes {
  const now = currentTime();
  const owner = ownsOrCapable(current, caller);
  const capable = caller.uid === 0;
  switch (change.kind) {
    case "mode": {
      if (!owner) throw vfsError(Errno.EPERM, "only the owner may change the mode", "mode");
      let permissions = change.permissions & S_IALLUGO;
      if (!inGroupOrCapable(current.gid, caller)) permissions &= ~S_ISGID;
      return { ...current, mode: (current.mode & S_IFMT) | permissions, changeTime: now };
    }
    case "owner": {
      const { uid, gid } = change;
      const ownerKeeps = caller.uid === current.uid;
      if (uid !== undefined && !capable && !(ownerKeeps && uid === current.uid)) {
        throw vfsError(Errno.EPERM, "only root may give a file away", "owner");
      }
      if (gid !== undefined && !capable && !(ownerKeeps && (gid === current.gid || gid === caller.gid))) {
        throw vfsError(Errno.EPERM, "the owner may only choose one of its own groups", "group");
      }
      let mode = current.mode;
      if ((mode & S_IFMT) !== S_IFDIR) {
        mode &= ~S_ISUID;
        if ((mode & S_ISGID) && ((mode & S_IXGRP) || !inGroupOrCapable(current.gid, caller))) {
          mode &= ~S_ISGID;
        }
      }
      if (mode !== current.mode && !owner) {
        throw vfsError(Errno.EPERM, "dropping set-user-ID needs the right to chmod", "owner");
      }
      return { ...current, mode, uid: uid ?? current.uid, gid: gid ?? current.gid, changeTime: now };
    }
    case "times": {
      const touch = change.access === "now" && change.modify === "now";
      if (touch && !owner && !permits(current, W_OK, caller)) {
        throw vfsError(Errno.EACCES, "setting the times to now needs write permission", "times");
      }
      if (!touch && !owner) throw vfsError(Errno.EPERM, "only the owner may set the times", "times");
      const pick = (time: TimeChange | undefined, kept: Timestamp) => time === "now" ? now : time ?? kept;
      return {
        ...current,
        accessTime: pick(change.access, current.accessTime),
        modifyTime: pick(change.modify, current.modifyTime),
        changeTime: now,
      };
    }
  }
}

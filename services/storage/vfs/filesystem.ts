// What a mounted file system offers the VFS. Paths given to a file system are relative to its
// root, already split into components with no ".", ".." or symbolic link left to interpret: lookup
// is the VFS's, one component at a time, so that no file system can be walked out of.
import type { OpenFile } from "./files.ts";

export interface Timestamp {
  seconds: number;
  nanoseconds: number;
}

/** What stat(2) reports about a node, before the VFS adds where it is mounted. */
export interface FsStat {
  device: number;
  inode: number;
  /** st_mode: type and permission bits. */
  mode: number;
  links: number;
  uid: number;
  gid: number;
  rdev: number;
  size: number;
  blockSize: number;
  /** 512-byte blocks allocated. */
  blocks: number;
  accessTime: Timestamp;
  modifyTime: Timestamp;
  changeTime: Timestamp;
  /** Creation time, where the file system records one. */
  birthTime?: Timestamp;
}

export interface NodeStat extends FsStat {
  mountId: number;
  /** The node is the root of its mount (statx STATX_ATTR_MOUNT_ROOT). */
  mountRoot: boolean;
}

/** A time utimensat sets: a moment, or the current time when the change is made. */
export type TimeChange = Timestamp | "now";

/** What one chmod, chown or utimensat changes; what a change leaves out stays as it is. */
export type AttributeChange =
  /** chmod: the new permission bits (S_IALLUGO). */
  | { kind: "mode"; permissions: number }
  /** chown: the new owner and group; an absent one is kept (-1). */
  | { kind: "owner"; uid?: number; gid?: number }
  /** utimensat: the new access and modification times; an absent one is kept (UTIME_OMIT). */
  | { kind: "times"; access?: TimeChange; modify?: TimeChange };

/** What statfs(2) reports about a file system, but for f_flags (the mount's). */
export interface FsStatistics {
  /** f_type: the file system's magic number. */
  type: number;
  blockSize: number;
  blocks: number;
  freeBlocks: number;
  /** Free blocks an unprivileged user may use. */
  availableBlocks: number;
  files: number;
  freeFiles: number;
  /** f_fsid's two words. */
  id: readonly [number, number];
  nameMax: number;
  fragmentSize: number;
}

/** One name in a directory listing. */
export interface DirectoryEntry {
  name: string;
  inode: number;
  /** d_type (DT_*). */
  type: number;
}

/** A symbolic link's target; `file` when following it reaches an open file, not a path (/proc/<pid>/fd/N). */
export interface LinkTarget {
  target: string;
  file?: OpenFile;
}

/** What /proc shows of a process, and what lookups relative to it need. */
export interface ProcessView {
  readonly pid: number;
  readonly cwd: readonly string[];
  readonly executable: string | undefined;
  descriptors(): Iterable<[number, OpenFile]>;
}

/** A directory kept open: fstat and fsync reach the directory even if its path changes. */
export interface DirectoryHandle {
  stat(): FsStat;
  sync(dataOnly: boolean): void;
  close(): void;
}

export type FileSystemKind = "host-folder" | "devices" | "proc";

export interface FileSystem {
  readonly kind: FileSystemKind;
  /** The host folder, or a name for a synthetic file system. */
  readonly source: string;
  /** The node at `path` itself (lstat): a final symbolic link is not followed. */
  stat(path: readonly string[], caller: ProcessView): FsStat;
  readLink(path: readonly string[], caller: ProcessView): LinkTarget;
  /** The names in a directory, without "." and "..". */
  list(path: readonly string[], caller: ProcessView): DirectoryEntry[];
  openDirectory(path: readonly string[], caller: ProcessView): DirectoryHandle;
  /** Opens an existing node that is not a directory; `flags` are already checked against its type. */
  open(path: readonly string[], stat: FsStat, flags: number, caller: ProcessView): OpenFile;
  /** Creates and opens a regular file that does not exist yet, with exactly `mode`. */
  create(path: readonly string[], flags: number, mode: number): OpenFile;
  makeDirectory(path: readonly string[], mode: number): void;
  unlink(path: readonly string[]): void;
  removeDirectory(path: readonly string[]): void;
  /** rename(2): replaces what `to` names. */
  rename(from: readonly string[], to: readonly string[]): void;
  /** RENAME_EXCHANGE: both exist; they swap names. */
  exchange(a: readonly string[], b: readonly string[]): void;
  truncate(path: readonly string[], length: number): void;
  /**
   * chmod, chown or utimensat of the node at `path` itself (a final symbolic link is not
   * followed). The file system checks the caller's right to make the change.
   */
  changeAttributes(path: readonly string[], change: AttributeChange): void;
  /** Creates a symbolic link to `target` at `path`, which does not exist. */
  symlink(path: readonly string[], target: string): void;
  /** Makes `to`, which does not exist, another name of `from`, which is not a directory. */
  link(from: readonly string[], to: readonly string[]): void;
  /** statfs(2). */
  statistics(): FsStatistics;
}

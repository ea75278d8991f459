// Open file descriptions: what a descriptor refers to. dup and fork share one description (its
// offset and status flags) between descriptors; the description lives until the last descriptor
// referring to it is closed. Each kind of object (host file, directory, pipe end, stream, device,
// O_PATH location) answers the operations it supports and fails the others with Linux's errno.
import type { Credentials } from "./credentials.ts";
import { Errno, vfsError } from "./errors.ts";
import type {
  AttributeChange,
  DirectoryEntry,
  DirectoryHandle,
  FsStatistics,
  NodeStat,
} from "./filesystem.ts";
import { direntRecordBytes, encodeDirents, type PositionedEntry } from "./layouts.ts";
import {
  NAME_MAX,
  O_ACCMODE,
  O_PATH,
  O_RDONLY,
  O_RDWR,
  O_WRONLY,
  PAGE_SIZE,
  POLLIN,
  POLLOUT,
  POLLRDNORM,
  POLLWRNORM,
  SEEK_CUR,
  SEEK_END,
  SEEK_SET,
} from "./linux.ts";
import { joinPath } from "./paths.ts";

export type Awaitable<T> = T | Promise<T>;

export type FileKind = "regular" | "directory" | "pipe" | "stream" | "device" | "path";

/** The result of getdents64: the entries that fit and their linux_dirent64 records. */
export interface DirectoryRead {
  entries: PositionedEntry[];
  records: Uint8Array;
}

/** The result of an ioctl: r3, and the structure to write back to the argument's address. */
export interface IoctlResult {
  result: number;
  output?: Uint8Array;
}

/** Largest transfer of one read or write: what one message can carry, with room to spare. */
export const MAX_IO_BYTES = 8 * 1024 * 1024;

/** What poll(2) reports for a file that never makes a reader or writer wait (DEFAULT_POLLMASK). */
const ALWAYS_READY = POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM;

/** simple_statfs: what a kernel-internal file system (pipefs, sockfs, devpts) reports. */
export function pseudoStatistics(type: number): FsStatistics {
  return {
    type,
    blockSize: PAGE_SIZE,
    blocks: 0,
    freeBlocks: 0,
    availableBlocks: 0,
    files: 0,
    freeFiles: 0,
    id: [0, 0],
    nameMax: NAME_MAX,
    fragmentSize: PAGE_SIZE,
  };
}

/** A promise that settles only when `signal` aborts: the wait of something that never changes. */
export function untilAborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((_, reject) =>
    signal.addEventListener("abort", () => reject(signal.reason), { once: true })
  );
}

export abstract class OpenFile {
  abstract readonly kind: FileKind;
  /** The file offset, shared by every descriptor on this description. */
  offset = 0;
  /** The guest path it was opened by: /proc/<pid>/fd, fchdir and *at lookups use it. */
  path: readonly string[] | undefined;
  mountId = 0;
  mountRoot = false;
  #references = 0;
  #closeHooks: (() => void)[] = [];

  /** `flags`: what F_GETFL answers, the access mode and the status flags. */
  constructor(public flags: number) {}

  get isPath(): boolean {
    return (this.flags & O_PATH) !== 0;
  }

  get readable(): boolean {
    const mode = this.flags & O_ACCMODE;
    return !this.isPath && (mode === O_RDONLY || mode === O_RDWR);
  }

  get writable(): boolean {
    const mode = this.flags & O_ACCMODE;
    return !this.isPath && (mode === O_WRONLY || mode === O_RDWR);
  }

  /** Descriptors and kernel holds (held.ts) referring to it; it closes when they are gone. */
  get references(): number {
    return this.#references;
  }

  retain(): void {
    this.#references++;
  }

  /** Drops one descriptor's reference; the last one releases the object. */
  release(): void {
    if (--this.#references === 0) this.#end();
  }

  /** Releases a description that no descriptor ever came to hold (its open failed later on). */
  discard(): void {
    if (this.#references === 0) this.#end();
  }

  /** Runs `hook` once the description is released (flock's locks end with it). */
  whenClosed(hook: () => void): void {
    this.#closeHooks.push(hook);
  }

  #end(): void {
    this.close();
    for (const hook of this.#closeHooks.splice(0)) hook();
  }

  /** What readlink of /proc/<pid>/fd/N shows. */
  linkTarget(): string {
    return this.path ? joinPath(this.path) : "anon_inode:[unknown]";
  }

  /** Adds the mount this description's node lives on. */
  protected mounted(stat: Omit<NodeStat, "mountId" | "mountRoot">): NodeStat {
    return { ...stat, mountId: this.mountId, mountRoot: this.mountRoot };
  }

  abstract stat(): NodeStat;

  read(_count: number, _signal: AbortSignal): Awaitable<Uint8Array> {
    throw vfsError(Errno.EINVAL, `a ${this.kind} cannot be read`, "fd");
  }

  write(_data: Uint8Array, _signal: AbortSignal): Awaitable<number> {
    throw vfsError(Errno.EINVAL, `a ${this.kind} cannot be written`, "fd");
  }

  readAt(_count: number, _offset: number): Uint8Array {
    throw vfsError(Errno.ESPIPE, `a ${this.kind} has no file offset`, "fd");
  }

  writeAt(_data: Uint8Array, _offset: number): number {
    throw vfsError(Errno.ESPIPE, `a ${this.kind} has no file offset`, "fd");
  }

  seek(_offset: number, _whence: number): number {
    throw vfsError(Errno.ESPIPE, `a ${this.kind} cannot seek`, "fd");
  }

  truncate(_length: number): void {
    throw vfsError(Errno.EINVAL, `a ${this.kind} cannot be truncated`, "fd");
  }

  sync(_dataOnly: boolean): void {
    throw vfsError(Errno.EINVAL, `a ${this.kind} cannot be synced`, "fd");
  }

  readDirectory(_maxBytes: number): DirectoryRead {
    throw vfsError(Errno.ENOTDIR, `a ${this.kind} is not a directory`, "fd");
  }

  /** Bytes that a read would return now (FIONREAD); undefined where the request does not apply. */
  readableBytes(): number | undefined {
    return undefined;
  }

  /** poll(2)'s events that hold now: by default those of a file that never waits. */
  pollEvents(): number {
    return ALWAYS_READY;
  }

  /** Settles when what pollEvents answers may have changed (rejects when `signal` aborts). */
  pollChange(signal: AbortSignal): Promise<void> {
    return untilAborted(signal);
  }

  /** fstatfs of an object on no mount (a pipe, a standard stream); those on one ask its file system. */
  fileSystemStatistics(): FsStatistics {
    throw vfsError(Errno.ENOSYS, `a ${this.kind} is on no file system`, "fd");
  }

  /**
   * chmod, chown or utimensat through a descriptor whose object is on no mount (a pipe, a
   * standard stream): the VFS changes objects that are on a mount through their file system.
   */
  changeAttributes(_change: AttributeChange, _caller: Credentials): void {
    throw vfsError(Errno.EPERM, `the attributes of a ${this.kind} outside the VFS cannot change`, "fd");
  }

  /** Requests specific to the object (terminal requests); the generic ones are the VFS's. */
  ioctl(request: number, _argument: bigint, _input: Uint8Array | undefined): Awaitable<IoctlResult> {
    throw vfsError(
      Errno.ENOTTY,
      `ioctl 0x${request.toString(16)} does not apply to a ${this.kind}`,
      "request",
    );
  }

  /** Called once, when the last descriptor is closed. */
  protected close(): void {}
}

/** Checks and applies a new file offset the way generic_file_llseek does. */
export function seekTarget(current: number, size: () => number, offset: number, whence: number): number {
  let target: number;
  switch (whence) {
    case SEEK_SET:
      target = offset;
      break;
    case SEEK_CUR:
      target = current + offset;
      break;
    case SEEK_END:
      target = size() + offset;
      break;
    default:
      throw vfsError(Errno.EINVAL, `whence ${whence} is not SEEK_SET, SEEK_CUR or SEEK_END`, "whence");
  }
  if (target < 0) throw vfsError(Errno.EINVAL, `offset ${target} is negative`, "offset");
  if (target > Number.MAX_SAFE_INTEGER) {
    throw vfsError(Errno.EINVAL, `offset ${target} is past the largest file size`, "offset");
  }
  return target;
}

/**
 * An open directory: getdents64 walks a snapshot of its entries taken when reading starts at
 * offset 0, so entries added or removed meanwhile neither repeat nor disappear; d_off is the
 * position after an entry, and lseek to it resumes there.
 */
export class DirectoryFile extends OpenFile {
  readonly kind = "directory";
  #entries: DirectoryEntry[] | undefined;

  constructor(
    flags: number,
    private readonly handle: DirectoryHandle,
    private readonly list: () => DirectoryEntry[],
  ) {
    super(flags);
  }

  stat(): NodeStat {
    return this.mounted(this.handle.stat());
  }

  override read(): Uint8Array {
    throw vfsError(Errno.EISDIR, "a directory is read with getdents64", "fd");
  }

  override seek(offset: number, whence: number): number {
    if (whence !== SEEK_SET && whence !== SEEK_CUR) {
      throw vfsError(Errno.EINVAL, "a directory seeks only with SEEK_SET or SEEK_CUR", "whence");
    }
    this.offset = seekTarget(this.offset, () => 0, offset, whence);
    return this.offset;
  }

  override sync(dataOnly: boolean): void {
    this.handle.sync(dataOnly);
  }

  override readDirectory(maxBytes: number): DirectoryRead {
    if (this.offset === 0 || this.#entries === undefined) this.#entries = this.list();
    const entries: PositionedEntry[] = [];
    let used = 0;
    for (let index = this.offset; index < this.#entries.length; index++) {
      const entry = this.#entries[index];
      const length = direntRecordBytes(entry.name);
      if (used + length > maxBytes) break;
      used += length;
      entries.push({ ...entry, nextOffset: index + 1 });
    }
    if (entries.length === 0 && this.offset < this.#entries.length) {
      throw vfsError(Errno.EINVAL, `a buffer of ${maxBytes} bytes cannot hold the next entry`, "count");
    }
    if (entries.length) this.offset = entries[entries.length - 1].nextOffset;
    return { entries, records: encodeDirents(entries) };
  }

  protected override close(): void {
    this.handle.close();
  }
}

/** An O_PATH descriptor: a location for *at lookups, fstat, fchdir and readlinkat, no I/O. */
export class PathFile extends OpenFile {
  readonly kind = "path";

  constructor(
    flags: number,
    private readonly statNode: () => Omit<NodeStat, "mountId" | "mountRoot">,
    /** The target when the location is a symbolic link opened with O_NOFOLLOW. */
    readonly symlinkTarget: string | undefined,
  ) {
    super(flags);
  }

  stat(): NodeStat {
    return this.mounted(this.statNode());
  }
}

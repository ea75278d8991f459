// The host-folder file system: a folder of the host mounted into the guest (`astra run --root DIR`
// mounts DIR at "/"). Every operation is one of Deno's synchronous file calls on the host path the
// VFS resolved component by component, so a guest call is atomic with respect to every other guest
// call, and the guest's credentials are the host process's: the host kernel checks permissions.
// FIFOs, sockets and device nodes inside the folder are not opened (ENXIO): opening one would
// block the service or reach the host's own devices. Deno's file API keeps and reports times to
// the millisecond, so that is the precision of times here; and it has no call for extended
// attributes, so the folder is a file system without them.
import * as nodeFs from "node:fs";
import { Errno, hostError, onHost, vfsError } from "./errors.ts";
import type {
  AttributeChange,
  DirectoryEntry,
  DirectoryHandle,
  FileSystem,
  FsStat,
  FsStatistics,
  NodeStat,
  TimeChange,
  Timestamp,
} from "./filesystem.ts";
import { MAX_IO_BYTES, OpenFile, seekTarget } from "./files.ts";
import {
  deviceMajor,
  deviceMinor,
  direntType,
  NAME_MAX,
  O_ACCMODE,
  O_APPEND,
  O_RDONLY,
  O_WRONLY,
  S_IFMT,
  S_IFREG,
  SEEK_DATA,
  SEEK_HOLE,
} from "./linux.ts";

const EMPTY = new Uint8Array(0);
/** Reads up to this size allocate their buffer without asking for the file's size first. */
const SMALL_READ_BYTES = 64 * 1024;

function timestamp(date: Date | null): Timestamp {
  const ms = date?.getTime() ?? 0;
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanoseconds: (ms - seconds * 1000) * 1_000_000 };
}

/**
 * A time as the host takes it. Deno turns a negative instant with a fraction of a second into an
 * invalid timespec, so before 1970 only whole seconds (tv_sec, which Linux keeps) are given.
 */
function hostTime(time: TimeChange): Date {
  if (time === "now") return new Date();
  const fraction = time.seconds < 0 ? 0 : Math.floor(time.nanoseconds / 1_000_000);
  // Date holds ±8.64e15 ms; a time beyond it is clamped there (the host clamps to its own range).
  return new Date(Math.max(-8.64e15, Math.min(8.64e15, time.seconds * 1000 + fraction)));
}

/** A host stat in the guest's terms. Deno reports times to the millisecond. */
export function fsStatOf(info: Deno.FileInfo): FsStat {
  return {
    device: info.dev,
    inode: info.ino ?? 0,
    mode: info.mode ?? 0,
    links: info.nlink ?? 1,
    uid: info.uid ?? 0,
    gid: info.gid ?? 0,
    rdev: info.rdev ?? 0,
    size: info.size,
    blockSize: info.blksize ?? 4096,
    blocks: info.blocks ?? 0,
    accessTime: timestamp(info.atime),
    modifyTime: timestamp(info.mtime),
    changeTime: timestamp(info.ctime),
    birthTime: info.birthtime ? timestamp(info.birthtime) : undefined,
  };
}

/** A regular file of a host folder, open through one host handle whose offset the VFS drives. */
export class HostFile extends OpenFile {
  readonly kind = "regular";
  /** Where the host handle's own offset is; moved only when an access needs another place. */
  #hostOffset = 0;

  constructor(flags: number, private readonly file: Deno.FsFile) {
    super(flags);
  }

  stat(): NodeStat {
    return this.mounted(onHost("fstat", () => fsStatOf(this.file.statSync())));
  }

  #size(): number {
    return onHost("fstat", () => this.file.statSync().size);
  }

  #moveTo(position: number): void {
    if (this.#hostOffset === position) return;
    onHost("lseek", () => this.file.seekSync(position, Deno.SeekMode.Start));
    this.#hostOffset = position;
  }

  override read(count: number): Uint8Array {
    const data = this.readAt(count, this.offset);
    this.offset += data.length;
    return data;
  }

  override readAt(count: number, offset: number): Uint8Array {
    let wanted = Math.min(count, MAX_IO_BYTES);
    if (wanted > SMALL_READ_BYTES) wanted = Math.max(0, Math.min(wanted, this.#size() - offset));
    if (wanted === 0) return EMPTY;
    this.#moveTo(offset);
    const buffer = new Uint8Array(wanted);
    let got = 0;
    while (got < wanted) {
      const n = onHost("read", () => this.file.readSync(buffer.subarray(got)));
      if (n === null || n === 0) break;
      got += n;
      this.#hostOffset += n;
    }
    return buffer.subarray(0, got);
  }

  override write(data: Uint8Array): number {
    if (this.flags & O_APPEND) this.offset = this.#size();
    const written = this.writeAt(data, this.offset);
    this.offset += written;
    return written;
  }

  /** pwrite64; on an O_APPEND description Linux appends whatever the offset says, and so does this. */
  override writeAt(data: Uint8Array, offset: number): number {
    if (data.length === 0) return 0;
    const at = this.flags & O_APPEND ? this.#size() : offset;
    if (at + data.length > Number.MAX_SAFE_INTEGER) {
      throw vfsError(Errno.EFBIG, "write past the largest file size", "offset");
    }
    this.#moveTo(at);
    let written = 0;
    while (written < data.length) {
      const n = onHost("write", () => this.file.writeSync(data.subarray(written)));
      written += n;
      this.#hostOffset += n;
    }
    return written;
  }

  override seek(offset: number, whence: number): number {
    if (whence === SEEK_DATA || whence === SEEK_HOLE) {
      // Without hole information the whole file is data, as generic_file_llseek answers.
      const size = this.#size();
      if (offset < 0 || offset >= size) throw vfsError(Errno.ENXIO, "offset is at or past the end", "offset");
      this.offset = whence === SEEK_DATA ? offset : size;
      return this.offset;
    }
    this.offset = seekTarget(this.offset, () => this.#size(), offset, whence);
    return this.offset;
  }

  override truncate(length: number): void {
    onHost("ftruncate", () => this.file.truncateSync(length));
  }

  override sync(dataOnly: boolean): void {
    onHost(
      dataOnly ? "fdatasync" : "fsync",
      () => dataOnly ? this.file.syncDataSync() : this.file.syncSync(),
    );
  }

  override readableBytes(): number {
    return Math.max(0, this.#size() - this.offset);
  }

  protected override close(): void {
    this.file.close();
  }
}

function hostAccess(flags: number): { read: boolean; write: boolean } {
  const mode = flags & O_ACCMODE;
  // Access mode 3 asks for read and write permission and allows neither (ioctl-only opens).
  return { read: mode !== O_WRONLY, write: mode !== O_RDONLY };
}

export class HostFolderFileSystem implements FileSystem {
  readonly kind = "host-folder";
  /** The host folder, as an absolute path without symbolic links. */
  readonly source: string;

  constructor(hostFolder: string) {
    this.source = onHost("mount", () => Deno.realPathSync(hostFolder));
    const info = onHost("mount", () => Deno.statSync(this.source));
    if (!info.isDirectory) throw vfsError(Errno.ENOTDIR, `${hostFolder} is not a folder`, "host_path");
  }

  #host(path: readonly string[]): string {
    return path.length === 0 ? this.source : `${this.source}/${path.join("/")}`;
  }

  stat(path: readonly string[]): FsStat {
    return onHost("lstat", () => fsStatOf(Deno.lstatSync(this.#host(path))));
  }

  readLink(path: readonly string[]): { target: string } {
    return { target: onHost("readlink", () => Deno.readLinkSync(this.#host(path))) };
  }

  list(path: readonly string[]): DirectoryEntry[] {
    const folder = this.#host(path);
    const entries: DirectoryEntry[] = [];
    for (const entry of onHost("getdents64", () => [...Deno.readDirSync(folder)])) {
      try {
        const info = Deno.lstatSync(`${folder}/${entry.name}`);
        entries.push({ name: entry.name, inode: info.ino ?? 0, type: direntType(info.mode ?? 0) });
      } catch {
        // Removed on the host between listing and lstat: no longer an entry.
      }
    }
    return entries;
  }

  openDirectory(path: readonly string[]): DirectoryHandle {
    const file = onHost("open", () => Deno.openSync(this.#host(path), { read: true }));
    return {
      stat: () => onHost("fstat", () => fsStatOf(file.statSync())),
      sync: (dataOnly) => onHost("fsync", () => dataOnly ? file.syncDataSync() : file.syncSync()),
      close: () => file.close(),
    };
  }

  open(path: readonly string[], stat: FsStat, flags: number): OpenFile {
    if ((stat.mode & S_IFMT) !== S_IFREG) {
      throw vfsError(Errno.ENXIO, "FIFOs, sockets and device nodes of a host folder are not opened", "path");
    }
    const file = onHost("open", () => Deno.openSync(this.#host(path), hostAccess(flags)));
    return new HostFile(flags, file);
  }

  create(path: readonly string[], flags: number, mode: number): OpenFile {
    const host = this.#host(path);
    // The host's own umask must not apply: the guest's has been applied to `mode` already. The
    // handle is opened for writing (creating requires it) whatever the guest's access mode: the
    // description's flags decide what the guest may do, as Linux lets a creator use a 0444 file.
    const file = onHost(
      "open",
      () => Deno.openSync(host, { ...hostAccess(flags), write: true, createNew: true }),
    );
    try {
      Deno.chmodSync(host, mode);
    } catch (err) {
      file.close();
      throw hostError(err, "chmod");
    }
    return new HostFile(flags, file);
  }

  makeDirectory(path: readonly string[], mode: number): void {
    const host = this.#host(path);
    onHost("mkdir", () => Deno.mkdirSync(host));
    onHost("chmod", () => Deno.chmodSync(host, mode));
  }

  unlink(path: readonly string[]): void {
    onHost("unlink", () => Deno.removeSync(this.#host(path)));
  }

  removeDirectory(path: readonly string[]): void {
    onHost("rmdir", () => Deno.removeSync(this.#host(path)));
  }

  rename(from: readonly string[], to: readonly string[]): void {
    onHost("rename", () => Deno.renameSync(this.#host(from), this.#host(to)));
  }

  exchange(a: readonly string[], b: readonly string[]): void {
    // Deno has no renameat2: three renames through a free name beside `a`; no guest call can run
    // in between, and a failure in the middle puts `a` back.
    const parked = [...a.slice(0, -1), `.astra-exchange-${crypto.randomUUID()}`];
    this.rename(a, parked);
    try {
      this.rename(b, a);
    } catch (err) {
      this.rename(parked, a);
      throw err;
    }
    this.rename(parked, b);
  }

  truncate(path: readonly string[], length: number): void {
    onHost("truncate", () => Deno.truncateSync(this.#host(path), length));
  }

  /** Changed on the host, which checks the service's right to (EPERM as for any caller). */
  changeAttributes(path: readonly string[], change: AttributeChange): void {
    const host = this.#host(path);
    switch (change.kind) {
      case "mode":
        onHost("chmod", () => Deno.chmodSync(host, change.permissions));
        return;
      case "owner":
        onHost("lchown", () => nodeFs.lchownSync(host, change.uid ?? -1, change.gid ?? -1));
        return;
      case "times": {
        // An omitted time is written back as the host reports it.
        const kept = change.access && change.modify ? undefined : onHost("lstat", () => Deno.lstatSync(host));
        const atime = change.access ? hostTime(change.access) : kept?.atime ?? new Date(0);
        const mtime = change.modify ? hostTime(change.modify) : kept?.mtime ?? new Date(0);
        onHost("utimensat", () => nodeFs.lutimesSync(host, atime, mtime));
        return;
      }
    }
  }

  symlink(path: readonly string[], target: string): void {
    try {
      Deno.symlinkSync(target, this.#host(path));
    } catch (err) {
      // Deno makes links only with unscoped read and write permission, which a service limited to
      // its folders lacks: the folder is then a file system that makes no symbolic links.
      if (err instanceof Deno.errors.NotCapable) {
        throw vfsError(Errno.EPERM, "this service may not make symbolic links on the host", "path");
      }
      throw hostError(err, "symlink");
    }
  }

  link(from: readonly string[], to: readonly string[]): void {
    onHost("link", () => Deno.linkSync(this.#host(from), this.#host(to)));
  }

  /** The host file system's; f_fsid is its device number (huge_encode_dev), as ext2 reports it. */
  statistics(): FsStatistics {
    let host: nodeFs.StatsFs;
    try {
      host = nodeFs.statfsSync(this.source);
    } catch (err) {
      // Without the "statfs" system permission the host file system cannot be asked: answered as
      // a file system that does not support statfs.
      if (err instanceof Deno.errors.NotCapable) {
        throw vfsError(Errno.ENOSYS, "this service may not ask the host for statfs", "path");
      }
      throw hostError(err, "statfs");
    }
    const device = onHost("stat", () => Deno.statSync(this.source).dev);
    const major = deviceMajor(device), minor = deviceMinor(device);
    return {
      type: host.type,
      blockSize: host.bsize,
      blocks: host.blocks,
      freeBlocks: host.bfree,
      availableBlocks: host.bavail,
      files: host.files,
      freeFiles: host.ffree,
      id: [((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0, 0],
      nameMax: NAME_MAX,
      fragmentSize: host.bsize,
    };
  }
}

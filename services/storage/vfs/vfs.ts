// The VFS: per-process descriptor tables, working directories and umasks over the mount table,
// and every file system call of the guest ABI with Linux's semantics and errno. Calls are named
// after their system calls and take the calling pid first; paths are the guest's bytes. Checks
// run in the order Linux makes them, so a call that is wrong in two ways fails the way Linux's
// does. Everything but waiting (on a pipe, a stream, a lock, for readiness) is synchronous: no
// other guest call can run in the middle of one.
import { AstraError } from "../../../lib/errors.ts";
import { permits } from "./credentials.ts";
import { DescriptorTable } from "./descriptors.ts";
import { DevicesFileSystem } from "./devfs.ts";
import { Errno, vfsError } from "./errors.ts";
import type {
  AttributeChange,
  DirectoryEntry,
  FileSystemKind,
  FsStatistics,
  NodeStat,
  ProcessView,
  TimeChange,
  Timestamp,
} from "./filesystem.ts";
import { FlockTable } from "./flocks.ts";
import {
  DirectoryFile,
  type DirectoryRead,
  type IoctlResult,
  MAX_IO_BYTES,
  type OpenFile,
  PathFile,
} from "./files.ts";
import { HeldFileTable } from "./held.ts";
import { HostFolderFileSystem } from "./hostfs.ts";
import { encodeInt32, encodeInt64 } from "./layouts.ts";
import {
  AT_EACCESS,
  AT_EMPTY_PATH,
  AT_FDCWD,
  AT_NO_AUTOMOUNT,
  AT_REMOVEDIR,
  AT_STATX_SYNC_TYPE,
  AT_SYMLINK_FOLLOW,
  AT_SYMLINK_NOFOLLOW,
  CLOSE_RANGE_CLOEXEC,
  CLOSE_RANGE_UNSHARE,
  DEFAULT_DESCRIPTOR_LIMIT,
  DT_DIR,
  F_DUPFD,
  F_DUPFD_CLOEXEC,
  F_GETFD,
  F_GETFL,
  F_GETPIPE_SZ,
  F_SETFD,
  F_SETFL,
  F_SETPIPE_SZ,
  FALLOC_FL_COLLAPSE_RANGE,
  FALLOC_FL_INSERT_RANGE,
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_MODE_MASK,
  FALLOC_FL_PUNCH_HOLE,
  FALLOC_FL_UNSHARE_RANGE,
  FALLOC_FL_WRITE_ZEROES,
  FALLOC_FL_ZERO_RANGE,
  FD_CLOEXEC,
  FIGETBSZ,
  FIOASYNC,
  FIOCLEX,
  FIONBIO,
  FIONCLEX,
  FIONREAD,
  FIOQSIZE,
  LOCK_EX,
  LOCK_MAND,
  LOCK_NB,
  LOCK_SH,
  LOCK_UN,
  O_ACCMODE,
  O_APPEND,
  O_CLOEXEC,
  O_CREAT,
  O_DIRECT,
  O_DIRECTORY,
  O_EXCL,
  O_LARGEFILE,
  O_NOFOLLOW,
  O_NONBLOCK,
  O_PATH,
  O_RDONLY,
  O_RDWR,
  O_TMPFILE,
  O_TRUNC,
  O_WRONLY,
  OPEN_ONLY_FLAGS,
  POSIX_FADV_NOREUSE,
  R_OK,
  RENAME_EXCHANGE,
  RENAME_NOREPLACE,
  RENAME_WHITEOUT,
  S_IALLUGO,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  S_IFSOCK,
  S_IRWXUGO,
  S_ISVTX,
  SEEK_HOLE,
  SEEK_SET,
  SETFL_MASK,
  ST_RDONLY,
  ST_VALID,
  STATX_BASIC_STATS,
  STATX_BTIME,
  STATX_MNT_ID,
  STATX_RESERVED,
  SYNC_FILE_RANGE_WAIT_AFTER,
  SYNC_FILE_RANGE_WAIT_BEFORE,
  SYNC_FILE_RANGE_WRITE,
  UIO_MAXIOV,
  UTIME_NOW,
  UTIME_OMIT,
  VALID_OPEN_FLAGS,
  W_OK,
  X_OK,
} from "./linux.ts";
import {
  isDirectory,
  isSymlink,
  isWithin,
  type Location,
  type MissingLocation,
  type Mount,
  MountNamespace,
  type NodeLocation,
} from "./namespace.ts";
import { joinPath, parsePath, pathBytes, pathText } from "./paths.ts";
import { Pipe, PipeFile } from "./pipe.ts";
import { type StdStreams, StreamFile } from "./streams.ts";
import { ProcFileSystem } from "./procfs.ts";
import {
  isInSet,
  type PollRequest,
  pollRound,
  selectRound,
  type SelectSets,
  whenReady,
} from "./readiness.ts";
import { xattrRefusal } from "./xattrs.ts";

/** How a new process gets its descriptor table. */
export type Inheritance = "copy" | "share" | "new";

export interface AttachOptions {
  /** The parent, for "copy" and "share" (and the working directory, umask and executable). */
  parentPid?: number;
  inheritance: Inheritance;
  /** For a process that inherits nothing: its working directory (default "/") and umask (default 022). */
  workingDirectory?: Uint8Array | string;
  umask?: number;
  /** A new table starts with descriptors 0, 1 and 2 on the standard streams. */
  stdio?: boolean;
}

export interface VfsOptions {
  /** What descriptors 0, 1 and 2 of a first process, and /dev/console, are connected to. */
  stdio: StdStreams;
  /** RLIMIT_NOFILE of every descriptor table. */
  descriptorLimit?: number;
}

export interface MountSummary {
  id: number;
  mountPoint: string;
  kind: FileSystemKind;
  source: string;
  readOnly: boolean;
}

export interface VfsStatistics {
  processes: number;
  openDescriptors: number;
  /** Open file descriptions, each counted once however many descriptors share it. */
  openFiles: number;
  pipes: number;
  mounts: MountSummary[];
  calls: number;
  errors: number;
  bytesRead: number;
  bytesWritten: number;
}

/** An open file description a kernel peer holds, and what the holder needs to know of its file. */
export interface HeldFileInfo {
  id: bigint;
  /** The canonical guest path it was opened by. */
  path: string;
  stat: NodeStat;
  readable: boolean;
  writable: boolean;
}

/** Most bytes one ReadOpenFile or WriteOpenFile moves. */
export const MAX_HELD_IO_BYTES = 16 * 1024 * 1024;

/** What statx fills in, with the mask it reports. */
export interface StatxResult {
  stat: NodeStat;
  mask: number;
}

/** What statfs reports: the file system's statistics and the mount's flags. */
export interface MountStatistics extends FsStatistics {
  flags: number;
}

/** The file an *xattr call is about: a path (its last link followed or not), or a descriptor. */
export type XattrTarget = { path: Uint8Array | string; follow: boolean } | { fd: number };

/** A loff_t pointer argument read when the call gets to it: undefined when it is NULL. */
export type OffsetArgument = () => number | undefined;

export interface CopyResult {
  copied: number;
  inOffset: number;
  outOffset: number;
}

/** Where a call that makes a name puts it. */
interface NewName {
  parent: NodeLocation;
  path: string[];
  mount: Mount;
  relative: string[];
}

const DEFAULT_UMASK = 0o022;

class GuestProcess implements ProcessView {
  /** Aborted when the process detaches: its waiting calls end with EINTR. */
  readonly exit = new AbortController();

  constructor(
    readonly pid: number,
    public table: DescriptorTable,
    public cwd: string[],
    public umask: number,
    public executable: string | undefined,
  ) {}

  *descriptors(): Iterable<[number, OpenFile]> {
    for (const [fd, slot] of this.table.entries()) yield [fd, slot.file];
  }
}

/** The view of lookups made for the system itself (mounting), outside any process. */
const KERNEL: ProcessView = { pid: 0, cwd: [], executable: undefined, descriptors: () => [] };

function now(): Timestamp {
  const ms = Date.now();
  return { seconds: Math.floor(ms / 1000), nanoseconds: (ms % 1000) * 1_000_000 };
}

function isErrno(err: unknown, errno: Errno): boolean {
  return err instanceof AstraError && err.errno === errno;
}

/** The flags F_GETFL shows for a description opened with `flags`. */
function descriptionFlags(flags: number): number {
  if (flags & O_PATH) return flags & (O_PATH | O_DIRECTORY | O_NOFOLLOW);
  // On a 64-bit kernel every open is a large-file open.
  return (flags & ~OPEN_ONLY_FLAGS) | O_LARGEFILE;
}

export class Vfs {
  readonly namespace = new MountNamespace();
  /** Calls and failed calls are counted by whoever serves the calls; bytes here. */
  readonly counters = { calls: 0, errors: 0, bytesRead: 0, bytesWritten: 0 };
  /** The guest runs with the host process's credentials; the host kernel enforces them. */
  readonly credentials: { uid: number; gid: number };
  readonly #processes = new Map<number, GuestProcess>();
  readonly #held = new HeldFileTable();
  readonly #flocks = new FlockTable();
  readonly #stdio: StdStreams;
  /** RLIMIT_NOFILE of every descriptor table (poll's limit on nfds). */
  readonly descriptorLimit: number;
  #nextPipeInode = 1;

  constructor(options: VfsOptions) {
    this.#stdio = options.stdio;
    this.descriptorLimit = options.descriptorLimit ?? DEFAULT_DESCRIPTOR_LIMIT;
    this.credentials = { uid: Deno.uid() ?? 0, gid: Deno.gid() ?? 0 };
    const started = now();
    this.namespace.mount(["dev"], new DevicesFileSystem(options.stdio, started, this.credentials), false);
    this.namespace.mount(["proc"], new ProcFileSystem(this.#processes, this.credentials, started), false);
  }

  // ---- mounts and processes ----

  /** Mounts host folder `hostPath` at guest path `mountPoint` ("/" for the root). */
  mountHostFolder(hostPath: string, mountPoint: Uint8Array | string = "/", readOnly = false): Mount {
    const parsed = parsePath(pathText(mountPoint, "mount_point"), "mount_point");
    if (!parsed.absolute) {
      throw vfsError(Errno.EINVAL, "the mount point must be an absolute path", "mount_point");
    }
    let point: string[] = [];
    if (parsed.components.length) {
      const location = this.namespace.walk(KERNEL, [], parsed, true);
      if (location.kind !== "node") {
        throw vfsError(
          Errno.ENOENT,
          `mount point ${joinPath(parsed.components)} does not exist`,
          "mount_point",
        );
      }
      if (!isDirectory(location.stat)) {
        throw vfsError(
          Errno.ENOTDIR,
          `mount point ${joinPath(location.path)} is not a directory`,
          "mount_point",
        );
      }
      point = location.path;
    }
    return this.namespace.mount(point, new HostFolderFileSystem(hostPath), readOnly);
  }

  /** Registers a process (from sched); returns how many descriptors its table holds. */
  attachProcess(pid: number, options: AttachOptions): number {
    if (this.#processes.has(pid)) throw vfsError(Errno.EEXIST, `process ${pid} is already attached`, "pid");
    if (options.inheritance === "new") {
      const cwdText = pathText(options.workingDirectory ?? "/", "working_directory") || "/";
      const cwd = this.namespace.walk(KERNEL, [], {
        ...parsePath(cwdText, "working_directory"),
        absolute: true,
      }, true);
      if (cwd.kind !== "node") {
        throw vfsError(Errno.ENOENT, `working directory ${cwdText} does not exist`, "working_directory");
      }
      if (!isDirectory(cwd.stat)) {
        throw vfsError(Errno.ENOTDIR, `working directory ${cwdText} is not a directory`, "working_directory");
      }
      const table = new DescriptorTable(this.descriptorLimit);
      if (options.stdio) {
        const { stdin, stdout, stderr } = this.#stdio;
        [stdin, stdout, stderr].forEach((endpoint, fd) => {
          const access = endpoint.input && endpoint.output ? O_RDWR : endpoint.input ? O_RDONLY : O_WRONLY;
          table.installAt(fd, new StreamFile(access, endpoint), false);
        });
        // The first process on the terminal leads its session and is its foreground group, as a
        // program started by `astra run` is; TIOCSPGRP moves the foreground later.
        const terminal = stdin.terminal ?? stdout.terminal ?? stderr.terminal;
        if (terminal && terminal.session === 0) terminal.session = terminal.foregroundGroup = pid;
      }
      const umask = (options.umask ?? DEFAULT_UMASK) & S_IRWXUGO;
      this.#processes.set(pid, new GuestProcess(pid, table, cwd.path, umask, undefined));
      return table.size;
    }
    const parent = this.#process(options.parentPid ?? 0);
    let table = parent.table;
    if (options.inheritance === "copy") table = table.copy();
    else table.users++;
    const process = new GuestProcess(pid, table, [...parent.cwd], parent.umask, parent.executable);
    this.#processes.set(pid, process);
    return table.size;
  }

  /** fork: the child gets a copy of the parent's table, sharing its open file descriptions. */
  forkTable(parentPid: number, childPid: number): number {
    return this.attachProcess(childPid, { parentPid, inheritance: "copy" });
  }

  /**
   * execve: a table shared under CLONE_FILES is unshared first, then the close-on-exec descriptors
   * are closed; `executable` becomes /proc/<pid>/exe. Returns how many were closed.
   */
  execTable(pid: number, executable?: Uint8Array | string): number {
    const process = this.#process(pid);
    if (process.table.users > 1) {
      process.table.users--;
      process.table = process.table.copy();
    }
    if (executable !== undefined) process.executable = pathText(executable, "executable");
    return process.table.closeOnExec();
  }

  /** The process is gone: its waiting calls end and its descriptors close. Returns how many. */
  detachProcess(pid: number): number {
    const process = this.#process(pid);
    this.#processes.delete(pid);
    process.exit.abort(vfsError(Errno.EINTR, `process ${pid} exited`, "pid"));
    if (--process.table.users > 0) return 0;
    return process.table.closeAll();
  }

  /** Detaches every process and drops every hold, closing every description (the service is stopping). */
  shutdown(): void {
    for (const pid of [...this.#processes.keys()]) this.detachProcess(pid);
    this.#held.releaseAll();
  }

  statistics(): VfsStatistics {
    const tables = new Set<DescriptorTable>();
    const files = new Set<OpenFile>();
    const pipes = new Set<Pipe>();
    for (const process of this.#processes.values()) tables.add(process.table);
    let openDescriptors = 0;
    for (const table of tables) {
      openDescriptors += table.size;
      for (const [, slot] of table.entries()) {
        files.add(slot.file);
        if (slot.file instanceof PipeFile) pipes.add(slot.file.pipe);
      }
    }
    for (const file of this.#held.files()) files.add(file);
    return {
      processes: this.#processes.size,
      openDescriptors,
      openFiles: files.size,
      pipes: pipes.size,
      mounts: this.namespace.mounts.map((m) => ({
        id: m.id,
        mountPoint: joinPath(m.point),
        kind: m.fs.kind,
        source: m.fs.source,
        readOnly: m.readOnly,
      })),
      ...this.counters,
    };
  }

  // ---- helpers ----

  #process(pid: number): GuestProcess {
    const process = this.#processes.get(pid);
    if (!process) throw vfsError(Errno.ESRCH, `process ${pid} is not attached to the VFS`, "pid");
    return process;
  }

  #file(pid: number, fd: number): { process: GuestProcess; file: OpenFile } {
    const process = this.#process(pid);
    return { process, file: process.table.get(fd).file };
  }

  /** A file that is not an O_PATH descriptor, for calls O_PATH descriptors cannot make. */
  #usable(pid: number, fd: number): { process: GuestProcess; file: OpenFile } {
    const found = this.#file(pid, fd);
    if (found.file.isPath) throw vfsError(Errno.EBADF, `descriptor ${fd} is an O_PATH descriptor`, "fd");
    return found;
  }

  /** What ends a wait on `file`: the process exiting, or the caller giving up. */
  #waitSignal(process: GuestProcess, file: OpenFile, signal: AbortSignal | undefined): AbortSignal {
    // Only pipes and streams wait; the others need no combined signal built for them.
    const waits = file.kind === "pipe" || file.kind === "stream";
    return signal && waits ? AbortSignal.any([process.exit.signal, signal]) : process.exit.signal;
  }

  /** What ends a wait of `process` on a lock or for readiness: its exit, or the caller giving up. */
  #endings(process: GuestProcess, signal: AbortSignal | undefined): AbortSignal[] {
    return signal ? [process.exit.signal, signal] : [process.exit.signal];
  }

  /** Where a relative path starts: the working directory, or the directory `dirFd` names. */
  #start(process: GuestProcess, dirFd: number, absolute: boolean): string[] {
    if (absolute) return [];
    if (dirFd === AT_FDCWD) return process.cwd;
    const file = process.table.get(dirFd).file;
    if (file.path && (file.kind === "directory" || (file.kind === "path" && isDirectory(file.stat())))) {
      return [...file.path];
    }
    throw vfsError(Errno.ENOTDIR, `descriptor ${dirFd} is not a directory`, "dir_fd");
  }

  /**
   * Resolves an existing path. An empty path is ENOENT unless `emptyPath` (AT_EMPTY_PATH): then
   * it is `dirFd` itself.
   */
  #resolve(
    process: GuestProcess,
    dirFd: number,
    path: Uint8Array | string,
    follow: boolean,
    emptyPath = false,
  ): Location {
    const text = pathText(path);
    if (text === "") {
      if (!emptyPath) throw vfsError(Errno.ENOENT, "the path is empty", "path");
      if (dirFd === AT_FDCWD) return this.namespace.locate(process.cwd, process);
      return { kind: "file", file: process.table.get(dirFd).file };
    }
    const parsed = parsePath(text);
    const location = this.namespace.walk(
      process,
      this.#start(process, dirFd, parsed.absolute),
      parsed,
      follow,
    );
    if (location.kind === "missing") {
      throw vfsError(Errno.ENOENT, `${joinPath([...location.parent, location.name])} does not exist`, "path");
    }
    return location;
  }

  #statOf(location: Location): NodeStat {
    return location.kind === "node" ? location.stat : location.file.stat();
  }

  /** lstat of a canonical path, or undefined when nothing is there. */
  #existing(path: string[], process: GuestProcess): NodeStat | undefined {
    try {
      return this.namespace.stat(path, process);
    } catch (err) {
      if (isErrno(err, Errno.ENOENT)) return undefined;
      throw err;
    }
  }

  /** Whether the guest's credentials grant `mode` (R_OK | W_OK | X_OK) on a node. */
  #permits(stat: NodeStat, mode: number): boolean {
    return permits(stat, mode, this.credentials);
  }

  #placed(
    file: OpenFile,
    path: string[] | undefined,
    mount: Mount | undefined,
    mountRoot: boolean,
  ): OpenFile {
    file.path = path;
    file.mountId = mount?.id ?? 0;
    file.mountRoot = mountRoot;
    return file;
  }

  /** getdents64's view of a directory: ".", "..", then its names and the mount points in it. */
  #listing(process: GuestProcess, path: string[]): DirectoryEntry[] {
    const self = this.namespace.stat(path, process).inode;
    const parent = path.length ? this.namespace.stat(path.slice(0, -1), process).inode : self;
    return [
      { name: ".", inode: self, type: DT_DIR },
      { name: "..", inode: parent, type: DT_DIR },
      ...this.namespace.list(path, process),
    ];
  }

  // ---- open and close ----

  /** open(2), openat(2): the new descriptor. */
  openat(pid: number, dirFd: number, path: Uint8Array | string, flags: number, mode: number): number {
    const process = this.#process(pid);
    flags = (flags & VALID_OPEN_FLAGS) >>> 0;
    if ((flags & O_TMPFILE) === O_TMPFILE) {
      const access = flags & O_ACCMODE;
      if (access !== O_WRONLY && access !== O_RDWR) {
        throw vfsError(Errno.EINVAL, "O_TMPFILE needs O_WRONLY or O_RDWR", "flags");
      }
      throw vfsError(Errno.ENOTSUP, "unnamed temporary files (O_TMPFILE) are not supported here", "flags");
    }
    if ((flags & O_CREAT) && (flags & O_DIRECTORY)) {
      throw vfsError(Errno.EINVAL, "O_CREAT and O_DIRECTORY together are invalid", "flags");
    }
    if (flags & O_PATH) flags &= O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    const creating = (flags & O_CREAT) !== 0;
    const text = pathText(path);
    if (text === "") throw vfsError(Errno.ENOENT, "the path is empty", "path");
    const parsed = parsePath(text);
    const start = this.#start(process, dirFd, parsed.absolute);
    const lastName = parsed.components[parsed.components.length - 1];
    if (creating && parsed.trailingSlash && lastName !== undefined && lastName !== "." && lastName !== "..") {
      // O_CREAT makes regular files: a name with a trailing slash is refused once its parent is found.
      this.namespace.walkParent(process, start, parsed);
      throw vfsError(Errno.EISDIR, `${text} ends in "/"; O_CREAT makes regular files`, "path");
    }
    const fd = process.table.lowestFree();
    const follow = !(flags & O_NOFOLLOW) && !(creating && (flags & O_EXCL));
    const location = this.namespace.walk(process, start, parsed, follow);
    const file = location.kind === "missing"
      ? this.#create(process, location, flags, mode)
      : location.kind === "file"
      ? this.#reopen(location.file, flags)
      : this.#openNode(process, location, flags);
    process.table.installAt(fd, file, (flags & O_CLOEXEC) !== 0);
    return fd;
  }

  #create(process: GuestProcess, location: MissingLocation, flags: number, mode: number): OpenFile {
    const path = [...location.parent, location.name];
    if (!(flags & O_CREAT)) throw vfsError(Errno.ENOENT, `${joinPath(path)} does not exist`, "path");
    if (location.mount.readOnly) {
      throw vfsError(Errno.EROFS, `${joinPath(path)} is on a read-only mount`, "path");
    }
    const file = location.mount.fs.create(
      location.relative,
      descriptionFlags(flags),
      mode & S_IALLUGO & ~process.umask,
    );
    return this.#placed(file, path, location.mount, false);
  }

  #openNode(process: GuestProcess, location: NodeLocation, flags: number): OpenFile {
    const { stat, mount, relative, path } = location;
    const name = joinPath(path);
    if ((flags & O_CREAT) && (flags & O_EXCL)) throw vfsError(Errno.EEXIST, `${name} exists`, "path");
    const type = stat.mode & S_IFMT;
    if ((flags & O_DIRECTORY) && type !== S_IFDIR) {
      throw vfsError(Errno.ENOTDIR, `${name} is not a directory`, "path");
    }
    if (flags & O_PATH) {
      const target = type === S_IFLNK ? mount.fs.readLink(relative, process).target : undefined;
      const file = new PathFile(descriptionFlags(flags), () => mount.fs.stat(relative, process), target);
      return this.#placed(file, path, mount, relative.length === 0);
    }
    if (type === S_IFLNK) throw vfsError(Errno.ELOOP, `${name} is a symbolic link (O_NOFOLLOW)`, "path");
    const access = flags & O_ACCMODE;
    if (type === S_IFDIR) {
      if (access !== O_RDONLY || (flags & (O_CREAT | O_TRUNC))) {
        throw vfsError(Errno.EISDIR, `${name} is a directory`, "path");
      }
      const directory = new DirectoryFile(
        descriptionFlags(flags),
        mount.fs.openDirectory(relative, process),
        () => this.#listing(process, path),
      );
      return this.#placed(directory, path, mount, relative.length === 0);
    }
    if (type === S_IFREG && (access !== O_RDONLY || (flags & O_TRUNC))) {
      if (mount.readOnly) throw vfsError(Errno.EROFS, `${name} is on a read-only mount`, "path");
      if (flags & O_TRUNC) mount.fs.truncate(relative, 0);
    }
    return this.#placed(mount.fs.open(relative, stat, descriptionFlags(flags), process), path, mount, false);
  }

  /** Opening what a /proc/<pid>/fd link leads to: a new description of the same pipe or stream. */
  #reopen(target: OpenFile, flags: number): OpenFile {
    const described = descriptionFlags(flags);
    if (flags & O_PATH) {
      const file = new PathFile(described, () => target.stat(), undefined);
      file.mountId = target.mountId;
      return file;
    }
    if (flags & O_DIRECTORY) {
      throw vfsError(Errno.ENOTDIR, `${target.linkTarget()} is not a directory`, "path");
    }
    if (target instanceof PipeFile) return new PipeFile(described, target.pipe);
    if (target instanceof StreamFile) {
      const file = new StreamFile(described, target.endpoint);
      if ((file.readable && !target.endpoint.input) || (file.writable && !target.endpoint.output)) {
        throw vfsError(Errno.EACCES, `${target.endpoint.name} cannot be opened that way`, "flags");
      }
      return file;
    }
    throw vfsError(Errno.ENXIO, `${target.linkTarget()} cannot be reopened`, "path");
  }

  /** close(2). */
  close(pid: number, fd: number): void {
    this.#process(pid).table.close(fd);
  }

  // ---- data ----

  /** read(2): at most `count` bytes; none at end of file. */
  async read(pid: number, fd: number, count: number, signal?: AbortSignal): Promise<Uint8Array> {
    const { process, file } = this.#file(pid, fd);
    if (!file.readable) throw vfsError(Errno.EBADF, `descriptor ${fd} is not open for reading`, "fd");
    const data = await file.read(count, this.#waitSignal(process, file, signal));
    this.counters.bytesRead += data.length;
    return data;
  }

  #positional(file: OpenFile, offset: number): void {
    if (offset < 0) throw vfsError(Errno.EINVAL, `offset ${offset} is negative`, "offset");
    if (file.kind === "pipe" || file.kind === "stream") {
      throw vfsError(Errno.ESPIPE, `a ${file.kind} has no file offset`, "fd");
    }
  }

  /** pread64(2): reads at `offset` without moving the file offset. */
  pread(pid: number, fd: number, count: number, offset: number): Uint8Array {
    if (offset < 0) throw vfsError(Errno.EINVAL, `offset ${offset} is negative`, "offset");
    const { file } = this.#file(pid, fd);
    this.#positional(file, offset);
    if (!file.readable) throw vfsError(Errno.EBADF, `descriptor ${fd} is not open for reading`, "fd");
    if (file.kind === "directory") throw vfsError(Errno.EISDIR, "a directory is read with getdents64", "fd");
    const data = file.readAt(count, offset);
    this.counters.bytesRead += data.length;
    return data;
  }

  /** write(2): how many bytes were written. */
  async write(pid: number, fd: number, data: Uint8Array, signal?: AbortSignal): Promise<number> {
    const { process, file } = this.#file(pid, fd);
    if (!file.writable) throw vfsError(Errno.EBADF, `descriptor ${fd} is not open for writing`, "fd");
    const written = await file.write(data, this.#waitSignal(process, file, signal));
    this.counters.bytesWritten += written;
    return written;
  }

  /** pwrite64(2): writes at `offset` without moving the file offset. */
  pwrite(pid: number, fd: number, data: Uint8Array, offset: number): number {
    if (offset < 0) throw vfsError(Errno.EINVAL, `offset ${offset} is negative`, "offset");
    const { file } = this.#file(pid, fd);
    this.#positional(file, offset);
    if (!file.writable) throw vfsError(Errno.EBADF, `descriptor ${fd} is not open for writing`, "fd");
    const written = file.writeAt(data, offset);
    this.counters.bytesWritten += written;
    return written;
  }

  #vectorTotal(lengths: readonly number[]): number {
    if (lengths.length > UIO_MAXIOV) {
      throw vfsError(Errno.EINVAL, `${lengths.length} vectors is more than ${UIO_MAXIOV}`, "iovcnt");
    }
    let total = 0;
    for (const length of lengths) {
      if (length < 0) throw vfsError(Errno.EINVAL, "a vector has a negative length", "iov");
      total += length;
    }
    if (total > Number.MAX_SAFE_INTEGER) {
      throw vfsError(Errno.EINVAL, "the vectors' total length overflows", "iov");
    }
    return total;
  }

  /**
   * readv(2), and preadv(2) with `offset`: one read of the vectors' total length, spread over
   * buffers of the vectors' lengths (short at the end when less was read).
   */
  async readv(
    pid: number,
    fd: number,
    lengths: readonly number[],
    offset?: number,
    signal?: AbortSignal,
  ): Promise<Uint8Array[]> {
    const total = this.#vectorTotal(lengths);
    const data = offset === undefined
      ? await this.read(pid, fd, total, signal)
      : this.pread(pid, fd, total, offset);
    let at = 0;
    return lengths.map((length) => {
      const piece = data.subarray(Math.min(at, data.length), Math.min(at + length, data.length));
      at += length;
      return piece;
    });
  }

  /** writev(2), and pwritev(2) with `offset`: one write of the buffers' bytes in order. */
  writev(
    pid: number,
    fd: number,
    buffers: readonly Uint8Array[],
    offset?: number,
    signal?: AbortSignal,
  ): Promise<number> {
    const total = this.#vectorTotal(buffers.map((b) => b.length));
    const data = new Uint8Array(total);
    let at = 0;
    for (const buffer of buffers) {
      data.set(buffer, at);
      at += buffer.length;
    }
    return offset === undefined
      ? this.write(pid, fd, data, signal)
      : Promise.resolve().then(() => this.pwrite(pid, fd, data, offset));
  }

  /** lseek(2): the new offset. */
  lseek(pid: number, fd: number, offset: number, whence: number): number {
    if (whence < SEEK_SET || whence > SEEK_HOLE) {
      throw vfsError(Errno.EINVAL, `whence ${whence} is not a SEEK_* value`, "whence");
    }
    return this.#usable(pid, fd).file.seek(offset, whence);
  }

  /** ftruncate(2). */
  ftruncate(pid: number, fd: number, length: number): void {
    if (length < 0) throw vfsError(Errno.EINVAL, `length ${length} is negative`, "length");
    const { file } = this.#usable(pid, fd);
    if (file.kind !== "regular" || !file.writable) {
      throw vfsError(Errno.EINVAL, `descriptor ${fd} is not a regular file open for writing`, "fd");
    }
    if (length > Number.MAX_SAFE_INTEGER) {
      throw vfsError(Errno.EFBIG, "length is past the largest file size", "length");
    }
    file.truncate(length);
  }

  /** fsync(2), and fdatasync(2) with `dataOnly`. */
  fsync(pid: number, fd: number, dataOnly = false): void {
    this.#usable(pid, fd).file.sync(dataOnly);
  }

  // ---- metadata ----

  /** fstat(2). */
  fstat(pid: number, fd: number): NodeStat {
    return this.#file(pid, fd).file.stat();
  }

  /** newfstatat(2) (stat, lstat). */
  fstatat(pid: number, dirFd: number, path: Uint8Array | string, flags: number): NodeStat {
    if (flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT)) {
      throw vfsError(Errno.EINVAL, `flags 0x${flags.toString(16)} has unknown bits`, "flags");
    }
    const process = this.#process(pid);
    const follow = !(flags & AT_SYMLINK_NOFOLLOW);
    return this.#statOf(this.#resolve(process, dirFd, path, follow, (flags & AT_EMPTY_PATH) !== 0));
  }

  /** statx(2): the stat and the mask of what it fills in. */
  statx(pid: number, dirFd: number, path: Uint8Array | string, flags: number, mask: number): StatxResult {
    if (flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT | AT_STATX_SYNC_TYPE)) {
      throw vfsError(Errno.EINVAL, `flags 0x${flags.toString(16)} has unknown bits`, "flags");
    }
    if ((flags & AT_STATX_SYNC_TYPE) === AT_STATX_SYNC_TYPE) {
      throw vfsError(Errno.EINVAL, "AT_STATX_FORCE_SYNC and AT_STATX_DONT_SYNC together", "flags");
    }
    if (mask & STATX_RESERVED) throw vfsError(Errno.EINVAL, "mask has STATX__RESERVED set", "mask");
    const stat = this.fstatat(pid, dirFd, path, flags & ~AT_STATX_SYNC_TYPE);
    return { stat, mask: STATX_BASIC_STATS | STATX_MNT_ID | (stat.birthTime ? STATX_BTIME : 0) };
  }

  /** getdents64(2): the entries whose records fit in `maxBytes`; none at the end. */
  getdents64(pid: number, fd: number, maxBytes: number): DirectoryRead {
    return this.#usable(pid, fd).file.readDirectory(maxBytes);
  }

  /** faccessat(2), faccessat2(2). */
  faccessat(pid: number, dirFd: number, path: Uint8Array | string, mode: number, flags = 0): void {
    if (mode & ~(R_OK | W_OK | X_OK)) throw vfsError(Errno.EINVAL, `mode ${mode} has unknown bits`, "mode");
    if (flags & ~(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH)) {
      throw vfsError(Errno.EINVAL, `flags 0x${flags.toString(16)} has unknown bits`, "flags");
    }
    const process = this.#process(pid);
    const follow = !(flags & AT_SYMLINK_NOFOLLOW);
    const location = this.#resolve(process, dirFd, path, follow, (flags & AT_EMPTY_PATH) !== 0);
    const stat = this.#statOf(location);
    const type = stat.mode & S_IFMT;
    if (
      (mode & W_OK) && location.kind === "node" && location.mount.readOnly &&
      (type === S_IFREG || type === S_IFDIR || type === S_IFLNK)
    ) {
      throw vfsError(Errno.EROFS, `${joinPath(location.path)} is on a read-only mount`, "path");
    }
    if (!this.#permits(stat, mode)) throw vfsError(Errno.EACCES, `access ${mode} is not granted`, "mode");
  }

  /** readlinkat(2): the whole target (the caller truncates it to its buffer). */
  readlinkat(pid: number, dirFd: number, path: Uint8Array | string): Uint8Array {
    const process = this.#process(pid);
    if (pathText(path) === "") {
      // An empty path reads the link an O_PATH | O_NOFOLLOW descriptor stands on.
      const file = dirFd === AT_FDCWD ? undefined : process.table.get(dirFd).file;
      if (file instanceof PathFile && file.symlinkTarget !== undefined) return pathBytes(file.symlinkTarget);
      throw vfsError(Errno.ENOENT, "the path is empty", "path");
    }
    const location = this.#resolve(process, dirFd, path, false);
    if (location.kind !== "node" || !isSymlink(location.stat)) {
      throw vfsError(Errno.EINVAL, "the path is not a symbolic link", "path");
    }
    return pathBytes(location.mount.fs.readLink(location.relative, process).target);
  }

  // ---- directories ----

  /** mkdirat(2). */
  mkdirat(pid: number, dirFd: number, path: Uint8Array | string, mode: number): void {
    const process = this.#process(pid);
    const { text, parent, last, name } = this.#walkParent(process, dirFd, path);
    if (last !== "normal") throw vfsError(Errno.EEXIST, `${text} exists`, "path");
    const child = [...parent.path, name];
    if (this.#existing(child, process)) throw vfsError(Errno.EEXIST, `${joinPath(child)} exists`, "path");
    const { mount, relative } = this.namespace.mountAt(child);
    if (mount.readOnly) throw vfsError(Errno.EROFS, `${joinPath(child)} is on a read-only mount`, "path");
    mount.fs.makeDirectory(relative, mode & (S_IRWXUGO | S_ISVTX) & ~process.umask);
  }

  /** unlinkat(2); with AT_REMOVEDIR, rmdir. */
  unlinkat(pid: number, dirFd: number, path: Uint8Array | string, flags: number): void {
    if (flags & ~AT_REMOVEDIR) {
      throw vfsError(Errno.EINVAL, `flags 0x${flags.toString(16)} has unknown bits`, "flags");
    }
    const removeDirectory = (flags & AT_REMOVEDIR) !== 0;
    const process = this.#process(pid);
    const { text, parent, last, name, trailingSlash } = this.#walkParent(process, dirFd, path);
    if (removeDirectory) {
      if (last === "dot") throw vfsError(Errno.EINVAL, 'rmdir of "."', "path");
      if (last === "dotdot") throw vfsError(Errno.ENOTEMPTY, 'rmdir of ".."', "path");
      if (last === "root") throw vfsError(Errno.EBUSY, "rmdir of the root", "path");
    } else if (last !== "normal") {
      throw vfsError(Errno.EISDIR, `${text} is a directory`, "path");
    }
    // As in Linux, a read-only mount is refused before the name is looked up.
    const { mount, relative: parentRelative } = this.namespace.mountAt(parent.path);
    const child = [...parent.path, name];
    if (mount.readOnly) throw vfsError(Errno.EROFS, `${joinPath(child)} is on a read-only mount`, "path");
    const stat = this.namespace.stat(child, process);
    const relative = [...parentRelative, name];
    if (removeDirectory) {
      if (!isDirectory(stat)) throw vfsError(Errno.ENOTDIR, `${joinPath(child)} is not a directory`, "path");
      if (this.namespace.isMountPoint(child)) {
        throw vfsError(Errno.EBUSY, `${joinPath(child)} is a mount point`, "path");
      }
      mount.fs.removeDirectory(relative);
      return;
    }
    if (isDirectory(stat)) throw vfsError(Errno.EISDIR, `${joinPath(child)} is a directory`, "path");
    if (trailingSlash) throw vfsError(Errno.ENOTDIR, `${joinPath(child)} is not a directory`, "path");
    mount.fs.unlink(relative);
  }

  /** renameat2(2) (rename, renameat with no flags). */
  renameat2(
    pid: number,
    oldDirFd: number,
    oldPath: Uint8Array | string,
    newDirFd: number,
    newPath: Uint8Array | string,
    flags: number,
  ): void {
    if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT)) {
      throw vfsError(Errno.EINVAL, `flags 0x${flags.toString(16)} has unknown bits`, "flags");
    }
    if ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE)) {
      throw vfsError(Errno.EINVAL, "RENAME_NOREPLACE and RENAME_EXCHANGE together", "flags");
    }
    if (flags & RENAME_WHITEOUT) throw vfsError(Errno.EINVAL, "host folders cannot make whiteouts", "flags");
    const exchange = (flags & RENAME_EXCHANGE) !== 0;
    const process = this.#process(pid);
    const parse = (path: Uint8Array | string, argument: string) => {
      const text = pathText(path, argument);
      if (text === "") throw vfsError(Errno.ENOENT, "the path is empty", argument);
      return parsePath(text, argument);
    };
    const oldParsed = parse(oldPath, "from");
    const newParsed = parse(newPath, "to");
    const from = this.namespace.walkParent(
      process,
      this.#start(process, oldDirFd, oldParsed.absolute),
      oldParsed,
    );
    const to = this.namespace.walkParent(
      process,
      this.#start(process, newDirFd, newParsed.absolute),
      newParsed,
    );
    // The checks run in do_renameat2's order: mounts, names, read-only, then what the names hold.
    const source = this.namespace.mountAt(from.parent.path);
    const target = this.namespace.mountAt(to.parent.path);
    if (source.mount !== target.mount) throw vfsError(Errno.EXDEV, "rename across mounts", "to");
    if (from.last !== "normal") throw vfsError(Errno.EBUSY, 'cannot rename ".", ".." or "/"', "from");
    if (to.last !== "normal") {
      throw vfsError(
        flags & RENAME_NOREPLACE ? Errno.EEXIST : Errno.EBUSY,
        'cannot replace ".", ".." or "/"',
        "to",
      );
    }
    if (source.mount.readOnly) throw vfsError(Errno.EROFS, "rename on a read-only mount", "from");
    const oldChild = [...from.parent.path, from.name];
    const newChild = [...to.parent.path, to.name];
    const oldStat = this.namespace.stat(oldChild, process);
    const newStat = this.#existing(newChild, process);
    if (exchange && !newStat) throw vfsError(Errno.ENOENT, `${joinPath(newChild)} does not exist`, "to");
    if ((flags & RENAME_NOREPLACE) && newStat) {
      throw vfsError(Errno.EEXIST, `${joinPath(newChild)} exists`, "to");
    }
    if (!isDirectory(oldStat) && (from.trailingSlash || (!exchange && to.trailingSlash))) {
      throw vfsError(Errno.ENOTDIR, `${joinPath(oldChild)} is not a directory`, "from");
    }
    if (exchange && newStat && !isDirectory(newStat) && to.trailingSlash) {
      throw vfsError(Errno.ENOTDIR, `${joinPath(newChild)} is not a directory`, "to");
    }
    const same = joinPath(oldChild) === joinPath(newChild);
    if (!same && isWithin(newChild, oldChild)) {
      throw vfsError(Errno.EINVAL, `${joinPath(newChild)} is inside ${joinPath(oldChild)}`, "to");
    }
    if (!same && isWithin(oldChild, newChild)) {
      if (exchange) {
        throw vfsError(Errno.EINVAL, `${joinPath(oldChild)} is inside ${joinPath(newChild)}`, "to");
      }
      throw vfsError(Errno.ENOTEMPTY, `${joinPath(newChild)} contains ${joinPath(oldChild)}`, "to");
    }
    if (same) return;
    if (this.namespace.isMountPoint(oldChild) || this.namespace.isMountPoint(newChild)) {
      throw vfsError(Errno.EBUSY, "a mount point cannot be renamed or replaced", "from");
    }
    const oldRelative = [...source.relative, from.name];
    const newRelative = [...target.relative, to.name];
    if (exchange) source.mount.fs.exchange(oldRelative, newRelative);
    else source.mount.fs.rename(oldRelative, newRelative);
  }

  /** getcwd(2): the working directory's path (ENOENT once it has been removed). */
  getcwd(pid: number): Uint8Array {
    const process = this.#process(pid);
    const stat = this.#existing(process.cwd, process);
    if (!stat || !isDirectory(stat)) {
      throw vfsError(Errno.ENOENT, "the working directory has been removed", "pid");
    }
    return pathBytes(joinPath(process.cwd));
  }

  /** chdir(2). */
  chdir(pid: number, path: Uint8Array | string): void {
    const process = this.#process(pid);
    const location = this.#resolve(process, AT_FDCWD, path, true);
    if (location.kind !== "node" || !isDirectory(location.stat)) {
      throw vfsError(Errno.ENOTDIR, `${pathText(path)} is not a directory`, "path");
    }
    if (!this.#permits(location.stat, X_OK)) throw vfsError(Errno.EACCES, "no search permission", "path");
    process.cwd = location.path;
  }

  /** fchdir(2). */
  fchdir(pid: number, fd: number): void {
    const { process, file } = this.#file(pid, fd);
    const stat = file.path && (file.kind === "directory" || file.kind === "path") ? file.stat() : undefined;
    if (!stat || !file.path || !isDirectory(stat)) {
      throw vfsError(Errno.ENOTDIR, `descriptor ${fd} is not a directory`, "fd");
    }
    if (!this.#permits(stat, X_OK)) throw vfsError(Errno.EACCES, "no search permission", "fd");
    process.cwd = [...file.path];
  }

  /** umask(2): the previous mask. */
  umask(pid: number, mask: number): number {
    const process = this.#process(pid);
    const previous = process.umask;
    process.umask = mask & S_IRWXUGO;
    return previous;
  }

  // ---- descriptors ----

  /** dup(2). */
  dup(pid: number, fd: number): number {
    const { process, file } = this.#file(pid, fd);
    return process.table.install(file, false);
  }

  /** dup2(2). */
  dup2(pid: number, oldFd: number, newFd: number): number {
    const { process, file } = this.#file(pid, oldFd);
    if (newFd === oldFd) return newFd;
    process.table.installAt(newFd, file, false);
    return newFd;
  }

  /** dup3(2): flags may hold O_CLOEXEC only, and the descriptors must differ. */
  dup3(pid: number, oldFd: number, newFd: number, flags: number): number {
    if (flags & ~O_CLOEXEC) {
      throw vfsError(Errno.EINVAL, `flags 0x${flags.toString(16)} has unknown bits`, "flags");
    }
    if (oldFd === newFd) throw vfsError(Errno.EINVAL, "dup3 onto the same descriptor", "new_fd");
    const process = this.#process(pid);
    if (newFd < 0 || newFd >= process.table.limit) {
      throw vfsError(Errno.EBADF, `descriptor ${newFd} is out of range`, "new_fd");
    }
    const file = process.table.get(oldFd).file;
    process.table.installAt(newFd, file, (flags & O_CLOEXEC) !== 0);
    return newFd;
  }

  /** fcntl(2): F_DUPFD, F_DUPFD_CLOEXEC, F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_GETPIPE_SZ, F_SETPIPE_SZ. */
  fcntl(pid: number, fd: number, command: number, argument: number): number {
    const { process, file } = this.#file(pid, fd);
    const slot = process.table.get(fd);
    const pathAllowed = [F_DUPFD, F_DUPFD_CLOEXEC, F_GETFD, F_SETFD, F_GETFL];
    if (file.isPath && !pathAllowed.includes(command)) {
      throw vfsError(Errno.EBADF, `descriptor ${fd} is an O_PATH descriptor`, "fd");
    }
    switch (command) {
      case F_DUPFD:
      case F_DUPFD_CLOEXEC:
        if (argument < 0 || argument >= process.table.limit) {
          throw vfsError(Errno.EINVAL, `${argument} is not below the descriptor limit`, "argument");
        }
        return process.table.install(file, command === F_DUPFD_CLOEXEC, argument);
      case F_GETFD:
        return slot.closeOnExec ? FD_CLOEXEC : 0;
      case F_SETFD:
        slot.closeOnExec = (argument & FD_CLOEXEC) !== 0;
        return 0;
      case F_GETFL:
        return file.flags;
      case F_SETFL:
        if ((argument & O_DIRECT) && file.kind !== "regular") {
          throw vfsError(Errno.EINVAL, "O_DIRECT is only for regular files here", "argument");
        }
        file.flags = (file.flags & ~SETFL_MASK) | (argument & SETFL_MASK);
        return 0;
      case F_GETPIPE_SZ:
      case F_SETPIPE_SZ:
        if (!(file instanceof PipeFile)) throw vfsError(Errno.EBADF, `descriptor ${fd} is not a pipe`, "fd");
        return command === F_GETPIPE_SZ ? file.pipe.capacity : file.resize(argument);
      default:
        throw vfsError(Errno.EINVAL, `fcntl command ${command} is not supported`, "command");
    }
  }

  /**
   * ioctl(2): the requests every descriptor answers (FIOCLEX, FIONCLEX, FIONBIO, FIOASYNC,
   * FIONREAD, FIOQSIZE, FIGETBSZ), then the object's own (terminal requests on a terminal).
   * `input` is the structure the argument points to, for requests that read one.
   */
  async ioctl(
    pid: number,
    fd: number,
    request: number,
    argument: bigint,
    input?: Uint8Array,
  ): Promise<IoctlResult> {
    const { process, file } = this.#usable(pid, fd);
    const slot = process.table.get(fd);
    const inputInt = () => {
      if (!input || input.length < 4) {
        throw vfsError(Errno.EFAULT, "the argument was not readable", "argument");
      }
      return new DataView(input.buffer, input.byteOffset, 4).getInt32(0, true);
    };
    const type = () => file.stat().mode & S_IFMT;
    switch (request >>> 0) {
      case FIOCLEX:
        slot.closeOnExec = true;
        return { result: 0 };
      case FIONCLEX:
        slot.closeOnExec = false;
        return { result: 0 };
      case FIONBIO:
        file.flags = inputInt() ? file.flags | O_NONBLOCK : file.flags & ~O_NONBLOCK;
        return { result: 0 };
      case FIOASYNC:
        // SIGIO is never delivered, and Linux sets O_ASYNC only where a file supports it.
        inputInt();
        return { result: 0 };
      case FIOQSIZE: {
        const t = type();
        if (t !== S_IFREG && t !== S_IFDIR && t !== S_IFLNK) break;
        return { result: 0, output: encodeInt64(file.stat().size) };
      }
      case FIGETBSZ:
        return { result: 0, output: encodeInt32(file.stat().blockSize) };
      case FIONREAD: {
        const bytes = file.readableBytes();
        if (bytes === undefined) break;
        return { result: 0, output: encodeInt32(Math.min(bytes, 0x7fffffff)) };
      }
    }
    return await file.ioctl(request >>> 0, argument, input);
  }

  /** pipe2(2): the read and write descriptors. */
  pipe2(pid: number, flags: number): [number, number] {
    if (flags & ~(O_CLOEXEC | O_NONBLOCK)) {
      // O_DIRECT asks for packet-mode pipes, which these are not.
      throw vfsError(
        Errno.EINVAL,
        `pipe2 flags 0x${flags.toString(16)} are not O_CLOEXEC or O_NONBLOCK`,
        "flags",
      );
    }
    const process = this.#process(pid);
    const closeOnExec = (flags & O_CLOEXEC) !== 0;
    const status = flags & O_NONBLOCK;
    const readFd = process.table.lowestFree();
    const writeFd = process.table.lowestFree(readFd + 1);
    const pipe = new Pipe(this.#nextPipeInode++, this.credentials.uid, this.credentials.gid);
    process.table.installAt(readFd, new PipeFile(O_RDONLY | status, pipe), closeOnExec);
    process.table.installAt(writeFd, new PipeFile(O_WRONLY | status, pipe), closeOnExec);
    return [readFd, writeFd];
  }

  // ---- changing files ----

  /**
   * The node behind a descriptor, reached again by the path it was opened by: ESTALE once that
   * path leads elsewhere (the file was renamed or removed). Undefined for an object on no mount.
   */
  #nodeOfFile(process: GuestProcess, file: OpenFile): NodeLocation | undefined {
    if (!file.path) return undefined;
    const stat = file.stat();
    let location: NodeLocation | undefined;
    try {
      location = this.namespace.locate([...file.path], process);
    } catch (err) {
      if (!isErrno(err, Errno.ENOENT) && !isErrno(err, Errno.ENOTDIR)) throw err;
    }
    if (!location || location.stat.device !== stat.device || location.stat.inode !== stat.inode) {
      throw vfsError(Errno.ESTALE, `${joinPath(file.path)} is no longer the descriptor's file`, "fd");
    }
    return location;
  }

  /** The mount a descriptor's object is on; undefined for one on no mount (a pipe, a stream). */
  #mountOf(file: OpenFile): Mount | undefined {
    return file.mountId ? this.namespace.mounts.find((m) => m.id === file.mountId) : undefined;
  }

  /** notify_change on what `location` names: EROFS on a read-only mount, then the file system's own checks. */
  #changeAttributes(process: GuestProcess, location: Location, change: AttributeChange): void {
    const node = location.kind === "node" ? location : this.#nodeOfFile(process, location.file);
    if (!node) {
      if (location.kind === "file") location.file.changeAttributes(change, this.credentials);
      return;
    }
    if (node.mount.readOnly) {
      throw vfsError(Errno.EROFS, `${joinPath(node.path)} is on a read-only mount`, "path");
    }
    if (change.kind === "mode" && isSymlink(node.stat)) {
      throw vfsError(Errno.ENOTSUP, "the mode of a symbolic link cannot change", "path");
    }
    node.mount.fs.changeAttributes(node.relative, change);
  }

  /**
   * The file fchmodat2, fchownat or utimensat names, with their flags AT_SYMLINK_NOFOLLOW and
   * AT_EMPTY_PATH (checked before the path is read: a NULL one is EFAULT).
   */
  #resolveAt(
    process: GuestProcess,
    dirFd: number,
    path: Uint8Array | string | undefined,
    flags: number,
  ): Location {
    if (flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH)) {
      throw vfsError(Errno.EINVAL, `flags 0x${flags.toString(16)} has unknown bits`, "flags");
    }
    if (path === undefined) throw vfsError(Errno.EFAULT, "the path is NULL", "path");
    return this.#resolve(process, dirFd, path, !(flags & AT_SYMLINK_NOFOLLOW), (flags & AT_EMPTY_PATH) !== 0);
  }

  /**
   * fchmodat2(2), whose flags may be AT_SYMLINK_NOFOLLOW (a symbolic link's mode cannot change:
   * EOPNOTSUPP) and AT_EMPTY_PATH; chmod and fchmodat take no flags.
   */
  fchmodat(pid: number, dirFd: number, path: Uint8Array | string, mode: number, flags = 0): void {
    const process = this.#process(pid);
    const location = this.#resolveAt(process, dirFd, path, flags);
    this.#changeAttributes(process, location, { kind: "mode", permissions: mode & S_IALLUGO });
  }

  /** fchmod(2). */
  fchmod(pid: number, fd: number, mode: number): void {
    const { process, file } = this.#usable(pid, fd);
    this.#changeAttributes(process, { kind: "file", file }, { kind: "mode", permissions: mode & S_IALLUGO });
  }

  /** fchownat(2) (chown, lchown); an undefined owner or group is left as it is (-1). */
  fchownat(
    pid: number,
    dirFd: number,
    path: Uint8Array | string,
    uid: number | undefined,
    gid: number | undefined,
    flags: number,
  ): void {
    const process = this.#process(pid);
    const location = this.#resolveAt(process, dirFd, path, flags);
    this.#changeAttributes(process, location, { kind: "owner", uid, gid });
  }

  /** fchown(2). */
  fchown(pid: number, fd: number, uid: number | undefined, gid: number | undefined): void {
    const { process, file } = this.#usable(pid, fd);
    this.#changeAttributes(process, { kind: "file", file }, { kind: "owner", uid, gid });
  }

  /**
   * utimensat(2) (and utimes, futimesat, utime): `times` is [access, modification], each with
   * tv_nsec UTIME_NOW or UTIME_OMIT allowed; undefined sets both to now. An undefined `path`
   * (NULL) with a descriptor changes that descriptor's file (futimens).
   */
  utimensat(
    pid: number,
    dirFd: number,
    path: Uint8Array | string | undefined,
    times: readonly [Timestamp, Timestamp] | undefined,
    flags: number,
  ): void {
    // Nothing to do, and the path is not even looked at.
    if (times && times[0].nanoseconds === UTIME_OMIT && times[1].nanoseconds === UTIME_OMIT) return;
    const process = this.#process(pid);
    let location: Location;
    if (path === undefined && dirFd !== AT_FDCWD) {
      if (flags) throw vfsError(Errno.EINVAL, "futimens takes no flags", "flags");
      location = { kind: "file", file: this.#usable(pid, dirFd).file };
    } else {
      location = this.#resolveAt(process, dirFd, path, flags);
    }
    const time = (t: Timestamp): TimeChange | undefined => {
      if (t.nanoseconds === UTIME_NOW) return "now";
      if (t.nanoseconds === UTIME_OMIT) return undefined;
      if (t.nanoseconds < 0 || t.nanoseconds > 999_999_999) {
        throw vfsError(Errno.EINVAL, `tv_nsec ${t.nanoseconds} is out of range`, "times");
      }
      return t;
    };
    const access = times ? time(times[0]) : "now";
    const modify = times ? time(times[1]) : "now";
    this.#changeAttributes(process, location, { kind: "times", access, modify });
  }

  /** truncate(2). */
  truncate(pid: number, path: Uint8Array | string, length: number): void {
    if (length < 0) throw vfsError(Errno.EINVAL, `length ${length} is negative`, "length");
    const process = this.#process(pid);
    const location = this.#resolve(process, AT_FDCWD, path, true);
    const type = this.#statOf(location).mode & S_IFMT;
    if (type === S_IFDIR) throw vfsError(Errno.EISDIR, `${pathText(path)} is a directory`, "path");
    if (type !== S_IFREG || location.kind !== "node") {
      throw vfsError(Errno.EINVAL, `${pathText(path)} is not a regular file`, "path");
    }
    if (location.mount.readOnly) {
      throw vfsError(Errno.EROFS, `${joinPath(location.path)} is on a read-only mount`, "path");
    }
    if (length > Number.MAX_SAFE_INTEGER) {
      throw vfsError(Errno.EFBIG, "length is past the largest file size", "length");
    }
    location.mount.fs.truncate(location.relative, length);
  }

  /** The parent of a path's last name (a LOOKUP_PARENT walk) from `dirFd`; an empty path is ENOENT. */
  #walkParent(process: GuestProcess, dirFd: number, path: Uint8Array | string) {
    const text = pathText(path);
    if (text === "") throw vfsError(Errno.ENOENT, "the path is empty", "path");
    const parsed = parsePath(text);
    return {
      text,
      ...this.namespace.walkParent(process, this.#start(process, dirFd, parsed.absolute), parsed),
    };
  }

  /**
   * filename_create: where a new name goes — its parent found, then EEXIST for ".", "..", "/" or
   * a name that exists, ENOENT for a missing name with a trailing slash, EROFS last.
   */
  #newName(process: GuestProcess, dirFd: number, path: Uint8Array | string): NewName {
    const { text, parent, last, name, trailingSlash } = this.#walkParent(process, dirFd, path);
    if (last !== "normal") throw vfsError(Errno.EEXIST, `${text} exists`, "path");
    const child = [...parent.path, name];
    if (this.#existing(child, process)) throw vfsError(Errno.EEXIST, `${joinPath(child)} exists`, "path");
    if (trailingSlash) throw vfsError(Errno.ENOENT, `${joinPath(child)}/ names no directory`, "path");
    const { mount, relative } = this.namespace.mountAt(child);
    if (mount.readOnly) throw vfsError(Errno.EROFS, `${joinPath(child)} is on a read-only mount`, "path");
    return { parent, path: child, mount, relative };
  }

  /** symlinkat(2) (symlink): a link to `target`, which is kept as given and not looked up. */
  symlinkat(pid: number, target: Uint8Array | string, dirFd: number, path: Uint8Array | string): void {
    const targetText = pathText(target, "target");
    if (targetText === "") throw vfsError(Errno.ENOENT, "the target is empty", "target");
    const process = this.#process(pid);
    const { mount, relative } = this.#newName(process, dirFd, path);
    mount.fs.symlink(relative, targetText);
  }

  /**
   * linkat(2) (link): a new name for an existing file, a final symbolic link followed only with
   * AT_SYMLINK_FOLLOW; AT_EMPTY_PATH (the descriptor's own file) is root's (ENOENT otherwise).
   */
  linkat(
    pid: number,
    oldDirFd: number,
    oldPath: Uint8Array | string,
    newDirFd: number,
    newPath: Uint8Array | string,
    flags: number,
  ): void {
    if (flags & ~(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH)) {
      throw vfsError(Errno.EINVAL, `flags 0x${flags.toString(16)} has unknown bits`, "flags");
    }
    const emptyPath = (flags & AT_EMPTY_PATH) !== 0;
    if (emptyPath && this.credentials.uid !== 0) {
      throw vfsError(Errno.ENOENT, "AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH", "flags");
    }
    const process = this.#process(pid);
    const old = this.#resolve(process, oldDirFd, oldPath, (flags & AT_SYMLINK_FOLLOW) !== 0, emptyPath);
    const source = old.kind === "node" ? old : this.#nodeOfFile(process, old.file);
    const target = this.#newName(process, newDirFd, newPath);
    if (!source || source.mount !== target.mount) {
      throw vfsError(Errno.EXDEV, "a hard link cannot cross file systems", "new_path");
    }
    if (isDirectory(source.stat)) {
      throw vfsError(Errno.EPERM, "a directory cannot be hard linked", "old_path");
    }
    source.mount.fs.link(source.relative, target.relative);
  }

  /**
   * mknodat(2) (mknod): a regular file, made as creat(2) makes one (the umask applied). No file
   * system here makes FIFOs, sockets or device nodes: EPERM, as for one without ->mknod, after
   * the checks Linux makes first (write permission on the directory, CAP_MKNOD for devices).
   */
  mknodat(pid: number, dirFd: number, path: Uint8Array | string, mode: number): void {
    const type = mode & S_IFMT;
    if (type === S_IFDIR) throw vfsError(Errno.EPERM, "mknod does not make directories", "mode");
    if (![0, S_IFREG, S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK].includes(type)) {
      throw vfsError(Errno.EINVAL, `mode 0${mode.toString(8)} has no file type mknod makes`, "mode");
    }
    const process = this.#process(pid);
    const { parent, mount, relative } = this.#newName(process, dirFd, path);
    if (type === 0 || type === S_IFREG) {
      mount.fs.create(relative, O_WRONLY, mode & S_IALLUGO & ~process.umask).discard();
      return;
    }
    if (!this.#permits(parent.stat, W_OK | X_OK)) {
      throw vfsError(Errno.EACCES, `${joinPath(parent.path)} is not writable`, "path");
    }
    if ((type === S_IFCHR || type === S_IFBLK) && this.credentials.uid !== 0) {
      throw vfsError(Errno.EPERM, "making a device node needs CAP_MKNOD", "mode");
    }
    throw vfsError(Errno.EPERM, `a ${mount.fs.kind} file system makes no special files`, "mode");
  }

  // ---- file systems ----

  #statistics(location: Location): MountStatistics {
    if (location.kind === "node") return this.#mountStatistics(location.mount);
    const mount = this.#mountOf(location.file);
    return mount
      ? this.#mountStatistics(mount)
      : { ...location.file.fileSystemStatistics(), flags: ST_VALID };
  }

  #mountStatistics(mount: Mount): MountStatistics {
    return { ...mount.fs.statistics(), flags: ST_VALID | (mount.readOnly ? ST_RDONLY : 0) };
  }

  /** statfs(2). */
  statfs(pid: number, path: Uint8Array | string): MountStatistics {
    return this.#statistics(this.#resolve(this.#process(pid), AT_FDCWD, path, true));
  }

  /** fstatfs(2); an O_PATH descriptor will do. */
  fstatfs(pid: number, fd: number): MountStatistics {
    return this.#statistics({ kind: "file", file: this.#file(pid, fd).file });
  }

  /**
   * fallocate(2): mode 0 grows the file to cover the range, FALLOC_FL_KEEP_SIZE only reserves
   * (which the host file system does on its own when written); punching holes, zeroing, collapsing,
   * inserting and unsharing ranges are not supported here (EOPNOTSUPP, once the descriptor has
   * been checked as for any mode).
   */
  fallocate(pid: number, fd: number, mode: number, offset: number, length: number): void {
    const { file } = this.#usable(pid, fd);
    if (offset < 0 || length <= 0) {
      throw vfsError(Errno.EINVAL, "the offset is negative or the length not positive", "length");
    }
    // The modes exclude each other (but for FALLOC_FL_KEEP_SIZE), as vfs_fallocate checks them.
    const modes = mode & FALLOC_FL_MODE_MASK;
    const keep = (mode & FALLOC_FL_KEEP_SIZE) !== 0;
    const valid = (mode & ~(FALLOC_FL_MODE_MASK | FALLOC_FL_KEEP_SIZE)) === 0 &&
      (modes === 0 || modes === FALLOC_FL_UNSHARE_RANGE || modes === FALLOC_FL_ZERO_RANGE ||
        (modes === FALLOC_FL_PUNCH_HOLE && keep) ||
        ((modes === FALLOC_FL_COLLAPSE_RANGE || modes === FALLOC_FL_INSERT_RANGE ||
          modes === FALLOC_FL_WRITE_ZEROES) && !keep));
    if (!valid) throw vfsError(Errno.ENOTSUP, `fallocate mode 0x${mode.toString(16)} is invalid`, "mode");
    if (!file.writable) throw vfsError(Errno.EBADF, `descriptor ${fd} is not open for writing`, "fd");
    const stat = file.stat();
    const type = stat.mode & S_IFMT;
    if (type === S_IFIFO) throw vfsError(Errno.ESPIPE, "a pipe has no space to allocate", "fd");
    if (type === S_IFDIR) throw vfsError(Errno.EISDIR, "a directory has no space to allocate", "fd");
    if (type !== S_IFREG || file.kind !== "regular") {
      throw vfsError(Errno.ENODEV, "only regular files have space to allocate", "fd");
    }
    if (offset + length > Number.MAX_SAFE_INTEGER) {
      throw vfsError(Errno.EFBIG, "the range ends past the largest file size", "length");
    }
    if (mode & ~FALLOC_FL_KEEP_SIZE) throw vfsError(Errno.ENOTSUP, "only allocation is supported", "mode");
    if (!(mode & FALLOC_FL_KEEP_SIZE) && offset + length > stat.size) file.truncate(offset + length);
  }

  /** fadvise64(2): checked and accepted; the host's page cache needs no advice from here. */
  fadvise(pid: number, fd: number, length: number, advice: number): void {
    const { file } = this.#usable(pid, fd);
    if ((file.stat().mode & S_IFMT) === S_IFIFO) throw vfsError(Errno.ESPIPE, "a pipe takes no advice", "fd");
    if (length < 0) throw vfsError(Errno.EINVAL, `length ${length} is negative`, "length");
    if (advice < 0 || advice > POSIX_FADV_NOREUSE) {
      throw vfsError(Errno.EINVAL, `advice ${advice} is not a POSIX_FADV_* value`, "advice");
    }
  }

  /** readahead(2): checked and accepted, as fadvise's POSIX_FADV_WILLNEED. */
  readahead(pid: number, fd: number, count: number): void {
    const { file } = this.#usable(pid, fd);
    if (!file.readable) throw vfsError(Errno.EBADF, `descriptor ${fd} is not open for reading`, "fd");
    const type = file.stat().mode & S_IFMT;
    if (type !== S_IFREG && type !== S_IFBLK) {
      throw vfsError(Errno.EINVAL, "only regular files and block devices are read ahead", "fd");
    }
    if (count < 0) throw vfsError(Errno.EINVAL, "count is past the largest file size", "count");
  }

  /** syncfs(2): every write has reached the host, whose kernel writes it back. */
  syncfs(pid: number, fd: number): void {
    this.#usable(pid, fd);
  }

  /** sync_file_range2(2): SYNC_FILE_RANGE_WRITE writes the file's data back (fdatasync). */
  syncFileRange(pid: number, fd: number, offset: number, length: number, flags: number): void {
    const { file } = this.#usable(pid, fd);
    const valid = SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER;
    if (flags & ~valid) {
      throw vfsError(Errno.EINVAL, `flags 0x${flags.toString(16)} has unknown bits`, "flags");
    }
    if (offset < 0 || offset + length < offset) {
      throw vfsError(Errno.EINVAL, "the range is negative or wraps", "offset");
    }
    const type = file.stat().mode & S_IFMT;
    if (type !== S_IFREG && type !== S_IFBLK && type !== S_IFDIR && type !== S_IFLNK) {
      throw vfsError(Errno.ESPIPE, "only files with data in the page cache are synced", "fd");
    }
    if (flags & SYNC_FILE_RANGE_WRITE) file.sync(true);
  }

  /** flock(2): LOCK_SH, LOCK_EX or LOCK_UN, with LOCK_NB not waiting (EWOULDBLOCK). */
  async flock(pid: number, fd: number, operation: number, signal?: AbortSignal): Promise<void> {
    // LOCK_MAND never locked anything; Linux accepts and ignores it.
    if (operation & LOCK_MAND) return;
    const command = operation & ~LOCK_NB;
    const kind = command === LOCK_SH ? "shared" : command === LOCK_EX ? "exclusive" : undefined;
    if (kind === undefined && command !== LOCK_UN) {
      throw vfsError(Errno.EINVAL, `operation ${operation} is not LOCK_SH, LOCK_EX or LOCK_UN`, "operation");
    }
    const { process, file } = this.#usable(pid, fd);
    if (kind && !file.readable && !file.writable) {
      throw vfsError(Errno.EBADF, `descriptor ${fd} is open for neither reading nor writing`, "fd");
    }
    const stat = file.stat();
    const ended = AbortSignal.any(this.#endings(process, signal));
    await this.#flocks.lock(file, `${stat.device}:${stat.inode}`, kind, !(operation & LOCK_NB), ended);
  }

  /** close_range(2): closes, or with CLOSE_RANGE_CLOEXEC marks close-on-exec, `first`..`last`. */
  closeRange(pid: number, first: number, last: number, flags: number): void {
    if (flags & ~(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC)) {
      throw vfsError(Errno.EINVAL, `flags 0x${flags.toString(16)} has unknown bits`, "flags");
    }
    if (first > last) throw vfsError(Errno.EINVAL, `${first} is above ${last}`, "first");
    const process = this.#process(pid);
    if ((flags & CLOSE_RANGE_UNSHARE) && process.table.users > 1) {
      process.table.users--;
      process.table = process.table.copy();
    }
    for (const [fd, slot] of [...process.table.entries()]) {
      if (fd < first || fd > last) continue;
      if (flags & CLOSE_RANGE_CLOEXEC) slot.closeOnExec = true;
      else process.table.close(fd);
    }
  }

  // ---- extended attributes ----

  /** The node an *xattr call names and whether its mount is read-only. */
  #xattrNode(pid: number, target: XattrTarget): { stat: NodeStat; readOnly: boolean } {
    if ("fd" in target) {
      const { file } = this.#usable(pid, target.fd);
      return { stat: file.stat(), readOnly: this.#mountOf(file)?.readOnly ?? false };
    }
    const location = this.#resolve(this.#process(pid), AT_FDCWD, target.path, target.follow);
    const readOnly = location.kind === "node" ? location.mount.readOnly : false;
    return { stat: this.#statOf(location), readOnly };
  }

  /** getxattr(2), lgetxattr, fgetxattr: no attribute is ever there (xattrs.ts). */
  getxattr(pid: number, target: XattrTarget, name: string): never {
    throw xattrRefusal(this.#xattrNode(pid, target).stat, name, false, this.credentials);
  }

  /** setxattr(2), lsetxattr, fsetxattr: refused as xattrs.ts says, after EROFS. */
  setxattr(pid: number, target: XattrTarget, name: string): never {
    const { stat, readOnly } = this.#xattrNode(pid, target);
    if (readOnly) throw vfsError(Errno.EROFS, "the file is on a read-only mount", "path");
    throw xattrRefusal(stat, name, true, this.credentials);
  }

  /** removexattr(2), lremovexattr, fremovexattr: as setxattr. */
  removexattr(pid: number, target: XattrTarget, name: string): never {
    return this.setxattr(pid, target, name);
  }

  /** listxattr(2), llistxattr, flistxattr: the file's attribute names, of which there are none. */
  listxattr(pid: number, target: XattrTarget): Uint8Array {
    this.#xattrNode(pid, target);
    return new Uint8Array(0);
  }

  // ---- copying between descriptors ----

  /**
   * sendfile(2): up to `count` bytes from `inFd` — at `offset`, or at its file offset when
   * undefined — written to `outFd`. Returns how many moved and where reading got to.
   */
  async sendfile(
    pid: number,
    outFd: number,
    inFd: number,
    offset: number | undefined,
    count: number,
    signal?: AbortSignal,
  ): Promise<{ moved: number; offset: number }> {
    const { process, file: input } = this.#usable(pid, inFd);
    if (!input.readable) throw vfsError(Errno.EBADF, `descriptor ${inFd} is not open for reading`, "in_fd");
    const positional = input.kind === "regular" || input.kind === "device" || input.kind === "directory";
    if (offset !== undefined && !positional) {
      throw vfsError(Errno.ESPIPE, `a ${input.kind} has no file offset`, "offset");
    }
    let position = offset ?? input.offset;
    if (count < 0 || position < 0) throw vfsError(Errno.EINVAL, "a negative count or offset", "count");
    const { file: output } = this.#usable(pid, outFd);
    if (!output.writable) {
      throw vfsError(Errno.EBADF, `descriptor ${outFd} is not open for writing`, "out_fd");
    }
    if (position >= Number.MAX_SAFE_INTEGER) {
      throw vfsError(Errno.EOVERFLOW, "the offset is at the largest file size", "offset");
    }
    const wanted = Math.min(count, MAX_IO_BYTES, Number.MAX_SAFE_INTEGER - position);
    if (output.kind !== "pipe" && (output.flags & O_APPEND)) {
      throw vfsError(Errno.EINVAL, "sendfile cannot append", "out_fd");
    }
    if (input.kind !== "regular" && input.kind !== "device") {
      throw vfsError(Errno.EINVAL, `a ${input.kind} cannot be sent from`, "in_fd");
    }
    const data = input.readAt(wanted, position);
    const moved = data.length ? await output.write(data, this.#waitSignal(process, output, signal)) : 0;
    position += moved;
    if (offset === undefined) input.offset = position;
    this.counters.bytesRead += moved;
    this.counters.bytesWritten += moved;
    return { moved, offset: position };
  }

  /**
   * copy_file_range(2): up to `length` bytes between two regular files on one file system, each
   * at its offset — read (and so checked for EFAULT) once both descriptors are found — or at its
   * file offset when that is undefined (and then moved). Returns how many were copied and where
   * each range ends, for the caller to store through the pointers.
   */
  copyFileRange(
    pid: number,
    inFd: number,
    inOffset: OffsetArgument,
    outFd: number,
    outOffset: OffsetArgument,
    length: number,
    flags: number,
  ): CopyResult {
    const { file: input } = this.#usable(pid, inFd);
    const { file: output } = this.#usable(pid, outFd);
    const inAt = inOffset(), outAt = outOffset();
    const from = inAt ?? input.offset, to = outAt ?? output.offset;
    if (flags !== 0) throw vfsError(Errno.EINVAL, "copy_file_range takes no flags", "flags");
    const inStat = input.stat(), outStat = output.stat();
    if (isDirectory(inStat) || isDirectory(outStat)) {
      throw vfsError(Errno.EISDIR, "a directory cannot be copied from or to", "fd");
    }
    if ((inStat.mode & S_IFMT) !== S_IFREG || (outStat.mode & S_IFMT) !== S_IFREG) {
      throw vfsError(Errno.EINVAL, "only regular files are copied between", "fd");
    }
    if (!input.readable || !output.writable || (output.flags & O_APPEND)) {
      throw vfsError(Errno.EBADF, "the input is not readable or the output not writable", "fd");
    }
    if (this.#mountOf(input)?.fs !== this.#mountOf(output)?.fs) {
      throw vfsError(Errno.EXDEV, "the files are on different file systems", "fd_out");
    }
    const wraps = (position: number) => BigInt.asUintN(64, BigInt(position)) + BigInt(length) >= 2n ** 64n;
    if (wraps(from) || wraps(to)) throw vfsError(Errno.EOVERFLOW, "the range wraps", "length");
    let count = from >= inStat.size ? 0 : Math.min(length, inStat.size - from);
    const sameFile = inStat.device === outStat.device && inStat.inode === outStat.inode;
    if (sameFile && to + count > from && to < from + count) {
      throw vfsError(Errno.EINVAL, "the ranges overlap in one file", "length");
    }
    if (from < 0 || to < 0) throw vfsError(Errno.EINVAL, "a negative offset", "offset");
    count = Math.min(count, MAX_IO_BYTES);
    const copied = count === 0 ? 0 : output.writeAt(input.readAt(count, from), to);
    if (inAt === undefined) input.offset = from + copied;
    if (outAt === undefined) output.offset = to + copied;
    this.counters.bytesRead += copied;
    this.counters.bytesWritten += copied;
    return { copied, inOffset: from + copied, outOffset: to + copied };
  }

  // ---- waiting for descriptors ----

  /** poll(2), ppoll(2): each request's revents (readiness.ts), once one is not 0 or at `timeout` ms. */
  poll(
    pid: number,
    requests: readonly PollRequest[],
    timeout: number | undefined,
    signal?: AbortSignal,
  ): Promise<number[]> {
    const process = this.#process(pid);
    const fileOf = (fd: number) => {
      const file = process.table.find(fd)?.file;
      return file?.isPath ? undefined : file;
    };
    return whenReady(() => pollRound(requests, fileOf), timeout, this.#endings(process, signal));
  }

  /**
   * select(2), pselect6(2): the sets' descriptors below `count` that are ready, once one is or at
   * `timeout` ms; EBADF for one in a set that is not open.
   */
  select(
    pid: number,
    count: number,
    sets: SelectSets,
    timeout: number | undefined,
    signal?: AbortSignal,
  ): Promise<{ ready: number; sets: SelectSets }> {
    const process = this.#process(pid);
    const wanted: [number, OpenFile][] = [];
    for (let fd = 0; fd < Math.min(count, this.descriptorLimit); fd++) {
      if (!isInSet(sets.read, fd) && !isInSet(sets.write, fd) && !isInSet(sets.except, fd)) continue;
      const file = process.table.find(fd)?.file;
      if (!file || file.isPath) throw vfsError(Errno.EBADF, `descriptor ${fd} is not open`, "fds");
      wanted.push([fd, file]);
    }
    return whenReady(() => selectRound(sets, wanted), timeout, this.#endings(process, signal));
  }

  // ---- descriptions held by kernel peers ----

  /**
   * execve's open of its program (do_open_execat): `path` resolved from the working directory with
   * every symbolic link followed; anything but a regular file with execute permission is EACCES,
   * a directory included. The file is opened read-only and held.
   */
  openExecutable(pid: number, path: Uint8Array | string): HeldFileInfo {
    const process = this.#process(pid);
    const location = this.#resolve(process, AT_FDCWD, path, true);
    if (location.kind !== "node" || (location.stat.mode & S_IFMT) !== S_IFREG) {
      throw vfsError(Errno.EACCES, `${pathText(path)} is not a regular file`, "path");
    }
    if (!this.#permits(location.stat, X_OK)) {
      throw vfsError(Errno.EACCES, `${joinPath(location.path)} is not executable`, "path");
    }
    const file = this.#openNode(process, location, O_RDONLY);
    return this.#heldInfo(this.#held.hold(file), file);
  }

  /**
   * The hold mmap(fd) takes on the description behind a descriptor, checked in do_mmap's order:
   * EBADF for no descriptor (or an O_PATH one), EACCES for one not open for reading, ENODEV for an
   * object that cannot be mapped (only regular files can).
   */
  holdDescriptor(pid: number, fd: number): HeldFileInfo {
    const { file } = this.#file(pid, fd);
    if (file.isPath) throw vfsError(Errno.EBADF, `descriptor ${fd} is an O_PATH descriptor`, "fd");
    if (!file.readable) throw vfsError(Errno.EACCES, `descriptor ${fd} is not open for reading`, "fd");
    if (file.kind !== "regular") throw vfsError(Errno.ENODEV, `a ${file.kind} cannot be mapped`, "fd");
    return this.#heldInfo(this.#held.hold(file), file);
  }

  #heldInfo(id: bigint, file: OpenFile): HeldFileInfo {
    return {
      id,
      path: file.linkTarget(),
      stat: file.stat(),
      readable: file.readable,
      writable: file.writable,
    };
  }

  /** Up to `length` bytes of a held description at `offset`, whatever its file position. */
  readOpenFile(id: bigint, offset: number, length: number): Uint8Array {
    if (length > MAX_HELD_IO_BYTES) {
      throw vfsError(Errno.EINVAL, `${length} bytes is more than ${MAX_HELD_IO_BYTES} in one read`, "length");
    }
    const file = this.#held.file(id);
    const pieces: Uint8Array[] = [];
    let got = 0;
    while (got < length) {
      const piece = file.readAt(Math.min(length - got, MAX_IO_BYTES), offset + got);
      if (piece.length === 0) break;
      pieces.push(piece);
      got += piece.length;
    }
    this.counters.bytesRead += got;
    if (pieces.length === 1) return pieces[0];
    const data = new Uint8Array(got);
    let at = 0;
    for (const piece of pieces) {
      data.set(piece, at);
      at += piece.length;
    }
    return data;
  }

  /** Writes `data` at `offset` through a held description (a shared mapping's pages written back). */
  writeOpenFile(id: bigint, offset: number, data: Uint8Array): number {
    if (data.length > MAX_HELD_IO_BYTES) {
      throw vfsError(
        Errno.EINVAL,
        `${data.length} bytes is more than ${MAX_HELD_IO_BYTES} in one write`,
        "data",
      );
    }
    const file = this.#held.file(id);
    if (!file.writable) {
      throw vfsError(Errno.EBADF, `open file description ${id} is not open for writing`, "open_file_id");
    }
    // A page goes back where it lies in the file, whatever O_APPEND makes of write(2).
    const flags = file.flags;
    file.flags &= ~O_APPEND;
    let written: number;
    try {
      written = file.writeAt(data, offset);
    } finally {
      file.flags = flags;
    }
    this.counters.bytesWritten += written;
    return written;
  }

  /** Drops one hold; returns whether that closed the description. */
  releaseOpenFile(id: bigint): boolean {
    return this.#held.release(id);
  }
}

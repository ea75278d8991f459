// /proc: what the VFS knows of each process — self (a link to the caller's pid), and per process
// exe (the executable sched recorded at exec), cwd, root and fd/N, one link per open descriptor.
// Following fd/N reaches the open file itself, so /dev/stdin reopens whatever descriptor 0 is,
// pipe or terminal included.
import { checkAttributeChange } from "./attributes.ts";
import { permits } from "./credentials.ts";
import { Errno, vfsError } from "./errors.ts";
import type {
  AttributeChange,
  DirectoryEntry,
  DirectoryHandle,
  FileSystem,
  FsStat,
  FsStatistics,
  LinkTarget,
  ProcessView,
  Timestamp,
} from "./filesystem.ts";
import { type OpenFile, pseudoStatistics } from "./files.ts";
import {
  DT_DIR,
  DT_LNK,
  makeDevice,
  O_ACCMODE,
  O_RDONLY,
  O_RDWR,
  O_WRONLY,
  PROC_SUPER_MAGIC,
  S_IFDIR,
  S_IFLNK,
  S_IFMT,
  W_OK,
  X_OK,
} from "./linux.ts";
import { joinPath } from "./paths.ts";

/** The anonymous device /proc lives on. */
export const PROC_DEVICE = makeDevice(0, 22);
const ROOT_INODE = 1;
const SELF_INODE = 2;
/** Inodes of a process's nodes are spaced this far apart; descriptors start 16 in. */
const INODES_PER_PROCESS = 0x100000;
const PROCESS_LINKS = ["exe", "cwd", "root"] as const;

type ProcNode =
  | { kind: "root" }
  | { kind: "self" }
  | { kind: "process"; process: ProcessView }
  | { kind: "link"; process: ProcessView; name: typeof PROCESS_LINKS[number] }
  | { kind: "fds"; process: ProcessView }
  | { kind: "fd"; process: ProcessView; fd: number; file: OpenFile };

export class ProcFileSystem implements FileSystem {
  readonly kind = "proc";
  readonly source = "proc";

  constructor(
    private readonly processes: {
      get(pid: number): ProcessView | undefined;
      keys(): Iterable<number>;
    },
    private readonly credentials: { uid: number; gid: number },
    private readonly started: Timestamp,
  ) {}

  #missing(path: readonly string[]): never {
    throw vfsError(Errno.ENOENT, `/proc/${path.join("/")} does not exist`, "path");
  }

  #node(path: readonly string[]): ProcNode {
    if (path.length === 0) return { kind: "root" };
    if (path[0] === "self") {
      if (path.length > 1) this.#missing(path);
      return { kind: "self" };
    }
    const process = /^[1-9][0-9]*$/.test(path[0]) ? this.processes.get(Number(path[0])) : undefined;
    if (!process) this.#missing(path);
    if (path.length === 1) return { kind: "process", process };
    const name = path[1];
    if (path.length === 2) {
      if (name === "fd") return { kind: "fds", process };
      const link = PROCESS_LINKS.find((l) => l === name);
      if (link) return { kind: "link", process, name: link };
    }
    if (path.length === 3 && name === "fd" && /^(0|[1-9][0-9]*)$/.test(path[2])) {
      const fd = Number(path[2]);
      for (const [n, file] of process.descriptors()) if (n === fd) return { kind: "fd", process, fd, file };
    }
    return this.#missing(path);
  }

  #inode(node: ProcNode): number {
    switch (node.kind) {
      case "root":
        return ROOT_INODE;
      case "self":
        return SELF_INODE;
      case "process":
        return node.process.pid * INODES_PER_PROCESS;
      case "link":
        return node.process.pid * INODES_PER_PROCESS + 1 + PROCESS_LINKS.indexOf(node.name);
      case "fds":
        return node.process.pid * INODES_PER_PROCESS + 8;
      case "fd":
        return node.process.pid * INODES_PER_PROCESS + 16 + node.fd;
    }
  }

  #mode(node: ProcNode): number {
    switch (node.kind) {
      case "root":
        return S_IFDIR | 0o555;
      case "process":
        return S_IFDIR | 0o555;
      case "fds":
        return S_IFDIR | 0o500;
      case "self":
        return S_IFLNK | 0o777;
      case "link":
        return S_IFLNK | 0o777;
      case "fd": {
        // The link's permissions show how the descriptor was opened, as Linux's do.
        const access = node.file.flags & O_ACCMODE;
        const read = access === O_RDONLY || access === O_RDWR ? 0o400 : 0;
        const write = access === O_WRONLY || access === O_RDWR ? 0o200 : 0;
        return S_IFLNK | read | write | 0o100;
      }
    }
  }

  stat(path: readonly string[]): FsStat {
    const node = this.#node(path);
    const mode = this.#mode(node);
    return {
      device: PROC_DEVICE,
      inode: this.#inode(node),
      mode,
      links: (mode & S_IFMT) === S_IFDIR ? 2 : 1,
      uid: node.kind === "root" || node.kind === "self" ? 0 : this.credentials.uid,
      gid: node.kind === "root" || node.kind === "self" ? 0 : this.credentials.gid,
      rdev: 0,
      size: 0,
      blockSize: 1024,
      blocks: 0,
      accessTime: this.started,
      modifyTime: this.started,
      changeTime: this.started,
    };
  }

  readLink(path: readonly string[], caller: ProcessView): LinkTarget {
    const node = this.#node(path);
    switch (node.kind) {
      case "self":
        return { target: String(caller.pid) };
      case "link":
        if (node.name === "exe") {
          if (node.process.executable === undefined) {
            throw vfsError(Errno.ENOENT, `process ${node.process.pid} has not executed a program`, "path");
          }
          return { target: node.process.executable };
        }
        return { target: node.name === "cwd" ? joinPath(node.process.cwd) : "/" };
      case "fd":
        return { target: node.file.linkTarget(), file: node.file };
      default:
        throw vfsError(Errno.EINVAL, `/proc/${path.join("/")} is not a symbolic link`, "path");
    }
  }

  list(path: readonly string[]): DirectoryEntry[] {
    const node = this.#node(path);
    switch (node.kind) {
      case "root":
        return [
          { name: "self", inode: SELF_INODE, type: DT_LNK },
          ...[...this.processes.keys()].sort((a, b) => a - b).map((pid) => ({
            name: String(pid),
            inode: pid * INODES_PER_PROCESS,
            type: DT_DIR,
          })),
        ];
      case "process":
        return [
          ...PROCESS_LINKS.map((name) => ({
            name,
            inode: this.#inode({ ...node, kind: "link", name }),
            type: DT_LNK,
          })),
          { name: "fd", inode: this.#inode({ ...node, kind: "fds" }), type: DT_DIR },
        ];
      case "fds":
        return [...node.process.descriptors()].sort(([a], [b]) => a - b).map(([fd, file]) => ({
          name: String(fd),
          inode: this.#inode({ kind: "fd", process: node.process, fd, file }),
          type: DT_LNK,
        }));
      default:
        throw vfsError(Errno.ENOTDIR, `/proc/${path.join("/")} is not a directory`, "path");
    }
  }

  openDirectory(path: readonly string[]): DirectoryHandle {
    return {
      stat: () => this.stat(path),
      sync: () => {
        throw vfsError(Errno.EINVAL, "/proc cannot be synced", "fd");
      },
      close: () => {},
    };
  }

  open(path: readonly string[]): OpenFile {
    throw vfsError(Errno.ENXIO, `/proc/${path.join("/")} is not a file that can be opened`, "path");
  }

  create(path: readonly string[]): OpenFile {
    return this.#missing(path);
  }

  makeDirectory(path: readonly string[]): void {
    this.#missing(path);
  }

  #fixed(path: readonly string[]): never {
    throw vfsError(Errno.EACCES, `/proc/${path.join("/")} cannot be changed`, "path");
  }

  unlink(path: readonly string[]): void {
    this.#fixed(path);
  }

  removeDirectory(path: readonly string[]): void {
    this.#fixed(path);
  }

  rename(from: readonly string[]): void {
    this.#fixed(from);
  }

  exchange(a: readonly string[]): void {
    this.#fixed(a);
  }

  truncate(path: readonly string[]): void {
    this.#fixed(path);
  }

  /**
   * proc_setattr: a mode never changes (EPERM); an owner or time change is checked as anywhere
   * and keeps no effect, as Linux's revalidation gives each entry its process's owner again.
   */
  changeAttributes(path: readonly string[], change: AttributeChange): void {
    if (change.kind === "mode") {
      throw vfsError(Errno.EPERM, `the mode of /proc/${path.join("/")} cannot change`, "path");
    }
    checkAttributeChange(this.stat(path), change, this.credentials);
  }

  /** Nothing is made in /proc: EACCES without write permission on the directory, else EPERM. */
  #noNewNames(path: readonly string[]): never {
    if (!permits(this.stat(path.slice(0, -1)), W_OK | X_OK, this.credentials)) {
      throw vfsError(Errno.EACCES, `/proc/${path.slice(0, -1).join("/")} is not writable`, "path");
    }
    throw vfsError(Errno.EPERM, "/proc makes no links", "path");
  }

  symlink(path: readonly string[]): void {
    this.#noNewNames(path);
  }

  link(_from: readonly string[], to: readonly string[]): void {
    this.#noNewNames(to);
  }

  /** simple_statfs: the magic number and name length, no counts. */
  statistics(): FsStatistics {
    return pseudoStatistics(PROC_SUPER_MAGIC);
  }
}

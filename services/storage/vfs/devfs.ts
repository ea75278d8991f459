// /dev: the console and the character devices every program expects — null, zero, full, random,
// urandom, tty — and the links stdin, stdout, stderr and fd into /proc/self/fd. The set is fixed:
// nothing can be created, removed or renamed in it. Their modes, owners and times live in memory,
// as devtmpfs keeps them: root may change them, and anyone with write permission may touch them.
import { checkAttributeChange, type MemoryAttributes } from "./attributes.ts";
import type { Credentials } from "./credentials.ts";
import { Errno, vfsError } from "./errors.ts";
import type {
  AttributeChange,
  DirectoryEntry,
  DirectoryHandle,
  FileSystem,
  FsStat,
  FsStatistics,
  NodeStat,
  Timestamp,
} from "./filesystem.ts";
import { MAX_IO_BYTES, OpenFile, pseudoStatistics } from "./files.ts";
import {
  direntType,
  makeDevice,
  PAGE_SIZE,
  S_IFCHR,
  S_IFDIR,
  S_IFLNK,
  S_IFMT,
  TMPFS_MAGIC,
} from "./linux.ts";
import { type StdStreams, StreamFile } from "./streams.ts";

/** The anonymous device /dev lives on, as devtmpfs does. */
export const DEVTMPFS_DEVICE = makeDevice(0, 5);
const EMPTY = new Uint8Array(0);
/** crypto.getRandomValues fills at most this many bytes per call. */
const RANDOM_CHUNK_BYTES = 65536;

type Behaviour = "null" | "zero" | "full" | "random";

interface DeviceNode {
  kind: "device";
  rdev: number;
  permissions: number;
  behaviour: Behaviour;
}

interface ConsoleNode {
  kind: "console";
  rdev: number;
  permissions: number;
  /** /dev/tty: the console, but only while it is a terminal (else ENXIO, as with no controlling tty). */
  terminalOnly: boolean;
}

interface LinkNode {
  kind: "link";
  target: string;
}

type Node = DeviceNode | ConsoleNode | LinkNode;

const NODES: ReadonlyMap<string, Node> = new Map<string, Node>([
  ["console", { kind: "console", rdev: makeDevice(5, 1), permissions: 0o600, terminalOnly: false }],
  ["fd", { kind: "link", target: "/proc/self/fd" }],
  ["full", { kind: "device", rdev: makeDevice(1, 7), permissions: 0o666, behaviour: "full" }],
  ["null", { kind: "device", rdev: makeDevice(1, 3), permissions: 0o666, behaviour: "null" }],
  ["random", { kind: "device", rdev: makeDevice(1, 8), permissions: 0o666, behaviour: "random" }],
  ["stderr", { kind: "link", target: "/proc/self/fd/2" }],
  ["stdin", { kind: "link", target: "/proc/self/fd/0" }],
  ["stdout", { kind: "link", target: "/proc/self/fd/1" }],
  ["tty", { kind: "console", rdev: makeDevice(5, 0), permissions: 0o666, terminalOnly: true }],
  ["urandom", { kind: "device", rdev: makeDevice(1, 9), permissions: 0o666, behaviour: "random" }],
  ["zero", { kind: "device", rdev: makeDevice(1, 5), permissions: 0o666, behaviour: "zero" }],
]);
const NAMES = [...NODES.keys()];
const ROOT_INODE = 1;

function inodeOf(name: string): number {
  return ROOT_INODE + 1 + NAMES.indexOf(name);
}

/** /dev/null, /dev/zero, /dev/full, /dev/random and /dev/urandom. */
export class DeviceFile extends OpenFile {
  readonly kind = "device";

  constructor(flags: number, private readonly behaviour: Behaviour, private readonly statNode: () => FsStat) {
    super(flags);
  }

  stat(): NodeStat {
    return this.mounted(this.statNode());
  }

  override read(count: number): Uint8Array {
    return this.readAt(count);
  }

  override readAt(count: number): Uint8Array {
    const n = Math.min(count, MAX_IO_BYTES);
    switch (this.behaviour) {
      case "null":
        return EMPTY;
      case "zero":
      case "full":
        return new Uint8Array(n);
      case "random": {
        const bytes = new Uint8Array(n);
        for (let at = 0; at < n; at += RANDOM_CHUNK_BYTES) {
          crypto.getRandomValues(bytes.subarray(at, Math.min(n, at + RANDOM_CHUNK_BYTES)));
        }
        return bytes;
      }
    }
  }

  override write(data: Uint8Array): number {
    return this.writeAt(data);
  }

  override writeAt(data: Uint8Array): number {
    if (this.behaviour === "full") throw vfsError(Errno.ENOSPC, "/dev/full is always full", "fd");
    return data.length;
  }

  /** These devices have no position: every seek lands at 0, as null_lseek answers. */
  override seek(): number {
    this.offset = 0;
    return 0;
  }
}

export class DevicesFileSystem implements FileSystem {
  readonly kind = "devices";
  readonly source = "devtmpfs";
  /** Each node's attributes by name ("" for /dev itself), once first looked at. */
  readonly #attributes = new Map<string, MemoryAttributes>();

  constructor(
    private readonly stdio: StdStreams,
    private readonly started: Timestamp,
    private readonly credentials: Credentials,
  ) {}

  #node(path: readonly string[]): Node {
    const node = path.length === 1 ? NODES.get(path[0]) : undefined;
    if (!node) throw vfsError(Errno.ENOENT, `/dev/${path.join("/")} does not exist`, "path");
    return node;
  }

  #attributesOf(path: readonly string[]): MemoryAttributes {
    const name = path.length ? path[0] : "";
    let attributes = this.#attributes.get(name);
    if (!attributes) {
      const node = path.length ? this.#node(path) : undefined;
      const mode = !node
        ? S_IFDIR | 0o755
        : node.kind === "link"
        ? S_IFLNK | 0o777
        : S_IFCHR | node.permissions;
      const time = this.started;
      attributes = { mode, uid: 0, gid: 0, accessTime: time, modifyTime: time, changeTime: time };
      this.#attributes.set(name, attributes);
    }
    return attributes;
  }

  stat(path: readonly string[]): FsStat {
    const node = path.length ? this.#node(path) : undefined;
    const { mode, ...attributes } = this.#attributesOf(path);
    return {
      device: DEVTMPFS_DEVICE,
      inode: node ? inodeOf(path[0]) : ROOT_INODE,
      mode,
      links: (mode & S_IFMT) === S_IFDIR ? 2 : 1,
      rdev: node?.kind === "link" ? 0 : node?.rdev ?? 0,
      size: !node ? NODES.size * 20 : node.kind === "link" ? node.target.length : 0,
      blockSize: PAGE_SIZE,
      blocks: 0,
      ...attributes,
    };
  }

  readLink(path: readonly string[]): { target: string } {
    const node = path.length ? this.#node(path) : undefined;
    if (node?.kind !== "link") {
      throw vfsError(Errno.EINVAL, `/dev/${path.join("/")} is not a symbolic link`, "path");
    }
    return { target: node.target };
  }

  list(path: readonly string[]): DirectoryEntry[] {
    if (path.length) throw vfsError(Errno.ENOTDIR, `/dev/${path.join("/")} is not a directory`, "path");
    return NAMES.map((name) => ({ name, inode: inodeOf(name), type: direntType(this.stat([name]).mode) }));
  }

  openDirectory(path: readonly string[]): DirectoryHandle {
    return {
      stat: () => this.stat(path),
      // devtmpfs keeps everything in memory: there is nothing to write back.
      sync: () => {},
      close: () => {},
    };
  }

  open(path: readonly string[], _stat: FsStat, flags: number): OpenFile {
    const node = this.#node(path);
    if (node.kind === "console") {
      if (node.terminalOnly && !this.stdio.console.terminal) {
        throw vfsError(Errno.ENXIO, "there is no controlling terminal", "path");
      }
      return new StreamFile(flags, this.stdio.console);
    }
    if (node.kind === "device") return new DeviceFile(flags, node.behaviour, () => this.stat(path));
    throw vfsError(Errno.ELOOP, `/dev/${path[0]} is a symbolic link`, "path");
  }

  #fixed(): never {
    throw vfsError(Errno.EACCES, "/dev holds a fixed set of devices", "path");
  }

  create(): OpenFile {
    return this.#fixed();
  }

  makeDirectory(): void {
    this.#fixed();
  }

  unlink(): void {
    this.#fixed();
  }

  removeDirectory(): void {
    this.#fixed();
  }

  rename(): void {
    this.#fixed();
  }

  exchange(): void {
    this.#fixed();
  }

  truncate(): void {
    throw vfsError(Errno.EINVAL, "/dev holds no regular files", "path");
  }

  changeAttributes(path: readonly string[], change: AttributeChange): void {
    const name = path.length ? path[0] : "";
    this.#attributes.set(name, checkAttributeChange(this.#attributesOf(path), change, this.credentials));
  }

  symlink(): void {
    this.#fixed();
  }

  link(): void {
    this.#fixed();
  }

  /** A tmpfs mounted without size limits, as the kernel's own devtmpfs mount is: no counts. */
  statistics(): FsStatistics {
    return { ...pseudoStatistics(TMPFS_MAGIC), id: [DEVTMPFS_DEVICE, 0] };
  }
}

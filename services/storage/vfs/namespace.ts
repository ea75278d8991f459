// The mount table and path lookup. Lookup walks one component at a time over canonical guest
// paths: "." stays, ".." goes to the parent (and stays at "/", so no path leaves the root), a
// mount point enters the mounted file system, and a symbolic link is read and its target spliced
// in — an absolute target restarts at the guest's "/", as under chroot, so a link pointing outside
// a host folder resolves inside the guest root. More than MAX_SYMLINKS links in one lookup is
// ELOOP.
import { AstraError } from "../../../lib/errors.ts";
import { Errno, vfsError } from "./errors.ts";
import type { DirectoryEntry, FileSystem, LinkTarget, NodeStat, ProcessView } from "./filesystem.ts";
import type { OpenFile } from "./files.ts";
import { DT_DIR, MAX_SYMLINKS, S_IFDIR, S_IFLNK, S_IFMT } from "./linux.ts";
import { joinPath, type ParsedPath, parsePath } from "./paths.ts";

export interface Mount {
  readonly id: number;
  /** Canonical guest path of the mount point. */
  readonly point: readonly string[];
  readonly fs: FileSystem;
  readonly readOnly: boolean;
}

/** An existing node, by its canonical guest path. */
export interface NodeLocation {
  kind: "node";
  path: string[];
  mount: Mount;
  /** The path inside the mount's file system. */
  relative: string[];
  stat: NodeStat;
}

/** What a magic link (/proc/<pid>/fd/N) leads to when its object has no path: a pipe, a stream. */
export interface FileLocation {
  kind: "file";
  file: OpenFile;
}

/** The last component does not exist; its parent directory does. */
export interface MissingLocation {
  kind: "missing";
  parent: string[];
  name: string;
  mount: Mount;
  relative: string[];
}

export type Location = NodeLocation | FileLocation;

/** A path's parent directory and last component, for calls that create or remove names. */
export interface ParentLocation {
  parent: NodeLocation;
  /** "normal" for a name; ".", ".." and "/" are what mkdir, unlink, rmdir and rename refuse. */
  last: "normal" | "dot" | "dotdot" | "root";
  name: string;
  trailingSlash: boolean;
}

export function isDirectory(stat: { mode: number }): boolean {
  return (stat.mode & S_IFMT) === S_IFDIR;
}

export function isSymlink(stat: { mode: number }): boolean {
  return (stat.mode & S_IFMT) === S_IFLNK;
}

/** `inner` is `outer` or lies beneath it. */
export function isWithin(inner: readonly string[], outer: readonly string[]): boolean {
  return outer.length <= inner.length && outer.every((c, i) => inner[i] === c);
}

export class MountNamespace {
  #mounts: Mount[] = [];
  #byPoint = new Map<string, Mount>();
  #nextId = 1;

  mount(point: readonly string[], fs: FileSystem, readOnly: boolean): Mount {
    const mount: Mount = { id: this.#nextId++, point: [...point], fs, readOnly };
    // A later mount on the same point covers the earlier one, as stacked mounts do.
    this.#mounts.push(mount);
    this.#byPoint.set(joinPath(point), mount);
    return mount;
  }

  get mounts(): readonly Mount[] {
    return this.#mounts;
  }

  isMountPoint(path: readonly string[]): boolean {
    return this.#byPoint.has(joinPath(path));
  }

  /** The mount `path` lies on and the path inside it. */
  mountAt(path: readonly string[]): { mount: Mount; relative: string[] } {
    for (let depth = path.length; depth >= 0; depth--) {
      const mount = this.#byPoint.get(joinPath(path.slice(0, depth)));
      if (mount) return { mount, relative: path.slice(depth) };
    }
    throw vfsError(Errno.ENOENT, "no file system is mounted at /", "path");
  }

  /** lstat of a canonical guest path. */
  stat(path: readonly string[], caller: ProcessView): NodeStat {
    const { mount, relative } = this.mountAt(path);
    return { ...mount.fs.stat(relative, caller), mountId: mount.id, mountRoot: relative.length === 0 };
  }

  locate(path: string[], caller: ProcessView): NodeLocation {
    const { mount, relative } = this.mountAt(path);
    const stat = { ...mount.fs.stat(relative, caller), mountId: mount.id, mountRoot: relative.length === 0 };
    return { kind: "node", path, mount, relative, stat };
  }

  readLink(path: readonly string[], caller: ProcessView): LinkTarget {
    const { mount, relative } = this.mountAt(path);
    return mount.fs.readLink(relative, caller);
  }

  /**
   * The names in a directory without "." and "..", plus mount points directly beneath it that its
   * own file system does not list.
   */
  list(path: readonly string[], caller: ProcessView): DirectoryEntry[] {
    const { mount, relative } = this.mountAt(path);
    const entries = mount.fs.list(relative, caller);
    const names = new Set(entries.map((e) => e.name));
    for (const m of this.#mounts) {
      const name = m.point[path.length];
      if (m.point.length !== path.length + 1 || names.has(name) || !isWithin(m.point, path)) continue;
      names.add(name);
      entries.push({ name, inode: m.fs.stat([], caller).inode, type: DT_DIR });
    }
    return entries;
  }

  /**
   * Resolves `path` from `start` (a canonical directory path). `followLast` follows a final
   * symbolic link; a trailing slash always does and requires a directory. A missing last component
   * is returned as such (for O_CREAT); anything missing before it is ENOENT.
   */
  walk(
    caller: ProcessView,
    start: readonly string[],
    path: ParsedPath,
    followLast: boolean,
  ): Location | MissingLocation {
    let current = path.absolute ? [] : [...start];
    // Components still to walk, the next one last.
    const pending = [...path.components].reverse();
    let trailingSlash = path.trailingSlash;
    let links = 0;
    while (pending.length) {
      const name = pending.pop()!;
      const last = pending.length === 0;
      if (name === "." || name === "..") {
        if (name === ".." && current.length) current.pop();
        if (!last) continue;
        const here = this.locate(current, caller);
        if (!isDirectory(here.stat)) {
          throw vfsError(Errno.ENOTDIR, `${joinPath(current)} is not a directory`, "path");
        }
        return here;
      }
      const child = [...current, name];
      let location: NodeLocation;
      try {
        location = this.locate(child, caller);
      } catch (err) {
        if (last && err instanceof AstraError && err.errno === Errno.ENOENT) {
          const { mount, relative } = this.mountAt(child);
          return { kind: "missing", parent: current, name, mount, relative };
        }
        throw err;
      }
      if (isSymlink(location.stat) && (!last || followLast || trailingSlash)) {
        if (++links > MAX_SYMLINKS) {
          throw vfsError(Errno.ELOOP, `more than ${MAX_SYMLINKS} symbolic links in one lookup`, "path");
        }
        const link = this.readLink(child, caller);
        if (last && link.file && !link.file.path) return { kind: "file", file: link.file };
        if (link.target === "") throw vfsError(Errno.ENOENT, `${joinPath(child)} is an empty link`, "path");
        const target = parsePath(link.target);
        if (target.absolute) current = [];
        if (last && target.trailingSlash) trailingSlash = true;
        if (last && target.components.length === 0) pending.push(".");
        for (let i = target.components.length - 1; i >= 0; i--) pending.push(target.components[i]);
        continue;
      }
      if ((!last || trailingSlash) && !isDirectory(location.stat)) {
        throw vfsError(Errno.ENOTDIR, `${joinPath(child)} is not a directory`, "path");
      }
      if (last) return location;
      current = child;
    }
    return this.locate(current, caller);
  }

  /** The parent directory of `path` (all its links followed) and its last component. */
  walkParent(caller: ProcessView, start: readonly string[], path: ParsedPath): ParentLocation {
    const components = path.components;
    const name = components[components.length - 1] ?? "";
    const parentPath: ParsedPath = {
      absolute: path.absolute,
      components: components.slice(0, -1),
      trailingSlash: true,
    };
    const parent = this.walk(caller, start, parentPath, true);
    if (parent.kind === "missing") {
      throw vfsError(Errno.ENOENT, `${joinPath([...parent.parent, parent.name])} does not exist`, "path");
    }
    if (parent.kind === "file") {
      throw vfsError(Errno.ENOTDIR, "the parent of the path is not a directory", "path");
    }
    if (!isDirectory(parent.stat)) {
      throw vfsError(Errno.ENOTDIR, `${joinPath(parent.path)} is not a directory`, "path");
    }
    const last = components.length === 0
      ? "root"
      : name === "."
      ? "dot"
      : name === ".."
      ? "dotdot"
      : "normal";
    return { parent, last, name, trailingSlash: path.trailingSlash };
  }
}

// Path lookup: ".", "..", symbolic links (relative, absolute, chained, looping), the guest root as
// a chroot, trailing slashes, *at lookups from directory descriptors, mounts and limits.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  AT_FDCWD,
  AT_SYMLINK_NOFOLLOW,
  O_CREAT,
  O_DIRECTORY,
  O_NOFOLLOW,
  O_PATH,
  O_RDONLY,
  O_WRONLY,
  S_IFDIR,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
} from "../../../services/storage/vfs/linux.ts";
import { decode, encode, Errno, errnoOf, type Fixture, fixture } from "./helpers.ts";

let f: Fixture;

beforeEach(() => {
  f = fixture();
  Deno.mkdirSync(f.host("a/b/c"), { recursive: true });
  Deno.writeTextFileSync(f.host("a/b/file"), "in b");
  Deno.writeTextFileSync(f.host("top"), "at the root");
});

afterEach(() => f.remove());

const statType = (pid: number, path: string, flags = 0) =>
  f.vfs.fstatat(pid, AT_FDCWD, path, flags).mode & S_IFMT;

function readAll(path: string): string {
  const fd = f.vfs.openat(f.pid, AT_FDCWD, path, O_RDONLY, 0);
  const data = f.vfs.pread(f.pid, fd, 4096, 0);
  f.vfs.close(f.pid, fd);
  return decode(data);
}

describe("lookup of . and ..", () => {
  it("resolves . and .. inside the tree", () => {
    expect(readAll("a/./b/../b/file")).toBe("in b");
    expect(readAll("/a/b/c/../../b/./file")).toBe("in b");
    expect(statType(f.pid, "a/b/c/..")).toBe(S_IFDIR);
  });

  it("stays at the root on .. from /, however many", () => {
    expect(readAll("/../../../top")).toBe("at the root");
    expect(readAll("../../top")).toBe("at the root");
    f.vfs.chdir(f.pid, "/../..");
    expect(decode(f.vfs.getcwd(f.pid))).toBe("/");
  });

  it("needs a directory before . and ..", () => {
    expect(errnoOf(() => f.vfs.fstatat(f.pid, AT_FDCWD, "top/.", 0))).toBe(Errno.ENOTDIR);
    expect(errnoOf(() => f.vfs.fstatat(f.pid, AT_FDCWD, "top/..", 0))).toBe(Errno.ENOTDIR);
    expect(errnoOf(() => f.vfs.fstatat(f.pid, AT_FDCWD, "top/x", 0))).toBe(Errno.ENOTDIR);
    expect(errnoOf(() => f.vfs.fstatat(f.pid, AT_FDCWD, "missing/..", 0))).toBe(Errno.ENOENT);
  });

  it("collapses repeated slashes", () => {
    expect(readAll("//a///b//file")).toBe("in b");
  });
});

describe("symbolic links", () => {
  it("follows relative links, in the middle and at the end", () => {
    Deno.symlinkSync("b", f.host("a/lb"));
    Deno.symlinkSync("file", f.host("a/b/lf"));
    expect(readAll("a/lb/file")).toBe("in b");
    expect(readAll("a/lb/lf")).toBe("in b");
    expect(statType(f.pid, "a/lb/lf", AT_SYMLINK_NOFOLLOW)).toBe(S_IFLNK);
    expect(statType(f.pid, "a/lb/lf")).toBe(S_IFREG);
  });

  it("resolves .. after a link from where the link points, not from the link", () => {
    Deno.symlinkSync("b/c", f.host("a/deep"));
    // a/deep is a/b/c; its parent is a/b, so a/deep/../file is a/b/file.
    expect(readAll("a/deep/../file")).toBe("in b");
  });

  it("resolves absolute targets inside the guest root, as chroot does", () => {
    // On the host this link points at the host's /top (which does not exist there).
    Deno.symlinkSync("/top", f.host("a/abs"));
    expect(readAll("a/abs")).toBe("at the root");
    Deno.symlinkSync("/a/b", f.host("absdir"));
    expect(readAll("absdir/file")).toBe("in b");
  });

  it("never escapes the root through links made of ..", () => {
    Deno.symlinkSync("../../../../../..", f.host("a/b/up"));
    expect(readAll("a/b/up/top")).toBe("at the root");
    Deno.symlinkSync("/../../etc", f.host("etc-outside"));
    Deno.mkdirSync(f.host("etc"));
    Deno.writeTextFileSync(f.host("etc/hostname"), "guest");
    expect(readAll("etc-outside/hostname")).toBe("guest");
  });

  it("fails a lookup with more than 40 links with ELOOP, and 40 succeed", () => {
    Deno.symlinkSync("top", f.host("l0"));
    for (let i = 1; i <= 40; i++) Deno.symlinkSync(`l${i - 1}`, f.host(`l${i}`));
    expect(readAll("l39")).toBe("at the root");
    expect(errnoOf(() => readAll("l40"))).toBe(Errno.ELOOP);
    Deno.symlinkSync("self", f.host("self"));
    expect(errnoOf(() => f.vfs.fstatat(f.pid, AT_FDCWD, "self", 0))).toBe(Errno.ELOOP);
    expect(statType(f.pid, "self", AT_SYMLINK_NOFOLLOW)).toBe(S_IFLNK);
  });

  it("answers ENOENT for a dangling link and for an empty target", () => {
    Deno.symlinkSync("nowhere", f.host("dangling"));
    expect(errnoOf(() => f.vfs.fstatat(f.pid, AT_FDCWD, "dangling", 0))).toBe(Errno.ENOENT);
    expect(statType(f.pid, "dangling", AT_SYMLINK_NOFOLLOW)).toBe(S_IFLNK);
  });

  it("follows a final link with a trailing slash even when asked not to", () => {
    Deno.symlinkSync("a", f.host("la"));
    expect(statType(f.pid, "la/", AT_SYMLINK_NOFOLLOW)).toBe(S_IFDIR);
    Deno.symlinkSync("top", f.host("lt"));
    expect(errnoOf(() => f.vfs.fstatat(f.pid, AT_FDCWD, "lt/", AT_SYMLINK_NOFOLLOW))).toBe(Errno.ENOTDIR);
  });

  it("opens through O_NOFOLLOW only when the last component is not a link", () => {
    Deno.symlinkSync("a", f.host("la"));
    expect(errnoOf(() => f.vfs.openat(f.pid, AT_FDCWD, "la", O_RDONLY | O_NOFOLLOW, 0))).toBe(Errno.ELOOP);
    const fd = f.vfs.openat(f.pid, AT_FDCWD, "la/b/file", O_RDONLY | O_NOFOLLOW, 0);
    expect(fd).toBeGreaterThan(2);
    const path = f.vfs.openat(f.pid, AT_FDCWD, "la", O_PATH | O_NOFOLLOW, 0);
    expect(f.vfs.fstat(f.pid, path).mode & S_IFMT).toBe(S_IFLNK);
    expect(decode(f.vfs.readlinkat(f.pid, path, ""))).toBe("a");
  });

  it("creates through a dangling link with O_CREAT, in the link's target directory", () => {
    Deno.symlinkSync("a/b/new", f.host("to-new"));
    const fd = f.vfs.openat(f.pid, AT_FDCWD, "to-new", O_WRONLY | O_CREAT, 0o644);
    expect(f.vfs.pwrite(f.pid, fd, encode("made"), 0)).toBe(4);
    expect(Deno.readTextFileSync(f.host("a/b/new"))).toBe("made");
  });
});

describe("trailing slashes and names", () => {
  it("requires a directory where a path ends in /", () => {
    expect(statType(f.pid, "a/")).toBe(S_IFDIR);
    expect(errnoOf(() => f.vfs.fstatat(f.pid, AT_FDCWD, "top/", 0))).toBe(Errno.ENOTDIR);
    expect(errnoOf(() => f.vfs.openat(f.pid, AT_FDCWD, "top/", O_RDONLY, 0))).toBe(Errno.ENOTDIR);
    expect(errnoOf(() => f.vfs.openat(f.pid, AT_FDCWD, "new/", O_RDONLY | O_CREAT, 0o644))).toBe(
      Errno.EISDIR,
    );
  });

  it("fails an empty path with ENOENT", () => {
    expect(errnoOf(() => f.vfs.openat(f.pid, AT_FDCWD, "", O_RDONLY, 0))).toBe(Errno.ENOENT);
    expect(errnoOf(() => f.vfs.fstatat(f.pid, AT_FDCWD, "", 0))).toBe(Errno.ENOENT);
  });

  it("limits components to NAME_MAX and paths to PATH_MAX", () => {
    expect(errnoOf(() => f.vfs.fstatat(f.pid, AT_FDCWD, "x".repeat(256), 0))).toBe(Errno.ENAMETOOLONG);
    expect(errnoOf(() => f.vfs.fstatat(f.pid, AT_FDCWD, "x".repeat(255), 0))).toBe(Errno.ENOENT);
    expect(errnoOf(() => f.vfs.fstatat(f.pid, AT_FDCWD, "a/".repeat(2048), 0))).toBe(Errno.ENAMETOOLONG);
  });

  it("takes paths as bytes and refuses what is not UTF-8", () => {
    Deno.writeTextFileSync(f.host("café"), "accent");
    expect(readAll("caf\u00e9")).toBe("accent");
    expect(errnoOf(() => f.vfs.fstatat(f.pid, AT_FDCWD, new Uint8Array([0x66, 0xff]), 0))).toBe(Errno.EILSEQ);
  });
});

describe("*at lookups and the working directory", () => {
  it("resolves relative paths from a directory descriptor and ignores it for absolute ones", () => {
    const dir = f.vfs.openat(f.pid, AT_FDCWD, "a/b", O_RDONLY | O_DIRECTORY, 0);
    const fd = f.vfs.openat(f.pid, dir, "file", O_RDONLY, 0);
    expect(decode(f.vfs.pread(f.pid, fd, 100, 0))).toBe("in b");
    const file = f.vfs.openat(f.pid, AT_FDCWD, "top", O_RDONLY, 0);
    expect(errnoOf(() => f.vfs.openat(f.pid, file, "x", O_RDONLY, 0))).toBe(Errno.ENOTDIR);
    expect(errnoOf(() => f.vfs.openat(f.pid, 99, "x", O_RDONLY, 0))).toBe(Errno.EBADF);
    expect(f.vfs.openat(f.pid, 99, "/top", O_RDONLY, 0)).toBeGreaterThan(2);
  });

  it("takes an O_PATH directory as a starting point", () => {
    const dir = f.vfs.openat(f.pid, AT_FDCWD, "a", O_PATH, 0);
    expect(f.vfs.fstatat(f.pid, dir, "b/file", 0).size).toBe(4);
  });

  it("resolves relative paths from the working directory", () => {
    f.vfs.chdir(f.pid, "a/b");
    expect(readAll("file")).toBe("in b");
    expect(decode(f.vfs.getcwd(f.pid))).toBe("/a/b");
    f.vfs.chdir(f.pid, "c/..");
    expect(decode(f.vfs.getcwd(f.pid))).toBe("/a/b");
  });

  it("records the working directory by where links lead", () => {
    Deno.symlinkSync("a/b", f.host("lb"));
    f.vfs.chdir(f.pid, "lb");
    expect(decode(f.vfs.getcwd(f.pid))).toBe("/a/b");
  });
});

describe("mounts", () => {
  it("lists /dev and /proc in the root although the host folder has neither", () => {
    const fd = f.vfs.openat(f.pid, AT_FDCWD, "/", O_RDONLY | O_DIRECTORY, 0);
    const names = f.vfs.getdents64(f.pid, fd, 65536).entries.map((e) => e.name);
    expect(names).toEqual(expect.arrayContaining([".", "..", "a", "top", "dev", "proc"]));
  });

  it("mounts a second host folder on a directory and crosses it with ..", () => {
    const other = Deno.makeTempDirSync({ prefix: "astra-vfs-other-" });
    try {
      Deno.writeTextFileSync(`${other}/inside`, "other folder");
      const mount = f.vfs.mountHostFolder(other, "/a/b/c");
      expect(readAll("/a/b/c/inside")).toBe("other folder");
      expect(readAll("/a/b/c/../file")).toBe("in b");
      const stat = f.vfs.fstatat(f.pid, AT_FDCWD, "/a/b/c", 0);
      expect(stat.mountId).toBe(mount.id);
      expect(stat.mountRoot).toBe(true);
      expect(errnoOf(() => f.vfs.renameat2(f.pid, AT_FDCWD, "/a/b/c/inside", AT_FDCWD, "/a/moved", 0)))
        .toBe(Errno.EXDEV);
      expect(errnoOf(() => f.vfs.unlinkat(f.pid, AT_FDCWD, "/a/b/c", 0x200))).toBe(Errno.EBUSY);
    } finally {
      Deno.removeSync(other, { recursive: true });
    }
  });

  it("refuses a mount point that is missing, a file or relative", () => {
    expect(errnoOf(() => f.vfs.mountHostFolder(f.root, "/nowhere"))).toBe(Errno.ENOENT);
    expect(errnoOf(() => f.vfs.mountHostFolder(f.root, "/top"))).toBe(Errno.ENOTDIR);
    expect(errnoOf(() => f.vfs.mountHostFolder(f.root, "a"))).toBe(Errno.EINVAL);
    expect(errnoOf(() => f.vfs.mountHostFolder(`${f.root}/top`, "/a"))).toBe(Errno.ENOTDIR);
  });

  it("refuses writes on a read-only mount with EROFS", () => {
    const other = Deno.makeTempDirSync({ prefix: "astra-vfs-ro-" });
    try {
      Deno.writeTextFileSync(`${other}/file`, "read only");
      f.vfs.mountHostFolder(other, "/a", true);
      expect(readAll("/a/file")).toBe("read only");
      expect(errnoOf(() => f.vfs.openat(f.pid, AT_FDCWD, "/a/file", O_WRONLY, 0))).toBe(Errno.EROFS);
      expect(errnoOf(() => f.vfs.openat(f.pid, AT_FDCWD, "/a/new", O_WRONLY | O_CREAT, 0o644))).toBe(
        Errno.EROFS,
      );
      expect(errnoOf(() => f.vfs.mkdirat(f.pid, AT_FDCWD, "/a/d", 0o755))).toBe(Errno.EROFS);
      expect(errnoOf(() => f.vfs.mkdirat(f.pid, AT_FDCWD, "/a/file", 0o755))).toBe(Errno.EEXIST);
      expect(errnoOf(() => f.vfs.unlinkat(f.pid, AT_FDCWD, "/a/file", 0))).toBe(Errno.EROFS);
      expect(errnoOf(() => f.vfs.faccessat(f.pid, AT_FDCWD, "/a/file", 2))).toBe(Errno.EROFS);
    } finally {
      Deno.removeSync(other, { recursive: true });
    }
  });
});

describe("the mode of what is created", () => {
  it("applies the process's umask, not the host's", () => {
    f.vfs.umask(f.pid, 0o027);
    f.vfs.openat(f.pid, AT_FDCWD, "made", O_WRONLY | O_CREAT, 0o666);
    expect(Deno.statSync(f.host("made")).mode! & 0o7777).toBe(0o640);
    f.vfs.mkdirat(f.pid, AT_FDCWD, "dir", 0o777);
    expect(Deno.statSync(f.host("dir")).mode! & 0o7777).toBe(0o750);
    f.vfs.umask(f.pid, 0);
    f.vfs.openat(f.pid, AT_FDCWD, "open", O_WRONLY | O_CREAT, 0o4777);
    expect(Deno.statSync(f.host("open")).mode! & 0o7777).toBe(0o4777);
    expect(f.vfs.fstatat(f.pid, AT_FDCWD, "open", 0).mode).toBe(S_IFREG | 0o4777);
  });
});

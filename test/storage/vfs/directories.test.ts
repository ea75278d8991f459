// Directories: mkdirat, unlinkat (and rmdir), renameat2 with its flags, getdents64 records read
// back and resumed, getcwd, chdir and fchdir — with the errno Linux gives for each misuse.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  AT_FDCWD,
  AT_REMOVEDIR,
  DT_DIR,
  DT_LNK,
  DT_REG,
  O_DIRECTORY,
  O_PATH,
  O_RDONLY,
  RENAME_EXCHANGE,
  RENAME_NOREPLACE,
  RENAME_WHITEOUT,
  SEEK_CUR,
  SEEK_END,
  SEEK_SET,
} from "../../../services/storage/vfs/linux.ts";
import { decode, Errno, errnoOf, type Fixture, fixture, parseDirents } from "./helpers.ts";

let f: Fixture;

beforeEach(() => {
  f = fixture();
  Deno.mkdirSync(f.host("d/sub"), { recursive: true });
  Deno.writeTextFileSync(f.host("d/file"), "x");
  Deno.writeTextFileSync(f.host("other"), "other");
  Deno.mkdirSync(f.host("empty"));
});

afterEach(() => f.remove());

const exists = (path: string) => {
  try {
    Deno.lstatSync(f.host(path));
    return true;
  } catch {
    return false;
  }
};

describe("mkdirat", () => {
  it("makes a directory, from a directory descriptor too", () => {
    f.vfs.mkdirat(f.pid, AT_FDCWD, "new", 0o755);
    expect(Deno.statSync(f.host("new")).isDirectory).toBe(true);
    const dir = f.vfs.openat(f.pid, AT_FDCWD, "d", O_RDONLY | O_DIRECTORY, 0);
    f.vfs.mkdirat(f.pid, dir, "inner/", 0o700);
    expect(Deno.statSync(f.host("d/inner")).isDirectory).toBe(true);
  });

  it("fails on an existing name, a missing parent or a file as parent", () => {
    expect(errnoOf(() => f.vfs.mkdirat(f.pid, AT_FDCWD, "d", 0o755))).toBe(Errno.EEXIST);
    expect(errnoOf(() => f.vfs.mkdirat(f.pid, AT_FDCWD, "d/file", 0o755))).toBe(Errno.EEXIST);
    expect(errnoOf(() => f.vfs.mkdirat(f.pid, AT_FDCWD, "/", 0o755))).toBe(Errno.EEXIST);
    expect(errnoOf(() => f.vfs.mkdirat(f.pid, AT_FDCWD, "d/.", 0o755))).toBe(Errno.EEXIST);
    expect(errnoOf(() => f.vfs.mkdirat(f.pid, AT_FDCWD, "d/..", 0o755))).toBe(Errno.EEXIST);
    expect(errnoOf(() => f.vfs.mkdirat(f.pid, AT_FDCWD, "no/new", 0o755))).toBe(Errno.ENOENT);
    expect(errnoOf(() => f.vfs.mkdirat(f.pid, AT_FDCWD, "other/new", 0o755))).toBe(Errno.ENOTDIR);
    expect(errnoOf(() => f.vfs.mkdirat(f.pid, AT_FDCWD, "", 0o755))).toBe(Errno.ENOENT);
    Deno.symlinkSync("nowhere", f.host("dangling"));
    expect(errnoOf(() => f.vfs.mkdirat(f.pid, AT_FDCWD, "dangling", 0o755))).toBe(Errno.EEXIST);
    expect(exists("nowhere")).toBe(false);
  });
});

describe("unlinkat", () => {
  it("removes files and, with AT_REMOVEDIR, empty directories", () => {
    f.vfs.unlinkat(f.pid, AT_FDCWD, "d/file", 0);
    expect(exists("d/file")).toBe(false);
    f.vfs.unlinkat(f.pid, AT_FDCWD, "empty/", AT_REMOVEDIR);
    expect(exists("empty")).toBe(false);
  });

  it("removes a link, not what it points to", () => {
    Deno.symlinkSync("d", f.host("ld"));
    f.vfs.unlinkat(f.pid, AT_FDCWD, "ld", 0);
    expect(exists("ld")).toBe(false);
    expect(exists("d")).toBe(true);
  });

  it("fails as Linux fails", () => {
    expect(errnoOf(() => f.vfs.unlinkat(f.pid, AT_FDCWD, "d", 0))).toBe(Errno.EISDIR);
    expect(errnoOf(() => f.vfs.unlinkat(f.pid, AT_FDCWD, "d/.", 0))).toBe(Errno.EISDIR);
    expect(errnoOf(() => f.vfs.unlinkat(f.pid, AT_FDCWD, "other/", 0))).toBe(Errno.ENOTDIR);
    expect(errnoOf(() => f.vfs.unlinkat(f.pid, AT_FDCWD, "missing", 0))).toBe(Errno.ENOENT);
    expect(errnoOf(() => f.vfs.unlinkat(f.pid, AT_FDCWD, "other", 0x400))).toBe(Errno.EINVAL);
    expect(errnoOf(() => f.vfs.unlinkat(f.pid, AT_FDCWD, "other", AT_REMOVEDIR))).toBe(Errno.ENOTDIR);
    expect(errnoOf(() => f.vfs.unlinkat(f.pid, AT_FDCWD, "d", AT_REMOVEDIR))).toBe(Errno.ENOTEMPTY);
    expect(errnoOf(() => f.vfs.unlinkat(f.pid, AT_FDCWD, "empty/.", AT_REMOVEDIR))).toBe(Errno.EINVAL);
    expect(errnoOf(() => f.vfs.unlinkat(f.pid, AT_FDCWD, "d/sub/..", AT_REMOVEDIR))).toBe(Errno.ENOTEMPTY);
    expect(errnoOf(() => f.vfs.unlinkat(f.pid, AT_FDCWD, "/", AT_REMOVEDIR))).toBe(Errno.EBUSY);
    expect(errnoOf(() => f.vfs.unlinkat(f.pid, AT_FDCWD, "/proc", AT_REMOVEDIR))).toBe(Errno.EBUSY);
    expect(errnoOf(() => f.vfs.unlinkat(f.pid, AT_FDCWD, "/dev/null", 0))).toBe(Errno.EACCES);
  });
});

describe("renameat2", () => {
  it("renames and replaces, as rename(2) does", () => {
    f.vfs.renameat2(f.pid, AT_FDCWD, "other", AT_FDCWD, "d/renamed", 0);
    expect(Deno.readTextFileSync(f.host("d/renamed"))).toBe("other");
    f.vfs.renameat2(f.pid, AT_FDCWD, "d/renamed", AT_FDCWD, "d/file", 0);
    expect(Deno.readTextFileSync(f.host("d/file"))).toBe("other");
    f.vfs.renameat2(f.pid, AT_FDCWD, "d/sub", AT_FDCWD, "empty", 0);
    expect(exists("d/sub")).toBe(false);
    expect(Deno.statSync(f.host("empty")).isDirectory).toBe(true);
  });

  it("does nothing when both names are the same", () => {
    f.vfs.renameat2(f.pid, AT_FDCWD, "other", AT_FDCWD, "./other", 0);
    expect(Deno.readTextFileSync(f.host("other"))).toBe("other");
  });

  it("keeps the target with RENAME_NOREPLACE", () => {
    expect(errnoOf(() => f.vfs.renameat2(f.pid, AT_FDCWD, "other", AT_FDCWD, "d/file", RENAME_NOREPLACE)))
      .toBe(Errno.EEXIST);
    f.vfs.renameat2(f.pid, AT_FDCWD, "other", AT_FDCWD, "fresh", RENAME_NOREPLACE);
    expect(exists("fresh")).toBe(true);
  });

  it("swaps two names with RENAME_EXCHANGE, files and directories alike", () => {
    f.vfs.renameat2(f.pid, AT_FDCWD, "other", AT_FDCWD, "d/file", RENAME_EXCHANGE);
    expect(Deno.readTextFileSync(f.host("other"))).toBe("x");
    expect(Deno.readTextFileSync(f.host("d/file"))).toBe("other");
    f.vfs.renameat2(f.pid, AT_FDCWD, "other", AT_FDCWD, "empty", RENAME_EXCHANGE);
    expect(Deno.statSync(f.host("other")).isDirectory).toBe(true);
    expect(Deno.readTextFileSync(f.host("empty"))).toBe("x");
    expect([...Deno.readDirSync(f.root)].map((e) => e.name).sort()).toEqual(["d", "empty", "other"]);
    expect(errnoOf(() => f.vfs.renameat2(f.pid, AT_FDCWD, "other", AT_FDCWD, "missing", RENAME_EXCHANGE)))
      .toBe(Errno.ENOENT);
  });

  it("fails as Linux fails", () => {
    const rename = (from: string, to: string, flags = 0) =>
      errnoOf(() => f.vfs.renameat2(f.pid, AT_FDCWD, from, AT_FDCWD, to, flags));
    expect(rename("missing", "x")).toBe(Errno.ENOENT);
    expect(rename("other", "missing/x")).toBe(Errno.ENOENT);
    expect(rename("d", "d/sub/inside")).toBe(Errno.EINVAL);
    expect(rename("d/sub", "d")).toBe(Errno.ENOTEMPTY);
    expect(rename("d", "other")).toBe(Errno.ENOTDIR);
    expect(rename("other", "empty")).toBe(Errno.EISDIR);
    expect(rename("empty", "d")).toBe(Errno.ENOTEMPTY);
    expect(rename("other/", "x")).toBe(Errno.ENOTDIR);
    expect(rename("other", "x/")).toBe(Errno.ENOTDIR);
    expect(rename(".", "x")).toBe(Errno.EBUSY);
    expect(rename("other", "..")).toBe(Errno.EBUSY);
    expect(rename("other", "..", RENAME_NOREPLACE)).toBe(Errno.EEXIST);
    expect(rename("other", "x", RENAME_NOREPLACE | RENAME_EXCHANGE)).toBe(Errno.EINVAL);
    expect(rename("other", "x", RENAME_WHITEOUT)).toBe(Errno.EINVAL);
    expect(rename("other", "x", 8)).toBe(Errno.EINVAL);
    expect(rename("other", "/proc/x")).toBe(Errno.EXDEV);
    expect(rename("/proc", "/x")).toBe(Errno.EBUSY);
    expect(rename("other", "/proc")).toBe(Errno.EBUSY);
  });
});

describe("getdents64", () => {
  it("lists ., .., and every entry with its inode and type, in valid records", () => {
    Deno.symlinkSync("file", f.host("d/link"));
    const fd = f.vfs.openat(f.pid, AT_FDCWD, "d", O_RDONLY | O_DIRECTORY, 0);
    const { entries, records } = f.vfs.getdents64(f.pid, fd, 4096);
    const parsed = parseDirents(records);
    expect(parsed.map((e) => e.name)).toEqual(entries.map((e) => e.name));
    const byName = new Map(parsed.map((e) => [e.name, e]));
    expect([...byName.keys()].sort()).toEqual([".", "..", "file", "link", "sub"]);
    expect(byName.get(".")!.ino).toBe(Deno.statSync(f.host("d")).ino);
    expect(byName.get("..")!.ino).toBe(Deno.statSync(f.root).ino);
    expect(byName.get("file")!.ino).toBe(Deno.statSync(f.host("d/file")).ino);
    expect(byName.get("file")!.type).toBe(DT_REG);
    expect(byName.get("sub")!.type).toBe(DT_DIR);
    expect(byName.get("link")!.type).toBe(DT_LNK);
    parsed.forEach((e, i) => {
      expect(e.reclen % 8).toBe(0);
      expect(e.reclen).toBe((19 + e.name.length + 1 + 7) & ~7);
      expect(e.padding.every((b) => b === 0)).toBe(true);
      expect(e.off).toBe(i + 1);
    });
    expect(f.vfs.getdents64(f.pid, fd, 4096).records.length).toBe(0);
  });

  it("gives .. of the root as the root itself", () => {
    const fd = f.vfs.openat(f.pid, AT_FDCWD, "/", O_RDONLY, 0);
    const parsed = parseDirents(f.vfs.getdents64(f.pid, fd, 4096).records);
    expect(parsed[0].name).toBe(".");
    expect(parsed[1].name).toBe("..");
    expect(parsed[1].ino).toBe(parsed[0].ino);
  });

  it("fills a small buffer a record at a time and resumes after the last one returned", () => {
    for (let i = 0; i < 20; i++) Deno.writeTextFileSync(f.host(`empty/entry-${i}`), "");
    const fd = f.vfs.openat(f.pid, AT_FDCWD, "empty", O_RDONLY, 0);
    const names: string[] = [];
    while (true) {
      const { records } = f.vfs.getdents64(f.pid, fd, 64);
      if (records.length === 0) break;
      expect(records.length).toBeLessThanOrEqual(64);
      names.push(...parseDirents(records).map((e) => e.name));
    }
    expect(names.length).toBe(22);
    expect(new Set(names).size).toBe(22);
  });

  it("resumes from a d_off given to lseek, and starts over from 0", () => {
    for (const name of ["a", "b", "c"]) Deno.writeTextFileSync(f.host(`empty/${name}`), "");
    const fd = f.vfs.openat(f.pid, AT_FDCWD, "empty", O_RDONLY, 0);
    const all = parseDirents(f.vfs.getdents64(f.pid, fd, 4096).records);
    expect(f.vfs.lseek(f.pid, fd, all[2].off, SEEK_SET)).toBe(3);
    expect(parseDirents(f.vfs.getdents64(f.pid, fd, 4096).records).map((e) => e.name)).toEqual(
      all.slice(3).map((e) => e.name),
    );
    Deno.writeTextFileSync(f.host("empty/late"), "");
    f.vfs.lseek(f.pid, fd, 0, SEEK_SET);
    expect(parseDirents(f.vfs.getdents64(f.pid, fd, 4096).records).map((e) => e.name)).toContain("late");
    expect(f.vfs.lseek(f.pid, fd, 0, SEEK_CUR)).toBe(all.length + 1);
    expect(errnoOf(() => f.vfs.lseek(f.pid, fd, 0, SEEK_END))).toBe(Errno.EINVAL);
  });

  it("fails with EINVAL when not even one record fits, ENOTDIR on a file, EBADF on O_PATH", () => {
    const fd = f.vfs.openat(f.pid, AT_FDCWD, "d", O_RDONLY, 0);
    expect(errnoOf(() => f.vfs.getdents64(f.pid, fd, 23))).toBe(Errno.EINVAL);
    expect(f.vfs.getdents64(f.pid, fd, 24).entries.map((e) => e.name)).toEqual(["."]);
    const file = f.vfs.openat(f.pid, AT_FDCWD, "other", O_RDONLY, 0);
    expect(errnoOf(() => f.vfs.getdents64(f.pid, file, 4096))).toBe(Errno.ENOTDIR);
    const path = f.vfs.openat(f.pid, AT_FDCWD, "d", O_PATH, 0);
    expect(errnoOf(() => f.vfs.getdents64(f.pid, path, 4096))).toBe(Errno.EBADF);
  });
});

describe("getcwd, chdir and fchdir", () => {
  it("changes directory by path and by descriptor (O_PATH included)", () => {
    f.vfs.chdir(f.pid, "d/sub");
    expect(decode(f.vfs.getcwd(f.pid))).toBe("/d/sub");
    const fd = f.vfs.openat(f.pid, AT_FDCWD, "/empty", O_PATH, 0);
    f.vfs.fchdir(f.pid, fd);
    expect(decode(f.vfs.getcwd(f.pid))).toBe("/empty");
  });

  it("refuses what is not a directory", () => {
    expect(errnoOf(() => f.vfs.chdir(f.pid, "other"))).toBe(Errno.ENOTDIR);
    expect(errnoOf(() => f.vfs.chdir(f.pid, "missing"))).toBe(Errno.ENOENT);
    expect(errnoOf(() => f.vfs.chdir(f.pid, ""))).toBe(Errno.ENOENT);
    const file = f.vfs.openat(f.pid, AT_FDCWD, "other", O_RDONLY, 0);
    expect(errnoOf(() => f.vfs.fchdir(f.pid, file))).toBe(Errno.ENOTDIR);
    expect(errnoOf(() => f.vfs.fchdir(f.pid, 0))).toBe(Errno.ENOTDIR);
    expect(errnoOf(() => f.vfs.fchdir(f.pid, 55))).toBe(Errno.EBADF);
  });

  it("answers ENOENT once the working directory has been removed", () => {
    f.vfs.chdir(f.pid, "empty");
    f.vfs.unlinkat(f.pid, AT_FDCWD, "/empty", AT_REMOVEDIR);
    expect(errnoOf(() => f.vfs.getcwd(f.pid))).toBe(Errno.ENOENT);
  });
});

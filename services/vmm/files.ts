// The files behind file mappings. A mapping names the storage service's open file description
// (FileBacking.open_file_id), which it keeps open after the descriptor is closed, as Linux's
// vm_file does (holds.ts); vmm reads page contents through that description and writes shared
// pages back through it. Where the bytes come from is an OpenFileSource: storage's VFS in the
// running system (storage_files.ts).
import { Errno } from "../../lib/errors.ts";
import type { FileStore } from "./aspace.ts";
import { type MappedFile, memoryError } from "./vma.ts";

/** Open file descriptions, by the id storage gave them: holds on them, reads and writes. */
export interface OpenFileSource {
  /** Up to `length` bytes at `offset`: fewer at the end of the file, none beyond it. */
  read(openFileId: bigint, offset: number, length: number): Promise<Uint8Array>;
  write(openFileId: bigint, offset: number, bytes: Uint8Array): Promise<void>;
  /**
   * A new hold on the description behind a process's descriptor, for mmap(fd): EBADF, EACCES
   * (not open for reading) or ENODEV (not mappable) otherwise.
   */
  hold(pid: number, fd: number): Promise<FileBackingFields>;
  /** Gives back one hold. */
  release(openFileId: bigint): Promise<void>;
}

/** A mapped file and the open file description the mapping reads it through. */
export interface BackedFile extends MappedFile {
  readonly openFileId: bigint;
  /** Linux's dev_t of the file's device, as FileBacking carries it. */
  readonly device: number;
}

export interface FileBackingFields {
  openFileId: bigint;
  path: string;
  device: number;
  inode: bigint;
  readable: boolean;
  writable: boolean;
}

/** Linux's new_decode_dev: major in bits 8..19, minor in bits 0..7 and 20..31. */
export function decodeDevice(device: number): { major: number; minor: number } {
  return { major: (device >>> 8) & 0xfff, minor: (device & 0xff) | ((device >>> 12) & 0xfff00) };
}

/**
 * The MappedFile of a FileBacking. Files are the same file when device and inode agree; without
 * an inode the open file description is the only identity there is.
 */
export function backedFile(fields: FileBackingFields): BackedFile {
  const { major, minor } = decodeDevice(fields.device);
  return {
    key: fields.inode !== 0n ? `${fields.device}:${fields.inode}` : `open-file:${fields.openFileId}`,
    path: fields.path,
    deviceMajor: major,
    deviceMinor: minor,
    inode: Number(fields.inode),
    readable: fields.readable,
    writable: fields.writable,
    openFileId: fields.openFileId,
    device: fields.device,
  };
}

function openFileIdOf(file: MappedFile): bigint {
  const id = (file as Partial<BackedFile>).openFileId;
  if (typeof id !== "bigint") {
    throw memoryError(Errno.EBADF, "file", `${file.path} was mapped without an open file description`);
  }
  return id;
}

/** The FileStore address spaces read file pages through, over an OpenFileSource. */
export class OpenFileStore implements FileStore {
  constructor(private readonly source: OpenFileSource) {}

  read(file: MappedFile, offset: number, length: number): Promise<Uint8Array> {
    return this.source.read(openFileIdOf(file), offset, length);
  }

  write(file: MappedFile, offset: number, bytes: Uint8Array): Promise<void> {
    return this.source.write(openFileIdOf(file), offset, bytes);
  }

  /** The file behind descriptor `fd` of process `pid`, held for a mapping (holds.ts owns the hold). */
  async hold(pid: number, fd: number): Promise<BackedFile> {
    return backedFile(await this.source.hold(pid, fd));
  }

  release(openFileId: bigint): Promise<void> {
    return this.source.release(openFileId);
  }
}

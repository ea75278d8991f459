// The files behind file mappings. A mapping names the storage service's open file description
// (FileBacking.open_file_id), which it keeps open after the descriptor is closed, as Linux's
// vm_file does; vmm reads page contents through that description and writes shared pages back
// through it. Where the bytes come from is an OpenFileSource: storage's VFS in the running system.
import { Errno } from "../../lib/errors.ts";
import type { FileStore } from "./aspace.ts";
import { type MappedFile, memoryError } from "./vma.ts";

/** Reads and writes of open file descriptions, by the id storage gave them. */
export interface OpenFileSource {
  /** Up to `length` bytes at `offset`: fewer at the end of the file, none beyond it. */
  read(openFileId: bigint, offset: number, length: number): Promise<Uint8Array>;
  write(openFileId: bigint, offset: number, bytes: Uint8Array): Promise<void>;
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

/** The FileStore address spaces read file pages through; without a source every access is ENODEV. */
export class OpenFileStore implements FileStore {
  constructor(private readonly source: OpenFileSource | null) {}

  get available(): boolean {
    return this.source !== null;
  }

  read(file: MappedFile, offset: number, length: number): Promise<Uint8Array> {
    return this.required().read(openFileIdOf(file), offset, length);
  }

  write(file: MappedFile, offset: number, bytes: Uint8Array): Promise<void> {
    return this.required().write(openFileIdOf(file), offset, bytes);
  }

  private required(): OpenFileSource {
    if (!this.source) {
      throw memoryError(Errno.ENODEV, "file", "no file source is configured for mapped files");
    }
    return this.source;
  }
}

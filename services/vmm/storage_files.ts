// The OpenFileSource of the running system: storage's VfsService, whose open file descriptions
// file mappings read and write. vmm boots before storage, so nothing here is called before a
// mapping needs it: the first mmap(fd) or page-in of a file.
import type { VfsService } from "../../gen/astra/storage/v1/vfs_pb.ts";
import { Errno, failedPrecondition } from "../../lib/errors.ts";
import type { Client } from "../../lib/rpc.ts";
import type { FileBackingFields, OpenFileSource } from "./files.ts";

const decoder = new TextDecoder();

export class StorageFileSource implements OpenFileSource {
  constructor(private readonly vfs: Client<typeof VfsService>) {}

  async read(openFileId: bigint, offset: number, length: number): Promise<Uint8Array> {
    const { data } = await this.vfs.readOpenFile({
      openFileId,
      offset: BigInt(offset),
      length: BigInt(length),
    });
    return data;
  }

  async write(openFileId: bigint, offset: number, bytes: Uint8Array): Promise<void> {
    // A write to a regular file is whole unless the file system fails, which throws.
    await this.vfs.writeOpenFile({ openFileId, offset: BigInt(offset), data: bytes });
  }

  async hold(pid: number, fd: number): Promise<FileBackingFields> {
    const { file } = await this.vfs.holdDescriptor({ pid, fd });
    if (!file) throw failedPrecondition("storage answered HoldDescriptor without the file", Errno.EIO);
    return {
      openFileId: file.openFileId,
      path: decoder.decode(file.path),
      device: file.device,
      inode: file.inode,
      readable: file.readable,
      writable: file.writable,
    };
  }

  async release(openFileId: bigint): Promise<void> {
    await this.vfs.releaseOpenFile({ openFileId });
  }
}

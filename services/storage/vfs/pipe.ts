// Pipes (pipe2): a bounded byte buffer between a read end and a write end, each an open file
// description that dup and fork share. A read waits for data and returns what is there; with no
// writer left it returns end of file. A write waits for room — writes of at most PIPE_BUF bytes go
// in whole, larger ones in pieces — and fails with EPIPE once no reader is left (the SIGPIPE that
// goes with it is sched's to send). O_NONBLOCK turns every wait into EAGAIN. A pipe's mode, owner
// and times live in memory, as pipefs keeps them.
import { checkAttributeChange, currentTime, type MemoryAttributes } from "./attributes.ts";
import type { Credentials } from "./credentials.ts";
import { Errno, vfsError } from "./errors.ts";
import type { AttributeChange, FsStatistics, NodeStat } from "./filesystem.ts";
import { MAX_IO_BYTES, OpenFile, pseudoStatistics } from "./files.ts";
import { Wakeups } from "./wakeups.ts";
import {
  makeDevice,
  O_NONBLOCK,
  PAGE_SIZE,
  PIPE_BUF,
  PIPE_DEFAULT_BYTES,
  PIPE_MAX_BYTES,
  PIPEFS_MAGIC,
  POLLERR,
  POLLHUP,
  POLLIN,
  POLLOUT,
  POLLRDNORM,
  POLLWRNORM,
  S_IFIFO,
} from "./linux.ts";

/** The anonymous device pipes live on, as pipefs does. */
export const PIPEFS_DEVICE = makeDevice(0, 12);
const EMPTY = new Uint8Array(0);

export class Pipe {
  capacity = PIPE_DEFAULT_BYTES;
  readers = 0;
  writers = 0;
  attributes: MemoryAttributes;
  #chunks: Uint8Array[] = [];
  #size = 0;
  readonly #wakeups = new Wakeups();

  constructor(readonly inode: number, uid: number, gid: number) {
    const created = currentTime();
    this.attributes = {
      mode: S_IFIFO | 0o600,
      uid,
      gid,
      accessTime: created,
      modifyTime: created,
      changeTime: created,
    };
  }

  /** Bytes buffered. */
  get size(): number {
    return this.#size;
  }

  /** Removes and returns up to `max` buffered bytes. */
  take(max: number): Uint8Array {
    const out = new Uint8Array(Math.min(max, this.#size));
    let at = 0;
    while (at < out.length) {
      const chunk = this.#chunks[0];
      const n = Math.min(chunk.length, out.length - at);
      out.set(chunk.subarray(0, n), at);
      at += n;
      if (n === chunk.length) this.#chunks.shift();
      else this.#chunks[0] = chunk.subarray(n);
    }
    this.#size -= out.length;
    return out;
  }

  put(data: Uint8Array): void {
    this.#chunks.push(data.slice());
    this.#size += data.length;
    this.attributes.modifyTime = this.attributes.changeTime = currentTime();
  }

  /** Wakes everything waiting on the pipe: data, room, or an end went away. */
  notify(): void {
    this.#wakeups.wakeAll();
  }

  /** Resolves at the next change; rejects with the signal's reason when it aborts first. */
  changed(signal: AbortSignal): Promise<void> {
    return this.#wakeups.next(signal);
  }
}

/** One end of a pipe (or both, for a descriptor reopened O_RDWR through /proc/self/fd). */
export class PipeFile extends OpenFile {
  readonly kind = "pipe";

  constructor(flags: number, readonly pipe: Pipe) {
    super(flags);
    if (this.readable) pipe.readers++;
    if (this.writable) pipe.writers++;
  }

  override linkTarget(): string {
    return `pipe:[${this.pipe.inode}]`;
  }

  stat(): NodeStat {
    return this.mounted({
      device: PIPEFS_DEVICE,
      inode: this.pipe.inode,
      links: 1,
      rdev: 0,
      size: 0,
      blockSize: PAGE_SIZE,
      blocks: 0,
      ...this.pipe.attributes,
    });
  }

  override changeAttributes(change: AttributeChange, caller: Credentials): void {
    this.pipe.attributes = checkAttributeChange(this.pipe.attributes, change, caller);
  }

  override fileSystemStatistics(): FsStatistics {
    return pseudoStatistics(PIPEFS_MAGIC);
  }

  /**
   * pipe_poll: readable with data, hung up with no writer left; writable while a PIPE_BUF write
   * fits whole, in error with no reader left.
   */
  override pollEvents(): number {
    let events = 0;
    if (this.readable) {
      if (this.pipe.size > 0) events |= POLLIN | POLLRDNORM;
      if (this.pipe.writers === 0) events |= POLLHUP;
    }
    if (this.writable) {
      if (this.pipe.capacity - this.pipe.size >= PIPE_BUF) events |= POLLOUT | POLLWRNORM;
      if (this.pipe.readers === 0) events |= POLLERR;
    }
    return events;
  }

  override pollChange(signal: AbortSignal): Promise<void> {
    return this.pipe.changed(signal);
  }

  override async read(count: number, signal: AbortSignal): Promise<Uint8Array> {
    if (count === 0) return EMPTY;
    while (true) {
      if (this.pipe.size > 0) {
        const data = this.pipe.take(Math.min(count, MAX_IO_BYTES));
        this.pipe.notify();
        return data;
      }
      if (this.pipe.writers === 0) return EMPTY;
      if (this.flags & O_NONBLOCK) throw vfsError(Errno.EAGAIN, "the pipe is empty", "fd");
      await this.pipe.changed(signal);
    }
  }

  override async write(data: Uint8Array, signal: AbortSignal): Promise<number> {
    let written = 0;
    while (written < data.length) {
      if (this.pipe.readers === 0) {
        if (written > 0) return written;
        throw vfsError(Errno.EPIPE, "the pipe has no reader", "fd");
      }
      const room = this.pipe.capacity - this.pipe.size;
      const remaining = data.length - written;
      const fits = remaining <= PIPE_BUF ? room >= remaining : room > 0;
      if (fits) {
        const n = Math.min(room, remaining);
        this.pipe.put(data.subarray(written, written + n));
        written += n;
        this.pipe.notify();
        continue;
      }
      if (this.flags & O_NONBLOCK) {
        if (written > 0) return written;
        throw vfsError(Errno.EAGAIN, "the pipe is full", "fd");
      }
      try {
        await this.pipe.changed(signal);
      } catch (err) {
        // Interrupted after part of the data went in: the caller learns how much.
        if (written > 0) return written;
        throw err;
      }
    }
    return written;
  }

  override readableBytes(): number {
    return this.pipe.size;
  }

  /** F_SETPIPE_SZ: a power-of-two number of pages, at least what is buffered. */
  resize(bytes: number): number {
    if (bytes > PIPE_MAX_BYTES) {
      throw vfsError(Errno.EPERM, `pipe size ${bytes} is above /proc/sys/fs/pipe-max-size`, "argument");
    }
    let capacity = PAGE_SIZE;
    while (capacity < bytes) capacity *= 2;
    if (capacity < this.pipe.size) {
      throw vfsError(
        Errno.EBUSY,
        `the pipe holds ${this.pipe.size} bytes, more than ${capacity}`,
        "argument",
      );
    }
    this.pipe.capacity = capacity;
    this.pipe.notify();
    return capacity;
  }

  protected override close(): void {
    if (this.readable) this.pipe.readers--;
    if (this.writable) this.pipe.writers--;
    this.pipe.notify();
  }
}

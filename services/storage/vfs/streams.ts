// The console and the standard streams: byte streams outside the VFS that guest descriptors 0, 1
// and 2 (and /dev/console, /dev/tty) are connected to. For `astra run` they are the caller's own
// stdin, stdout and stderr (hostStdio); whoever builds the VFS may plug in any other source and
// sink (the machine's UART, a test's buffers). A stream that is a terminal answers the terminal
// ioctls from one shared Terminal, whose raw mode follows ICANON onto the host terminal.
import * as nodeFs from "node:fs";
import { Errno, onHost, vfsError } from "./errors.ts";
import type { FsStat, FsStatistics, NodeStat, Timestamp } from "./filesystem.ts";
import {
  type Awaitable,
  type IoctlResult,
  MAX_IO_BYTES,
  OpenFile,
  pseudoStatistics,
  untilAborted,
} from "./files.ts";
import {
  decodeInt32,
  decodeTermios,
  decodeWindowSize,
  encodeInt32,
  encodeTermios,
  encodeWindowSize,
  type Termios,
  type WindowSize,
} from "./layouts.ts";
import {
  B38400,
  CREAD,
  CS8,
  deviceMajor,
  deviceMinor,
  DEVPTS_SUPER_MAGIC,
  ECHO,
  ECHOCTL,
  ECHOE,
  ECHOK,
  ECHOKE,
  HUPCL,
  ICANON,
  ICRNL,
  IEXTEN,
  ISIG,
  IXON,
  makeDevice,
  NCCS,
  O_NONBLOCK,
  ONLCR,
  OPOST,
  PAGE_SIZE,
  PIPEFS_MAGIC,
  POLLIN,
  POLLOUT,
  POLLRDNORM,
  POLLWRNORM,
  S_IFCHR,
  S_IFIFO,
  S_IFMT,
  S_IFSOCK,
  SOCKFS_MAGIC,
  TCFLSH,
  TCGETS,
  TCSBRK,
  TCSETS,
  TCSETSF,
  TCSETSW,
  TCXONC,
  TERMIOS_BYTES,
  TIOCGPGRP,
  TIOCGSID,
  TIOCGWINSZ,
  TIOCNOTTY,
  TIOCOUTQ,
  TIOCSCTTY,
  TIOCSPGRP,
  TIOCSWINSZ,
  TMPFS_MAGIC,
  VDISCARD,
  VEOF,
  VERASE,
  VINTR,
  VKILL,
  VLNEXT,
  VMIN,
  VQUIT,
  VREPRINT,
  VSTART,
  VSTOP,
  VSUSP,
  VWERASE,
  WINSIZE_BYTES,
} from "./linux.ts";

const EMPTY = new Uint8Array(0);
/** First major number of Unix98 pseudo-terminal slaves (/dev/pts/N). */
const PTS_MAJOR_FIRST = 136;
const PTS_MAJOR_LAST = 143;
/** TCFLSH arguments that discard pending input. */
const TCIFLUSH = 0;
const TCIOFLUSH = 2;

function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/**
 * Input from outside, read on demand and buffered: at most one read of the source is under way,
 * and what it brings is kept for the next reader even if the reader that asked gave up waiting.
 */
export class InputSource {
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #ended = false;
  #pending: Promise<void> | undefined;

  /** `source` fills `into` and resolves with the byte count, or null at end of input. */
  constructor(private readonly source: (into: Uint8Array) => Promise<number | null>) {}

  /** An input that yields `chunks` and then ends. */
  static of(...chunks: (Uint8Array | string)[]): InputSource {
    const queue = chunks.map((c) => typeof c === "string" ? new TextEncoder().encode(c) : c);
    return new InputSource((into) => {
      const next = queue.shift();
      if (next === undefined) return Promise.resolve(null);
      const n = Math.min(next.length, into.length);
      into.set(next.subarray(0, n));
      if (n < next.length) queue.unshift(next.subarray(n));
      return Promise.resolve(n);
    });
  }

  /** Bytes received and not yet read. */
  get buffered(): number {
    return this.#buffered;
  }

  /** A read would not wait: input is buffered, or its end has come. */
  get ready(): boolean {
    return this.#buffered > 0 || this.#ended;
  }

  /** Settles once a read would not wait, reading from the source meanwhile. */
  async arrival(signal: AbortSignal): Promise<void> {
    while (!this.ready) await raceAbort(this.#pull(), signal);
  }

  #pull(): Promise<void> {
    this.#pending ??= (async () => {
      const into = new Uint8Array(PAGE_SIZE * 16);
      try {
        const n = await this.source(into);
        if (n === null) this.#ended = true;
        else if (n > 0) {
          this.#chunks.push(into.slice(0, n));
          this.#buffered += n;
        }
      } catch {
        // A source that fails (its host stream closed) has no more input to give.
        this.#ended = true;
      } finally {
        this.#pending = undefined;
      }
    })();
    return this.#pending;
  }

  #take(max: number): Uint8Array {
    const chunk = this.#chunks[0];
    const n = Math.min(max, chunk.length);
    if (n === chunk.length) this.#chunks.shift();
    else this.#chunks[0] = chunk.subarray(n);
    this.#buffered -= n;
    return chunk.slice(0, n);
  }

  /** Waits for input: up to `max` bytes, or none at end of input. */
  async read(max: number, signal: AbortSignal): Promise<Uint8Array> {
    while (true) {
      if (this.#buffered > 0) return this.#take(max);
      if (this.#ended) {
        // End of input is reported once per end, as a terminal's ^D is; a later read tries again.
        this.#ended = false;
        return EMPTY;
      }
      await raceAbort(this.#pull(), signal);
    }
  }

  /** Input that is already here: bytes, none at end of input, or undefined if a read would wait. */
  readNow(max: number): Uint8Array | undefined {
    if (this.#buffered > 0) return this.#take(max);
    if (this.#ended) {
      this.#ended = false;
      return EMPTY;
    }
    this.#pull();
    return undefined;
  }

  /** Discards what was received and not read (TCFLSH). */
  discard(): void {
    this.#chunks = [];
    this.#buffered = 0;
  }
}

/** Where output goes; resolves when all of `data` is written. */
export type OutputSink = (data: Uint8Array) => Promise<void>;

/** The terminal state shared by every stream on one terminal: termios, window, process groups. */
export class Terminal {
  termios: Termios = defaultTermios();
  /** Foreground process group and session: the first process attached to it, then TIOCSPGRP. */
  foregroundGroup = 0;
  session = 0;
  #windowSize: WindowSize = { rows: 24, columns: 80, xPixels: 0, yPixels: 0 };
  #raw = false;

  constructor(
    private readonly hooks: {
      /** The real window size, when the terminal has one to ask. */
      windowSize?: () => WindowSize | undefined;
      /** Switches the real terminal between canonical and raw input (cbreak keeps signals). */
      setRaw?: (raw: boolean, cbreak: boolean) => void;
    } = {},
  ) {}

  get windowSize(): WindowSize {
    return this.hooks.windowSize?.() ?? this.#windowSize;
  }

  set windowSize(size: WindowSize) {
    this.#windowSize = size;
  }

  setTermios(termios: Termios): void {
    this.termios = termios;
    const raw = (termios.lflag & ICANON) === 0;
    if (raw !== this.#raw) {
      this.#raw = raw;
      this.hooks.setRaw?.(raw, (termios.lflag & ISIG) !== 0);
    }
  }
}

/** What a terminal starts with: Linux's tty_std_termios. */
export function defaultTermios(): Termios {
  const cc = new Uint8Array(NCCS);
  cc[VINTR] = 0x03;
  cc[VQUIT] = 0x1c;
  cc[VERASE] = 0x7f;
  cc[VKILL] = 0x15;
  cc[VEOF] = 0x04;
  cc[VSTART] = 0x11;
  cc[VSTOP] = 0x13;
  cc[VSUSP] = 0x1a;
  cc[VREPRINT] = 0x12;
  cc[VDISCARD] = 0x0f;
  cc[VWERASE] = 0x17;
  cc[VLNEXT] = 0x16;
  cc[VMIN] = 1;
  return {
    iflag: ICRNL | IXON,
    oflag: OPOST | ONLCR,
    cflag: B38400 | CS8 | CREAD | HUPCL,
    lflag: ISIG | ICANON | ECHO | ECHOE | ECHOK | ECHOCTL | ECHOKE | IEXTEN,
    cc,
    line: 0,
    ispeed: 38400,
    ospeed: 38400,
  };
}

/** A stream guest descriptors can be connected to. */
export interface StreamEndpoint {
  /** What readlink of /proc/<pid>/fd/N shows for it. */
  readonly name: string;
  /** Set when the stream is a terminal: terminal ioctls are answered, others get ENOTTY. */
  readonly terminal?: Terminal;
  readonly input?: InputSource;
  readonly output?: OutputSink;
  /** What fstat reports. */
  stat(): FsStat;
}

/** The endpoints of descriptors 0, 1 and 2 of a first process, and of /dev/console. */
export interface StdStreams {
  stdin: StreamEndpoint;
  stdout: StreamEndpoint;
  stderr: StreamEndpoint;
  console: StreamEndpoint;
}

function nowTimestamp(): Timestamp {
  const ms = Date.now();
  return { seconds: Math.floor(ms / 1000), nanoseconds: (ms % 1000) * 1_000_000 };
}

/** fstat of a stream that is no host file: a pipe, or a pseudo-terminal when it is one. */
export function streamStat(terminal: boolean, inode: number, uid: number, gid: number): FsStat {
  const time = nowTimestamp();
  return {
    device: terminal ? makeDevice(0, 24) : makeDevice(0, 12),
    inode,
    mode: terminal ? S_IFCHR | 0o620 : S_IFIFO | 0o600,
    links: 1,
    uid,
    gid,
    rdev: terminal ? makeDevice(PTS_MAJOR_FIRST, 0) : 0,
    size: 0,
    blockSize: terminal ? 1024 : PAGE_SIZE,
    blocks: 0,
    accessTime: time,
    modifyTime: time,
    changeTime: time,
  };
}

function timestampOfNs(ns: bigint): Timestamp {
  return { seconds: Number(ns / 1_000_000_000n), nanoseconds: Number(ns % 1_000_000_000n) };
}

/** fstat of one of the host process's own descriptors. */
function hostDescriptorStat(fd: number): FsStat {
  const s = nodeFs.fstatSync(fd, { bigint: true });
  return {
    device: Number(s.dev),
    inode: Number(s.ino),
    mode: Number(s.mode),
    links: Number(s.nlink),
    uid: Number(s.uid),
    gid: Number(s.gid),
    rdev: Number(s.rdev),
    size: Number(s.size),
    blockSize: Number(s.blksize),
    blocks: Number(s.blocks),
    accessTime: timestampOfNs(s.atimeNs),
    modifyTime: timestampOfNs(s.mtimeNs),
    changeTime: timestampOfNs(s.ctimeNs),
  };
}

/** The name Linux's /proc/<pid>/fd shows for a host descriptor, judged from its fstat. */
function hostDescriptorName(stat: FsStat, fallback: string): string {
  const type = stat.mode & S_IFMT;
  if (type === S_IFIFO) return `pipe:[${stat.inode}]`;
  if (type === S_IFSOCK) return `socket:[${stat.inode}]`;
  const major = deviceMajor(stat.rdev);
  if (type === S_IFCHR && major >= PTS_MAJOR_FIRST && major <= PTS_MAJOR_LAST) {
    return `/dev/pts/${deviceMinor(stat.rdev) + (major - PTS_MAJOR_FIRST) * 256}`;
  }
  if (type === S_IFCHR && stat.rdev === makeDevice(1, 3)) return "/dev/null";
  return fallback;
}

function writeAllTo(writer: { write(p: Uint8Array): Promise<number> }): OutputSink {
  return async (data) => {
    let at = 0;
    while (at < data.length) at += await writer.write(data.subarray(at));
  };
}

/**
 * The host process's own stdin, stdout and stderr as the guest's (`astra run`). When any of them
 * is a terminal they share one Terminal, and on a terminal descriptor 0 is also writable and 1 and
 * 2 also readable, as on the shell's terminal they are one device opened for both.
 */
export function hostStdio(): StdStreams {
  const input = new InputSource((into) => Deno.stdin.read(into));
  const stdout = writeAllTo(Deno.stdout);
  const stderr = writeAllTo(Deno.stderr);
  const ttys = [Deno.stdin.isTerminal(), Deno.stdout.isTerminal(), Deno.stderr.isTerminal()];
  const terminal = ttys.some(Boolean)
    ? new Terminal({
      windowSize: () => {
        try {
          const { rows, columns } = Deno.consoleSize();
          return { rows, columns, xPixels: 0, yPixels: 0 };
        } catch {
          return undefined;
        }
      },
      setRaw: ttys[0] ? (raw, cbreak) => Deno.stdin.setRaw(raw, { cbreak }) : undefined,
    })
    : undefined;
  const endpoint = (fd: number, fallback: string, own: { input?: InputSource; output?: OutputSink }) => {
    const tty = ttys[fd];
    const stat = () => onHost("fstat", () => hostDescriptorStat(fd));
    let name = fallback;
    try {
      name = hostDescriptorName(stat(), fallback);
    } catch {
      // The host descriptor cannot be examined: it keeps the generic name.
    }
    return {
      name,
      terminal: tty ? terminal : undefined,
      input: own.input ?? (tty ? input : undefined),
      output: own.output ?? (tty ? (fd === 2 ? stderr : stdout) : undefined),
      stat,
    };
  };
  return {
    stdin: endpoint(0, "/dev/stdin", { input }),
    stdout: endpoint(1, "/dev/stdout", { output: stdout }),
    stderr: endpoint(2, "/dev/stderr", { output: stderr }),
    console: {
      name: "/dev/console",
      terminal,
      input,
      output: stdout,
      stat: () => onHost("fstat", () => hostDescriptorStat(terminal && ttys[1] ? 1 : 0)),
    },
  };
}

/** A descriptor on a stream endpoint. */
export class StreamFile extends OpenFile {
  readonly kind = "stream";

  constructor(flags: number, readonly endpoint: StreamEndpoint) {
    super(flags);
  }

  override linkTarget(): string {
    return this.endpoint.name;
  }

  stat(): NodeStat {
    return this.mounted(this.endpoint.stat());
  }

  override read(count: number, signal: AbortSignal): Awaitable<Uint8Array> {
    const input = this.endpoint.input;
    if (!input) throw vfsError(Errno.EBADF, `${this.endpoint.name} has no input`, "fd");
    if (count === 0) return EMPTY;
    const max = Math.min(count, MAX_IO_BYTES);
    if (this.flags & O_NONBLOCK) {
      const data = input.readNow(max);
      if (data === undefined) throw vfsError(Errno.EAGAIN, "no input is waiting", "fd");
      return data;
    }
    return input.read(max, signal);
  }

  override async write(data: Uint8Array): Promise<number> {
    const output = this.endpoint.output;
    if (!output) throw vfsError(Errno.EBADF, `${this.endpoint.name} takes no output`, "fd");
    if (data.length) await output(data);
    return data.length;
  }

  override readableBytes(): number {
    return this.endpoint.input?.buffered ?? 0;
  }

  /** Readable once input is here (or ended); output is handed on at once, so always writable. */
  override pollEvents(): number {
    const input = this.readable && this.endpoint.input?.ready ? POLLIN | POLLRDNORM : 0;
    return input | (this.writable && this.endpoint.output ? POLLOUT | POLLWRNORM : 0);
  }

  /**
   * The file system of what the host descriptor is, judged from its fstat: a pipe, a socket, a
   * terminal (devpts) or another device (devtmpfs). A host file has no path here to ask about.
   */
  override fileSystemStatistics(): FsStatistics {
    const stat = this.endpoint.stat();
    const major = deviceMajor(stat.rdev);
    switch (stat.mode & S_IFMT) {
      case S_IFIFO:
        return pseudoStatistics(PIPEFS_MAGIC);
      case S_IFSOCK:
        return pseudoStatistics(SOCKFS_MAGIC);
      case S_IFCHR:
        return pseudoStatistics(
          major >= PTS_MAJOR_FIRST && major <= PTS_MAJOR_LAST ? DEVPTS_SUPER_MAGIC : TMPFS_MAGIC,
        );
      default:
        return super.fileSystemStatistics();
    }
  }

  override pollChange(signal: AbortSignal): Promise<void> {
    const input = this.endpoint.input;
    return this.readable && input && !input.ready ? input.arrival(signal) : untilAborted(signal);
  }

  override ioctl(request: number, argument: bigint, input: Uint8Array | undefined): Awaitable<IoctlResult> {
    const terminal = this.endpoint.terminal;
    if (!terminal) return super.ioctl(request, argument, input);
    const needs = (bytes: number) => {
      if (!input || input.length < bytes) {
        throw vfsError(Errno.EFAULT, "the argument was not readable", "argument");
      }
      return input;
    };
    switch (request) {
      case TCGETS:
        return { result: 0, output: encodeTermios(terminal.termios) };
      case TCSETS:
      case TCSETSW:
      case TCSETSF:
        if (request === TCSETSF) this.endpoint.input?.discard();
        terminal.setTermios(decodeTermios(needs(TERMIOS_BYTES)));
        return { result: 0 };
      case TIOCGWINSZ:
        return { result: 0, output: encodeWindowSize(terminal.windowSize) };
      case TIOCSWINSZ:
        terminal.windowSize = decodeWindowSize(needs(WINSIZE_BYTES));
        return { result: 0 };
      case TIOCGPGRP:
        return { result: 0, output: encodeInt32(terminal.foregroundGroup) };
      case TIOCSPGRP:
        terminal.foregroundGroup = decodeInt32(needs(4));
        return { result: 0 };
      case TIOCGSID:
        return { result: 0, output: encodeInt32(terminal.session) };
      case TIOCOUTQ:
        // Output is handed to the host as it is written: nothing is ever queued here.
        return { result: 0, output: encodeInt32(0) };
      case TCFLSH: {
        const queue = Number(argument);
        if (queue < 0 || queue > TCIOFLUSH) {
          throw vfsError(Errno.EINVAL, "TCFLSH queue is not 0, 1 or 2", "argument");
        }
        if (queue === TCIFLUSH || queue === TCIOFLUSH) this.endpoint.input?.discard();
        return { result: 0 };
      }
      case TCSBRK:
      case TCXONC:
      case TIOCSCTTY:
      case TIOCNOTTY:
        return { result: 0 };
      default:
        return super.ioctl(request, argument, input);
    }
  }
}

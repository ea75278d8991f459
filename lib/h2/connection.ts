// One HTTP/2 connection (RFC 9113) over a Deno socket, for either end: streams and their states,
// header blocks through HPACK, flow control both ways, SETTINGS, PING and GOAWAY. What it
// receives is handed to per-stream event handlers synchronously, as views into the read buffer;
// what it sends is gathered into one buffer and written once per turn of the event loop.
import { type HeaderList, HpackDecoder, HpackEncoder, HpackError } from "./hpack.ts";
import { busyPollTouch } from "../busy_poll.ts";
import {
  CONNECTION_PREFACE,
  DEFAULT_SETTINGS,
  ERROR_NAMES,
  ErrorCode,
  Flags,
  type Frame,
  FrameReader,
  FrameType,
  FrameWriter,
  Http2Error,
  MAX_MAX_FRAME_SIZE,
  MAX_WINDOW,
  MIN_MAX_FRAME_SIZE,
  SettingId,
  type Settings,
} from "./frames.ts";

/** What happens on a stream, as the connection learns it. */
export interface StreamEvents {
  /** Response headers (client), or trailers (either end; `endStream` is then always true). */
  headers(headers: HeaderList, endStream: boolean): void;
  /** A view into the read buffer, valid only during the call. */
  data(payload: Uint8Array, endStream: boolean): void;
  /**
   * The stream ended without finishing: the peer reset it (`code` from RST_STREAM), refused it in a
   * GOAWAY (REFUSED_STREAM), or the connection closed under it (`connectionLost`).
   */
  reset(code: number, message: string, connectionLost: boolean): void;
}

export interface ConnectionOptions {
  role: "client" | "server";
  /** Server: a stream the client opened, with its request headers; answers the stream's handler. */
  onStream?(stream: H2Stream, headers: HeaderList, endStream: boolean): StreamEvents;
  /** The peer sent GOAWAY: no new streams here; those above `lastStreamId` were refused. */
  onGoaway?(lastStreamId: number, code: number): void;
  /** The socket closed; `error` says why when it was not an orderly close. */
  onClose?(error?: Error): void;
  /** Bytes a stream may receive before its reader consumes some (our INITIAL_WINDOW_SIZE). */
  streamWindow?: number;
  maxHeaderListSize?: number;
  /** Streams the peer may have open at once (our MAX_CONCURRENT_STREAMS); more are refused. */
  maxConcurrentStreams?: number;
  /**
   * How long the peer has for its preface and SETTINGS before the connection is closed (default
   * 10 s): a peer that connects and says nothing must not hold a connection forever.
   */
  handshakeTimeoutMs?: number;
}

/** Our SETTINGS: large windows and frames, because both ends are usually on one host. */
const LOCAL_MAX_FRAME_SIZE = 1 << 20;
const DEFAULT_STREAM_WINDOW = 8 << 20;
const CONNECTION_WINDOW = 64 << 20;
const DEFAULT_MAX_HEADER_LIST_SIZE = 64 * 1024;
const DEFAULT_MAX_CONCURRENT_STREAMS = 4096;
const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
/**
 * Streams a client may reset per second before the connection is closed: opening and cancelling
 * streams at once costs it nothing and the server a handler each (the "rapid reset" attack).
 */
const MAX_RESETS_PER_SECOND = 1000;
/** Output waiting for the socket beyond which writers are asked to wait. */
const OUTPUT_HIGH_WATER = 4 << 20;

/** A request or response stream. */
export class H2Stream {
  events: StreamEvents | undefined;
  /** Bytes we may still send before the peer's WINDOW_UPDATE. */
  sendWindow: number;
  /** Bytes the peer may still send. */
  recvWindow: number;
  /** Bytes consumed by the reader and not yet returned to the peer in a WINDOW_UPDATE. */
  #unacked = 0;
  localEnded = false;
  remoteEnded = false;
  /** Header blocks received: a request's or response's, then at most trailers. */
  headerBlocks = 0;
  closed = false;
  /** Frames waiting for flow-control window, in order (trailers must follow the data before them). */
  readonly queue: ({ kind: "data"; bytes: Uint8Array; offset: number; end: boolean } | {
    kind: "headers";
    headers: HeaderList;
    end: boolean;
  })[] = [];
  queuedBytes = 0;

  constructor(
    readonly connection: H2Connection,
    readonly id: number,
    sendWindow: number,
    recvWindow: number,
  ) {
    this.sendWindow = sendWindow;
    this.recvWindow = recvWindow;
  }

  sendHeaders(headers: HeaderList, endStream = false): void {
    this.connection.sendHeaders(this, headers, endStream);
  }

  /** DATA made of `pieces` (sent as one frame when they fit), ending the stream if `endStream`. */
  sendData(pieces: Uint8Array[], endStream = false): void {
    this.connection.sendData(this, pieces, endStream);
  }

  /** Ends our side of the stream with an empty DATA frame. */
  end(): void {
    this.connection.sendData(this, [], true);
  }

  /** Abandons the stream (RST_STREAM); no events follow. */
  reset(code: number = ErrorCode.CANCEL): void {
    this.connection.resetStream(this, code);
  }

  /** The reader has taken `n` received bytes: the peer may send that many more. */
  consume(n: number): void {
    if (this.closed || this.remoteEnded) return;
    this.#unacked += n;
    if (this.#unacked >= this.connection.streamWindow / 2) {
      this.recvWindow += this.#unacked;
      this.connection.windowUpdate(this.id, this.#unacked);
      this.#unacked = 0;
    }
  }

  /** Whether a writer should wait for `writable()` before sending more. */
  get congested(): boolean {
    return this.queuedBytes > 0 || this.connection.outputBytes > OUTPUT_HIGH_WATER;
  }

  /** Resolves when this stream's queued data has gone out (or the stream has closed). */
  writable(): Promise<void> {
    return this.connection.writable(this);
  }
}

export class H2Connection {
  readonly role: "client" | "server";
  readonly streamWindow: number;
  readonly #conn: Deno.Conn;
  readonly #opts: ConnectionOptions;
  readonly #reader: FrameReader;
  readonly #writer = new FrameWriter();
  readonly #encoder = new HpackEncoder();
  readonly #decoder: HpackDecoder;
  readonly #streams = new Map<number, H2Stream>();
  /** Streams with data queued behind flow control. */
  readonly #blocked = new Set<H2Stream>();
  readonly #drainWaiters: { stream: H2Stream; resolve: () => void }[] = [];
  readonly #pings = new Map<string, () => void>();
  #resetWindowStart = 0;
  #resetsInWindow = 0;
  /** Callers waiting for the peer's MAX_CONCURRENT_STREAMS to admit another stream. */
  readonly #slotWaiters: (() => void)[] = [];
  #peer: Settings = { ...DEFAULT_SETTINGS };
  #sendWindow = DEFAULT_SETTINGS.initialWindowSize;
  /** What the peer believes a new stream's window is: the default until it acknowledges ours. */
  #localInitialWindow = DEFAULT_SETTINGS.initialWindowSize;
  #recvUnacked = 0;
  #nextStreamId: number;
  #lastPeerStreamId = 0;
  /** A header block spread over HEADERS and CONTINUATION frames. */
  #continuation: { streamId: number; endStream: boolean; chunks: Uint8Array[]; bytes: number } | undefined;
  #flushScheduled = false;
  /** The write to the socket in progress, which also takes what gathers meanwhile. */
  #writing: Promise<void> | undefined;
  #goawaySent = false;
  #goawayReceived = false;
  #closed = false;
  readonly closed: Promise<void>;
  #resolveClosed!: () => void;
  /** Resolves when the peer's first SETTINGS has arrived (or the connection has closed). */
  readonly settled: Promise<void>;
  #resolveSettled!: () => void;

  constructor(conn: Deno.Conn, opts: ConnectionOptions) {
    this.#conn = conn;
    this.#opts = opts;
    this.role = opts.role;
    this.streamWindow = opts.streamWindow ?? DEFAULT_STREAM_WINDOW;
    this.#nextStreamId = opts.role === "client" ? 1 : 2;
    this.#reader = new FrameReader(LOCAL_MAX_FRAME_SIZE, opts.role === "server");
    this.#decoder = new HpackDecoder(DEFAULT_SETTINGS.headerTableSize, {
      maxHeaderListSize: opts.maxHeaderListSize ?? DEFAULT_MAX_HEADER_LIST_SIZE,
    });
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    this.settled = new Promise((resolve) => this.#resolveSettled = resolve);
    const handshake = setTimeout(
      () =>
        this.#connectionError(
          new Http2Error(ErrorCode.SETTINGS_TIMEOUT, "no SETTINGS from the peer in time"),
        ),
      opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
    );
    this.settled.then(() => clearTimeout(handshake));
    if (opts.role === "client") this.#writer.raw(CONNECTION_PREFACE);
    const settings: [number, number][] = [
      [SettingId.MAX_CONCURRENT_STREAMS, opts.maxConcurrentStreams ?? DEFAULT_MAX_CONCURRENT_STREAMS],
      [SettingId.INITIAL_WINDOW_SIZE, this.streamWindow],
      [SettingId.MAX_FRAME_SIZE, LOCAL_MAX_FRAME_SIZE],
      [SettingId.MAX_HEADER_LIST_SIZE, opts.maxHeaderListSize ?? DEFAULT_MAX_HEADER_LIST_SIZE],
    ];
    if (opts.role === "client") settings.push([SettingId.ENABLE_PUSH, 0]);
    this.#writer.settings(settings);
    this.#writer.windowUpdate(0, CONNECTION_WINDOW - DEFAULT_SETTINGS.initialWindowSize);
    this.#scheduleFlush();
    this.#readLoop();
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  /** Whether new streams may start here (no GOAWAY either way, not closed, ids left). */
  get open(): boolean {
    return !this.#closed && !this.#goawayReceived && !this.#goawaySent && this.#nextStreamId <= MAX_WINDOW;
  }

  get activeStreams(): number {
    return this.#streams.size;
  }

  /** Whether the peer's MAX_CONCURRENT_STREAMS admits one more stream now. */
  get hasStreamSlot(): boolean {
    return this.#streams.size < this.#peer.maxConcurrentStreams;
  }

  /** Resolves when a stream has ended (or the connection has), so that a waiting one may start. */
  streamSlot(): Promise<void> {
    if (this.hasStreamSlot || this.#closed) return Promise.resolve();
    return new Promise((resolve) => this.#slotWaiters.push(resolve));
  }

  /** Wakes every waiter; each checks for a slot again, and those that find none wait again. */
  #wakeSlotWaiters(): void {
    for (const wake of this.#slotWaiters.splice(0)) wake();
  }

  /** Bytes gathered for the socket and not yet written. */
  get outputBytes(): number {
    return this.#writer.length;
  }

  /** Client: a new stream; its HEADERS go out with the first sendHeaders. */
  openStream(events: StreamEvents): H2Stream {
    if (!this.open) throw new Http2Error(ErrorCode.REFUSED_STREAM, "the connection takes no new streams");
    const stream = new H2Stream(
      this,
      this.#nextStreamId,
      this.#peer.initialWindowSize,
      this.#localInitialWindow,
    );
    this.#nextStreamId += 2;
    stream.events = events;
    this.#streams.set(stream.id, stream);
    return stream;
  }

  /** Round trip of a PING; rejects when the connection closes first or after `timeoutMs`. */
  ping(timeoutMs: number): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("connection closed"));
    const payload = crypto.getRandomValues(new Uint8Array(8));
    const key = payload.join(",");
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pings.delete(key);
        reject(new Error(`no PING acknowledgement within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pings.set(key, () => {
        clearTimeout(timer);
        resolve();
      });
      this.#writer.ping(payload, false);
      this.#scheduleFlush();
    });
  }

  /** Sends GOAWAY: streams already open finish, no new ones start; the socket closes when they have. */
  shutdown(code: number = ErrorCode.NO_ERROR, debug = ""): void {
    if (this.#closed) return;
    if (!this.#goawaySent) {
      this.#goawaySent = true;
      this.#writer.goaway(this.#lastPeerStreamId, code, debug);
      this.#scheduleFlush();
    }
    if (this.#streams.size === 0) this.#closeAfterFlush();
  }

  /** Closes at once: GOAWAY if possible, then the socket; open streams see a lost connection. */
  close(message = "connection closed"): void {
    if (this.#closed) return;
    if (!this.#goawaySent) {
      this.#goawaySent = true;
      this.#writer.goaway(this.#lastPeerStreamId, ErrorCode.NO_ERROR, "");
    }
    this.#terminate(undefined, message);
  }

  sendHeaders(stream: H2Stream, headers: HeaderList, endStream: boolean): void {
    if (stream.closed || stream.localEnded) return;
    if (endStream) stream.localEnded = true;
    if (stream.queue.length) {
      stream.queue.push({ kind: "headers", headers, end: endStream });
      return;
    }
    this.#writeHeaders(stream, headers, endStream);
  }

  #writeHeaders(stream: H2Stream, headers: HeaderList, endStream: boolean): void {
    this.#writer.headers(stream.id, this.#encoder.encode(headers), endStream, this.#peer.maxFrameSize);
    this.#scheduleFlush();
    if (endStream) this.#maybeRetire(stream);
  }

  sendData(stream: H2Stream, pieces: Uint8Array[], endStream: boolean): void {
    if (stream.closed || stream.localEnded) return;
    if (endStream) stream.localEnded = true;
    let length = 0;
    for (const p of pieces) length += p.length;
    if (
      stream.queue.length === 0 && length <= stream.sendWindow && length <= this.#sendWindow &&
      length <= this.#peer.maxFrameSize
    ) {
      stream.sendWindow -= length;
      this.#sendWindow -= length;
      this.#writer.data(stream.id, endStream, pieces, length);
      this.#scheduleFlush();
      if (endStream) this.#maybeRetire(stream);
      return;
    }
    let bytes: Uint8Array;
    if (pieces.length === 1) bytes = pieces[0];
    else {
      bytes = new Uint8Array(length);
      let at = 0;
      for (const p of pieces) {
        bytes.set(p, at);
        at += p.length;
      }
    }
    stream.queue.push({ kind: "data", bytes, offset: 0, end: endStream });
    stream.queuedBytes += length;
    this.#pump(stream);
  }

  /** Sends what flow control allows of a stream's queue, in order. */
  #pump(stream: H2Stream): void {
    while (stream.queue.length && !stream.closed) {
      const item = stream.queue[0];
      if (item.kind === "headers") {
        stream.queue.shift();
        this.#writeHeaders(stream, item.headers, item.end);
        continue;
      }
      const left = item.bytes.length - item.offset;
      const n = Math.min(left, stream.sendWindow, this.#sendWindow, this.#peer.maxFrameSize);
      if (n <= 0 && left > 0) {
        this.#blocked.add(stream);
        return;
      }
      const last = n === left;
      this.#writer.data(stream.id, last && item.end, [item.bytes.subarray(item.offset, item.offset + n)], n);
      item.offset += n;
      stream.sendWindow -= n;
      this.#sendWindow -= n;
      stream.queuedBytes -= n;
      this.#scheduleFlush();
      if (last) {
        stream.queue.shift();
        if (item.end) this.#maybeRetire(stream);
      }
    }
    this.#blocked.delete(stream);
  }

  resetStream(stream: H2Stream, code: number): void {
    if (stream.closed) return;
    this.#writer.rstStream(stream.id, code);
    this.#scheduleFlush();
    this.#retire(stream);
  }

  windowUpdate(streamId: number, increment: number): void {
    if (this.#closed) return;
    this.#writer.windowUpdate(streamId, increment);
    this.#scheduleFlush();
  }

  writable(stream: H2Stream): Promise<void> {
    if (!stream.congested || stream.closed || this.#closed) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push({ stream, resolve }));
  }

  #wakeWriters(): void {
    for (let i = 0; i < this.#drainWaiters.length;) {
      const w = this.#drainWaiters[i];
      if (!w.stream.congested || w.stream.closed || this.#closed) {
        this.#drainWaiters.splice(i, 1);
        w.resolve();
      } else i++;
    }
  }

  #maybeRetire(stream: H2Stream): void {
    if (stream.localEnded && stream.remoteEnded && stream.queue.length === 0) this.#retire(stream);
  }

  #retire(stream: H2Stream): void {
    if (stream.closed) return;
    stream.closed = true;
    this.#streams.delete(stream.id);
    this.#blocked.delete(stream);
    stream.queue.length = 0;
    stream.queuedBytes = 0;
    // One stream ended: one waiter may start.
    this.#slotWaiters.shift()?.();
    if ((this.#goawaySent || this.#goawayReceived) && this.#streams.size === 0) this.#closeAfterFlush();
  }

  /** Closes once the current operation is done; what is gathered still goes out (#terminate). */
  #closeAfterFlush(): void {
    queueMicrotask(() => this.#terminate(undefined, "connection closed"));
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled || this.#writing || this.#closed) return;
    this.#flushScheduled = true;
    queueMicrotask(this.#flush);
  }

  readonly #flush = (): void => {
    this.#flushScheduled = false;
    // With something to write, #writeOut reaches its first await before its `finally`.
    if (this.#writing || this.#closed || this.#writer.length === 0) return;
    this.#writing = this.#writeOut();
  };

  async #writeOut(): Promise<void> {
    try {
      do {
        const bytes = this.#writer.take();
        busyPollTouch();
        for (let off = 0; off < bytes.length;) off += await this.#conn.write(bytes.subarray(off));
        if (this.#drainWaiters.length) this.#wakeWriters();
      } while (this.#writer.length && !this.#closed);
    } catch (e) {
      this.#terminate(e as Error, "the connection failed while writing");
    } finally {
      this.#writing = undefined;
    }
  }

  async #readLoop(): Promise<void> {
    try {
      while (!this.#closed) {
        const n = await this.#conn.read(this.#reader.writable());
        if (n === null) break;
        busyPollTouch();
        this.#reader.received(n, this.#onFrame);
      }
      this.#terminate(undefined, "the peer closed the connection");
    } catch (e) {
      if (e instanceof Http2Error) this.#connectionError(e);
      else this.#terminate(e as Error, "the connection failed");
    }
  }

  /** A connection error: GOAWAY with its code, then the socket closes. */
  #connectionError(e: Http2Error): void {
    if (this.#closed) return;
    if (!this.#goawaySent) {
      this.#goawaySent = true;
      this.#writer.goaway(this.#lastPeerStreamId, e.code, e.message);
    }
    this.#terminate(e, `HTTP/2 ${ERROR_NAMES[e.code] ?? e.code}: ${e.message}`);
  }

  #terminate(error: Error | undefined, message: string): void {
    if (this.#closed) return;
    this.#closed = true;
    (async () => {
      // The last words (GOAWAY) go out after the write in progress, if the socket still takes
      // them; failing to is no news.
      await this.#writing;
      if (this.#writer.length) {
        const pending = this.#writer.take();
        try {
          for (let off = 0; off < pending.length;) off += await this.#conn.write(pending.subarray(off));
        } catch { /* the socket is already gone */ }
      }
      try {
        this.#conn.close();
      } catch { /* already closed */ }
    })();
    const streams = [...this.#streams.values()];
    this.#streams.clear();
    this.#blocked.clear();
    for (const s of streams) {
      s.closed = true;
      s.events?.reset(ErrorCode.CANCEL, message, true);
    }
    this.#wakeWriters();
    this.#wakeSlotWaiters();
    this.#opts.onClose?.(error);
    this.#resolveClosed();
    this.#resolveSettled();
  }

  readonly #onFrame = (f: Frame): void => {
    if (this.#continuation && f.type !== FrameType.CONTINUATION) {
      throw new Http2Error(ErrorCode.PROTOCOL_ERROR, "a header block was interrupted by another frame");
    }
    try {
      switch (f.type) {
        case FrameType.DATA:
          return this.#onData(f);
        case FrameType.HEADERS:
          return this.#onHeaders(f);
        case FrameType.CONTINUATION:
          return this.#onContinuation(f);
        case FrameType.PRIORITY:
          if (f.streamId === 0) throw new Http2Error(ErrorCode.PROTOCOL_ERROR, "PRIORITY on stream 0");
          if (f.payload.length !== 5) throw new Http2Error(ErrorCode.FRAME_SIZE_ERROR, "PRIORITY is 5 bytes");
          return;
        case FrameType.RST_STREAM:
          return this.#onRstStream(f);
        case FrameType.SETTINGS:
          return this.#onSettings(f);
        case FrameType.PUSH_PROMISE:
          throw new Http2Error(ErrorCode.PROTOCOL_ERROR, "server push is disabled");
        case FrameType.PING:
          return this.#onPing(f);
        case FrameType.GOAWAY:
          return this.#onGoaway(f);
        case FrameType.WINDOW_UPDATE:
          return this.#onWindowUpdate(f);
        default:
          return; // Unknown frame types are ignored (§4.1).
      }
    } catch (e) {
      if (!(e instanceof Http2Error) || e.streamId === 0) throw e;
      // A stream error ends that stream only.
      const stream = this.#streams.get(e.streamId);
      if (stream) {
        this.resetStream(stream, e.code);
        stream.events?.reset(e.code, e.message, false);
      } else {
        this.#writer.rstStream(e.streamId, e.code);
        this.#scheduleFlush();
      }
    }
  };

  /** Padding removed; `extra` bytes of priority fields skipped after the pad length. */
  #unpad(f: Frame, extra: number): Uint8Array {
    let p = f.payload;
    if (f.flags & Flags.PADDED) {
      if (p.length < 1) throw new Http2Error(ErrorCode.FRAME_SIZE_ERROR, "padded frame without pad length");
      const pad = p[0];
      if (pad + 1 + extra > p.length) {
        throw new Http2Error(ErrorCode.PROTOCOL_ERROR, "padding exceeds the frame");
      }
      p = p.subarray(1, p.length - pad);
    }
    if (extra) {
      if (p.length < extra) {
        throw new Http2Error(ErrorCode.FRAME_SIZE_ERROR, "frame too short for its priority");
      }
      p = p.subarray(extra);
    }
    return p;
  }

  /** Whether `id` names a stream the peer could have opened by now (idle streams are errors). */
  #isIdle(id: number): boolean {
    const peerOpens = (id & 1) === (this.role === "server" ? 1 : 0);
    return peerOpens ? id > this.#lastPeerStreamId : id >= this.#nextStreamId;
  }

  #onData(f: Frame): void {
    if (f.streamId === 0) throw new Http2Error(ErrorCode.PROTOCOL_ERROR, "DATA on stream 0");
    const length = f.payload.length;
    // The connection window counts every DATA byte, even on streams already gone.
    this.#recvUnacked += length;
    if (this.#recvUnacked >= CONNECTION_WINDOW / 2) {
      this.windowUpdate(0, this.#recvUnacked);
      this.#recvUnacked = 0;
    }
    const stream = this.#streams.get(f.streamId);
    if (!stream) {
      if (this.#isIdle(f.streamId)) throw new Http2Error(ErrorCode.PROTOCOL_ERROR, "DATA on an idle stream");
      return; // A stream we reset: its data in flight is dropped.
    }
    if (stream.remoteEnded) {
      throw new Http2Error(ErrorCode.STREAM_CLOSED, "DATA after the end of the stream", f.streamId);
    }
    stream.recvWindow -= length;
    if (stream.recvWindow < 0) {
      throw new Http2Error(ErrorCode.FLOW_CONTROL_ERROR, "the peer overran the stream window", f.streamId);
    }
    const data = this.#unpad(f, 0);
    // Padding is consumed as it arrives; the data when its reader takes it.
    if (length !== data.length) stream.consume(length - data.length);
    const end = (f.flags & Flags.END_STREAM) !== 0;
    if (end) stream.remoteEnded = true;
    stream.events?.data(data, end);
    if (end) this.#maybeRetire(stream);
  }

  #onHeaders(f: Frame): void {
    if (f.streamId === 0) throw new Http2Error(ErrorCode.PROTOCOL_ERROR, "HEADERS on stream 0");
    const block = this.#unpad(f, f.flags & Flags.PRIORITY ? 5 : 0);
    const endStream = (f.flags & Flags.END_STREAM) !== 0;
    if (f.flags & Flags.END_HEADERS) return this.#headerBlock(f.streamId, block, endStream);
    this.#continuation = { streamId: f.streamId, endStream, chunks: [block.slice()], bytes: block.length };
  }

  #onContinuation(f: Frame): void {
    const c = this.#continuation;
    if (!c || c.streamId !== f.streamId) {
      throw new Http2Error(ErrorCode.PROTOCOL_ERROR, "CONTINUATION without a header block to continue");
    }
    c.chunks.push(f.payload.slice());
    c.bytes += f.payload.length;
    if (c.bytes > 4 * (this.#opts.maxHeaderListSize ?? DEFAULT_MAX_HEADER_LIST_SIZE)) {
      throw new Http2Error(ErrorCode.ENHANCE_YOUR_CALM, "header block too large");
    }
    if (!(f.flags & Flags.END_HEADERS)) return;
    this.#continuation = undefined;
    const block = new Uint8Array(c.bytes);
    let at = 0;
    for (const chunk of c.chunks) {
      block.set(chunk, at);
      at += chunk.length;
    }
    this.#headerBlock(c.streamId, block, c.endStream);
  }

  #headerBlock(streamId: number, block: Uint8Array, endStream: boolean): void {
    let headers: HeaderList;
    try {
      // Every block is decoded, even for streams that are then refused: it updates the HPACK table.
      headers = this.#decoder.decode(block);
    } catch (e) {
      if (e instanceof HpackError) throw new Http2Error(ErrorCode.COMPRESSION_ERROR, e.message);
      throw e;
    }
    const stream = this.#streams.get(streamId);
    if (stream) {
      if (stream.remoteEnded) {
        throw new Http2Error(ErrorCode.STREAM_CLOSED, "HEADERS after the end", streamId);
      }
      // A server's stream began with the request's headers: what follows can only be trailers.
      if ((this.role === "server" || stream.headerBlocks > 0) && !endStream) {
        throw new Http2Error(ErrorCode.PROTOCOL_ERROR, "trailers that do not end the stream", streamId);
      }
      stream.headerBlocks++;
      validateHeaders(headers, streamId, false);
      if (endStream) stream.remoteEnded = true;
      stream.events?.headers(headers, endStream);
      if (endStream) this.#maybeRetire(stream);
      return;
    }
    if (this.role === "client" || (streamId & 1) === 0) {
      if (this.#isIdle(streamId)) throw new Http2Error(ErrorCode.PROTOCOL_ERROR, "HEADERS on an idle stream");
      return; // Trailers of a stream we reset.
    }
    if (streamId <= this.#lastPeerStreamId) {
      throw new Http2Error(ErrorCode.STREAM_CLOSED, "HEADERS on a closed stream");
    }
    this.#lastPeerStreamId = streamId;
    if (this.#goawaySent) return; // Started after our GOAWAY: ignored, as §6.8 allows.
    if (this.#streams.size >= (this.#opts.maxConcurrentStreams ?? DEFAULT_MAX_CONCURRENT_STREAMS)) {
      this.#writer.rstStream(streamId, ErrorCode.REFUSED_STREAM);
      this.#scheduleFlush();
      return;
    }
    const created = new H2Stream(this, streamId, this.#peer.initialWindowSize, this.#localInitialWindow);
    this.#streams.set(streamId, created);
    validateHeaders(headers, streamId, true);
    if (endStream) created.remoteEnded = true;
    created.events = this.#opts.onStream?.(created, headers, endStream);
    if (!created.events) this.resetStream(created, ErrorCode.REFUSED_STREAM);
  }

  #onRstStream(f: Frame): void {
    if (f.streamId === 0) throw new Http2Error(ErrorCode.PROTOCOL_ERROR, "RST_STREAM on stream 0");
    if (f.payload.length !== 4) throw new Http2Error(ErrorCode.FRAME_SIZE_ERROR, "RST_STREAM is 4 bytes");
    if (this.#isIdle(f.streamId)) {
      throw new Http2Error(ErrorCode.PROTOCOL_ERROR, "RST_STREAM on an idle stream");
    }
    if (this.role === "server") {
      const now = performance.now();
      if (now - this.#resetWindowStart > 1000) {
        this.#resetWindowStart = now;
        this.#resetsInWindow = 0;
      }
      if (++this.#resetsInWindow > MAX_RESETS_PER_SECOND) {
        throw new Http2Error(ErrorCode.ENHANCE_YOUR_CALM, "too many streams reset");
      }
    }
    const stream = this.#streams.get(f.streamId);
    if (!stream) return;
    const code = readUint32(f.payload, 0);
    this.#retire(stream);
    stream.events?.reset(code, `the peer reset the stream (${ERROR_NAMES[code] ?? code})`, false);
  }

  #onSettings(f: Frame): void {
    if (f.streamId !== 0) throw new Http2Error(ErrorCode.PROTOCOL_ERROR, "SETTINGS on a stream");
    if (f.flags & Flags.ACK) {
      if (f.payload.length) throw new Http2Error(ErrorCode.FRAME_SIZE_ERROR, "SETTINGS ACK with a payload");
      // Our INITIAL_WINDOW_SIZE holds from now on, for open streams too (§6.9.2).
      const delta = this.streamWindow - this.#localInitialWindow;
      this.#localInitialWindow = this.streamWindow;
      for (const s of this.#streams.values()) s.recvWindow += delta;
      return;
    }
    if (f.payload.length % 6) {
      throw new Http2Error(ErrorCode.FRAME_SIZE_ERROR, "SETTINGS length not a multiple of 6");
    }
    for (let i = 0; i < f.payload.length; i += 6) {
      const id = (f.payload[i] << 8) | f.payload[i + 1];
      const value = readUint32(f.payload, i + 2);
      switch (id) {
        case SettingId.HEADER_TABLE_SIZE:
          // Our encoder keeps no dynamic table, so any size suits it.
          this.#peer.headerTableSize = value;
          break;
        case SettingId.ENABLE_PUSH:
          if (value > 1) throw new Http2Error(ErrorCode.PROTOCOL_ERROR, "ENABLE_PUSH must be 0 or 1");
          if (value === 1 && this.role === "client") {
            throw new Http2Error(ErrorCode.PROTOCOL_ERROR, "a server may not enable push");
          }
          this.#peer.enablePush = value;
          break;
        case SettingId.MAX_CONCURRENT_STREAMS:
          this.#peer.maxConcurrentStreams = value;
          this.#wakeSlotWaiters();
          break;
        case SettingId.INITIAL_WINDOW_SIZE: {
          if (value > MAX_WINDOW) {
            throw new Http2Error(ErrorCode.FLOW_CONTROL_ERROR, "INITIAL_WINDOW_SIZE too large");
          }
          const delta = value - this.#peer.initialWindowSize;
          this.#peer.initialWindowSize = value;
          for (const s of this.#streams.values()) {
            s.sendWindow += delta;
            if (s.sendWindow > MAX_WINDOW) {
              throw new Http2Error(ErrorCode.FLOW_CONTROL_ERROR, "a stream window overflowed");
            }
          }
          break;
        }
        case SettingId.MAX_FRAME_SIZE:
          if (value < MIN_MAX_FRAME_SIZE || value > MAX_MAX_FRAME_SIZE) {
            throw new Http2Error(ErrorCode.PROTOCOL_ERROR, `MAX_FRAME_SIZE ${value} out of range`);
          }
          this.#peer.maxFrameSize = value;
          break;
        case SettingId.MAX_HEADER_LIST_SIZE:
          this.#peer.maxHeaderListSize = value;
          break;
        default:
          break; // Unknown settings are ignored (§6.5.2).
      }
    }
    this.#writer.settings([], true);
    this.#scheduleFlush();
    this.#resolveSettled();
    for (const s of [...this.#blocked]) this.#pump(s);
  }

  #onPing(f: Frame): void {
    if (f.streamId !== 0) throw new Http2Error(ErrorCode.PROTOCOL_ERROR, "PING on a stream");
    if (f.payload.length !== 8) throw new Http2Error(ErrorCode.FRAME_SIZE_ERROR, "PING is 8 bytes");
    if (f.flags & Flags.ACK) {
      const key = f.payload.join(",");
      this.#pings.get(key)?.();
      this.#pings.delete(key);
      return;
    }
    this.#writer.ping(f.payload, true);
    this.#scheduleFlush();
  }

  #onGoaway(f: Frame): void {
    if (f.streamId !== 0) throw new Http2Error(ErrorCode.PROTOCOL_ERROR, "GOAWAY on a stream");
    if (f.payload.length < 8) throw new Http2Error(ErrorCode.FRAME_SIZE_ERROR, "GOAWAY is at least 8 bytes");
    const lastStreamId = readUint32(f.payload, 0) & 0x7fffffff;
    const code = readUint32(f.payload, 4);
    this.#goawayReceived = true;
    const debug = new TextDecoder().decode(f.payload.subarray(8));
    for (const s of [...this.#streams.values()]) {
      // Streams we opened that the peer never processed may be retried elsewhere.
      if ((s.id & 1) === (this.role === "client" ? 1 : 0) && s.id > lastStreamId) {
        this.#retire(s);
        s.events?.reset(
          ErrorCode.REFUSED_STREAM,
          `the peer is going away${debug ? `: ${debug}` : ""}`,
          false,
        );
      }
    }
    this.#opts.onGoaway?.(lastStreamId, code);
    if (this.#streams.size === 0) this.#closeAfterFlush();
  }

  #onWindowUpdate(f: Frame): void {
    if (f.payload.length !== 4) throw new Http2Error(ErrorCode.FRAME_SIZE_ERROR, "WINDOW_UPDATE is 4 bytes");
    const increment = readUint32(f.payload, 0) & 0x7fffffff;
    if (f.streamId === 0) {
      if (increment === 0) throw new Http2Error(ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE of 0");
      this.#sendWindow += increment;
      if (this.#sendWindow > MAX_WINDOW) {
        throw new Http2Error(ErrorCode.FLOW_CONTROL_ERROR, "window overflow");
      }
      for (const s of [...this.#blocked]) this.#pump(s);
      return;
    }
    if (increment === 0) throw new Http2Error(ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE of 0", f.streamId);
    const stream = this.#streams.get(f.streamId);
    if (!stream) {
      if (this.#isIdle(f.streamId)) {
        throw new Http2Error(ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream");
      }
      return;
    }
    stream.sendWindow += increment;
    if (stream.sendWindow > MAX_WINDOW) {
      throw new Http2Error(ErrorCode.FLOW_CONTROL_ERROR, "stream window overflow", f.streamId);
    }
    if (stream.queue.length) this.#pump(stream);
  }
}

function readUint32(b: Uint8Array, at: number): number {
  return ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;
}

/** Headers that only HTTP/1.1 has; a message carrying them is malformed in HTTP/2 (§8.2.2). */
const CONNECTION_SPECIFIC = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
]);
const REQUEST_PSEUDO = new Set([":method", ":scheme", ":authority", ":path"]);

/** §8.2–8.3: lower-case names, pseudo-headers first and only the defined ones, no HTTP/1.1 framing headers. */
function validateHeaders(headers: HeaderList, streamId: number, request: boolean): void {
  const malformed = (why: string) =>
    new Http2Error(ErrorCode.PROTOCOL_ERROR, `malformed headers: ${why}`, streamId);
  let regular = false;
  for (const [name, value] of headers) {
    if (name.startsWith(":")) {
      if (regular) throw malformed(`${name} after a regular header`);
      if (request ? !REQUEST_PSEUDO.has(name) : name !== ":status") throw malformed(`unexpected ${name}`);
      continue;
    }
    regular = true;
    if (name !== name.toLowerCase()) throw malformed(`upper-case name ${name}`);
    if (CONNECTION_SPECIFIC.has(name)) throw malformed(`connection-specific header ${name}`);
    if (name === "te" && value !== "trailers") throw malformed(`te: ${value}`);
  }
}

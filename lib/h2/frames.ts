// HTTP/2 framing (RFC 9113 §4, §6): the frame header, the codes and settings both ends use, a
// reader that finds whole frames in what the socket delivers without copying them, and the
// encoders of the frames this implementation sends.

export const CONNECTION_PREFACE = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
const FRAME_HEADER_BYTES = 9;

export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

export const Flags = {
  END_STREAM: 0x1,
  ACK: 0x1,
  END_HEADERS: 0x4,
  PADDED: 0x8,
  PRIORITY: 0x20,
} as const;

export const ErrorCode = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa,
  ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc,
  HTTP_1_1_REQUIRED: 0xd,
} as const;

export const ERROR_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(ErrorCode).map(([name, code]) => [code, name]),
);

export const SettingId = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
} as const;

/** What each setting is until the peer's SETTINGS frame says otherwise (RFC 9113 §6.5.2). */
export const DEFAULT_SETTINGS = {
  headerTableSize: 4096,
  enablePush: 1,
  maxConcurrentStreams: Infinity,
  initialWindowSize: 65_535,
  maxFrameSize: 16_384,
  maxHeaderListSize: Infinity,
};
export type Settings = typeof DEFAULT_SETTINGS;

export const MAX_WINDOW = 2 ** 31 - 1;
export const MIN_MAX_FRAME_SIZE = 16_384;
export const MAX_MAX_FRAME_SIZE = 2 ** 24 - 1;

/** A protocol violation; `streamId` 0 makes it a connection error, anything else a stream error. */
export class Http2Error extends Error {
  constructor(readonly code: number, message: string, readonly streamId = 0) {
    super(message);
  }
}

export interface Frame {
  type: number;
  flags: number;
  streamId: number;
  /** A view into the reader's buffer: valid only until the handler returns. */
  payload: Uint8Array;
}

/**
 * Whole frames from a byte stream. The socket reads straight into `writable()`; frames are views
 * into that buffer, so nothing is copied on the way in, and a handler that keeps bytes copies them.
 */
export class FrameReader {
  #buf: Uint8Array;
  #start = 0;
  #end = 0;
  /** A server's reader first takes the client's connection preface. */
  #preface: Uint8Array | undefined;

  constructor(private maxFrameSize: number, expectPreface: boolean, initialBytes = 64 * 1024) {
    this.#buf = new Uint8Array(initialBytes);
    this.#preface = expectPreface ? CONNECTION_PREFACE : undefined;
  }

  /** The frame size limit this end advertised. */
  set limit(bytes: number) {
    this.maxFrameSize = bytes;
  }

  /** Where the next read lands; room for at least one maximal frame header. */
  writable(): Uint8Array {
    if (this.#start === this.#end) this.#start = this.#end = 0;
    const need = this.#pendingFrameBytes();
    if (this.#buf.length - this.#start < need) {
      const grown = new Uint8Array(Math.max(need, this.#buf.length));
      grown.set(this.#buf.subarray(this.#start, this.#end));
      this.#buf = grown;
      this.#end -= this.#start;
      this.#start = 0;
    } else if (this.#buf.length - this.#end < 4096 || this.#buf.length - this.#start < need + 4096) {
      this.#buf.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    return this.#buf.subarray(this.#end);
  }

  /** Bytes of the frame the buffer starts with (header included), or a header's worth if unknown. */
  #pendingFrameBytes(): number {
    if (this.#end - this.#start < FRAME_HEADER_BYTES) return FRAME_HEADER_BYTES + 4096;
    const b = this.#buf, i = this.#start;
    return FRAME_HEADER_BYTES + ((b[i] << 16) | (b[i + 1] << 8) | b[i + 2]);
  }

  /** Takes `n` bytes just read into `writable()` and hands every whole frame to `onFrame`. */
  received(n: number, onFrame: (frame: Frame) => void): void {
    this.#end += n;
    const b = this.#buf;
    if (this.#preface) {
      const have = Math.min(this.#end - this.#start, this.#preface.length);
      for (let k = 0; k < have; k++) {
        if (b[this.#start + k] !== this.#preface[k]) {
          throw new Http2Error(
            ErrorCode.PROTOCOL_ERROR,
            "the client did not send the HTTP/2 connection preface",
          );
        }
      }
      if (have < this.#preface.length) return;
      this.#start += this.#preface.length;
      this.#preface = undefined;
    }
    while (this.#end - this.#start >= FRAME_HEADER_BYTES) {
      const i = this.#start;
      const length = (b[i] << 16) | (b[i + 1] << 8) | b[i + 2];
      if (length > this.maxFrameSize) {
        throw new Http2Error(
          ErrorCode.FRAME_SIZE_ERROR,
          `a ${length}-byte frame exceeds ${this.maxFrameSize}`,
        );
      }
      if (this.#end - i < FRAME_HEADER_BYTES + length) break;
      const streamId = ((b[i + 5] & 0x7f) << 24 | (b[i + 6] << 16) | (b[i + 7] << 8) | b[i + 8]) >>> 0;
      this.#start = i + FRAME_HEADER_BYTES + length;
      onFrame({
        type: b[i + 3],
        flags: b[i + 4],
        streamId,
        payload: b.subarray(i + FRAME_HEADER_BYTES, i + FRAME_HEADER_BYTES + length),
      });
    }
  }
}

/** Appends frames to one growing buffer, so that everything due in one turn is one socket write. */
export class FrameWriter {
  #buf = new Uint8Array(16 * 1024);
  /** The buffer the previous take() handed out, reused once the caller has written it. */
  #spare = new Uint8Array(16 * 1024);
  #len = 0;

  get length(): number {
    return this.#len;
  }

  #reserve(n: number): number {
    if (this.#len + n > this.#buf.length) {
      const grown = new Uint8Array(Math.max(this.#buf.length * 2, this.#len + n));
      grown.set(this.#buf.subarray(0, this.#len));
      this.#buf = grown;
    }
    const at = this.#len;
    this.#len += n;
    return at;
  }

  /** A frame whose payload is written by the caller into the returned offset. */
  #header(type: number, flags: number, streamId: number, length: number): number {
    const at = this.#reserve(FRAME_HEADER_BYTES + length);
    const b = this.#buf;
    b[at] = length >>> 16;
    b[at + 1] = (length >>> 8) & 0xff;
    b[at + 2] = length & 0xff;
    b[at + 3] = type;
    b[at + 4] = flags;
    b[at + 5] = (streamId >>> 24) & 0x7f;
    b[at + 6] = (streamId >>> 16) & 0xff;
    b[at + 7] = (streamId >>> 8) & 0xff;
    b[at + 8] = streamId & 0xff;
    return at + FRAME_HEADER_BYTES;
  }

  // The offset is taken before the buffer is named: reserving may replace the buffer.
  raw(bytes: Uint8Array): void {
    const at = this.#reserve(bytes.length);
    this.#buf.set(bytes, at);
  }

  frame(type: number, flags: number, streamId: number, payload: Uint8Array): void {
    const at = this.#header(type, flags, streamId, payload.length);
    this.#buf.set(payload, at);
  }

  /** DATA from several pieces (a gRPC message prefix and its body) without joining them first. */
  data(streamId: number, endStream: boolean, pieces: Uint8Array[], length: number): void {
    let at = this.#header(FrameType.DATA, endStream ? Flags.END_STREAM : 0, streamId, length);
    for (const p of pieces) {
      this.#buf.set(p, at);
      at += p.length;
    }
  }

  /** A header block as HEADERS plus CONTINUATION frames of at most `maxFrameSize` each. */
  headers(streamId: number, block: Uint8Array, endStream: boolean, maxFrameSize: number): void {
    let offset = 0;
    let first = true;
    do {
      const chunk = block.subarray(offset, offset + maxFrameSize);
      offset += chunk.length;
      const last = offset >= block.length;
      const flags = (last ? Flags.END_HEADERS : 0) | (first && endStream ? Flags.END_STREAM : 0);
      this.frame(first ? FrameType.HEADERS : FrameType.CONTINUATION, flags, streamId, chunk);
      first = false;
    } while (offset < block.length);
  }

  settings(values: [id: number, value: number][], ack = false): void {
    const at = this.#header(FrameType.SETTINGS, ack ? Flags.ACK : 0, 0, ack ? 0 : values.length * 6);
    if (ack) return;
    const view = new DataView(this.#buf.buffer, this.#buf.byteOffset);
    values.forEach(([id, value], i) => {
      view.setUint16(at + i * 6, id);
      view.setUint32(at + i * 6 + 2, value);
    });
  }

  windowUpdate(streamId: number, increment: number): void {
    const at = this.#header(FrameType.WINDOW_UPDATE, 0, streamId, 4);
    new DataView(this.#buf.buffer, this.#buf.byteOffset).setUint32(at, increment & 0x7fffffff);
  }

  rstStream(streamId: number, code: number): void {
    const at = this.#header(FrameType.RST_STREAM, 0, streamId, 4);
    new DataView(this.#buf.buffer, this.#buf.byteOffset).setUint32(at, code);
  }

  ping(payload: Uint8Array, ack: boolean): void {
    this.frame(FrameType.PING, ack ? Flags.ACK : 0, 0, payload);
  }

  goaway(lastStreamId: number, code: number, debug: string): void {
    const text = new TextEncoder().encode(debug);
    const at = this.#header(FrameType.GOAWAY, 0, 0, 8 + text.length);
    const view = new DataView(this.#buf.buffer, this.#buf.byteOffset);
    view.setUint32(at, lastStreamId & 0x7fffffff);
    view.setUint32(at + 4, code);
    this.#buf.set(text, at + 8);
  }

  /** Everything written so far, handed over; valid until the next take(), which reuses its memory. */
  take(): Uint8Array {
    const used = this.#buf;
    const out = used.subarray(0, this.#len);
    this.#buf = this.#spare;
    // A buffer grown for one large message is not kept.
    this.#spare = used.length > 1 << 20 ? new Uint8Array(16 * 1024) : used;
    this.#len = 0;
    return out;
  }
}

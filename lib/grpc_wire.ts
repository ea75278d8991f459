// gRPC over HTTP/2, the wire format (grpc/grpc doc/PROTOCOL-HTTP2.md): length-prefixed messages,
// the status in trailers (with google.rpc.Status in grpc-status-details-bin), grpc-timeout, and
// how HTTP statuses and stream resets become gRPC codes. Both ends of lib/grpc.ts use it.
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";
import { StatusSchema } from "../gen/google/rpc/status_pb.ts";
import { ErrorDetailSchema } from "../gen/astra/common/v1/errors_pb.ts";
import { AstraError, Code, Errno } from "./errors.ts";
import { ErrorCode } from "./h2/frames.ts";
import type { HeaderList } from "./h2/hpack.ts";

const DETAILS_KEY = "grpc-status-details-bin";
const ERROR_DETAIL_TYPE_URL = `type.googleapis.com/${ErrorDetailSchema.typeName}`;
export const MESSAGE_PREFIX_BYTES = 5;

/** The 5-byte prefix of an uncompressed message of `length` bytes. */
export function messagePrefix(length: number): Uint8Array {
  const p = new Uint8Array(MESSAGE_PREFIX_BYTES);
  p[1] = length >>> 24;
  p[2] = (length >>> 16) & 0xff;
  p[3] = (length >>> 8) & 0xff;
  p[4] = length & 0xff;
  return p;
}

/**
 * Whole messages out of DATA payloads, however the frames cut them. Each message is copied out of
 * the (reused) read buffer; `consumed` reports the bytes taken from the stream once a message is
 * whole, so that a reader that falls behind holds the sender back by flow control.
 */
export class MessageReader {
  #header = new Uint8Array(MESSAGE_PREFIX_BYTES);
  #headerHave = 0;
  #body: Uint8Array | undefined;
  #bodyHave = 0;

  constructor(private readonly maxBytes: number) {}

  /** True between messages: nothing of a next message has arrived. */
  get idle(): boolean {
    return this.#headerHave === 0;
  }

  /** Feeds a payload; calls `onMessage` for each message it completes. Throws AstraError on a bad prefix. */
  push(data: Uint8Array, onMessage: (message: Uint8Array) => void): void {
    let at = 0;
    while (at < data.length) {
      if (this.#body === undefined) {
        // Fast path: a whole message inside this payload.
        if (this.#headerHave === 0 && data.length - at >= MESSAGE_PREFIX_BYTES) {
          const length = this.#checkPrefix(data, at);
          if (data.length - at - MESSAGE_PREFIX_BYTES >= length) {
            const start = at + MESSAGE_PREFIX_BYTES;
            onMessage(data.slice(start, start + length));
            at = start + length;
            continue;
          }
        }
        const take = Math.min(MESSAGE_PREFIX_BYTES - this.#headerHave, data.length - at);
        this.#header.set(data.subarray(at, at + take), this.#headerHave);
        this.#headerHave += take;
        at += take;
        if (this.#headerHave < MESSAGE_PREFIX_BYTES) return;
        this.#body = new Uint8Array(this.#checkPrefix(this.#header, 0));
        this.#bodyHave = 0;
      }
      const take = Math.min(this.#body.length - this.#bodyHave, data.length - at);
      this.#body.set(data.subarray(at, at + take), this.#bodyHave);
      this.#bodyHave += take;
      at += take;
      if (this.#bodyHave === this.#body.length) {
        const message = this.#body;
        this.#body = undefined;
        this.#headerHave = 0;
        onMessage(message);
      }
    }
  }

  #checkPrefix(b: Uint8Array, at: number): number {
    if (b[at] !== 0) {
      throw new AstraError(
        b[at] === 1 ? Code.UNIMPLEMENTED : Code.INTERNAL,
        b[at] === 1 ? Errno.ENOSYS : Errno.EBADMSG,
        b[at] === 1 ? "compressed messages are not supported" : `invalid message flags ${b[at]}`,
      );
    }
    const length = ((b[at + 1] << 24) | (b[at + 2] << 16) | (b[at + 3] << 8) | b[at + 4]) >>> 0;
    if (length > this.maxBytes) {
      throw new AstraError(
        Code.RESOURCE_EXHAUSTED,
        Errno.E2BIG,
        `received message larger than max (${length} vs. ${this.maxBytes})`,
      );
    }
    return length;
  }
}

/** The trailers (or the status part of a trailers-only response) that report `err`. */
export function statusHeaders(err: AstraError): HeaderList {
  const status = toBinary(StatusSchema, {
    $typeName: "google.rpc.Status",
    code: err.code,
    message: err.message,
    details: [anyPack(ErrorDetailSchema, err.detail)],
  });
  return [
    ["grpc-status", String(err.code)],
    ["grpc-message", percentEncode(err.message)],
    [DETAILS_KEY, base64(status)],
  ];
}

export const OK_TRAILERS: HeaderList = [["grpc-status", "0"]];

const ERRNO_FOR_BARE_STATUS: Partial<Record<Code, Errno>> = {
  [Code.CANCELLED]: Errno.ECANCELED,
  [Code.DEADLINE_EXCEEDED]: Errno.ETIMEDOUT,
  [Code.UNAVAILABLE]: Errno.ECONNREFUSED,
  [Code.RESOURCE_EXHAUSTED]: Errno.E2BIG,
  [Code.UNIMPLEMENTED]: Errno.ENOSYS,
};

/** A status without an astra detail (from another implementation, or made up by the transport). */
export function bareStatus(code: Code, message: string): AstraError {
  return new AstraError(code, ERRNO_FOR_BARE_STATUS[code] ?? Errno.EIO, message || Code[code]);
}

/** The status trailers carry: the server's detail if it sent one, else one derived from the code. */
export function statusFromTrailers(headers: HeaderList): AstraError | undefined {
  let code: number | undefined, message = "", details: string | undefined;
  for (const [name, value] of headers) {
    if (name === "grpc-status") code = /^\d+$/.test(value) ? Number(value) : Code.UNKNOWN;
    else if (name === "grpc-message") message = percentDecode(value);
    else if (name === DETAILS_KEY) details = value;
  }
  if (code === undefined) return bareStatus(Code.UNKNOWN, "the server sent no grpc-status");
  if (code === Code.OK) return undefined;
  if (code > Code.UNAUTHENTICATED) code = Code.UNKNOWN;
  if (details !== undefined) {
    try {
      const status = fromBinary(StatusSchema, unbase64(details));
      const any = status.details.find((d) => d.typeUrl === ERROR_DETAIL_TYPE_URL);
      if (any) return AstraError.fromDetail(code as Code, fromBinary(ErrorDetailSchema, any.value));
    } catch {
      // A malformed detail falls through to the bare status.
    }
  }
  return bareStatus(code as Code, message);
}

/** gRPC's mapping of an HTTP status that is not 200 (a proxy or a non-gRPC server answered). */
export function statusFromHttp(httpStatus: string): AstraError {
  const code = ({
    "400": Code.INTERNAL,
    "401": Code.UNAUTHENTICATED,
    "403": Code.PERMISSION_DENIED,
    "404": Code.UNIMPLEMENTED,
    "429": Code.UNAVAILABLE,
    "502": Code.UNAVAILABLE,
    "503": Code.UNAVAILABLE,
    "504": Code.UNAVAILABLE,
  } as Record<string, Code>)[httpStatus] ?? Code.UNKNOWN;
  return bareStatus(code, `the server answered HTTP status ${httpStatus}`);
}

/** gRPC's mapping of RST_STREAM codes. */
export function statusFromReset(h2code: number, message: string): AstraError {
  switch (h2code) {
    case ErrorCode.REFUSED_STREAM:
      return bareStatus(Code.UNAVAILABLE, message);
    case ErrorCode.CANCEL:
      return bareStatus(Code.CANCELLED, message);
    case ErrorCode.ENHANCE_YOUR_CALM:
      return bareStatus(Code.RESOURCE_EXHAUSTED, message);
    case ErrorCode.INADEQUATE_SECURITY:
      return bareStatus(Code.PERMISSION_DENIED, message);
    default:
      return bareStatus(Code.INTERNAL, message);
  }
}

/** grpc-timeout: at most 8 digits and a unit. */
export function formatTimeout(ms: number): string {
  const m = Math.max(0, Math.ceil(ms));
  if (m < 1e8) return `${m}m`;
  const s = Math.ceil(m / 1000);
  if (s < 1e8) return `${s}S`;
  return `${Math.min(99_999_999, Math.ceil(s / 3600))}H`;
}

const TIMEOUT_UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };

/** Milliseconds in a grpc-timeout value, or undefined when it is malformed. */
export function parseTimeout(value: string): number | undefined {
  const match = /^(\d{1,8})([HMSmun])$/.exec(value);
  return match ? Number(match[1]) * TIMEOUT_UNIT_MS[match[2]] : undefined;
}

/** grpc-message: percent-encoding of everything outside printable ASCII, and of '%' (PROTOCOL-HTTP2.md). */
function percentEncode(text: string): string {
  let plain = true;
  for (let i = 0; i < text.length && plain; i++) {
    const c = text.charCodeAt(i);
    plain = c >= 0x20 && c <= 0x7e && c !== 0x25;
  }
  if (plain) return text;
  let out = "";
  for (const byte of new TextEncoder().encode(text)) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25
      ? String.fromCharCode(byte)
      : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

function percentDecode(text: string): string {
  if (!text.includes("%")) return text;
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const hex = text.slice(i + 1, i + 3);
    if (text[i] === "%" && /^[0-9a-fA-F]{2}$/.test(hex)) {
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else bytes.push(text.charCodeAt(i) & 0xff);
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

/** Binary metadata is base64; senders omit the padding, receivers take either form. */
function base64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s).replace(/=+$/, "");
}

function unbase64(text: string): Uint8Array {
  const padded = text + "===".slice((text.length + 3) % 4);
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
}

/**
 * Call metadata an application may see: not HTTP/2 pseudo-headers, not the headers gRPC itself
 * uses, and only text values (binary `-bin` keys are dropped, as the CallContext carries text).
 */
export function applicationMetadata(headers: HeaderList): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of headers) {
    if (name.startsWith(":") || RESERVED_HEADERS.has(name) || name.endsWith("-bin")) continue;
    out[name] = value;
  }
  return out;
}

const RESERVED_HEADERS = new Set([
  "content-type",
  "te",
  "grpc-timeout",
  "grpc-encoding",
  "grpc-accept-encoding",
  "grpc-status",
  "grpc-message",
  "content-length",
]);

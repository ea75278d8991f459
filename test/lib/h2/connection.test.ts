// The HTTP/2 connection on real sockets: our two ends against each other with tiny flow-control
// windows, and a hand-driven peer that sends what a broken or hostile client would.
import { afterEach, describe, expect, it } from "vitest";
import { H2Connection, type H2Stream, type StreamEvents } from "../../../lib/h2/connection.ts";
import {
  CONNECTION_PREFACE,
  ErrorCode,
  Flags,
  type Frame,
  FrameReader,
  FrameType,
  FrameWriter,
} from "../../../lib/h2/frames.ts";
import { type HeaderList, HpackDecoder, HpackEncoder } from "../../../lib/h2/hpack.ts";

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const f of cleanup.splice(0)) f();
});

/** Stream events that keep what arrives. */
class Sink implements StreamEvents {
  readonly headerBlocks: HeaderList[] = [];
  readonly chunks: Uint8Array[] = [];
  readonly ended: Promise<void>;
  readonly resetSeen: Promise<{ code: number; connectionLost: boolean }>;
  #ended!: () => void;
  #reset!: (r: { code: number; connectionLost: boolean }) => void;
  stream: H2Stream | undefined;

  constructor() {
    this.ended = new Promise((r) => this.#ended = r);
    this.resetSeen = new Promise((r) => this.#reset = r);
  }
  headers(h: HeaderList, end: boolean): void {
    this.headerBlocks.push(h);
    if (end) this.#ended();
  }
  data(payload: Uint8Array, end: boolean): void {
    this.chunks.push(payload.slice());
    this.stream?.consume(payload.length);
    if (end) this.#ended();
  }
  reset(code: number, _message: string, connectionLost: boolean): void {
    this.#reset({ code, connectionLost });
  }
  get bytes(): Uint8Array {
    const out = new Uint8Array(this.chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

/** A server whose every stream echoes its data back, then ends with trailers. */
function echoServer(streamWindow?: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const connections: H2Connection[] = [];
  (async () => {
    for await (const conn of listener) {
      connections.push(
        new H2Connection(conn, {
          role: "server",
          streamWindow,
          onStream(stream, headers) {
            const path = headers.find(([n]) => n === ":path")?.[1];
            stream.sendHeaders([[":status", "200"], ["x-path", path ?? ""]]);
            return {
              headers() {},
              data(payload, end) {
                stream.consume(payload.length);
                if (payload.length) stream.sendData([payload.slice()]);
                if (end) stream.sendHeaders([["x-done", "yes"]], true);
              },
              reset() {},
            };
          },
        }),
      );
    }
  })().catch(() => {});
  cleanup.push(() => {
    listener.close();
    for (const c of connections) c.close();
  });
  return { port: (listener.addr as Deno.NetAddr).port, connections };
}

async function clientTo(port: number, streamWindow?: number): Promise<H2Connection> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const c = new H2Connection(conn, { role: "client", streamWindow });
  cleanup.push(() => c.close());
  return c;
}

const request = (path: string): HeaderList => [
  [":method", "POST"],
  [":scheme", "http"],
  [":path", path],
  [":authority", "test"],
];

describe("HTTP/2 connection", () => {
  it("echoes 1 MiB through 2000-byte stream windows both ways, in order", async () => {
    const { port } = echoServer(2000);
    const client = await clientTo(port, 2000);
    const sink = new Sink();
    const stream = client.openStream(sink);
    sink.stream = stream;
    const payload = Uint8Array.from({ length: 1 << 20 }, (_, i) => (i * 31 + (i >> 9)) & 0xff);
    stream.sendHeaders(request("/big"));
    for (let at = 0; at < payload.length; at += 100_000) {
      stream.sendData([payload.subarray(at, at + 100_000)]);
      if (stream.congested) await stream.writable();
    }
    stream.end();
    await sink.ended;
    expect(sink.headerBlocks[0]).toContainEqual(["x-path", "/big"]);
    expect(sink.headerBlocks.at(-1)).toEqual([["x-done", "yes"]]);
    expect(sink.bytes).toEqual(payload);
  });

  it("runs many streams at once on one connection", async () => {
    const { port } = echoServer();
    const client = await clientTo(port);
    const results = await Promise.all(Array.from({ length: 200 }, async (_, i) => {
      const sink = new Sink();
      const s = client.openStream(sink);
      sink.stream = s;
      s.sendHeaders(request(`/s${i}`));
      s.sendData([new TextEncoder().encode(`stream ${i}`)], true);
      await sink.ended;
      return new TextDecoder().decode(sink.bytes);
    }));
    expect(results).toEqual(Array.from({ length: 200 }, (_, i) => `stream ${i}`));
    expect(client.activeStreams).toBe(0);
  });

  it("answers PING", async () => {
    const { port } = echoServer();
    const client = await clientTo(port);
    await client.ping(2000);
  });

  it("refuses streams above the last one a GOAWAY names, and lets earlier ones finish", async () => {
    const { port, connections } = echoServer();
    const client = await clientTo(port);
    const first = new Sink();
    const s1 = client.openStream(first);
    first.stream = s1;
    s1.sendHeaders(request("/first"));
    s1.sendData([new Uint8Array([1])]);
    await client.ping(2000);
    connections[0].shutdown();
    await client.ping(2000).catch(() => {});
    expect(client.open).toBe(false);
    s1.sendData([new Uint8Array([2])], true);
    await first.ended;
    expect([...first.bytes]).toEqual([1, 2]);
    await client.closed;
  });

  it("tells open streams when the connection is lost", async () => {
    const { port, connections } = echoServer();
    const client = await clientTo(port);
    const sink = new Sink();
    const s = client.openStream(sink);
    s.sendHeaders(request("/lost"));
    await client.ping(2000);
    connections[0].close();
    expect(await sink.resetSeen).toEqual({ code: ErrorCode.CANCEL, connectionLost: true });
  });
});

/** A peer driven by hand: raw frames to our server, and the frames it answers with. */
async function rawPeer(handshakeTimeoutMs?: number) {
  let streams = 0;
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const server = (async () => {
    const conn = await listener.accept();
    return new H2Connection(conn, {
      role: "server",
      handshakeTimeoutMs,
      onStream(stream) {
        streams++;
        stream.sendHeaders([[":status", "200"]], true);
        return { headers() {}, data() {}, reset() {} };
      },
    });
  })();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: (listener.addr as Deno.NetAddr).port });
  const reader = new FrameReader(1 << 24, false);
  const frames: Frame[] = [];
  let closed = false;
  (async () => {
    for (;;) {
      const n = await conn.read(reader.writable()).catch(() => null);
      if (n === null) break;
      reader.received(n, (f) => frames.push({ ...f, payload: f.payload.slice() }));
    }
    closed = true;
  })();
  const h2 = await server;
  cleanup.push(() => {
    listener.close();
    h2.close();
    try {
      conn.close();
    } catch { /* closed by the server */ }
  });
  const send = async (build: (w: FrameWriter) => void) => {
    const w = new FrameWriter();
    build(w);
    await conn.write(w.take());
  };
  const until = async <T>(find: () => T | undefined): Promise<T> => {
    for (let i = 0; i < 200; i++) {
      const found = find();
      if (found !== undefined) return found;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error("timed out waiting for the server");
  };
  return {
    send,
    frames,
    until,
    get closed() {
      return closed;
    },
    get streams() {
      return streams;
    },
    goaway: () =>
      until(() => {
        const f = frames.find((f) => f.type === FrameType.GOAWAY);
        return f && new DataView(f.payload.buffer).getUint32(4);
      }),
  };
}

const hello = (w: FrameWriter) => {
  w.raw(CONNECTION_PREFACE);
  w.settings([]);
};

describe("HTTP/2 server against a misbehaving peer", () => {
  it("acknowledges SETTINGS and answers a request sent in HEADERS + CONTINUATION", async () => {
    const peer = await rawPeer();
    const block = new HpackEncoder().encode([...request("/split"), ["x-long", "v".repeat(40_000)]]);
    await peer.send((w) => {
      hello(w);
      w.frame(FrameType.HEADERS, Flags.END_STREAM, 1, block.subarray(0, 100));
      w.frame(FrameType.CONTINUATION, 0, 1, block.subarray(100, 20_000));
      w.frame(FrameType.CONTINUATION, Flags.END_HEADERS, 1, block.subarray(20_000));
    });
    const answer = await peer.until(() =>
      peer.frames.find((f) => f.type === FrameType.HEADERS && f.streamId === 1)
    );
    expect(new HpackDecoder().decode(answer.payload)).toEqual([[":status", "200"]]);
    expect(peer.frames.some((f) => f.type === FrameType.SETTINGS && f.flags & Flags.ACK)).toBe(true);
    expect(peer.streams).toBe(1);
  });

  it("ends the connection with PROTOCOL_ERROR for DATA on stream 0", async () => {
    const peer = await rawPeer();
    await peer.send((w) => {
      hello(w);
      w.frame(FrameType.DATA, 0, 0, new Uint8Array(4));
    });
    expect(await peer.goaway()).toBe(ErrorCode.PROTOCOL_ERROR);
  });

  it("ends the connection with COMPRESSION_ERROR for an undecodable header block", async () => {
    const peer = await rawPeer();
    await peer.send((w) => {
      hello(w);
      w.frame(FrameType.HEADERS, Flags.END_HEADERS, 1, new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]));
    });
    expect(await peer.goaway()).toBe(ErrorCode.COMPRESSION_ERROR);
  });

  it("ends the connection with FRAME_SIZE_ERROR for a PING that is not 8 bytes", async () => {
    const peer = await rawPeer();
    await peer.send((w) => {
      hello(w);
      w.frame(FrameType.PING, 0, 0, new Uint8Array(7));
    });
    expect(await peer.goaway()).toBe(ErrorCode.FRAME_SIZE_ERROR);
  });

  it("resets a stream whose headers are malformed and keeps the connection", async () => {
    const peer = await rawPeer();
    await peer.send((w) => {
      hello(w);
      w.frame(
        FrameType.HEADERS,
        Flags.END_HEADERS | Flags.END_STREAM,
        1,
        new HpackEncoder().encode([...request("/bad"), ["connection", "keep-alive"]]),
      );
      w.frame(
        FrameType.HEADERS,
        Flags.END_HEADERS | Flags.END_STREAM,
        3,
        new HpackEncoder().encode(request("/ok")),
      );
    });
    const rst = await peer.until(() =>
      peer.frames.find((f) => f.type === FrameType.RST_STREAM && f.streamId === 1)
    );
    expect(new DataView(rst.payload.buffer).getUint32(0)).toBe(ErrorCode.PROTOCOL_ERROR);
    await peer.until(() => peer.frames.find((f) => f.type === FrameType.HEADERS && f.streamId === 3));
    expect(peer.frames.some((f) => f.type === FrameType.GOAWAY)).toBe(false);
  });

  it("resets a stream whose second header block does not end it", async () => {
    const peer = await rawPeer();
    const encoder = new HpackEncoder();
    const first = encoder.encode(request("/twice")).slice();
    const second = encoder.encode([["x-not", "trailers"]]).slice();
    await peer.send((w) => {
      hello(w);
      w.frame(FrameType.HEADERS, Flags.END_HEADERS, 1, first);
      w.frame(FrameType.HEADERS, Flags.END_HEADERS, 1, second);
    });
    const rst = await peer.until(() =>
      peer.frames.find((f) => f.type === FrameType.RST_STREAM && f.streamId === 1)
    );
    expect(new DataView(rst.payload.buffer).getUint32(0)).toBe(ErrorCode.PROTOCOL_ERROR);
  });

  it("closes with ENHANCE_YOUR_CALM a connection that opens and resets streams in a flood", async () => {
    const peer = await rawPeer();
    const block = new HpackEncoder().encode(request("/flood")).slice();
    await peer.send((w) => {
      hello(w);
      for (let id = 1; id < 2 * 1100; id += 2) {
        w.frame(FrameType.HEADERS, Flags.END_HEADERS, id, block);
        w.rstStream(id, ErrorCode.CANCEL);
      }
    });
    expect(await peer.goaway()).toBe(ErrorCode.ENHANCE_YOUR_CALM);
  });

  it("closes a connection whose peer never sends its preface and SETTINGS", async () => {
    const peer = await rawPeer(100);
    expect(await peer.goaway()).toBe(ErrorCode.SETTINGS_TIMEOUT);
    await peer.until(() => peer.closed || undefined);
  });

  it("closes on a connection that does not start with the preface", async () => {
    const peer = await rawPeer();
    await peer.send((w) => w.raw(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n")));
    await peer.until(() => peer.closed || undefined);
    expect(peer.streams).toBe(0);
  });

  it("answers a PING with the same payload", async () => {
    const peer = await rawPeer();
    await peer.send((w) => {
      hello(w);
      w.ping(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]), false);
    });
    const ack = await peer.until(() =>
      peer.frames.find((f) => f.type === FrameType.PING && f.flags & Flags.ACK)
    );
    expect([...ack.payload]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });
});

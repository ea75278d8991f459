// One long-lived KernelCall stream to a service that owns system calls. Calls are multiplexed by
// call_id: many threads' calls are in flight at once and their responses come back in any order
// (a blocked futex wait answers long after the getpid sent behind it). The stream is opened at the
// first call and opened again, at the next call, after it failed.
//
// When a stream fails, the calls it had not answered are given back to their owners (`lose`),
// except in one case: a stream that failed UNAVAILABLE before it answered anything most likely
// never reached its peer (a connection that could not be made, a service not serving yet), so its
// calls are sent once more on a fresh stream. Whether a call sent on a stream that was answering
// reached its peer cannot be known, so it is not repeated.
import { context, ROOT_CONTEXT } from "@opentelemetry/api";
import { Channel } from "../../lib/channel.ts";
import { AstraError, Code, Errno, toAstraError } from "../../lib/errors.ts";
import type { RateLimitedLog } from "./rate_limited_log.ts";

/** A call in flight on a KernelCall stream. */
export interface StreamedCall<Request, Response> {
  /** Unique among the calls in flight; the responses carry it back as call_id. */
  readonly id: number;
  /** The request to send: the call's first, or the next round of a call that asked for more. */
  request: Request;
  /** Set by the stream when it sends the call again on a fresh stream (once at most). */
  resent: boolean;
  /** A response with the call's id; the call stays on the stream until `finish`. */
  answer(response: Response): void;
  /** The stream ended without answering the call: it settles with an errno. */
  lose(error: AstraError): void;
}

/** Opens the bidi stream; `signal` cancels it. */
export type OpenKernelCallStream<Request, Response> = (
  requests: AsyncIterable<Request>,
  signal: AbortSignal,
) => AsyncIterable<Response>;

interface Connection<Request, Response> {
  readonly requests: Channel<Request>;
  readonly calls: Map<number, StreamedCall<Request, Response>>;
  /** Some response arrived: the peer got at least some of the requests. */
  answered: boolean;
}

export class KernelCallStream<Request, Response extends { callId: bigint }> {
  #current: Connection<Request, Response> | undefined;
  #closed = false;
  readonly #abort = new AbortController();
  readonly #running = new Set<Promise<void>>();

  constructor(
    /** The service, for logs: "sched", "storage", "vmm". */
    readonly peer: string,
    private readonly open: OpenKernelCallStream<Request, Response>,
    private readonly log: RateLimitedLog,
  ) {}

  /** Sends a call's request, opening the stream if there is none. */
  send(call: StreamedCall<Request, Response>): void {
    if (this.#closed) {
      call.lose(new AstraError(Code.CANCELLED, Errno.EIO, `the ${this.peer} kernel-call stream is closed`));
      return;
    }
    let connection = this.#current;
    const fresh = connection === undefined;
    if (connection === undefined) {
      connection = { requests: new Channel<Request>(), calls: new Map(), answered: false };
      this.#current = connection;
    }
    connection.calls.set(call.id, call);
    connection.requests.push(call.request);
    // Started once the call is on it: a stream that fails at once must find the call to fail.
    if (fresh) this.#start(connection);
  }

  /**
   * Sends the next request of a call that is still on the current stream (FETCH's second round);
   * false when the stream it was on has failed since (the call was lost with it).
   */
  resend(call: StreamedCall<Request, Response>): boolean {
    const connection = this.#current;
    if (connection?.calls.get(call.id) !== call) return false;
    connection.requests.push(call.request);
    return true;
  }

  /** The call has its final answer: forget it. */
  finish(call: StreamedCall<Request, Response>): void {
    const connection = this.#current;
    if (connection?.calls.get(call.id) === call) connection.calls.delete(call.id);
  }

  /** Ends the stream: calls still in flight are lost (CANCELLED), later ones too. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#abort.abort(new AstraError(Code.CANCELLED, Errno.ECANCELED, "the machine's trap path closed"));
    this.#current?.requests.close();
    await Promise.all(this.#running);
  }

  #start(connection: Connection<Request, Response>): void {
    const running = this.#run(connection).finally(() => this.#running.delete(running));
    this.#running.add(running);
  }

  async #run(connection: Connection<Request, Response>): Promise<void> {
    let failure: AstraError;
    try {
      // The stream outlives the call that opened it: it is nobody's child span.
      const responses = context.with(ROOT_CONTEXT, () => this.open(connection.requests, this.#abort.signal));
      for await (const response of responses) {
        connection.answered = true;
        const call = connection.calls.get(Number(response.callId));
        if (call) {
          this.#answer(call, response);
        } else {
          this.log.warn(`${this.peer}:unknown-call`, "a kernel-call response names no call in flight", {
            peer: this.peer,
            callId: response.callId,
          });
        }
      }
      failure = new AstraError(Code.UNAVAILABLE, Errno.EIO, `the ${this.peer} kernel-call stream ended`);
    } catch (err) {
      failure = toAstraError(err);
    }
    this.#fail(connection, failure);
  }

  #answer(call: StreamedCall<Request, Response>, response: Response): void {
    try {
      call.answer(response);
    } catch (err) {
      this.log.error(`${this.peer}:answer`, "a kernel-call response could not be applied", {
        peer: this.peer,
        error: String(err),
      });
      this.finish(call);
      call.lose(toAstraError(err));
    }
  }

  #fail(connection: Connection<Request, Response>, failure: AstraError): void {
    if (this.#current === connection) this.#current = undefined;
    connection.requests.close();
    const calls = [...connection.calls.values()];
    connection.calls.clear();
    const undelivered = !this.#closed && !connection.answered && failure.code === Code.UNAVAILABLE;
    if (!this.#closed) {
      this.log.warn(`${this.peer}:stream`, "kernel-call stream failed; the next call opens a new one", {
        peer: this.peer,
        status: failure.describe(),
        inFlight: calls.length,
      });
    }
    for (const call of calls) {
      if (undelivered && !call.resent) {
        call.resent = true;
        this.send(call);
      } else {
        call.lose(failure);
      }
    }
  }
}

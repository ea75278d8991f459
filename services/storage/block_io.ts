// BlockService.BlockIo, both ends: the server runs a stream's tagged reads, writes and flushes and
// answers each as it completes; BlockIoClient keeps many commands in flight over one stream. Over
// gRPC a unary call costs a new HTTP/2 stream with its headers and trailers, and every message its
// own frames and socket write; so each side gathers what it has ready in one turn of the event
// loop into one message — the client its new commands, the server its completions. A deep queue
// then costs a few messages per batch rather than two calls per command, and the commands of one
// message reach the driver together, where they share a doorbell.
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { anyPack, anyUnpack } from "@bufbuild/protobuf/wkt";
import { setImmediate } from "node:timers";
import { ErrorDetailSchema } from "../../gen/astra/common/v1/errors_pb.ts";
import type {
  BlockIoCommand,
  BlockIoCommandSchema,
  BlockIoCompletion,
  BlockIoCompletionSchema,
  BlockIoRequest,
  BlockIoRequestSchema,
  BlockIoResponse,
  BlockIoResponseSchema,
  BlockService,
} from "../../gen/astra/storage/v1/block_pb.ts";
import { type Status, StatusSchema } from "../../gen/google/rpc/status_pb.ts";
import { Channel, serveConcurrently } from "../../lib/channel.ts";
import { AstraError, Code, Errno, invalidArgument, toAstraError } from "../../lib/errors.ts";
import type { CallOptions, Client } from "../../lib/rpc.ts";
import type { BlockLayer } from "./block.ts";

/** Data a message gathers at most; a single larger command or completion travels alone. */
const MESSAGE_DATA_BYTES = 1024 * 1024;

type CompletionInit = MessageInitShape<typeof BlockIoCompletionSchema>;
type CommandInit = MessageInitShape<typeof BlockIoCommandSchema>;

/**
 * Items gathered until the current turn of the event loop is over (setImmediate), then handed on
 * as one batch; sooner when the batch's data would pass MESSAGE_DATA_BYTES, or on flush().
 */
class Gather<T> {
  #items: T[] = [];
  #bytes = 0;
  #scheduled = false;

  constructor(
    private readonly emit: (items: T[]) => void,
    private readonly bytesOf: (item: T) => number,
  ) {}

  add(item: T): void {
    const bytes = this.bytesOf(item);
    if (this.#items.length > 0 && this.#bytes + bytes > MESSAGE_DATA_BYTES) this.flush();
    this.#items.push(item);
    this.#bytes += bytes;
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => {
        this.#scheduled = false;
        this.flush();
      });
    }
  }

  flush(): void {
    if (this.#items.length === 0) return;
    const items = this.#items;
    this.#items = [];
    this.#bytes = 0;
    this.emit(items);
  }
}

type Reply = MessageInitShape<typeof BlockIoResponseSchema>;

/** A uint64 field as a number, or OUT_OF_RANGE naming it (as the unary RPCs answer). */
function safe(value: bigint, field: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new AstraError(Code.OUT_OF_RANGE, Errno.ERANGE, `${field} ${value} is out of range`, {
      argument: field,
    });
  }
  return Number(value);
}

/** A failure as the google.rpc.Status a unary call would have carried in its trailers. */
function statusOf(err: AstraError): Status {
  return create(StatusSchema, {
    code: err.code,
    message: err.message,
    details: [anyPack(ErrorDetailSchema, err.detail)],
  });
}

/** The error a response's status stands for. */
function errorOf(status: Status): AstraError {
  for (const any of status.details) {
    const detail = anyUnpack(any, ErrorDetailSchema);
    if (detail) return AstraError.fromDetail(status.code as Code, detail);
  }
  return new AstraError(status.code as Code, Errno.EIO, status.message);
}

async function perform(block: BlockLayer, command: BlockIoCommand): Promise<CompletionInit> {
  const op = command.operation;
  const device = block.device(command.device);
  switch (op.case) {
    case "read":
      return {
        tag: command.tag,
        data: await device.readBlocks(safe(op.value.lba, "read.lba"), op.value.count),
      };
    case "write":
      return {
        tag: command.tag,
        blocksWritten: await device.writeBlocks(safe(op.value.lba, "write.lba"), op.value.data, {
          fua: op.value.fua,
        }),
      };
    case "flush":
      await device.flush();
      return { tag: command.tag };
    default:
      throw invalidArgument("operation", `command ${command.tag} has no read, write or flush`);
  }
}

/**
 * The server side: the commands of each message run as it arrives and are answered as they
 * complete. Only a malformed stream (a command without an operation, a tag in flight twice) ends
 * it; a command's own failure is its answer.
 */
export function serveBlockIo(block: BlockLayer, requests: AsyncIterable<BlockIoRequest>): Channel<Reply> {
  const replies = new Channel<Reply>();
  const out = new Gather<CompletionInit>(
    (completions) => replies.push({ completions }),
    (c) => (c.data as Uint8Array | undefined)?.length ?? 0,
  );
  const inFlight = new Set<bigint>();
  return serveConcurrently(requests, replies, async (req) => {
    // The whole message is checked as it arrives, before any of its commands runs.
    for (const command of req.commands) {
      if (command.operation.case === undefined) {
        throw invalidArgument("commands.operation", `command ${command.tag} has no read, write or flush`);
      }
      if (inFlight.has(command.tag)) {
        throw invalidArgument("commands.tag", `tag ${command.tag} is already in flight on this stream`);
      }
      inFlight.add(command.tag);
    }
    await Promise.all(req.commands.map((command) =>
      perform(block, command).then(
        (completion) => completion,
        (err): CompletionInit => ({ tag: command.tag, error: statusOf(toAstraError(err, "storage")) }),
      ).then((completion) => {
        inFlight.delete(command.tag);
        out.add(completion);
      })
    ));
    // The stream may end once this message is answered: what it gathered goes now.
    out.flush();
  });
}

/**
 * The client side: one BlockIo stream with any number of commands in flight, each answered by its
 * own promise (rejected with the command's error as the unary RPC would reject).
 */
export class BlockIoClient {
  readonly #requests = new Channel<MessageInitShape<typeof BlockIoRequestSchema>>();
  readonly #out = new Gather<CommandInit>(
    (commands) => this.#requests.push({ commands }),
    (c) => c.operation?.case === "write" ? (c.operation.value.data?.length ?? 0) : 0,
  );
  readonly #waiting = new Map<
    bigint,
    { resolve: (c: BlockIoCompletion) => void; reject: (e: unknown) => void }
  >();
  readonly #reading: Promise<void>;
  #nextTag = 1n;
  #ended: AstraError | null = null;

  constructor(block: Client<typeof BlockService>, options: CallOptions = {}) {
    this.#reading = this.#read(block.blockIo(this.#requests, options));
  }

  /** Commands sent and not yet answered. */
  get inFlight(): number {
    return this.#waiting.size;
  }

  async read(device: string, lba: number, count: number): Promise<Uint8Array> {
    return (await this.#send(device, { case: "read", value: { lba: BigInt(lba), count } })).data;
  }

  async write(
    device: string,
    lba: number,
    data: Uint8Array,
    options: { fua?: boolean } = {},
  ): Promise<number> {
    const done = await this.#send(device, {
      case: "write",
      value: { lba: BigInt(lba), data, fua: options.fua ?? false },
    });
    return done.blocksWritten;
  }

  async flush(device: string): Promise<void> {
    await this.#send(device, { case: "flush", value: {} });
  }

  /** Ends the stream once every command in flight is answered. */
  async close(): Promise<void> {
    this.#out.flush();
    this.#requests.close();
    await this.#reading;
  }

  #send(device: string, operation: CommandInit["operation"]): Promise<BlockIoCompletion> {
    if (this.#ended) return Promise.reject(this.#ended);
    const tag = this.#nextTag++;
    return new Promise((resolve, reject) => {
      this.#waiting.set(tag, { resolve, reject });
      this.#out.add({ tag, device, operation });
    });
  }

  async #read(replies: AsyncIterable<BlockIoResponse>): Promise<void> {
    try {
      for await (const reply of replies) {
        for (const completion of reply.completions) {
          const waiter = this.#waiting.get(completion.tag);
          if (!waiter) continue;
          this.#waiting.delete(completion.tag);
          if (completion.error) waiter.reject(errorOf(completion.error));
          else waiter.resolve(completion);
        }
      }
      this.#ended = new AstraError(Code.CANCELLED, Errno.ECANCELED, "the BlockIo stream is closed");
    } catch (err) {
      this.#ended = toAstraError(err);
    }
    this.#requests.close();
    for (const waiter of this.#waiting.values()) waiter.reject(this.#ended);
    this.#waiting.clear();
  }
}

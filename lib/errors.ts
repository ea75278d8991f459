// AstraError is how every service reports a failed call. It carries a gRPC status code and the
// common.v1 ErrorDetail (errno-like cause, message, argument at fault); both transports deliver it
// to the caller unchanged, so a client cannot tell whether the service ran in-process or remotely.
import { create } from "@bufbuild/protobuf";
import { Errno, type ErrorDetail, ErrorDetailSchema } from "../gen/astra/common/v1/errors_pb.ts";

export { Errno };

/** gRPC status codes (numbering from grpc/status.h). */
export enum Code {
  OK = 0,
  CANCELLED = 1,
  UNKNOWN = 2,
  INVALID_ARGUMENT = 3,
  DEADLINE_EXCEEDED = 4,
  NOT_FOUND = 5,
  ALREADY_EXISTS = 6,
  PERMISSION_DENIED = 7,
  RESOURCE_EXHAUSTED = 8,
  FAILED_PRECONDITION = 9,
  ABORTED = 10,
  OUT_OF_RANGE = 11,
  UNIMPLEMENTED = 12,
  INTERNAL = 13,
  UNAVAILABLE = 14,
  DATA_LOSS = 15,
  UNAUTHENTICATED = 16,
}

export class AstraError extends Error {
  readonly code: Code;
  readonly detail: ErrorDetail;

  constructor(
    code: Code,
    errno: Errno,
    message: string,
    opts: { argument?: string; service?: string; facts?: Record<string, string> } = {},
  ) {
    super(message);
    this.name = "AstraError";
    this.code = code;
    this.detail = create(ErrorDetailSchema, {
      errno,
      message,
      argument: opts.argument ?? "",
      service: opts.service ?? "",
      facts: opts.facts ?? {},
    });
  }

  get errno(): Errno {
    return this.detail.errno;
  }

  /** Rebuilds an error received from a peer. */
  static fromDetail(code: Code, detail: ErrorDetail): AstraError {
    const err = new AstraError(code, detail.errno, detail.message, {
      argument: detail.argument,
      service: detail.service,
      facts: detail.facts,
    });
    return err;
  }

  /** One line for logs and the CLI: `NOT_FOUND ENOENT pmm: no such frame (argument: address)`. */
  describe(): string {
    const where = this.detail.service ? `${this.detail.service}: ` : "";
    const arg = this.detail.argument ? ` (argument: ${this.detail.argument})` : "";
    return `${Code[this.code]} ${errnoName(this.detail.errno)} ${where}${this.detail.message}${arg}`;
  }
}

export function errnoName(errno: Errno): string {
  const name = Errno[errno];
  return name ? name.replace(/^ERRNO_/, "") : `errno ${errno}`;
}

/** Any thrown value as an AstraError; unexpected exceptions become INTERNAL/EIO with their text. */
export function toAstraError(err: unknown, service = ""): AstraError {
  if (err instanceof AstraError) {
    if (!err.detail.service && service) err.detail.service = service;
    return err;
  }
  const text = err instanceof Error ? err.message : String(err);
  return new AstraError(Code.INTERNAL, Errno.EIO, `internal error: ${text}`, { service });
}

// Constructors for the cases every service meets; each names the argument at fault.

export function invalidArgument(argument: string, message: string, errno = Errno.EINVAL): AstraError {
  return new AstraError(Code.INVALID_ARGUMENT, errno, message, { argument });
}

export function notFound(argument: string, message: string, errno = Errno.ENOENT): AstraError {
  return new AstraError(Code.NOT_FOUND, errno, message, { argument });
}

export function failedPrecondition(message: string, errno = Errno.EINVAL, argument = ""): AstraError {
  return new AstraError(Code.FAILED_PRECONDITION, errno, message, { argument });
}

export function resourceExhausted(
  message: string,
  facts: Record<string, string> = {},
  errno = Errno.ENOMEM,
): AstraError {
  return new AstraError(Code.RESOURCE_EXHAUSTED, errno, message, { facts });
}

export function outOfRange(argument: string, message: string, errno = Errno.ERANGE): AstraError {
  return new AstraError(Code.OUT_OF_RANGE, errno, message, { argument });
}

export function alreadyExists(argument: string, message: string, errno = Errno.EEXIST): AstraError {
  return new AstraError(Code.ALREADY_EXISTS, errno, message, { argument });
}

export function dataLoss(message: string, errno = Errno.EUCLEAN): AstraError {
  return new AstraError(Code.DATA_LOSS, errno, message);
}

/** The service cannot answer yet (still booting, or a peer is down): the caller may retry. */
export function unavailable(message: string, errno = Errno.EAGAIN): AstraError {
  return new AstraError(Code.UNAVAILABLE, errno, message);
}

export function aborted(message: string, errno = Errno.EAGAIN): AstraError {
  return new AstraError(Code.ABORTED, errno, message);
}

/** The answer of an RPC whose work belongs to a later piece of work, named in `work`. */
export function unimplemented(method: string, work: string): AstraError {
  return new AstraError(
    Code.UNIMPLEMENTED,
    Errno.ENOSYS,
    `${method} is not implemented yet: it arrives with ${work}`,
  );
}

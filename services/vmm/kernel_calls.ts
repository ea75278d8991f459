// vmm's half of the trap path: the memory system calls brk, mmap, munmap, mprotect, mremap and
// madvise, decoded from the raw registers as Linux's ppc64 entry points decode them
// (arch/powerpc/kernel/syscalls.c, mm/mmap.c, mm/mprotect.c, mm/mremap.c, mm/madvise.c) and run as
// the same address-space operations the typed RPCs run (spaces.ts), which check the arguments in
// Linux's order. The answer is r3 or the errno; a call never fails the stream.
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  type KernelCallRequest,
  type KernelCallResponseSchema,
  MappingRole,
} from "../../gen/astra/vmm/v1/vmm_pb.ts";
import { Channel, serveConcurrently } from "../../lib/channel.ts";
import { inTraceOf } from "../../lib/tracing.ts";
import { AstraError, Errno, toAstraError } from "../../lib/errors.ts";
import { PAGE_SIZE } from "../../lib/linux/limits.ts";
import { SYSCALLS } from "../../lib/linux/syscall_numbers.ts";
import type { Logger } from "../../lib/log.ts";
import type { BackedFile } from "./files.ts";
import type { AddressSpaces } from "./spaces.ts";
import { checkMmapProt, MAP_ANONYMOUS, memoryError, userNumber } from "./vma.ts";

type KernelCallReply = MessageInitShape<typeof KernelCallResponseSchema>;

const PAGE_BYTES = BigInt(PAGE_SIZE);
/** MAX_LFS_FILESIZE: a file mapping must end at or below it (file_mmap_ok), or EOVERFLOW. */
const MAX_FILE_OFFSET = 2n ** 63n - 1n;
/** Where offsets past 2^53 land: beyond any file here, so their pages fault as the real ones would. */
const FAR_FILE_OFFSET = 2 ** 53 - PAGE_SIZE;

/**
 * A flags or protection register as a 32-bit mask. Any bit above bit 31 becomes bit 31, which
 * every check knows as little as it knows them (EINVAL, or ignored, as Linux treats unknown bits).
 */
function maskBits(value: bigint): number {
  const low = Number(value & 0x7fffffffn);
  return value >> 31n === 0n ? low : low + 0x80000000;
}

/** An `int` argument (a descriptor, madvise's advice): the register's low 32 bits, signed. */
function intArgument(value: bigint): number {
  return Number(BigInt.asIntN(32, value));
}

/** The file offset of an mmap as a number: EOVERFLOW past MAX_LFS_FILESIZE kept, as Infinity. */
function fileOffset(offset: bigint, length: bigint): number {
  const pages = (length + PAGE_BYTES - 1n) / PAGE_BYTES;
  if (pages * PAGE_BYTES > MAX_FILE_OFFSET) return Infinity;
  if (offset / PAGE_BYTES > (MAX_FILE_OFFSET - pages * PAGE_BYTES) / PAGE_BYTES) return Infinity;
  return offset > BigInt(Number.MAX_SAFE_INTEGER) ? FAR_FILE_OFFSET : Number(offset);
}

function hasErrno(error: unknown, ...errnos: Errno[]): boolean {
  return error instanceof AstraError && errnos.includes(error.errno);
}

/** mmap(2): do_mmap2's checks of protection and offset, the descriptor's hold, then the mapping. */
async function mmap(spaces: AddressSpaces, request: KernelCallRequest): Promise<bigint> {
  const [address, length, prot, flags, fd, offset] = request.args;
  const protection = maskBits(prot);
  const mapFlags = maskBits(flags);
  checkMmapProt(protection);
  if (offset % PAGE_BYTES !== 0n) {
    throw memoryError(Errno.EINVAL, "offset", `file offset 0x${offset.toString(16)} is not page-aligned`);
  }
  const anonymous = (mapFlags & MAP_ANONYMOUS) !== 0;
  let file: BackedFile | null = null;
  if (!anonymous) {
    try {
      file = await spaces.files.hold(request.pid, intArgument(fd));
    } catch (error) {
      // Storage refuses a description mmap cannot use when asked for it; Linux notices a zero
      // length before it looks at the description.
      if (length === 0n && hasErrno(error, Errno.EACCES, Errno.ENODEV)) {
        throw memoryError(Errno.EINVAL, "length", "mmap of zero bytes");
      }
      throw error;
    }
  }
  const at = await spaces.mmap(request.spaceId, {
    address: userNumber(address),
    length: userNumber(length),
    prot: protection,
    flags: mapFlags,
    file,
    hold: "taken",
    offset: anonymous ? 0 : fileOffset(offset, length),
    role: MappingRole.UNSPECIFIED,
  });
  return BigInt(at);
}

/** One memory call: r3 on success. */
async function run(spaces: AddressSpaces, request: KernelCallRequest): Promise<bigint> {
  const id = request.spaceId;
  const [a0, a1, a2, a3, a4] = request.args;
  switch (request.number) {
    case SYSCALLS.brk:
      // brk never fails: a break that cannot move answers the current one.
      return BigInt(await spaces.brk(id, userNumber(a0)));
    case SYSCALLS.mmap:
      return await mmap(spaces, request);
    case SYSCALLS.munmap:
      await spaces.munmap(id, userNumber(a0), userNumber(a1));
      return 0n;
    case SYSCALLS.mprotect:
      await spaces.mprotect(id, userNumber(a0), userNumber(a1), maskBits(a2));
      return 0n;
    case SYSCALLS.mremap:
      return BigInt(
        await spaces.mremap(id, userNumber(a0), userNumber(a1), userNumber(a2), maskBits(a3), userNumber(a4)),
      );
    case SYSCALLS.madvise:
      await spaces.madvise(id, userNumber(a0), userNumber(a1), intArgument(a2));
      return 0n;
    default:
      throw memoryError(Errno.ENOSYS, "number", `system call ${request.number} is not one of vmm's`);
  }
}

/**
 * Runs one kernel call and answers it; never throws. `spaces` throws UNAVAILABLE until vmm has
 * booted, which the call answers with its errno like any other failure.
 */
export async function runMemoryCall(
  spaces: () => AddressSpaces,
  request: KernelCallRequest,
  log: Logger,
): Promise<KernelCallReply> {
  try {
    if (request.args.length !== 6) {
      throw memoryError(Errno.EINVAL, "args", `${request.args.length} argument registers instead of r3..r8`);
    }
    const value = await run(spaces(), request);
    return { callId: request.callId, outcome: { case: "value", value: BigInt.asUintN(64, value) } };
  } catch (error) {
    if (!(error instanceof AstraError)) {
      log.error(`kernel call ${request.number} of pid ${request.pid} failed unexpectedly: ${error}`);
    }
    const errno = toAstraError(error, "vmm").errno;
    return { callId: request.callId, outcome: { case: "error", value: errno || Errno.EIO } };
  }
}

/**
 * Serves a KernelCall stream: the calls of one address space run one after another in the order
 * they came (an mmap's hold on its file is taken before a later munmap can run), calls of
 * different spaces side by side; replies go out as calls finish, paired by call_id.
 */
export function serveMemoryCalls(
  requests: AsyncIterable<KernelCallRequest>,
  answer: (request: KernelCallRequest) => Promise<KernelCallReply>,
): AsyncIterable<KernelCallReply> {
  const replies = new Channel<KernelCallReply>();
  const tails = new Map<bigint, Promise<void>>();
  return serveConcurrently(requests, replies, (request) => {
    const space = request.spaceId;
    const previous = tails.get(space) ?? Promise.resolve();
    const done: Promise<void> = previous.then(() => inTraceOf(request.traceparent, () => answer(request)))
      .then((reply) => replies.push(reply))
      .finally(() => {
        if (tails.get(space) === done) tails.delete(space);
      });
    tails.set(space, done);
    return done;
  });
}

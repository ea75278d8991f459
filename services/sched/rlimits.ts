// Resource limits with Linux's numbering, defaults (include/asm-generic/resource.h INIT_RLIMITS)
// and prlimit64 rules (kernel/sys.c do_prlimit, check_prlimit_permission).
import { AstraError, Code, Errno, invalidArgument } from "../../lib/errors.ts";

export const RLIMIT_CPU = 0;
export const RLIMIT_FSIZE = 1;
export const RLIMIT_DATA = 2;
export const RLIMIT_STACK = 3;
export const RLIMIT_CORE = 4;
export const RLIMIT_RSS = 5;
export const RLIMIT_NPROC = 6;
export const RLIMIT_NOFILE = 7;
export const RLIMIT_MEMLOCK = 8;
export const RLIMIT_AS = 9;
export const RLIMIT_LOCKS = 10;
export const RLIMIT_SIGPENDING = 11;
export const RLIMIT_MSGQUEUE = 12;
export const RLIMIT_NICE = 13;
export const RLIMIT_RTPRIO = 14;
export const RLIMIT_RTTIME = 15;
export const RLIM_NLIMITS = 16;

/** ~0UL on ppc64: no limit. */
export const RLIM_INFINITY = (1n << 64n) - 1n;
/** fs.nr_open's default: RLIMIT_NOFILE's hard limit can never exceed it, even with privilege. */
export const NR_OPEN = 1n << 20n;

const RESOURCE_NAMES: readonly string[] = [
  "RLIMIT_CPU",
  "RLIMIT_FSIZE",
  "RLIMIT_DATA",
  "RLIMIT_STACK",
  "RLIMIT_CORE",
  "RLIMIT_RSS",
  "RLIMIT_NPROC",
  "RLIMIT_NOFILE",
  "RLIMIT_MEMLOCK",
  "RLIMIT_AS",
  "RLIMIT_LOCKS",
  "RLIMIT_SIGPENDING",
  "RLIMIT_MSGQUEUE",
  "RLIMIT_NICE",
  "RLIMIT_RTPRIO",
  "RLIMIT_RTTIME",
];

// The kernel's constants behind the defaults.
const STK_LIM = 8n * 1024n * 1024n;
const INR_OPEN_CUR = 1024n;
const INR_OPEN_MAX = 4096n;
const MLOCK_LIMIT = 8n * 1024n * 1024n;
const MQ_BYTES_MAX = 819200n;
/** kernel/fork.c bounds max_threads to [MIN_THREADS, FUTEX_TID_MASK]. */
const MIN_THREADS = 20;
const MAX_THREADS = 0x3fffffff;

export interface ResourceLimitPair {
  soft: bigint;
  hard: bigint;
}

export function isValidResource(resource: number): boolean {
  return Number.isInteger(resource) && resource >= 0 && resource < RLIM_NLIMITS;
}

/** "RLIMIT_NOFILE". */
export function resourceName(resource: number): string {
  return isValidResource(resource) ? RESOURCE_NAMES[resource] : `resource ${resource}`;
}

function checkResource(resource: number): void {
  if (!isValidResource(resource)) {
    throw invalidArgument("resource", `resource ${resource} is not an RLIMIT_* (0..${RLIM_NLIMITS - 1})`);
  }
}

function permissionDenied(message: string, argument: string): AstraError {
  return new AstraError(Code.PERMISSION_DENIED, Errno.EPERM, message, { argument });
}

/**
 * The limits PID 1 starts with, as Linux's init_task has them. RLIMIT_NPROC and
 * RLIMIT_SIGPENDING are half the system's thread capacity (kernel/fork.c fork_init).
 */
export function defaultResourceLimits(maxThreads: number): ResourceLimitPair[] {
  if (!Number.isInteger(maxThreads) || maxThreads < MIN_THREADS || maxThreads > MAX_THREADS) {
    throw invalidArgument(
      "maxThreads",
      `maximum thread count ${maxThreads} is not in ${MIN_THREADS}..${MAX_THREADS}`,
    );
  }
  const half = BigInt(Math.floor(maxThreads / 2));
  const pair = (soft: bigint, hard: bigint): ResourceLimitPair => ({ soft, hard });
  const unlimited = pair(RLIM_INFINITY, RLIM_INFINITY);
  const limits: ResourceLimitPair[] = [];
  limits[RLIMIT_CPU] = unlimited;
  limits[RLIMIT_FSIZE] = unlimited;
  limits[RLIMIT_DATA] = unlimited;
  limits[RLIMIT_STACK] = pair(STK_LIM, RLIM_INFINITY);
  limits[RLIMIT_CORE] = pair(0n, RLIM_INFINITY);
  limits[RLIMIT_RSS] = unlimited;
  limits[RLIMIT_NPROC] = pair(half, half);
  limits[RLIMIT_NOFILE] = pair(INR_OPEN_CUR, INR_OPEN_MAX);
  limits[RLIMIT_MEMLOCK] = pair(MLOCK_LIMIT, MLOCK_LIMIT);
  limits[RLIMIT_AS] = unlimited;
  limits[RLIMIT_LOCKS] = unlimited;
  limits[RLIMIT_SIGPENDING] = pair(half, half);
  limits[RLIMIT_MSGQUEUE] = pair(MQ_BYTES_MAX, MQ_BYTES_MAX);
  limits[RLIMIT_NICE] = pair(0n, 0n);
  limits[RLIMIT_RTPRIO] = pair(0n, 0n);
  limits[RLIMIT_RTTIME] = unlimited;
  return limits.map((l) => ({ ...l }));
}

/** The credentials prlimit64's permission check compares. */
export interface LimitCredentials {
  pid: number;
  uid: number;
  euid: number;
  suid: number;
  gid: number;
  egid: number;
  sgid: number;
}

/**
 * Whether `caller` may read or change the limits of `target`: itself always; another process
 * only when the caller's real IDs equal all of the target's real, effective and saved IDs, or
 * with privilege (CAP_SYS_RESOURCE).
 */
export function mayAccessLimitsOf(
  caller: LimitCredentials,
  target: LimitCredentials,
  privileged: boolean,
): boolean {
  if (caller.pid === target.pid || privileged) return true;
  return caller.uid === target.uid && caller.uid === target.euid && caller.uid === target.suid &&
    caller.gid === target.gid && caller.gid === target.egid && caller.gid === target.sgid;
}

/** One process's limits (struct signal_struct's rlim). */
export class ResourceLimits {
  readonly #limits: ResourceLimitPair[];

  constructor(limits: readonly ResourceLimitPair[]) {
    if (limits.length !== RLIM_NLIMITS) {
      throw invalidArgument("limits", `expected ${RLIM_NLIMITS} resource limits, got ${limits.length}`);
    }
    limits.forEach((l, resource) => ResourceLimits.#checkPair(resource, l));
    this.#limits = limits.map((l) => ({ ...l }));
  }

  static #checkPair(resource: number, limit: ResourceLimitPair): void {
    for (const value of [limit.soft, limit.hard]) {
      if (value < 0n || value > RLIM_INFINITY) {
        throw invalidArgument(
          "limit",
          `${resourceName(resource)} value ${value} is not a 64-bit unsigned value`,
        );
      }
    }
    if (limit.soft > limit.hard) {
      throw invalidArgument(
        "limit",
        `${resourceName(resource)} soft limit ${limit.soft} exceeds its hard limit ${limit.hard}`,
      );
    }
  }

  get(resource: number): ResourceLimitPair {
    checkResource(resource);
    return { ...this.#limits[resource] };
  }

  /** Every limit, indexed by RLIMIT_* number. */
  all(): ResourceLimitPair[] {
    return this.#limits.map((l) => ({ ...l }));
  }

  /**
   * prlimit64/setrlimit: EINVAL for an unknown resource or soft > hard; EPERM for an
   * RLIMIT_NOFILE hard limit above fs.nr_open, or for raising a hard limit without privilege.
   * Lowering a hard limit is always allowed and cannot be undone without privilege. Returns the
   * previous limit.
   */
  set(resource: number, next: ResourceLimitPair, privileged: boolean): ResourceLimitPair {
    checkResource(resource);
    ResourceLimits.#checkPair(resource, next);
    if (resource === RLIMIT_NOFILE && next.hard > NR_OPEN) {
      throw permissionDenied(
        `RLIMIT_NOFILE hard limit ${next.hard} exceeds fs.nr_open (${NR_OPEN})`,
        "limit",
      );
    }
    const previous = this.#limits[resource];
    if (next.hard > previous.hard && !privileged) {
      throw permissionDenied(
        `raising the ${
          resourceName(resource)
        } hard limit from ${previous.hard} to ${next.hard} needs privilege`,
        "limit",
      );
    }
    this.#limits[resource] = { ...next };
    return { ...previous };
  }

  /** fork: the child inherits a copy; exec keeps the limits as they are. */
  clone(): ResourceLimits {
    return new ResourceLimits(this.#limits);
  }
}

import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { AstraError, Errno } from "../../lib/errors.ts";
import {
  defaultResourceLimits,
  type LimitCredentials,
  mayAccessLimitsOf,
  NR_OPEN,
  ResourceLimits,
  resourceName,
  RLIM_INFINITY,
  RLIM_NLIMITS,
  RLIMIT_AS,
  RLIMIT_CORE,
  RLIMIT_CPU,
  RLIMIT_DATA,
  RLIMIT_FSIZE,
  RLIMIT_LOCKS,
  RLIMIT_MEMLOCK,
  RLIMIT_MSGQUEUE,
  RLIMIT_NICE,
  RLIMIT_NOFILE,
  RLIMIT_NPROC,
  RLIMIT_RSS,
  RLIMIT_RTPRIO,
  RLIMIT_RTTIME,
  RLIMIT_SIGPENDING,
  RLIMIT_STACK,
} from "../../services/sched/rlimits.ts";

const MIB = 1024n * 1024n;

function errnoOf(fn: () => unknown): Errno | undefined {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(AstraError);
    return (e as AstraError).errno;
  }
  return undefined;
}

describe("resource limit table", () => {
  it("numbers the resources as Linux does", () => {
    expect([
      RLIMIT_CPU,
      RLIMIT_FSIZE,
      RLIMIT_DATA,
      RLIMIT_STACK,
      RLIMIT_CORE,
      RLIMIT_RSS,
      RLIMIT_NPROC,
      RLIMIT_NOFILE,
      RLIMIT_MEMLOCK,
      RLIMIT_AS,
      RLIMIT_LOCKS,
      RLIMIT_SIGPENDING,
      RLIMIT_MSGQUEUE,
      RLIMIT_NICE,
      RLIMIT_RTPRIO,
      RLIMIT_RTTIME,
    ]).toEqual(Array.from({ length: 16 }, (_, i) => i));
    expect(RLIM_NLIMITS).toBe(16);
    expect(RLIM_INFINITY).toBe(0xffff_ffff_ffff_ffffn);
    expect(resourceName(RLIMIT_NOFILE)).toBe("RLIMIT_NOFILE");
  });

  it("starts PID 1 with Linux's init_task limits", () => {
    const limits = defaultResourceLimits(31000);
    const inf = RLIM_INFINITY;
    expect(limits).toEqual([
      { soft: inf, hard: inf }, // CPU
      { soft: inf, hard: inf }, // FSIZE
      { soft: inf, hard: inf }, // DATA
      { soft: 8n * MIB, hard: inf }, // STACK
      { soft: 0n, hard: inf }, // CORE
      { soft: inf, hard: inf }, // RSS
      { soft: 15500n, hard: 15500n }, // NPROC: max_threads / 2
      { soft: 1024n, hard: 4096n }, // NOFILE
      { soft: 8n * MIB, hard: 8n * MIB }, // MEMLOCK
      { soft: inf, hard: inf }, // AS
      { soft: inf, hard: inf }, // LOCKS
      { soft: 15500n, hard: 15500n }, // SIGPENDING: max_threads / 2
      { soft: 819200n, hard: 819200n }, // MSGQUEUE
      { soft: 0n, hard: 0n }, // NICE
      { soft: 0n, hard: 0n }, // RTPRIO
      { soft: inf, hard: inf }, // RTTIME
    ]);
    expect(errnoOf(() => defaultResourceLimits(10))).toBe(Errno.EINVAL);
  });
});

describe("prlimit64 semantics", () => {
  const fresh = () => new ResourceLimits(defaultResourceLimits(1000));

  it("lets anyone move the soft limit up to the hard one and returns the previous pair", () => {
    const limits = fresh();
    expect(limits.set(RLIMIT_NOFILE, { soft: 4096n, hard: 4096n }, false)).toEqual({
      soft: 1024n,
      hard: 4096n,
    });
    expect(limits.get(RLIMIT_NOFILE)).toEqual({ soft: 4096n, hard: 4096n });
  });

  it("refuses a soft limit above the hard one with EINVAL", () => {
    const limits = fresh();
    expect(errnoOf(() => limits.set(RLIMIT_NOFILE, { soft: 5000n, hard: 4096n }, true))).toBe(Errno.EINVAL);
    expect(limits.get(RLIMIT_NOFILE)).toEqual({ soft: 1024n, hard: 4096n });
  });

  it("lowers a hard limit for good unless privileged", () => {
    const limits = fresh();
    limits.set(RLIMIT_CORE, { soft: 0n, hard: MIB }, false);
    const err = (() => {
      try {
        limits.set(RLIMIT_CORE, { soft: 0n, hard: 2n * MIB }, false);
      } catch (e) {
        return e as AstraError;
      }
      throw new Error("raised a hard limit without privilege");
    })();
    expect(err.errno).toBe(Errno.EPERM);
    expect(err.message).toContain("RLIMIT_CORE");
    expect(limits.get(RLIMIT_CORE)).toEqual({ soft: 0n, hard: MIB });
    limits.set(RLIMIT_CORE, { soft: RLIM_INFINITY, hard: RLIM_INFINITY }, true);
    expect(limits.get(RLIMIT_CORE)).toEqual({ soft: RLIM_INFINITY, hard: RLIM_INFINITY });
  });

  it("never lets RLIMIT_NOFILE's hard limit exceed fs.nr_open, even with privilege", () => {
    const limits = fresh();
    expect(errnoOf(() => limits.set(RLIMIT_NOFILE, { soft: 1024n, hard: NR_OPEN + 1n }, true))).toBe(
      Errno.EPERM,
    );
    limits.set(RLIMIT_NOFILE, { soft: NR_OPEN, hard: NR_OPEN }, true);
    expect(limits.get(RLIMIT_NOFILE).hard).toBe(1048576n);
  });

  it("refuses unknown resources and values beyond 64 bits", () => {
    const limits = fresh();
    expect(errnoOf(() => limits.set(16, { soft: 0n, hard: 0n }, true))).toBe(Errno.EINVAL);
    expect(errnoOf(() => limits.get(-1))).toBe(Errno.EINVAL);
    expect(errnoOf(() => limits.set(RLIMIT_AS, { soft: 0n, hard: RLIM_INFINITY + 1n }, true))).toBe(
      Errno.EINVAL,
    );
  });

  it("gives a forked child its own copy", () => {
    const parent = fresh();
    const child = parent.clone();
    child.set(RLIMIT_STACK, { soft: MIB, hard: MIB }, false);
    expect(parent.get(RLIMIT_STACK)).toEqual({ soft: 8n * MIB, hard: RLIM_INFINITY });
    expect(child.all()[RLIMIT_STACK]).toEqual({ soft: MIB, hard: MIB });
  });

  it("keeps soft <= hard and never raises a hard limit without privilege, whatever is asked", () => {
    const value = fc.oneof(fc.bigInt({ min: 0n, max: 1n << 40n }), fc.constant(RLIM_INFINITY));
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 15 }), value, value, fc.boolean()), { maxLength: 40 }),
        (requests) => {
          const limits = fresh();
          for (const [resource, soft, hard, privileged] of requests) {
            const before = limits.get(resource);
            try {
              expect(limits.set(resource, { soft, hard }, privileged)).toEqual(before);
              expect(limits.get(resource)).toEqual({ soft, hard });
            } catch (e) {
              expect([Errno.EINVAL, Errno.EPERM]).toContain((e as AstraError).errno);
              expect(limits.get(resource)).toEqual(before);
            }
            const after = limits.get(resource);
            expect(after.soft).toBeLessThanOrEqual(after.hard);
            if (!privileged) expect(after.hard).toBeLessThanOrEqual(before.hard);
          }
        },
      ),
    );
  });
});

describe("who may change another process's limits", () => {
  const user = (pid: number, id: number): LimitCredentials => ({
    pid,
    uid: id,
    euid: id,
    suid: id,
    gid: id,
    egid: id,
    sgid: id,
  });

  it("allows oneself, a process of the same user, and privilege", () => {
    expect(mayAccessLimitsOf(user(5, 1000), user(5, 1000), false)).toBe(true);
    expect(mayAccessLimitsOf(user(5, 1000), user(6, 1000), false)).toBe(true);
    expect(mayAccessLimitsOf(user(5, 1000), user(6, 0), true)).toBe(true);
  });

  it("refuses another user's process, or one whose saved or effective ID differs", () => {
    expect(mayAccessLimitsOf(user(5, 1000), user(6, 1001), false)).toBe(false);
    expect(mayAccessLimitsOf(user(5, 1000), { ...user(6, 1000), suid: 0 }, false)).toBe(false);
    expect(mayAccessLimitsOf(user(5, 1000), { ...user(6, 1000), egid: 0 }, false)).toBe(false);
  });
});

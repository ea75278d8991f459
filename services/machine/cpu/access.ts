// Storage access as the CPU sees it: the memory interface a machine provides, the fault it throws,
// and effective-address arithmetic on registers held as 32-bit halves. Shared by the interpreter's
// fixed-point, floating-point and vector semantics and by the block translator.

import { toBigInt } from "./int64.ts";
import type { SoftwareTlb } from "./tlb.ts";

export const TWO_32 = 4294967296;
/** Effective addresses at or above 2^53 (high word ≥ 2^21) are never mapped for a problem-state thread. */
export const HIGH_WORD_LIMIT = 0x200000;

export type AccessKind = "read" | "write" | "execute";
/**
 * Why an access failed: no segment maps the address (a segment interrupt: the SLB misses), no
 * page table entry maps the page, an entry that forbids the access, or a real address that is
 * not RAM.
 */
export type FaultCause = "no-segment" | "not-mapped" | "protection" | "bad-real-address";

/** A storage access that cannot be performed. Thrown by a CpuMemory; the CPU stops with PageFault. */
export class MemoryFault extends Error {
  constructor(
    readonly address: bigint,
    readonly access: AccessKind,
    readonly faultCause: FaultCause = "not-mapped",
  ) {
    super(`${access} fault at 0x${address.toString(16)} (${faultCause})`);
    this.name = "MemoryFault";
  }
}

/**
 * Guest memory as a CPU sees it: effective addresses below 2^53, little-endian accesses. A failing
 * access throws MemoryFault; the instruction then has not completed and executes again once the
 * fault is resolved.
 */
export interface CpuMemory {
  load8(address: number): number;
  load16(address: number): number;
  /** A word, as an int32. */
  load32(address: number): number;
  /** A doubleword into target[index] (low word) and target[index + 1] (high word). */
  load64(address: number, target: Int32Array, index: number): void;
  store8(address: number, value: number): void;
  store16(address: number, value: number): void;
  store32(address: number, value: number): void;
  store64(address: number, lo: number, hi: number): void;
  /** An instruction word (execute access). */
  fetch(address: number): number;
  /**
   * The software TLB the memory keeps for this CPU, if any: translated code reads and writes host
   * memory through it directly and calls the methods above only on a miss (see tlb.ts).
   */
  readonly tlb?: SoftwareTlb;
}

/**
 * A 64-bit effective address as a number, or a MemoryFault: problem-state addresses beyond 2^53
 * are never mapped.
 */
export function address(lo: number, hi: number, access: AccessKind): number {
  if (hi >>> 0 >= HIGH_WORD_LIMIT) throw new MemoryFault(toBigInt(lo, hi, false), access);
  return (hi >>> 0) * TWO_32 + (lo >>> 0);
}

/** EA = (RA|0) + displacement, with r[n] at gpr[2n] (low word) and gpr[2n + 1] (high word). */
export function eaDisplacement(
  gpr: Int32Array,
  ra: number,
  displacement: number,
  access: AccessKind,
): number {
  if (ra === 0) {
    if (displacement < 0) throw new MemoryFault(BigInt.asUintN(64, BigInt(displacement)), access);
    return displacement;
  }
  const baseLo = gpr[2 * ra], baseHi = gpr[2 * ra + 1];
  const sum = (baseLo >>> 0) + (displacement >>> 0);
  const lo = sum | 0;
  const hi = (baseHi + (displacement >> 31) + (sum > 0xffffffff ? 1 : 0)) | 0;
  return address(lo, hi, access);
}

/** EA = (RA|0) + (RB). */
export function eaIndexed(gpr: Int32Array, ra: number, rb: number, access: AccessKind): number {
  if (ra === 0) return address(gpr[2 * rb], gpr[2 * rb + 1], access);
  const sum = (gpr[2 * ra] >>> 0) + (gpr[2 * rb] >>> 0);
  const hi = (gpr[2 * ra + 1] + gpr[2 * rb + 1] + (sum > 0xffffffff ? 1 : 0)) | 0;
  return address(sum | 0, hi, access);
}

/** Writes an effective address back to RA (update forms). */
export function putAddress(gpr: Int32Array, r: number, ea: number): void {
  gpr[2 * r] = ea | 0;
  gpr[2 * r + 1] = Math.floor(ea / TWO_32) | 0;
}

// Shared fixtures for the pmm tests: small firmware maps and an assertion for AstraErrors.
import { expect } from "vitest";
import { AstraError, type Code, type Errno } from "../../lib/errors.ts";
import { type FirmwareMemoryEntry, MemoryType, PAGE_SIZE } from "../../services/pmm/memmap.ts";

export const P = PAGE_SIZE;

/**
 * A two-node machine of 400 frames, in frame units:
 *   node 0: usable [0,40), hole [40,48), usable [48,100), firmware-reserved [100,106),
 *           usable [106,150), ACPI NVS [150,154), hole [154,160)
 *   node 1: usable [160,300), device [300,310), usable [310,390), bad [390,400)
 * Region sizes are not multiples of 32, so bitmap padding words are exercised.
 */
export const SMALL_MACHINE: FirmwareMemoryEntry[] = [
  { base: 0, length: 40 * P, type: MemoryType.USABLE, node: 0 },
  { base: 48 * P, length: 102 * P, type: MemoryType.USABLE, node: 0 },
  { base: 100 * P, length: 6 * P, type: MemoryType.RESERVED, node: 0 },
  { base: 150 * P, length: 4 * P, type: MemoryType.ACPI_NVS, node: 0 },
  { base: 160 * P, length: 140 * P, type: MemoryType.USABLE, node: 1 },
  { base: 300 * P, length: 10 * P, type: MemoryType.DEVICE, node: 1 },
  { base: 310 * P, length: 80 * P, type: MemoryType.USABLE, node: 1 },
  { base: 390 * P, length: 10 * P, type: MemoryType.BAD, node: 1 },
];

/** Free frames of SMALL_MACHINE per node at start (frame 0 is the null page, never handed out). */
export const SMALL_FREE = { node0: 40 + 52 + 44 - 1, node1: 140 + 80 };

/** Where flatMachine's RAM starts: 8 MiB, a whole buddy window, clear of the null page. */
export const FLAT_BASE = 2048 * P;

/** One node of `frames` usable frames from FLAT_BASE. */
export function flatMachine(frames: number): FirmwareMemoryEntry[] {
  return [{ base: FLAT_BASE, length: frames * P, type: MemoryType.USABLE, node: 0 }];
}

/** Address of frame `n` of flatMachine. */
export function flat(n: number): number {
  return FLAT_BASE + n * P;
}

/** Runs `fn`, expects an AstraError with this code, errno and (if given) argument; returns it. */
export function expectAstraError(fn: () => unknown, code: Code, errno: Errno, argument?: string): AstraError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught, "expected an AstraError").toBeInstanceOf(AstraError);
  const err = caught as AstraError;
  expect({ code: err.code, errno: err.errno, message: err.message }).toMatchObject({ code, errno });
  if (argument !== undefined) expect(err.detail.argument).toBe(argument);
  return err;
}

// Why the CPU stops running: the reasons run() returns, shared by the interpreter and the block
// translator.

/** Why run() returned. */
export const StopReason = {
  /** The instruction budget is spent; nothing is pending. */
  Budget: 0,
  /** sc or scv: pc is past the instruction; systemCallVectored tells which. */
  SystemCall: 1,
  /** A storage access failed: fault* describe it; pc is the faulting instruction. */
  PageFault: 2,
  /** A program interrupt: programReason; pc is the instruction. */
  Program: 3,
  /** An instruction of a facility this interpreter does not provide: unavailableFacility; pc is the instruction. */
  FacilityUnavailable: 4,
  /** An alignment interrupt (multiple and string accesses in little-endian mode): pc is the instruction. */
  Alignment: 5,
} as const;
export type StopReason = (typeof StopReason)[keyof typeof StopReason];

// What a core's question to the kernel side on behalf of its thread comes back with, besides the
// answer: the thread may have left the CPU meanwhile, or the kernel side may have failed.

/** The thread left the CPU while its trap was being answered: the answer is dropped. */
export const GONE = Symbol("gone");
/** The kernel side failed; the pause before trying again is over. */
export const FAILED = Symbol("failed");
export type Answer<T> = T | typeof GONE | typeof FAILED;

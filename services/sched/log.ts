// sched's log, and how an error reads in it.
import { AstraError } from "../../lib/errors.ts";
import { logger } from "../../lib/log.ts";

export const log = logger("sched");

/** An AstraError's status line; anything else as it prints. */
export function describe(error: unknown): string {
  return error instanceof AstraError ? error.describe() : String(error);
}

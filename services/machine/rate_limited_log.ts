// Log lines for things a guest can repeat at will (an unimplemented system call in a loop, a peer
// that is down while every thread keeps calling it): the first occurrence of each kind is logged,
// then at most one line per interval saying how many were left out.
import type { Logger } from "../../lib/log.ts";

const DEFAULT_INTERVAL_MS = 10_000;

interface Occurrences {
  loggedAt: number;
  suppressed: number;
}

export class RateLimitedLog {
  readonly #seen = new Map<string, Occurrences>();

  constructor(private readonly log: Logger, private readonly intervalMs = DEFAULT_INTERVAL_MS) {}

  warn(key: string, message: string, fields?: Record<string, unknown>): void {
    this.#emit("warn", key, message, fields);
  }

  error(key: string, message: string, fields?: Record<string, unknown>): void {
    this.#emit("error", key, message, fields);
  }

  #emit(level: "warn" | "error", key: string, message: string, fields?: Record<string, unknown>): void {
    const now = performance.now();
    const seen = this.#seen.get(key);
    if (seen && now - seen.loggedAt < this.intervalMs) {
      seen.suppressed++;
      return;
    }
    const suppressed = seen?.suppressed ?? 0;
    this.log[level](message, suppressed ? { ...fields, suppressed } : fields);
    this.#seen.set(key, { loggedAt: now, suppressed: 0 });
  }
}

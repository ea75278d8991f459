// grpc.health.v1.Health, as https://github.com/grpc/grpc/blob/master/doc/health-checking.md
// describes it: a serving status per service name ("" is the server as a whole), answered by Check
// and List, and pushed to Watch streams as it changes.
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "../gen/grpc/health/v1/health_pb.ts";
import { notFound } from "./errors.ts";
import { bindService, type BoundService } from "./server.ts";

export { ServingStatus };

/** What a service can be set to; SERVICE_UNKNOWN is only what Watch says of a name never set. */
export type SettableStatus = Exclude<ServingStatus, ServingStatus.SERVICE_UNKNOWN>;

export class HealthService {
  /** The Health contract bound under the process's service name, for a server or router to serve. */
  readonly bound: BoundService;
  private readonly statuses = new Map<string, SettableStatus>();
  /** Wakes each open Watch to look at the statuses again. */
  private readonly watchers = new Set<() => void>();
  private stopped = false;

  constructor(service: string) {
    this.bound = bindService(service, Health, {
      check: (req) => {
        const status = this.statuses.get(req.service);
        if (status === undefined) {
          throw notFound("service", `no health status is known for service "${req.service}"`);
        }
        return { status };
      },
      list: () => ({
        statuses: Object.fromEntries([...this.statuses].map(([name, status]) => [name, { status }])),
      }),
      watch: (req, ctx) => this.watch(req.service, ctx.signal),
    });
  }

  setStatus(service: string, status: SettableStatus): void {
    if (this.statuses.get(service) === status) return;
    this.statuses.set(service, status);
    for (const wake of this.watchers) wake();
  }

  /**
   * Ends every Watch, open or still to come: the server is going away. Statuses not yet sent are
   * dropped, since a stream the server has already ended cannot carry them.
   */
  shutdown(): void {
    this.stopped = true;
    for (const wake of this.watchers) wake();
  }

  /**
   * The status of `service` now, then whenever it changes. A slow reader gets the latest status,
   * not every intermediate one (as grpc-go does); a name never set is SERVICE_UNKNOWN until it is.
   */
  private async *watch(service: string, signal: AbortSignal) {
    let wake: (() => void) | undefined;
    const changed = () => {
      wake?.();
      wake = undefined;
    };
    this.watchers.add(changed);
    signal.addEventListener("abort", changed);
    try {
      let sent: ServingStatus | undefined;
      while (!this.stopped && !signal.aborted) {
        const status = this.statuses.get(service) ?? ServingStatus.SERVICE_UNKNOWN;
        if (status !== sent) {
          sent = status;
          yield { status };
        } else {
          await new Promise<void>((resolve) => wake = resolve);
        }
      }
    } finally {
      this.watchers.delete(changed);
      signal.removeEventListener("abort", changed);
    }
  }
}

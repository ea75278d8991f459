// astra.common.v1.ObservabilityService: every server answers it from this process's span ring
// buffer and metric series.
import { ObservabilityService } from "../gen/astra/common/v1/observability_pb.ts";
import { snapshotMetrics } from "./metrics.ts";
import { bindService, type BoundService } from "./server.ts";
import { recentSpans } from "./tracing.ts";

export function observabilityService(service: string): BoundService {
  return bindService(service, ObservabilityService, {
    listSpans: (req) => ({ spans: recentSpans(req.traceId, req.limit || 1000) }),
    getMetrics: () => ({ service, methods: snapshotMetrics() }),
  });
}

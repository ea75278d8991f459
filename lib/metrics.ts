// Per-method call counters and latency histograms, kept per process and exposed through
// astra.common.v1.ObservabilityService/GetMetrics.
import { create } from "@bufbuild/protobuf";
import { type MethodMetrics, MethodMetricsSchema } from "../gen/astra/common/v1/observability_pb.ts";

/** Bucket upper bounds in microseconds: a trap-path message is tens of µs, a disk flush ms. */
export const BUCKET_BOUNDS_MICROS = [
  5,
  10,
  25,
  50,
  100,
  250,
  500,
  1000,
  2500,
  5000,
  10_000,
  25_000,
  100_000,
  1e6,
];

interface Series {
  calls: number;
  errors: number;
  sum: number;
  buckets: number[];
}

const series = new Map<string, Series>();

export function recordCall(side: "server" | "client", path: string, micros: number, failed: boolean): void {
  const key = `${side} ${path}`;
  let s = series.get(key);
  if (!s) {
    s = { calls: 0, errors: 0, sum: 0, buckets: new Array(BUCKET_BOUNDS_MICROS.length + 1).fill(0) };
    series.set(key, s);
  }
  s.calls++;
  if (failed) s.errors++;
  s.sum += micros;
  let i = 0;
  while (i < BUCKET_BOUNDS_MICROS.length && micros > BUCKET_BOUNDS_MICROS[i]) i++;
  s.buckets[i]++;
}

export function snapshotMetrics(): MethodMetrics[] {
  return [...series.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([key, s]) => {
    const [side, method] = key.split(" ");
    return create(MethodMetricsSchema, {
      method,
      side,
      calls: BigInt(s.calls),
      errors: BigInt(s.errors),
      bucketBoundsMicros: BUCKET_BOUNDS_MICROS,
      bucketCounts: s.buckets.map(BigInt),
      sumMicros: s.sum,
    });
  });
}

// `astra trace`: the recent calls of a running system as trees, from the spans every server keeps
// (ObservabilityService/ListSpans); no collector needed. In process or container mode each service
// keeps its own spans, so every port is asked and the trees are joined by trace and parent ids.
import { ObservabilityService, type Span } from "../gen/astra/common/v1/observability_pb.ts";
import { DEFAULT_GATEWAY_ADDRESS, DEFAULT_PORTS, readEnv } from "../lib/config.ts";
import { AstraError, Code } from "../lib/errors.ts";
import { GrpcTransport } from "../lib/grpc.ts";
import { client } from "../lib/rpc.ts";

export interface TraceArgs {
  endpoint?: string;
  traceId?: string;
  /** Most recent traces to show. */
  traces: number;
}

async function spansFrom(address: string, traceId: string): Promise<Span[]> {
  const transport = new GrpcTransport(address, { maxAttempts: 1 });
  try {
    return (await client(ObservabilityService, transport, "cli").listSpans({ traceId, limit: 4096 }, {
      timeoutMs: 3000,
    })).spans;
  } catch (e) {
    if (e instanceof AstraError && e.code === Code.UNAVAILABLE) return [];
    throw e;
  } finally {
    transport.close();
  }
}

function micros(nanos: bigint): string {
  const us = Number(nanos) / 1000;
  return us >= 1000 ? `${(us / 1000).toFixed(2)} ms` : `${us.toFixed(0)} µs`;
}

/** A span's name; a system call's (ASTRA_TRACE_KERNEL_CALLS) as strace writes it: arguments, result, pid. */
function label(s: Span): string {
  const args = s.attributes["syscall.args"];
  if (args === undefined) return s.name;
  const result = s.attributes["syscall.errno"] ?? s.attributes["syscall.result"] ?? "?";
  return `${s.name}(${args.split(" ").join(", ")}) = ${result}  [pid ${s.attributes.pid}]`;
}

/** Trees of spans, oldest trace first; a span whose parent was not recorded is a root. */
export function renderTraces(spans: Span[], traces: number): string {
  const byTrace = new Map<string, Span[]>();
  for (const s of spans) {
    const list = byTrace.get(s.traceId) ?? [];
    if (!list.some((o) => o.spanId === s.spanId)) list.push(s);
    byTrace.set(s.traceId, list);
  }
  const ordered = [...byTrace.entries()]
    .map(([id, list]) => ({
      id,
      list,
      start: list.reduce((m, s) => s.startUnixNanos < m ? s.startUnixNanos : m, list[0].startUnixNanos),
    }))
    .sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0))
    .slice(-traces);
  const lines: string[] = [];
  for (const { id, list } of ordered) {
    const ids = new Set(list.map((s) => s.spanId));
    const children = new Map<string, Span[]>();
    for (const s of list) {
      const parent = ids.has(s.parentSpanId) ? s.parentSpanId : "";
      children.set(parent, [...(children.get(parent) ?? []), s]);
    }
    lines.push(`trace ${id}`);
    const walk = (parent: string, depth: number) => {
      const kids = (children.get(parent) ?? []).sort((
        a,
        b,
      ) => (a.startUnixNanos < b.startUnixNanos ? -1 : 1));
      for (const s of kids) {
        const errno = s.attributes["syscall.errno"];
        const status = s.status === "ok" || s.status === errno ? "" : `  [${s.status}]`;
        lines.push(
          `${"  ".repeat(depth + 1)}${s.service} ${s.kind} ${label(s)}  ${micros(s.durationNanos)}${status}`,
        );
        walk(s.spanId, depth + 1);
      }
    };
    walk("", 0);
  }
  return lines.join("\n");
}

export async function trace(args: TraceArgs): Promise<number> {
  const explicit = args.endpoint ?? readEnv("ASTRA_ENDPOINT");
  const addresses = explicit
    ? [explicit]
    : [DEFAULT_GATEWAY_ADDRESS, ...Object.values(DEFAULT_PORTS).map((p) => `127.0.0.1:${p}`)];
  const spans = (await Promise.all(addresses.map((a) => spansFrom(a, args.traceId ?? "")))).flat();
  if (!spans.length) {
    console.error(`no spans recorded at ${addresses.join(", ")} (is the system booted?)`);
    return 1;
  }
  console.log(renderTraces(spans, args.traces));
  return 0;
}

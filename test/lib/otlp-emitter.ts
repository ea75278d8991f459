// Run by otlp.test.ts in its own process (tracing is set up once per process): makes one traced
// in-process call, then flushes the exporters.
import { EchoService } from "../../gen/astra/testing/v1/echo_pb.ts";
import { InProcessRouter } from "../../lib/inproc.ts";
import { client } from "../../lib/rpc.ts";
import { initTracing, shutdownTracing } from "../../lib/tracing.ts";
import { echoService } from "./echo.ts";

await initTracing();
const router = new InProcessRouter();
router.add(echoService("otlp-emitter"));
await client(EchoService, router.transport(), "otlp-emitter").echo({ payload: new Uint8Array([1]) });
await shutdownTracing();

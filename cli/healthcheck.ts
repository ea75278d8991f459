// Container health check: exits 0 when the gRPC server at the given address answers SERVING.
import { checkHealth } from "../lib/grpc.ts";

const address = Deno.args[0] ?? "127.0.0.1:7700";
try {
  const status = await checkHealth(address, "", 2000);
  if (status !== "SERVING") {
    console.error(`${address}: ${status}`);
    Deno.exit(1);
  }
  Deno.exit(0);
} catch (e) {
  console.error(`${address}: ${e instanceof Error ? e.message : e}`);
  Deno.exit(1);
}

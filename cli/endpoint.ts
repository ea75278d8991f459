// Where a command of the astra CLI reaches the running system: --endpoint HOST:PORT (or
// ASTRA_ENDPOINT), else the embedded system's gateway, then the owning service's own port (a system
// booted with --transport grpc has no gateway).
import { DEFAULT_GATEWAY_ADDRESS, DEFAULT_PORTS, readEnv, type ServiceName } from "../lib/config.ts";
import { AstraError, Code } from "../lib/errors.ts";
import { GrpcTransport } from "../lib/grpc.ts";

function endpoints(owner: ServiceName, explicit?: string): string[] {
  const chosen = explicit ?? readEnv("ASTRA_ENDPOINT");
  return chosen ? [chosen] : [DEFAULT_GATEWAY_ADDRESS, `127.0.0.1:${DEFAULT_PORTS[owner]}`];
}

/** Runs `fn` against the first endpoint that answers; fails UNAVAILABLE naming them all if none does. */
export async function withEndpoint<T>(
  owner: ServiceName,
  explicit: string | undefined,
  fn: (transport: GrpcTransport) => Promise<T>,
): Promise<T> {
  const targets = endpoints(owner, explicit);
  for (const [i, address] of targets.entries()) {
    const transport = new GrpcTransport(address, { maxAttempts: 1 });
    try {
      return await fn(transport);
    } catch (err) {
      const unreachable = err instanceof AstraError && err.code === Code.UNAVAILABLE;
      if (!unreachable || i === targets.length - 1) {
        if (unreachable) {
          throw new AstraError(
            Code.UNAVAILABLE,
            err.errno,
            `nothing answered at ${targets.join(" or ")}: is the system booted? try ./astra boot`,
          );
        }
        throw err;
      }
    } finally {
      transport.close();
    }
  }
  throw new Error("no endpoint to try");
}

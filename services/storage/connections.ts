// Which gRPC client connections into this process are still open. A unary handler knows only its
// call's peer — the client end ("host:port") of the HTTP/2 connection the call came on — and the
// gRPC server of this process lists the remote ends of the connections it holds open, so a peer
// that is no longer among them has disconnected.
import { isIPv4, isIPv6 } from "node:net";
import { openConnections as serverConnections } from "../../lib/grpc.ts";

/** `a.b.c.d` for IPv4 (also when IPv4-mapped), the compressed bracketed form for IPv6. */
function canonicalHost(host: string): string | undefined {
  if (isIPv4(host)) return host;
  if (host.toLowerCase().startsWith("::ffff:") && isIPv4(host.slice(7))) return host.slice(7);
  if (isIPv6(host)) return new URL(`http://[${host}]/`).hostname;
  return undefined;
}

/**
 * The connection a call arrived on, from its CallContext peer ("127.0.0.1:51234", "::1:51234"),
 * in the form `openConnections` reports; undefined for in-process calls and Unix sockets, which
 * have no connection to watch.
 */
export function connectionOf(peer: string): string | undefined {
  const colon = peer.lastIndexOf(":");
  if (colon <= 0) return undefined;
  const port = peer.slice(colon + 1);
  const host = canonicalHost(peer.slice(0, colon));
  return host !== undefined && /^\d+$/.test(port) ? `${host}:${Number(port)}` : undefined;
}

/**
 * The remote ends of every open connection to a gRPC server in this process, or undefined when
 * no server runs here: then nobody can tell whether a connection closed, and callers must not
 * assume it did.
 */
export function openConnections(): Set<string> | undefined {
  const peers = serverConnections();
  if (!peers) return undefined;
  const open = new Set<string>();
  for (const peer of peers) {
    const connection = connectionOf(peer);
    if (connection) open.add(connection);
  }
  return open;
}

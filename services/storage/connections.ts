// Which gRPC client connections into this process are still open. A unary handler knows only its
// call's peer — the client end ("host:port") of the HTTP/2 connection the call came on — and
// grpc-js tells handlers nothing when that connection closes. Its channelz registry (a public
// grpc-js API, enabled on every server unless `grpc.enable_channelz` is 0) does list the open
// connections of every server in the process with their remote addresses, so a peer that is no
// longer among them has disconnected.
import * as grpc from "@grpc/grpc-js";
import { isIPv4, isIPv6 } from "node:net";

/** Channelz answers at most this many servers or sockets per request. */
const CHANNELZ_PAGE = 100;

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

interface TcpAddress {
  ip_address?: Uint8Array;
  port?: number;
}

function addressText(address: TcpAddress): string | undefined {
  const ip = address.ip_address;
  if (!ip || address.port === undefined) return undefined;
  let host: string | undefined;
  if (ip.length === 4) host = [...ip].join(".");
  else if (ip.length === 16) {
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(((ip[i] << 8) | ip[i + 1]).toString(16));
    host = canonicalHost(groups.join(":"));
  }
  return host === undefined ? undefined : `${host}:${address.port}`;
}

type Handler = (call: unknown, callback: (err: unknown, value: never) => void) => void;

function ask<T>(handler: Handler, request: Record<string, unknown>): Promise<T> {
  return new Promise((resolve, reject) =>
    handler({ request }, (err, value) => err ? reject(err) : resolve(value as T))
  );
}

/**
 * The remote ends of every open connection to a gRPC server in this process, or undefined when
 * channelz lists no server at all (it is disabled, or nothing serves gRPC here): then nobody can
 * tell whether a connection closed, and callers must not assume it did.
 */
export async function openConnections(): Promise<Set<string> | undefined> {
  const handlers = grpc.getChannelzHandlers() as unknown as Record<string, Handler>;
  const open = new Set<string>();
  let servers = 0;
  for (let startServer = 0;;) {
    const page = await ask<{ server: { ref: { server_id: number } }[]; end: boolean }>(
      handlers.GetServers,
      { start_server_id: startServer, max_results: CHANNELZ_PAGE },
    );
    for (const { ref } of page.server) {
      servers++;
      startServer = Number(ref.server_id) + 1;
      for (let startSocket = 0;;) {
        const sockets = await ask<{ socket_ref: { socket_id: number }[]; end: boolean }>(
          handlers.GetServerSockets,
          { server_id: ref.server_id, start_socket_id: startSocket, max_results: CHANNELZ_PAGE },
        );
        for (const socketRef of sockets.socket_ref) {
          startSocket = Number(socketRef.socket_id) + 1;
          // A socket that closed between the listing and this lookup is simply not open.
          const found = await ask<{ socket: { remote?: { tcpip_address?: TcpAddress } } }>(
            handlers.GetSocket,
            { socket_id: socketRef.socket_id },
          ).catch(() => undefined);
          const remote = found?.socket.remote?.tcpip_address;
          const text = remote && addressText(remote);
          if (text) open.add(text);
        }
        if (sockets.end || sockets.socket_ref.length === 0) break;
      }
    }
    if (page.end || page.server.length === 0) break;
  }
  return servers > 0 ? open : undefined;
}

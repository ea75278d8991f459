// `astra call SERVICE METHOD [JSON]`: any RPC by name, request and reply in the protobuf JSON
// mapping. Streaming requests are read from stdin as one JSON object per line; streaming replies
// print one JSON object per line.
import {
  type DescMethod,
  type DescService,
  fromJson,
  type JsonValue,
  toJsonString,
} from "@bufbuild/protobuf";
import {
  DEFAULT_GATEWAY_ADDRESS,
  DEFAULT_PORTS,
  readEnv,
  SERVICE_NAMES,
  type ServiceName,
} from "../lib/config.ts";
import { AstraError, Code } from "../lib/errors.ts";
import { GrpcTransport } from "../lib/grpc.ts";

function kindLabel(m: DescMethod): string {
  return {
    unary: "",
    server_streaming: " (stream reply)",
    client_streaming: " (stream request)",
    bidi_streaming: " (bidi stream)",
  }[
    m.methodKind
  ];
}

async function contracts() {
  return (await import("../services/contracts.ts")).CONTRACTS;
}

export async function listMethods(only?: string): Promise<string> {
  const CONTRACTS = await contracts();
  const lines: string[] = [];
  for (const name of SERVICE_NAMES) {
    if (only && only !== name) continue;
    for (const svc of CONTRACTS[name]) {
      lines.push(`${name}  ${svc.typeName}`);
      for (const m of svc.methods) lines.push(`  ${m.name}${kindLabel(m)}`);
    }
  }
  return lines.join("\n");
}

/** Finds METHOD among the contracts of SERVICE (a process name such as "pmm", or a full service name). */
export async function findMethod(
  service: string,
  methodName: string,
): Promise<{ owner: ServiceName; method: DescMethod }> {
  const CONTRACTS = await contracts();
  const candidates: { owner: ServiceName; svc: DescService }[] = [];
  for (const name of SERVICE_NAMES) {
    for (const svc of CONTRACTS[name]) {
      const short = svc.typeName.split(".").pop()!;
      if (service === name || service === svc.typeName || service === short) {
        candidates.push({ owner: name, svc });
      }
    }
  }
  if (!candidates.length) {
    throw new Error(
      `unknown service ${JSON.stringify(service)}; one of: ${SERVICE_NAMES.join(", ")} (see --list)`,
    );
  }
  const wanted = methodName.toLowerCase();
  for (const { owner, svc } of candidates) {
    const method = svc.methods.find((m) => m.name.toLowerCase() === wanted);
    if (method) return { owner, method };
  }
  throw new Error(
    `${service} has no method ${JSON.stringify(methodName)} (see ./astra call --list ${service})`,
  );
}

async function* stdinJsonLines(): AsyncGenerator<JsonValue> {
  const decoder = new TextDecoder();
  let buffered = "";
  for await (const chunk of Deno.stdin.readable) {
    buffered += decoder.decode(chunk, { stream: true });
    let nl;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      if (line) yield JSON.parse(line);
    }
  }
  if (buffered.trim()) yield JSON.parse(buffered);
}

/** Where to call: --endpoint, ASTRA_ENDPOINT, else the embedded gateway, else the service's own port. */
function endpoints(owner: ServiceName, explicit?: string): string[] {
  const chosen = explicit ?? readEnv("ASTRA_ENDPOINT");
  return chosen ? [chosen] : [DEFAULT_GATEWAY_ADDRESS, `127.0.0.1:${DEFAULT_PORTS[owner]}`];
}

export interface CallArgs {
  service: string;
  method: string;
  json?: string;
  endpoint?: string;
  timeoutMs?: number;
}

/** Runs the call, printing replies on stdout; returns the process exit code. */
export async function call(args: CallArgs): Promise<number> {
  const { owner, method } = await findMethod(args.service, args.method);
  const print = (msg: unknown) =>
    console.log(toJsonString(method.output, msg as never, { prettySpaces: 2, alwaysEmitImplicit: true }));
  const parseRequest = (json: JsonValue) => fromJson(method.input, json);
  const requestStream = async function* () {
    for await (const line of stdinJsonLines()) yield parseRequest(line);
  };
  const single = parseRequest(args.json ? JSON.parse(args.json) : {});
  const targets = endpoints(owner, args.endpoint);
  for (const [i, address] of targets.entries()) {
    const transport = new GrpcTransport(address, { maxAttempts: 1 });
    const opts = { timeoutMs: args.timeoutMs };
    try {
      switch (method.methodKind) {
        case "unary":
          print(await transport.unary(method, single, opts));
          break;
        case "server_streaming":
          for await (const reply of transport.serverStream(method, single, opts)) print(reply);
          break;
        case "client_streaming":
          print(await transport.clientStream(method, requestStream(), opts));
          break;
        case "bidi_streaming":
          for await (const reply of transport.bidiStream(method, requestStream(), opts)) print(reply);
          break;
      }
      return 0;
    } catch (e) {
      const err = e as AstraError;
      if (err instanceof AstraError && err.code === Code.UNAVAILABLE && i < targets.length - 1) continue;
      console.error(`error: ${err instanceof AstraError ? err.describe() : String(e)}`);
      if (err instanceof AstraError && err.code === Code.UNAVAILABLE) {
        console.error(
          `(nothing answered at ${targets.join(" or ")}: is the system booted? try ./astra boot)`,
        );
      }
      return 1;
    } finally {
      transport.close();
    }
  }
  return 1;
}

// Every RPC of every service, over both transports, on an embedded system: each either answers,
// rejects the empty request with a precise status, or says UNIMPLEMENTED naming the work that
// brings it — and the two transports agree on which, method by method. No call may fail INTERNAL.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create, type DescMethod } from "@bufbuild/protobuf";
import { SERVICE_NAMES, type ServiceName } from "../../lib/config.ts";
import { AstraError, Code } from "../../lib/errors.ts";
import { GrpcTransport } from "../../lib/grpc.ts";
import { bootEmbedded, type EmbeddedSystem } from "../../lib/host.ts";
import type { Transport } from "../../lib/rpc.ts";
import { CONTRACTS } from "../../services/contracts.ts";
import { loadFactory } from "../../services/index.ts";

/** Methods the foundation must really answer (with an empty request). */
const MUST_ANSWER: Record<ServiceName, string[]> = {
  machine: ["GetInfo", "GetMemoryMap"],
  pmm: ["GetStatistics", "GetFreeCount", "GetTotalCount", "GetMemoryMap"],
  vmm: ["GetStatistics"],
  storage: ["GetStatistics"],
  sched: ["GetStatistics"],
};

type Outcome = "ok" | keyof typeof Code;

async function outcomeOf(
  transport: Transport,
  method: DescMethod,
): Promise<{ outcome: Outcome; error?: AstraError }> {
  const empty = create(method.input);
  try {
    switch (method.methodKind) {
      case "unary":
        await transport.unary(method, empty, { timeoutMs: 5000 });
        return { outcome: "ok" };
      case "client_streaming":
        await transport.clientStream(method, (async function* () {})(), { timeoutMs: 5000 });
        return { outcome: "ok" };
      default: {
        // A stream that is still open after a short while answers (it is waiting for events).
        const replies = method.methodKind === "server_streaming"
          ? transport.serverStream(method, empty, { timeoutMs: 400 })
          : transport.bidiStream(method, (async function* () {})(), { timeoutMs: 400 });
        for await (const _ of replies) break;
        return { outcome: "ok" };
      }
    }
  } catch (e) {
    expect(e).toBeInstanceOf(AstraError);
    const err = e as AstraError;
    if (err.code === Code.DEADLINE_EXCEEDED && method.methodKind !== "unary") return { outcome: "ok" };
    return { outcome: Code[err.code] as Outcome, error: err };
  }
}

describe("every RPC of every service", () => {
  let system: EmbeddedSystem;
  let grpc: GrpcTransport;
  const results: Record<string, Record<string, Outcome>> = { "in-process": {}, grpc: {} };

  beforeAll(async () => {
    const dataDir = await Deno.makeTempDir({ prefix: "astra-contracts-" });
    system = await bootEmbedded(loadFactory, {
      memoryBytes: 64 * 1024 * 1024,
      numaNodes: 2,
      cpus: 2,
      dataDir,
    }, {
      gateway: "127.0.0.1:0",
    });
    grpc = new GrpcTransport(system.gatewayAddress!);
  }, 60_000);

  afterAll(async () => {
    grpc.close();
    await system.shutdown();
  });

  for (const name of SERVICE_NAMES) {
    it(`${name}: answers, validates or names the work that brings it, on both transports`, async () => {
      const methods = CONTRACTS[name].flatMap((svc) => svc.methods);
      expect(methods.length).toBeGreaterThan(0);
      for (const [kind, transport] of [["in-process", system.router.transport()], ["grpc", grpc]] as const) {
        for (const method of methods) {
          const { outcome, error } = await outcomeOf(transport, method);
          const where = `${kind} ${method.parent.typeName}/${method.name}`;
          results[kind][`${method.parent.typeName}/${method.name}`] = outcome;
          expect(outcome, `${where}: ${error?.describe()}`).not.toBe("INTERNAL");
          expect(outcome, `${where}: ${error?.describe()}`).not.toBe("UNKNOWN");
          if (outcome === "UNIMPLEMENTED") {
            expect(error!.message, where).toMatch(/arrives with (issue #\d+|the .+ work)/);
          }
          if (MUST_ANSWER[name].includes(method.name) && method.parent === CONTRACTS[name][0]) {
            expect(outcome, `${where}: ${error?.describe()}`).toBe("ok");
          }
        }
      }
      for (const method of methods) {
        const key = `${method.parent.typeName}/${method.name}`;
        expect(results.grpc[key], key).toBe(results["in-process"][key]);
      }
    }, 60_000);
  }
});

// grpc.health.v1 as the gRPC health-checking protocol specifies it, over both transports: a
// GrpcServer's health over loopback, and a HealthService served by an in-process router.
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { EchoService } from "../../gen/astra/testing/v1/echo_pb.ts";
import { Health } from "../../gen/grpc/health/v1/health_pb.ts";
import { Code } from "../../lib/errors.ts";
import { checkHealth, GrpcServer, GrpcTransport, HealthProbe } from "../../lib/grpc.ts";
import { HealthService, ServingStatus } from "../../lib/health.ts";
import { InProcessRouter } from "../../lib/inproc.ts";
import { snapshotMetrics } from "../../lib/metrics.ts";
import { client, type Transport } from "../../lib/rpc.ts";
import { echoService } from "./echo.ts";
import { rejection } from "../rejection.ts";

const { SERVING, NOT_SERVING, SERVICE_UNKNOWN } = ServingStatus;

interface Setup {
  transport: Transport;
  /** What GrpcServer.setServing does: the whole server and each service. */
  setServing(serving: boolean): void;
  /** The server going away. */
  shutdown(): Promise<void>;
  /** Closes the client; the server too unless shut down already. */
  close(): Promise<void>;
}

const setups: Record<string, () => Promise<Setup>> = {
  grpc: async () => {
    const server = new GrpcServer("echo");
    server.add(echoService("echo"));
    const transport = new GrpcTransport(await server.listen("127.0.0.1:0"));
    let down = false;
    const shutdown = async () => {
      down = true;
      await server.shutdown(200);
    };
    return {
      transport,
      setServing: (serving) => server.setServing(serving),
      shutdown,
      close: async () => {
        transport.close();
        if (!down) await shutdown();
      },
    };
  },
  "in-process": () => {
    const health = new HealthService("echo");
    const router = new InProcessRouter();
    router.add(health.bound);
    router.add(echoService("echo"));
    const setServing = (serving: boolean) => {
      for (const name of ["", EchoService.typeName]) health.setStatus(name, serving ? SERVING : NOT_SERVING);
    };
    setServing(false);
    return Promise.resolve({
      transport: router.transport(),
      setServing,
      shutdown: () => Promise.resolve(health.shutdown()),
      close: () => Promise.resolve(),
    });
  },
};

/** How many Watch calls the server side has finished (its interceptor records each as it ends). */
function watchesEnded(): number {
  const m = snapshotMetrics().find((m) => m.side === "server" && m.method === "/grpc.health.v1.Health/Watch");
  return Number(m?.calls ?? 0);
}

for (const [kind, setup] of Object.entries(setups)) {
  describe(`health over the ${kind} transport`, () => {
    let s: Setup;
    let health: ReturnType<typeof client<typeof Health>>;

    beforeAll(async () => {
      s = await setup();
      health = client(Health, s.transport);
    });
    afterAll(() => s.close());

    it("answers Check for the whole server and per service, following the serving state", async () => {
      s.setServing(false);
      expect((await health.check({ service: "" })).status).toBe(NOT_SERVING);
      expect((await health.check({ service: EchoService.typeName })).status).toBe(NOT_SERVING);
      s.setServing(true);
      expect((await health.check({ service: "" })).status).toBe(SERVING);
      expect((await health.check({ service: EchoService.typeName })).status).toBe(SERVING);
    });

    it("fails Check for a service it does not know with NOT_FOUND", async () => {
      const err = await rejection(health.check({ service: "astra.nothing.v1.NopeService" }));
      expect(err.code).toBe(Code.NOT_FOUND);
      expect(err.message).toContain("astra.nothing.v1.NopeService");
    });

    it("lists every status", async () => {
      s.setServing(true);
      const { statuses } = await health.list({});
      expect(statuses[""]?.status).toBe(SERVING);
      expect(statuses[EchoService.typeName]?.status).toBe(SERVING);
    });

    it("streams the current status and then each change to Watch, until the call is cancelled", async () => {
      s.setServing(true);
      const ended = watchesEnded();
      const abort = new AbortController();
      const updates = health.watch({ service: EchoService.typeName }, { signal: abort.signal })
        [Symbol.asyncIterator]();
      expect((await updates.next()).value?.status).toBe(SERVING);
      s.setServing(false);
      expect((await updates.next()).value?.status).toBe(NOT_SERVING);
      s.setServing(true);
      expect((await updates.next()).value?.status).toBe(SERVING);
      const pending = updates.next();
      abort.abort();
      expect((await rejection(pending)).code).toBe(Code.CANCELLED);
      await vi.waitFor(() => expect(watchesEnded()).toBe(ended + 1));
    });

    it("says SERVICE_UNKNOWN to Watch for a service it does not know, and keeps the stream open", async () => {
      const abort = new AbortController();
      const updates = health.watch({ service: "astra.nothing.v1.NopeService" }, { signal: abort.signal })
        [Symbol.asyncIterator]();
      expect((await updates.next()).value?.status).toBe(SERVICE_UNKNOWN);
      const next = updates.next();
      const open = await Promise.race([next.then(() => false), new Promise((r) => setTimeout(r, 100, true))]);
      expect(open).toBe(true);
      abort.abort();
      await next.catch(() => {});
    });
  });

  it(`ends Watch streams when the server shuts down (${kind})`, async () => {
    const s = await setup();
    try {
      s.setServing(true);
      const updates = client(Health, s.transport).watch({ service: "" })[Symbol.asyncIterator]();
      expect((await updates.next()).value?.status).toBe(SERVING);
      const outcome = updates.next().then((r) => (r.done ? "ended" : r.value.status), (e) => Code[e.code]);
      await s.shutdown();
      // gRPC ends the stream with UNAVAILABLE (the client should retry elsewhere); in one process
      // the stream just ends.
      expect(await outcome).toBe(kind === "grpc" ? "UNAVAILABLE" : "ended");
      const late = await client(Health, s.transport).watch({ service: "" })[Symbol.asyncIterator]().next()
        .then((r) => r.done, (e) => Code[e.code]);
      expect(late).toBe(kind === "grpc" ? "UNAVAILABLE" : true);
    } finally {
      await s.close();
    }
  });
}

describe("checkHealth and HealthProbe", () => {
  const server = new GrpcServer("echo");
  let address: string;

  beforeAll(async () => {
    server.add(echoService("echo"));
    address = await server.listen("127.0.0.1:0");
  });
  afterAll(() => server.shutdown(200));

  it("name the status of the server or a service, and throw for an unknown service", async () => {
    expect(await checkHealth(address)).toBe("NOT_SERVING");
    server.setServing(true);
    expect(await checkHealth(address)).toBe("SERVING");
    const probe = new HealthProbe(address);
    try {
      expect(await probe.check()).toBe("SERVING");
      expect(await probe.check(EchoService.typeName)).toBe("SERVING");
      const err = await rejection(probe.check("astra.nothing.v1.NopeService"));
      expect(err.code).toBe(Code.NOT_FOUND);
    } finally {
      probe.close();
    }
  });

  it("throws when nothing answers", async () => {
    const err = await rejection(checkHealth("127.0.0.1:1", "", 300));
    expect([Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED]).toContain(err.code);
  });
});

// Server reflection, the way grpcurl uses it: list the services, then fetch the file descriptors
// that define one, and decode them.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { createRequire } from "node:module";
import { GrpcServer } from "../../lib/grpc.ts";
import { observabilityService } from "../../lib/observability.ts";
import { echoService } from "./echo.ts";

interface ReflectionReply {
  listServicesResponse?: { service: { name: string }[] };
  fileDescriptorResponse?: { fileDescriptorProto: Uint8Array[] };
  errorResponse?: { errorCode: number; errorMessage: string };
}

type ReflectionStream = grpc.ClientDuplexStream<Record<string, string>, ReflectionReply>;

function reflectionClient(address: string): grpc.Client & { serverReflectionInfo(): ReflectionStream } {
  const require = createRequire(import.meta.url);
  const protoPath = require.resolve("@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto");
  const pkg = grpc.loadPackageDefinition(loadSync(protoPath)) as never as {
    grpc: { reflection: { v1: { ServerReflection: new (a: string, c: grpc.ChannelCredentials) => never } } };
  };
  return new pkg.grpc.reflection.v1.ServerReflection(address, grpc.credentials.createInsecure());
}

function ask(
  c: ReturnType<typeof reflectionClient>,
  request: Record<string, string>,
): Promise<ReflectionReply> {
  return new Promise((resolve, reject) => {
    const stream = c.serverReflectionInfo();
    stream.on("data", (reply: ReflectionReply) => {
      resolve(reply);
      stream.end();
    });
    stream.on("error", reject);
    stream.write(request);
  });
}

describe("gRPC server reflection", () => {
  const server = new GrpcServer("echo");
  let c: ReturnType<typeof reflectionClient>;

  beforeAll(async () => {
    server.add(echoService("echo"));
    server.add(observabilityService("echo"));
    c = reflectionClient(await server.listen("127.0.0.1:0"));
  });

  afterAll(async () => {
    c.close();
    await server.shutdown(200);
  });

  it("lists the served contracts, health and reflection", async () => {
    const reply = await ask(c, { listServices: "" });
    const names = reply.listServicesResponse!.service.map((s) => s.name);
    expect(names).toEqual(expect.arrayContaining([
      "astra.testing.v1.EchoService",
      "astra.common.v1.ObservabilityService",
      "grpc.health.v1.Health",
    ]));
  });

  it("answers the file defining a symbol, with its methods", async () => {
    const reply = await ask(c, { fileContainingSymbol: "astra.testing.v1.EchoService" });
    const files = reply.fileDescriptorResponse!.fileDescriptorProto.map((b) =>
      fromBinary(FileDescriptorProtoSchema, b)
    );
    const echo = files.find((f) => f.name === "astra/testing/v1/echo.proto")!;
    expect(echo.service[0].method.map((m) => m.name)).toEqual([
      "Echo",
      "Sleep",
      "Count",
      "Concat",
      "Chat",
      "Relay",
    ]);
  });

  it("reports an unknown symbol as NOT_FOUND", async () => {
    const reply = await ask(c, { fileContainingSymbol: "astra.nothing.v1.Nope" });
    expect(reply.errorResponse?.errorCode).toBe(grpc.status.NOT_FOUND);
  });
});

// Server reflection, the way grpcurl uses it: list the services, then fetch the file descriptors
// that define one, and decode them. The client is grpc-js with the published reflection protos
// loaded by proto-loader, an implementation independent of ours.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { create, createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Label as Label,
  FieldDescriptorProto_Type as Type,
  file_google_protobuf_any,
  type FileDescriptorProto,
  FileDescriptorProtoSchema,
} from "@bufbuild/protobuf/wkt";
import { fileURLToPath } from "node:url";
import { EchoService } from "../../gen/astra/testing/v1/echo_pb.ts";
import { ServerReflection } from "../../gen/grpc/reflection/v1/reflection_pb.ts";
import { Code } from "../../lib/errors.ts";
import { GrpcServer } from "../../lib/grpc.ts";
import { InProcessRouter } from "../../lib/inproc.ts";
import { observabilityService } from "../../lib/observability.ts";
import { reflectionServices } from "../../lib/reflection.ts";
import { client } from "../../lib/rpc.ts";
import { bindService, pendingMethods } from "../../lib/server.ts";
import { echoService } from "./echo.ts";

/**
 * A contract with what ours lack but reflection must handle: a nested message, an import of a
 * well-known type and an extension (proto2).
 */
const PROBE_FILE = "astra/testing/v1/reflection_probe.proto";
const probeRegistry = createFileRegistry(
  create(FileDescriptorProtoSchema, {
    name: PROBE_FILE,
    package: "astra.testing.v1.probe",
    syntax: "proto2",
    dependency: ["google/protobuf/any.proto"],
    messageType: [{
      name: "Outer",
      field: [{
        name: "detail",
        number: 1,
        label: Label.OPTIONAL,
        type: Type.MESSAGE,
        typeName: ".google.protobuf.Any",
      }],
      nestedType: [{
        name: "Inner",
        field: [{ name: "value", number: 1, label: Label.OPTIONAL, type: Type.STRING }],
      }],
      extensionRange: [{ start: 100, end: 200 }],
    }],
    extension: [{
      name: "tag",
      number: 100,
      label: Label.OPTIONAL,
      type: Type.INT32,
      extendee: ".astra.testing.v1.probe.Outer",
    }],
    service: [{
      name: "ProbeService",
      method: [{
        name: "Get",
        inputType: ".astra.testing.v1.probe.Outer.Inner",
        outputType: ".astra.testing.v1.probe.Outer",
      }],
    }],
  }),
  (name) => name === file_google_protobuf_any.proto.name ? file_google_protobuf_any : undefined,
);
const ProbeService = probeRegistry.getService("astra.testing.v1.probe.ProbeService")!;

interface ReflectionReply {
  validHost?: string;
  originalRequest?: Record<string, unknown>;
  listServicesResponse?: { service: { name: string }[] };
  fileDescriptorResponse?: { fileDescriptorProto: Uint8Array[] };
  allExtensionNumbersResponse?: { baseTypeName: string; extensionNumber: number[] };
  errorResponse?: { errorCode: number; errorMessage: string };
}

type ReflectionRequest = Record<string, unknown>;
type ReflectionStream = grpc.ClientDuplexStream<ReflectionRequest, ReflectionReply>;
type ReflectionClient = grpc.Client & { serverReflectionInfo(): ReflectionStream };

function reflectionClient(version: string, address: string): ReflectionClient {
  const protoPath = fileURLToPath(
    new URL(`../../proto/grpc/reflection/${version}/reflection.proto`, import.meta.url),
  );
  const pkg = grpc.loadPackageDefinition(loadSync(protoPath, { arrays: true })) as never as {
    grpc: {
      reflection: Record<string, { ServerReflection: new (a: string, c: grpc.ChannelCredentials) => never }>;
    };
  };
  return new pkg.grpc.reflection[version].ServerReflection(address, grpc.credentials.createInsecure());
}

/** The replies to `requests`, all sent on one stream. */
function exchange(c: ReflectionClient, requests: ReflectionRequest[]): Promise<ReflectionReply[]> {
  return new Promise((resolve, reject) => {
    const stream = c.serverReflectionInfo();
    const replies: ReflectionReply[] = [];
    stream.on("data", (reply: ReflectionReply) => {
      replies.push(reply);
      if (replies.length === requests.length) {
        resolve(replies);
        stream.end();
      }
    });
    stream.on("error", reject);
    for (const r of requests) stream.write(r);
  });
}

async function ask(c: ReflectionClient, request: ReflectionRequest): Promise<ReflectionReply> {
  return (await exchange(c, [request]))[0];
}

function filesOf(reply: ReflectionReply): FileDescriptorProto[] {
  expect(reply.errorResponse, reply.errorResponse?.errorMessage).toBeUndefined();
  return reply.fileDescriptorResponse!.fileDescriptorProto.map((b) =>
    fromBinary(FileDescriptorProtoSchema, b)
  );
}

async function fileDefining(c: ReflectionClient, symbol: string): Promise<string> {
  return filesOf(await ask(c, { fileContainingSymbol: symbol }))[0].name;
}

for (const version of ["v1", "v1alpha"]) {
  describe(`gRPC server reflection ${version}`, () => {
    const server = new GrpcServer("echo");
    let c: ReflectionClient;

    beforeAll(async () => {
      server.add(echoService("echo"));
      server.add(observabilityService("echo"));
      server.add(bindService("echo", ProbeService, pendingMethods(ProbeService, "the reflection test")));
      c = reflectionClient(version, await server.listen("127.0.0.1:0"));
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
        "astra.testing.v1.probe.ProbeService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
      ]));
    });

    it("answers the file defining a symbol, with its methods", async () => {
      const files = filesOf(await ask(c, { fileContainingSymbol: "astra.testing.v1.EchoService" }));
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

    it("answers requests on one stream in order, each echoing its request and host", async () => {
      const replies = await exchange(c, [
        { host: "astra.test", fileContainingSymbol: "astra.testing.v1.EchoRequest" },
        { host: "other", listServices: "*" },
        { fileByFilename: "no/such.proto" },
      ]);
      // An empty host is not on the wire, so the loader leaves it out.
      expect(replies.map((r) => r.validHost)).toEqual(["astra.test", "other", undefined]);
      expect(replies.map((r) => r.originalRequest)).toEqual([
        { host: "astra.test", fileContainingSymbol: "astra.testing.v1.EchoRequest" },
        { host: "other", listServices: "*" },
        { fileByFilename: "no/such.proto" },
      ]);
      expect(replies[0].fileDescriptorResponse).toBeDefined();
      expect(replies[1].listServicesResponse).toBeDefined();
      expect(replies[2].errorResponse?.errorCode).toBe(grpc.status.NOT_FOUND);
    });

    it("answers a file by name, first, with its transitive dependencies", async () => {
      const files = filesOf(await ask(c, { fileByFilename: PROBE_FILE }));
      expect(files.map((f) => f.name)).toEqual([PROBE_FILE, "google/protobuf/any.proto"]);
      const health = filesOf(await ask(c, { fileByFilename: "grpc/health/v1/health.proto" }));
      expect(health.map((f) => f.name)).toEqual(["grpc/health/v1/health.proto"]);
      expect(health[0].service[0].method.map((m) => m.name)).toEqual(["Check", "List", "Watch"]);
    });

    it("finds the file of a nested type, a method, a field, an enum value and a well-known type", async () => {
      expect(await fileDefining(c, "astra.testing.v1.probe.Outer.Inner")).toBe(PROBE_FILE);
      expect(await fileDefining(c, "astra.testing.v1.probe.Outer.detail")).toBe(PROBE_FILE);
      expect(await fileDefining(c, "astra.testing.v1.probe.ProbeService.Get")).toBe(PROBE_FILE);
      expect(await fileDefining(c, "astra.testing.v1.EchoService.Chat")).toBe("astra/testing/v1/echo.proto");
      const health = "grpc/health/v1/health.proto";
      expect(await fileDefining(c, "grpc.health.v1.HealthCheckResponse.ServingStatus")).toBe(health);
      expect(await fileDefining(c, "grpc.health.v1.HealthCheckResponse.SERVICE_UNKNOWN")).toBe(health);
      expect(await fileDefining(c, "grpc.health.v1.HealthListResponse.StatusesEntry")).toBe(health);
      expect(await fileDefining(c, "google.protobuf.Any")).toBe("google/protobuf/any.proto");
      expect(await fileDefining(c, `grpc.reflection.${version}.ServerReflection`))
        .toBe(`grpc/reflection/${version}/reflection.proto`);
    });

    it("answers extensions from the served files", async () => {
      const containing = { containingType: "astra.testing.v1.probe.Outer", extensionNumber: 100 };
      expect(filesOf(await ask(c, { fileContainingExtension: containing }))[0].name).toBe(PROBE_FILE);
      const numbers = await ask(c, { allExtensionNumbersOfType: "astra.testing.v1.probe.Outer" });
      expect(numbers.allExtensionNumbersResponse).toEqual({
        baseTypeName: "astra.testing.v1.probe.Outer",
        extensionNumber: [100],
      });
      const none = await ask(c, { allExtensionNumbersOfType: "astra.testing.v1.EchoRequest" });
      expect(none.allExtensionNumbersResponse?.extensionNumber).toEqual([]);
    });

    it("reports what it does not know as NOT_FOUND and malformed requests as INVALID_ARGUMENT", async () => {
      const replies = await exchange(c, [
        { fileContainingSymbol: "astra.nothing.v1.Nope" },
        { fileByFilename: "astra/nothing.proto" },
        { fileContainingExtension: { containingType: "astra.testing.v1.probe.Outer", extensionNumber: 101 } },
        { allExtensionNumbersOfType: "astra.nothing.v1.Nope" },
        { fileContainingSymbol: ".astra.testing.v1.EchoService" },
        { fileByFilename: "" },
        { fileContainingExtension: { containingType: "astra.testing.v1.probe.Outer", extensionNumber: 0 } },
        {},
        // The stream is still answering after its errors.
        { fileContainingSymbol: "astra.testing.v1.EchoService" },
      ]);
      const { NOT_FOUND, INVALID_ARGUMENT } = grpc.status;
      expect(replies.map((r) => r.errorResponse?.errorCode)).toEqual([
        NOT_FOUND,
        NOT_FOUND,
        NOT_FOUND,
        NOT_FOUND,
        INVALID_ARGUMENT,
        INVALID_ARGUMENT,
        INVALID_ARGUMENT,
        INVALID_ARGUMENT,
        undefined,
      ]);
      expect(replies[0].errorResponse?.errorMessage).toContain("astra.nothing.v1.Nope");
    });
  });
}

describe("server reflection in-process", () => {
  it("answers through the in-process transport as over gRPC", async () => {
    const router = new InProcessRouter();
    router.add(echoService("echo"));
    reflectionServices("echo", () => [EchoService, ServerReflection]).forEach((b) => router.add(b));
    const reflection = client(ServerReflection, router.transport());
    const symbol = (value: string) => ({ messageRequest: { case: "fileContainingSymbol" as const, value } });
    async function* requests() {
      yield { host: "h", messageRequest: { case: "listServices" as const, value: "" } };
      yield symbol("astra.testing.v1.EchoService.Count");
      yield symbol("astra.nothing.v1.Nope");
    }
    const replies = [];
    for await (const reply of reflection.serverReflectionInfo(requests())) replies.push(reply);

    expect(replies[0].validHost).toBe("h");
    expect(replies[0].messageResponse).toEqual({
      case: "listServicesResponse",
      value: expect.objectContaining({
        service: [
          expect.objectContaining({ name: "astra.testing.v1.EchoService" }),
          expect.objectContaining({ name: "grpc.reflection.v1.ServerReflection" }),
        ],
      }),
    });
    expect(replies[1].originalRequest?.messageRequest.value).toBe("astra.testing.v1.EchoService.Count");
    const found = replies[1].messageResponse;
    expect(found.case).toBe("fileDescriptorResponse");
    const files = found.case === "fileDescriptorResponse" ? found.value.fileDescriptorProto : [];
    expect(files.map((b) => fromBinary(FileDescriptorProtoSchema, b).name)).toEqual([
      "astra/testing/v1/echo.proto",
    ]);
    expect(replies[2].messageResponse).toMatchObject({
      case: "errorResponse",
      value: { errorCode: Code.NOT_FOUND },
    });
  });
});

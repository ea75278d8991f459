// gRPC server reflection (https://github.com/grpc/grpc/blob/master/doc/server-reflection.md): the
// services a server offers and the file descriptors that define them, so that grpcurl and the like
// can call it without our .proto files. Served as grpc.reflection.v1 and, for older clients, the
// identical v1alpha. Every answer comes from the descriptors of the served services and the files
// they import, transitively (google/protobuf well-known types included).
import {
  type DescEnum,
  type DescExtension,
  type DescFile,
  type DescMessage,
  type DescService,
  toBinary,
} from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { ServerReflection } from "../gen/grpc/reflection/v1/reflection_pb.ts";
import { ServerReflection as ServerReflectionV1alpha } from "../gen/grpc/reflection/v1alpha/reflection_pb.ts";
import { Code } from "./errors.ts";
import { bindService, type BoundService } from "./server.ts";

/** A ServerReflectionRequest of either version: v1 and v1alpha have the same fields. */
interface ReflectionRequest {
  host: string;
  messageRequest:
    | {
      case: "fileByFilename" | "fileContainingSymbol" | "allExtensionNumbersOfType" | "listServices";
      value: string;
    }
    | { case: "fileContainingExtension"; value: { containingType: string; extensionNumber: number } }
    | { case: undefined; value?: undefined };
}

type ReflectionAnswer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: "allExtensionNumbersResponse"; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

/** Field numbers an extension may have (1 to 2^29 - 1). */
const MAX_FIELD_NUMBER = 536_870_911;
const FULL_NAME = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

/**
 * ServerReflectionInfo under both versions, bound for the process `service`. Each stream answers
 * about what `served()` lists at its first request, so services added after binding are included.
 */
export function reflectionServices(service: string, served: () => Iterable<DescService>): BoundService[] {
  return [
    bindService(service, ServerReflection, { serverReflectionInfo: (reqs) => answers(reqs, served) }),
    bindService(service, ServerReflectionV1alpha, { serverReflectionInfo: (reqs) => answers(reqs, served) }),
  ];
}

/** One reply per request, in order; a request that cannot be answered gets an error_response. */
async function* answers<R extends ReflectionRequest>(
  reqs: AsyncIterable<R>,
  served: () => Iterable<DescService>,
) {
  let index: DescriptorIndex | undefined;
  for await (const req of reqs) {
    index ??= new DescriptorIndex([...served()]);
    yield { validHost: req.host, originalRequest: req, messageResponse: index.answer(req) };
  }
}

/** Files in dependency order: each after the files it imports. */
function fileClosure(files: Iterable<DescFile>): DescFile[] {
  const seen = new Set<DescFile>();
  const order: DescFile[] = [];
  const visit = (f: DescFile) => {
    if (seen.has(f)) return;
    seen.add(f);
    f.dependencies.forEach(visit);
    order.push(f);
  };
  for (const f of files) visit(f);
  return order;
}

/** Encoded FileDescriptorProtos, kept: descriptors never change, and every reply sends several. */
const encodedFiles = new WeakMap<DescFile, Uint8Array>();

function encoded(file: DescFile): Uint8Array {
  let bytes = encodedFiles.get(file);
  if (bytes === undefined) {
    bytes = toBinary(FileDescriptorProtoSchema, file.proto);
    encodedFiles.set(file, bytes);
  }
  return bytes;
}

function error(code: Code, message: string): ReflectionAnswer {
  return { case: "errorResponse", value: { errorCode: code, errorMessage: message } };
}

/** The served services' files and every name they define, by the protobuf full names clients ask for. */
class DescriptorIndex {
  private readonly files = new Map<string, DescFile>();
  private readonly symbols = new Map<string, DescFile>();
  /** Extensions by the full name of the message they extend, then by field number. */
  private readonly extensions = new Map<string, Map<number, DescFile>>();
  private readonly messages = new Set<string>();

  constructor(private readonly services: DescService[]) {
    for (const file of fileClosure(services.map((s) => s.file))) {
      this.files.set(file.proto.name, file);
      for (const s of file.services) {
        this.symbols.set(s.typeName, file);
        for (const m of s.methods) this.symbols.set(`${s.typeName}.${m.name}`, file);
      }
      file.messages.forEach((m) => this.addMessage(m, file));
      file.enums.forEach((e) => this.addEnum(e, file));
      file.extensions.forEach((x) => this.addExtension(x, file));
    }
  }

  private addMessage(message: DescMessage, file: DescFile): void {
    this.symbols.set(message.typeName, file);
    this.messages.add(message.typeName);
    for (const f of message.fields) {
      this.symbols.set(`${message.typeName}.${f.name}`, file);
      // A map's entry is a nested message in the file, though protobuf-es lists it nowhere else.
      if (f.fieldKind === "map") this.symbols.set(f.proto.typeName.slice(1), file);
    }
    for (const o of message.oneofs) this.symbols.set(`${message.typeName}.${o.name}`, file);
    message.nestedMessages.forEach((m) => this.addMessage(m, file));
    message.nestedEnums.forEach((e) => this.addEnum(e, file));
    message.nestedExtensions.forEach((x) => this.addExtension(x, file));
  }

  private addEnum(e: DescEnum, file: DescFile): void {
    this.symbols.set(e.typeName, file);
    // Enum values are scoped like their enum's siblings (C++ rules), not inside the enum.
    const scope = e.typeName.slice(0, e.typeName.length - e.name.length);
    for (const v of e.values) this.symbols.set(`${scope}${v.name}`, file);
  }

  private addExtension(x: DescExtension, file: DescFile): void {
    this.symbols.set(x.typeName, file);
    const byNumber = this.extensions.get(x.extendee.typeName) ?? new Map<number, DescFile>();
    byNumber.set(x.number, file);
    this.extensions.set(x.extendee.typeName, byNumber);
  }

  answer(req: ReflectionRequest): ReflectionAnswer {
    const request = req.messageRequest;
    switch (request.case) {
      case "listServices":
        return {
          case: "listServicesResponse",
          value: { service: this.services.map((s) => ({ name: s.typeName })) },
        };
      case "fileByFilename": {
        if (!request.value) return error(Code.INVALID_ARGUMENT, "file_by_filename is empty");
        const file = this.files.get(request.value);
        return file ? this.withDependencies(file) : error(Code.NOT_FOUND, `no file "${request.value}"`);
      }
      case "fileContainingSymbol": {
        const invalid = this.invalidName("file_containing_symbol", request.value);
        if (invalid) return invalid;
        const file = this.symbols.get(request.value);
        return file ? this.withDependencies(file) : error(Code.NOT_FOUND, `no symbol "${request.value}"`);
      }
      case "fileContainingExtension": {
        const { containingType, extensionNumber } = request.value;
        const invalid = this.invalidName("containing_type", containingType);
        if (invalid) return invalid;
        if (extensionNumber < 1 || extensionNumber > MAX_FIELD_NUMBER) {
          return error(Code.INVALID_ARGUMENT, `extension_number ${extensionNumber} is not a field number`);
        }
        const file = this.extensions.get(containingType)?.get(extensionNumber);
        return file
          ? this.withDependencies(file)
          : error(Code.NOT_FOUND, `no extension ${extensionNumber} of "${containingType}"`);
      }
      case "allExtensionNumbersOfType": {
        const invalid = this.invalidName("all_extension_numbers_of_type", request.value);
        if (invalid) return invalid;
        if (!this.messages.has(request.value)) return error(Code.NOT_FOUND, `no message "${request.value}"`);
        const numbers = [...this.extensions.get(request.value)?.keys() ?? []];
        return {
          case: "allExtensionNumbersResponse",
          value: { baseTypeName: request.value, extensionNumber: numbers },
        };
      }
      case undefined:
        return error(Code.INVALID_ARGUMENT, "the request sets no message_request");
    }
  }

  private invalidName(field: string, name: string): ReflectionAnswer | undefined {
    if (FULL_NAME.test(name)) return undefined;
    return error(Code.INVALID_ARGUMENT, `${field} "${name}" is not a fully-qualified protobuf name`);
  }

  /** `file` first, then everything it imports, transitively (clients build descriptors from these). */
  private withDependencies(file: DescFile): ReflectionAnswer {
    const dependencies = fileClosure(file.dependencies);
    return {
      case: "fileDescriptorResponse",
      value: { fileDescriptorProto: [file, ...dependencies].map(encoded) },
    };
  }
}

/**
 * gRPC server reflection (v1 and v1alpha, same messages) from the descriptors the
 * generated code embeds, so buf curl and grpcurl need no proto files.
 */
import { type DescFile, type DescMessage, type DescService, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, type ServiceImpl } from "@connectrpc/connect";
import type { ServerReflection as ServerReflectionV1 } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import type { ServerReflection as ServerReflectionV1Alpha } from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";

type ReflectionRequest = {
  host: string;
  messageRequest:
    | { case: "fileByFilename" | "fileContainingSymbol" | "allExtensionNumbersOfType" | "listServices"; value: string }
    | { case: "fileContainingExtension"; value: { containingType: string; extensionNumber: number } }
    | { case: undefined; value?: undefined };
};

/** Index of every file, symbol and extension reachable from the served services. */
export class DescriptorIndex {
  readonly serviceNames: string[];
  private readonly files = new Map<string, DescFile>();
  private readonly fileBySymbol = new Map<string, DescFile>();
  private readonly extensionsByType = new Map<string, Map<number, DescFile>>();

  constructor(services: readonly DescService[]) {
    this.serviceNames = services.map((s) => s.typeName);
    for (const s of services) this.addFile(s.file);
  }

  private addFile(file: DescFile): void {
    if (this.files.has(file.name)) return;
    this.files.set(file.name, file);
    const addMessage = (m: DescMessage) => {
      this.fileBySymbol.set(m.typeName, file);
      for (const f of m.fields) this.fileBySymbol.set(`${m.typeName}.${f.name}`, file);
      for (const o of m.oneofs) this.fileBySymbol.set(`${m.typeName}.${o.name}`, file);
      for (const n of m.nestedMessages) addMessage(n);
      for (const e of m.nestedEnums) this.fileBySymbol.set(e.typeName, file);
      for (const x of m.nestedExtensions) this.addExtension(x.typeName, x.extendee.typeName, x.number, file);
    };
    for (const m of file.messages) addMessage(m);
    for (const e of file.enums) this.fileBySymbol.set(e.typeName, file);
    for (const s of file.services) {
      this.fileBySymbol.set(s.typeName, file);
      for (const m of s.methods) this.fileBySymbol.set(`${s.typeName}.${m.name}`, file);
    }
    for (const x of file.extensions) this.addExtension(x.typeName, x.extendee.typeName, x.number, file);
    for (const dep of file.dependencies) this.addFile(dep);
  }

  private addExtension(name: string, extendee: string, number: number, file: DescFile): void {
    this.fileBySymbol.set(name, file);
    const byNumber = this.extensionsByType.get(extendee) ?? new Map<number, DescFile>();
    byNumber.set(number, file);
    this.extensionsByType.set(extendee, byNumber);
  }

  /** The file and everything it imports, serialized, dependencies after dependents. */
  private withDependencies(file: DescFile): Uint8Array[] {
    const seen = new Set<string>();
    const out: Uint8Array[] = [];
    const visit = (f: DescFile) => {
      if (seen.has(f.name)) return;
      seen.add(f.name);
      out.push(toBinary(FileDescriptorProtoSchema, f.proto));
      for (const d of f.dependencies) visit(d);
    };
    visit(file);
    return out;
  }

  answer(req: ReflectionRequest) {
    const base = { validHost: req.host, originalRequest: req };
    const notFound = (what: string) => ({
      ...base,
      messageResponse: {
        case: "errorResponse" as const,
        value: { errorCode: Code.NotFound, errorMessage: `${what} not found` },
      },
    });
    const files = (file: DescFile | undefined, what: string) =>
      file === undefined
        ? notFound(what)
        : {
            ...base,
            messageResponse: {
              case: "fileDescriptorResponse" as const,
              value: { fileDescriptorProto: this.withDependencies(file) },
            },
          };
    const r = req.messageRequest;
    switch (r.case) {
      case "listServices":
        return {
          ...base,
          messageResponse: {
            case: "listServicesResponse" as const,
            value: { service: this.serviceNames.map((name) => ({ name })) },
          },
        };
      case "fileByFilename":
        return files(this.files.get(r.value), `file ${r.value}`);
      case "fileContainingSymbol":
        return files(this.fileBySymbol.get(r.value), `symbol ${r.value}`);
      case "fileContainingExtension":
        return files(
          this.extensionsByType.get(r.value.containingType)?.get(r.value.extensionNumber),
          `extension ${r.value.containingType}(${r.value.extensionNumber})`,
        );
      case "allExtensionNumbersOfType": {
        const numbers = this.extensionsByType.get(r.value);
        if (numbers === undefined && !this.fileBySymbol.has(r.value)) return notFound(`type ${r.value}`);
        return {
          ...base,
          messageResponse: {
            case: "allExtensionNumbersResponse" as const,
            value: { baseTypeName: r.value, extensionNumber: [...(numbers?.keys() ?? [])] },
          },
        };
      }
      default:
        return {
          ...base,
          messageResponse: {
            case: "errorResponse" as const,
            value: { errorCode: Code.InvalidArgument, errorMessage: "empty reflection request" },
          },
        };
    }
  }
}

type ReflectionImpl = ServiceImpl<typeof ServerReflectionV1> & ServiceImpl<typeof ServerReflectionV1Alpha>;

/** One implementation serves both reflection versions: their messages are identical. */
export function createReflectionImpl(index: DescriptorIndex): ReflectionImpl {
  return {
    async *serverReflectionInfo(requests: AsyncIterable<ReflectionRequest>) {
      for await (const req of requests) yield index.answer(req) as never;
    },
  };
}

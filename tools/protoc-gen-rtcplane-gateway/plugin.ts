/**
 * protoc-gen-rtcplane-gateway: turns every method's google.api.http rule into a route
 * table (`<file>_routes.ts`) that the REST gateway in src/gateway serves, and the same
 * rules into one OpenAPI 3.1 document per API (`openapi/<api>.json`, listed with their
 * titles by `openapi/index.ts`). Templates are parsed and their fields checked here, so a
 * bad mapping fails `buf generate` with a message naming the method instead of failing a
 * request.
 */
import {
  createRegistry,
  type DescExtension,
  type DescField,
  type DescMessage,
  type DescMethod,
  type DescService,
  getOption,
  hasOption,
  type Registry,
} from "@bufbuild/protobuf";
import { createEcmaScriptPlugin, type GeneratedFile, type Schema } from "@bufbuild/protoplugin";
import { type PathTemplate, PathTemplateError, parsePathTemplate } from "../../src/gateway/path-template.js";
import { buildOpenApi, type MappedRoute } from "./openapi.js";

const VERSION = "v0.1.0";

/** The shape of google.api.HttpRule as a dynamic message (we read it without generated code). */
interface HttpRuleShape {
  selector: string;
  pattern:
    | { case: "get" | "put" | "post" | "delete" | "patch"; value: string }
    | {
        case: "custom";
        value: { kind: string; path: string };
      }
    | { case: undefined; value?: undefined };
  body: string;
  responseBody: string;
  additionalBindings: HttpRuleShape[];
}

/** One route as printed into the generated file. */
export interface RouteSpecData {
  verb: string;
  pattern: string;
  template: PathTemplate;
  body: string;
  responseBody: string;
}

/** Raised for a mapping that cannot be served; the message names the method. */
export class MappingError extends Error {}

function lookupExtension(registry: Registry, typeName: string): DescExtension | undefined {
  return registry.getExtension(typeName);
}

function resolveFieldPath(message: DescMessage, path: readonly string[]): DescField | undefined {
  let current: DescMessage | undefined = message;
  let field: DescField | undefined;
  for (const name of path) {
    if (current === undefined) return undefined;
    field = current.fields.find((f) => f.name === name);
    if (field === undefined) return undefined;
    current = field.fieldKind === "message" ? field.message : undefined;
  }
  return field;
}

/** Validates one rule against its method and returns the printable route. */
export function routeFromRule(method: DescMethod, rule: HttpRuleShape): RouteSpecData {
  const where = `${method.parent.typeName}.${method.name}`;
  const fail = (reason: string): never => {
    throw new MappingError(`${method.parent.file.proto.name}: ${where}: ${reason}`);
  };
  let verb: string;
  let pattern: string;
  switch (rule.pattern.case) {
    case "get":
    case "put":
    case "post":
    case "delete":
    case "patch":
      verb = rule.pattern.case.toUpperCase();
      pattern = rule.pattern.value;
      break;
    case "custom":
      verb = rule.pattern.value.kind.toUpperCase();
      pattern = rule.pattern.value.path;
      if (!/^[A-Z]+$/.test(verb)) fail(`custom verb "${rule.pattern.value.kind}" is not an HTTP method`);
      break;
    default:
      return fail("google.api.http rule has no pattern (get, put, post, delete, patch or custom)");
  }
  let template: PathTemplate;
  try {
    template = parsePathTemplate(pattern);
  } catch (e) {
    if (e instanceof PathTemplateError) return fail(e.message);
    throw e;
  }
  if (method.methodKind !== "unary" && method.methodKind !== "server_streaming") {
    fail("only unary and server-streaming methods can have an HTTP mapping");
  }
  for (const v of template.variables) {
    const field = resolveFieldPath(method.input, v.fieldPath);
    const name = v.fieldPath.join(".");
    if (field === undefined) fail(`path variable "${name}" is not a field of ${method.input.typeName}`);
    else if (field.fieldKind !== "scalar" && field.fieldKind !== "enum") {
      fail(`path variable "${name}" must be a singular scalar or enum field`);
    }
  }
  if (rule.body !== "" && rule.body !== "*") {
    const field = method.input.fields.find((f) => f.name === rule.body);
    if (field === undefined) fail(`body "${rule.body}" is not a field of ${method.input.typeName}`);
  }
  if ((verb === "GET" || verb === "DELETE") && rule.body !== "") {
    fail(`${verb} mappings cannot have a body`);
  }
  if (rule.responseBody !== "" && !method.output.fields.some((f) => f.name === rule.responseBody)) {
    fail(`response_body "${rule.responseBody}" is not a field of ${method.output.typeName}`);
  }
  return { verb, pattern, template, body: rule.body, responseBody: rule.responseBody };
}

function dialectOf(registry: Registry, service: DescService): string {
  const ext = lookupExtension(registry, "rtcplane.options.v1.dialect");
  const value = ext !== undefined && hasOption(service, ext) ? (getOption(service, ext) as number) : 0;
  const enumDesc = registry.getEnum("rtcplane.options.v1.Dialect");
  const name = enumDesc?.values.find((v) => v.number === value)?.name ?? "DIALECT_UNSPECIFIED";
  if (name === "DIALECT_UNSPECIFIED") {
    throw new MappingError(
      `${service.file.proto.name}: ${service.typeName} has HTTP mappings but no (rtcplane.options.v1.dialect)`,
    );
  }
  return name.replace(/^DIALECT_/, "").toLowerCase();
}

function successStatusOf(registry: Registry, method: DescMethod): number {
  const ext = lookupExtension(registry, "rtcplane.options.v1.rest");
  if (ext === undefined || !hasOption(method, ext)) return 0;
  const rest = getOption(method, ext) as { successStatus: number };
  const status = rest.successStatus;
  if (status !== 0 && (status < 200 || status > 299)) {
    throw new MappingError(`${method.parent.typeName}.${method.name}: success_status ${status} is not 2xx`);
  }
  return status;
}

function lowerFirst(s: string): string {
  return s.charAt(0).toLowerCase() + s.slice(1);
}

/** A service's mapped methods, each rule and additional binding in order. */
function routesOf(service: DescService, httpExt: DescExtension): { method: DescMethod; route: RouteSpecData }[] {
  const routes: { method: DescMethod; route: RouteSpecData }[] = [];
  for (const method of service.methods) {
    if (!hasOption(method, httpExt)) continue;
    const rule = getOption(method, httpExt) as unknown as HttpRuleShape;
    routes.push({ method, route: routeFromRule(method, rule) });
    for (const extra of rule.additionalBindings) {
      if (extra.additionalBindings.length > 0) {
        throw new MappingError(`${service.typeName}.${method.name}: additional_bindings cannot nest`);
      }
      routes.push({ method, route: routeFromRule(method, extra) });
    }
  }
  return routes;
}

function printService(
  f: GeneratedFile,
  registry: Registry,
  service: DescService,
  httpExt: DescExtension,
): MappedRoute[] {
  const routes = routesOf(service, httpExt);
  const dialect = dialectOf(registry, service);
  const serviceSymbol = f.importSchema(service);
  const mapped: MappedRoute[] = [];
  f.print(`/** REST routes of ${service.typeName}, from its google.api.http rules. */`);
  f.print(`export const ${lowerFirst(service.name)}Routes = [`);
  for (const { method, route } of routes) {
    const successStatus = successStatusOf(registry, method);
    const binding = mapped.filter((m) => m.method === method).length;
    mapped.push({ service, method, dialect, ...route, successStatus, binding });
    f.print("  {");
    f.print("    service: ", serviceSymbol, ",");
    f.print("    method: ", serviceSymbol, ".method.", method.localName, ",");
    f.print(`    dialect: ${JSON.stringify(dialect)},`);
    f.print(`    verb: ${JSON.stringify(route.verb)},`);
    f.print(`    pattern: ${JSON.stringify(route.pattern)},`);
    f.print(`    template: ${JSON.stringify(route.template)},`);
    f.print(`    body: ${JSON.stringify(route.body)},`);
    f.print(`    responseBody: ${JSON.stringify(route.responseBody)},`);
    f.print(`    successStatus: ${successStatus},`);
    f.print("  },");
  }
  f.print("] as const;");
  f.print();
  return mapped;
}

/** `openapi/<api>.json` for each API, and `openapi/index.ts` importing them with their titles. */
function printOpenApi(schema: Schema, registry: Registry, routes: readonly MappedRoute[]): void {
  const documents = buildOpenApi(registry, routes, VERSION);
  if (documents.length === 0) return;
  for (const { name, document } of documents) {
    schema.generateFile(`openapi/${name}.json`).print(`${JSON.stringify(document, null, 2)}`);
  }
  const index = schema.generateFile("openapi/index.ts");
  index.print(`// @generated by protoc-gen-rtcplane-gateway ${VERSION}: the OpenAPI documents of the REST APIs.`);
  index.print();
  documents.forEach(({ name }, i) => {
    index.print(`import document${i} from "./${name}.json" with { type: "json" };`);
  });
  index.print();
  index.print("/** Every API's OpenAPI 3.1 document, by name, in route-table order. */");
  index.print("export const openApiDocuments = [");
  documents.forEach(({ name, title }, i) => {
    index.print(`  { name: ${JSON.stringify(name)}, title: ${JSON.stringify(title)}, document: document${i} },`);
  });
  index.print("] as const;");
}

function generateTs(schema: Schema): void {
  const registry = createRegistry(...schema.allFiles);
  const httpExt = lookupExtension(registry, "google.api.http");
  if (httpExt === undefined) return;
  const routes: MappedRoute[] = [];
  for (const file of schema.files) {
    const mapped = file.services.filter((s) => s.methods.some((m) => hasOption(m, httpExt)));
    if (mapped.length === 0) continue;
    const f = schema.generateFile(`${file.name}_routes.ts`);
    f.preamble(file);
    for (const service of mapped) routes.push(...printService(f, registry, service, httpExt));
  }
  printOpenApi(schema, registry, routes);
}

export const protocGenRtcplaneGateway = createEcmaScriptPlugin({
  name: "protoc-gen-rtcplane-gateway",
  version: VERSION,
  generateTs,
});

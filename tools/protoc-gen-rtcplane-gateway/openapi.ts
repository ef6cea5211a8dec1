/**
 * OpenAPI 3.1 documents from the same google.api.http rules the route tables come from: one
 * document per API (the dialects' `document` in openapi-dialects.ts), with paths and query
 * parameters bound as src/gateway/binder.ts binds them, bodies and answers as the dialect
 * writes them (openapi-schemas.ts), each dialect's error envelope, the proto's credentials
 * as security schemes, and the proto comments as descriptions.
 */
import type { DescField, DescMessage, DescMethod, DescService, Registry } from "@bufbuild/protobuf";
import { getPackageComments } from "@bufbuild/protoplugin";
import type { PathTemplate } from "../../src/gateway/path-template.js";
import { DIALECT_DOCS, type DialectDoc, DOCUMENT_TITLES, type JsonSchema } from "./openapi-dialects.js";
import { commentText, describe, SchemaBuilder, withDescription } from "./openapi-schemas.js";
import { credentialOf, securityOf } from "./openapi-security.js";

/** One mapped route, as the route table prints it. */
export interface MappedRoute {
  readonly service: DescService;
  readonly method: DescMethod;
  readonly dialect: string;
  readonly verb: string;
  readonly template: PathTemplate;
  readonly body: string;
  readonly responseBody: string;
  readonly successStatus: number;
  /** 0 for the rule itself, 1… for its additional bindings. */
  readonly binding: number;
}

export interface ApiDocument {
  readonly name: string;
  readonly title: string;
  readonly document: JsonSchema;
}

const HTTP_METHODS = new Set(["GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE"]);
const HTTP_BODY = "google.api.HttpBody";

/** Raised for a route the documents cannot describe; the message names it. */
export class OpenApiError extends Error {}

function regexEscape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The OpenAPI path of a template, and a pattern for each variable that spans more than one plain segment. */
export function openApiPath(t: PathTemplate): { path: string; patterns: Map<string, string> } {
  const parts: string[] = [];
  const patterns = new Map<string, string>();
  for (let i = 0; i < t.segments.length; ) {
    const v = t.variables.find((x) => x.start === i);
    if (v !== undefined) {
      const name = v.fieldPath.join(".");
      const end = v.end < 0 ? t.segments.length : v.end;
      const covered = t.segments.slice(i, end);
      if (!(covered.length === 1 && covered[0]?.kind === "any")) {
        const pattern = covered
          .map((s) => (s.kind === "literal" ? regexEscape(s.value) : s.kind === "any" ? "[^/]+" : ".+"))
          .join("/");
        patterns.set(name, `^${pattern}$`);
      }
      parts.push(`{${name}}`);
      i = end;
      continue;
    }
    const s = t.segments[i];
    parts.push(s?.kind === "literal" ? s.value : `{segment${i}}`);
    i++;
  }
  return { path: `/${parts.join("/")}${t.verb === undefined ? "" : `:${t.verb}`}`, patterns };
}

function resolveField(m: DescMessage, path: readonly string[]): DescField | undefined {
  let current: DescMessage | undefined = m;
  let field: DescField | undefined;
  for (const name of path) {
    field = current?.fields.find((f) => f.name === name);
    if (field === undefined) return undefined;
    current = field.fieldKind === "message" ? field.message : undefined;
  }
  return field;
}

/** Query parameters for `m`'s fields not bound elsewhere, dotted for nested messages (as the binder reads them). */
function queryParameters(
  b: SchemaBuilder,
  m: DescMessage,
  d: DialectDoc,
  skip: (f: DescField, path: string) => boolean,
  prefix = "",
  seen: ReadonlySet<string> = new Set(),
): JsonSchema[] {
  const out: JsonSchema[] = [];
  for (const f of m.fields) {
    const name = `${prefix}${f.jsonName}`;
    if (skip(f, `${prefix}${f.name}`)) continue;
    let schema: JsonSchema | undefined;
    let explode = false;
    if (f.fieldKind === "scalar" || f.fieldKind === "enum") schema = b.fieldValue(f, "input", d);
    else if (f.fieldKind === "list" && f.listKind !== "message") {
      schema = b.fieldValue(f, "input", d);
      explode = true;
    } else if (f.fieldKind === "message" && f.message.typeName.startsWith("google.protobuf.")) {
      schema = b.fieldValue(f, "input", d);
    } else if (f.fieldKind === "message" && !seen.has(f.message.typeName) && seen.size < 3) {
      const nested = new Set(seen).add(f.message.typeName);
      out.push(...queryParameters(b, f.message, d, () => false, `${name}.`, nested));
    }
    if (schema === undefined) continue;
    out.push({
      name,
      in: "query",
      ...(describe(f) === undefined ? {} : { description: describe(f) }),
      schema,
      ...(explode ? { style: "form", explode: true } : {}),
    });
  }
  return out;
}

/** The first sentence of a comment, for an operation's summary. */
function summaryOf(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const paragraph = text.split("\n\n")[0]?.replace(/\n/g, " ") ?? "";
  const end = paragraph.search(/\.(\s|$)/);
  return end < 0 ? paragraph : paragraph.slice(0, end + 1);
}

class DocumentBuilder {
  readonly schemas: SchemaBuilder;
  readonly paths: Record<string, Record<string, unknown>> = {};
  readonly tags = new Map<string, JsonSchema>();
  readonly securitySchemes: Record<string, JsonSchema> = {};
  readonly errorSchemas: Record<string, JsonSchema> = {};
  readonly responseComponents: Record<string, JsonSchema> = {};
  readonly dialects = new Set<string>();
  readonly files = new Set<DescService["file"]>();
  private readonly operationIds = new Set<string>();

  constructor(
    private readonly registry: Registry,
    private readonly tokenUrl: string | undefined,
  ) {
    this.schemas = new SchemaBuilder(registry);
  }

  add(r: MappedRoute): void {
    const d = DIALECT_DOCS[r.dialect] as DialectDoc;
    this.dialects.add(r.dialect);
    this.files.add(r.service.file);
    if (!this.tags.has(r.service.name)) {
      this.tags.set(r.service.name, withDescription({ name: r.service.name }, describe(r.service)));
    }
    Object.assign(this.errorSchemas, d.error.schemas);
    const { path, patterns } = openApiPath(r.template);
    const operation = this.operation(r, d, patterns);
    const item = this.paths[path] ?? {};
    this.paths[path] = item;
    const verb = r.verb.toLowerCase();
    if (HTTP_METHODS.has(r.verb)) {
      if (item[verb] === undefined) item[verb] = operation;
    } else {
      // OpenAPI 3.1 has no custom methods; 3.2 calls this additionalOperations.
      const extra = (item["x-additionalOperations"] ?? {}) as Record<string, unknown>;
      extra[r.verb] = operation;
      item["x-additionalOperations"] = extra;
    }
  }

  private operation(r: MappedRoute, d: DialectDoc, patterns: Map<string, string>): JsonSchema {
    const { method } = r;
    const where = `${method.parent.typeName}.${method.name}`;
    const parameters: JsonSchema[] = [];
    const bound = new Set<string>();
    for (const v of r.template.variables) {
      const name = v.fieldPath.join(".");
      const field = resolveField(method.input, v.fieldPath);
      if (field === undefined) throw new OpenApiError(`${where}: path variable ${name} is not a field`);
      bound.add(name);
      const pattern = patterns.get(name);
      parameters.push({
        name,
        in: "path",
        required: true,
        ...(describe(field) === undefined ? {} : { description: describe(field) }),
        schema: { ...this.schemas.fieldValue(field, "input", d), ...(pattern === undefined ? {} : { pattern }) },
      });
    }
    if (r.body !== "") bound.add(r.body);
    if (r.body !== "*") {
      parameters.push(
        ...queryParameters(this.schemas, method.input, d, (f, path) => bound.has(f.name) || bound.has(path)),
      );
    }
    const description = describe(method);
    const summary = summaryOf(description);
    const operation: JsonSchema = {
      operationId: `${method.parent.name}_${method.name}${r.binding > 0 ? r.binding + 1 : ""}`,
      ...(summary === undefined ? {} : { summary }),
      ...(description === undefined || description.replace(/\n/g, " ") === summary ? {} : { description }),
      tags: [method.parent.name],
      "x-grpc-method": `/${method.parent.typeName}/${method.name}`,
    };
    if (this.operationIds.has(operation.operationId as string)) {
      throw new OpenApiError(`${where}: operationId ${operation.operationId} is used twice`);
    }
    this.operationIds.add(operation.operationId as string);
    if (parameters.length > 0) operation.parameters = parameters;
    const body = this.requestBody(r, d);
    if (body !== undefined) operation.requestBody = body;
    operation.responses = this.responses(r, d, parameters.length > 0 || body !== undefined);
    operation.security = securityOf(this.registry, r, d, this.securitySchemes, this.tokenUrl);
    return operation;
  }

  private requestBody(r: MappedRoute, d: DialectDoc): JsonSchema | undefined {
    if (r.body === "") return undefined;
    const input = r.method.input;
    let schema: JsonSchema;
    if (r.body === "*") {
      const omit = new Set(r.template.variables.filter((v) => v.fieldPath.length === 1).map((v) => v.fieldPath[0]));
      schema =
        omit.size === 0
          ? this.schemas.message(input, "input", d)
          : this.schemas.object(input, "input", d, omit as Set<string>);
    } else {
      const field = input.fields.find((f) => f.name === r.body) as DescField;
      schema = withDescription(this.schemas.fieldValue(field, "input", d), describe(field));
    }
    const content: Record<string, unknown> = {};
    const form = { "application/x-www-form-urlencoded": { schema } };
    if (d.acceptsForm && r.body === "*" && d.tokenEndpoint) Object.assign(content, form);
    content["application/json"] = { schema };
    if (d.acceptsForm && r.body === "*") Object.assign(content, form);
    return { content };
  }

  private successSchema(r: MappedRoute, d: DialectDoc): { schema: JsonSchema | "bytes"; description: string } {
    const output = r.method.output;
    if (r.responseBody === "") {
      if (output.typeName === HTTP_BODY) return { schema: "bytes", description: "The bytes, with their content type." };
      return { schema: this.schemas.message(output, "output", d), description: describe(output) ?? "OK" };
    }
    const field = output.fields.find((f) => f.name === r.responseBody) as DescField;
    const description = describe(field) ?? describe(output) ?? "OK";
    if (field.fieldKind === "message" && field.message.typeName === HTTP_BODY) return { schema: "bytes", description };
    return { schema: this.schemas.fieldValue(field, "output", d), description };
  }

  private responses(r: MappedRoute, d: DialectDoc, hasInput: boolean): JsonSchema {
    const status = r.successStatus || 200;
    const responses: Record<string, unknown> = {};
    if (status === 204) responses[status] = { description: "Done; no content." };
    else {
      const { schema, description } = this.successSchema(r, d);
      const streaming = r.method.methodKind === "server_streaming";
      responses[status] = {
        description: streaming ? `${description}\n\nOne JSON document per line.` : description,
        content:
          schema === "bytes"
            ? { "*/*": { schema: { type: "string", contentMediaType: "application/octet-stream" } } }
            : { [streaming ? "application/x-ndjson" : "application/json"]: { schema } },
      };
    }
    const error = (code: number | "default", description: string) => {
      const name = `${r.dialect}_${code}`;
      this.responseComponents[name] ??= {
        description,
        content: Object.fromEntries(Object.entries(d.error.content(code)).map(([type, schema]) => [type, { schema }])),
      };
      return { $ref: `#/components/responses/${name}` };
    };
    if (hasInput && d.error.statuses[400] !== undefined) responses[400] = error(400, d.error.statuses[400]);
    const { credential } = credentialOf(this.registry, r.method);
    if (credential !== "none" || d.tokenEndpoint) {
      responses[d.authFailure] = error(d.authFailure, d.error.statuses[d.authFailure] ?? "Not authenticated");
    }
    responses.default = error("default", d.error.description);
    return responses;
  }

  document(name: string, pluginVersion: string): JsonSchema {
    const packages = [...this.files].map((f) => commentText(getPackageComments(f).leading)).filter((s) => !!s);
    const errors = [...this.dialects].map((dl) => (DIALECT_DOCS[dl] as DialectDoc).error.description);
    const versions = [...new Set([...this.files].map((f) => f.proto.package.split(".").pop() ?? ""))];
    const doc: JsonSchema = {
      openapi: "3.1.0",
      info: {
        title: DOCUMENT_TITLES[name] ?? name,
        version: versions.join(", "),
        description: [...new Set(packages), ...errors].join("\n\n"),
        "x-generated-by": `protoc-gen-rtcplane-gateway ${pluginVersion}`,
      },
      servers: [{ url: "/" }],
      tags: [...this.tags.values()],
      paths: this.paths,
    };
    const schemas = { ...this.schemas.finish(doc), ...this.errorSchemas };
    doc.components = {
      schemas: Object.fromEntries(Object.entries(schemas).sort(([a], [b]) => (a < b ? -1 : 1))),
      responses: Object.fromEntries(Object.entries(this.responseComponents).sort(([a], [b]) => (a < b ? -1 : 1))),
      securitySchemes: this.securitySchemes,
    };
    return doc;
  }
}

/** One OpenAPI document per API, in the order their first routes come. */
export function buildOpenApi(registry: Registry, routes: readonly MappedRoute[], pluginVersion: string): ApiDocument[] {
  const byDocument = new Map<string, MappedRoute[]>();
  for (const r of routes) {
    const d = DIALECT_DOCS[r.dialect];
    if (d === undefined) {
      throw new OpenApiError(
        `dialect "${r.dialect}" (${r.service.typeName}) has no description in tools/protoc-gen-rtcplane-gateway/openapi-dialects.ts`,
      );
    }
    const list = byDocument.get(d.document) ?? [];
    list.push(r);
    byDocument.set(d.document, list);
  }
  return [...byDocument].map(([name, unsorted]) => {
    // The service with the most routes leads its document (the conference API before its calls).
    const count = (s: DescService) => unsorted.filter((r) => r.service === s).length;
    const list = [...unsorted].sort((a, b) => count(b.service) - count(a.service));
    const token = list.find((r) => DIALECT_DOCS[r.dialect]?.tokenEndpoint);
    const builder = new DocumentBuilder(registry, token === undefined ? undefined : openApiPath(token.template).path);
    for (const r of list) builder.add(r);
    return { name, title: DOCUMENT_TITLES[name] ?? name, document: builder.document(name, pluginVersion) };
  });
}

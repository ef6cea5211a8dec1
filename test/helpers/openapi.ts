/**
 * The generated OpenAPI documents as JSON Schema validators (ajv, 2020-12 dialect), for
 * tests that check real requests and answers against them. Object schemas that list their
 * properties are made closed here (`additionalProperties: false` unless they say otherwise),
 * so an answer with a field the document does not mention fails too; the documents
 * themselves stay open, as clients should read them.
 */
import { Ajv2020, type ValidateFunction } from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { openApiDocuments } from "../../gen/openapi/index.js";

export type Json = { [key: string]: unknown };

export interface ApiDoc {
  readonly name: string;
  readonly title: string;
  readonly document: Json;
}

export const apiDocs: readonly ApiDoc[] = openApiDocuments.map(({ name, title, document }) => ({
  name,
  title,
  document: document as unknown as Json,
}));

const SCHEMA_MAPS = new Set(["properties", "$defs", "patternProperties", "dependentSchemas"]);
const LITERALS = new Set(["enum", "const", "required", "default", "examples"]);

/** A deep copy of a schema with local component references made absolute and objects closed. */
function prepare(node: unknown, base: string, close: boolean): unknown {
  if (Array.isArray(node)) return node.map((n) => prepare(n, base, close));
  if (node === null || typeof node !== "object") return node;
  const out: Json = {};
  for (const [key, value] of Object.entries(node as Json)) {
    if (key === "$ref" && typeof value === "string" && value.startsWith("#/components/schemas/")) {
      out[key] = `${base}#/$defs/${value.slice("#/components/schemas/".length)}`;
    } else if (SCHEMA_MAPS.has(key)) out[key] = prepareAll(value as Json, base, close);
    else if (LITERALS.has(key)) out[key] = value;
    else out[key] = prepare(value, base, close);
  }
  if (close && out.properties !== undefined && out.additionalProperties === undefined) {
    out.additionalProperties = false;
  }
  return out;
}

function prepareAll(schemas: Json, base: string, close: boolean): Json {
  return Object.fromEntries(Object.entries(schemas).map(([k, v]) => [k, prepare(v, base, close)]));
}

export class OpenApiSchemas {
  readonly ajv = new Ajv2020({ strict: true, strictTypes: false, allErrors: true });
  private readonly cache = new Map<string, ValidateFunction>();

  constructor(
    docs: readonly ApiDoc[] = apiDocs,
    private readonly closed = true,
  ) {
    addFormats.default(this.ajv);
    for (const { name, document } of docs) {
      const components = (document.components ?? {}) as Json;
      const base = `urn:rtcplane:openapi:${name}`;
      this.ajv.addSchema({ $id: base, $defs: prepareAll((components.schemas ?? {}) as Json, base, closed) });
    }
  }

  /** A validator for a schema inside document `name` (e.g. a response's content schema). */
  validator(name: string, schema: unknown): ValidateFunction {
    const key = `${name}\u0000${JSON.stringify(schema)}`;
    let fn = this.cache.get(key);
    if (fn === undefined) {
      fn = this.ajv.compile(prepare(schema, `urn:rtcplane:openapi:${name}`, this.closed) as Json);
      this.cache.set(key, fn);
    }
    return fn;
  }
}

/** Follows a local `$ref` (responses, request bodies) inside a document. */
export function deref(document: Json, value: unknown): Json | undefined {
  let node = value as Json;
  for (let i = 0; i < 10 && typeof node?.$ref === "string"; i++) {
    const pointer = (node.$ref as string).replace(/^#\//, "").split("/");
    node = pointer.reduce<unknown>(
      (n, k) => (n as Json)?.[k.replace(/~1/g, "/").replace(/~0/g, "~")],
      document,
    ) as Json;
  }
  return node;
}

export interface DocumentedOperation {
  readonly doc: ApiDoc;
  readonly path: string;
  readonly method: string;
  readonly operation: Json;
}

const METHODS = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];

/** Every operation of every document. */
export function operations(docs: readonly ApiDoc[] = apiDocs): DocumentedOperation[] {
  const out: DocumentedOperation[] = [];
  for (const doc of docs) {
    for (const [path, item] of Object.entries(doc.document.paths as Record<string, Json>)) {
      for (const method of METHODS) {
        const operation = item[method] as Json | undefined;
        if (operation !== undefined) out.push({ doc, path, method, operation });
      }
      for (const [verb, operation] of Object.entries((item["x-additionalOperations"] ?? {}) as Record<string, Json>)) {
        out.push({ doc, path, method: verb.toLowerCase(), operation });
      }
    }
  }
  return out;
}

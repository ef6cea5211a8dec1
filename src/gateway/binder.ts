/**
 * Builds an RPC request message from a REST call, in google.api.http order: the body
 * (whole message for `body: "*"`, or one field), then path variables, then — for fields
 * bound by neither — query parameters (repeated keys, dotted `a.b` paths, and booleans
 * that are true when present without a value, like `?expandApps`).
 */
import {
  type DescField,
  type DescMessage,
  fromJson,
  type JsonReadOptions,
  type Message,
  ScalarType,
} from "@bufbuild/protobuf";
import { invalidArgument, Reason, withReason } from "../errors.js";
import { hasLegacyJson, wrapMessage } from "./json-shape.js";
import type { PathBindings } from "./path-template.js";

type JsonObject = { [key: string]: unknown };

export interface BindInput {
  readonly schema: DescMessage;
  /** `*`, a top-level field name, or "" when the route takes no body. */
  readonly bodyField: string;
  readonly pathBindings: PathBindings;
  /** The parsed JSON body, or undefined when the request had none. */
  readonly body: unknown;
  readonly query: URLSearchParams;
  readonly jsonRead: Partial<JsonReadOptions>;
  /** The query holds a form body (`body: "*"`): bind it as the whole message's fields. */
  readonly formBody?: boolean;
}

function findField(message: DescMessage, name: string): DescField | undefined {
  return message.fields.find((f) => f.name === name || f.jsonName === name);
}

/** A URL parameter that cannot be read as its field's type. */
function badParameter(parameter: string, problem: string) {
  return withReason("invalid_argument", `${parameter}: ${problem}`, Reason.InvalidParameter, { parameter });
}

const INTEGER = /^-?\d+$/;
const NUMBER = /^-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/;

/** Converts one text value to the JSON value proto3 JSON expects for the field. */
function scalarFromText(field: DescField, text: string, where: string): unknown {
  const kind = field.fieldKind === "list" ? field.listKind : field.fieldKind;
  if (kind === "enum") return INTEGER.test(text) ? Number(text) : text;
  if (kind === "message") return text; // Timestamp, Duration, wrappers: their JSON is a string
  if (kind !== "scalar") throw badParameter(where, "cannot be set from the URL");
  switch ((field as { scalar?: ScalarType }).scalar) {
    case ScalarType.BOOL:
      if (text === "" || text === "true" || text === "1") return true;
      if (text === "false" || text === "0") return false;
      throw badParameter(where, `${JSON.stringify(text)} is not a boolean`);
    case ScalarType.STRING:
    case ScalarType.BYTES:
      return text;
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      if (!NUMBER.test(text)) throw badParameter(where, `${JSON.stringify(text)} is not a number`);
      return Number(text);
    default:
      if (!INTEGER.test(text)) throw badParameter(where, `${JSON.stringify(text)} is not an integer`);
      return text; // 64-bit safe: proto3 JSON accepts integers as strings
  }
}

/** Sets `path` (field names) in `target` to text values converted for the leaf field. */
function setFromText(
  target: JsonObject,
  schema: DescMessage,
  path: readonly string[],
  values: string[],
  where: string,
) {
  let obj = target;
  let message = schema;
  for (let k = 0; k < path.length; k++) {
    const field = findField(message, path[k] as string);
    if (field === undefined) return false;
    if (k === path.length - 1) {
      if (field.fieldKind === "list") {
        const list = values.map((v) => scalarFromText(field, v, where));
        obj[field.jsonName] = list;
      } else if (field.fieldKind === "map") {
        throw badParameter(where, "map fields cannot be set from the URL");
      } else {
        if (values.length > 1) throw badParameter(where, `given ${values.length} times but takes one value`);
        obj[field.jsonName] = scalarFromText(field, values[0] ?? "", where);
      }
      return true;
    }
    if (field.fieldKind !== "message") return false;
    const next = obj[field.jsonName];
    const child: JsonObject =
      next !== null && typeof next === "object" && !Array.isArray(next) ? (next as JsonObject) : {};
    obj[field.jsonName] = child;
    obj = child;
    message = field.message;
  }
  return false;
}

function isObject(value: unknown): value is JsonObject {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** Returns the bound request message or throws INVALID_ARGUMENT naming the bad field. */
export function bindRequest(input: BindInput): Message {
  const { schema, bodyField } = input;
  let json: JsonObject = {};
  const bound = new Set<string>();
  if (bodyField === "*") {
    if (input.body !== undefined) {
      if (!isObject(input.body)) throw invalidArgument("request body must be a JSON object");
      json = { ...input.body };
    }
  } else if (bodyField !== "") {
    const field = findField(schema, bodyField);
    if (field !== undefined && input.body !== undefined) json[field.jsonName] = input.body;
    bound.add(bodyField);
  }
  for (const [fieldPath, value] of input.pathBindings) {
    const path = fieldPath.split(".");
    setFromText(json, schema, path, [value], fieldPath);
    bound.add(fieldPath);
  }
  if (bodyField !== "*" || input.formBody) {
    const keys = new Set(input.query.keys());
    for (const key of keys) {
      const path = key.split(".");
      // Query parameters never override what the path or body bound.
      const topField = findField(schema, path[0] as string);
      if (topField === undefined || bound.has(topField.name) || bound.has(key)) continue;
      // Unknown parameters (cache busters and the like) are ignored, as legacy servers did.
      setFromText(json, schema, path, input.query.getAll(key), key);
    }
  }
  try {
    const shaped = hasLegacyJson(schema) ? wrapMessage(schema, json) : json;
    return fromJson(schema, shaped as never, input.jsonRead);
  } catch (e) {
    throw invalidArgument(describeJsonError(e, schema));
  }
}

/** Shortens protobuf-es's message to name the field without the package path. */
function describeJsonError(e: unknown, schema: DescMessage): string {
  const message = e instanceof Error ? e.message : String(e);
  return message.replaceAll(`${schema.typeName}.`, "");
}

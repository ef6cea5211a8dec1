/**
 * Schema-driven JSON adjustments that proto3 JSON cannot express but legacy APIs need:
 * messages marked `(rtcplane.options.v1.json_inline)` are written and read as the JSON of
 * their one field (a list or map with presence); messages marked `json_scalar_input` are
 * also read from the bare value of their one scalar field; and, when a dialect asks,
 * 64-bit integers are written as JSON numbers instead of strings.
 */
import { type DescField, type DescMessage, getOption, ScalarType } from "@bufbuild/protobuf";
import { json_inline, json_scalar_input } from "../../gen/rtcplane/options/v1/options_pb.js";

type Json = unknown;
type JsonObject = { [key: string]: Json };

const inlineCache = new WeakMap<DescMessage, DescField | null>();
const scalarInputCache = new WeakMap<DescMessage, DescField | null>();

/** The one scalar field a message may be read from as a bare value, if it says so. */
function scalarInputField(message: DescMessage): DescField | undefined {
  let cached = scalarInputCache.get(message);
  if (cached === undefined) {
    const only = message.fields.length === 1 ? message.fields[0] : undefined;
    cached = getOption(message, json_scalar_input) && only?.fieldKind === "scalar" ? only : null;
    scalarInputCache.set(message, cached);
  }
  return cached ?? undefined;
}

/** The single field of an inline wrapper message, or undefined for ordinary messages. */
export function inlineField(message: DescMessage): DescField | undefined {
  let cached = inlineCache.get(message);
  if (cached === undefined) {
    cached = getOption(message, json_inline) && message.fields.length === 1 ? (message.fields[0] ?? null) : null;
    inlineCache.set(message, cached);
  }
  return cached ?? undefined;
}

const INT64 = new Set([
  ScalarType.INT64,
  ScalarType.UINT64,
  ScalarType.SINT64,
  ScalarType.FIXED64,
  ScalarType.SFIXED64,
]);

function isObject(value: Json): value is JsonObject {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

export interface OutputShape {
  readonly int64AsNumber: boolean;
}

function shapeValue(field: DescField, value: Json, shape: OutputShape): Json {
  switch (field.fieldKind) {
    case "message":
      return shapeMessage(field.message, value, shape);
    case "list":
      if (!Array.isArray(value)) return value;
      if (field.listKind === "message") return value.map((v) => shapeMessage(field.message, v, shape));
      if (field.listKind === "scalar" && shape.int64AsNumber && INT64.has(field.scalar)) return value.map(Number);
      return value;
    case "map":
      if (!isObject(value)) return value;
      if (field.mapKind === "message") {
        const message = field.message;
        return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, shapeMessage(message, v, shape)]));
      }
      if (field.mapKind === "scalar" && shape.int64AsNumber && INT64.has(field.scalar)) {
        return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, Number(v)]));
      }
      return value;
    case "scalar":
      return shape.int64AsNumber && INT64.has(field.scalar) && typeof value === "string" ? Number(value) : value;
    default:
      return value;
  }
}

/** Applies inline wrappers and number printing to the toJson output of `message`. */
export function shapeMessage(message: DescMessage, json: Json, shape: OutputShape): Json {
  const inline = inlineField(message);
  if (inline !== undefined) {
    const inner = isObject(json) ? (json[inline.jsonName] ?? json[inline.name]) : undefined;
    const empty = inline.fieldKind === "list" ? [] : inline.fieldKind === "map" ? {} : null;
    return inner === undefined ? empty : shapeValue(inline, inner, shape);
  }
  if (!isObject(json)) return json;
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(json)) {
    const field = message.fields.find((f) => f.jsonName === key || f.name === key);
    out[key] = field === undefined ? value : shapeValue(field, value, shape);
  }
  return out;
}

function wrapValue(field: DescField, value: Json): Json {
  if (field.fieldKind === "message") return wrapMessage(field.message, value);
  if (field.fieldKind === "list" && field.listKind === "message" && Array.isArray(value)) {
    const message = field.message;
    return value.map((v) => wrapMessage(message, v));
  }
  if (field.fieldKind === "map" && field.mapKind === "message" && isObject(value)) {
    const message = field.message;
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, wrapMessage(message, v)]));
  }
  return value;
}

/**
 * The inverse for requests: puts the bare JSON of inline wrappers, and bare values of
 * scalar-input messages, back under their field.
 */
export function wrapMessage(message: DescMessage, json: Json): Json {
  const inline = inlineField(message);
  if (inline !== undefined) return json === null ? null : { [inline.jsonName]: wrapValue(inline, json) };
  const scalar = scalarInputField(message);
  if (scalar !== undefined && (typeof json === "string" || typeof json === "number" || typeof json === "boolean")) {
    return { [scalar.jsonName]: json };
  }
  if (!isObject(json)) return json;
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(json)) {
    const field = message.fields.find((f) => f.jsonName === key || f.name === key);
    out[key] = field === undefined ? value : wrapValue(field, value);
  }
  return out;
}

const containsCache = new WeakMap<DescMessage, boolean>();

/**
 * Whether `message` or anything it holds reads or writes legacy JSON differently from proto3
 * JSON (an inline wrapper or a scalar-input message), so that shaping can be skipped otherwise.
 */
export function hasLegacyJson(message: DescMessage, visiting = new Set<DescMessage>()): boolean {
  const cached = containsCache.get(message);
  if (cached !== undefined) return cached;
  if (visiting.has(message)) return false;
  visiting.add(message);
  let found = inlineField(message) !== undefined || scalarInputField(message) !== undefined;
  for (const field of message.fields) {
    if (found) break;
    const child =
      field.fieldKind === "message"
        ? field.message
        : (field.fieldKind === "list" && field.listKind === "message") ||
            (field.fieldKind === "map" && field.mapKind === "message")
          ? field.message
          : undefined;
    if (child !== undefined) found = hasLegacyJson(child, visiting);
  }
  visiting.delete(message);
  if (visiting.size === 0 || found) containsCache.set(message, found);
  return found;
}

/**
 * JSON Schemas of messages as the REST gateway writes (output) and reads (input) them in a
 * dialect: proto3 JSON with the dialect's field names and 64-bit number printing, every
 * implicit field present in output (`alwaysEmitImplicit`), `json_inline` wrappers as their
 * bare list or map, `json_scalar_input` messages also readable from the bare value, and the
 * legacy events as their flat JSON. Message schemas become components; references carry a
 * placeholder until `finish()` names the components (so a message that is read and written
 * in different shapes gets `Name` and `NameInput`).
 */
import {
  type AnyDesc,
  type DescEnum,
  type DescField,
  type DescMessage,
  getOption,
  hasOption,
  type Registry,
  ScalarType,
} from "@bufbuild/protobuf";
import { getComments } from "@bufbuild/protoplugin";
import type { DialectDoc, JsonSchema } from "./openapi-dialects.js";
import { legacyEventSchema } from "./openapi-legacy.js";

export type Form = "output" | "input" | "legacy";

const REF_MARK = "\u0000";

/** A proto comment as a description: leading comment, one leading space per line dropped. */
export function describe(desc: Exclude<AnyDesc, { kind: "file" }>): string | undefined {
  return commentText(getComments(desc).leading);
}

/** A comment's text without the space after each `//`. */
export function commentText(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const lines = text.replace(/\n$/, "").split("\n");
  const out = lines
    .map((l) => (l.startsWith(" ") ? l.slice(1) : l).trimEnd())
    .join("\n")
    .trim();
  return out === "" ? undefined : out;
}

/** Adds `description` when there is one. */
export function withDescription(schema: JsonSchema, description: string | undefined): JsonSchema {
  if (description === undefined) return schema;
  const { description: _replaced, ...rest } = schema;
  return { description, ...rest };
}

const INT32 = new Set([ScalarType.INT32, ScalarType.SINT32, ScalarType.SFIXED32]);
const UINT32 = new Set([ScalarType.UINT32, ScalarType.FIXED32]);
const INT64 = new Set([ScalarType.INT64, ScalarType.SINT64, ScalarType.SFIXED64]);
const UINT64 = new Set([ScalarType.UINT64, ScalarType.FIXED64]);

/** A scalar as proto3 JSON writes it (input: also what it reads, e.g. 64-bit integers as strings). */
export function scalarSchema(scalar: ScalarType, form: Form, d: DialectDoc): JsonSchema {
  if (scalar === ScalarType.STRING) return { type: "string" };
  if (scalar === ScalarType.BOOL) return { type: "boolean" };
  if (scalar === ScalarType.BYTES) return { type: "string", contentEncoding: "base64" };
  if (scalar === ScalarType.DOUBLE) return { type: "number", format: "double" };
  if (scalar === ScalarType.FLOAT) return { type: "number", format: "float" };
  if (INT32.has(scalar)) return { type: "integer", format: "int32" };
  if (UINT32.has(scalar)) return { type: "integer", minimum: 0, maximum: 4294967295 };
  const unsigned = UINT64.has(scalar);
  if (!INT64.has(scalar) && !unsigned) return {};
  if (form === "input") return { type: ["integer", "string"], format: "int64", pattern: "^-?[0-9]+$" };
  if (d.int64AsNumber) return unsigned ? { type: "integer", minimum: 0 } : { type: "integer", format: "int64" };
  return { type: "string", pattern: unsigned ? "^[0-9]+$" : "^-?[0-9]+$", description: "A 64-bit integer." };
}

function enumSchema(e: DescEnum): JsonSchema {
  if (e.typeName === "google.protobuf.NullValue") return { type: "null" };
  return withDescription({ type: "string", enum: e.values.map((v) => v.name) }, describe(e));
}

/** Well-known types have their own JSON; undefined for any other message. */
function wellKnown(m: DescMessage, form: Form, d: DialectDoc): JsonSchema | undefined {
  switch (m.typeName) {
    case "google.protobuf.Timestamp":
      return { type: "string", format: "date-time" };
    case "google.protobuf.Duration":
      return { type: "string", pattern: "^-?[0-9]+(\\.[0-9]{1,9})?s$", description: 'Seconds, e.g. "1.5s".' };
    case "google.protobuf.Struct":
      return { type: "object", description: "Any JSON object." };
    case "google.protobuf.Value":
      return { description: "Any JSON value." };
    case "google.protobuf.ListValue":
      return { type: "array", items: {} };
    case "google.protobuf.Empty":
      return { type: "object", maxProperties: 0 };
    case "google.protobuf.FieldMask":
      return { type: "string", description: "Comma-separated lowerCamelCase field paths." };
    case "google.protobuf.Any":
      return { type: "object", required: ["@type"], properties: { "@type": { type: "string" } } };
    case "google.protobuf.DoubleValue":
    case "google.protobuf.FloatValue":
    case "google.protobuf.Int64Value":
    case "google.protobuf.UInt64Value":
    case "google.protobuf.Int32Value":
    case "google.protobuf.UInt32Value":
    case "google.protobuf.BoolValue":
    case "google.protobuf.StringValue":
    case "google.protobuf.BytesValue": {
      const value = m.fields[0];
      return value?.fieldKind === "scalar" ? scalarSchema(value.scalar, form, d) : {};
    }
  }
  return undefined;
}

function isExtensionSet(registry: Registry, m: DescMessage, name: string): boolean {
  const ext = registry.getExtension(name);
  return ext !== undefined && hasOption(m, ext) && getOption(m, ext) === true;
}

interface Component {
  readonly message: DescMessage;
  readonly form: Form;
  readonly shape: string;
  schema: JsonSchema;
}

export class SchemaBuilder {
  private readonly components = new Map<string, Component>();

  constructor(private readonly registry: Registry) {}

  /** The one field of a `json_inline` wrapper, if `m` is one. */
  inlineField(m: DescMessage): DescField | undefined {
    return m.fields.length === 1 && isExtensionSet(this.registry, m, "rtcplane.options.v1.json_inline")
      ? m.fields[0]
      : undefined;
  }

  private scalarInputField(m: DescMessage): DescField | undefined {
    const only = m.fields.length === 1 ? m.fields[0] : undefined;
    return only?.fieldKind === "scalar" && isExtensionSet(this.registry, m, "rtcplane.options.v1.json_scalar_input")
      ? only
      : undefined;
  }

  /** A field's name as the dialect writes it. */
  fieldName(f: DescField, d: DialectDoc): string {
    return d.fieldNames === "proto" ? f.name : f.jsonName;
  }

  /** The schema of a message value: a well-known type, an inline wrapper, or a component reference. */
  message(m: DescMessage, form: Form, d: DialectDoc): JsonSchema {
    const known = wellKnown(m, form, d);
    if (known !== undefined) return known;
    const inline = this.inlineField(m);
    if (inline !== undefined) return withDescription(this.fieldValue(inline, form, d), describe(m));
    if (form === "output" && d.legacyMessages.includes(m.typeName)) form = "legacy";
    const ref = { $ref: this.component(m, form, d) };
    const scalar = form === "input" ? this.scalarInputField(m) : undefined;
    if (scalar === undefined) return ref;
    const bare = scalar.fieldKind === "scalar" ? scalarSchema(scalar.scalar, form, d) : {};
    return { anyOf: [bare, ref], description: "The object, or its bare value." };
  }

  /** An object schema of `m`'s fields, without `omit` (fields the path binds). */
  object(m: DescMessage, form: Form, d: DialectDoc, omit: ReadonlySet<string> = new Set()): JsonSchema {
    const properties: JsonSchema = {};
    const required: string[] = [];
    for (const f of m.fields) {
      if (omit.has(f.name)) continue;
      const name = this.fieldName(f, d);
      properties[name] = withDescription(this.fieldValue(f, form, d), describe(f));
      // alwaysEmitImplicit: lists, maps and implicit-presence scalars are always written.
      const implicit =
        f.fieldKind === "list" ||
        f.fieldKind === "map" ||
        ((f.fieldKind === "scalar" || f.fieldKind === "enum") && f.presence === 2 && f.oneof === undefined);
      if (form === "output" && implicit) required.push(name);
    }
    const oneofs = m.oneofs.filter((o) => !o.fields.some((f) => f.proto.proto3Optional));
    const note = oneofs.map((o) => `At most one of ${o.fields.map((f) => this.fieldName(f, d)).join(", ")}.`);
    const description = [describe(m), ...note].filter((s) => s !== undefined).join("\n\n");
    const closed = form === "input" && d.rejectsUnknownFields ? { additionalProperties: false } : {};
    return withDescription(
      { type: "object", ...(required.length > 0 ? { required } : {}), properties, ...closed },
      description === "" ? undefined : description,
    );
  }

  /** The schema of one field's value (the whole list or map for repeated and map fields). */
  fieldValue(f: DescField, form: Form, d: DialectDoc): JsonSchema {
    switch (f.fieldKind) {
      case "scalar":
        return scalarSchema(f.scalar, form, d);
      case "enum":
        return enumSchema(f.enum);
      case "message":
        return this.message(f.message, form, d);
      case "list": {
        const items =
          f.listKind === "scalar"
            ? scalarSchema(f.scalar, form, d)
            : f.listKind === "enum"
              ? enumSchema(f.enum)
              : this.message(f.message, form, d);
        return { type: "array", items };
      }
      case "map": {
        const value =
          f.mapKind === "scalar"
            ? scalarSchema(f.scalar, form, d)
            : f.mapKind === "enum"
              ? enumSchema(f.enum)
              : this.message(f.message, form, d);
        const keys =
          f.mapKey === ScalarType.STRING
            ? {}
            : f.mapKey === ScalarType.BOOL
              ? { propertyNames: { enum: ["true", "false"] } }
              : { propertyNames: { pattern: "^-?[0-9]+$" } };
        return { type: "object", ...keys, additionalProperties: value };
      }
    }
  }

  /** Registers (once) and returns a placeholder reference to `m`'s component in `form`. */
  private component(m: DescMessage, form: Form, d: DialectDoc): string {
    const shape = `${d.fieldNames}/${d.int64AsNumber}`;
    const key = `${m.typeName}|${form}|${shape}`;
    if (!this.components.has(key)) {
      const component: Component = { message: m, form, shape, schema: {} };
      this.components.set(key, component);
      component.schema =
        form === "legacy"
          ? legacyEventSchema(m, (f) => this.fieldValue(f, "output", d), describe)
          : this.object(m, form, d);
    }
    return REF_MARK + key;
  }

  /**
   * Names the components (short message names; the full name where two messages share one;
   * `Input`/`Legacy` after the name when a message appears in more than one form) and
   * rewrites every placeholder reference in `doc`. Returns the components, sorted by name.
   */
  finish(doc: unknown): Record<string, JsonSchema> {
    const shortCount = new Map<string, Set<string>>();
    for (const c of this.components.values()) {
      const set = shortCount.get(c.message.name) ?? new Set<string>();
      set.add(c.message.typeName);
      shortCount.set(c.message.name, set);
    }
    const names = new Map<string, string>();
    const taken = new Set<string>();
    const order: Form[] = ["output", "legacy", "input"];
    const keys = [...this.components.keys()].sort((a, b) => {
      const [ta, fa] = a.split("|") as [string, Form];
      const [tb, fb] = b.split("|") as [string, Form];
      return ta === tb ? order.indexOf(fa) - order.indexOf(fb) : ta < tb ? -1 : 1;
    });
    for (const key of keys) {
      const c = this.components.get(key) as Component;
      const base = (shortCount.get(c.message.name)?.size ?? 0) > 1 ? c.message.typeName : c.message.name;
      const suffix = c.form === "input" ? "Input" : c.form === "legacy" ? "Legacy" : "";
      let name = taken.has(base) ? `${base}${suffix}` : base;
      for (let i = 2; taken.has(name); i++) name = `${base}${suffix}${i}`;
      taken.add(name);
      names.set(key, name);
    }
    const rewrite = (node: unknown): void => {
      if (Array.isArray(node)) node.forEach(rewrite);
      else if (node !== null && typeof node === "object") {
        const obj = node as Record<string, unknown>;
        const ref = obj.$ref;
        if (typeof ref === "string" && ref.startsWith(REF_MARK)) {
          obj.$ref = `#/components/schemas/${names.get(ref.slice(1))}`;
        }
        for (const value of Object.values(obj)) rewrite(value);
      }
    };
    const schemas: Record<string, JsonSchema> = {};
    for (const [key, name] of [...names].sort((a, b) => (a[1] < b[1] ? -1 : 1))) {
      schemas[name] = (this.components.get(key) as Component).schema;
    }
    rewrite(doc);
    rewrite(schemas);
    return schemas;
  }
}

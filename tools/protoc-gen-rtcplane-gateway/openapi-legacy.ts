/**
 * The legacy JSON of typed events (src/events/legacy-json.ts renders it): one flat object of
 * `type` (the payload message's name), the envelope's fields, and the payload's own fields
 * beside them — versions as numbers, timestamps as ISO strings with milliseconds, an unset
 * optional value as null. A custom event is the app's own JSON over the envelope. Call
 * events add their aggregate (`aggregate: "Call"`, `aggregateId`, `aggregateVersion`).
 */
import type { DescField, DescMessage } from "@bufbuild/protobuf";
import type { JsonSchema } from "./openapi-dialects.js";

type FieldSchema = (f: DescField) => JsonSchema;
type Describe = (desc: DescMessage | DescField) => string | undefined;

function withDescription(schema: JsonSchema, description: string | undefined): JsonSchema {
  if (description === undefined) return schema;
  const { description: _replaced, ...rest } = schema;
  return { description, ...rest };
}

/** A field's value in the legacy form (numbers as numbers; an unset optional value as null). */
function legacyValue(f: DescField, fieldSchema: FieldSchema, nullable: boolean): JsonSchema {
  const schema = fieldSchema(f);
  if (nullable && f.fieldKind === "scalar" && f.proto.proto3Optional) {
    const type = schema.type;
    return { ...schema, type: [type, "null"] };
  }
  return schema;
}

/** The schema of a typed event message's legacy JSON: one variant per payload case. */
export function legacyEventSchema(m: DescMessage, fieldSchema: FieldSchema, describe: Describe): JsonSchema {
  const payload = m.oneofs.find((o) => o.name === "payload");
  const envelope: JsonSchema = {};
  const envelopeRequired: string[] = ["type"];
  for (const f of m.fields) {
    if (f.oneof !== undefined) continue;
    envelope[f.jsonName] = withDescription(legacyValue(f, fieldSchema, false), describe(f));
    // An absent optional envelope field (conferenceVersion of an observation) is left out.
    if (!f.proto.proto3Optional) envelopeRequired.push(f.jsonName);
  }
  if (m.fields.some((f) => f.name === "aggregate_version")) {
    envelope.aggregate = { const: "Call" };
    envelope.aggregateId = { type: "string", description: "The call id again." };
    envelopeRequired.push("aggregate", "aggregateId");
  }
  const members = (payload?.fields ?? []).flatMap((f) => (f.fieldKind === "message" ? [f.message] : []));
  const reserved = members.filter((p) => p.name !== "CustomEvent").map((p) => p.name);
  const variants = members.map((p): JsonSchema => {
    if (p.name === "CustomEvent") {
      const type = {
        type: "string",
        pattern: "^[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)+Event$",
        not: { enum: reserved },
        description: "The app's own type; the server's own event names are reserved to its events.",
      };
      return withDescription(
        {
          title: p.name,
          type: "object",
          required: envelopeRequired,
          properties: { type, ...envelope },
          additionalProperties: true,
        },
        describe(p),
      );
    }
    const own: JsonSchema = {};
    const required = [...envelopeRequired];
    for (const f of p.fields) {
      own[f.jsonName] = withDescription(legacyValue(f, fieldSchema, true), describe(f));
      // Maps are left out when empty (a call's sipHeaders).
      if (f.fieldKind !== "map") required.push(f.jsonName);
    }
    return withDescription(
      {
        title: p.name,
        type: "object",
        required,
        properties: { type: { const: p.name }, ...envelope, ...own },
      },
      describe(p),
    );
  });
  return withDescription(
    { type: "object", anyOf: variants },
    [describe(m), "Written as its legacy flat JSON: `type` names the payload, whose fields sit beside the envelope's."]
      .filter((s) => s !== undefined)
      .join("\n\n"),
  );
}

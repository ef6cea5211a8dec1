/**
 * The generated OpenAPI documents (gen/openapi, from protoc-gen-rtcplane-gateway): each is a
 * valid OpenAPI 3.1 document whose schemas compile, together they describe every REST route
 * exactly once, and the plugin's table of dialects says what the real dialects do.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Validator } from "@seriousme/openapi-schema-validator";
import { dialects, restRoutes } from "../../src/routes.js";
import { openApiPath } from "../../tools/protoc-gen-rtcplane-gateway/openapi.js";
import { DIALECT_DOCS } from "../../tools/protoc-gen-rtcplane-gateway/openapi-dialects.js";
import { apiDocs, deref, type Json, OpenApiSchemas, operations } from "../helpers/openapi.js";

describe("OpenAPI documents", () => {
  for (const { name, document } of apiDocs) {
    it(`${name}.json is a valid OpenAPI 3.1 document`, async () => {
      const validator = new Validator();
      const result = await validator.validate(structuredClone(document));
      assert.equal(result.valid, true, JSON.stringify(result.errors, null, 1));
      assert.equal(validator.version, "3.1");
    });
  }

  it("compiles every schema and error response with ajv (2020-12, strict)", () => {
    const schemas = new OpenApiSchemas();
    let compiled = 0;
    for (const { doc, operation } of operations()) {
      for (const response of Object.values(operation.responses as Json)) {
        for (const media of Object.values((deref(doc.document, response)?.content ?? {}) as Json)) {
          schemas.validator(doc.name, (media as Json).schema);
          compiled++;
        }
      }
      const body = operation.requestBody as Json | undefined;
      for (const media of Object.values((body?.content ?? {}) as Json))
        schemas.validator(doc.name, (media as Json).schema);
    }
    assert.ok(compiled > 100, `${compiled} response schemas`);
  });

  it("validates answers strictly: a missing field, an extra field or a wrong type fails", () => {
    const schemas = new OpenApiSchemas();
    const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
    const app = { id: "a", apikey: "k", description: "d", domains: [], created_at: "2016-12-09T21:50:21Z" };
    assert.equal(schemas.validator("skyway", ref("App"))(app), true);
    assert.equal(schemas.validator("skyway", ref("App"))({ ...app, secretkey: "leak" }), false);
    assert.equal(schemas.validator("skyway", ref("App"))({ ...app, createdAt: app.created_at }), false);
    assert.equal(schemas.validator("skyway", ref("App"))({ ...app, apikey: undefined }), false);
    const envelope = {
      id: "e",
      conferenceId: "c",
      conferenceVersion: 3,
      organizationId: "o",
      timestamp: "2024-01-01T00:00:00.000Z",
      userEndpointId: "ep",
      userId: "u",
    };
    const event = schemas.validator("conference", ref("ConferenceEvent"));
    assert.equal(
      event({ type: "ConferenceMetadataUpdatedEvent", ...envelope, key: "k", operation: "REMOVE", value: null }),
      true,
    );
    assert.equal(event({ type: "ConferenceMetadataUpdatedEvent", ...envelope, key: "k", operation: "SET" }), false);
    assert.equal(event({ type: "RecordingStartedEvent", ...envelope, anything: { the: "app's" } }), true);
    assert.equal(event({ type: "ConferenceLeftEvent", ...envelope, conferenceVersion: "3", reason: "" }), false);
  });

  it("documents every REST route once, in its dialect's document", () => {
    const documented = new Map<string, string>();
    for (const { doc, path, method } of operations()) {
      const key = `${method.toUpperCase()} ${path}`;
      assert.equal(documented.has(key), false, `${key} documented twice`);
      documented.set(key, doc.name);
    }
    for (const route of restRoutes) {
      const key = `${route.verb} ${openApiPath(route.template).path}`;
      assert.equal(documented.get(key), DIALECT_DOCS[route.dialect]?.document, key);
    }
    assert.equal(documented.size, restRoutes.length);
  });

  it("describes each dialect as src/gateway/dialects does", () => {
    for (const [name, dialect] of dialects) {
      const doc = DIALECT_DOCS[name];
      assert.ok(doc, `dialect ${name} is not in openapi-dialects.ts`);
      assert.equal(doc.fieldNames, dialect.jsonWrite.useProtoFieldName ? "proto" : "json", name);
      assert.equal(doc.int64AsNumber, dialect.int64AsNumber, name);
      assert.equal(doc.rejectsUnknownFields, dialect.jsonRead.ignoreUnknownFields === false, name);
      assert.equal(doc.acceptsForm, dialect.acceptsForm === true, name);
      assert.deepEqual(doc.credentials, dialect.credentials, name);
      assert.equal(dialect.jsonWrite.alwaysEmitImplicit, true, `${name}: output schemas require implicit fields`);
      for (const typeName of doc.legacyMessages) assert.ok(dialect.legacyJson, `${name} writes ${typeName} as legacy`);
    }
    assert.deepEqual(Object.keys(DIALECT_DOCS).sort(), [...dialects.keys()].sort());
  });

  it("names each credential carrier as a security scheme", () => {
    const schemes = (name: string) =>
      ((apiDocs.find((d) => d.name === name)?.document.components as Json | undefined)?.securitySchemes ?? {}) as Json;
    assert.deepEqual(schemes("skyway").tenantToken, {
      type: "apiKey",
      in: "header",
      name: "x-auth-token",
      description:
        "A tenant's auth token (the app management API). Sent in the `x-auth-token` header (gRPC: the same metadata).",
    });
    assert.equal((schemes("realtime").appSecretKey as Json).name, "x-vcs-token");
    assert.equal((schemes("v1").adminToken as Json).scheme, "bearer");
    assert.equal((schemes("conference").bearerToken as Json).bearerFormat, "JWT");
    assert.equal((schemes("conference").clientBasic as Json).scheme, "basic");
    assert.equal((schemes("spreed").adminToken as Json).scheme, "bearer");
  });
});

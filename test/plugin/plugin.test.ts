import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { CodeGeneratorRequestSchema } from "@bufbuild/protobuf/wkt";
import { Validator } from "@seriousme/openapi-schema-validator";
import { protocGenRtcplaneGateway } from "../../tools/protoc-gen-rtcplane-gateway/plugin.js";
import { compileFixtures, ROOT } from "../helpers/protoc.js";

const GOLDEN = path.join(ROOT, "test/plugin/golden");

function runPlugin(file: string) {
  const set = compileFixtures([file]);
  const request = create(CodeGeneratorRequestSchema, {
    fileToGenerate: [file],
    parameter: "target=ts,import_extension=js",
    protoFile: set.file,
  });
  return protocGenRtcplaneGateway.run(request);
}

describe("protoc-gen-rtcplane-gateway", () => {
  it("generates the golden route table and OpenAPI document for every http rule feature", () => {
    const response = runPlugin("fixture/library/v1/library.proto");
    assert.equal(response.error ?? "", "");
    assert.deepEqual(
      response.file.map((f) => f.name),
      ["fixture/library/v1/library_routes.ts", "openapi/v1.json", "openapi/index.ts"],
    );
    const goldens: [string, string][] = [
      ["fixture/library/v1/library_routes.ts", "library_routes.ts"],
      ["openapi/v1.json", "library_openapi.json"],
      ["openapi/index.ts", "openapi_index.ts"],
    ];
    for (const [name, goldenName] of goldens) {
      const file = response.file.find((f) => f.name === name);
      const golden = path.join(GOLDEN, goldenName);
      if (process.env.UPDATE_GOLDEN === "1") fs.writeFileSync(golden, file?.content ?? "");
      assert.equal(file?.content, fs.readFileSync(golden, "utf8"), name);
    }
  });

  it("describes the fixture's routes in a valid OpenAPI 3.1 document", async () => {
    const content = runPlugin("fixture/library/v1/library.proto").file.find((f) => f.name === "openapi/v1.json");
    const doc = JSON.parse(content?.content ?? "{}");
    const validator = new Validator();
    const result = await validator.validate(doc);
    assert.equal(result.valid, true, JSON.stringify(result.errors));
    assert.equal(validator.version, "3.1");
    // Multi-segment variables become one parameter with a pattern; a rest variable too.
    assert.equal(doc.paths["/v1/{name}"].get.parameters[0].schema.pattern, "^shelves/[^/]+/books/[^/]+$");
    assert.equal(doc.paths["/v1/books/{name}"].get.operationId, "LibraryService_GetBook2");
    assert.equal(doc.paths["/covers/{flags}/{path}"].get.parameters[1].schema.pattern, "^.+$");
    // A custom verb has no place in 3.1 paths: it is kept as an extension.
    assert.ok(doc.paths["/v1/books/{id}"]["x-additionalOperations"].PURGE);
    // Query parameters as the binder reads them: JSON names, dotted nested fields, repeated keys, no maps.
    const query = doc.paths["/v1/shelves/{shelf}/books"].get.parameters.filter((p: { in: string }) => p.in === "query");
    assert.deepEqual(
      query.map((p: { name: string }) => p.name),
      ["pageSize", "expand", "tags", "filter.author", "filter.minRating", "minPages", "genre"],
    );
    // response_body of a repeated field is a bare array; success_status is the documented status.
    assert.equal(
      doc.paths["/v1/shelves/{shelf}/books"].get.responses["200"].content["application/json"].schema.type,
      "array",
    );
    assert.ok(doc.paths["/v1/books/{id}:publish"].post.responses["202"]);
    assert.ok(doc.paths["/v1/shelves/{shelf}/books:watch"].get.responses["200"].content["application/x-ndjson"]);
    // A body field and the path exclude their fields from the query; `body: "*"` drops path fields.
    assert.deepEqual(
      doc.paths["/v1/books/{book.id}"].patch.parameters.map((p: { name: string }) => p.name),
      ["book.id", "validateOnly"],
    );
    assert.deepEqual(
      Object.keys(doc.paths["/v1/books/{id}:publish"].post.requestBody.content["application/json"].schema.properties),
      ["note"],
    );
    // Output requires what alwaysEmitImplicit writes; 64-bit integers are strings in the v1 dialect.
    assert.deepEqual(doc.components.schemas.Book.required, ["id", "name", "title", "pages", "genre", "tags"]);
    assert.equal(doc.components.schemas.Book.properties.pages.type, "string");
    assert.equal(doc.components.schemas.BookInput.required, undefined);
  });

  it("emits additional bindings, custom verbs, response_body and success status", () => {
    const content = runPlugin("fixture/library/v1/library.proto").file[0]?.content ?? "";
    assert.match(content, /pattern: "\/v1\/\{name=shelves\/\*\/books\/\*\}"/);
    assert.match(content, /pattern: "\/v1\/books\/\{name\}"/);
    assert.match(content, /verb: "PURGE"/);
    assert.match(content, /responseBody: "books"/);
    assert.match(content, /successStatus: 202/);
    assert.doesNotMatch(content, /reindex/);
  });

  const failures: [string, RegExp][] = [
    [
      "fixture/bad/bad_template.proto",
      /fixture\.bad\.BadTemplateService\.Get: invalid path template "\/v1\/things\/\{id": .*not closed/,
    ],
    ["fixture/bad/bad_field.proto", /path variable "thing_id" is not a field of fixture\.bad\.GetFieldRequest/],
    ["fixture/bad/body_on_get.proto", /GET mappings cannot have a body/],
    ["fixture/bad/no_dialect.proto", /has HTTP mappings but no \(rtcplane\.options\.v1\.dialect\)/],
  ];
  for (const [file, message] of failures) {
    it(`rejects ${path.basename(file)} with a message naming the method`, () => {
      assert.throws(() => runPlugin(file), message);
    });
  }
});

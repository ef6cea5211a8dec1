import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { CodeGeneratorRequestSchema } from "@bufbuild/protobuf/wkt";
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
  it("generates the golden route table for every http rule feature", () => {
    const response = runPlugin("fixture/library/v1/library.proto");
    assert.equal(response.error ?? "", "");
    assert.equal(response.file.length, 1);
    const [file] = response.file;
    assert.equal(file?.name, "fixture/library/v1/library_routes.ts");
    const golden = path.join(GOLDEN, "library_routes.ts");
    if (process.env.UPDATE_GOLDEN === "1") fs.writeFileSync(golden, file?.content ?? "");
    assert.equal(file?.content, fs.readFileSync(golden, "utf8"));
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

/**
 * The OpenAPI documents against a real server (with the SFU): every documented operation is
 * called with the example inputs of test/helpers/openapi-examples.ts (an operation without
 * one fails), each request is checked against its documented path, query and body schema,
 * and each answer's status, content type and body against the documented response (ajv,
 * 2020-12, with object schemas closed so undocumented fields fail too). Operations that need
 * a credential are also called without one and must answer their documented refusal.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { apiDocs, type DocumentedOperation, deref, type Json, OpenApiSchemas, operations } from "../helpers/openapi.js";
import { EXAMPLES, type ExampleRequest } from "../helpers/openapi-examples.js";
import { Fixture } from "../helpers/openapi-fixture.js";
import { startServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
let fixture: Fixture;
const schemas = new OpenApiSchemas();
const documented = operations();

before(async () => {
  server = await startServer(
    {
      SPREED_TOKENS: "Open-Sesame",
      SPREED_STATS_ENABLED: "true",
      ICE_SERVERS: JSON.stringify([
        { urls: ["stun:stun.example.org:3478"] },
        { urls: ["turn:turn.example.org:3478?transport=udp"], username: "u", credential: "p" },
      ]),
    },
    undefined,
    undefined,
    true,
  );
  fixture = await Fixture.create(server.url);
});
after(async () => {
  fixture?.close();
  await server?.close();
});

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The documented path as a regular expression (each parameter by its pattern, else one segment). */
function pathRegex(op: DocumentedOperation): RegExp {
  const params = (op.operation.parameters ?? []) as Json[];
  const source = op.path
    .split(/(\{[^}]+\})/)
    .map((part) => {
      const m = /^\{(.+)\}$/.exec(part);
      if (m === null) return escapeRegex(part);
      const schema = params.find((p) => p.name === m[1] && p.in === "path")?.schema as Json | undefined;
      const pattern = schema?.pattern as string | undefined;
      return pattern === undefined ? "[^/]+" : `(?:${pattern.replace(/^\^/, "").replace(/\$$/, "")})`;
    })
    .join("");
  return new RegExp(`^${source}$`);
}

/** The documented media type a response's content type falls under. */
function documentedType(content: Json, contentType: string): string | undefined {
  const type = contentType.split(";")[0]?.trim().toLowerCase() ?? "";
  return [type, `${type.split("/")[0]}/*`, "*/*"].find((t) => content[t] !== undefined);
}

function assertValid(name: string, schema: unknown, value: unknown, what: string): void {
  const validate = schemas.validator(name, schema);
  if (!validate(value)) {
    assert.fail(
      `${what} does not match its documented schema:\n${schemas.ajv.errorsText(validate.errors, { separator: "\n" })}\n${JSON.stringify(value, null, 1).slice(0, 3000)}`,
    );
  }
}

/** Checks the request against the document, sends it, and checks the answer. */
async function check(op: DocumentedOperation, req: ExampleRequest): Promise<void> {
  const id = op.operation.operationId as string;
  assert.equal(req.method, op.method.toUpperCase(), `${id}: example method`);
  const url = new URL(req.path, server.url);
  assert.match(url.pathname, pathRegex(op), `${id}: the example's path is not ${op.path}`);
  const queryNames = ((op.operation.parameters ?? []) as Json[]).filter((p) => p.in === "query").map((p) => p.name);
  for (const key of url.searchParams.keys())
    assert.ok(queryNames.includes(key), `${id}: query ${key} is not documented`);
  const bodyContent = deref(op.doc.document, op.operation.requestBody)?.content as Json | undefined;
  const headers: Record<string, string> = { ...req.auth };
  let body: string | undefined;
  if (req.json !== undefined || req.form !== undefined) {
    const type = req.json !== undefined ? "application/json" : "application/x-www-form-urlencoded";
    const media = bodyContent?.[type] as Json | undefined;
    assert.ok(media, `${id}: ${type} bodies are not documented`);
    assertValid(op.doc.name, media.schema, req.json ?? req.form, `${id}: the example's request body`);
    headers["content-type"] = type;
    body = req.json !== undefined ? JSON.stringify(req.json) : new URLSearchParams(req.form).toString();
  }
  const res = await fetch(url, { method: req.method, headers, ...(body === undefined ? {} : { body }) });
  const text = await res.text();
  const responses = op.operation.responses as Json;
  const success = Object.keys(responses).find((s) => /^2\d\d$/.test(s));
  const expected = req.status ?? Number(success);
  assert.equal(res.status, expected, `${id} ${req.method} ${req.path}: ${text.slice(0, 500)}`);
  const response = deref(op.doc.document, responses[String(res.status)] ?? responses.default);
  assert.ok(response, `${id}: status ${res.status} is not documented`);
  const content = response.content as Json | undefined;
  if (content === undefined) {
    assert.equal(text, "", `${id}: ${res.status} is documented without a body`);
    return;
  }
  const contentType = res.headers.get("content-type") ?? "";
  const mediaType = documentedType(content, contentType);
  assert.ok(mediaType, `${id}: ${res.status} ${contentType} is not a documented content type`);
  const schema = (content[mediaType] as Json).schema;
  if (mediaType === "application/json") {
    assertValid(op.doc.name, schema, JSON.parse(text), `${id}: the ${res.status} answer`);
  } else if (mediaType.startsWith("text/")) {
    assertValid(op.doc.name, schema, text, `${id}: the ${res.status} answer`);
  }
}

describe("OpenAPI contract: every documented operation against a real server", () => {
  it("has an example for every documented operation, and no example without one", () => {
    const ids = documented.map((op) => op.operation.operationId as string);
    assert.deepEqual(
      ids.filter((id) => EXAMPLES[id] === undefined),
      [],
      "documented operations without an example in test/helpers/openapi-examples.ts",
    );
    assert.deepEqual(
      Object.keys(EXAMPLES).filter((id) => !ids.includes(id)),
      [],
      "examples of operations no document has",
    );
    assert.ok(ids.length >= 60, `${ids.length} operations`);
  });

  for (const op of documented) {
    const id = op.operation.operationId as string;
    it(`${id}: ${op.method.toUpperCase()} ${op.path}`, async () => {
      const example = EXAMPLES[id];
      assert.ok(example, `${id} has no example in test/helpers/openapi-examples.ts: add one`);
      const requests = await example(fixture);
      for (const req of Array.isArray(requests) ? requests : [requests]) await check(op, req);
    });
  }

  it("refuses every operation that needs a credential without one, as documented", async () => {
    let checked = 0;
    for (const op of documented) {
      const security = (op.operation.security ?? []) as Json[];
      if (security.length === 0 || security.some((s) => Object.keys(s).length === 0)) continue;
      const refusal = Object.keys(op.operation.responses as Json).filter((s) => s === "401" || s === "403");
      assert.equal(refusal.length, 1, `${op.operation.operationId}: one documented refusal`);
      const path = op.path.replace(/\{[^}]+\}/g, "x");
      await check(op, { method: op.method.toUpperCase(), path, status: Number(refusal[0]) });
      checked++;
    }
    assert.ok(checked >= 50, `${checked} operations`);
  });
});

describe("OpenAPI documents served", () => {
  it("/openapi/index.json lists every document, each served as generated", async () => {
    const res = await fetch(`${server.url}/openapi/index.json`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "application/json");
    const index = (await res.json()) as { name: string; title: string; url: string }[];
    assert.deepEqual(
      index,
      apiDocs.map((d) => ({ name: d.name, title: d.title, url: `/openapi/${d.name}.json` })),
    );
    for (const entry of index) {
      const doc = await fetch(new URL(entry.url, server.url));
      assert.equal(doc.status, 200);
      assert.equal(doc.headers.get("content-type"), "application/json");
      assert.deepEqual(await doc.json(), apiDocs.find((d) => d.name === entry.name)?.document);
    }
    const missing = await fetch(`${server.url}/openapi/nope.json`);
    assert.deepEqual([missing.status, await missing.text()], [404, "404 page not found\n"]);
  });
});

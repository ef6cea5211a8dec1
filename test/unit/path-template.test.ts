import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  compareSpecificity,
  matchPathTemplate,
  PathTemplateError,
  parsePathTemplate,
  splitPath,
} from "../../src/gateway/path-template.js";

const match = (template: string, path: string) => {
  const bindings = matchPathTemplate(parsePathTemplate(template), splitPath(path) ?? []);
  return bindings && Object.fromEntries(bindings);
};

describe("parsePathTemplate", () => {
  it("parses literals, variables, wildcards and a verb", () => {
    assert.deepEqual(parsePathTemplate("/v1/{name=shelves/*/books/*}:publish"), {
      segments: [
        { kind: "literal", value: "v1" },
        { kind: "literal", value: "shelves" },
        { kind: "any" },
        { kind: "literal", value: "books" },
        { kind: "any" },
      ],
      variables: [{ fieldPath: ["name"], start: 1, end: 5 }],
      verb: "publish",
    });
  });

  it("binds {var} to one segment and {var=**} to the rest", () => {
    assert.deepEqual(parsePathTemplate("/tenants/{tenant_id}/apps").variables, [
      { fieldPath: ["tenant_id"], start: 1, end: 2 },
    ]);
    assert.deepEqual(parsePathTemplate("/static/{flags}/{idx=**}").variables, [
      { fieldPath: ["flags"], start: 1, end: 2 },
      { fieldPath: ["idx"], start: 2, end: -1 },
    ]);
  });

  it("accepts nested field paths and a trailing slash", () => {
    assert.deepEqual(parsePathTemplate("/a/{b.c}").variables[0]?.fieldPath, ["b", "c"]);
    assert.deepEqual(parsePathTemplate("/api/v1/sessions/{id}/").segments.at(-1), { kind: "literal", value: "" });
  });

  const malformed: [string, RegExp][] = [
    ["v1/x", /must start with "\/"/],
    ["/", /no segments/],
    ["/a//b", /empty path segment/],
    ["/a/{b", /not closed/],
    ["/a/{b=c/{d}}", /cannot be nested/],
    ["/a/{1b}", /not a field path/],
    ["/a/{b}/{b}", /bound twice/],
    ["/a/**/b", /must be the last segment/],
    ["/a/b c", /not a valid literal/],
    ["/a/b:", /verb "" is not a literal/],
    ["/a}", /not a valid literal/],
  ];
  for (const [template, reason] of malformed) {
    it(`rejects ${JSON.stringify(template)} with a clear message`, () => {
      assert.throws(
        () => parsePathTemplate(template),
        (e: unknown) =>
          e instanceof PathTemplateError && reason.test(e.message) && e.message.includes(JSON.stringify(template)),
      );
    });
  }
});

describe("matchPathTemplate", () => {
  it("matches literals exactly and decodes variables", () => {
    assert.deepEqual(match("/tenants/{tenant_id}/apps", "/tenants/t%201/apps"), { tenant_id: "t 1" });
    assert.equal(match("/tenants/{tenant_id}/apps", "/tenants/t1/apps/x"), undefined);
    assert.equal(match("/tenants/{tenant_id}/apps", "/tenants//apps"), undefined);
    assert.equal(match("/tenants/{tenant_id}/apps", "/tenant/t1/apps"), undefined);
  });

  it("matches ** across segments, including none", () => {
    assert.deepEqual(match("/img/{flags}/{idx=**}", "/img/f/a/b/c.png"), { flags: "f", idx: "a/b/c.png" });
    assert.deepEqual(match("/img/{flags}/{idx=**}", "/img/f"), { flags: "f", idx: "" });
  });

  it("requires the verb when the template has one and strips it", () => {
    assert.deepEqual(match("/admin/v1/tenants/{id}:rotateToken", "/admin/v1/tenants/abc:rotateToken"), { id: "abc" });
    assert.equal(match("/admin/v1/tenants/{id}:rotateToken", "/admin/v1/tenants/abc"), undefined);
    // Without a verb in the template a colon is part of the value.
    assert.deepEqual(match("/admin/v1/tenants/{id}", "/admin/v1/tenants/abc:rotateToken"), { id: "abc:rotateToken" });
  });

  it("tells a trailing slash apart", () => {
    assert.deepEqual(match("/api/v1/sessions/{id}/", "/api/v1/sessions/s1/"), { id: "s1" });
    assert.equal(match("/api/v1/sessions/{id}/", "/api/v1/sessions/s1"), undefined);
    assert.equal(match("/api/v1/sessions/{id}", "/api/v1/sessions/s1/"), undefined);
  });

  it("rejects undecodable percent escapes instead of throwing", () => {
    assert.equal(match("/a/{b}", "/a/%E0%A4%A"), undefined);
  });
});

describe("compareSpecificity", () => {
  it("orders literal before wildcard before **", () => {
    const sorted = ["/a/{x=**}", "/a/{x}", "/a/b"].map(parsePathTemplate).sort(compareSpecificity);
    assert.deepEqual(
      sorted.map((t) => t.segments[1]?.kind),
      ["literal", "any", "rest"],
    );
  });
});

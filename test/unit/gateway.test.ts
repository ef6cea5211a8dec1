import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { type DescMessage, type JsonValue, type Message, toJson } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { bindRequest } from "../../src/gateway/binder.js";
import { v1Dialect } from "../../src/gateway/dialects/v1.js";
import { type AnyServiceImpl, RestGateway } from "../../src/gateway/gateway.js";
import type { NodeResponse } from "../../src/http/types.js";
import { createLogger } from "../../src/observability/log.js";
import { libraryFixture } from "../helpers/fixture-gateway.js";

const { registry, service, routes } = libraryFixture();
const message = (name: string) => registry.getMessage(`fixture.library.v1.${name}`) as DescMessage;
const echo = (schema: string, req: Message) => JSON.stringify(toJson(message(schema), req));

/** A fixture implementation that echoes what the gateway bound, so tests see the binding. */
const impl: AnyServiceImpl = {
  getBook: (req: { name: string }) => ({ name: req.name, title: "got" }),
  listBooks: (req: Message & { shelf: string }) => {
    if (req.shelf === "boom") throw new Error("SQLITE_CORRUPT: secret table layout");
    if (req.shelf === "denied") throw new ConnectError("no", Code.PermissionDenied);
    return { books: [{ id: "1", title: echo("ListBooksRequest", req) }] };
  },
  updateBook: (req: Message) => ({ title: echo("UpdateBookRequest", req) }),
  publishBook: (req: Message) => ({ title: echo("PublishBookRequest", req) }),
  purgeBook: () => ({}),
  getCover: (req: { flags: string; path: string }) => ({
    contentType: "image/png",
    data: new TextEncoder().encode(`${req.flags}|${req.path}`),
  }),
  watchBooks: async function* (req: { shelf: string }) {
    for (let i = 0; i < 3; i++) yield { id: String(i), name: req.shelf };
  },
} as unknown as AnyServiceImpl;

let server: http.Server;
let base: string;

before(async () => {
  const gateway = new RestGateway({
    routes,
    implementations: new Map([[service, impl]]),
    dialects: new Map([["v1", v1Dialect]]),
    defaultDialect: "v1",
    interceptors: [],
    maxBodyBytes: 1024,
    logger: createLogger("silent"),
  });
  server = http.createServer((req, res) => void gateway.handle(req, res as unknown as NodeResponse));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((r) => server.close(() => r())));

const call = async (method: string, path: string, body?: string, contentType = "application/json") => {
  const res = await fetch(base + path, {
    method,
    ...(body === undefined ? {} : { body, headers: { "content-type": contentType } }),
  });
  const text = await res.text();
  return {
    status: res.status,
    headers: res.headers,
    text,
    json: text && res.headers.get("content-type") === "application/json" ? (JSON.parse(text) as JsonValue) : undefined,
  };
};

describe("REST gateway on the fixture service", () => {
  it("binds a multi-segment variable and serves additional bindings", async () => {
    const book = (name: string) => ({ id: "", name, title: "got", pages: "0", genre: "GENRE_UNSPECIFIED", tags: [] });
    assert.deepEqual((await call("GET", "/v1/shelves/s1/books/b2")).json, book("shelves/s1/books/b2"));
    assert.deepEqual((await call("GET", "/v1/books/b%2F3")).json, book("b/3"));
  });

  it("binds query parameters: repeated, nested, typed, bare booleans; renders response_body bare", async () => {
    const r = await call(
      "GET",
      "/v1/shelves/s1/books?pageSize=5&expand&tags=a&tags=b&filter.author=Ann&filter.min_rating=4.5&minPages=9007199254740993&genre=GENRE_FICTION&shelf=ignored&cacheBuster=1",
    );
    assert.equal(r.status, 200);
    assert.ok(Array.isArray(r.json));
    const bound = JSON.parse((r.json as { title: string }[])[0]?.title ?? "");
    assert.deepEqual(bound, {
      shelf: "s1",
      pageSize: 5,
      expand: true,
      tags: ["a", "b"],
      filter: { author: "Ann", minRating: 4.5 },
      minPages: "9007199254740993",
      genre: "GENRE_FICTION",
    });
  });

  it("treats expand=false as false and rejects a non-boolean", async () => {
    const r = await call("GET", "/v1/shelves/s1/books?expand=false");
    assert.deepEqual(JSON.parse((r.json as { title: string }[])[0]?.title ?? ""), { shelf: "s1" });
    const bad = await call("GET", "/v1/shelves/s1/books?expand=maybe");
    assert.equal(bad.status, 400);
    assert.deepEqual(bad.json, { code: 3, message: 'expand: "maybe" is not a boolean', details: [] });
    assert.equal((await call("GET", "/v1/shelves/s1/books?pageSize=x")).status, 400);
    assert.equal((await call("GET", "/v1/shelves/s1/books?labels=x")).status, 400);
  });

  it("puts a body field under its name and lets the path set its sub-field", async () => {
    const r = await call("PATCH", "/v1/books/b1", JSON.stringify({ id: "other", title: "T" }));
    assert.deepEqual(JSON.parse((r.json as { title: string }).title), { book: { id: "b1", title: "T" } });
  });

  it("uses the method's success status and the verb suffix", async () => {
    const r = await call("POST", "/v1/books/b1:publish", JSON.stringify({ note: "n" }));
    assert.equal(r.status, 202);
    assert.deepEqual(JSON.parse((r.json as { title: string }).title), { id: "b1", note: "n" });
    const empty = await call("POST", "/v1/books/b1:publish");
    assert.equal(empty.status, 202, "an empty body is an empty message");
  });

  it("serves custom verbs with 204 and no body", async () => {
    const r = await call("PURGE", "/v1/books/b1");
    assert.equal(r.status, 204);
    assert.equal(r.text, "");
  });

  it("streams google.api.HttpBody bytes with their content type", async () => {
    const r = await call("GET", "/covers/big/a/b/c.png");
    assert.equal(r.headers.get("content-type"), "image/png");
    assert.equal(r.text, "big|a/b/c.png");
  });

  it("streams server-streaming methods as newline-delimited JSON", async () => {
    const r = await call("GET", "/v1/shelves/s9/books:watch");
    assert.equal(r.headers.get("content-type"), "application/x-ndjson");
    assert.deepEqual(
      r.text
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l)),
      [0, 1, 2].map((i) => ({
        id: String(i),
        name: "s9",
        title: "",
        pages: "0",
        genre: "GENRE_UNSPECIFIED",
        tags: [],
      })),
    );
  });

  it("answers 404 for unknown paths and 405 with Allow for known paths", async () => {
    const missing = await call("GET", "/v2/nothing");
    assert.equal(missing.status, 404);
    assert.equal((missing.json as { code: number }).code, 5);
    const wrong = await call("DELETE", "/v1/shelves/s1/books");
    assert.equal(wrong.status, 405);
    assert.equal(wrong.headers.get("allow"), "GET");
  });

  it("refuses oversized, mistyped, undecodable and unknown-field bodies in the dialect's envelope", async () => {
    const big = await call("POST", "/v1/books/b1:publish", JSON.stringify({ note: "x".repeat(2000) }));
    assert.equal(big.status, 413);
    assert.equal((big.json as { code: number }).code, Code.ResourceExhausted);
    const type = await call("POST", "/v1/books/b1:publish", "{}", "text/plain");
    assert.equal(type.status, 415);
    const broken = await call("POST", "/v1/books/b1:publish", "{");
    assert.equal(broken.status, 400);
    assert.match((broken.json as { message: string }).message, /not valid JSON/);
    const unknown = await call("POST", "/v1/books/b1:publish", JSON.stringify({ nope: 1 }));
    assert.equal(unknown.status, 400);
    const wrongType = await call("POST", "/v1/books/b1:publish", JSON.stringify({ note: 5 }));
    assert.equal(wrongType.status, 400);
    assert.match((wrongType.json as { message: string }).message, /note/);
    const notObject = await call("POST", "/v1/books/b1:publish", "[1]");
    assert.equal(notObject.status, 400);
    // And the server still serves.
    assert.equal((await call("GET", "/v1/books/b1")).status, 200);
  });

  it("maps ConnectError codes to HTTP and hides unknown failures", async () => {
    const denied = await call("GET", "/v1/shelves/denied/books");
    assert.deepEqual([denied.status, denied.json], [403, { code: 7, message: "no", details: [] }]);
    const boom = await call("GET", "/v1/shelves/boom/books");
    assert.deepEqual([boom.status, boom.json], [500, { code: 13, message: "internal error", details: [] }]);
  });
});

describe("bindRequest", () => {
  const schema = message("ListBooksRequest");
  it("never lets a query parameter override a path binding", () => {
    const m = bindRequest({
      schema,
      bodyField: "",
      pathBindings: new Map([["shelf", "from-path"]]),
      body: undefined,
      query: new URLSearchParams("shelf=from-query&page_size=3"),
      jsonRead: {},
    }) as Message & { shelf: string; pageSize: number };
    assert.equal(m.shelf, "from-path");
    assert.equal(m.pageSize, 3, "proto field names work as well as JSON names");
  });

  it("rejects a scalar given twice", () => {
    assert.throws(
      () =>
        bindRequest({
          schema,
          bodyField: "",
          pathBindings: new Map(),
          body: undefined,
          query: new URLSearchParams("pageSize=1&pageSize=2"),
          jsonRead: {},
        }),
      /pageSize: given 2 times/,
    );
  });

  it("ignores query parameters when the whole body is bound", () => {
    const m = bindRequest({
      schema: message("PublishBookRequest"),
      bodyField: "*",
      pathBindings: new Map([["id", "b"]]),
      body: { note: "n" },
      query: new URLSearchParams("note=q"),
      jsonRead: {},
    }) as Message & { note: string };
    assert.equal(m.note, "n");
  });
});

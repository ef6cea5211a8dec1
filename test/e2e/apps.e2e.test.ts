/**
 * The SkyWay SDPF / ECL app management API (seeds 000 and 001, identical) on a real
 * server: every documented request and response replayed field by field, every
 * documented error, and what a careful user expects beyond the documentation.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { bufCurl, createTenant, setTenantStatus, startServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
const logLines: string[] = [];

before(async () => {
  const sink = new Writable({
    write(chunk, _enc, done) {
      logLines.push(chunk.toString());
      done();
    },
  });
  server = await startServer({}, undefined, pino({ level: "trace" }, sink));
});
after(() => server.close());

type Json = Record<string, unknown>;

async function api(token: string | undefined, method: string, url: string, body?: unknown) {
  const headers: Record<string, string> = {};
  if (token !== undefined) headers["X-Auth-Token"] = token;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(server.url + url, {
    method,
    headers,
    ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, text, json: text === "" ? undefined : (JSON.parse(text) as unknown) };
}

const TIMESTAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const WHOLE_APP_KEYS = [
  "id",
  "apikey",
  "description",
  "domains",
  "permissions",
  "usage_summary",
  "status",
  "recording",
  "created_at",
  "updated_at",
];

/** Checks the documented shape of a whole app and returns it typed. */
function assertWholeApp(value: unknown): Json {
  const app = value as Json;
  assert.deepEqual(Object.keys(app), WHOLE_APP_KEYS);
  assert.match(app.id as string, UUID);
  assert.match(app.apikey as string, UUID);
  assert.equal(typeof app.description, "string");
  assert.ok(Array.isArray(app.domains));
  assert.ok(Array.isArray(app.permissions));
  assert.equal(typeof app.usage_summary, "object");
  assert.ok(["active", "suspended"].includes(app.status as string));
  assert.deepEqual(Object.keys(app.recording as Json), ["status", "bucket_name"]);
  assert.match(app.created_at as string, TIMESTAMP);
  assert.match(app.updated_at as string, TIMESTAMP);
  return app;
}

describe("SkyWay app API: documented examples", () => {
  let tenant: { tenantId: string; authToken: string };
  let base: string;
  before(async () => {
    tenant = await createTenant(server.url, "docs");
    base = `/tenants/${tenant.tenantId}/apps`;
  });

  it("Create new app: {description} → 200 with the documented app", async () => {
    const r = await api(tenant.authToken, "POST", base, { description: "<description>" });
    assert.equal(r.status, 200);
    const app = assertWholeApp(r.json);
    assert.equal(app.description, "<description>");
    assert.deepEqual(app.domains, []);
    assert.deepEqual(app.permissions, []);
    assert.deepEqual(app.usage_summary, {});
    assert.equal(app.status, "active");
    assert.deepEqual(app.recording, { status: "unavailable", bucket_name: "" });
    assert.equal(app.created_at, app.updated_at);
    assert.ok(!r.text.includes("secret"), "no secret key in the app");
  });

  it("Create with no body at all uses every default", async () => {
    const r = await api(tenant.authToken, "POST", base);
    assert.equal(r.status, 200);
    assert.equal(assertWholeApp(r.json).description, "");
  });

  it("Get app returns the same app; Update app applies the documented body", async () => {
    const created = assertWholeApp((await api(tenant.authToken, "POST", base, { description: "to update" })).json);
    const got = await api(tenant.authToken, "GET", `${base}/${created.id}`);
    assert.equal(got.status, 200);
    assert.deepEqual(got.json, created);
    await new Promise((r) => setTimeout(r, 1100)); // updated_at has whole seconds
    const key = JSON.stringify({ type: "service_account", private_key: "-----BEGIN PRIVATE KEY-----\nMIIE..." });
    const updated = await api(tenant.authToken, "PUT", `${base}/${created.id}`, {
      description: "<description>",
      status: "suspended",
      permissions: ["RECORDING"],
      recording_bucket_name: "recordings-bucket",
      recording_service_account_key: key,
      domains: ["example.com", "*.example.org"],
    });
    assert.equal(updated.status, 200);
    const app = assertWholeApp(updated.json);
    assert.deepEqual(
      { ...app, updated_at: undefined },
      {
        ...created,
        description: "<description>",
        status: "suspended",
        permissions: ["RECORDING"],
        domains: ["example.com", "*.example.org"],
        recording: { status: "active", bucket_name: "recordings-bucket" },
        updated_at: undefined,
      },
    );
    assert.ok((app.updated_at as string) > (app.created_at as string));
    assert.ok(!updated.text.includes("private_key"), "the service account key is write-only");
    // Absent fields keep their values.
    const partial = await api(tenant.authToken, "PUT", `${base}/${created.id}`, { description: "only this" });
    const after = assertWholeApp(partial.json);
    assert.equal(after.description, "only this");
    assert.deepEqual(after.domains, ["example.com", "*.example.org"]);
    assert.equal(after.status, "suspended");
    // Removing the RECORDING permission makes recording unavailable.
    const noRec = await api(tenant.authToken, "PUT", `${base}/${created.id}`, { permissions: ["TURN", "SFU"] });
    assert.deepEqual((noRec.json as Json).recording, { status: "unavailable", bucket_name: "recordings-bucket" });
  });

  it("Get apps list: without expandApps only id, apikey, description; with it whole apps", async () => {
    const own = await createTenant(server.url, "list");
    const listBase = `/tenants/${own.tenantId}/apps`;
    const apps = [];
    for (const description of ["a", "b", ""]) {
      apps.push(assertWholeApp((await api(own.authToken, "POST", listBase, { description })).json));
    }
    const summaries = apps.map((a) => ({ id: a.id, apikey: a.apikey, description: a.description }));
    for (const query of ["", "?expandApps=false"]) {
      const r = await api(own.authToken, "GET", listBase + query);
      assert.equal(r.status, 200);
      assert.deepEqual(r.json, summaries, query);
      for (const entry of r.json as Json[]) assert.deepEqual(Object.keys(entry), ["id", "apikey", "description"]);
    }
    for (const query of ["?expandApps", "?expandApps=true", "?expandApps="]) {
      const r = await api(own.authToken, "GET", listBase + query);
      assert.equal(r.status, 200);
      assert.deepEqual(r.json, apps, query);
    }
    assert.equal((await api(own.authToken, "GET", `${listBase}?expandApps=yes`)).status, 400);
  });

  it("Get / Regenerate app secret key: {secretkey}, the new one replaces the old", async () => {
    const app = assertWholeApp((await api(tenant.authToken, "POST", base, {})).json);
    const first = await api(tenant.authToken, "GET", `${base}/${app.id}/secretkey`);
    assert.equal(first.status, 200);
    assert.deepEqual(Object.keys(first.json as Json), ["secretkey"]);
    const secret = (first.json as { secretkey: string }).secretkey;
    assert.ok(secret.length >= 43, "at least 256 bits");
    assert.equal(((await api(tenant.authToken, "GET", `${base}/${app.id}/secretkey`)).json as Json).secretkey, secret);
    const renewed = await api(tenant.authToken, "POST", `${base}/${app.id}/secretkey`);
    assert.equal(renewed.status, 200);
    const next = (renewed.json as { secretkey: string }).secretkey;
    assert.notEqual(next, secret);
    assert.equal(((await api(tenant.authToken, "GET", `${base}/${app.id}/secretkey`)).json as Json).secretkey, next);
    // A client that sends `{}` with its POST is served too.
    assert.equal((await api(tenant.authToken, "POST", `${base}/${app.id}/secretkey`, {})).status, 200);
  });

  it("Delete app → {}; the app is gone from get, list and secretkey", async () => {
    const app = assertWholeApp((await api(tenant.authToken, "POST", base, { description: "doomed" })).json);
    const r = await api(tenant.authToken, "DELETE", `${base}/${app.id}`);
    assert.deepEqual([r.status, r.json], [200, {}]);
    assert.equal((await api(tenant.authToken, "GET", `${base}/${app.id}`)).status, 403);
    assert.equal((await api(tenant.authToken, "GET", `${base}/${app.id}/secretkey`)).status, 403);
    assert.equal((await api(tenant.authToken, "DELETE", `${base}/${app.id}`)).status, 403);
    const list = (await api(tenant.authToken, "GET", base)).json as Json[];
    assert.ok(!list.some((a) => a.id === app.id));
  });
});

describe("SkyWay app API: documented errors", () => {
  let tenant: { tenantId: string; authToken: string };
  let base: string;
  let appId: string;
  before(async () => {
    tenant = await createTenant(server.url, "errors");
    base = `/tenants/${tenant.tenantId}/apps`;
    appId = assertWholeApp((await api(tenant.authToken, "POST", base, {})).json).id as string;
  });

  const invalid: [string, unknown][] = [
    ["description over 128 characters", { description: "x".repeat(129) }],
    ["domain over 253 characters", { domains: [`${`${"a".repeat(60)}.`.repeat(4)}abcdefghij.com`] }],
    ["invalid domain format", { domains: ["exa mple.com"] }],
    ["invalid domain: scheme", { domains: ["https://example.com"] }],
    ["invalid domain: leading hyphen", { domains: ["-bad.example.com"] }],
    ["invalid domain: wildcard in the middle", { domains: ["a.*.example.com"] }],
    ["invalid status", { status: "deleted" }],
    ["invalid permissions", { permissions: ["TURN", "VIDEO"] }],
    ["wrong type: description", { description: 5 }],
    ["wrong type: domains", { domains: "example.com" }],
    ["wrong type: domains entry", { domains: [1] }],
    ["wrong type: permissions", { permissions: { TURN: true } }],
    ["invalid bucket name", { recording_bucket_name: "Not_A_Bucket!" }],
    ["body not an object", [1, 2]],
  ];
  for (const [what, body] of invalid) {
    it(`400 on create and update: ${what}`, async () => {
      const created = await api(tenant.authToken, "POST", base, body);
      assert.equal(created.status, 400, created.text);
      assert.equal(typeof (created.json as Json).message, "string");
      const updated = await api(tenant.authToken, "PUT", `${base}/${appId}`, body);
      assert.equal(updated.status, 400, updated.text);
    });
  }

  it("accepts the limits themselves: 128-character description, 253-character domain", async () => {
    const domain = `${`${"a".repeat(62)}.`.repeat(4)}ab`.slice(0, 253);
    assert.equal(domain.length, 253);
    const r = await api(tenant.authToken, "POST", base, { description: "é".repeat(128), domains: [domain] });
    assert.equal(r.status, 200, r.text);
  });

  it("400 for broken JSON, 415 for a non-JSON content type, 404/405 for unknown routes", async () => {
    assert.equal((await api(tenant.authToken, "POST", base, "{")).status, 400);
    const form = await fetch(server.url + base, {
      method: "POST",
      headers: { "X-Auth-Token": tenant.authToken, "content-type": "application/x-www-form-urlencoded" },
      body: "description=x",
    });
    assert.equal(form.status, 415);
    assert.equal((await api(tenant.authToken, "PATCH", base)).status, 405);
    assert.equal((await api(tenant.authToken, "GET", `${base}/${appId}/nothing`)).status, 404);
  });

  const endpoints = (id: string): [string, string][] => [
    ["GET", ""],
    ["POST", ""],
    ["GET", `/${id}`],
    ["PUT", `/${id}`],
    ["DELETE", `/${id}`],
    ["GET", `/${id}/secretkey`],
    ["POST", `/${id}/secretkey`],
  ];

  it("403 with the same body on every endpoint: no token, wrong token", async () => {
    for (const [method, suffix] of endpoints(appId)) {
      for (const token of [undefined, "not-a-token"]) {
        const r = await api(token, method, base + suffix, method === "GET" || method === "DELETE" ? undefined : {});
        assert.deepEqual([r.status, r.json], [403, { message: "forbidden" }], `${method} ${suffix} ${token}`);
      }
    }
  });

  it("403 for another tenant's path or app (never revealing which)", async () => {
    const other = await createTenant(server.url, "other");
    const otherApp = assertWholeApp((await api(other.authToken, "POST", `/tenants/${other.tenantId}/apps`, {})).json);
    for (const [method, suffix] of endpoints(appId)) {
      const body = method === "GET" || method === "DELETE" ? undefined : {};
      const r = await api(other.authToken, method, base + suffix, body);
      assert.deepEqual([r.status, r.json], [403, { message: "forbidden" }], `${method} ${suffix}`);
    }
    for (const [method, suffix] of endpoints(otherApp.id as string).slice(2)) {
      const body = method === "GET" || method === "DELETE" ? undefined : {};
      const r = await api(tenant.authToken, method, base + suffix, body);
      assert.deepEqual([r.status, r.json], [403, { message: "forbidden" }], `${method} ${suffix}`);
    }
    const missing = await api(tenant.authToken, "GET", `${base}/00000000-0000-4000-8000-000000000000`);
    assert.deepEqual([missing.status, missing.json], [403, { message: "forbidden" }]);
    assert.equal((await api(other.authToken, "GET", `/tenants/${other.tenantId}/apps/${otherApp.id}`)).status, 200);
  });

  it("403 on every endpoint while the tenant is suspended or deleted; back after reactivation", async () => {
    const t = await createTenant(server.url, "suspendable");
    const tBase = `/tenants/${t.tenantId}/apps`;
    const id = assertWholeApp((await api(t.authToken, "POST", tBase, {})).json).id as string;
    await setTenantStatus(server.url, t.tenantId, "suspended");
    for (const [method, suffix] of endpoints(id)) {
      const body = method === "GET" || method === "DELETE" ? undefined : {};
      assert.equal((await api(t.authToken, method, tBase + suffix, body)).status, 403, `${method} ${suffix}`);
    }
    await setTenantStatus(server.url, t.tenantId, "active");
    assert.equal((await api(t.authToken, "GET", `${tBase}/${id}`)).status, 200);
    await setTenantStatus(server.url, t.tenantId, "deleted");
    for (const [method, suffix] of endpoints(id)) {
      const body = method === "GET" || method === "DELETE" ? undefined : {};
      assert.equal((await api(t.authToken, method, tBase + suffix, body)).status, 403, `${method} ${suffix}`);
    }
  });

  it("a rotated tenant token stops working at once", async () => {
    const t = await createTenant(server.url, "rotating");
    const res = await fetch(`${server.url}/admin/v1/tenants/${t.tenantId}:rotateToken`, {
      method: "POST",
      headers: { authorization: "Bearer e2e-admin-token-0123456789abcdef" },
    });
    const { authToken } = (await res.json()) as { authToken: string };
    assert.equal((await api(t.authToken, "GET", `/tenants/${t.tenantId}/apps`)).status, 403);
    assert.equal((await api(authToken, "GET", `/tenants/${t.tenantId}/apps`)).status, 200);
  });
});

describe("SkyWay app API: scale, concurrency, secrecy, other protocols", () => {
  it("lists 1,000 apps both ways", async () => {
    const t = await createTenant(server.url, "big");
    const tBase = `/tenants/${t.tenantId}/apps`;
    const ids: string[] = [];
    for (let batch = 0; batch < 20; batch++) {
      const created = await Promise.all(
        Array.from({ length: 50 }, (_, i) => api(t.authToken, "POST", tBase, { description: `app ${batch * 50 + i}` })),
      );
      for (const c of created) ids.push((c.json as Json).id as string);
    }
    const plain = (await api(t.authToken, "GET", tBase)).json as Json[];
    const expanded = (await api(t.authToken, "GET", `${tBase}?expandApps`)).json as Json[];
    assert.equal(plain.length, 1000);
    assert.equal(expanded.length, 1000);
    assert.deepEqual(new Set(plain.map((a) => a.id)), new Set(ids));
    assert.deepEqual(
      plain,
      expanded.map((a) => ({ id: a.id, apikey: a.apikey, description: a.description })),
    );
    for (const a of expanded) assertWholeApp(a);
  });

  it("concurrent updates leave each app equal to one whole update", async () => {
    const t = await createTenant(server.url, "concurrent");
    const tBase = `/tenants/${t.tenantId}/apps`;
    const id = (await api(t.authToken, "POST", tBase, {})).json as Json;
    const bodies = Array.from({ length: 40 }, (_, i) => ({
      description: `writer ${i}`,
      domains: [`w${i}.example.com`],
      permissions: i % 2 === 0 ? ["TURN"] : ["SFU", "USER_LIST"],
      status: i % 3 === 0 ? "suspended" : "active",
    }));
    const results = await Promise.all(bodies.map((b) => api(t.authToken, "PUT", `${tBase}/${id.id}`, b)));
    for (const r of results) assert.equal(r.status, 200);
    const final = (await api(t.authToken, "GET", `${tBase}/${id.id}`)).json as Json;
    const writer = Number(String(final.description).replace("writer ", ""));
    const expected = bodies[writer];
    assert.ok(expected !== undefined);
    assert.deepEqual(
      { description: final.description, domains: final.domains, permissions: final.permissions, status: final.status },
      expected,
    );
  });

  it("never shows secrets in the database file, other responses or logs", async () => {
    const t = await createTenant(server.url, "secrets");
    const tBase = `/tenants/${t.tenantId}/apps`;
    const serviceKey = "SERVICE-ACCOUNT-KEY-c2VjcmV0LXZhbHVlLXRoYXQtbXVzdC1zdGF5LWhpZGRlbg";
    const created = await api(t.authToken, "POST", tBase, {
      permissions: ["RECORDING"],
      recording_bucket_name: "bucket-1",
      recording_service_account_key: serviceKey,
    });
    const app = created.json as Json;
    const secret = ((await api(t.authToken, "GET", `${tBase}/${app.id}/secretkey`)).json as Json).secretkey as string;
    const responses = [
      created.text,
      (await api(t.authToken, "GET", `${tBase}/${app.id}`)).text,
      (await api(t.authToken, "GET", `${tBase}?expandApps`)).text,
    ];
    for (const text of responses) {
      assert.ok(!text.includes(serviceKey));
      assert.ok(!text.includes(secret));
    }
    const files = fs.readdirSync(server.dataDir).filter((f) => f.startsWith("rtcplane.db"));
    for (const f of files) {
      const bytes = fs.readFileSync(path.join(server.dataDir, f));
      assert.ok(!bytes.includes(secret), `${f} holds the secret key in plain text`);
      assert.ok(!bytes.includes(serviceKey), `${f} holds the service account key in plain text`);
      assert.ok(!bytes.includes(t.authToken), `${f} holds the tenant token in plain text`);
    }
    const logs = logLines.join("");
    assert.ok(logs.length > 0, "the server logged at trace level");
    for (const s of [serviceKey, secret, t.authToken]) assert.ok(!logs.includes(s), "a secret reached the log");
  });

  it("Connect and gRPC answer the same as REST with x-auth-token metadata", async () => {
    const t = await createTenant(server.url, "rpc");
    const tBase = `/tenants/${t.tenantId}/apps`;
    const rest = (await api(t.authToken, "POST", tBase, { description: "rpc", domains: ["a.example"] })).json as Json;
    const call = (protocol: string[], method: string, body: unknown, token = t.authToken) =>
      bufCurl([
        ...protocol,
        "-H",
        `x-auth-token: ${token}`,
        "-d",
        JSON.stringify(body),
        `${server.url}/rtcplane.apps.v1.AppService/${method}`,
      ]);
    for (const protocol of [
      ["--protocol", "connect"],
      ["--protocol", "grpc", "--http2-prior-knowledge"],
    ]) {
      const got = await call(protocol, "GetApp", { tenantId: t.tenantId, appId: rest.id });
      assert.equal(got.code, 0, got.stderr);
      const app = (JSON.parse(got.stdout) as { app: Json }).app;
      assert.equal(app.id, rest.id);
      assert.equal(app.apikey, rest.apikey);
      assert.equal(app.description, "rpc");
      assert.deepEqual(app.domains, { values: ["a.example"] });
      assert.equal(app.createdAt, rest.created_at);
      const list = await call(protocol, "ListApps", { tenantId: t.tenantId });
      assert.deepEqual(JSON.parse(list.stdout), {
        apps: [{ id: rest.id, apikey: rest.apikey, description: "rpc" }],
      });
      const denied = await call(protocol, "GetApp", { tenantId: t.tenantId, appId: rest.id }, "wrong");
      assert.match(denied.stderr, /unauthenticated/);
      const missing = await call(protocol, "GetApp", { tenantId: t.tenantId, appId: "nope" });
      assert.match(missing.stderr, /not_found/);
      const invalid = await call(protocol, "CreateApp", { tenantId: t.tenantId, permissions: { values: ["X"] } });
      assert.match(invalid.stderr, /invalid_argument/);
    }
  });
});

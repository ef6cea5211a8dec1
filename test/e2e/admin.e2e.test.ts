/**
 * The admin API end to end on a real server: the same RPCs over gRPC (h2c), gRPC-web
 * and Connect through `buf curl`, and over REST with plain HTTP/1.1 and HTTP/2.
 */
import assert from "node:assert/strict";
import http2 from "node:http2";
import { after, before, describe, it } from "node:test";
import { ADMIN_TOKEN, bufCurl, startServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
before(async () => {
  server = await startServer({ MAX_BODY_BYTES: "4096" });
});
after(() => server.close());

const AUTH = { authorization: `Bearer ${ADMIN_TOKEN}` };

async function rest(method: string, path: string, body?: unknown, headers: Record<string, string> = AUTH) {
  const res = await fetch(server.url + path, {
    method,
    headers: { ...headers, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text === "" ? undefined : JSON.parse(text) };
}

const PROTOCOLS = {
  grpc: ["--protocol", "grpc", "--http2-prior-knowledge"],
  grpcweb: ["--protocol", "grpcweb"],
  connect: ["--protocol", "connect"],
} as const;

async function rpc(
  protocol: keyof typeof PROTOCOLS,
  method: string,
  body: unknown,
  token: string | null = ADMIN_TOKEN,
) {
  const r = await bufCurl([
    ...PROTOCOLS[protocol],
    ...(token === null ? [] : ["-H", `authorization: Bearer ${token}`]),
    "-d",
    JSON.stringify(body),
    `${server.url}/rtcplane.admin.v1.AdminService/${method}`,
  ]);
  return { ...r, json: r.code === 0 ? JSON.parse(r.stdout) : undefined };
}

describe("admin API over four protocols on one port", () => {
  let tenantId: string;
  let restTenant: unknown;

  before(async () => {
    const created = await rest("POST", "/admin/v1/tenants", { name: "Acme Corp" });
    assert.equal(created.status, 200);
    assert.match(created.json.tenantId, /^[0-9a-f]{32}$/);
    assert.ok(created.json.authToken.length >= 22, "token carries at least 128 bits");
    tenantId = created.json.tenantId;
    restTenant = (await rest("GET", `/admin/v1/tenants/${tenantId}`)).json;
  });

  for (const protocol of Object.keys(PROTOCOLS) as (keyof typeof PROTOCOLS)[]) {
    it(`GetTenant over ${protocol} equals the REST answer`, async () => {
      const r = await rpc(protocol, "GetTenant", { tenantId });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.json, restTenant);
    });

    it(`CreateTenant over ${protocol} is visible over REST`, async () => {
      const r = await rpc(protocol, "CreateTenant", { name: `via ${protocol}` });
      assert.equal(r.code, 0, r.stderr);
      const got = await rest("GET", `/admin/v1/tenants/${r.json.tenantId}`);
      assert.equal(got.json.tenant.name, `via ${protocol}`);
      assert.deepEqual(got.json.tenant, r.json.tenant);
    });

    it(`${protocol} without or with a wrong token is UNAUTHENTICATED`, async () => {
      for (const token of [null, "wrong-token-wrong-token"]) {
        const r = await rpc(protocol, "GetTenant", { tenantId }, token);
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, /unauthenticated/);
      }
    });
  }

  it("REST without or with a wrong token is 401 in google.rpc.Status shape", async () => {
    const attempts: Record<string, string>[] = [{}, { authorization: "Bearer nope" }, { authorization: "Basic abc" }];
    for (const headers of attempts) {
      const r = await rest("GET", `/admin/v1/tenants/${tenantId}`, undefined, headers);
      assert.equal(r.status, 401);
      assert.equal(r.json.code, 16);
      assert.deepEqual(r.json.details, []);
      assert.equal(typeof r.json.message, "string");
    }
  });

  it("REST over HTTP/2 with prior knowledge answers the same", async () => {
    const session = http2.connect(server.url);
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const req = session.request({ ":path": `/admin/v1/tenants/${tenantId}`, ...AUTH });
        let data = "";
        req.setEncoding("utf8");
        req.on("data", (c: string) => {
          data += c;
        });
        req.on("end", () => resolve(data));
        req.on("error", reject);
      });
      assert.deepEqual(JSON.parse(body), restTenant);
    } finally {
      session.close();
    }
  });

  it("reflection lists the services with no proto files", async () => {
    const r = await bufCurl([...PROTOCOLS.grpc, "--list-methods", server.url]);
    assert.equal(r.code, 0, r.stderr);
    for (const m of ["CreateTenant", "GetTenant", "ListTenants", "UpdateTenant", "RotateTenantToken"]) {
      assert.ok(r.stdout.includes(`rtcplane.admin.v1.AdminService/${m}`), m);
    }
    assert.ok(r.stdout.includes("grpc.health.v1.Health/Check"));
    const alpha = await bufCurl([
      ...PROTOCOLS.grpc,
      "--reflect-protocol",
      "grpc-v1alpha",
      "--list-services",
      server.url,
    ]);
    assert.equal(alpha.code, 0, alpha.stderr);
    assert.ok(alpha.stdout.includes("rtcplane.admin.v1.AdminService"));
  });

  it("health is SERVING over gRPC and /healthz", async () => {
    const r = await bufCurl([...PROTOCOLS.grpc, `${server.url}/grpc.health.v1.Health/Check`]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { status: "SERVING" });
    const svc = await bufCurl([
      ...PROTOCOLS.grpc,
      "-d",
      '{"service":"rtcplane.admin.v1.AdminService"}',
      `${server.url}/grpc.health.v1.Health/Check`,
    ]);
    assert.deepEqual(JSON.parse(svc.stdout), { status: "SERVING" });
    const unknown = await bufCurl([
      ...PROTOCOLS.grpc,
      "-d",
      '{"service":"nope"}',
      `${server.url}/grpc.health.v1.Health/Check`,
    ]);
    assert.match(unknown.stderr, /not_found/);
    const res = await fetch(`${server.url}/healthz`);
    assert.deepEqual([res.status, await res.json()], [200, { status: "SERVING" }]);
  });
});

describe("admin API semantics", () => {
  it("suspends, reactivates and deletes; a deleted tenant cannot change", async () => {
    const { json } = await rest("POST", "/admin/v1/tenants", { name: "lifecycle" });
    const path = `/admin/v1/tenants/${json.tenantId}`;
    const suspended = await rest("PATCH", path, { status: "suspended" });
    assert.equal(suspended.status, 200);
    assert.equal(suspended.json.tenant.status, "suspended");
    assert.equal((await rest("PATCH", path, { status: "active", name: "renamed" })).json.tenant.name, "renamed");
    assert.equal((await rest("PATCH", path, { status: "deleted" })).json.tenant.status, "deleted");
    const again = await rest("PATCH", path, { status: "active" });
    assert.deepEqual([again.status, again.json.code], [400, 9]);
    assert.equal((await rest("GET", path)).json.tenant.status, "deleted", "deleted tenants stay readable");
    const rotate = await rest("POST", `${path}:rotateToken`, {});
    assert.deepEqual([rotate.status, rotate.json.code], [400, 9]);
  });

  it("rotates a tenant's token to a new random one", async () => {
    const { json } = await rest("POST", "/admin/v1/tenants", { name: "rotating" });
    const r = await rest("POST", `/admin/v1/tenants/${json.tenantId}:rotateToken`);
    assert.equal(r.status, 200);
    assert.equal(r.json.tenantId, json.tenantId);
    assert.notEqual(r.json.authToken, json.authToken);
  });

  it("validates names and statuses", async () => {
    for (const body of [{ name: "" }, { name: "   " }, { name: "x".repeat(129) }, { name: "a\u0007b" }, {}]) {
      const r = await rest("POST", "/admin/v1/tenants", body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.json.code, 3);
      assert.match(r.json.message, /^name: /);
    }
    const { json } = await rest("POST", "/admin/v1/tenants", { name: "v" });
    const bad = await rest("PATCH", `/admin/v1/tenants/${json.tenantId}`, { status: "paused" });
    assert.deepEqual([bad.status, bad.json.code], [400, 3]);
    assert.match(bad.json.message, /status: must be one of active, suspended, deleted/);
    const missing = await rest("GET", "/admin/v1/tenants/0123456789abcdef0123456789abcdef");
    assert.deepEqual([missing.status, missing.json.code], [404, 5]);
    const garbage = await rest("GET", "/admin/v1/tenants/..%2F..%2Fetc");
    assert.deepEqual([garbage.status, garbage.json.code], [404, 5]);
  });

  it("pages through tenants with opaque, tamper-proof tokens", async () => {
    const names = new Set<string>();
    for (let i = 0; i < 7; i++)
      names.add((await rest("POST", "/admin/v1/tenants", { name: `page-${i}` })).json.tenant.name);
    const seen: string[] = [];
    let token = "";
    let pages = 0;
    do {
      const r = await rest("GET", `/admin/v1/tenants?pageSize=3&pageToken=${encodeURIComponent(token)}`);
      assert.equal(r.status, 200);
      assert.ok(r.json.tenants.length <= 3);
      seen.push(...r.json.tenants.map((t: { name: string }) => t.name));
      token = r.json.nextPageToken;
      pages++;
    } while (token !== "" && pages < 100);
    assert.equal(new Set(seen).size, seen.length, "no tenant repeated");
    for (const n of names) assert.ok(seen.includes(n), n);
    const first = await rest("GET", "/admin/v1/tenants?pageSize=1");
    const forged = `${first.json.nextPageToken.slice(0, -2)}AA`;
    const r = await rest("GET", `/admin/v1/tenants?pageSize=1&pageToken=${forged}`);
    assert.deepEqual([r.status, r.json.code], [400, 3]);
    assert.equal((await rest("GET", "/admin/v1/tenants?pageSize=5000")).status, 400);
    assert.equal((await rest("GET", "/admin/v1/tenants?pageSize=-1")).status, 400);
  });

  it("answers bad requests with documented statuses and keeps serving", async () => {
    const cases: [string, string, unknown, Record<string, string> | undefined, number, number][] = [
      ["GET", "/admin/v1/nothing", undefined, undefined, 404, 5],
      ["DELETE", "/admin/v1/tenants", undefined, undefined, 405, 12],
      ["POST", "/admin/v1/tenants", '{"name":', undefined, 400, 3],
      ["POST", "/admin/v1/tenants", { name: 42 }, undefined, 400, 3],
      ["POST", "/admin/v1/tenants", { name: "x", extra: true }, undefined, 400, 3],
      ["POST", "/admin/v1/tenants", { name: "x".repeat(5000) }, undefined, 413, 8],
    ];
    for (const [method, path, body, headers, status, code] of cases) {
      const r = await rest(method, path, body, headers);
      assert.deepEqual([r.status, r.json.code], [status, code], `${method} ${path}`);
      assert.equal(typeof r.json.message, "string");
    }
    const wrongType = await fetch(`${server.url}/admin/v1/tenants`, {
      method: "POST",
      headers: { ...AUTH, "content-type": "application/x-www-form-urlencoded" },
      body: "name=x",
    });
    assert.equal(wrongType.status, 415);
    const big = await bufCurl([
      ...PROTOCOLS.connect,
      "-H",
      `authorization: Bearer ${ADMIN_TOKEN}`,
      "-d",
      JSON.stringify({ name: "x".repeat(5000) }),
      `${server.url}/rtcplane.admin.v1.AdminService/CreateTenant`,
    ]);
    assert.match(big.stderr, /resource_exhausted/);
    assert.equal((await rest("GET", "/admin/v1/tenants?pageSize=1")).status, 200);
  });

  it("answers CORS preflights for browser clients on other origins", async () => {
    const res = await fetch(`${server.url}/rtcplane.admin.v1.AdminService/ListTenants`, {
      method: "OPTIONS",
      headers: {
        origin: "http://other.example:3000",
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization,content-type,connect-protocol-version",
      },
    });
    assert.equal(res.status, 204);
    assert.equal(res.headers.get("access-control-allow-origin"), "*");
    const allowed = (res.headers.get("access-control-allow-headers") ?? "").toLowerCase();
    for (const h of ["authorization", "content-type", "connect-protocol-version", "x-grpc-web"])
      assert.ok(allowed.includes(h), h);
  });
});

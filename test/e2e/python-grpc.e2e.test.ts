/**
 * A second language: Debian's Python grpcio calls the admin API over h2c with messages
 * compiled from proto/ by protoc. Fails (never skips) when the client is missing.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { ROOT } from "../helpers/protoc.js";
import { ADMIN_TOKEN, createTenant, run, startServer, type TestServer, tempDir } from "../helpers/server.js";

const PYTHON = "/usr/bin/python3"; // Debian's interpreter, where python3-grpcio installs

let server: TestServer;
const pythonOut = tempDir("rtcplane-py-");
before(async () => {
  server = await startServer();
});
after(() => server.close());

describe("Python grpcio client", () => {
  it("creates, gets and lists tenants the same as REST, and is refused without a token", async () => {
    const probe = await run(PYTHON, ["-c", "import grpc, google.protobuf"]);
    assert.equal(probe.code, 0, `python3-grpcio and python3-protobuf must be installed: ${probe.stderr}`);
    const out = pythonOut;
    const protoc = await run("protoc", [
      `-I${path.join(ROOT, "proto")}`,
      `-I${path.join(ROOT, "node_modules/google-proto-files")}`,
      `--python_out=${out}`,
      "rtcplane/admin/v1/admin.proto",
      "rtcplane/apps/v1/apps.proto",
      "rtcplane/options/v1/options.proto",
      "google/api/annotations.proto",
      "google/api/http.proto",
    ]);
    assert.equal(protoc.code, 0, protoc.stderr);
    const target = server.url.replace("http://", "");
    const r = await run("env", [
      `PYTHONPATH=${out}`,
      PYTHON,
      path.join(ROOT, "test/e2e/python/admin_client.py"),
      target,
      ADMIN_TOKEN,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout);
    const rest = await fetch(`${server.url}/admin/v1/tenants/${result.created.tenantId}`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    const restJson = await rest.json();
    assert.deepEqual(result.got, restJson);
    assert.equal(result.created.tenant.name, "from python");
    assert.ok(result.listedIds.includes(result.created.tenantId));
    assert.equal(result.missing, "UNAUTHENTICATED");
    assert.equal(result.wrong, "UNAUTHENTICATED");
  });

  it("creates and lists SkyWay apps the same as REST shows them", async () => {
    const tenant = await createTenant(server.url, "python apps");
    const r = await run("env", [
      `PYTHONPATH=${pythonOut}`,
      PYTHON,
      path.join(ROOT, "test/e2e/python/apps_client.py"),
      server.url.replace("http://", ""),
      tenant.tenantId,
      tenant.authToken,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout);
    const rest = await fetch(`${server.url}/tenants/${tenant.tenantId}/apps?expandApps`, {
      headers: { "x-auth-token": tenant.authToken },
    });
    const [restApp] = (await rest.json()) as Record<string, unknown>[];
    assert.ok(restApp);
    assert.equal(result.created.id, restApp.id);
    assert.equal(result.created.apikey, restApp.apikey);
    assert.equal(result.created.description, "from python");
    assert.deepEqual(result.created.domains.values, restApp.domains);
    assert.deepEqual(result.created.permissions.values, restApp.permissions);
    assert.equal(result.created.created_at, restApp.created_at);
    assert.deepEqual(result.created.recording, restApp.recording);
    assert.deepEqual(result.listed, [result.created]);
    const secret = await fetch(`${server.url}/tenants/${tenant.tenantId}/apps/${restApp.id}/secretkey`, {
      headers: { "x-auth-token": tenant.authToken },
    });
    assert.deepEqual(await secret.json(), { secretkey: result.secretkey });
    assert.equal(result.wrong, "UNAUTHENTICATED");
  });
});

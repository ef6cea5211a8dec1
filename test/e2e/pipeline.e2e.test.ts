/**
 * One request pipeline (issue 11): REST requests pass the same interceptors as gRPC and
 * Connect — the same request id reaches the same log line, the same credential check
 * refuses both alike — and every cached credential is forgotten on the very next request
 * after a renew, rotate, suspend or delete.
 */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { pino } from "pino";
import { RoomService } from "../../gen/rtcplane/rooms/v1/rooms_pb.js";
import { reasonOf } from "../../src/http/rpc-errors.js";
import { createApp, setTenantStatus, startServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
const lines: Record<string, unknown>[] = [];

before(async () => {
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const l of chunk.toString().split("\n")) if (l.startsWith("{")) lines.push(JSON.parse(l));
      done();
    },
  });
  server = await startServer({}, undefined, pino({ level: "info" }, sink));
});
after(() => server.close());

async function logLine(reqId: string): Promise<Record<string, unknown>> {
  for (let i = 0; i < 100; i++) {
    const line = lines.find((l) => l.reqId === reqId && l.msg === "request refused");
    if (line !== undefined) return line;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`no request line for ${reqId}`);
}

describe("one pipeline for every protocol", () => {
  it("runs the same interceptors for REST and gRPC: one request id per log line, the same refusal", async () => {
    const rest = await fetch(`${server.url}/api/realtime/room/RO-nope`, {
      headers: { "x-vcs-token": "not-a-secret", "x-request-id": "pipeline-rest-1" },
    });
    assert.equal(rest.headers.get("x-request-id"), "pipeline-rest-1");
    const body = (await rest.json()) as { code: string; id: string };
    assert.deepEqual([rest.status, body.code, body.id], [400, "REALTIME-00009", "INVALID_TOKEN"]);

    const grpc = createClient(RoomService, createGrpcTransport({ baseUrl: server.url }));
    const refused = await grpc
      .getRoom({ id: "RO-nope" }, { headers: { "x-vcs-token": "not-a-secret", "x-request-id": "pipeline-grpc-1" } })
      .then(
        () => undefined,
        (e: unknown) => e as ConnectError,
      );
    assert.ok(refused instanceof ConnectError);
    assert.equal(refused.code, Code.Unauthenticated);
    assert.equal(reasonOf(refused)?.reason, "INVALID_TOKEN", "the same refusal, with the same reason");

    // The error interceptor recorded the RPC's outcome on the request's own log line, for both.
    for (const [reqId, path] of [
      ["pipeline-rest-1", "/api/realtime/room/RO-nope"],
      ["pipeline-grpc-1", "/rtcplane.rooms.v1.RoomService/GetRoom"],
    ] as const) {
      const line = await logLine(reqId);
      assert.equal(line.rpc, "rtcplane.rooms.v1.RoomService/GetRoom", reqId);
      assert.equal(line.code, "Unauthenticated", reqId);
      assert.equal(line.path, path, reqId);
    }
  });
});

describe("cached credentials are forgotten at once", () => {
  const room = (secret: string) =>
    fetch(`${server.url}/api/realtime/room`, {
      method: "POST",
      headers: { "x-vcs-token": secret, "content-type": "application/json" },
      body: "{}",
    }).then((r) => r.status);
  const apps = (tenantId: string, token: string) =>
    fetch(`${server.url}/tenants/${tenantId}/apps`, { headers: { "x-auth-token": token } }).then((r) => r.status);

  it("a renewed secret is refused on the next request", async () => {
    const a = await createApp(server.url);
    assert.equal(await room(a.secret), 200);
    assert.equal(await room(a.secret), 200, "served from the cache");
    const renewed = (await (
      await fetch(`${server.url}/tenants/${a.tenantId}/apps/${a.appId}/secretkey`, {
        method: "POST",
        headers: { "x-auth-token": a.authToken },
      })
    ).json()) as { secretkey: string };
    assert.equal(await room(a.secret), 400);
    assert.equal(await room(renewed.secretkey), 200);
  });

  it("a rotated tenant token is refused on the next request", async () => {
    const a = await createApp(server.url);
    assert.equal(await apps(a.tenantId, a.authToken), 200);
    const rotated = (await (
      await fetch(`${server.url}/admin/v1/tenants/${a.tenantId}:rotateToken`, {
        method: "POST",
        headers: { authorization: "Bearer e2e-admin-token-0123456789abcdef" },
      })
    ).json()) as { authToken: string };
    assert.equal(await apps(a.tenantId, a.authToken), 403);
    assert.equal(await apps(a.tenantId, rotated.authToken), 200);
  });

  it("a suspended tenant or app, and a deleted app, are refused on the next request", async () => {
    const a = await createApp(server.url);
    assert.equal(await room(a.secret), 200);
    await setTenantStatus(server.url, a.tenantId, "suspended");
    assert.equal(await room(a.secret), 400);
    assert.equal(await apps(a.tenantId, a.authToken), 403);
    await setTenantStatus(server.url, a.tenantId, "active");
    assert.equal(await room(a.secret), 200);

    const put = (status: string) =>
      fetch(`${server.url}/tenants/${a.tenantId}/apps/${a.appId}`, {
        method: "PUT",
        headers: { "x-auth-token": a.authToken, "content-type": "application/json" },
        body: JSON.stringify({ status }),
      });
    await put("suspended");
    assert.equal(await room(a.secret), 400);
    await put("active");
    assert.equal(await room(a.secret), 200);
    await fetch(`${server.url}/tenants/${a.tenantId}/apps/${a.appId}`, {
      method: "DELETE",
      headers: { "x-auth-token": a.authToken },
    });
    assert.equal(await room(a.secret), 400);
  });
});

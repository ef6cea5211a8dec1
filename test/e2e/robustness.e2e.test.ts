/**
 * Hostile and unusual inputs found in review: each must get a clear answer and leave the
 * server serving — malformed request targets and Host headers, stray Upgrade headers,
 * broken Basic credentials, unbounded per-session state, suspended apps on MQTT.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import mqtt from "mqtt";
import WebSocket from "ws";
import { ADMIN_TOKEN, createApp, startServer, type TestServer } from "../helpers/server.js";

const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

let server: TestServer;
before(async () => {
  server = await startServer();
});
after(() => server.close());

/** Sends raw bytes and returns what the server answered before closing or going quiet. */
function raw(request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(server.port, "127.0.0.1", () => socket.write(request));
    let answer = "";
    socket.setTimeout(2000, () => socket.destroy());
    socket.on("data", (c) => {
      answer += c.toString();
    });
    socket.on("close", () => resolve(answer));
    socket.on("error", reject);
  });
}

async function healthy(): Promise<void> {
  const res = await fetch(`${server.url}/healthz`);
  assert.equal(res.status, 200);
}

describe("robustness", () => {
  it("answers a malformed Host header or request target with 400 and keeps serving", async () => {
    const badHost = await raw(
      "POST /rtcplane.spreed.v1.SpreedService/GetConfig HTTP/1.1\r\nHost: a b\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    );
    assert.match(badHost, /^HTTP\/1\.1 400/);
    await healthy();
    const badTarget = await raw("GET //[ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert.match(badTarget, /^HTTP\/1\.1 404/, "an odd path is just an unknown path");
    const doubleSlash = await raw("GET //admin/v1/tenants HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert.match(doubleSlash, /^HTTP\/1\.1 404/, "a path, never a host");
    await healthy();
  });

  it("serves requests that carry a stray Upgrade header (curl --http2) as if it were absent", async () => {
    const answer = await raw(
      "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n",
    );
    assert.match(answer, /^HTTP\/1\.1 200/);
    assert.match(answer, /"SERVING"/);
    const rest = await raw(
      `GET /admin/v1/tenants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n`,
    );
    assert.match(rest, /^HTTP\/1\.1 200/);
  });

  it("answers malformed Basic credentials at the token endpoint with 401 invalid_client", async () => {
    const res = await fetch(`${server.url}/security/oauth/token`, {
      method: "POST",
      headers: { authorization: "Basic JQ==", "content-type": "application/x-www-form-urlencoded" },
      body: "grant_type=client_credentials",
    });
    assert.equal(res.status, 401);
    assert.equal(((await res.json()) as { error: string }).error, "invalid_client");
  });

  it("keeps one buddy picture per Spreed session and a bounded number of nonces", async () => {
    const ws = new WebSocket(`${server.url.replace("http", "ws")}/ws`);
    const docs: Record<string, unknown>[] = [];
    ws.on("message", (m) => docs.push((JSON.parse(m.toString()) as { Data: Record<string, unknown> }).Data));
    await new Promise((r) => ws.once("open", r));
    const take = async (type: string) => {
      for (let i = 0; i < 300; i++) {
        const at = docs.findIndex((d) => d.Type === type);
        if (at >= 0) return docs.splice(at, 1)[0] as Record<string, unknown>;
        await new Promise((r) => setTimeout(r, 10));
      }
      throw new Error(`no ${type}`);
    };
    const self = await take("Self");
    ws.send(JSON.stringify({ Type: "Chat", Chat: { To: "anyone", Chat: { Message: "before Hello" } } }));
    assert.equal((await take("Error")).Code, "bad_request", "no room, no chat");
    ws.send(JSON.stringify({ Type: "Hello", Hello: { Id: "pics" } }));
    await take("Welcome");
    const pictures: string[] = [];
    for (let i = 0; i < 3; i++) {
      ws.send(
        JSON.stringify({
          Type: "Status",
          Status: {
            buddyPicture: `data:image/png;base64,${Buffer.concat([PNG_MAGIC, Buffer.from(`png${i}`)]).toString("base64")}`,
          },
        }),
      );
      pictures.push(((await take("Status")).Status as { buddyPicture: string }).buddyPicture);
    }
    const url = (p: string) => `${server.url}/static/img/buddy/s46/${p.slice(4)}`;
    assert.equal((await fetch(url(pictures[0] as string))).status, 404, "replaced pictures are freed");
    assert.equal((await fetch(url(pictures[2] as string))).status, 200);

    const register = () =>
      fetch(`${server.url}/api/v1/users`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ id: self.Id, sid: self.Sid }),
      }).then((r) => r.json() as Promise<{ userid: string; nonce: string }>);
    const first = await register();
    for (let i = 0; i < 8; i++) await register();
    ws.send(JSON.stringify({ Type: "Authentication", Authentication: { Userid: first.userid, Nonce: first.nonce } }));
    assert.equal((await take("Error")).Code, "authentication_failed", "the oldest nonce was dropped");
    ws.close();
  });

  it("refuses MQTT logins for a suspended app", async () => {
    const app = await createApp(server.url);
    const tokenRes = await fetch(`${server.url}/security/oauth/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "client_credentials", client_id: app.apikey, client_secret: app.secret }),
    });
    const { access_token, userId } = (await tokenRes.json()) as { access_token: string; userId: string };
    await fetch(`${server.url}/tenants/${app.tenantId}/apps/${app.appId}`, {
      method: "PUT",
      headers: { "x-auth-token": app.authToken, "content-type": "application/json" },
      body: '{"status":"suspended"}',
    });
    await assert.rejects(
      mqtt.connectAsync(`${server.url.replace("http", "ws")}/ws`, {
        username: userId,
        password: access_token,
        reconnectPeriod: 0,
        connectTimeout: 3000,
      }),
    );
  });
});

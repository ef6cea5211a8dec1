/**
 * Attacks on credentials and isolation (issue 10, findings 3, 7 and 8), over REST, gRPC
 * and MQTT: tokens that outlive a renewed secret, refresh tokens used twice or forever,
 * ids squatted across apps, and USER tokens acting beyond their own endpoints.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import mqtt from "mqtt";
import { ConferenceService, UserEndpointService } from "../../gen/rtcplane/conference/v1/conference_pb.js";
import { type Json, rest, roomToken, serviceToken, token } from "../helpers/conference-client.js";
import { createApp, startServer, type TestApp, type TestServer } from "../helpers/server.js";

let server: TestServer;
before(async () => {
  server = await startServer({ REFRESH_TOKEN_TTL_SECONDS: "2", REFRESH_CHAIN_LIFETIME_SECONDS: "3" });
});
after(() => server.close());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function clientCredentials(a: TestApp) {
  const r = await token(server.url, { grant_type: "client_credentials", client_id: a.apikey, client_secret: a.secret });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return r.json as { access_token: string; refresh_token: string; sub: string };
}

function refresh(refreshToken: string) {
  return token(server.url, { grant_type: "refresh_token", refresh_token: refreshToken });
}

async function renewSecret(a: TestApp): Promise<string> {
  const res = await fetch(`${server.url}/tenants/${a.tenantId}/apps/${a.appId}/secretkey`, {
    method: "POST",
    headers: { "x-auth-token": a.authToken },
  });
  return ((await res.json()) as { secretkey: string }).secretkey;
}

describe("hardening: tokens after a renewed secret", () => {
  it("refuses every token issued under the old secret, on REST, gRPC and MQTT", async () => {
    const a = await createApp(server.url);
    const login = await clientCredentials(a);
    const room = await roomToken(server.url, a);
    const listEndpoints = (bearer: string) => rest(server.url, bearer)("GET", "/rtc-api/users/endpoints");
    assert.equal((await listEndpoints(login.access_token)).status, 200);
    assert.equal((await listEndpoints(room.token)).status, 200);

    const secret = await renewSecret(a);
    assert.equal((await listEndpoints(login.access_token)).status, 401, "old SERVICE access token");
    assert.equal((await listEndpoints(room.token)).status, 401, "old room token as a bearer");
    const grpc = createClient(UserEndpointService, createGrpcTransport({ baseUrl: server.url }));
    await assert.rejects(
      grpc.listEndpoints({}, { headers: { authorization: `Bearer ${login.access_token}` } }),
      (e: unknown) => e instanceof ConnectError && e.code === Code.Unauthenticated,
    );
    const refreshed = await refresh(login.refresh_token);
    assert.deepEqual([refreshed.status, refreshed.json.error], [400, "invalid_grant"], "old refresh token");
    const ticket = await token(
      server.url,
      { grant_type: "password", username: room.token, password: "x" },
      `${a.apikey}:`,
    );
    assert.deepEqual([ticket.status, ticket.json.error], [400, "invalid_grant"], "old room token as a ticket");
    await assert.rejects(
      mqtt.connectAsync(`${server.url.replace("http", "ws")}/ws`, {
        username: login.sub,
        password: login.access_token,
        reconnectPeriod: 0,
        connectTimeout: 3000,
      }),
      "MQTT with the old token",
    );
    // What the new secret issues works.
    const fresh = await clientCredentials({ ...a, secret });
    assert.equal((await listEndpoints(fresh.access_token)).status, 200);
  });
});

describe("hardening: open event streams end with their credentials", () => {
  it("ends a WatchConferenceEvents stream when the app's secret is renewed", async () => {
    const a = await createApp(server.url);
    const login = await clientCredentials(a);
    const api = rest(server.url, login.access_token);
    const conferenceId = (await api("POST", "/rtc-api/conferences/create", {})).json.id as string;
    const grpc = createClient(ConferenceService, createGrpcTransport({ baseUrl: server.url }));
    const stream = (async () => {
      try {
        for await (const _ of grpc.watchConferenceEvents(
          { conferenceId, sinceVersion: 0n },
          { headers: { authorization: `Bearer ${login.access_token}` } },
        )) {
          // Replayed and live events; the stream must end on its own.
        }
        return "ended without an error";
      } catch (e) {
        return e instanceof ConnectError ? Code[e.code] : String(e);
      }
    })();
    await sleep(200);
    await renewSecret(a);
    const outcome = await Promise.race([stream, sleep(5000).then(() => "still open")]);
    assert.equal(outcome, "Unauthenticated");
  });
});

describe("hardening: refresh tokens", () => {
  it("are one use each; using one again revokes its whole login", async () => {
    const a = await createApp(server.url);
    const login = await clientCredentials(a);
    const first = await refresh(login.refresh_token);
    assert.equal(first.status, 200);
    const second = first.json as { access_token: string; refresh_token: string };
    assert.notEqual(second.refresh_token, login.refresh_token, "a new refresh token each time");

    const replay = await refresh(login.refresh_token);
    assert.deepEqual([replay.status, replay.json.error], [400, "invalid_grant"], "a used refresh token");
    const afterReplay = await refresh(second.refresh_token);
    assert.deepEqual([afterReplay.status, afterReplay.json.error], [400, "invalid_grant"], "the family is revoked");
    const api = rest(server.url, second.access_token);
    assert.equal((await api("GET", "/rtc-api/users/endpoints")).status, 401, "its access tokens too");
    // Another login of the same app is unaffected.
    const other = await clientCredentials(a);
    assert.equal((await rest(server.url, other.access_token)("GET", "/rtc-api/users/endpoints")).status, 200);
  });

  it("cannot chain beyond the login's absolute lifetime (REFRESH_CHAIN_LIFETIME_SECONDS)", async () => {
    const a = await createApp(server.url);
    const started = Date.now();
    let current = (await clientCredentials(a)).refresh_token;
    let refusedAt = 0;
    while (Date.now() - started < 6000) {
      await sleep(700);
      const r = await refresh(current);
      if (r.status !== 200) {
        assert.equal(r.json.error, "invalid_grant");
        refusedAt = Date.now() - started;
        break;
      }
      current = r.json.refresh_token as string;
    }
    assert.ok(refusedAt > 0, "refreshing stopped working");
    // Each token lives 2 s, the chain 3 s: refreshing every 0.7 s keeps tokens fresh, the chain ends it.
    assert.ok(refusedAt >= 3000 && refusedAt < 5000, `refused after ${refusedAt} ms`);
  });
});

describe("hardening: ids are per app", () => {
  it("lets two apps use the same conference and endpoint ids without seeing each other", async () => {
    const a = await createApp(server.url);
    const b = await createApp(server.url);
    const apiA = rest(server.url, await serviceToken(server.url, a));
    const apiB = rest(server.url, await serviceToken(server.url, b));
    for (const api of [apiA, apiB]) {
      const created = await api("POST", "/rtc-api/conferences/create", { conferenceId: "shared-id" });
      assert.equal(created.status, 200, created.text);
      const registered = await api("POST", "/rtc-api/users/endpoints/register", {
        keepAliveSeconds: 30,
        userEndpointId: "E1",
        userId: "alice",
      });
      assert.equal(registered.status, 200, registered.text);
      assert.equal(
        (await api("POST", "/rtc-api/conferences/join", { conferenceId: "shared-id", userEndpointId: "E1" })).status,
        200,
      );
    }
    await apiB("POST", "/rtc-api/conferences/updateMetadata", {
      conferenceId: "shared-id",
      userEndpointId: "E1",
      key: "only-b",
      operation: "SET",
      value: "1",
    });
    const viewA = (await apiA("GET", "/rtc-api/conferences/shared-id")).json;
    assert.deepEqual(Object.keys(viewA.metadata as Json), [], "B's change is not A's");
    const eventsA = (await apiA("GET", "/rtc-api/conferences/shared-id/events?v=0")).json as Json[];
    assert.ok(!eventsA.some((e) => e.key === "only-b"));
  });

  it("a conference squatted on another app's room id leaves that room's conference working", async () => {
    const a = await createApp(server.url);
    const b = await createApp(server.url);
    const room = await roomToken(server.url, a);
    const apiB = rest(server.url, await serviceToken(server.url, b));
    assert.equal((await apiB("POST", "/rtc-api/conferences/create", { conferenceId: room.id })).status, 200);
    const user = rest(server.url, room.token);
    const joined = await user("POST", "/rtc-api/conferences/join", { conferenceId: room.id, userEndpointId: "u-1" });
    assert.equal(joined.status, 200, joined.text);
  });
});

describe("hardening: USER tokens act only as their own endpoints", () => {
  it("cannot end a conference without having joined, nor write as another user's endpoint", async () => {
    const a = await createApp(server.url);
    const room = await roomToken(server.url, a, { conferenceType: "SFU" });
    const service = rest(server.url, await serviceToken(server.url, a));
    assert.equal((await service("POST", "/rtc-api/conferences/create", { conferenceId: room.id })).status, 200);
    const stranger = rest(server.url, room.token);
    const ended = await stranger("POST", "/rtc-api/conferences/end", {
      conferenceId: room.id,
      userEndpointId: "never-joined",
      reason: "",
    });
    assert.equal(ended.status, 403, ended.text);

    // A second user (another login on the same room) joins; the stranger may not write as it.
    const victim = await token(
      server.url,
      { grant_type: "password", username: room.token, password: "x" },
      `${a.apikey}:`,
    );
    const victimApi = rest(server.url, victim.json.access_token as string);
    assert.equal(
      (await victimApi("POST", "/rtc-api/conferences/join", { conferenceId: room.id, userEndpointId: "victim-ep" }))
        .status,
      200,
    );
    const forged = await stranger("POST", "/rtc-api/conferences/updateMetadata", {
      conferenceId: room.id,
      userEndpointId: "victim-ep",
      key: "TRACK_MUTED/audio/x",
      operation: "SET",
      value: "true",
    });
    assert.equal(forged.status, 403, forged.text);
    // Joined as itself, the same token may end it.
    assert.equal(
      (await stranger("POST", "/rtc-api/conferences/join", { conferenceId: room.id, userEndpointId: "own-ep" })).status,
      200,
    );
    assert.equal(
      (await stranger("POST", "/rtc-api/conferences/end", { conferenceId: room.id, userEndpointId: "own-ep" })).status,
      204,
    );
  });

  it("cannot switch a MESH room's conference to ROUTER, by asking or by joining many endpoints", async () => {
    const a = await createApp(server.url);
    const room = await roomToken(server.url, a, { conferenceType: "MESH", autoUpgradeParticipantCount: 3 });
    const user = rest(server.url, room.token);
    const r = await user("POST", "/rtc-api/conferences/create", { conferenceId: room.id, mode: "ROUTER" });
    assert.equal(r.status, 403, r.text);
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      statuses.push(
        (await user("POST", "/rtc-api/conferences/join", { conferenceId: room.id, userEndpointId: `mine-${i}` }))
          .status,
      );
    }
    assert.deepEqual(statuses, [200, 200, 200, 200, 429, 429], "at most 4 endpoints per USER login");
    const view = (await user("GET", `/rtc-api/conferences/${room.id}/simpleView`)).json;
    assert.equal(view.mode, "P2P", "one user's endpoints are one participant for the upgrade");
  });

  it("holds at most 16 registered endpoints per USER login", async () => {
    const a = await createApp(server.url);
    const room = await roomToken(server.url, a);
    const user = rest(server.url, room.token);
    let refused = 0;
    for (let i = 0; i < 20; i++) {
      const r = await user("POST", "/rtc-api/users/endpoints/register", {
        keepAliveSeconds: 30,
        userEndpointId: `d-${i}`,
      });
      if (r.status === 429) refused++;
      else assert.equal(r.status, 200, r.text);
    }
    assert.equal(refused, 4);
  });

  it("deleting a room ends its conference and refuses its tokens", async () => {
    const a = await createApp(server.url);
    const room = await roomToken(server.url, a, { conferenceType: "SFU" });
    const user = rest(server.url, room.token);
    assert.equal(
      (await user("POST", "/rtc-api/conferences/join", { conferenceId: room.id, userEndpointId: "ep" })).status,
      200,
    );
    const deleted = await fetch(`${server.url}/api/realtime/room?id=${room.id}`, {
      method: "DELETE",
      headers: { "x-vcs-token": a.secret },
    });
    assert.equal(deleted.status, 200);
    assert.equal((await user("GET", `/rtc-api/conferences/${room.id}`)).status, 401, "the room's token");
    const service = rest(server.url, await serviceToken(server.url, a));
    const events = (await service("GET", `/rtc-api/conferences/${room.id}/events?v=0`)).json as Json[];
    assert.equal(events.at(-1)?.type, "ConferenceEndedEvent");
    assert.equal(events.at(-1)?.reason, "room deleted");
  });
});

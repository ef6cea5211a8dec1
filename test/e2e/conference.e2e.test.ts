/**
 * The conference API (seed 004 and the vendor SDK behaviour in notes/auvious-clients.md)
 * on a real server with real clients: fetch for REST, mqtt.js over WebSocket for event
 * push, Connect's gRPC transport for the event stream.
 */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { pino } from "pino";
import { ConferenceService } from "../../gen/rtcplane/conference/v1/conference_pb.js";
import type { ConferenceEvent } from "../../gen/rtcplane/conference/v1/events_pb.js";
import { legacyJson } from "../../src/events/legacy-json.js";
import { type Json, mqttClient, rest, roomToken, serviceToken, token, until } from "../helpers/conference-client.js";
import { createApp, startServer, type TestApp, type TestServer } from "../helpers/server.js";

let server: TestServer;
let app: TestApp;
let service: string;
const logLines: string[] = [];

before(async () => {
  const sink = new Writable({
    write(chunk, _enc, done) {
      logLines.push(chunk.toString());
      done();
    },
  });
  server = await startServer({ LONG_POLL_TIMEOUT_MS: "400" }, undefined, pino({ level: "debug" }, sink));
  app = await createApp(server.url);
  service = await serviceToken(server.url, app);
});
after(() => server.close());

describe("OAuth2 token endpoint", () => {
  it("client_credentials in the form, the query string or HTTP Basic → SERVICE token", async () => {
    const ways = [
      await token(server.url, { grant_type: "client_credentials", client_id: app.apikey, client_secret: app.secret }),
      await token(server.url, { grant_type: "client_credentials" }, `${app.apikey}:${app.secret}`),
      await token(
        server.url,
        {},
        undefined,
        `?grant_type=client_credentials&client_id=${app.apikey}&client_secret=${encodeURIComponent(app.secret)}`,
      ),
    ];
    for (const r of ways) {
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.equal(r.headers.get("cache-control"), "no-store");
      assert.equal(r.json.token_type, "bearer");
      assert.equal(r.json.expires_in, 3600);
      assert.match(r.json.access_token as string, /^[\w-]+\.[\w-]+\.[\w-]+$/);
      assert.match(r.json.refresh_token as string, /^[\w-]+\.[\w-]+\.[\w-]+$/);
      assert.equal(r.json.sub, r.json.userId);
      assert.equal(r.json.conference_id, undefined);
    }
  });

  it("password grant with a room token as ticket → USER bound to the room's conference", async () => {
    const room = await roomToken(server.url, app);
    const r = await token(
      server.url,
      { grant_type: "password", username: room.token, password: "x" },
      `${app.apikey}:`,
    );
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.json.conference_id, room.id);
    assert.match(r.json.userId as string, /^[0-9a-f-]{36}$/);
    const other = await token(server.url, { grant_type: "password", username: room.token }, `${app.apikey}:`);
    assert.notEqual(other.json.userId, r.json.userId, "each login is a new user");
    const refreshed = await token(server.url, {
      grant_type: "refresh_token",
      refresh_token: r.json.refresh_token as string,
    });
    assert.equal(refreshed.status, 200);
    assert.equal(refreshed.json.userId, r.json.userId);
    assert.equal(refreshed.json.conference_id, room.id);
  });

  it("answers OAuth errors as {error, error_description} with 400 or 401", async () => {
    const room = await roomToken(server.url, app);
    const otherApp = await createApp(server.url);
    const cases: [Record<string, string>, string | undefined, number, string][] = [
      [
        { grant_type: "client_credentials", client_id: app.apikey, client_secret: "wrong" },
        undefined,
        401,
        "invalid_client",
      ],
      [
        { grant_type: "client_credentials", client_id: "nobody", client_secret: app.secret },
        undefined,
        401,
        "invalid_client",
      ],
      [
        { grant_type: "client_credentials", client_id: otherApp.apikey, client_secret: app.secret },
        undefined,
        401,
        "invalid_client",
      ],
      [{}, undefined, 400, "invalid_request"],
      [{ grant_type: "implicit" }, undefined, 400, "unsupported_grant_type"],
      [{ grant_type: "password", username: "not-a-ticket" }, `${app.apikey}:`, 400, "invalid_grant"],
      [{ grant_type: "password", username: room.token }, `${otherApp.apikey}:`, 400, "invalid_grant"],
      [{ grant_type: "password" }, `${app.apikey}:`, 400, "invalid_request"],
      [{ grant_type: "refresh_token", refresh_token: "x.y.z" }, undefined, 400, "invalid_grant"],
      [{ grant_type: "refresh_token", refresh_token: service }, undefined, 400, "invalid_grant"],
    ];
    for (const [form, basic, status, error] of cases) {
      const r = await token(server.url, form, basic);
      assert.equal(r.status, status, JSON.stringify(form));
      assert.equal(r.json.error, error, JSON.stringify(form));
      assert.equal(typeof r.json.error_description, "string");
      if (status === 401) assert.match(r.headers.get("www-authenticate") ?? "", /^Basic/);
    }
  });
});

describe("conference API: authentication and scope", () => {
  it("401 without, with a bad, or with an expired bearer", async () => {
    const call = rest(server.url, undefined);
    for (const [bearer, label] of [
      [undefined, "missing"],
      ["nope", "garbage"],
      [`${service.slice(0, -3)}abc`, "tampered"],
    ] as const) {
      const r = await rest(server.url, bearer)("GET", "/rtc-api/iceServers");
      assert.equal(r.status, 401, label);
      // Errors carry no JSON (the iOS SDK counts any JSON body as success).
      assert.match(r.type, /^text\/plain/);
      assert.match(r.text, /^401 Unauthorized: /);
    }
    assert.equal((await call("POST", "/rtc-api/conferences/create", {})).status, 401);
    const short = await startServer({ ROOM_TOKEN_TTL_SECONDS: "1" });
    try {
      const a = await createApp(short.url);
      const room = await roomToken(short.url, a);
      assert.equal((await rest(short.url, room.token)("GET", "/rtc-api/iceServers")).status, 200);
      await new Promise((r) => setTimeout(r, 2100));
      const expired = await rest(short.url, room.token)("GET", "/rtc-api/iceServers");
      assert.equal(expired.status, 401);
      assert.match(expired.text, /expired/);
    } finally {
      await short.close();
    }
  });

  it("404 for another app's conference or, with a USER token, another conference", async () => {
    const call = rest(server.url, service);
    assert.equal((await call("POST", "/rtc-api/conferences/create", { conferenceId: "scoped-1" })).status, 200);
    const other = await createApp(server.url);
    const otherService = await serviceToken(server.url, other);
    assert.equal((await rest(server.url, otherService)("GET", "/rtc-api/conferences/scoped-1")).status, 404);
    const room = await roomToken(server.url, app);
    assert.equal((await rest(server.url, room.token)("GET", "/rtc-api/conferences/scoped-1")).status, 404);
    const sent = await rest(server.url, room.token)("POST", "/rtc-api/conferences/sendEvent", {
      conferenceId: room.id,
      event: { type: "SomethingHappenedEvent", timestamp: "2024-01-01T00:00:00Z" },
    });
    assert.equal(sent.status, 403, "sendEvent needs SERVICE");
  });
});

describe("conference API: a two-endpoint session", () => {
  it("create, join ×2, metadata SET/REMOVE, participant metadata, leave, end — checked via GET, simpleView, events", async () => {
    const call = rest(server.url, service);
    const created = await call("POST", "/rtc-api/conferences/create", {
      conferenceId: "two-endpoints",
      creator: "host",
      creatorEndpoint: "host-ep",
      mode: "ROUTER",
      metadata: { topic: "support" },
    });
    assert.equal(created.status, 200);
    assert.deepEqual(created.json, { id: "two-endpoints", mode: "ROUTER", version: 0 });
    assert.equal((await call("POST", "/rtc-api/conferences/create", { conferenceId: "two-endpoints" })).status, 409);
    const generated = await call("POST", "/rtc-api/conferences/create", {});
    assert.match(generated.json.id as string, /^[0-9a-f-]{36}$/);

    const base = { conferenceId: "two-endpoints" };
    const join1 = await call("POST", "/rtc-api/conferences/join", {
      ...base,
      userEndpointId: "ep-a1",
      userId: "alice",
      metadata: { name: "Alice", roles: ["AGENT"] },
    });
    assert.deepEqual([join1.status, join1.json], [200, {}]);
    assert.equal(
      (await call("POST", "/rtc-api/conferences/join", { ...base, userEndpointId: "ep-b1", userId: "bob" })).status,
      200,
    );
    assert.equal(
      (await call("POST", "/rtc-api/conferences/join", { ...base, userEndpointId: "ep-a2", userId: "alice" })).status,
      200,
    );
    const again = await call("POST", "/rtc-api/conferences/join", { ...base, userEndpointId: "ep-b1", userId: "bob" });
    assert.equal(again.status, 200, "joining twice is accepted");
    const set = await call("POST", "/rtc-api/conferences/updateMetadata", {
      ...base,
      userEndpointId: "ep-a1",
      key: "TRACK_MUTED/audio/s1",
      operation: "SET",
      value: "true",
    });
    assert.deepEqual([set.status, set.text], [204, ""]);
    const removed = await call("POST", "/rtc-api/conferences/updateMetadata", {
      ...base,
      userEndpointId: "ep-a1",
      key: "topic",
      operation: "REMOVE",
    });
    assert.equal(removed.status, 204);
    const pm = await call("POST", "/rtc-api/conferences/updateParticipantMetadata", {
      ...base,
      userEndpointId: "ep-b1",
      newMetadata: { name: "Bob", portraitMode: true },
    });
    assert.equal(pm.status, 204);
    const noStream = await call("POST", "/rtc-api/conferences/updateStreamMetadata", {
      ...base,
      userEndpointId: "ep-b1",
      streamId: { id: "nope" },
      newMetadata: {},
    });
    assert.equal(noStream.status, 404);

    const view = await call("GET", "/rtc-api/conferences/two-endpoints/simpleView");
    assert.equal(view.status, 200);
    assert.equal(view.json.version, 6);
    assert.equal(view.json.mode, "ROUTER");
    assert.deepEqual(
      (view.json.participants as Json[]).map((p) => [p.id, (p.endpoints as Json[]).map((e) => e.id)]),
      [
        ["alice", ["ep-a1", "ep-a2"]],
        ["bob", ["ep-b1"]],
      ],
    );
    const bob = (view.json.participants as Json[])[1] as Json;
    const bobEndpoint = (bob.endpoints as Json[])[0];
    assert.deepEqual(bobEndpoint, {
      id: "ep-b1",
      metadata: { name: "Bob", portraitMode: true },
      state: "HEALTHY",
      streams: [],
    });
    const muted = (view.json.metadata as Record<string, Json>)["TRACK_MUTED/audio/s1"];
    assert.deepEqual(Object.keys(muted ?? {}), ["value", "lastModified", "userEndpointId", "userId"]);
    assert.equal(muted?.value, "true");
    assert.equal(muted?.userId, "alice");
    assert.match(muted?.lastModified as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal((view.json.metadata as Json).topic, undefined, "REMOVE removed the key");

    const left = await call("POST", "/rtc-api/conferences/leave", { ...base, userEndpointId: "ep-a2", reason: "" });
    assert.deepEqual([left.status, left.text], [204, ""]);
    const conf = await call("GET", "/rtc-api/conferences/two-endpoints");
    assert.equal(conf.status, 200);
    assert.deepEqual(Object.keys(conf.json), [
      "id",
      "creator",
      "creatorEndpoint",
      "empty",
      "metadata",
      "mode",
      "organizationId",
      "participants",
      "version",
    ]);
    assert.equal(conf.json.creator, "host");
    assert.equal(conf.json.empty, false);
    assert.equal(conf.json.organizationId, app.appId);
    assert.deepEqual(
      (conf.json.participants as Json[]).map((p) => [p.id, p.userId, p.state]),
      [
        ["ep-a1", "alice", "HEALTHY"],
        ["ep-b1", "bob", "HEALTHY"],
      ],
    );
    assert.equal(conf.json.version, 7);

    const ended = await call("POST", "/rtc-api/conferences/end", { ...base, userEndpointId: "ep-a1", reason: "done" });
    assert.equal(ended.status, 204);
    const afterEnd = await call("POST", "/rtc-api/conferences/join", {
      ...base,
      userEndpointId: "ep-c1",
      userId: "carol",
    });
    assert.equal(afterEnd.status, 412);
    assert.match(afterEnd.text, /^412 Precondition Failed: /);
    assert.equal(
      (
        await call("POST", "/rtc-api/conferences/updateMetadata", {
          ...base,
          userEndpointId: "ep-a1",
          key: "k",
          operation: "SET",
          value: "v",
        })
      ).status,
      412,
    );

    const events = (await call("GET", "/rtc-api/conferences/two-endpoints/events?v=0")).json as Json[];
    assert.deepEqual(
      events.map((e) => [e.type, e.conferenceVersion]),
      [
        ["ConferenceCreatedEvent", undefined],
        ["ConferenceJoinedEvent", 0],
        ["ConferenceJoinedEvent", 1],
        ["ConferenceJoinedEvent", 2],
        ["ConferenceMetadataUpdatedEvent", 3],
        ["ConferenceMetadataUpdatedEvent", 4],
        ["ConferenceParticipantMetadataUpdatedEvent", 5],
        ["ConferenceLeftEvent", 6],
        ["ConferenceEndedEvent", 7],
      ],
    );
    for (const e of events) {
      for (const k of ["type", "id", "conferenceId", "organizationId", "timestamp", "userEndpointId", "userId"]) {
        assert.ok(k in e, `${e.type} lacks ${k}`);
      }
      assert.match(e.timestamp as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.equal(e.organizationId, app.appId);
    }
    assert.deepEqual(
      [events[4]?.key, events[4]?.operation, events[4]?.value, events[4]?.userEndpointId],
      ["TRACK_MUTED/audio/s1", "SET", "true", "ep-a1"],
    );
    assert.equal(events[8]?.reason, "done");
    const since = (await call("GET", "/rtc-api/conferences/two-endpoints/events?v=6")).json as Json[];
    assert.deepEqual(
      since.map((e) => e.conferenceVersion),
      [6, 7],
    );
  });

  it("rejects bad commands with 400 and a message", async () => {
    const call = rest(server.url, service);
    await call("POST", "/rtc-api/conferences/create", { conferenceId: "validation" });
    const base = { conferenceId: "validation", userEndpointId: "ep" };
    const bad: [string, Json][] = [
      ["/rtc-api/conferences/create", { conferenceId: "has spaces" }],
      ["/rtc-api/conferences/create", { mode: "MESH" }],
      ["/rtc-api/conferences/join", { conferenceId: "validation" }],
      ["/rtc-api/conferences/updateMetadata", { ...base, key: "k", operation: "TOGGLE" }],
      ["/rtc-api/conferences/updateMetadata", { ...base, key: "", operation: "SET" }],
      ["/rtc-api/conferences/publishStream", { ...base, conferenceStreamType: "VIDEO", sdpOffer: "v=0" }],
      ["/rtc-api/conferences/join", { ...base, metadata: "not an object" }],
    ];
    for (const [path, body] of bad) {
      const r = await call("POST", path, body);
      assert.equal(r.status, 400, `${path} ${JSON.stringify(body)}: ${r.text}`);
      assert.match(r.text, /^400 Bad Request: \S/, "a plain-text message says what is wrong");
    }
    assert.equal(
      (await call("POST", "/rtc-api/conferences/join", { conferenceId: "nope", userEndpointId: "ep" })).status,
      404,
    );
  });

  it("without an SFU, media commands validate, then answer 412; candidates are accepted", async () => {
    const call = rest(server.url, service);
    await call("POST", "/rtc-api/conferences/create", { conferenceId: "media" });
    await call("POST", "/rtc-api/conferences/join", { conferenceId: "media", userEndpointId: "m1", userId: "u" });
    const r = await call("POST", "/rtc-api/conferences/publishStream", {
      conferenceId: "media",
      userEndpointId: "m1",
      conferenceStreamType: "CAM",
      sdpOffer: "v=0\r\n",
    });
    assert.equal(r.status, 412);
    assert.match(r.text, /media is not available/);
    const expected: Record<string, number> = {
      viewStream: 412,
      unpublishStream: 404,
      stopViewStream: 204,
      addPublishStreamIceCandidates: 204,
      addViewStreamIceCandidates: 204,
    };
    for (const [path, status] of Object.entries(expected)) {
      const m = await call("POST", `/rtc-api/conferences/${path}`, {
        conferenceId: "media",
        userEndpointId: "m1",
        streamId: { id: "s" },
        sdpOffer: "v=0",
        iceCandidates: [{ candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ host", sdpMLineIndex: 0, sdpMid: "0" }],
      });
      assert.equal(m.status, status, path);
    }
  });
});

describe("conference API: the vendor SDK session, call by call", () => {
  it("ticket login, register, iceServers, MQTT, join, simpleView, mute, keep-alive, leave, unregister", async () => {
    const room = await roomToken(server.url, app, { name: "sdk", conferenceType: "SFU" });
    // 1. Ticket login.
    const login = await token(
      server.url,
      { grant_type: "password", username: room.token, password: "any" },
      `${app.apikey}:`,
    );
    assert.equal(login.status, 200);
    const access = login.json.access_token as string;
    const userId = login.json.sub as string;
    const call = rest(server.url, access);
    // An agent already in the room, to see the customer's events too.
    const agentLogin = await token(server.url, { grant_type: "password", username: room.token }, `${app.apikey}:`);
    const agent = rest(server.url, agentLogin.json.access_token as string);
    const agentEndpoint = (
      (
        await agent("POST", "/rtc-api/users/endpoints/register", {
          keepAliveSeconds: 30,
          userId: agentLogin.json.userId,
        })
      ).json as Json
    ).id as string;
    const agentMqtt = await mqttClient(
      server.url,
      agentLogin.json.userId as string,
      agentLogin.json.access_token as string,
    );
    await agentMqtt.client.subscribeAsync(`user/${agentLogin.json.userId}/${agentEndpoint}`, { qos: 1 });
    assert.equal(
      (await agent("POST", "/rtc-api/conferences/join", { conferenceId: room.id, userEndpointId: agentEndpoint }))
        .status,
      200,
    );
    // 2. Register the endpoint.
    const reg = await call("POST", "/rtc-api/users/endpoints/register", {
      keepAliveSeconds: 30,
      userEndpointId: "sdk-endpoint-1",
      userId,
    });
    assert.deepEqual([reg.status, reg.json], [200, { id: "sdk-endpoint-1" }]);
    // 3. ICE servers.
    const ice = await call("GET", "/rtc-api/iceServers");
    assert.deepEqual([ice.status, ice.json], [200, { iceServers: [] }]);
    // 4. MQTT: login completes after SUBACK; someone else's topic is refused.
    const { client, messages } = await mqttClient(server.url, userId, access);
    const granted = await client.subscribeAsync(`user/${userId}/sdk-endpoint-1`, { qos: 1 });
    assert.equal(granted[0]?.qos, 1);
    // Another user's topic is refused with a SUBACK failure (0x80); the connection stays up.
    await assert.rejects(
      client.subscribeAsync(`user/${agentLogin.json.userId}/${agentEndpoint}`, { qos: 1 }),
      /Subscribe error/,
    );
    await assert.rejects(client.subscribeAsync("user/#", { qos: 1 }), /Subscribe error/);
    assert.ok(client.connected);
    // 5. (create is optional) 6. join with metadata.
    const join = await call("POST", "/rtc-api/conferences/join", {
      conferenceId: room.id,
      userEndpointId: "sdk-endpoint-1",
      userId,
      metadata: { roles: ["CUSTOMER"], name: "Customer", capabilities: { video: true } },
    });
    assert.deepEqual([join.status, join.json], [200, {}]);
    // 7. simpleView: version V is the event cursor; mode from the SFU room.
    const view = await call("GET", `/rtc-api/conferences/${room.id}/simpleView`);
    assert.equal(view.json.mode, "ROUTER");
    const V = view.json.version as number;
    assert.equal(V, 2, "the agent's join and ours");
    // 10. Mute: TRACK_MUTED SET "true" then REMOVE.
    const key = "TRACK_MUTED/audio/sdk-stream";
    assert.equal(
      (
        await call("POST", "/rtc-api/conferences/updateMetadata", {
          conferenceId: room.id,
          userEndpointId: "sdk-endpoint-1",
          key,
          operation: "SET",
          value: "true",
        })
      ).status,
      204,
    );
    assert.equal(
      (
        await call("POST", "/rtc-api/conferences/updateMetadata", {
          conferenceId: room.id,
          userEndpointId: "sdk-endpoint-1",
          key,
          operation: "REMOVE",
        })
      ).status,
      204,
    );
    // 9. Keep-alive.
    const ka = await call("POST", "/rtc-api/users/endpoints/keepalive", { userEndpointId: "sdk-endpoint-1", userId });
    assert.deepEqual([ka.status, ka.text], [204, ""]);
    // 11. Leave, then unregister.
    assert.equal(
      (
        await call("POST", "/rtc-api/conferences/leave", {
          conferenceId: room.id,
          userEndpointId: "sdk-endpoint-1",
          reason: "",
        })
      ).status,
      204,
    );
    const unreg = await call("POST", "/rtc-api/users/endpoints/unregister", {
      reason: "closed",
      userEndpointId: "sdk-endpoint-1",
      userId,
    });
    assert.equal(unreg.status, 204);
    assert.equal((await call("GET", "/rtc-api/users/endpoints/sdk-endpoint-1")).status, 404);

    // Events on MQTT, under the clients' version rule: start at V, accept only V, then V+1.
    await until("the customer's events", () => (messages.length >= 3 ? true : undefined));
    let expected = V;
    const accepted: string[] = [];
    for (const e of messages) {
      if (e.conferenceVersion === expected) {
        accepted.push(e.type as string);
        expected++;
      }
    }
    assert.deepEqual(accepted, [
      "ConferenceMetadataUpdatedEvent",
      "ConferenceMetadataUpdatedEvent",
      "ConferenceLeftEvent",
    ]);
    assert.deepEqual(
      messages.slice(-3).map((e) => [e.operation, e.key, e.userEndpointId, e.userId]),
      [
        ["SET", key, "sdk-endpoint-1", userId],
        ["REMOVE", key, "sdk-endpoint-1", userId],
        [undefined, undefined, "sdk-endpoint-1", userId],
      ],
    );
    // The agent saw the customer join and everything after it, in version order.
    await until("the agent's events", () => (agentMqtt.messages.length >= 4 ? true : undefined));
    assert.deepEqual(
      agentMqtt.messages.map((e) => [e.type, e.conferenceVersion]),
      [
        ["ConferenceJoinedEvent", 0],
        ["ConferenceJoinedEvent", 1],
        ["ConferenceMetadataUpdatedEvent", 2],
        ["ConferenceMetadataUpdatedEvent", 3],
        ["ConferenceLeftEvent", 4],
      ],
    );
    await client.endAsync();
    await agentMqtt.client.endAsync();
  });

  it("MQTT refuses a bad token and accepts the older username=token login", async () => {
    await assert.rejects(mqttClient(server.url, "someone", "not-a-token"));
    const older = await mqttClient(server.url, service, "");
    await older.client.endAsync();
  });

  it("a room token is a USER bearer for its room; maxParticipants and auto-upgrade apply", async () => {
    const small = await startServer({ ROOM_MAX_PARTICIPANTS: "3" });
    try {
      const a = await createApp(small.url);
      const room = await roomToken(small.url, a, { conferenceType: "MESH", autoUpgradeParticipantCount: 2 });
      const call = rest(small.url, room.token);
      assert.equal(
        (await call("POST", "/rtc-api/conferences/join", { conferenceId: room.id, userEndpointId: "r1" })).status,
        200,
      );
      let view = await call("GET", `/rtc-api/conferences/${room.id}/simpleView`);
      assert.equal(view.json.mode, "P2P", "a MESH room is a P2P conference");
      const svc = rest(small.url, await serviceToken(small.url, a));
      assert.equal(
        (await svc("POST", "/rtc-api/conferences/join", { conferenceId: room.id, userEndpointId: "r2", userId: "u2" }))
          .status,
        200,
      );
      view = await call("GET", `/rtc-api/conferences/${room.id}/simpleView`);
      assert.equal(view.json.mode, "ROUTER", "upgraded at autoUpgradeParticipantCount");
      assert.equal(
        (await svc("POST", "/rtc-api/conferences/join", { conferenceId: room.id, userEndpointId: "r3", userId: "u3" }))
          .status,
        200,
      );
      const full = await svc("POST", "/rtc-api/conferences/join", {
        conferenceId: room.id,
        userEndpointId: "r4",
        userId: "u4",
      });
      assert.equal(full.status, 429);
      const events = (await call("GET", `/rtc-api/conferences/${room.id}/events?v=0`)).json as Json[];
      assert.ok(events.some((e) => e.type === "ConferenceModeUpdatedEvent" && e.mode === "ROUTER"));
    } finally {
      await small.close();
    }
  });
});

describe("conference API: events delivery", () => {
  it("long-poll returns within 50 ms of a commit, and [] after the timeout when idle", async () => {
    const call = rest(server.url, service);
    await call("POST", "/rtc-api/conferences/create", { conferenceId: "poll" });
    await call("POST", "/rtc-api/conferences/join", { conferenceId: "poll", userEndpointId: "p1", userId: "u" });
    const v = ((await call("GET", "/rtc-api/conferences/poll/simpleView")).json as Json).version as number;
    const idleStart = Date.now();
    const idle = await call("GET", `/rtc-api/conferences/poll/events?v=${v}`);
    const idleMs = Date.now() - idleStart;
    assert.deepEqual(idle.json, []);
    assert.ok(idleMs >= 380 && idleMs < 2000, `idle long-poll took ${idleMs} ms`);
    let resolvedAt = 0;
    const poll = call("GET", `/rtc-api/conferences/poll/events?v=${v}`).then((r) => {
      resolvedAt = performance.now();
      return r;
    });
    await new Promise((r) => setTimeout(r, 100));
    const committing = performance.now();
    await call("POST", "/rtc-api/conferences/updateMetadata", {
      conferenceId: "poll",
      userEndpointId: "p1",
      key: "k",
      operation: "SET",
      value: "v",
    });
    const committed = performance.now();
    const r = await poll;
    assert.deepEqual(
      (r.json as Json[]).map((e) => [e.type, e.conferenceVersion]),
      [["ConferenceMetadataUpdatedEvent", v]],
    );
    assert.ok(
      resolvedAt - committing < 50 + (committed - committing),
      `woke ${resolvedAt - committed} ms after the commit answered`,
    );
  });

  it("500 concurrent long-pollers are woken by one event; the cap answers 429", async () => {
    const busy = await startServer({
      LONG_POLL_TIMEOUT_MS: "15000",
      LONG_POLL_MAX_WAITERS_PER_CONFERENCE: "500",
      // All 500 waiters come from this one address.
      MAX_CONNECTIONS_PER_IP: "1000",
    });
    try {
      const a = await createApp(busy.url);
      const call = rest(busy.url, await serviceToken(busy.url, a));
      await call("POST", "/rtc-api/conferences/create", { conferenceId: "crowd" });
      const poll = () => call("GET", "/rtc-api/conferences/crowd/events?v=1");
      const waiting = Array.from({ length: 500 }, poll);
      // Probe until the cap answers 429; a probe that is not refused waits like the others
      // (however slowly the 500 get registered on a busy machine).
      let refused = false;
      for (let i = 0; i < 100 && !refused; i++) {
        const probe = poll();
        waiting.push(probe);
        const first = await Promise.race([probe, new Promise<undefined>((r) => setTimeout(r, 100))]);
        refused = first?.status === 429;
      }
      assert.ok(refused, "waiters beyond the cap are refused with 429");
      const started = performance.now();
      await call("POST", "/rtc-api/conferences/join", { conferenceId: "crowd", userEndpointId: "c1", userId: "u" });
      await call("POST", "/rtc-api/conferences/join", { conferenceId: "crowd", userEndpointId: "c2", userId: "u" });
      const answers = await Promise.all(waiting);
      const ms = performance.now() - started;
      const woken = answers.filter((w) => w.status === 200);
      assert.equal(woken.length, 500, "exactly the cap's worth of waiters waited");
      assert.ok(answers.every((w) => w.status === 200 || w.status === 429));
      for (const w of woken) assert.equal((w.json as Json[])[0]?.conferenceVersion, 1);
      assert.ok(ms < 5000, `waking 500 waiters took ${ms} ms`);
    } finally {
      await busy.close();
    }
  });

  it("the WatchConferenceEvents stream sees the same events as the long-poll, typed", async () => {
    const call = rest(server.url, service);
    await call("POST", "/rtc-api/conferences/create", { conferenceId: "streamed" });
    await call("POST", "/rtc-api/conferences/join", { conferenceId: "streamed", userEndpointId: "s1", userId: "u" });
    const client = createClient(ConferenceService, createGrpcTransport({ baseUrl: server.url }));
    const abort = new AbortController();
    const seen: ConferenceEvent[] = [];
    const reading = (async () => {
      try {
        for await (const m of client.watchConferenceEvents(
          { conferenceId: "streamed", sinceVersion: 0n },
          { signal: abort.signal, headers: { authorization: `Bearer ${service}` } },
        )) {
          if (m.event !== undefined) seen.push(m.event);
          if (seen.length === 4) abort.abort();
        }
      } catch (e) {
        if (!abort.signal.aborted) throw e;
      }
    })();
    await until("the replayed events", () => (seen.length >= 2 ? true : undefined));
    await call("POST", "/rtc-api/conferences/updateMetadata", {
      conferenceId: "streamed",
      userEndpointId: "s1",
      key: "a",
      operation: "SET",
      value: "1",
    });
    await call("POST", "/rtc-api/conferences/leave", { conferenceId: "streamed", userEndpointId: "s1" });
    await reading;
    const polled = (await call("GET", "/rtc-api/conferences/streamed/events?v=0")).json as Json[];
    assert.deepEqual(
      seen.map((e) => e.payload.case),
      ["created", "joined", "metadataUpdated", "left"],
    );
    const [created, joined, metadata] = seen;
    assert.equal(created?.conferenceVersion, undefined, "creation precedes the versions");
    assert.deepEqual([joined?.conferenceVersion, metadata?.conferenceVersion], [0n, 1n]);
    assert.equal(metadata?.payload.case === "metadataUpdated" && metadata.payload.value.key, "a");
    // The long-poll's legacy JSON is the typed event's one rendering.
    assert.deepEqual(seen.map(legacyJson), polled);
  });

  it("sendEvent: validates, masks what is stored and logged, AT_LEAST_ONCE is logged, BEST_EFFORT is live only", async () => {
    const call = rest(server.url, service);
    await call("POST", "/rtc-api/conferences/create", { conferenceId: "custom" });
    await call("POST", "/rtc-api/conferences/join", { conferenceId: "custom", userEndpointId: "x1", userId: "ux" });
    await call("POST", "/rtc-api/conferences/join", { conferenceId: "custom", userEndpointId: "x2", userId: "uy" });
    for (const event of [
      { type: "lowercaseEvent", timestamp: "2024-01-01T00:00:00Z" },
      { type: "NoSuffix", timestamp: "2024-01-01T00:00:00Z" },
      { type: "CardEnteredEvent" },
      { type: "CardEnteredEvent", timestamp: "yesterday" },
      // The server's own event names cannot be forged as custom events.
      { type: "ConferenceEndedEvent", timestamp: "2024-01-01T00:00:00Z" },
      { type: "CallAnsweredEvent", timestamp: "2024-01-01T00:00:00Z" },
    ]) {
      const r = await call("POST", "/rtc-api/conferences/sendEvent", {
        conferenceId: "custom",
        event,
        qos: "AT_LEAST_ONCE",
      });
      assert.equal(r.status, 400, JSON.stringify(event));
    }
    const badMask = await call("POST", "/rtc-api/conferences/sendEvent", {
      conferenceId: "custom",
      event: { type: "CardEnteredEvent", timestamp: "2024-01-01T00:00:00Z" },
      masks: ["$..[?(@.x"],
      qos: "AT_LEAST_ONCE",
    });
    assert.equal(badMask.status, 400);
    const card = "4111111111111111";
    const sent = await call("POST", "/rtc-api/conferences/sendEvent", {
      conferenceId: "custom",
      event: {
        type: "CardEnteredEvent",
        timestamp: "2024-01-01T10:15:30Z",
        card: { number: card, holder: "Ann Lee" },
        amount: 12,
      },
      masks: ["$.card.number", "$.card.holder"],
      qos: "AT_LEAST_ONCE",
    });
    assert.deepEqual([sent.status, sent.json], [200, { eventsSent: 2 }]);
    const logged = ((await call("GET", "/rtc-api/conferences/custom/events?v=2")).json as Json[])[0] as Json;
    assert.equal(logged.type, "CardEnteredEvent");
    assert.equal(logged.conferenceVersion, 2);
    assert.equal(logged.timestamp, "2024-01-01T10:15:30Z");
    assert.deepEqual(logged.card, { number: "*".repeat(16), holder: "*******" });
    assert.equal(logged.amount, 12);
    const logs = logLines.join("");
    assert.ok(logs.includes("CardEnteredEvent"), "the event was logged");
    assert.ok(!logs.includes(card), "the card number reached the log");
    assert.ok(!logs.includes("Ann Lee"), "the holder reached the log");

    // Live receivers get the event as sent; only the stored and logged copies are masked.
    const room = await roomToken(server.url, app);
    const login = await token(server.url, { grant_type: "password", username: room.token }, `${app.apikey}:`);
    const user = rest(server.url, login.json.access_token as string);
    const ep = ((await user("POST", "/rtc-api/users/endpoints/register", { keepAliveSeconds: 30 })).json as Json)
      .id as string;
    await user("POST", "/rtc-api/conferences/join", { conferenceId: room.id, userEndpointId: ep });
    const receiver = await mqttClient(server.url, login.json.userId as string, login.json.access_token as string);
    await receiver.client.subscribeAsync(`user/${login.json.userId}/${ep}`, { qos: 1 });
    const toRoom = await call("POST", "/rtc-api/conferences/sendEvent", {
      conferenceId: room.id,
      event: { type: "CardEnteredEvent", timestamp: "2024-01-01T10:15:30Z", card: { number: card } },
      masks: ["$..number"],
      qos: "AT_LEAST_ONCE",
    });
    assert.deepEqual(toRoom.json, { eventsSent: 1 });
    const pushed = await until("the pushed custom event", () =>
      receiver.messages.find((m) => m.type === "CardEnteredEvent"),
    );
    assert.deepEqual(pushed.card, { number: card });
    const storedInRoom = ((await user("GET", `/rtc-api/conferences/${room.id}/events?v=1`)).json as Json[])[0] as Json;
    assert.deepEqual(storedInRoom.card, { number: "*".repeat(16) });
    await receiver.client.endAsync();

    const poll = call("GET", "/rtc-api/conferences/custom/events?v=3");
    await new Promise((r) => setTimeout(r, 100));
    const best = await call("POST", "/rtc-api/conferences/sendEvent", {
      conferenceId: "custom",
      event: { type: "TypingStartedEvent", timestamp: "2024-01-01T10:15:31Z" },
    });
    assert.deepEqual(best.json, { eventsSent: 2 });
    const live = (await poll).json as Json[];
    assert.deepEqual(
      live.map((e) => [e.type, e.conferenceVersion]),
      [["TypingStartedEvent", undefined]],
    );
    const after = (await call("GET", "/rtc-api/conferences/custom/simpleView")).json as Json;
    assert.equal(after.version, 3, "a best-effort event changes no version");
  });
});

describe("user endpoints", () => {
  it("registers, lists, gets; the bare-string create; keep-alive turns SICK and then removes", async () => {
    const quick = await startServer({ ENDPOINT_SWEEP_INTERVAL_MS: "100" });
    try {
      const a = await createApp(quick.url);
      const call = rest(quick.url, await serviceToken(quick.url, a));
      const bare = await call("POST", "/rtc-api/users/endpoints", { keepAliveSeconds: 30 });
      assert.equal(bare.status, 200);
      assert.match(bare.text, /^"[0-9a-f-]{36}"$/, "a bare JSON string id");
      assert.equal(
        (
          await call("POST", "/rtc-api/users/endpoints/register", {
            keepAliveSeconds: 1,
            userEndpointId: "dev-1",
            userId: "kim",
          })
        ).status,
        200,
      );
      const listed = (await call("GET", "/rtc-api/users/endpoints")).json as Json[];
      assert.deepEqual(listed.map((e) => e.id).sort(), [JSON.parse(bare.text) as string, "dev-1"].sort());
      await call("POST", "/rtc-api/conferences/create", { conferenceId: "alive" });
      await call("POST", "/rtc-api/conferences/join", {
        conferenceId: "alive",
        userEndpointId: "dev-1",
        userId: "kim",
      });
      await new Promise((r) => setTimeout(r, 1400));
      const sick = await call("GET", "/rtc-api/conferences/alive");
      assert.equal(((sick.json.participants as Json[])[0] as Json).state, "SICK");
      assert.equal(((await call("GET", "/rtc-api/users/endpoints/dev-1")).json as Json).state, "SICK");
      assert.equal(
        (await call("POST", "/rtc-api/users/endpoints/keepalive", { userEndpointId: "dev-1", userId: "kim" })).status,
        204,
      );
      const healthy = await call("GET", "/rtc-api/conferences/alive");
      assert.equal(((healthy.json.participants as Json[])[0] as Json).state, "HEALTHY");
      await new Promise((r) => setTimeout(r, 2400));
      const gone = await call("GET", "/rtc-api/conferences/alive");
      assert.deepEqual(gone.json.participants, []);
      assert.equal(gone.json.empty, true);
      const events = (await call("GET", "/rtc-api/conferences/alive/events?v=1")).json as Json[];
      assert.deepEqual(
        events.map((e) => [e.type, e.reason, e.userEndpointId]),
        [["ConferenceLeftEvent", "keep-alive expired", "dev-1"]],
      );
      assert.equal((await call("GET", "/rtc-api/users/endpoints/dev-1")).status, 404);
      assert.equal((await call("POST", "/rtc-api/users/endpoints/keepalive", { userEndpointId: "dev-1" })).status, 404);
    } finally {
      await quick.close();
    }
  });

  it("serves configured ICE servers", async () => {
    const ice = await startServer({
      ICE_SERVERS:
        '[{"urls":["stun:stun.example.org:3478"]},{"urls":"turn:turn.example.org:3478","username":"u","credential":"c"}]',
    });
    try {
      const a = await createApp(ice.url);
      const r = await rest(ice.url, await serviceToken(ice.url, a))("GET", "/rtc-api/iceServers");
      assert.deepEqual(r.json, {
        iceServers: [
          { urls: ["stun:stun.example.org:3478"], username: "", credential: "" },
          { urls: ["turn:turn.example.org:3478"], username: "u", credential: "c" },
        ],
      });
    } finally {
      await ice.close();
    }
  });
});

/**
 * The vendor iOS SDK's conference session, replayed request by request from
 * notes/auvious-ios-sdk.md: what it sends (string stream ids, the publisher's ids on view, its
 * own endpoint id as viewerId after an unpublish, "true"/"false" metadata values), how it
 * reads replies (any JSON body is a success), and the MQTT reconnect with its first access
 * token. Media flows between libwebrtc peers through the SFU.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import mqtt from "mqtt";
import { type Json, mqttClient, rest, roomToken, serviceToken, token, until } from "../helpers/conference-client.js";
import { sdkUser, uuid } from "../helpers/sdk-user.js";
import { createApp, startServer, type TestApp, type TestServer } from "../helpers/server.js";
import { decodedFrames, loopbackCandidates, movingCamera, RTCPeerConnection, setLocalOffer } from "../helpers/wrtc.js";

/** How the SDK reads a reply: any JSON body is a success, whatever the status. */
function sdkSeesFailure(r: { status: number; text: string }): boolean {
  try {
    JSON.parse(r.text);
    return false;
  } catch {
    return !(r.text === "" && (r.status === 200 || r.status === 204));
  }
}

/** Conference events on a topic: versions are JSON numbers, one apart, in order, no gaps. */
function assertVersionRule(messages: Json[]) {
  const versions = messages
    .filter((e) => e.conferenceVersion !== undefined)
    .map((e) => {
      assert.equal(typeof e.conferenceVersion, "number", `${e.type}: conferenceVersion is a number`);
      return e.conferenceVersion as number;
    });
  assert.ok(versions.length > 0);
  versions.forEach((v, i) => {
    if (i > 0) assert.equal(v, (versions[i - 1] as number) + 1, `versions ${versions.join(",")}`);
  });
}

async function sdpOf(pc: RTCPeerConnection): Promise<string> {
  const offer = await setLocalOffer(pc);
  return offer;
}

describe("the iOS SDK's conference session with media", () => {
  let server: TestServer;
  let app: TestApp;
  before(async () => {
    server = await startServer({}, undefined, undefined, true);
    app = await createApp(server.url);
  });
  after(() => server.close());

  it("join, publish a string stream id, view with the publisher's ids, mute, unpublish, stopView, leave", async () => {
    const room = await roomToken(server.url, app, { name: "sdk-media", conferenceType: "SFU" });
    const customer = await sdkUser(server.url, app, room.token);
    const agent = await sdkUser(server.url, app, room.token);
    const conferenceId = room.id;
    const camera = movingCamera();
    const pub = new RTCPeerConnection();
    const view = new RTCPeerConnection();
    try {
      // iceServers: an array, `urls` arrays (a missing array crashes the app).
      const ice = await customer.call("GET", "/rtc-api/iceServers");
      assert.equal(ice.status, 200);
      assert.ok(Array.isArray(ice.json.iceServers));

      for (const u of [customer, agent]) {
        const joined = await u.call("POST", "/rtc-api/conferences/join", {
          conferenceId,
          userEndpointId: u.endpointId,
          userId: u.userId,
          metadata: {
            roles: ["CUSTOMER"],
            capabilities: ["audio", "video"],
            language: "en",
            type: "stream",
            mediaDevices: [{ kind: "videoinput", label: "Front Camera" }],
            name: null,
            avatarUrl: null,
            deviceInfo: {},
          },
        });
        assert.equal(joined.status, 200, joined.text);
        assert.equal(sdkSeesFailure(joined), false);
      }

      // Publish with a client-made upper-case UUID as a bare string.
      const streamId = uuid();
      pub.addTransceiver(camera.track, { direction: "sendonly" });
      const pubCandidates = loopbackCandidates(pub);
      const published = await customer.call("POST", "/rtc-api/conferences/publishStream", {
        conferenceId,
        conferenceStreamType: "CAM",
        sdpOffer: await sdpOf(pub),
        streamId,
        userEndpointId: customer.endpointId,
        userId: customer.userId,
        metadata: {
          correlationId: streamId,
          primary: true,
          portraitMode: false,
          participantRoles: ["CUSTOMER"],
          participantName: null,
        },
      });
      assert.equal(published.status, 200, published.text);
      await pub.setRemoteDescription({ type: "answer", sdp: published.json.sdpAnswer as string });
      // Publish ICE batches carry the client's own ids; each is non-empty.
      const own = { conferenceId, streamId, userEndpointId: customer.endpointId, userId: customer.userId };
      const batch = await pubCandidates;
      assert.ok(batch.length > 0);
      const pubIce = await customer.call("POST", "/rtc-api/conferences/addPublishStreamIceCandidates", {
        ...own,
        iceCandidates: batch,
      });
      assert.equal(pubIce.status, 204, pubIce.text);

      const announced = await agent.event("ConferenceStreamPublishedEvent", (e) => e.streamId === streamId);
      assert.equal(announced.streamType, "CAM");

      // The agent views it naming the publisher's user and endpoint, with a fresh viewerId.
      view.addTransceiver("video", { direction: "recvonly" });
      const frames = decodedFrames(view);
      const viewCandidates = loopbackCandidates(view);
      const viewerId = uuid();
      const publisherIds = { conferenceId, streamId, userEndpointId: customer.endpointId, userId: customer.userId };
      const viewed = await agent.call("POST", "/rtc-api/conferences/viewStream", {
        ...publisherIds,
        sdpOffer: await sdpOf(view),
        viewerId,
      });
      assert.equal(viewed.status, 200, viewed.text);
      await view.setRemoteDescription({ type: "answer", sdp: viewed.json.sdpAnswer as string });
      const viewIce = await agent.call("POST", "/rtc-api/conferences/addViewStreamIceCandidates", {
        ...publisherIds,
        viewerId,
        iceCandidates: await viewCandidates,
      });
      assert.equal(viewIce.status, 204, viewIce.text);
      await until("the agent decodes changing frames", () => (new Set(frames).size >= 3 ? true : undefined), 15000);

      // Mute as the SDK does: no userId, SET "true", REMOVE "false".
      const key = `TRACK_MUTED/audio/${streamId}`;
      for (const [operation, value] of [
        ["SET", "true"],
        ["REMOVE", "false"],
      ] as const) {
        const r = await customer.call("POST", "/rtc-api/conferences/updateMetadata", {
          conferenceId,
          userEndpointId: customer.endpointId,
          key,
          operation,
          value,
        });
        assert.equal(r.status, 204, r.text);
        await agent.event("ConferenceMetadataUpdatedEvent", (e) => e.key === key && e.operation === operation);
      }

      // Errors the SDK must see as failures: viewing a stream that is not there, a bad offer.
      const missing = await agent.call("POST", "/rtc-api/conferences/viewStream", {
        ...publisherIds,
        streamId: uuid(),
        sdpOffer: await sdpOf(new RTCPeerConnection()),
        viewerId: uuid(),
      });
      assert.equal(missing.status, 404);
      assert.ok(sdkSeesFailure(missing), missing.text);
      const badOffer = await customer.call("POST", "/rtc-api/conferences/publishStream", {
        ...own,
        streamId: uuid(),
        conferenceStreamType: "CAM",
        sdpOffer: "hello",
      });
      assert.equal(badOffer.status, 400);
      assert.ok(sdkSeesFailure(badOffer), badOffer.text);

      // Unpublish: the agent is told, frames stop, and its stopView names its own endpoint.
      const unpublished = await customer.call("POST", "/rtc-api/conferences/unpublishStream", own);
      assert.equal(unpublished.status, 204, unpublished.text);
      await agent.event("ConferenceStreamUnpublishedEvent", (e) => e.streamId === streamId);
      await new Promise((r) => setTimeout(r, 500));
      const stoppedAt = frames.length;
      await new Promise((r) => setTimeout(r, 800));
      assert.ok(frames.length - stoppedAt <= 2, "frames stop after unpublish");
      const stopped = await agent.call("POST", "/rtc-api/conferences/stopViewStream", {
        ...publisherIds,
        viewerId: agent.endpointId,
      });
      assert.ok([204, 404].includes(stopped.status), stopped.text);

      // Two more streams, then leave with reason "": each stream gets its unpublished event.
      const more = [uuid(), uuid()];
      for (const id of more) {
        const pc = new RTCPeerConnection();
        pc.addTransceiver("video", { direction: "sendonly" });
        const r = await customer.call("POST", "/rtc-api/conferences/publishStream", {
          ...own,
          streamId: id,
          conferenceStreamType: "SCREEN",
          sdpOffer: await sdpOf(pc),
        });
        pc.close();
        assert.equal(r.status, 200, r.text);
      }
      const left = await customer.call("POST", "/rtc-api/conferences/leave", {
        conferenceId,
        userEndpointId: customer.endpointId,
        userId: customer.userId,
        reason: "",
      });
      assert.equal(left.status, 204, left.text);
      for (const id of more) await agent.event("ConferenceStreamUnpublishedEvent", (e) => e.streamId === id);
      await agent.event("ConferenceLeftEvent", (e) => e.userEndpointId === customer.endpointId);
      const unregistered = await customer.call("POST", "/rtc-api/users/endpoints/unregister", {
        userEndpointId: customer.endpointId,
        userId: customer.userId,
      });
      assert.equal(unregistered.status, 204, unregistered.text);

      for (const u of [customer, agent]) assertVersionRule(u.messages);
      const unpublishedIds = agent.messages
        .filter((e) => e.type === "ConferenceStreamUnpublishedEvent")
        .map((e) => e.streamId);
      assert.deepEqual(unpublishedIds.sort(), [streamId, ...more].sort(), "one event per stream, none twice");
    } finally {
      camera.stop();
      pub.close();
      view.close();
      await Promise.all([customer.close(), agent.close()]);
    }
  });

  it("summary, list and endpoints as the SDK routes them; a USER token sees only its own", async () => {
    const room = await roomToken(server.url, app, { name: "sdk-summary", conferenceType: "SFU" });
    const u = await sdkUser(server.url, app, room.token);
    try {
      const joined = await u.call("POST", "/rtc-api/conferences/join", {
        conferenceId: room.id,
        userEndpointId: u.endpointId,
        userId: u.userId,
      });
      assert.equal(joined.status, 200);
      const summary = await u.call("GET", `/rtc-api/conferences/${room.id}/summary`);
      assert.equal(summary.status, 200, summary.text);
      assert.deepEqual(summary.json, { id: room.id, mode: "ROUTER", version: 1 });
      const other = await roomToken(server.url, app, { name: "other" });
      const service = rest(server.url, await serviceToken(server.url, app));
      assert.equal((await service("POST", "/rtc-api/conferences/create", { conferenceId: other.id })).status, 200);

      const mine = await u.call("GET", "/rtc-api/conferences");
      assert.deepEqual(mine.json, [{ id: room.id, mode: "ROUTER", version: 1 }]);
      const all = await service("GET", "/rtc-api/conferences");
      assert.ok(Array.isArray(all.json));
      const listed = (r: { json: Json[] }) => r.json.map((c) => c.id);
      assert.ok(listed(all).includes(room.id) && listed(all).includes(other.id), all.text);
      const foreign = await u.call("GET", `/rtc-api/conferences/${other.id}/summary`);
      assert.equal(foreign.status, 404, "another conference is as absent to a USER token");
      assert.ok(sdkSeesFailure(foreign));
      const absent = await service("GET", "/rtc-api/conferences/nope/summary");
      assert.equal(absent.status, 404);

      const endpoints = await u.call("GET", "/rtc-api/users/endpoints");
      assert.equal(endpoints.status, 200, endpoints.text);
      const endpoint = await u.call("GET", `/rtc-api/users/endpoints/${u.endpointId}`);
      assert.equal(endpoint.status, 200, endpoint.text);

      // An ended conference leaves the list.
      assert.equal(
        (await service("POST", "/rtc-api/conferences/end", { conferenceId: other.id, reason: "" })).status,
        204,
      );
      const later = await service("GET", "/rtc-api/conferences");
      assert.ok(listed(later).includes(room.id) && !listed(later).includes(other.id), later.text);
    } finally {
      await u.close();
    }
  });
});

/** Connects as the SDK does; resolves true on CONNACK, false on a refusal. */
async function connects(url: string, username: string, password: string): Promise<boolean> {
  try {
    const m = await mqttClient(url, username, password);
    await m.client.endAsync();
    return true;
  } catch {
    return false;
  }
}

describe("MQTT reconnect with the SDK's first access token", () => {
  let server: TestServer;
  let app: TestApp;
  before(async () => {
    server = await startServer({ ACCESS_TOKEN_TTL_SECONDS: "2" });
    app = await createApp(server.url);
  });
  after(() => server.close());

  /** Past the 2 s access-token lifetime, checked by a REST call being refused. */
  const expired = async (access: string) => {
    await new Promise((r) => setTimeout(r, 2200));
    assert.equal((await rest(server.url, access)("GET", "/rtc-api/users/endpoints")).status, 401);
  };

  it("accepted while its login lives and the user has an endpoint: events flow, own topics only", async () => {
    const room = await roomToken(server.url, app);
    const [alice, bob] = await Promise.all([
      sdkUser(server.url, app, room.token),
      sdkUser(server.url, app, room.token),
    ]);
    try {
      await expired(alice.access);
      // The SDK refreshes, then reconnects MQTT with the original access token.
      const refreshed = await token(server.url, { grant_type: "refresh_token", refresh_token: alice.refresh });
      assert.equal(refreshed.status, 200);
      const again = await mqttClient(server.url, alice.userId, alice.access);
      try {
        const granted = await again.client.subscribeAsync(`user/${alice.userId}/${alice.endpointId}`, { qos: 1 });
        assert.equal(granted[0]?.qos, 1);
        await assert.rejects(again.client.subscribeAsync(`user/${bob.userId}/${bob.endpointId}`, { qos: 1 }));
        // Bob calls Alice (Bob's fresh token): the event arrives on the reconnected session.
        const bobNow = await token(server.url, { grant_type: "refresh_token", refresh_token: bob.refresh });
        const callId = uuid();
        const started = await rest(server.url, bobNow.json.access_token as string)("POST", "/rtc-api/calls/call", {
          callId,
          sdpOffer: "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n",
          target: alice.userId,
          userEndpointId: bob.endpointId,
          userId: bob.userId,
        });
        assert.equal(started.status, 204, started.text);
        await until("CallCreatedEvent on the reconnected session", () =>
          again.messages.find((e) => e.type === "CallCreatedEvent" && e.callId === callId),
        );
      } finally {
        await again.client.endAsync();
      }
    } finally {
      await Promise.all([alice.close(), bob.close()]);
    }
  });

  it("refused: tampered, no endpoint, after unregister, after refresh-token reuse (which also closes it)", async () => {
    const room = await roomToken(server.url, app);
    const login = async () => {
      const r = await token(
        server.url,
        { grant_type: "password", username: room.token, password: "" },
        `${app.apikey}:`,
      );
      return {
        access: r.json.access_token as string,
        refresh: r.json.refresh_token as string,
        sub: r.json.sub as string,
      };
    };
    const bare = await login(); // never registers an endpoint
    const unregistering = await sdkUser(server.url, app, room.token);
    const reusing = await sdkUser(server.url, app, room.token);
    try {
      await expired(bare.access);
      const [head, payload, signature] = unregistering.access.split(".") as [string, string, string];
      const tampered = `${head}.${payload}.${signature.slice(0, -2)}${signature.endsWith("AA") ? "BB" : "AA"}`;
      assert.equal(await connects(server.url, unregistering.userId, tampered), false, "tampered");
      assert.equal(await connects(server.url, bare.sub, bare.access), false, "no endpoint registered");

      assert.equal(await connects(server.url, unregistering.userId, unregistering.access), true, "the rule holds");
      const fresh = await token(server.url, { grant_type: "refresh_token", refresh_token: unregistering.refresh });
      const gone = await rest(server.url, fresh.json.access_token as string)(
        "POST",
        "/rtc-api/users/endpoints/unregister",
        {
          userEndpointId: unregistering.endpointId,
          userId: unregistering.userId,
        },
      );
      assert.equal(gone.status, 204, gone.text);
      assert.equal(await connects(server.url, unregistering.userId, unregistering.access), false, "after unregister");

      // A live session on the expired token ends when its login is revoked for reuse.
      const session = await mqttClient(server.url, reusing.userId, reusing.access);
      const closed = new Promise<void>((r) => session.client.once("close", () => r()));
      assert.equal(
        (await token(server.url, { grant_type: "refresh_token", refresh_token: reusing.refresh })).status,
        200,
      );
      const reuse = await token(server.url, { grant_type: "refresh_token", refresh_token: reusing.refresh });
      assert.equal(reuse.status, 400);
      await closed;
      assert.equal(await connects(server.url, reusing.userId, reusing.access), false, "after reuse");
    } finally {
      await Promise.all([unregistering.close(), reusing.close()]);
    }
  });

  it("a session on an expired token ends with its login's absolute lifetime", async () => {
    const short = await startServer({
      ACCESS_TOKEN_TTL_SECONDS: "2",
      REFRESH_TOKEN_TTL_SECONDS: "4",
      REFRESH_CHAIN_LIFETIME_SECONDS: "4",
    });
    try {
      const shortApp = await createApp(short.url);
      const room = await roomToken(short.url, shortApp);
      const u = await sdkUser(short.url, shortApp, room.token);
      await u.close();
      await new Promise((r) => setTimeout(r, 2200));
      const started = Date.now();
      const session = await mqttClient(short.url, u.userId, u.access);
      await new Promise<void>((r) => session.client.once("close", () => r()));
      const lasted = Date.now() - started;
      assert.ok(lasted < 3000, `closed at the family's end, after ${lasted} ms`);
      const client = mqtt.connect(`${short.url.replace("http", "ws")}/ws`, {
        protocolVersion: 4,
        username: u.userId,
        password: u.access,
        reconnectPeriod: 0,
      });
      const refusedAt = Date.now();
      const code = await new Promise<number | undefined>((resolve) => {
        client.once("error", (e) => resolve((e as { code?: number }).code));
        client.once("connect", () => resolve(0));
      });
      client.end(true);
      assert.equal(code, 4, "bad user name or password");
      assert.ok(Date.now() - refusedAt >= 900, "a refusal is answered late, so retries cannot spin");
    } finally {
      await short.close();
    }
  });
});

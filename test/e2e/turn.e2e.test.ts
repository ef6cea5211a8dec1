/**
 * TURN through a real coturn (`use-auth-secret`): the conference API's iceServers (SERVICE
 * tokens, room tokens used as bearers, and the SDK's ticket login), and Spreed's `Self`, carry
 * time-limited credentials for TURN_URIS; relay-only libwebrtc peers publish and view through
 * the SFU over coturn's relay; a wrong, an expired or a stretched credential gets no relay.
 */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { after, before, describe, it } from "node:test";
import WebSocket from "ws";
import { type Json, rest, roomToken, token } from "../helpers/conference-client.js";
import { type Coturn, startCoturn } from "../helpers/coturn.js";
import { sdkUser, uuid } from "../helpers/sdk-user.js";
import { createApp, serviceToken, startServer, type TestApp, type TestServer } from "../helpers/server.js";
import { decodedFrames, movingCamera, RTCPeerConnection, setLocalOffer, statsOfType } from "../helpers/wrtc.js";

const TTL = 600;

type IceServer = { urls: string[]; username: string; credential: string };

let coturn: Coturn;
let server: TestServer;
let app: TestApp;
/** coturn answers STUN too: the static ICE_SERVERS entry. */
let stun: string;

before(async () => {
  coturn = await startCoturn();
  stun = `stun:127.0.0.1:${coturn.port}`;
  server = await startServer(
    {
      TURN_URIS: coturn.uris.join(","),
      TURN_SECRET: coturn.secret,
      TURN_TTL_SECONDS: String(TTL),
      ICE_SERVERS: JSON.stringify([{ urls: [stun] }]),
      MEDIA_WORKERS: "1",
    },
    undefined,
    undefined,
    true,
  );
  app = await createApp(server.url);
});
after(async () => {
  await server?.close();
  await coturn?.stop();
});

const hmac = (secret: string, username: string) => createHmac("sha1", secret).update(username).digest("base64");

/** Checks a TURN REST credential: `<expiry>:<userId>`, the expiry TTL after issue, the HMAC. */
function assertCredential(username: string, credential: string, userId: string, issuedAt: [number, number]): void {
  const m = /^(\d+):(.+)$/.exec(username);
  assert.ok(m, `user name ${username} is <expiry>:<user>`);
  assert.equal(m[2], userId);
  const expiry = Number(m[1]);
  assert.ok(
    expiry >= Math.floor(issuedAt[0] / 1000) + TTL && expiry <= Math.ceil(issuedAt[1] / 1000) + TTL,
    `expiry ${expiry} is TURN_TTL_SECONDS after issue`,
  );
  assert.equal(credential, hmac(coturn.secret, username));
}

/** GET /rtc-api/iceServers with `bearer`: the STUN entry as configured, then TURN; checked. */
async function iceServersFor(bearer: string, userId: string): Promise<IceServer[]> {
  const t0 = Date.now();
  const res = await rest(server.url, bearer)("GET", "/rtc-api/iceServers");
  const t1 = Date.now();
  assert.equal(res.status, 200, res.text);
  const list = res.json.iceServers as unknown as IceServer[];
  assert.equal(list.length, 2);
  assert.deepEqual(list[0], { urls: [stun], username: "", credential: "" });
  const turn = list[1] as IceServer;
  assert.deepEqual(turn.urls, coturn.uris);
  assertCredential(turn.username, turn.credential, userId, [t0, t1]);
  return list;
}

/** A JWT's claims (the test reads a room token's jti, the user id it stands for). */
function claims(jwt: string): Json {
  return JSON.parse(Buffer.from(jwt.split(".")[1] ?? "", "base64url").toString()) as Json;
}

async function until(what: string, check: () => boolean, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The offer of a relay-only peer once gathering is complete, and the candidates it gathered. */
async function gather(pc: RTCPeerConnection, limitMs = 10_000): Promise<{ candidates: string[]; ms: number }> {
  const started = Date.now();
  const candidates: string[] = [];
  const done = new Promise<void>((resolve) => {
    pc.onicecandidate = (e) => {
      if (e.candidate === null) resolve();
      else candidates.push(e.candidate.candidate);
    };
  });
  await setLocalOffer(pc);
  const timer = new Promise<void>((r) => setTimeout(r, limitMs).unref());
  await Promise.race([done, timer]);
  return { candidates, ms: Date.now() - started };
}

/** The local and remote candidate of the pair `pc`'s transport selected. */
async function selectedPair(pc: RTCPeerConnection): Promise<{ local: Json; remote: Json }> {
  const all = new Map<string, Json>();
  (await pc.getStats()).forEach((s: Json) => {
    all.set(s.id as string, s);
  });
  const transport = [...all.values()].find((s) => s.type === "transport" && s.selectedCandidatePairId);
  const pair =
    (transport === undefined ? undefined : all.get(transport.selectedCandidatePairId as string)) ??
    [...all.values()].find((s) => s.type === "candidate-pair" && s.nominated === true && s.state === "succeeded");
  assert.ok(pair, "a selected candidate pair");
  const local = all.get(pair.localCandidateId as string);
  const remote = all.get(pair.remoteCandidateId as string);
  assert.ok(local && remote);
  return { local, remote };
}

describe("TURN credentials (coturn use-auth-secret)", () => {
  it("iceServers, Spreed's Self and a rooms-API token's user carry credentials for TURN_URIS", async () => {
    // A SERVICE token: the app's service user.
    const service = await serviceToken(server.url, app);
    await iceServersFor(service, `service-${app.appId}`);

    // A rooms-API token as the bearer: its user is the token's jti.
    const room = await roomToken(server.url, app, { name: "turn", conferenceType: "SFU" });
    await iceServersFor(room.token, claims(room.token).jti as string);

    // The SDK's path: the token is a ticket; the login's user gets its own credentials.
    const login = await token(
      server.url,
      { grant_type: "password", username: room.token, password: "" },
      `${app.apikey}:`,
    );
    assert.equal(login.status, 200, JSON.stringify(login.json));
    await iceServersFor(login.json.access_token as string, login.json.sub as string);

    // No bearer, no credentials.
    assert.equal((await rest(server.url, undefined)("GET", "/rtc-api/iceServers")).status, 401);

    // Spreed's Self: TURN_* are SPREED_TURN_*'s defaults; the user is the session id.
    const t0 = Date.now();
    const ws = new WebSocket(`${server.url.replace("http", "ws")}/ws`);
    const first = await new Promise<Json>((resolve) => ws.once("message", (raw) => resolve(JSON.parse(String(raw)))));
    const t1 = Date.now();
    ws.close();
    const self = first.Data as Json;
    assert.equal(self.Type, "Self");
    const turn = self.Turn as Json;
    assert.deepEqual(turn.urls, coturn.uris);
    assert.equal(turn.ttl, TTL);
    assertCredential(turn.username as string, turn.password as string, self.Id as string, [t0, t1]);
    const spreedConfig = (await (await fetch(`${server.url}/api/v1/config`)).json()) as Json;
    assert.deepEqual(spreedConfig.TurnURIs, coturn.uris);
  });

  it("relay-only peers publish and view through coturn with the SDK users' own iceServers", async () => {
    const room = await roomToken(server.url, app, { name: "relay", conferenceType: "SFU" });
    const customer = await sdkUser(server.url, app, room.token);
    const agent = await sdkUser(server.url, app, room.token);
    const conferenceId = room.id;
    const camera = movingCamera();
    const config = async (u: typeof customer): Promise<RTCConfiguration> => ({
      iceServers: await iceServersFor(u.access, u.userId),
      iceTransportPolicy: "relay",
    });
    const pub = new RTCPeerConnection(await config(customer));
    const view = new RTCPeerConnection(await config(agent));
    try {
      for (const u of [customer, agent]) {
        const joined = await u.call("POST", "/rtc-api/conferences/join", {
          conferenceId,
          userEndpointId: u.endpointId,
          userId: u.userId,
        });
        assert.equal(joined.status, 200, joined.text);
      }
      const streamId = uuid();
      pub.addTransceiver(camera.track, { direction: "sendonly" });
      const pubGathered = await gather(pub);
      assert.ok(pubGathered.candidates.length > 0, "the publisher gathered relay candidates");
      assert.ok(
        pubGathered.candidates.every((c) => / typ relay /.test(c)),
        "a relay-only peer offers relay candidates only",
      );
      const own = { conferenceId, streamId, userEndpointId: customer.endpointId, userId: customer.userId };
      const published = await customer.call("POST", "/rtc-api/conferences/publishStream", {
        ...own,
        conferenceStreamType: "CAM",
        sdpOffer: pub.localDescription?.sdp, // gathering is complete: nothing writes it any more (see setLocalOffer)
      });
      assert.equal(published.status, 200, published.text);
      await pub.setRemoteDescription({ type: "answer", sdp: published.json.sdpAnswer as string });
      const pubIce = await customer.call("POST", "/rtc-api/conferences/addPublishStreamIceCandidates", {
        ...own,
        iceCandidates: pubGathered.candidates.map((candidate) => ({ candidate, sdpMLineIndex: 0, sdpMid: "0" })),
      });
      assert.equal(pubIce.status, 204, pubIce.text);

      view.addTransceiver("video", { direction: "recvonly" });
      const frames = decodedFrames(view);
      await gather(view);
      const viewed = await agent.call("POST", "/rtc-api/conferences/viewStream", {
        ...own,
        sdpOffer: view.localDescription?.sdp,
        viewerId: uuid(),
      });
      assert.equal(viewed.status, 200, viewed.text);
      await view.setRemoteDescription({ type: "answer", sdp: viewed.json.sdpAnswer as string });

      await until("30 frames decoded through the relay", () => frames.length >= 30);
      assert.ok(new Set(frames).size > 3, "the frame content changes");

      for (const [who, pc] of [
        ["publisher", pub],
        ["viewer", view],
      ] as const) {
        const { local, remote } = await selectedPair(pc);
        assert.equal(local.candidateType, "relay", `${who}'s selected local candidate is a relay candidate`);
        const port = Number(local.port);
        assert.ok(port >= coturn.minPort && port <= coturn.maxPort, `${who}'s relay port ${port} is coturn's`);
        assert.equal(remote.candidateType, "host", `${who} reaches the SFU's own candidate`);
      }
      const inbound = (await statsOfType(view, "inbound-rtp")).find((s) => s.kind === "video");
      assert.ok(inbound !== undefined && Number(inbound.framesDecoded) >= 30);
      // coturn saw both users' allocations under their REST user names.
      for (const u of [customer, agent]) assert.match(coturn.log(), new RegExp(`user <\\d+:${u.userId}>`));
    } finally {
      camera.stop();
      pub.close();
      view.close();
      await customer.close();
      await agent.close();
    }
  });

  it("coturn refuses a wrong, an expired and a stretched credential: no relay candidate, no media", async () => {
    const now = Math.floor(Date.now() / 1000);
    const good = `${now + TTL}:probe`;
    const cases: [string, string, string][] = [
      ["valid (control)", good, hmac(coturn.secret, good)],
      ["wrong secret", good, hmac(`${coturn.secret}x`, good)],
      ["expired", `${now - 5}:probe`, hmac(coturn.secret, `${now - 5}:probe`)],
      // A holder cannot push its expiry out: the HMAC covers the user name.
      ["stretched", `${now + 10 * TTL}:probe`, hmac(coturn.secret, good)],
    ];
    for (const [name, username, credential] of cases) {
      const pc = new RTCPeerConnection({
        iceServers: [{ urls: [...coturn.uris], username, credential }],
        iceTransportPolicy: "relay",
      });
      try {
        pc.addTransceiver("video", { direction: "recvonly" });
        const { candidates, ms } = await gather(pc);
        const relays = candidates.filter((c) => / typ relay /.test(c));
        if (name.startsWith("valid")) assert.ok(relays.length > 0, "the control gets a relay candidate");
        else {
          assert.deepEqual(relays, [], `${name}: no relay candidate`);
          assert.ok(ms < 10_000, `${name}: gathering ended (${ms} ms) instead of hanging`);
          // Refused by coturn for that user name (not lost on the way).
          const refusal = `user <${username}>: incoming packet message processed, error 401: Unauthorized`;
          assert.ok(coturn.log().includes(refusal), `${name}: coturn logged ${refusal}`);
        }
      } finally {
        pc.close();
      }
    }

    // A relay-only viewer with a wrong credential never connects to the SFU.
    const service = rest(server.url, await serviceToken(server.url, app));
    const conferenceId = `turn-refused-${uuid()}`;
    assert.equal((await service("POST", "/rtc-api/conferences/create", { conferenceId, mode: "ROUTER" })).status, 200);
    assert.equal(
      (await service("POST", "/rtc-api/conferences/join", { conferenceId, userEndpointId: "pub", userId: "pub" }))
        .status,
      200,
    );
    const camera = movingCamera();
    const pub = new RTCPeerConnection();
    const bad = new RTCPeerConnection({
      iceServers: [{ urls: [...coturn.uris], username: good, credential: hmac("not-the-secret-at-all", good) }],
      iceTransportPolicy: "relay",
    });
    try {
      pub.addTransceiver(camera.track, { direction: "sendonly" });
      const pubOffer = await setLocalOffer(pub);
      const published = await service("POST", "/rtc-api/conferences/publishStream", {
        conferenceId,
        userEndpointId: "pub",
        conferenceStreamType: "CAM",
        sdpOffer: pubOffer,
      });
      assert.equal(published.status, 200, published.text);
      const streamId = (published.json.streamId as Json).id as string;
      await pub.setRemoteDescription({ type: "answer", sdp: published.json.sdpAnswer as string });

      bad.addTransceiver("video", { direction: "recvonly" });
      const frames = decodedFrames(bad);
      const states: string[] = [];
      bad.oniceconnectionstatechange = () => states.push(bad.iceConnectionState);
      await gather(bad);
      const viewed = await service("POST", "/rtc-api/conferences/viewStream", {
        conferenceId,
        userEndpointId: "pub",
        streamId: { id: streamId },
        sdpOffer: bad.localDescription?.sdp,
      });
      assert.equal(viewed.status, 200, viewed.text);
      await bad.setRemoteDescription({ type: "answer", sdp: viewed.json.sdpAnswer as string });
      await new Promise((r) => setTimeout(r, 5_000));
      assert.equal(frames.length, 0, "no frame without a relay");
      assert.ok(!states.includes("connected") && !states.includes("completed"), `ICE states: ${states.join(",")}`);
    } finally {
      camera.stop();
      pub.close();
      bad.close();
    }
  });
});

/**
 * One-to-one calls (`/rtc-api/calls/...`) as the vendor's iOS SDK drives them
 * (notes/auvious-ios-sdk.md): real USER logins, mqtt.js over WebSocket for the events, two
 * libwebrtc peers for the media, Connect's gRPC transport for WatchCallEvents.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { CallService } from "../../gen/rtcplane/conference/v1/calls_pb.js";
import type { CallEvent } from "../../gen/rtcplane/conference/v1/events_pb.js";
import { type Json, mqttClient, rest, roomToken, serviceToken, until } from "../helpers/conference-client.js";
import { type SdkUser, sdkUser, uuid } from "../helpers/sdk-user.js";
import { createApp, startServer, type TestApp, type TestServer } from "../helpers/server.js";
import { decodedFrames, loopbackCandidates, movingCamera, RTCPeerConnection } from "../helpers/wrtc.js";

const SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";
const CANDIDATE = { candidate: "candidate:1 1 udp 2122063615 127.0.0.1 40000 typ host", sdpMLineIndex: 0, sdpMid: "0" };

let server: TestServer;
let app: TestApp;

before(async () => {
  server = await startServer();
  app = await createApp(server.url);
});
after(() => server.close());

async function users(n: number): Promise<SdkUser[]> {
  const room = await roomToken(server.url, app);
  return Promise.all(Array.from({ length: n }, () => sdkUser(server.url, app, room.token)));
}

/** A second endpoint of the same login, with its own MQTT connection. */
async function secondEndpoint(u: SdkUser) {
  const endpointId = uuid();
  const reg = await u.call("POST", "/rtc-api/users/endpoints/register", {
    keepAliveSeconds: 15,
    userEndpointId: endpointId,
    userId: u.userId,
  });
  assert.equal(reg.status, 200);
  const m = await mqttClient(server.url, u.userId, u.access);
  await m.client.subscribeAsync(`user/${u.userId}/${endpointId}`, { qos: 1 });
  return { endpointId, ...m };
}

/** What the SDK can see of an error: a non-JSON body with the status. */
function assertError(r: { status: number; type: string; text: string }, status: number, text?: RegExp) {
  assert.equal(r.status, status, r.text);
  assert.match(r.type, /^text\/plain/);
  assert.doesNotThrow(() => assert.equal(r.text.trim().startsWith("{"), false));
  if (text !== undefined) assert.match(r.text, text);
}

/** Every event an endpoint got: caused by someone else, versions increasing, candidates non-empty. */
function assertCounterpartOnly(endpointId: string, messages: Json[]) {
  const versions = new Map<string, number>();
  for (const e of messages) {
    assert.notEqual(e.userEndpointId, endpointId, `${e.type} went back to the endpoint that caused it`);
    assert.equal(e.aggregate, "Call");
    assert.equal(e.aggregateId, e.callId);
    assert.equal(typeof e.aggregateVersion, "number");
    assert.ok((e.aggregateVersion as number) > (versions.get(e.callId as string) ?? 0), "versions increase");
    versions.set(e.callId as string, e.aggregateVersion as number);
    assert.equal(e.conferenceVersion, undefined);
    if (e.type === "IceCandidatesFoundEvent") assert.ok((e.iceCandidates as unknown[]).length > 0);
  }
}

describe("one-to-one calls: signalling", () => {
  it("created → ringing → answered → candidates → hangup, each event to the counterpart only", async () => {
    const [alice, bob] = (await users(2)) as [SdkUser, SdkUser];
    const bob2 = await secondEndpoint(bob);
    const callId = uuid();
    const started = await alice.call("POST", "/rtc-api/calls/call", {
      callId,
      sdpOffer: SDP,
      target: bob.userId,
      userEndpointId: alice.endpointId,
      userId: alice.userId,
      sipHeaders: { "X-Case": "42" },
    });
    assert.deepEqual([started.status, started.text], [204, ""]);
    // Both of Bob's endpoints ring, in Alice's name; Alice does not hear her own call.
    for (const messages of [bob.messages, bob2.messages]) {
      const created = await until("CallCreatedEvent", () => messages.find((e) => e.type === "CallCreatedEvent"));
      assert.deepEqual(
        [created.callId, created.sdpOffer, created.target, created.userId, created.userEndpointId],
        [callId, SDP, bob.userId, alice.userId, alice.endpointId],
      );
      assert.deepEqual(created.sipHeaders, { "X-Case": "42" });
      assert.equal(created.aggregateVersion, 1);
      assert.match(created.timestamp as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    }
    // Alice's candidates before the answer are held; an empty batch is accepted and goes nowhere.
    const ids = { callId, userEndpointId: alice.endpointId, userId: alice.userId };
    assert.equal(
      (await alice.call("POST", "/rtc-api/calls/addIceCandidates", { ...ids, iceCandidates: [] })).status,
      204,
    );
    assert.equal(
      (await alice.call("POST", "/rtc-api/calls/addIceCandidates", { ...ids, iceCandidates: [CANDIDATE] })).status,
      204,
    );
    // Ringing (automatic in the SDK) reaches the caller once, however many endpoints ring.
    for (const endpointId of [bob.endpointId, bob2.endpointId]) {
      const r = await bob.call("POST", "/rtc-api/calls/ringing", {
        callId,
        userEndpointId: endpointId,
        userId: bob.userId,
      });
      assert.equal(r.status, 204);
    }
    const ringing = await alice.event("CallRingingEvent");
    assert.deepEqual([ringing.userId, ringing.userEndpointId], [bob.userId, bob.endpointId]);
    // Answer: the SDK sends the caller's userId here; the endpoint's owner is who answers.
    const answered = await bob.call("POST", "/rtc-api/calls/answer", {
      callId,
      sdpAnswer: `${SDP}a=answer\r\n`,
      userEndpointId: bob.endpointId,
      userId: alice.userId,
    });
    assert.equal(answered.status, 204, answered.text);
    const answer = await alice.event("CallAnsweredEvent");
    assert.deepEqual(
      [answer.sdpAnswer, answer.userId, answer.userEndpointId],
      [`${SDP}a=answer\r\n`, bob.userId, bob.endpointId],
    );
    // The other endpoint stops ringing; the answering one gets Alice's held candidates.
    const stopped = await until("bob2's CallCancelledEvent", () =>
      bob2.messages.find((e) => e.type === "CallCancelledEvent"),
    );
    assert.equal(stopped.callId, callId);
    const held = await bob.event("IceCandidatesFoundEvent");
    assert.deepEqual([held.iceCandidates, held.userId], [[CANDIDATE], alice.userId]);
    assertError(
      await bob.call("POST", "/rtc-api/calls/answer", { callId, sdpAnswer: SDP, userEndpointId: bob2.endpointId }),
      404,
    );
    // Candidates after the answer go straight to the other party; empty ones nowhere.
    await alice.call("POST", "/rtc-api/calls/addIceCandidates", {
      ...ids,
      iceCandidates: [{ candidate: "", sdpMLineIndex: 0, sdpMid: "0" }],
    });
    const fromBob = { ...CANDIDATE, candidate: CANDIDATE.candidate.replace("40000", "40002") };
    await bob.call("POST", "/rtc-api/calls/addIceCandidates", {
      callId,
      iceCandidates: [fromBob],
      userEndpointId: bob.endpointId,
      userId: alice.userId,
    });
    const found = await alice.event("IceCandidatesFoundEvent");
    assert.deepEqual([found.iceCandidates, found.userEndpointId], [[fromBob], bob.endpointId]);
    // Hangup: the other party hears it with the reason; a second one is refused (412).
    const hangup = { ...ids, reason: "No reason" };
    assert.equal((await alice.call("POST", "/rtc-api/calls/hangup", hangup)).status, 204);
    const ended = await bob.event("CallEndedEvent");
    assert.deepEqual([ended.reason, ended.userId], ["No reason", alice.userId]);
    assertError(await alice.call("POST", "/rtc-api/calls/hangup", hangup), 412, /^412 Precondition Failed: .*ENDED/);

    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(
      alice.messages.map((e) => e.type),
      ["CallRingingEvent", "CallAnsweredEvent", "IceCandidatesFoundEvent"],
    );
    assert.deepEqual(
      bob.messages.map((e) => e.type),
      ["CallCreatedEvent", "IceCandidatesFoundEvent", "CallEndedEvent"],
    );
    assert.deepEqual(
      bob2.messages.map((e) => e.type),
      ["CallCreatedEvent", "CallCancelledEvent"],
    );
    assertCounterpartOnly(alice.endpointId, alice.messages);
    assertCounterpartOnly(bob.endpointId, bob.messages);
    assertCounterpartOnly(bob2.endpointId, bob2.messages);
    await Promise.all([alice.close(), bob.close(), bob2.client.endAsync()]);
  });

  it("reject, cancel, and hangup before an answer (a cancel from the caller, a reject from the callee)", async () => {
    const [alice, bob] = (await users(2)) as [SdkUser, SdkUser];
    const bob2 = await secondEndpoint(bob);
    const start = (callId: string) =>
      alice.call("POST", "/rtc-api/calls/call", {
        callId,
        sdpOffer: SDP,
        target: bob.userId,
        userEndpointId: alice.endpointId,
        userId: alice.userId,
      });
    // Reject: the caller hears why, Bob's other endpoint stops ringing.
    const rejected = uuid();
    assert.equal((await start(rejected)).status, 204);
    const r = await bob.call("POST", "/rtc-api/calls/reject", {
      callId: rejected,
      userEndpointId: bob.endpointId,
      userId: bob.userId,
      reason: "busy",
    });
    assert.equal(r.status, 204);
    const rej = await alice.event("CallRejectedEvent");
    assert.deepEqual([rej.callId, rej.reason, rej.userId], [rejected, "busy", bob.userId]);
    await until("bob2 stops ringing", () =>
      bob2.messages.find((e) => e.type === "CallCancelledEvent" && e.callId === rejected),
    );
    assertError(
      await bob.call("POST", "/rtc-api/calls/answer", {
        callId: rejected,
        sdpAnswer: SDP,
        userEndpointId: bob.endpointId,
      }),
      412,
      /REJECTED/,
    );
    // Cancel: every endpoint of Bob's hears it; ringing afterwards is refused.
    const cancelled = uuid();
    assert.equal((await start(cancelled)).status, 204);
    const c = await alice.call("POST", "/rtc-api/calls/cancel", {
      callId: cancelled,
      userEndpointId: alice.endpointId,
      userId: alice.userId,
      reason: "changed my mind",
    });
    assert.equal(c.status, 204);
    for (const messages of [bob.messages, bob2.messages]) {
      const e = await until("CallCancelledEvent", () =>
        messages.find((m) => m.type === "CallCancelledEvent" && m.callId === cancelled),
      );
      assert.deepEqual([e.reason, e.userId], ["changed my mind", alice.userId]);
    }
    assertError(
      await bob.call("POST", "/rtc-api/calls/ringing", { callId: cancelled, userEndpointId: bob.endpointId }),
      412,
      /CANCELLED/,
    );
    // Hangup before an answer: from the caller it cancels, from the callee it rejects.
    const early = uuid();
    assert.equal((await start(early)).status, 204);
    await alice.call("POST", "/rtc-api/calls/hangup", { callId: early, userEndpointId: alice.endpointId, reason: "x" });
    await until("cancel by hangup", () =>
      bob.messages.find((m) => m.type === "CallCancelledEvent" && m.callId === early),
    );
    const early2 = uuid();
    assert.equal((await start(early2)).status, 204);
    await bob.call("POST", "/rtc-api/calls/hangup", { callId: early2, userEndpointId: bob2.endpointId, reason: "y" });
    const byHangup = await alice.event("CallRejectedEvent", (e) => e.callId === early2);
    assert.deepEqual([byHangup.reason, byHangup.userEndpointId], ["y", bob2.endpointId]);
    await new Promise((r) => setTimeout(r, 200));
    for (const [id, messages] of [
      [alice.endpointId, alice.messages],
      [bob.endpointId, bob.messages],
      [bob2.endpointId, bob2.messages],
    ] as const) {
      assertCounterpartOnly(id, messages);
    }
    await Promise.all([alice.close(), bob.close(), bob2.client.endAsync()]);
  });

  it("answers bad input and strangers with the documented statuses, as text the SDK sees as errors", async () => {
    const [alice, bob, carol] = (await users(3)) as [SdkUser, SdkUser, SdkUser];
    const callId = uuid();
    const body = { callId, sdpOffer: SDP, target: bob.userId, userEndpointId: alice.endpointId, userId: alice.userId };
    assert.equal((await alice.call("POST", "/rtc-api/calls/call", body)).status, 204);
    const cases: [string, Json, number, RegExp][] = [
      ["call", body, 409, /already exists/],
      ["call", { ...body, callId: uuid(), sdpOffer: "hello" }, 400, /sdpOffer/],
      ["call", { ...body, callId: uuid(), target: alice.userId }, 400, /itself/],
      ["call", { ...body, callId: uuid(), target: "nobody-here" }, 404, /no registered endpoint/],
      ["call", { ...body, callId: "bad id!" }, 400, /callId/],
      ["call", { ...body, callId: uuid(), userEndpointId: bob.endpointId, as: "alice" }, 403, /another user/],
      ["call", { ...body, callId: uuid(), userEndpointId: "NOT-REGISTERED" }, 404, /not registered/],
      ["call", { ...body, callId: uuid(), userEndpointId: "" }, 400, /userEndpointId/],
      ["call", { ...body, callId: uuid(), sipHeaders: { "bad header": "x" } }, 400, /sipHeaders/],
      ["call", { ...body, callId: uuid(), sdpOffer: 42 }, 400, /./],
      ["ringing", { callId: uuid(), userEndpointId: bob.endpointId }, 404, /not found/],
      ["ringing", { callId, userEndpointId: carol.endpointId }, 404, /not found/],
      ["cancel", { callId, userEndpointId: carol.endpointId }, 404, /not found/],
      ["answer", { callId, sdpAnswer: "", userEndpointId: bob.endpointId }, 400, /sdpAnswer/],
      ["addIceCandidates", { callId, userEndpointId: bob.endpointId, iceCandidates: [CANDIDATE] }, 412, /answer it/],
      [
        "addIceCandidates",
        { callId, userEndpointId: alice.endpointId, iceCandidates: [{ candidate: "nope", sdpMLineIndex: 0 }] },
        400,
        /not an ICE candidate/,
      ],
    ];
    const callers = new Map([
      [alice.endpointId, alice],
      [bob.endpointId, bob],
      [carol.endpointId, carol],
    ]);
    for (const [path, req, status, text] of cases) {
      const who = req.as === "alice" ? alice : (callers.get(req.userEndpointId as string) ?? alice);
      assertError(await who.call("POST", `/rtc-api/calls/${path}`, req), status, text);
    }
    assertError(await rest(server.url, undefined)("POST", "/rtc-api/calls/call", body), 401);
    // A SERVICE token acts as any registered endpoint of its app, and as no other app's.
    const service = rest(server.url, await serviceToken(server.url, app));
    assert.equal(
      (await service("POST", "/rtc-api/calls/ringing", { callId, userEndpointId: bob.endpointId })).status,
      204,
    );
    await alice.event("CallRingingEvent");
    const otherApp = await createApp(server.url);
    const stranger = rest(server.url, await serviceToken(server.url, otherApp));
    assertError(await stranger("POST", "/rtc-api/calls/cancel", { callId, userEndpointId: alice.endpointId }), 404);
    await Promise.all([alice.close(), bob.close(), carol.close()]);
  });
});

describe("one-to-one calls: timeouts, gone endpoints and the event stream", () => {
  it("an unanswered call is cancelled after CALL_RING_TIMEOUT_SECONDS; a gone endpoint ends its calls", async () => {
    const fast = await startServer({ CALL_RING_TIMEOUT_SECONDS: "1", ENDPOINT_SWEEP_INTERVAL_MS: "100" });
    try {
      const a = await createApp(fast.url);
      const room = await roomToken(fast.url, a);
      const [alice, bob] = await Promise.all([sdkUser(fast.url, a, room.token), sdkUser(fast.url, a, room.token)]);
      const ringing = uuid();
      const base = { sdpOffer: SDP, target: bob.userId, userEndpointId: alice.endpointId };
      assert.equal((await alice.call("POST", "/rtc-api/calls/call", { ...base, callId: ringing })).status, 204);
      const cancelled = await bob.event("CallCancelledEvent", (e) => e.callId === ringing, 4000);
      const ended = await alice.event("CallEndedEvent", (e) => e.callId === ringing, 4000);
      assert.deepEqual([cancelled.reason, ended.reason], ["no answer", "no answer"]);
      assertError(
        await bob.call("POST", "/rtc-api/calls/answer", {
          callId: ringing,
          sdpAnswer: SDP,
          userEndpointId: bob.endpointId,
        }),
        412,
      );
      // Answered, then Bob's endpoint unregisters (the SDK does on backgrounding): Alice hears it.
      const answered = uuid();
      assert.equal((await alice.call("POST", "/rtc-api/calls/call", { ...base, callId: answered })).status, 204);
      await bob.event("CallCreatedEvent", (e) => e.callId === answered);
      assert.equal(
        (
          await bob.call("POST", "/rtc-api/calls/answer", {
            callId: answered,
            sdpAnswer: SDP,
            userEndpointId: bob.endpointId,
          })
        ).status,
        204,
      );
      await bob.call("POST", "/rtc-api/users/endpoints/unregister", { userEndpointId: bob.endpointId, reason: "bg" });
      const gone = await alice.event("CallEndedEvent", (e) => e.callId === answered);
      assert.deepEqual([gone.reason, gone.userEndpointId], ["peer gone", bob.endpointId]);
      await Promise.all([alice.close(), bob.close()]);
    } finally {
      await fast.close();
    }
  });

  it("WatchCallEvents streams a user's call events over gRPC; a USER token watches only its own", async () => {
    const [alice, bob] = (await users(2)) as [SdkUser, SdkUser];
    const transport = createGrpcTransport({ baseUrl: server.url });
    const client = createClient(CallService, transport);
    const watching = new AbortController();
    const got: CallEvent[] = [];
    const stream = (async () => {
      try {
        for await (const res of client.watchCallEvents(
          {},
          { headers: { authorization: `Bearer ${bob.access}` }, signal: watching.signal },
        )) {
          if (res.event !== undefined) got.push(res.event);
        }
      } catch (e) {
        if (!watching.signal.aborted) throw e;
      }
    })();
    await new Promise((r) => setTimeout(r, 200));
    // The same RPCs on gRPC: Alice calls Bob.
    const callId = uuid();
    await client.startCall(
      { callId, sdpOffer: SDP, target: bob.userId, userEndpointId: alice.endpointId },
      { headers: { authorization: `Bearer ${alice.access}` } },
    );
    const created = await until("the streamed CallCreatedEvent", () => got.find((e) => e.callId === callId));
    assert.equal(created.payload.case, "created");
    assert.deepEqual(
      [created.payload.value?.$typeName, created.payload.case === "created" && created.payload.value.target],
      ["rtcplane.conference.v1.CallCreatedEvent", bob.userId],
    );
    assert.deepEqual([created.userId, created.aggregateVersion], [alice.userId, 1n]);
    const refused = await (async () => {
      try {
        for await (const _ of client.watchCallEvents(
          { userId: alice.userId },
          { headers: { authorization: `Bearer ${bob.access}` } },
        )) {
          // Never reached.
        }
      } catch (e) {
        return ConnectError.from(e);
      }
      return undefined;
    })();
    assert.equal(refused?.code, Code.PermissionDenied);
    watching.abort();
    await stream;
    await Promise.all([alice.close(), bob.close()]);
  });
});

describe("one-to-one calls: media between two libwebrtc peers", () => {
  it("driven only by the calls API and MQTT events, through to decoded frames and hangup", async () => {
    const [alice, bob] = (await users(2)) as [SdkUser, SdkUser];
    const camera = movingCamera();
    const a = new RTCPeerConnection();
    const b = new RTCPeerConnection();
    try {
      const callId = uuid();
      // Alice (the SDK's caller): offer without candidates, which follow in one batch after the answer.
      a.addTransceiver(camera.track, { direction: "sendrecv" });
      const aCandidates = loopbackCandidates(a);
      const offer = await a.createOffer();
      await a.setLocalDescription(offer);
      assert.doesNotMatch(offer.sdp ?? "", /a=candidate/);
      const started = await alice.call("POST", "/rtc-api/calls/call", {
        callId,
        sdpOffer: offer.sdp,
        target: bob.userId,
        userEndpointId: alice.endpointId,
        userId: alice.userId,
      });
      assert.equal(started.status, 204, started.text);

      // Bob (the callee's SDK): rings on CallCreatedEvent, answers with the offer it carried.
      const created = await bob.event("CallCreatedEvent");
      const ids = { callId, userEndpointId: bob.endpointId, userId: alice.userId };
      assert.equal((await bob.call("POST", "/rtc-api/calls/ringing", { ...ids, userId: bob.userId })).status, 204);
      const frames = decodedFrames(b);
      const bCandidates = loopbackCandidates(b);
      await b.setRemoteDescription({ type: "offer", sdp: created.sdpOffer as string });
      const answer = await b.createAnswer();
      await b.setLocalDescription(answer);
      assert.equal((await bob.call("POST", "/rtc-api/calls/answer", { ...ids, sdpAnswer: answer.sdp })).status, 204);
      await bob.call("POST", "/rtc-api/calls/addIceCandidates", { ...ids, iceCandidates: await bCandidates });

      const answered = await alice.event("CallAnsweredEvent");
      await a.setRemoteDescription({ type: "answer", sdp: answered.sdpAnswer as string });
      const mine = { callId, userEndpointId: alice.endpointId, userId: alice.userId };
      await alice.call("POST", "/rtc-api/calls/addIceCandidates", { ...mine, iceCandidates: await aCandidates });
      await alice.call("POST", "/rtc-api/calls/addIceCandidates", { ...mine, iceCandidates: [] });

      // Each side adds what IceCandidatesFoundEvent brought; that is the only way they meet.
      for (const [u, pc] of [
        [alice, a],
        [bob, b],
      ] as const) {
        const found = await u.event("IceCandidatesFoundEvent");
        for (const c of found.iceCandidates as RTCIceCandidateInit[]) await pc.addIceCandidate(c);
      }
      await until("Bob decodes Alice's changing frames", () => (new Set(frames).size >= 3 ? true : undefined), 15000);

      assert.equal((await alice.call("POST", "/rtc-api/calls/hangup", { ...mine, reason: "No reason" })).status, 204);
      const ended = await bob.event("CallEndedEvent");
      assert.equal(ended.reason, "No reason");
      assertCounterpartOnly(alice.endpointId, alice.messages);
      assertCounterpartOnly(bob.endpointId, bob.messages);
    } finally {
      camera.stop();
      a.close();
      b.close();
      await Promise.all([alice.close(), bob.close()]);
    }
  });
});

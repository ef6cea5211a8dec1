/**
 * Real media end to end: two libwebrtc peers (@roamhq/wrtc) and the mediasoup SFU (a real
 * worker built by scripts/build-mediasoup-worker.sh). Peer A publishes synthetic video and
 * audio through the REST API; peer B views it with its own offer, decodes frames whose
 * content changes; unpublishing stops B's frames and tells everyone.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createApp, serviceToken, startServer, type TestServer } from "../helpers/server.js";
import { nonstandard, RTCPeerConnection, setLocalOffer } from "../helpers/wrtc.js";

type Json = Record<string, unknown>;

/** Exchanges two codecs' payload type numbers in an SDP, as another browser would number them. */
function swapPayloadTypes(sdp: string, a: string, b: string): string {
  const pt = (codec: string) => new RegExp(`a=rtpmap:(\\d+) ${codec}/`).exec(sdp)?.[1] ?? "";
  const [x, y] = [pt(a), pt(b)];
  assert.ok(x && y, `the offer has ${a} and ${b}`);
  const swap = (text: string, from: string, to: string) =>
    text.replace(new RegExp(`([: ])${from}(?=[ /\\r])`, "g"), `$1${to}`);
  return swap(swap(swap(sdp, x, "X"), y, x), "X", y);
}

let server: TestServer;
let token: string;

before(async () => {
  server = await startServer({ MEDIA_STATS_INTERVAL_MS: "500" }, undefined, undefined, true);
  token = await serviceToken(server.url, await createApp(server.url));
});
after(() => server.close());

async function api(path: string, body: unknown): Promise<{ status: number; json: Json }> {
  const res = await fetch(`${server.url}/rtc-api/conferences/${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  // Conference-dialect errors are plain text ("<status> <phrase>: <message>"), successes JSON.
  const json = res.headers.get("content-type")?.startsWith("application/json")
    ? (JSON.parse(text) as Json)
    : { message: text };
  return { status: res.status, json };
}

async function until(what: string, check: () => boolean, ms = 15000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("media through the SFU (libwebrtc peers)", () => {
  it("A publishes video+audio, B views it and decodes changing frames; unpublish stops them", async () => {
    const conferenceId = "media-wrtc";
    assert.equal((await api("create", { conferenceId, mode: "ROUTER" })).status, 200);
    assert.equal((await api("join", { conferenceId, userEndpointId: "pub", userId: "alice" })).status, 200);
    assert.equal((await api("join", { conferenceId, userEndpointId: "sub", userId: "bob" })).status, 200);

    const width = 320;
    const height = 240;
    const video = new nonstandard.RTCVideoSource();
    const audio = new nonstandard.RTCAudioSource();
    const a = new RTCPeerConnection();
    const b = new RTCPeerConnection();
    let frameNo = 0;
    const pushVideo = setInterval(() => {
      const data = new Uint8Array(width * height * 1.5);
      data.fill((frameNo++ * 9) % 200, 0, width * height);
      data.fill(128, width * height);
      video.onFrame({ width, height, data });
    }, 33);
    const pushAudio = setInterval(() => {
      const samples = new Int16Array(480).map((_, i) => Math.round(Math.sin(i / 8) * 8000));
      audio.onData({ samples, sampleRate: 48000, bitsPerSample: 16, channelCount: 1, numberOfFrames: 480 });
    }, 10);
    try {
      a.addTransceiver(video.createTrack(), { direction: "sendonly" });
      a.addTransceiver(audio.createTrack(), { direction: "sendonly" });
      const aOffer = await setLocalOffer(a);
      const published = await api("publishStream", {
        conferenceId,
        userEndpointId: "pub",
        conferenceStreamType: "MIC_AND_CAM",
        sdpOffer: aOffer,
        metadata: { portraitMode: false },
      });
      assert.equal(published.status, 200, JSON.stringify(published.json));
      const streamId = (published.json.streamId as { id: string }).id;
      const answer = published.json.sdpAnswer as string;
      assert.match(answer, /a=ice-lite/);
      assert.match(answer, /a=candidate:/, "the answer carries the server's candidates");
      await a.setRemoteDescription({ type: "answer", sdp: answer });

      // B views with its own recvonly offer, naming the publisher's endpoint as clients do.
      b.addTransceiver("video", { direction: "recvonly" });
      b.addTransceiver("audio", { direction: "recvonly" });
      const frames: number[] = [];
      b.ontrack = (e) => {
        if (e.track.kind !== "video") return;
        const sink = new nonstandard.RTCVideoSink(e.track);
        sink.onframe = ({ frame }) => frames.push(frame.data[0] ?? 0);
      };
      const bOffer = await setLocalOffer(b);
      const viewed = await api("viewStream", {
        conferenceId,
        userEndpointId: "pub",
        streamId: { id: streamId },
        sdpOffer: bOffer,
      });
      assert.equal(viewed.status, 200, JSON.stringify(viewed.json));
      assert.ok((viewed.json.viewerId as string).length > 0);
      await b.setRemoteDescription({ type: "answer", sdp: viewed.json.sdpAnswer as string });

      await until("30 decoded frames", () => frames.length >= 30);
      assert.ok(new Set(frames).size > 3, "the frame content changes");

      // More viewers: one more like B (served from the stream's router), and one whose VP8 is
      // on another payload type (served through a pipe onto its own payload types).
      const extra = [new RTCPeerConnection(), new RTCPeerConnection()];
      const extraFrames = [0, 0];
      for (const [i, pc] of extra.entries()) {
        pc.addTransceiver("video", { direction: "recvonly" });
        pc.ontrack = (e) => {
          const sink = new nonstandard.RTCVideoSink(e.track);
          sink.onframe = () => {
            extraFrames[i] = (extraFrames[i] ?? 0) + 1;
          };
        };
        const offer = await setLocalOffer(pc, (sdp) => (i === 1 ? swapPayloadTypes(sdp, "VP8", "VP9") : sdp));
        const v = await api("viewStream", {
          conferenceId,
          userEndpointId: "sub",
          streamId: { id: streamId },
          sdpOffer: offer,
        });
        assert.equal(v.status, 200, JSON.stringify(v.json));
        await pc.setRemoteDescription({ type: "answer", sdp: v.json.sdpAnswer as string });
      }
      await until("frames at the extra viewers", () => extraFrames.every((n) => n >= 30));
      for (const pc of extra) pc.close();

      // Network indicators arrive every few seconds, outside the version sequence.
      const viewNow = await fetch(`${server.url}/rtc-api/conferences/${conferenceId}/simpleView`, {
        headers: { authorization: `Bearer ${token}` },
      });
      const version = ((await viewNow.json()) as { version: number }).version;
      const polled = await fetch(`${server.url}/rtc-api/conferences/${conferenceId}/events?v=${version}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      const [indicator] = (await polled.json()) as Json[];
      assert.equal(indicator?.type, "ConferenceNetworkIndicatorUpdatedEvent");
      assert.equal(indicator?.conferenceVersion, undefined);
      const map = indicator?.participantIndicatorMap as Record<string, Json>;
      assert.ok(map.pub !== undefined && map.pub.grade !== undefined, JSON.stringify(indicator));
      assert.ok(["OPTIMAL", "SUBOPTIMAL", "BAD"].includes(map.pub.grade as string));
      assert.equal(typeof indicator?.averageNetworkQuality, "number");

      const view = await fetch(`${server.url}/rtc-api/conferences/${conferenceId}/simpleView`, {
        headers: { authorization: `Bearer ${token}` },
      });
      const simple = (await view.json()) as { participants: { endpoints: { id: string; streams: Json[] }[] }[] };
      const pub = simple.participants.flatMap((p) => p.endpoints).find((e) => e.id === "pub");
      assert.deepEqual(pub?.streams, [{ id: streamId, metadata: { portraitMode: false }, type: "MIC_AND_CAM" }]);

      assert.equal(
        (await api("unpublishStream", { conferenceId, userEndpointId: "pub", streamId: { id: streamId } })).status,
        204,
      );
      await new Promise((r) => setTimeout(r, 500));
      const stoppedAt = frames.length;
      await new Promise((r) => setTimeout(r, 1000));
      assert.ok(frames.length - stoppedAt <= 2, `frames kept coming after unpublish: ${frames.length - stoppedAt}`);
      const events = await fetch(`${server.url}/rtc-api/conferences/${conferenceId}/events?v=0`, {
        headers: { authorization: `Bearer ${token}` },
      });
      const types = ((await events.json()) as Json[]).map((e) => [e.type, e.streamId, e.streamType]);
      assert.deepEqual(types.slice(-2), [
        ["ConferenceStreamPublishedEvent", streamId, "MIC_AND_CAM"],
        ["ConferenceStreamUnpublishedEvent", streamId, "MIC_AND_CAM"],
      ]);
      // Tolerated as clients send it: stopping an unknown viewer.
      assert.equal(
        (
          await api("stopViewStream", {
            conferenceId,
            userEndpointId: "sub",
            streamId: { id: streamId },
            viewerId: "sub",
          })
        ).status,
        204,
      );
    } finally {
      clearInterval(pushVideo);
      clearInterval(pushAudio);
      a.close();
      b.close();
    }
  });

  it("survives its workers dying: lost streams are unpublished, publishers SICK, new workers serve", async () => {
    const conferenceId = "worker-death";
    await api("create", { conferenceId });
    await api("join", { conferenceId, userEndpointId: "w1", userId: "wes" });
    const publishOnce = async () => {
      const source = new nonstandard.RTCVideoSource();
      const pc = new RTCPeerConnection();
      pc.addTransceiver(source.createTrack(), { direction: "sendonly" });
      const offer = await setLocalOffer(pc);
      const r = await api("publishStream", {
        conferenceId,
        userEndpointId: "w1",
        conferenceStreamType: "CAM",
        sdpOffer: offer,
      });
      pc.close();
      return r;
    };
    const first = await publishOnce();
    assert.equal(first.status, 200);
    const pids = server.media?.workerPids() ?? [];
    assert.ok(pids.length > 0);
    for (const pid of pids) process.kill(pid, "SIGKILL");
    const get = async () =>
      (await (
        await fetch(`${server.url}/rtc-api/conferences/${conferenceId}`, {
          headers: { authorization: `Bearer ${token}` },
        })
      ).json()) as {
        participants: { id: string; state: string; streams: unknown[] }[];
      };
    const deadline = Date.now() + 10000;
    let conf = await get();
    while ((conf.participants[0]?.streams.length ?? 0) > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      conf = await get();
    }
    assert.deepEqual(conf.participants[0]?.streams, [], "the lost stream is gone");
    assert.equal(conf.participants[0]?.state, "SICK");
    const events = (await (
      await fetch(`${server.url}/rtc-api/conferences/${conferenceId}/events?v=0`, {
        headers: { authorization: `Bearer ${token}` },
      })
    ).json()) as Json[];
    assert.equal(events.at(-1)?.type, "ConferenceStreamUnpublishedEvent");
    assert.equal((await fetch(`${server.url}/healthz`)).status, 200, "the server lives on");
    const again = await publishOnce();
    assert.equal(again.status, 200, JSON.stringify(again.json));
    assert.ok(
      (server.media?.workerPids() ?? []).every((p) => !pids.includes(p)),
      "workers were replaced",
    );
  });

  it("refuses media on P2P conferences and bad offers with clear errors", async () => {
    assert.equal((await api("create", { conferenceId: "p2p-media", mode: "P2P" })).status, 200);
    await api("join", { conferenceId: "p2p-media", userEndpointId: "p1", userId: "u" });
    const p2p = await api("publishStream", {
      conferenceId: "p2p-media",
      userEndpointId: "p1",
      conferenceStreamType: "CAM",
      sdpOffer: "v=0\r\n",
    });
    assert.equal(p2p.status, 412);
    assert.match(p2p.json.message as string, /P2P/);
    await api("create", { conferenceId: "bad-offers" });
    await api("join", { conferenceId: "bad-offers", userEndpointId: "x1", userId: "u" });
    for (const sdpOffer of ["hello", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"]) {
      const r = await api("publishStream", {
        conferenceId: "bad-offers",
        userEndpointId: "x1",
        conferenceStreamType: "CAM",
        sdpOffer,
      });
      assert.equal(r.status, 400, sdpOffer);
      assert.match(r.json.message as string, /sdpOffer/);
    }
    const missing = await api("viewStream", {
      conferenceId: "bad-offers",
      userEndpointId: "x1",
      streamId: { id: "nope" },
      sdpOffer: "v=0",
    });

    // The same streamId published twice at once: one wins, the other is told 409.
    const offers: string[] = [];
    const pcs = [new RTCPeerConnection(), new RTCPeerConnection()];
    for (const pc of pcs) {
      pc.addTransceiver(new nonstandard.RTCVideoSource().createTrack(), { direction: "sendonly" });
      const offer = await setLocalOffer(pc);
      offers.push(offer);
    }
    const both = await Promise.all(
      offers.map((sdpOffer) =>
        api("publishStream", {
          conferenceId: "bad-offers",
          userEndpointId: "x1",
          conferenceStreamType: "CAM",
          streamId: { id: "twice" },
          sdpOffer,
        }),
      ),
    );
    assert.deepEqual(both.map((r) => r.status).sort(), [200, 409]);
    for (const pc of pcs) pc.close();
    // Only joined endpoints publish or view.
    const stranger = await api("viewStream", {
      conferenceId: "bad-offers",
      userEndpointId: "nobody",
      streamId: { id: "twice" },
      sdpOffer: offers[0],
    });
    assert.equal(stranger.status, 404);
    assert.equal(missing.status, 404);
  });
});

/**
 * Fast first frames (issue #13): viewers that join one stream at once each decode a first
 * frame within a second. Consumers start sending once the viewer's DTLS is up, with a
 * key-frame request, and requests that libwebrtc's encoder would ignore (within 300 ms of the
 * last) are coalesced by the producer's keyFrameRequestDelay instead of waiting for
 * mediasoup's one-second retry.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { rest, serviceToken } from "../helpers/conference-client.js";
import { createApp, startServer, type TestServer } from "../helpers/server.js";
import { movingCamera, RTCPeerConnection, viewUntilFirstFrame } from "../helpers/wrtc.js";

let server: TestServer;
before(async () => {
  server = await startServer({}, undefined, undefined, true);
});
after(() => server.close());

describe("first frames", () => {
  it("a burst of 10 viewers all decode a first frame within 1 s of their view request", async () => {
    const call = rest(server.url, await serviceToken(server.url, await createApp(server.url)));
    const conferenceId = "first-frames";
    await call("POST", "/rtc-api/conferences/create", { conferenceId });
    await call("POST", "/rtc-api/conferences/join", { conferenceId, userEndpointId: "pub", userId: "p" });
    const camera = movingCamera();
    const pub = new RTCPeerConnection();
    const viewers: RTCPeerConnection[] = [];
    try {
      pub.addTransceiver(camera.track, { direction: "sendonly" });
      await pub.setLocalDescription(await pub.createOffer());
      const published = await call("POST", "/rtc-api/conferences/publishStream", {
        conferenceId,
        userEndpointId: "pub",
        conferenceStreamType: "CAM",
        streamId: "burst",
        sdpOffer: pub.localDescription?.sdp,
      });
      assert.equal(published.status, 200, published.text);
      await pub.setRemoteDescription({ type: "answer", sdp: published.json.sdpAnswer as string });
      // Past the publisher's first key frames, as for viewers joining a running stream.
      await new Promise((r) => setTimeout(r, 2500));
      const firstFrameMs = await Promise.all(
        Array.from({ length: 10 }, async (_, i) => {
          const viewer = await viewUntilFirstFrame(async (sdpOffer) => {
            const viewed = await call("POST", "/rtc-api/conferences/viewStream", {
              conferenceId,
              userEndpointId: "pub",
              streamId: "burst",
              sdpOffer,
              viewerId: `viewer-${i}`,
            });
            assert.equal(viewed.status, 200, viewed.text);
            return viewed.json.sdpAnswer as string;
          });
          viewers.push(viewer.pc);
          return viewer.firstFrameMs;
        }),
      );
      const slowest = Math.max(...firstFrameMs);
      assert.ok(slowest < 1000, `first frames (ms): ${firstFrameMs.sort((a, b) => a - b).join(", ")}`);
    } finally {
      camera.stop();
      pub.close();
      for (const pc of viewers) pc.close();
    }
  });
});

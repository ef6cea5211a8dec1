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
import { publishCamera, viewUntilFirstFrame } from "../helpers/media-peers.js";
import { createApp, startServer, type TestServer } from "../helpers/server.js";
import type { RTCPeerConnection } from "../helpers/wrtc.js";

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
    const pub = await publishCamera(call, conferenceId, "pub", "burst");
    const viewers: RTCPeerConnection[] = [];
    try {
      // Past the publisher's first key frames, as for viewers joining a running stream.
      await new Promise((r) => setTimeout(r, 2500));
      const firstFrameMs = await Promise.all(
        Array.from({ length: 10 }, async (_, i) => {
          const viewer = await viewUntilFirstFrame(call, conferenceId, "pub", "burst", `viewer-${i}`);
          viewers.push(viewer.pc);
          return viewer.firstFrameMs;
        }),
      );
      const slowest = Math.max(...firstFrameMs);
      assert.ok(slowest < 1000, `first frames (ms): ${firstFrameMs.sort((a, b) => a - b).join(", ")}`);
    } finally {
      pub.close();
      for (const pc of viewers) pc.close();
    }
  });
});

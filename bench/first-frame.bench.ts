/**
 * First frame for N viewers joining one running stream at once (libwebrtc peers in this
 * process, so they share the 2 cores with the server): time from each viewStream request to
 * its first decoded frame, and to its SDP answer. `npm run bench:first-frame -- [N]`.
 * Not yet the full bench:media (no Janus baseline in the same run, no CPU split).
 */

import { rest, serviceToken } from "../test/helpers/conference-client.js";
import { createApp, startServer } from "../test/helpers/server.js";
import { movingCamera, RTCPeerConnection, viewUntilFirstFrame } from "../test/helpers/wrtc.js";

const n = Number(process.argv[2] ?? 10);
const server = await startServer({ MEDIA_WORKERS: "2" }, undefined, undefined, true);
const app = await createApp(server.url);
const call = rest(server.url, await serviceToken(server.url, app));
const conferenceId = "ff";
await call("POST", "/rtc-api/conferences/create", { conferenceId });
await call("POST", "/rtc-api/conferences/join", { conferenceId, userEndpointId: "pub", userId: "p" });
const camera = movingCamera();
const pub = new RTCPeerConnection();
pub.addTransceiver(camera.track, { direction: "sendonly" });
await pub.setLocalDescription(await pub.createOffer());
const published = await call("POST", "/rtc-api/conferences/publishStream", {
  conferenceId,
  userEndpointId: "pub",
  conferenceStreamType: "CAM",
  streamId: "S",
  sdpOffer: pub.localDescription?.sdp,
});
await pub.setRemoteDescription({ type: "answer", sdp: published.json.sdpAnswer as string });
await new Promise((r) => setTimeout(r, 4000));
const results = await Promise.all(
  Array.from({ length: n }, async (_, i) => {
    const { pc, answerMs, firstFrameMs } = await viewUntilFirstFrame(async (sdpOffer) => {
      const v = await call("POST", "/rtc-api/conferences/viewStream", {
        conferenceId,
        userEndpointId: "pub",
        streamId: "S",
        sdpOffer,
        viewerId: `v${i}`,
      });
      return v.json.sdpAnswer as string;
    });
    pc.close();
    return { answerMs, firstMs: firstFrameMs };
  }),
);
const sorted = (k: "answerMs" | "firstMs") => results.map((r) => r[k]).sort((a, b) => a - b);
const p50 = (a: number[]) => a[Math.floor(a.length / 2)];
console.log("| viewers at once | first frame p50 / max ms | answer p50 / max ms |\n|---|---|---|");
console.log(
  `| ${n} | ${p50(sorted("firstMs"))} / ${sorted("firstMs").at(-1)} | ${p50(sorted("answerMs"))} / ${sorted("answerMs").at(-1)} |`,
);
camera.stop();
pub.close();
await server.close();
process.exit(0);

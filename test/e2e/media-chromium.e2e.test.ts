/**
 * Real browsers through the SFU: Debian's headless Chromium (playwright-core) with a fake
 * camera publishes via the REST API from one page; a second page views it, and getStats()
 * shows framesDecoded growing and the viewer's feedback flowing at a bounded rate. Pages
 * come from another origin (CORS on the one port).
 */
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { launchChromium } from "../helpers/chromium.js";
import { createApp, serviceToken, startServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
let pages: http.Server;
let pageUrl: string;
let token: string;

/** The page's script: publish(base, token, conference, endpoint) and view(...), via fetch. */
const PAGE = `<!doctype html><html><body><script>
async function call(base, token, path, body) {
  const res = await fetch(base + "/rtc-api/conferences/" + path, {
    method: "POST",
    headers: { authorization: "Bearer " + token, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const json = await res.json();
  if (res.status !== 200) throw new Error(path + " " + res.status + " " + JSON.stringify(json));
  return json;
}
window.publish = async (base, token, conferenceId, userEndpointId) => {
  const media = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240 }, audio: true });
  const pc = new RTCPeerConnection();
  for (const track of media.getTracks()) pc.addTransceiver(track, { direction: "sendonly" });
  await pc.setLocalDescription(await pc.createOffer());
  const r = await call(base, token, "publishStream", {
    conferenceId, userEndpointId, conferenceStreamType: "MIC_AND_CAM", sdpOffer: pc.localDescription.sdp,
  });
  await pc.setRemoteDescription({ type: "answer", sdp: r.sdpAnswer });
  window.pc = pc;
  return r.streamId.id;
};
window.view = async (base, token, conferenceId, userEndpointId, streamId) => {
  const pc = new RTCPeerConnection();
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  await pc.setLocalDescription(await pc.createOffer());
  const r = await call(base, token, "viewStream", {
    conferenceId, userEndpointId, streamId: { id: streamId }, sdpOffer: pc.localDescription.sdp,
  });
  await pc.setRemoteDescription({ type: "answer", sdp: r.sdpAnswer });
  window.pc = pc;
  return r.viewerId;
};
window.framesDecoded = async () => {
  let n = 0;
  (await window.pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") n = s.framesDecoded || 0;
  });
  return n;
};
window.packetsSent = async () => {
  let n = 0;
  (await window.pc.getStats()).forEach((s) => {
    if (s.type === "candidate-pair" && s.nominated) n = s.packetsSent || 0;
  });
  return n;
};
document.title = "ready";
</script></body></html>`;

before(async () => {
  server = await startServer({}, undefined, undefined, true);
  token = await serviceToken(server.url, await createApp(server.url));
  pages = http.createServer((_req, res) => res.writeHead(200, { "content-type": "text/html" }).end(PAGE));
  await new Promise<void>((r) => pages.listen(0, "127.0.0.1", r));
  pageUrl = `http://localhost:${(pages.address() as AddressInfo).port}/`;
});

after(async () => {
  await new Promise<void>((r) => pages.close(() => r()));
  await server.close();
});

describe("media through the SFU (headless Chromium)", () => {
  it("a page publishes the fake camera, another views it and decodes frames", async () => {
    const base = server.url;
    const call = (path: string, body: unknown) =>
      fetch(`${base}/rtc-api/conferences/${path}`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    assert.equal((await call("create", { conferenceId: "browser-media" })).status, 200);
    await call("join", { conferenceId: "browser-media", userEndpointId: "cam", userId: "alice" });
    await call("join", { conferenceId: "browser-media", userEndpointId: "screen", userId: "bob" });
    const browser = await launchChromium(["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]);
    try {
      const context = await browser.newContext();
      const publisher = await context.newPage();
      const viewer = await context.newPage();
      for (const p of [publisher, viewer]) {
        await p.goto(pageUrl);
        await p.waitForFunction(() => document.title === "ready");
      }
      const streamId = await publisher.evaluate(
        ([b, t]) =>
          (window as unknown as { publish: (...a: string[]) => Promise<string> }).publish(
            b as string,
            t as string,
            "browser-media",
            "cam",
          ),
        [base, token],
      );
      await viewer.evaluate(
        ([b, t, s]) =>
          (window as unknown as { view: (...a: string[]) => Promise<string> }).view(
            b as string,
            t as string,
            "browser-media",
            "screen",
            s as string,
          ),
        [base, token, streamId],
      );
      const decoded = () =>
        viewer.evaluate(() => (window as unknown as { framesDecoded: () => Promise<number> }).framesDecoded());
      const deadline = Date.now() + 20000;
      let first = await decoded();
      while (first < 10 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 200));
        first = await decoded();
      }
      assert.ok(first >= 10, `the viewer decoded ${first} frames`);
      await new Promise((r) => setTimeout(r, 1000));
      const later = await decoded();
      assert.ok(later > first, `framesDecoded grows: ${first} → ${later}`);
      // The viewer sends only RTCP: transport-cc reports, receiver reports, a NACK now and
      // then. Chromium 156 keeps its own cadence whatever the answer's b=AS says (measured:
      // 17.3 packets/s with b=AS 43, 100 or 60 kbit/s, and without); the libwebrtc of
      // @roamhq/wrtc slows to one report every 250 ms (media-feedback test).
      const sent = () =>
        viewer.evaluate(() => (window as unknown as { packetsSent: () => Promise<number> }).packetsSent());
      const sent0 = await sent();
      const started = Date.now();
      await new Promise((r) => setTimeout(r, 3000));
      const rate = ((await sent()) - sent0) / ((Date.now() - started) / 1000);
      assert.ok(rate >= 2 && rate <= 25, `the viewer sent ${rate.toFixed(1)} packets/s`);
    } finally {
      await browser.close();
    }
  });
});

/**
 * Captures real SDP offers for the SDP bridge's unit tests: headless Chromium (Debian) with
 * and without simulcast, publishing and viewing. Run: npx tsx tools/capture-sdp-offers.ts
 */
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { chromium } from "playwright-core";

const OUT = path.resolve(import.meta.dirname, "../test/fixtures/sdp");
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"],
});
// getUserMedia needs a secure context: a page from localhost.
const server = http.createServer((_req, res) =>
  res.writeHead(200, { "content-type": "text/html" }).end("<!doctype html>"),
);
await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
try {
  const page = await browser.newPage();
  await page.goto(`http://localhost:${(server.address() as AddressInfo).port}/`);
  // A string, not a function: tsx's compiled helpers do not exist inside the page.
  const offers = (await page.evaluate(`(async () => {
    const media = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: true });
    const offer = async (setup) => {
      const pc = new RTCPeerConnection();
      setup(pc);
      const o = await pc.createOffer();
      pc.close();
      return o.sdp;
    };
    const audio = media.getAudioTracks()[0];
    const video = media.getVideoTracks()[0];
    return {
      "chrome-publish": await offer((pc) => {
        pc.addTransceiver(video, { direction: "sendonly" });
        pc.addTransceiver(audio, { direction: "sendonly" });
      }),
      "chrome-publish-simulcast": await offer((pc) => {
        pc.addTransceiver(video, {
          direction: "sendonly",
          sendEncodings: [{ rid: "q", scaleResolutionDownBy: 4 }, { rid: "h", scaleResolutionDownBy: 2 }, { rid: "f" }],
        });
      }),
      "chrome-view": await offer((pc) => {
        pc.addTransceiver("video", { direction: "recvonly" });
        pc.addTransceiver("audio", { direction: "recvonly" });
      }),
    };
  })()`)) as Record<string, string>;
  for (const [name, sdp] of Object.entries(offers)) fs.writeFileSync(path.join(OUT, `${name}.sdp`), sdp);
  console.log(`wrote ${Object.keys(offers).length} offers to ${OUT}`);
} finally {
  await browser.close();
  server.close();
}

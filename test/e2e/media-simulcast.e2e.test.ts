/**
 * Simulcast end to end (issue #13): a publisher sends three layers; each viewer gets the best
 * layer its estimated bandwidth (transport-cc) allows — a viewer behind a 350 kbit/s link gets
 * a lower layer while an unconstrained one keeps the top — and a viewer's preferred layers can
 * be set through the API (POST /rtc-api/conferences/updateViewLayers).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { rest } from "../helpers/conference-client.js";
import { answerCandidate, lossyLink, throughLink } from "../helpers/lossy-link.js";
import { mediaConference, publishCamera, viewVideo } from "../helpers/media-peers.js";
import type { TestServer } from "../helpers/server.js";

let server: TestServer;
let call: ReturnType<typeof rest>;
let ref: { appId: string; conferenceId: string };
const cleanup: (() => void)[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

before(async () => {
  ({ server, call, ref } = await mediaConference({ MEDIA_WORKERS: "1", MEDIA_STATS_INTERVAL_MS: "0" }, "simulcast"));
  // 15 fps: encoding three layers and decoding three viewers share this process's 2 cores.
  const pub = await publishCamera(call, ref.conferenceId, "pub", "cam", true, 15);
  cleanup.push(() => pub.close());
  await sleep(2000);
});
after(async () => {
  for (const f of cleanup) f();
  await server.close();
});

async function view(viewerId: string, shapeAnswer?: (sdp: string) => Promise<string>) {
  const v = await viewVideo(call, ref.conferenceId, "pub", "cam", viewerId, shapeAnswer);
  cleanup.push(() => v.pc.close());
  return v;
}

/** POST /rtc-api/conferences/updateViewLayers for a view of "cam". */
const updateLayers = (viewerId: string, spatialLayer: number) =>
  call("POST", "/rtc-api/conferences/updateViewLayers", {
    conferenceId: ref.conferenceId,
    userEndpointId: "pub",
    streamId: { id: "cam" },
    viewerId,
    spatialLayer,
  });

const spatial = async (viewerId: string) =>
  (await server.media?.describeView(ref, "cam", viewerId))?.consumers[0]?.currentLayers?.spatialLayer ?? -1;

describe("simulcast", () => {
  it("a rate-limited viewer gets a lower layer while an unconstrained one keeps the top", async () => {
    const open = await view("open");
    const limited = await view("limited", async (answer) => {
      const link = await lossyLink(answerCandidate(answer), { rateKbps: 350, queueMs: 150 });
      cleanup.push(() => link.close());
      return throughLink(answer, link.port);
    });
    const described = await server.media?.describeView(ref, "cam", "open");
    assert.equal(described?.consumers[0]?.type, "simulcast");
    // Bandwidth estimation needs a few seconds to climb (unconstrained) or settle (limited).
    const deadline = Date.now() + 20_000;
    let top = -1;
    let low = -1;
    while (Date.now() < deadline) {
      await sleep(500);
      [top, low] = [await spatial("open"), await spatial("limited")];
      if (top === 2 && low >= 0 && low < 2) break;
    }
    const bwe = (await server.media?.describeView(ref, "cam", "limited"))?.bwe;
    assert.equal(top, 2, `unconstrained viewer's layer ${top}`);
    assert.ok(low >= 0 && low < 2, `limited viewer's layer ${low} (bwe ${JSON.stringify(bwe)})`);
    // The layers can settle before both viewers decoded their first frame.
    for (
      const until = Date.now() + 5000;
      Date.now() < until && (open.frames.length === 0 || limited.frames.length === 0);
    )
      await sleep(100);
    assert.ok(open.frames.length > 0 && limited.frames.length > 0, "both decode frames");
  });

  it("a viewer's preferred layers are set through the API", async () => {
    const v = await view("chooser");
    const deadline = Date.now() + 15_000;
    while ((await spatial("chooser")) !== 2 && Date.now() < deadline) await sleep(300);
    const set = await updateLayers("chooser", 0);
    assert.equal(set.status, 200, set.text);
    assert.equal(set.json.preferredSpatialLayer, 0);
    while ((await spatial("chooser")) !== 0 && Date.now() < deadline + 5000) await sleep(200);
    assert.equal(await spatial("chooser"), 0);
    // The switch waits for the low layer's next key frame; decoding goes on from there.
    const frames = v.frames.length;
    for (const until = Date.now() + 5000; v.frames.length <= frames + 10 && Date.now() < until; ) await sleep(100);
    assert.ok(v.frames.length > frames, "still decoding on the low layer");

    const unknown = await updateLayers("nobody", 0);
    assert.equal(unknown.status, 404, unknown.text);
    const bad = await updateLayers("chooser", 12);
    assert.equal(bad.status, 400, bad.text);
  });
});

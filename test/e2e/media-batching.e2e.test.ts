/**
 * Viewers' datagrams read in batches (MEDIA_VIEWER_READ_BATCH_MS, our worker patch): once a
 * viewer's transport is connected, its RTCP and consent checks are read when the worker wakes
 * up anyway, not each on a wake-up of its own; a publisher's packets are still read as they
 * come. Two servers, one with batching (the default) and one without, each with a publisher and
 * the same libwebrtc viewers (@roamhq/wrtc) sending transport-cc feedback at their own cadence
 * (~20 reports a second each): the batching worker wakes up far less often, still reads all
 * its viewers send, and they still decode every frame. (Repairs and estimates from batched
 * feedback: media-feedback's and media-chromium's tests, which run with batching on.)
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import { after, before, describe, it } from "node:test";
import { until } from "../helpers/conference-client.js";
import { mediaConference, publishCamera, viewVideo } from "../helpers/media-peers.js";
import type { TestServer } from "../helpers/server.js";

const VIEWERS = 6;
const WINDOW_MS = 3000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A single-threaded process's wake-ups so far: its voluntary context switches (preemptions left out). */
function wakeUps(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? Number.NaN);
}

interface Audience {
  server: TestServer;
  ref: { appId: string; conferenceId: string };
  viewers: Awaited<ReturnType<typeof viewVideo>>[];
  close: () => Promise<void>;
}

/** A server with one worker, a publisher and VIEWERS viewers, all decoding. */
async function audience(batchMs: string): Promise<Audience> {
  const { server, call, ref } = await mediaConference(
    { MEDIA_WORKERS: "1", MEDIA_STATS_INTERVAL_MS: "0", MEDIA_VIEWER_READ_BATCH_MS: batchMs },
    "batching",
  );
  const pub = await publishCamera(call, ref.conferenceId, "pub", "cam");
  const viewers = await Promise.all(
    Array.from({ length: VIEWERS }, (_, i) => viewVideo(call, ref.conferenceId, "pub", "cam", `v${i}`)),
  );
  await until(
    "every viewer's first frame",
    () => (viewers.every((v) => v.frames.length > 0) ? true : undefined),
    10_000,
  );
  return {
    server,
    ref,
    viewers,
    close: async () => {
      for (const v of viewers) v.pc.close();
      pub.close();
      await server.close();
    },
  };
}

/** The worker's wake-ups per second, and the viewers' decoded frames per second, over WINDOW_MS. */
async function measure(a: Audience): Promise<{ wakes: number; fps: number[] }> {
  const [pid] = a.server.media?.workerPids() ?? [];
  assert.ok(pid !== undefined);
  const frames0 = a.viewers.map((v) => v.frames.length);
  const wakes0 = wakeUps(pid);
  await sleep(WINDOW_MS);
  const wakes = ((wakeUps(pid) - wakes0) * 1000) / WINDOW_MS;
  return { wakes, fps: a.viewers.map((v, i) => ((v.frames.length - (frames0[i] ?? 0)) * 1000) / WINDOW_MS) };
}

let batched: Audience;
let unbatched: Audience;

before(async () => {
  batched = await audience("20");
  unbatched = await audience("0");
});
after(async () => {
  await batched?.close();
  await unbatched?.close();
});

describe("viewers' datagrams read in batches", () => {
  it("a connected viewer's transport is read in batches, the publisher's is not; with 0, none is", async () => {
    for (let i = 0; i < VIEWERS; i++) {
      const view = await batched.server.media?.describeView(batched.ref, "cam", `v${i}`);
      assert.equal(view?.readInBatches, true, `viewer v${i}`);
      const plain = await unbatched.server.media?.describeView(unbatched.ref, "cam", `v${i}`);
      assert.equal(plain?.readInBatches, false, `viewer v${i} with MEDIA_VIEWER_READ_BATCH_MS=0`);
    }
    const publisher = await batched.server.media?.describePublish(batched.ref, "cam");
    assert.equal(publisher?.readInBatches, false);
    assert.equal(publisher?.transport?.dtlsState, "connected");
  });

  it("the worker wakes up far less often, and still reads every viewer and sends it every frame", async (t) => {
    const received = async () =>
      Promise.all(
        batched.viewers.map(
          async (_, i) =>
            (await batched.server.media?.describeView(batched.ref, "cam", `v${i}`))?.transport?.bytesReceived ?? 0,
        ),
      );
    const received0 = await received();
    // Alternately, twice each: the two servers share the machine's cores with their peers.
    const runs = { batched: [] as number[], unbatched: [] as number[] };
    for (let round = 0; round < 2; round++) {
      for (const [name, a] of [
        ["batched", batched],
        ["unbatched", unbatched],
      ] as const) {
        const { wakes, fps } = await measure(a);
        runs[name].push(wakes);
        for (const [i, f] of fps.entries()) assert.ok(f >= 20, `${name} viewer v${i}: ${f.toFixed(1)} fps`);
      }
    }
    const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
    const ratio = mean(runs.batched) / mean(runs.unbatched);
    const figures = `worker wake-ups per second: batched ${runs.batched.map(Math.round)}, unbatched ${runs.unbatched.map(Math.round)} (ratio ${ratio.toFixed(2)})`;
    t.diagnostic(figures);
    assert.ok(ratio < 0.75, figures);
    // What each viewer sent (its RTCP: ~20 transport-cc reports a second) was read in batches.
    for (const [i, bytes] of (await received()).entries()) {
      const read = bytes - (received0[i] ?? 0);
      assert.ok(read > 5000, `viewer v${i}: ${read} bytes read in ${(4 * WINDOW_MS) / 1000} s`);
    }
  });
});

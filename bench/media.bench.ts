/**
 * SFU figures with real libwebrtc peers (@roamhq/wrtc) on loopback, one run per audience size:
 * one publisher, N viewers joining at once through viewStream, 4 s warm-up, an 8 s window.
 * Prints per N: first frame p50/max from the view request, answer p50/max, viewers' mean fps
 * and share ≥ 25 fps, worker CPU (cores, and % of a core per viewer), consumers per worker.
 *
 *   npm run bench:media                              # BENCH_VIEWERS=1,10,30 BENCH_SOURCE=flat
 *   BENCH_SOURCE=textured BENCH_LOSS=5 npm run bench:media   # 960x540 source; 5 % downlink loss
 *
 * Needs the worker (scripts/build-mediasoup-worker.sh). The peers run in this process and
 * share the 2 cores with the workers, so viewer frame rates at large N are partly the peers'.
 * Loss is a user-space relay per viewer (test/helpers/lossy-link.ts; no sch_netem here).
 */
import fs from "node:fs";
import { rest, serviceToken } from "../test/helpers/conference-client.js";
import { answerCandidate, type LossyLink, lossyLink, throughLink } from "../test/helpers/lossy-link.js";
import { publishCamera, viewUntilFirstFrame } from "../test/helpers/media-peers.js";
import { createApp, startServer } from "../test/helpers/server.js";
import { type RTCPeerConnection, statsOfType } from "../test/helpers/wrtc.js";

const VIEWERS = (process.env.BENCH_VIEWERS ?? "1,10,30").split(",").map(Number);
const TEXTURED = process.env.BENCH_SOURCE === "textured";
const LOSS = Number(process.env.BENCH_LOSS ?? 0);
const WARMUP_MS = 4000;
const WINDOW_MS = 8000;

/** CPU seconds used so far by a process (utime + stime from /proc). */
function cpuSeconds(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.floor(q * (xs.length - 1))] ?? NaN;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const server = await startServer({ LOG_LEVEL: "silent", MEDIA_STATS_INTERVAL_MS: "0" }, undefined, undefined, true);
const media = server.media;
if (media === undefined) throw new Error("no media");
const app = await createApp(server.url);
const call = rest(server.url, await serviceToken(server.url, app));
console.log(
  `source ${TEXTURED ? "textured 960x540, 3 simulcast layers" : "flat 320x240"} at 30 fps; downlink loss ${LOSS} %; ${media.workerPids().length} workers`,
);
console.log(
  "viewers  first frame p50/max ms  answer p50/max ms  fps mean  ≥25 fps  worker CPU  %core/viewer  consumers/worker  RTX sent",
);
try {
  for (const n of VIEWERS) {
    const conferenceId = `bench-${n}`;
    await call("POST", "/rtc-api/conferences/create", { conferenceId });
    const pub = await publishCamera(call, conferenceId, "pub", "cam", TEXTURED);
    const peers: RTCPeerConnection[] = [pub.pc];
    const links: LossyLink[] = [];
    try {
      await sleep(2000); // past the publisher's first key frames
      const shape = async (answer: string) => {
        if (LOSS === 0) return answer;
        const link = await lossyLink(answerCandidate(answer), { lossPercent: LOSS }, links.length + 1);
        links.push(link);
        return throughLink(answer, link.port);
      };
      const joined = await Promise.all(
        Array.from({ length: n }, async (_, i) => {
          const v = await viewUntilFirstFrame(call, conferenceId, "pub", "cam", `v${i}`, shape);
          peers.push(v.pc);
          return v;
        }),
      );
      await sleep(WARMUP_MS);
      const pids = media.workerPids();
      const decoded = async () =>
        Promise.all(joined.map(async (v) => (await statsOfType(v.pc, "inbound-rtp"))[0]?.framesDecoded ?? 0));
      const cpu0 = pids.reduce((s, p) => s + cpuSeconds(p), 0);
      const frames0 = await decoded();
      const t0 = Date.now();
      await sleep(WINDOW_MS);
      const frames1 = await decoded();
      const seconds = (Date.now() - t0) / 1000;
      const cpu = (pids.reduce((s, p) => s + cpuSeconds(p), 0) - cpu0) / seconds;
      const fps = frames1.map((f, i) => (f - (frames0[i] ?? 0)) / seconds);
      let rtx = 0; // viewers that got retransmissions as RTX
      for (let i = 0; i < n; i++) {
        const view = await media.describeView({ appId: app.appId, conferenceId }, "cam", `v${i}`);
        if ((view?.transport?.rtxBytesSent ?? 0) > 0) rtx++;
      }
      const first = joined.map((v) => v.firstFrameMs);
      const answers = joined.map((v) => v.answerMs);
      console.log(
        [
          String(n).padStart(7),
          `${quantile(first, 0.5)} / ${Math.max(...first)}`.padStart(22),
          `${quantile(answers, 0.5)} / ${Math.max(...answers)}`.padStart(17),
          (fps.reduce((a, b) => a + b, 0) / n).toFixed(1).padStart(8),
          `${Math.round((100 * fps.filter((f) => f >= 25).length) / n)} %`.padStart(7),
          cpu.toFixed(2).padStart(10),
          ((100 * cpu) / n).toFixed(2).padStart(12),
          [...media.consumersPerWorker().values()].join("/").padStart(16),
          `${rtx}/${n}`.padStart(8),
        ].join("  "),
      );
    } finally {
      for (const pc of peers) pc.close();
      for (const link of links) link.close();
      pub.close();
      await call("POST", "/rtc-api/conferences/end", { conferenceId });
      await sleep(500);
    }
  }
} finally {
  await server.close();
  process.exit(0);
}

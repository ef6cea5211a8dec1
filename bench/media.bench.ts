/**
 * SFU figures with real libwebrtc peers (@roamhq/wrtc) on loopback, measured in one run:
 * publish request → answer, view request → first decoded frame, and one publisher fanned out
 * to N viewers with the workers' CPU and the viewers' mean frame rate. Prints a table.
 *
 *   npx tsx bench/media.bench.ts                 # BENCH_VIEWERS=10,50,100 BENCH_SECONDS=5
 * Needs the worker (scripts/build-mediasoup-worker.sh). The peers share the 2 cores with
 * the workers, so viewer frame rates fall for large N partly because of the peers themselves.
 */
import fs from "node:fs";
import { performance } from "node:perf_hooks";
import { createApp, serviceToken, startServer } from "../test/helpers/server.js";
import { nonstandard, RTCPeerConnection } from "../test/helpers/wrtc.js";

const VIEWERS = (process.env.BENCH_VIEWERS ?? "10,50,100").split(",").map(Number);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);

/** CPU seconds used so far by a process (utime + stime from /proc). */
function cpuSeconds(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const server = await startServer({ LOG_LEVEL: "silent", MEDIA_STATS_INTERVAL_MS: "0" }, undefined, undefined, true);
const peers: RTCPeerConnection[] = [];
let pushing: NodeJS.Timeout | undefined;
try {
  const access_token = await serviceToken(server.url, await createApp(server.url));
  const api = async (path: string, body: unknown) => {
    const res = await fetch(`${server.url}/rtc-api/conferences/${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${access_token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    return (await res.json()) as Record<string, unknown>;
  };
  await api("create", { conferenceId: "bench" });
  await api("join", { conferenceId: "bench", userEndpointId: "pub", userId: "p" });

  const source = new nonstandard.RTCVideoSource();
  let n = 0;
  pushing = setInterval(() => {
    const data = new Uint8Array(320 * 240 * 1.5);
    data.fill(n++ % 200, 0, 320 * 240);
    data.fill(128, 320 * 240);
    source.onFrame({ width: 320, height: 240, data });
  }, 66);
  const pub = new RTCPeerConnection();
  peers.push(pub);
  pub.addTransceiver(source.createTrack(), { direction: "sendonly" });
  await pub.setLocalDescription(await pub.createOffer());
  let t = performance.now();
  const published = await api("publishStream", {
    conferenceId: "bench",
    userEndpointId: "pub",
    conferenceStreamType: "CAM",
    sdpOffer: pub.localDescription?.sdp,
  });
  console.log(`publish request → answer            ${(performance.now() - t).toFixed(1)} ms`);
  await pub.setRemoteDescription({ type: "answer", sdp: published.sdpAnswer as string });
  const streamId = (published.streamId as { id: string }).id;

  const frameCounts: number[] = [];
  const view = async (i: number): Promise<number> => {
    const pc = new RTCPeerConnection();
    peers.push(pc);
    pc.addTransceiver("video", { direction: "recvonly" });
    const started = performance.now();
    const firstFrame = new Promise<number>((resolve) => {
      pc.ontrack = (e) => {
        const sink = new nonstandard.RTCVideoSink(e.track);
        frameCounts[i] = 0;
        sink.onframe = () => {
          if (frameCounts[i] === 0) resolve(performance.now() - started);
          frameCounts[i] = (frameCounts[i] ?? 0) + 1;
        };
      };
    });
    await pc.setLocalDescription(await pc.createOffer());
    const viewed = await api("viewStream", {
      conferenceId: "bench",
      userEndpointId: "pub",
      streamId: { id: streamId },
      sdpOffer: pc.localDescription?.sdp,
    });
    await pc.setRemoteDescription({ type: "answer", sdp: viewed.sdpAnswer as string });
    return firstFrame;
  };

  t = performance.now();
  const first = await view(0);
  console.log(`view request → first decoded frame  ${first.toFixed(1)} ms`);

  console.log("\nviewers  worker CPU (cores)  viewer fps (mean)  setup s");
  let viewers = 1;
  for (const target of VIEWERS) {
    t = performance.now();
    let late = 0;
    while (viewers < target) {
      const got = await Promise.race([view(viewers++), new Promise<number>((r) => setTimeout(() => r(-1), 5000))]);
      if (got < 0) late++;
    }
    if (late > 0) console.log(`  (${late} viewers had no frame within 5 s of joining)`);
    const setup = (performance.now() - t) / 1000;
    const pids = server.media?.workerPids() ?? [];
    const cpu0 = pids.reduce((s, p) => s + cpuSeconds(p), 0);
    const frames0 = frameCounts.slice(0, viewers).map((f) => f ?? 0);
    await new Promise((r) => setTimeout(r, SECONDS * 1000));
    const cpu = (pids.reduce((s, p) => s + cpuSeconds(p), 0) - cpu0) / SECONDS;
    const fps = frameCounts.slice(0, viewers).map((f, i) => ((f ?? 0) - (frames0[i] ?? 0)) / SECONDS);
    const mean = fps.reduce((a, b) => a + b, 0) / fps.length;
    console.log(
      `${String(viewers).padStart(7)}  ${cpu.toFixed(2).padStart(17)}  ${mean.toFixed(1).padStart(17)}  ${setup.toFixed(1).padStart(7)}`,
    );
  }
  console.log(`(source sends 15 fps; resident memory ${(process.memoryUsage().rss / 1048576).toFixed(0)} MiB)`);
} finally {
  if (pushing) clearInterval(pushing);
  for (const pc of peers) pc.close();
  await server.close();
  process.exit(0);
}

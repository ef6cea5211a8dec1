/**
 * SFU figures with real libwebrtc peers (@roamhq/wrtc) on loopback, one run per audience size:
 * one publisher, N viewers joining at once, 4 s warm-up, an 8 s window. Per N and server:
 * first frame p50/max from the view request, answer p50/max, viewers' mean fps and share
 * ≥ 25 fps, server CPU (media workers and Node; % of a core per viewer), consumers per worker,
 * viewers repaired with RTX. Janus 1.1.2 (Debian `janus`, videoroom) serves the same audience
 * in the same run as the baseline, when installed and the source is the flat one without loss.
 *
 *   npm run bench:media                              # BENCH_VIEWERS=1,10,30 BENCH_SOURCE=flat
 *   BENCH_SOURCE=textured BENCH_LOSS=5 npm run bench:media   # 960x540 source; 5 % downlink loss
 *   BENCH_JANUS=0 npm run bench:media                # rtcplane only
 *   BENCH_VIEWERS=30 BENCH_REPEAT=5 npm run bench:media  # five pairs of runs; the ratio per pair and its median
 *   MEDIA_VIEWER_BWE=remb npm run bench:media       # RTC_PORT and MEDIA_VIEWER_* pass through to the server
 *   BENCH_NODE_PROFILE=/tmp/join npm run bench:media # V8 profile of the server while viewers join
 *   BENCH_PERF_EVENTS=context-switches,syscalls:sys_enter_epoll_wait npm run bench:media  # perf stat per window
 *
 * Needs the worker (scripts/build-mediasoup-worker.sh). The peers run in a child process
 * (bench/media-audience.ts) and share the 2 cores with the servers. Loss is a user-space relay
 * per viewer (test/helpers/lossy-link.ts; no sch_netem here).
 */
import { fork, spawn } from "node:child_process";
import fs from "node:fs";
import { Session } from "node:inspector/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { rest, serviceToken } from "../test/helpers/conference-client.js";
import { createApp, startServer } from "../test/helpers/server.js";
import { cpuMs } from "./lib/processes.js";
import type { AudienceReply, AudienceRequest, AudienceTarget } from "./media-audience.js";

const VIEWERS = (process.env.BENCH_VIEWERS ?? "1,10,30").split(",").map(Number);
const TEXTURED = process.env.BENCH_SOURCE === "textured";
const LOSS = Number(process.env.BENCH_LOSS ?? 0);
const JANUS = process.env.BENCH_JANUS !== "0" && !TEXTURED && LOSS === 0 && fs.existsSync("/usr/bin/janus");
/** Viewers are spread over this many processes, as over browsers (BENCH_AUDIENCE_PROCESSES). */
const AUDIENCE_PROCESSES = Number(process.env.BENCH_AUDIENCE_PROCESSES ?? 3);
const NICE = Number(process.env.BENCH_AUDIENCE_NICE ?? 0);
/** perf events counted in the media processes (workers, Janus) over the window, e.g. context-switches. */
const PERF_EVENTS = process.env.BENCH_PERF_EVENTS;
/** Path prefix: this process's CPU profile (the server's side) while the viewers join. */
const NODE_PROFILE = process.env.BENCH_NODE_PROFILE;
/** Runs per audience size, each of ours followed by one of Janus's (BENCH_REPEAT): the 2 cores are noisy, pairs hold. */
const REPEAT = Number(process.env.BENCH_REPEAT ?? 1);
const WARMUP_MS = 4000;
const WINDOW_MS = 8000;

const cpuSeconds = (pid: number) => cpuMs(pid) / 1000;
const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.floor(q * (xs.length - 1))] ?? NaN;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts the V8 profiler in this process; the returned function writes the profile and stops. */
async function startProfile(): Promise<(file: string) => Promise<void>> {
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.setSamplingInterval", { interval: 200 });
  await session.post("Profiler.start");
  return async (file) => {
    const { profile } = await session.post("Profiler.stop");
    fs.writeFileSync(file, JSON.stringify(profile));
    session.disconnect();
  };
}

/** `perf stat -e <events>` of the media processes for most of the window (its table on stderr). */
function perfStat(pids: number[], events: string): Promise<void> {
  const perf = spawn(
    "perf",
    ["stat", "-e", events, "-p", pids.join(","), "--", "sleep", String(WINDOW_MS / 1000 - 1)],
    {
      stdio: ["ignore", "ignore", "inherit"],
    },
  );
  return new Promise((resolve) => {
    perf.once("error", (e) => {
      console.error(`perf stat: ${e.message}`);
      resolve();
    });
    perf.once("close", () => resolve());
  });
}

/** A process of bench/media-audience.ts, asked one thing at a time. */
class AudienceProcess {
  private readonly child = fork(path.join(path.dirname(fileURLToPath(import.meta.url)), "media-audience.ts"), {
    execArgv: ["--import", "tsx"],
    serialization: "advanced", // keeps Infinity (a viewer that decoded no frame) as Infinity
  });

  constructor() {
    if (NICE !== 0) os.setPriority(this.child.pid ?? 0, NICE);
  }

  ask<T extends AudienceReply["type"]>(
    request: AudienceRequest,
    expect: T,
  ): Promise<Extract<AudienceReply, { type: T }>> {
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null) => reject(new Error(`audience process exited with ${code}`));
      this.child.once("exit", onExit);
      this.child.once("message", (reply: AudienceReply) => {
        this.child.off("exit", onExit);
        if (reply.type === expect) resolve(reply as Extract<AudienceReply, { type: T }>);
        else reject(new Error(reply.type === "error" ? reply.message : `unexpected ${reply.type}`));
      });
      this.child.send(request);
    });
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return; // gone already
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    await this.ask({ type: "close" }, "closed").catch(() => undefined);
    this.child.kill();
    await exited;
  }
}

interface Measured {
  firstFrameMs: number[];
  answerMs: number[];
  fps: number[];
  /** CPU cores used in the window: media processes (workers, or Janus) and our Node process. */
  mediaCpu: number;
  nodeCpu: number;
  /** Read while the audience is still there. */
  extra: string[];
}

/**
 * One publisher and n viewers (over AUDIENCE_PROCESSES processes) joining at once; `mediaPids`
 * are sampled over the window (with this process's own CPU when `ownCpu`), `whileThere` is
 * read before the audience leaves.
 */
async function audience(
  target: AudienceTarget,
  n: number,
  mediaPids: () => number[],
  ownCpu: boolean,
  whileThere: () => Promise<string[]>,
): Promise<Measured> {
  const publisher = new AudienceProcess();
  const groups = Array.from({ length: Math.min(n, AUDIENCE_PROCESSES) }, () => new AudienceProcess());
  try {
    const { feedId } = await publisher.ask({ type: "publish", target, textured: TEXTURED }, "published");
    await sleep(2000); // past the publisher's first key frames
    const profiling = ownCpu && NODE_PROFILE !== undefined ? await startProfile() : undefined;
    const joined = await Promise.all(
      groups.map((g, k) =>
        g.ask(
          {
            type: "view",
            target,
            feedId,
            lossPercent: LOSS,
            viewerIds: Array.from({ length: n }, (_, i) => `v${i}`).filter((_, i) => i % groups.length === k),
          },
          "joined",
        ),
      ),
    );
    if (profiling !== undefined) await profiling(`${NODE_PROFILE}-${n}.cpuprofile`);
    await sleep(WARMUP_MS);
    const count = async () =>
      (await Promise.all(groups.map((g) => g.ask({ type: "count" }, "counted")))).flatMap((c) => c.framesDecoded);
    const pids = mediaPids();
    // The frames are counted just outside the CPU window: asking the audience processes is the
    // harness's work, not the server's (this process hosts both).
    const frames0 = await count();
    const t0 = Date.now();
    const cpu0 = pids.reduce((s, p) => s + cpuSeconds(p), 0);
    const node0 = process.cpuUsage();
    const perf = PERF_EVENTS === undefined ? undefined : perfStat(pids, PERF_EVENTS);
    await sleep(WINDOW_MS);
    await perf;
    const node = process.cpuUsage(node0);
    const window = (Date.now() - t0) / 1000;
    const mediaCpu = (pids.reduce((s, p) => s + cpuSeconds(p), 0) - cpu0) / window;
    const frames1 = await count();
    const seconds = (Date.now() - t0) / 1000;
    return {
      firstFrameMs: joined.flatMap((j) => j.firstFrameMs),
      answerMs: joined.flatMap((j) => j.answerMs),
      fps: frames1.map((f, i) => (f - (frames0[i] ?? 0)) / seconds),
      mediaCpu,
      nodeCpu: ownCpu ? (node.user + node.system) / 1e6 / window : 0,
      extra: await whileThere(),
    };
  } finally {
    await Promise.all([publisher, ...groups].map((p) => p.close()));
  }
}

function row(server: string, n: number, m: Measured): string {
  const cpu = m.mediaCpu + m.nodeCpu;
  return [
    server.padEnd(8),
    String(n).padStart(7),
    `${quantile(m.firstFrameMs, 0.5)} / ${Math.max(...m.firstFrameMs)}`.padStart(22),
    `${quantile(m.answerMs, 0.5)} / ${Math.max(...m.answerMs)}`.padStart(17),
    (m.fps.reduce((a, b) => a + b, 0) / n).toFixed(1).padStart(8),
    `${Math.round((100 * m.fps.filter((f) => f >= 25).length) / n)} %`.padStart(7),
    `${m.mediaCpu.toFixed(3)} + ${m.nodeCpu.toFixed(3)}`.padStart(14),
    ((100 * cpu) / n).toFixed(3).padStart(12),
    ...m.extra.map((e) => e.padStart(16)),
  ].join("  ");
}

/** Server settings a run may vary (A/B runs): passed through when set. */
const PASSED = ["RTC_PORT", "MEDIA_VIEWER_FEEDBACK_MS", "MEDIA_VIEWER_BWE", "MEDIA_VIEWER_READ_BATCH_MS"].flatMap(
  (k) => (process.env[k] ? [[k, process.env[k]]] : []),
);
const server = await startServer(
  { LOG_LEVEL: "silent", MEDIA_STATS_INTERVAL_MS: "0", ...Object.fromEntries(PASSED) },
  undefined,
  undefined,
  true,
);
const media = server.media;
if (media === undefined) throw new Error("no media");
const app = await createApp(server.url);
const token = await serviceToken(server.url, app);
const call = rest(server.url, token);
const janus = JANUS ? await (await import("./janus.js")).startJanus() : undefined;
console.log(
  `source ${TEXTURED ? "textured 960x540, 3 simulcast layers" : "flat 320x240"} at 30 fps; downlink loss ${LOSS} %; ${media.workerPids().length} workers${janus ? "; Janus 1.1.2 beside" : ""}`,
);
console.log(
  "server   viewers  first frame p50/max ms  answer p50/max ms  fps mean  ≥25 fps  CPU media+node  %core/viewer  consumers/worker  RTX sent",
);
let failed = false;
/** Per audience size: our CPU per viewer over Janus's, one figure per pair of runs. */
const ratios = new Map<number, number[]>();
const perViewer = (m: Measured, n: number) => (m.mediaCpu + m.nodeCpu) / n;
try {
  let run = 0;
  for (const n of VIEWERS) {
    for (let repeat = 0; repeat < REPEAT; repeat++, run++) {
      const conferenceId = `bench-${run}-${n}`;
      await call("POST", "/rtc-api/conferences/create", { conferenceId });
      const ours = await audience(
        { server: "rtcplane", url: server.url, token, conferenceId },
        n,
        () => media.workerPids(),
        true,
        async () => {
          let rtx = 0; // viewers that got retransmissions as RTX
          for (let i = 0; i < n; i++) {
            const view = await media.describeView({ appId: app.appId, conferenceId }, "cam", `v${i}`);
            if ((view?.transport?.rtxBytesSent ?? 0) > 0) rtx++;
          }
          return [[...media.consumersPerWorker().values()].join("/"), `${rtx}/${n}`];
        },
      );
      console.log(row("rtcplane", n, ours));
      await call("POST", "/rtc-api/conferences/end", { conferenceId });
      if (janus !== undefined) {
        const theirs = await audience(
          { server: "janus", url: janus.url, room: 1000 + run },
          n,
          () => [janus.pid],
          false,
          async () => [],
        );
        console.log(row("janus", n, theirs));
        ratios.set(n, [...(ratios.get(n) ?? []), perViewer(ours, n) / perViewer(theirs, n)]);
      }
      await sleep(500);
    }
  }
  for (const [n, rs] of ratios) {
    const figures = rs.map((r) => `${r.toFixed(2)}x`).join(", ");
    const sorted = [...rs].sort((a, b) => a - b);
    const median =
      ((sorted[Math.floor((rs.length - 1) / 2)] ?? NaN) + (sorted[Math.ceil((rs.length - 1) / 2)] ?? NaN)) / 2;
    console.log(`CPU per viewer against Janus at ${n}: ${figures} (median ${median.toFixed(2)}x)`);
  }
} catch (e) {
  console.error(e);
  failed = true;
} finally {
  await janus?.stop();
  await server.close();
  process.exit(failed ? 1 : 0);
}

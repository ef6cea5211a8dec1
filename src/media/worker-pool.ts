/**
 * The mediasoup workers of this node: started at boot, replaced when one dies, and loaded by
 * the endpoints (publishers and views) placed on them, so every new one goes to the
 * least-loaded worker — a big audience uses every core.
 */
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import type { types } from "mediasoup";
import type { Logger } from "../observability/log.js";
import type { ViewerBwe } from "./sdp-bridge.js";

export interface MediaSettings {
  readonly workerBin: string;
  readonly workers: number;
  readonly rtcMinPort: number;
  readonly rtcMaxPort: number;
  /**
   * With a port, each worker serves every transport on one UDP and one TCP port (rtcPort +
   * its index, a mediasoup WebRtcServer): one firewall rule, and ICE over TCP on the same
   * port for clients whose UDP is blocked. Without, each transport takes its own ports.
   */
  readonly rtcPort: number | undefined;
  readonly listenIp: string;
  readonly announcedIp: string | undefined;
  /** How often network indicators are computed per conference with media (0 = never). */
  readonly statsIntervalMs: number;
  /** The transport-cc feedback interval asked of viewers (0 = theirs); see viewerSendCapKbps. */
  readonly viewerFeedbackMs: number;
  /** How viewers report their bandwidth (see ViewerBwe). */
  readonly viewerBwe: ViewerBwe;
  /** How long a connected viewer's datagrams may wait to be read in a batch (0 = not); see fieldTrials. */
  readonly viewerReadBatchMs: number;
}

/**
 * The outgoing estimate a transport starts from (mediasoup's default: 600 kbit/s). Without
 * probes a browser counts (see the README), the estimate climbs on media alone, and GoogCC
 * lets it grow only to about 1.5x what is acknowledged: a simulcast viewer started below its
 * top layer could not reach it (the simulcast test failed one CI run in four). 1.5 Mbit/s
 * stands for what libwebrtc's own start-up probes find on a good link; a weaker viewer's
 * delay-based estimate takes it down to a lower layer within a second or two.
 */
const INITIAL_OUTGOING_BITRATE = 1_500_000;

/**
 * mediasoup's default field trial, plus the pacer's idle interval raised from 5 ms to GoogCC's
 * own process interval (25 ms). Each viewer's congestion controller runs on a timer of the
 * smaller of the two, and mediasoup runs GoogCC's periodic update on every tick: 200 updates a
 * second per viewer where libwebrtc means 40 — 10 % of a worker's CPU at 30 viewers (perf).
 * The pacer here only sends probes and padding (mediasoup sends media unpaced), and while
 * probing it wakes when the prober asks, not on this interval.
 */
const LIBWEBRTC_FIELD_TRIALS = "WebRTC-Bwe-AlrLimitedBackoff/Enabled/WebRTC-Pacer-MinPacketLimitMs/25/";

/**
 * The worker's field trials: libwebrtc's above and our worker patch's own. With
 * `RtcPlane-ViewerReadBatchMs/<ms>/`, a connected transport without producers (a viewer's)
 * leaves the worker's poll set: its RTCP and consent checks are read when the worker wakes up
 * anyway (for the publisher's packets, for timers), or within that many ms, instead of waking
 * it once per datagram — which most of a worker's wake-ups were, at ~20 transport-cc
 * reports a second per viewer (UdpSocketHandler.cpp in patches/mediasoup+3.12.16.patch).
 */
export function fieldTrials(viewerReadBatchMs: number): string {
  return viewerReadBatchMs > 0
    ? `${LIBWEBRTC_FIELD_TRIALS}RtcPlane-ViewerReadBatchMs/${viewerReadBatchMs}/`
    : LIBWEBRTC_FIELD_TRIALS;
}

/**
 * Where mediasoup looks for its worker, and scripts/build-mediasoup-worker.sh links the one
 * it built (from the package's source with our patch) out of its cache.
 */
export function defaultWorkerBin(): string {
  const lib = createRequire(import.meta.url).resolve("mediasoup"); // <package>/node/lib/index.js
  return path.join(path.dirname(lib), "..", "..", "worker", "out", "Release", "mediasoup-worker");
}

/** A worker's resource usage, for metrics. */
export interface WorkerUsage {
  readonly pid: number;
  readonly userSeconds: number;
  readonly systemSeconds: number;
  readonly maxRssBytes: number;
}

export class WorkerPool {
  private readonly workers: types.Worker[] = [];
  /** Endpoints each worker carries (reserved before they exist, released on close). */
  private readonly load = new Map<types.Worker, number>();
  /** Each worker's WebRtcServer, when settings.rtcPort is set. */
  private readonly webRtcServers = new Map<types.Worker, types.WebRtcServer>();
  private closed = false;
  /** Told when a worker died and took its routers along (a replacement is being started). */
  onWorkerDied: (() => void) | undefined;

  private constructor(
    private readonly mediasoup: typeof import("mediasoup"),
    readonly settings: MediaSettings,
    private readonly log: Logger,
  ) {}

  /** Starts the workers, or answers undefined (media unavailable) without a worker binary. */
  static async start(settings: MediaSettings, log: Logger): Promise<WorkerPool | undefined> {
    if (!fs.existsSync(settings.workerBin)) {
      log.warn(
        { workerBin: settings.workerBin },
        "no mediasoup worker binary: publish/view answer 412 (run scripts/build-mediasoup-worker.sh)",
      );
      return undefined;
    }
    process.env.MEDIASOUP_WORKER_BIN = settings.workerBin;
    const pool = new WorkerPool(await import("mediasoup"), settings, log);
    for (let i = 0; i < settings.workers; i++) await pool.addWorker();
    log.info({ workers: settings.workers }, "mediasoup workers started");
    return pool;
  }

  private async addWorker(): Promise<void> {
    const worker = await this.mediasoup.createWorker({
      rtcMinPort: this.settings.rtcMinPort,
      rtcMaxPort: this.settings.rtcMaxPort,
      logLevel: "warn",
      libwebrtcFieldTrials: fieldTrials(this.settings.viewerReadBatchMs),
    });
    if (this.settings.rtcPort !== undefined) {
      // The first port no live worker holds (a replaced worker's port is free again).
      const taken = new Set([...this.webRtcServers.values()].map((s) => s.appData.port));
      let port = this.settings.rtcPort;
      while (taken.has(port)) port++;
      const at = { ip: this.settings.listenIp, port, announcedIp: this.settings.announcedIp };
      try {
        const server = await worker.createWebRtcServer({
          listenInfos: [
            { protocol: "udp", ...at },
            { protocol: "tcp", ...at },
          ],
          appData: { port },
        });
        this.webRtcServers.set(worker, server);
        worker.observer.once("close", () => this.webRtcServers.delete(worker));
      } catch (e) {
        worker.close();
        throw e;
      }
    }
    this.workers.push(worker);
    worker.on("died", (err) => {
      this.log.error({ err, pid: worker.pid }, "mediasoup worker died; replacing it");
      this.workers.splice(this.workers.indexOf(worker), 1);
      this.load.delete(worker);
      if (this.closed) return;
      this.onWorkerDied?.();
      this.addWorker().catch((e: unknown) => this.log.error({ err: e }, "could not replace the mediasoup worker"));
    });
  }

  addLoad(worker: types.Worker, delta: number): void {
    if (!worker.closed) this.load.set(worker, (this.load.get(worker) ?? 0) + delta);
  }

  loadOf(worker: types.Worker): number {
    return this.load.get(worker) ?? 0;
  }

  /** The least-loaded of `among` (every worker by default). */
  leastLoaded(among: readonly types.Worker[] = this.workers): types.Worker {
    let best: types.Worker | undefined;
    for (const w of among) if (best === undefined || this.loadOf(w) < this.loadOf(best)) best = w;
    if (best === undefined) throw new Error("no mediasoup worker is running");
    return best;
  }

  /** The least-loaded worker, reserved for one more endpoint (release with addLoad(w, -1)). */
  reserve(): types.Worker {
    const w = this.leastLoaded();
    this.addLoad(w, 1);
    return w;
  }

  /** A WebRTC transport on `router` (of `worker`): on the worker's WebRtcServer, or ports of its own. */
  webRtcTransport(router: types.Router, worker: types.Worker): Promise<types.WebRtcTransport> {
    const webRtcServer = this.webRtcServers.get(worker);
    if (webRtcServer !== undefined) {
      return router.createWebRtcTransport({
        webRtcServer,
        enableUdp: true,
        enableTcp: true,
        preferUdp: true,
        initialAvailableOutgoingBitrate: INITIAL_OUTGOING_BITRATE,
      });
    }
    return router.createWebRtcTransport({
      initialAvailableOutgoingBitrate: INITIAL_OUTGOING_BITRATE,
      listenIps: [
        {
          ip: this.settings.listenIp,
          ...(this.settings.announcedIp ? { announcedIp: this.settings.announcedIp } : {}),
        },
      ],
      enableUdp: true,
      enableTcp: true,
      preferUdp: true,
    });
  }

  /** Process ids of the running workers (operators and tests use them). */
  pids(): number[] {
    return this.workers.map((w) => w.pid);
  }

  /**
   * Each running worker's CPU time (seconds) and peak resident memory (bytes), asked over its
   * channel; a worker that does not answer within `timeoutMs` is left out.
   */
  async resourceUsage(timeoutMs: number): Promise<WorkerUsage[]> {
    const asked = this.workers.map(async (w): Promise<WorkerUsage | undefined> => {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<undefined>((resolve) => {
        timer = setTimeout(resolve, timeoutMs, undefined);
      });
      try {
        const u = await Promise.race([w.getResourceUsage(), late]);
        if (u === undefined) return undefined;
        // libuv's getrusage: times in milliseconds, ru_maxrss in kilobytes.
        return {
          pid: w.pid,
          userSeconds: u.ru_utime / 1000,
          systemSeconds: u.ru_stime / 1000,
          maxRssBytes: u.ru_maxrss * 1024,
        };
      } catch {
        return undefined; // closed or died meanwhile
      } finally {
        clearTimeout(timer);
      }
    });
    return (await Promise.all(asked)).filter((u): u is WorkerUsage => u !== undefined);
  }

  close(): void {
    this.closed = true;
    for (const w of this.workers) w.close();
  }
}

/**
 * Prometheus metrics on the one port (`GET /metrics`): RPCs by protocol, method and code with
 * their latency (rpc-metrics.ts, from the interceptor pipeline), what this node holds in
 * memory — conferences, participants and streams with media, mediasoup transports and
 * consumers per worker, event waiters, MQTT and Spreed sockets — the workers' CPU and memory,
 * and the process-wide figures (Node's default metrics, store query time). Node state is read
 * when Prometheus scrapes, so between scrapes nothing is spent on it. With METRICS_TOKEN set
 * the page wants `Authorization: Bearer <token>`.
 */

import { createHash, timingSafeEqual } from "node:crypto";
import type { DescMethod } from "@bufbuild/protobuf";
import { Counter, Gauge, Registry } from "prom-client";
import type { PageHandler } from "../http/operator-pages.js";
import type { Media, WorkerUsage } from "../media/media.js";
import { HttpMetrics } from "./http-metrics.js";
import { processRegistry, storeQueryTimes } from "./process-metrics.js";
import { RpcMetrics } from "./rpc-metrics.js";

/** How long a scrape waits for the mediasoup workers' resource usage. */
const WORKER_USAGE_TIMEOUT_MS = 1000;

/** Where the node's state is read from at scrape time. */
export interface MetricSources {
  readonly bus: { allListeners(): number };
  readonly spreed: { stats(): { rooms: number; connections: number; sessions: number } };
  /** MQTT push, once started (undefined before listen() and when disabled). */
  readonly mqtt: () => { stats(): { sockets: number; clients: number } } | undefined;
  readonly media: Media | undefined;
}

export class Metrics {
  readonly rpc: RpcMetrics;
  readonly http = new HttpMetrics();
  private readonly registry = new Registry();
  private readonly token: Buffer | undefined;
  /** The scrape being rendered: concurrent scrapes share it. */
  private rendering: Promise<string> | undefined;
  private readonly gauges: ReturnType<Metrics["makeGauges"]>;

  constructor(
    served: (method: DescMethod) => boolean,
    private readonly sources: MetricSources,
    token: string | undefined,
  ) {
    this.rpc = new RpcMetrics(served);
    this.token = token === undefined ? undefined : sha256(token);
    this.gauges = this.makeGauges();
  }

  private makeGauges() {
    const registers = [this.registry];
    const gauge = (name: string, help: string, labelNames: string[] = []) =>
      new Gauge({ name, help, labelNames, registers });
    return {
      waiters: gauge("rtcplane_event_waiters", "Long-poll waiters and event streams listening on this node."),
      mqttSockets: gauge("rtcplane_mqtt_sockets", "Open MQTT WebSockets."),
      mqttClients: gauge("rtcplane_mqtt_clients", "MQTT clients logged in."),
      spreedConnections: gauge("rtcplane_spreed_connections", "Open Spreed signaling WebSockets."),
      spreedSessions: gauge("rtcplane_spreed_sessions", "Spreed sessions on this node (reconnecting ones included)."),
      spreedRooms: gauge("rtcplane_spreed_rooms", "Spreed rooms with someone in them on this node."),
      conferences: gauge("rtcplane_media_conferences", "Conferences with published media on this node."),
      participants: gauge("rtcplane_media_participants", "Endpoints publishing or viewing media on this node."),
      streams: gauge("rtcplane_media_streams", "Streams published on this node."),
      views: gauge("rtcplane_media_views", "Views (a viewer of a stream) on this node."),
      workers: gauge("rtcplane_mediasoup_workers", "Running mediasoup workers."),
      transports: gauge("rtcplane_mediasoup_worker_transports", "WebRTC transports per worker.", ["pid"]),
      producers: gauge("rtcplane_mediasoup_worker_producers", "Producers per worker.", ["pid"]),
      consumers: gauge("rtcplane_mediasoup_worker_consumers", "Consumers per worker.", ["pid"]),
      workerRss: gauge("rtcplane_mediasoup_worker_max_rss_bytes", "Peak resident memory of each worker.", ["pid"]),
      workerCpu: new Counter({
        name: "rtcplane_mediasoup_worker_cpu_seconds_total",
        help: "CPU time each worker used, by mode (user, system).",
        labelNames: ["pid", "mode"],
        registers,
      }),
    };
  }

  /** Sets the gauges from the node's state as it is now. */
  private async refresh(): Promise<void> {
    const g = this.gauges;
    const { bus, spreed, mqtt, media } = this.sources;
    g.waiters.set(bus.allListeners());
    const m = mqtt()?.stats();
    g.mqttSockets.set(m?.sockets ?? 0);
    g.mqttClients.set(m?.clients ?? 0);
    const s = spreed.stats();
    g.spreedConnections.set(s.connections);
    g.spreedSessions.set(s.sessions);
    g.spreedRooms.set(s.rooms);
    const census = media?.census();
    g.conferences.set(census?.conferences ?? 0);
    g.participants.set(census?.participants ?? 0);
    g.streams.set(census?.streams ?? 0);
    g.views.set(census?.views ?? 0);
    g.workers.set(census?.workers.size ?? 0);
    // Per-worker series start afresh each scrape: a replaced worker's pid goes away.
    for (const perWorker of [g.transports, g.producers, g.consumers, g.workerRss]) perWorker.reset();
    g.workerCpu.reset();
    for (const [pid, w] of census?.workers ?? []) {
      g.transports.set({ pid }, w.transports);
      g.producers.set({ pid }, w.producers);
      g.consumers.set({ pid }, w.consumers);
    }
    const usage: WorkerUsage[] = media === undefined ? [] : await media.workerUsage(WORKER_USAGE_TIMEOUT_MS);
    for (const u of usage) {
      g.workerRss.set({ pid: u.pid }, u.maxRssBytes);
      g.workerCpu.inc({ pid: u.pid, mode: "user" }, u.userSeconds);
      g.workerCpu.inc({ pid: u.pid, mode: "system" }, u.systemSeconds);
    }
  }

  /** The whole exposition, in the Prometheus text format. */
  exposition(): Promise<string> {
    this.rendering ??= (async () => {
      try {
        await this.refresh();
        const [process, node] = await Promise.all([processRegistry().metrics(), this.registry.metrics()]);
        const parts = [process, storeQueryTimes.exposition(), node, this.rpc.exposition(), this.http.exposition()];
        return `${parts.map((part) => part.trimEnd()).join("\n")}\n`;
      } finally {
        this.rendering = undefined;
      }
    })();
    return this.rendering;
  }

  /** The `/metrics` page. */
  page(): PageHandler {
    return async (req, res) => {
      if (this.token !== undefined && !bearerMatches(req.headers.authorization, this.token)) {
        res.writeHead(401, {
          "content-type": "text/plain; charset=utf-8",
          "www-authenticate": 'Bearer realm="metrics"',
        });
        res.end(req.method === "HEAD" ? undefined : "metrics need Authorization: Bearer <METRICS_TOKEN>\n");
        return;
      }
      const headers = { "content-type": processRegistry().contentType, "cache-control": "no-store" };
      if (req.method === "HEAD") {
        res.writeHead(200, headers);
        res.end();
        return;
      }
      const body = await this.exposition();
      res.writeHead(200, headers);
      res.end(body);
    };
  }
}

function sha256(s: string): Buffer {
  return createHash("sha256").update(s).digest();
}

/** Whether `header` is `Bearer <token>` with the expected token, compared in constant time. */
function bearerMatches(header: string | undefined, expected: Buffer): boolean {
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? "");
  // Hashes have one length, so timingSafeEqual compares them whatever was sent.
  return timingSafeEqual(sha256(m?.[1] ?? ""), expected) && m !== null;
}

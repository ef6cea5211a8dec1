/**
 * The SFU of this node: the worker pool (worker-pool.ts) and one ConferenceMedia per
 * conference with published streams (conference-media.ts), made on its first publish and
 * forgotten once it has none. Services call it by conference; it also samples every
 * conference's network indicators and reports streams that went without an unpublish.
 */
import { randomUUID } from "node:crypto";
import type { types } from "mediasoup";
import type { Logger } from "../observability/log.js";
import { ConferenceMedia } from "./conference-media.js";
import type { MediaPlane, Published, ViewLayers } from "./media-plane.js";
import {
  type ConferenceRef,
  type LostStream,
  NotSimulcastError,
  type PublishDescription,
  StreamConflictError,
  type ViewDescription,
} from "./media-types.js";
import { SdpError } from "./sdp-bridge.js";
import { defaultWorkerBin, type MediaSettings, WorkerPool, type WorkerUsage } from "./worker-pool.js";

export type { MediaPlane, Published, ViewLayers } from "./media-plane.js";
export type {
  BandwidthEstimate,
  ConferenceRef,
  LostStream,
  PublishDescription,
  ViewDescription,
} from "./media-types.js";
export type { MediaSettings, WorkerUsage } from "./worker-pool.js";
export { defaultWorkerBin, NotSimulcastError, SdpError, StreamConflictError };

/** One endpoint's network figures, as ConferenceNetworkIndicatorUpdatedEvent carries them. */
export interface EndpointIndicator {
  averageJitter: number;
  averageRtt: number;
  averageNetworkQuality: number;
  grade: "OPTIMAL" | "SUBOPTIMAL" | "BAD";
}

/** Counts of what the SFU holds (see Media.census). */
export interface MediaCensus {
  /** Conferences with at least one published stream. */
  readonly conferences: number;
  readonly streams: number;
  readonly views: number;
  /** Endpoints publishing or viewing. */
  readonly participants: number;
  /** By worker pid. */
  readonly workers: ReadonlyMap<number, { transports: number; producers: number; consumers: number }>;
}

export interface NetworkIndicators {
  averageNetworkQuality: number;
  participantIndicatorMap: Record<string, EndpointIndicator>;
}

const key = (ref: ConferenceRef) => `${ref.appId}/${ref.conferenceId}`;

export class Media implements MediaPlane {
  private readonly conferences = new Map<string, ConferenceMedia>();
  private statsTimer: NodeJS.Timeout | undefined;
  /** Told every statsIntervalMs, per conference with media, how its endpoints' networks are. */
  onNetworkIndicators: ((ref: ConferenceRef, indicators: NetworkIndicators) => void) | undefined;
  /** Told of a stream that went without an unpublish: its publisher left or failed, or its worker died. */
  onStreamLost: ((lost: LostStream, publisherSick: boolean) => void) | undefined;

  private constructor(
    private readonly pool: WorkerPool,
    private readonly log: Logger,
  ) {
    // A dead worker's routers close with it; each ConferenceMedia reports its streams.
    pool.onWorkerDied = () => this.forgetIdle();
  }

  /** Starts the worker pool, or answers undefined (media unavailable) without a worker binary. */
  static async start(settings: MediaSettings, log: Logger): Promise<Media | undefined> {
    const pool = await WorkerPool.start(settings, log);
    if (pool === undefined) return undefined;
    const media = new Media(pool, log);
    if (settings.statsIntervalMs > 0) {
      media.statsTimer = setInterval(() => void media.reportIndicators(), settings.statsIntervalMs);
      media.statsTimer.unref();
    }
    return media;
  }

  /** A generated stream id. */
  static newStreamId(): string {
    return randomUUID();
  }

  private conference(ref: ConferenceRef): ConferenceMedia | undefined {
    return this.conferences.get(key(ref));
  }

  private forgetIdle(): void {
    for (const [k, c] of this.conferences) if (c.idle) this.conferences.delete(k);
  }

  available(): Promise<boolean> {
    return Promise.resolve(true);
  }

  /** Publishes a browser's sendonly offer, capped at `maxIncomingBitrate` (0: no cap). */
  async publish(
    ref: ConferenceRef,
    endpointId: string,
    streamId: string,
    sdpOffer: string,
    maxIncomingBitrate: number,
  ): Promise<Published> {
    let conference = this.conference(ref);
    if (conference === undefined) {
      conference = new ConferenceMedia(ref, this.pool, (lost, sick) => {
        this.forgetIdle();
        this.onStreamLost?.(lost, sick);
      });
      this.conferences.set(key(ref), conference);
    }
    try {
      const sdpAnswer = await conference.publish(endpointId, streamId, sdpOffer);
      try {
        if (maxIncomingBitrate > 0) await conference.setMaxIncomingBitrate(streamId, maxIncomingBitrate);
      } catch (e) {
        conference.unpublish(streamId);
        throw e;
      }
      return { sdpAnswer, node: undefined };
    } finally {
      this.forgetIdle();
    }
  }

  /** Views a published stream with a browser's recvonly offer; answers with the SDP to apply. */
  view(
    ref: ConferenceRef,
    streamId: string,
    viewerId: string,
    endpointId: string,
    owner: string | undefined,
    sdpOffer: string,
  ): Promise<string> {
    const conference = this.conference(ref);
    if (conference === undefined) return Promise.reject(new SdpError(`stream ${streamId} is not published`));
    return conference.view(streamId, viewerId, endpointId, owner, sdpOffer);
  }

  /** Stops views the caller may stop (see ConferenceMedia.stopView); answers how many. */
  stopView(ref: ConferenceRef, streamId: string, viewerId: string, owner: string | undefined): Promise<number> {
    return Promise.resolve(this.conference(ref)?.stopView(streamId, viewerId, owner) ?? 0);
  }

  /** See ConferenceMedia.setViewLayers. */
  async setViewLayers(
    ref: ConferenceRef,
    streamId: string,
    viewerId: string,
    owner: string | undefined,
    layers: types.ConsumerLayers,
  ): Promise<ViewLayers | undefined> {
    return this.conference(ref)?.setViewLayers(streamId, viewerId, owner, layers);
  }

  unpublish(ref: ConferenceRef, streamId: string): Promise<void> {
    this.conference(ref)?.unpublish(streamId);
    this.forgetIdle();
    return Promise.resolve();
  }

  async setStreamBitrate(ref: ConferenceRef, streamId: string, bitrate: number): Promise<void> {
    await this.conference(ref)?.setMaxIncomingBitrate(streamId, bitrate);
  }

  /** Closes every conference's media (this node was declared dead: its streams are unpublished). */
  closeAll(): void {
    for (const conference of this.conferences.values()) conference.close();
    this.conferences.clear();
  }

  /** Closes everything an endpoint published or viewed (leave, unregister, expiry); answers its streams. */
  closeEndpoint(ref: ConferenceRef, endpointId: string): string[] {
    const unpublished = this.conference(ref)?.closeEndpoint(endpointId) ?? [];
    this.forgetIdle();
    return unpublished;
  }

  closeConference(ref: ConferenceRef): void {
    this.conference(ref)?.close();
    this.forgetIdle();
  }

  /** What a view sends, for operators and tests: its worker, consumers and transport figures. */
  describeView(ref: ConferenceRef, streamId: string, viewerId: string): Promise<ViewDescription | undefined> {
    return this.conference(ref)?.describeView(streamId, viewerId) ?? Promise.resolve(undefined);
  }

  /** What a stream's publisher sends in on, for operators and tests. */
  describePublish(ref: ConferenceRef, streamId: string): Promise<PublishDescription | undefined> {
    return this.conference(ref)?.describePublish(streamId) ?? Promise.resolve(undefined);
  }

  /** How many viewers' consumers each worker (by pid) carries. */
  consumersPerWorker(): Map<number, number> {
    const counts = new Map(this.pool.pids().map((pid) => [pid, 0]));
    for (const conference of this.conferences.values()) {
      for (const stream of conference.streams.values()) {
        for (const view of stream.views.values()) {
          counts.set(view.worker.pid, (counts.get(view.worker.pid) ?? 0) + view.consumers.length);
        }
      }
    }
    return counts;
  }

  /** Process ids of the running workers (operators and tests use them). */
  workerPids(): number[] {
    return this.pool.pids();
  }

  /** What this node's SFU holds, counted from its maps (for metrics, at scrape time). */
  census(): MediaCensus {
    const workers = new Map(this.pool.pids().map((pid) => [pid, { transports: 0, producers: 0, consumers: 0 }]));
    const on = (worker: types.Worker) => {
      let w = workers.get(worker.pid);
      if (w === undefined) {
        w = { transports: 0, producers: 0, consumers: 0 };
        workers.set(worker.pid, w);
      }
      return w;
    };
    let conferences = 0;
    let streams = 0;
    let views = 0;
    const participants = new Set<string>();
    for (const [k, conference] of this.conferences) {
      if (conference.streams.size > 0) conferences++;
      for (const stream of conference.streams.values()) {
        streams++;
        participants.add(`${k}/${stream.endpointId}`);
        // The stream's own router (viewRouters[0]) is on the publisher's worker.
        const own = stream.viewRouters[0];
        if (own !== undefined) {
          const w = on(own.worker);
          w.transports++;
          w.producers += stream.producers.length;
        }
        for (const view of stream.views.values()) {
          views++;
          participants.add(`${k}/${view.endpointId}`);
          const w = on(view.worker);
          w.transports++;
          w.consumers += view.consumers.length;
        }
      }
    }
    return { conferences, streams, views, participants: participants.size, workers };
  }

  /** Each worker's CPU time and peak memory; workers silent for `timeoutMs` are left out. */
  workerUsage(timeoutMs: number): Promise<WorkerUsage[]> {
    return this.pool.resourceUsage(timeoutMs);
  }

  /**
   * Network indicators from mediasoup's stats: jitter and score of what each publisher sends
   * us, round-trip time and score of what each viewer receives. Score 0–10 → grade.
   */
  private async reportIndicators(): Promise<void> {
    for (const conference of [...this.conferences.values()]) {
      const endpoints = new Map<string, { jitter: number[]; rtt: number[]; score: number[] }>();
      const of = (endpointId: string) => {
        const e = endpoints.get(endpointId) ?? { jitter: [], rtt: [], score: [] };
        endpoints.set(endpointId, e);
        return e;
      };
      try {
        for (const stream of conference.streams.values()) {
          const pub = of(stream.endpointId);
          for (const p of stream.producers) {
            for (const s of await p.getStats()) {
              pub.jitter.push(s.jitter ?? 0);
              pub.score.push(s.score ?? 10);
              if (typeof s.roundTripTime === "number") pub.rtt.push(s.roundTripTime);
            }
          }
          for (const view of stream.views.values()) {
            const viewer = of(view.endpointId);
            for (const consumer of view.consumers) {
              for (const s of await consumer.getStats()) {
                if (s.type !== "outbound-rtp") continue;
                viewer.score.push(s.score ?? 10);
                if (typeof s.roundTripTime === "number") viewer.rtt.push(s.roundTripTime);
              }
            }
          }
        }
      } catch (err) {
        this.log.debug({ err }, "media stats unavailable"); // closed meanwhile
        continue;
      }
      if (endpoints.size > 0) this.onNetworkIndicators?.(conference.ref, Media.indicators(endpoints));
    }
  }

  private static indicators(
    endpoints: Map<string, { jitter: number[]; rtt: number[]; score: number[] }>,
  ): NetworkIndicators {
    const mean = (xs: number[], fallback: number) =>
      xs.length === 0 ? fallback : xs.reduce((a, b) => a + b, 0) / xs.length;
    const participantIndicatorMap: Record<string, EndpointIndicator> = {};
    for (const [endpointId, e] of endpoints) {
      const quality = Math.round(mean(e.score, 10) * 10) / 10;
      participantIndicatorMap[endpointId] = {
        averageJitter: Math.round(mean(e.jitter, 0) * 10) / 10,
        averageRtt: Math.round(mean(e.rtt, 0) * 10) / 10,
        averageNetworkQuality: quality,
        grade: quality >= 8 ? "OPTIMAL" : quality >= 5 ? "SUBOPTIMAL" : "BAD",
      };
    }
    const all = Object.values(participantIndicatorMap).map((i) => i.averageNetworkQuality);
    return { averageNetworkQuality: Math.round(mean(all, 10) * 10) / 10, participantIndicatorMap };
  }

  close(): void {
    if (this.statsTimer !== undefined) clearInterval(this.statsTimer);
    this.closeAll();
    this.pool.close();
  }
}

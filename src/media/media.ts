/**
 * The SFU: a pool of mediasoup workers and one WebRtcTransport per published or viewed
 * stream. Each published stream gets a router whose codecs use the publisher's payload types
 * (see sdp-bridge.ts), so a viewer that offers the same payload types — any other libwebrtc
 * browser — consumes from it directly. A viewer with other payload types (Firefox watching
 * Chrome) gets the stream piped into a router on its own payload types, one such router per
 * payload-type signature and worker (mediasoup keeps producer ids unique per worker).
 * Closing a router or transport cascades to its producers and consumers. A dead worker is
 * replaced and the streams it carried are reported through `onStreamsLost`.
 */
import { randomUUID } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { types } from "mediasoup";
import type { Logger } from "../observability/log.js";
import {
  type AnswerSection,
  isSupportedCodec,
  type OfferMedia,
  parseOffer,
  producerParameters,
  SdpError,
  viewerCapabilities,
  viewerRouterCodecs,
  writeAnswer,
} from "./sdp-bridge.js";

export { SdpError };

export interface MediaSettings {
  readonly workerBin: string;
  readonly workers: number;
  readonly rtcMinPort: number;
  readonly rtcMaxPort: number;
  readonly listenIp: string;
  readonly announcedIp: string | undefined;
  /** How often network indicators are computed per conference with media (0 = never). */
  readonly statsIntervalMs: number;
}

/** A conference, by the app it belongs to (conference ids are unique per app only). */
export interface ConferenceRef {
  readonly appId: string;
  readonly conferenceId: string;
}

/** A stream the SFU lost (its worker died, or its publisher went away). */
export interface LostStream extends ConferenceRef {
  readonly endpointId: string;
  readonly streamId: string;
}

function streamKey(ref: ConferenceRef, streamId: string): string {
  return `${ref.appId}/${ref.conferenceId}/${streamId}`;
}

/**
 * Key-frame requests for a producer are coalesced this long after one was sent: libwebrtc
 * encoders ignore requests within 300 ms of the last one, and mediasoup retries an ignored
 * one only after a second, so viewers joining just after another would wait over a second.
 * Past this delay one more request goes out and is honoured.
 */
const KEY_FRAME_REQUEST_DELAY_MS = 350;

/** One endpoint's network figures, as ConferenceNetworkIndicatorUpdatedEvent carries them. */
export interface EndpointIndicator {
  averageJitter: number;
  averageRtt: number;
  averageNetworkQuality: number;
  grade: "OPTIMAL" | "SUBOPTIMAL" | "BAD";
}

interface Published {
  readonly ref: ConferenceRef;
  readonly streamId: string;
  readonly endpointId: string;
  /** The stream's own router, on the publisher's payload types. */
  readonly router: types.Router;
  /** Routers the stream is piped into, by the viewers' payload-type signature. */
  readonly pipes: Map<string, Promise<types.Router>>;
  /** The workers those pipes live on (decided before they exist, so two never share one). */
  readonly pipeWorkers: Map<string, types.Worker>;
  readonly transport: types.WebRtcTransport;
  readonly producers: types.Producer[];
  readonly views: Map<string, View>;
}

interface View {
  readonly transport: types.WebRtcTransport;
  readonly consumers: types.Consumer[];
  readonly endpointId: string;
  /** Who may stop or replace it (the viewer's user); undefined for SERVICE callers. */
  readonly owner: string | undefined;
}

/** A stream id that is published, or being published, already. */
export class StreamConflictError extends Error {
  constructor(streamId: string) {
    super(`stream ${streamId} is already published`);
    this.name = "StreamConflictError";
  }
}

/** The default place scripts/build-mediasoup-worker.sh puts the worker. */
export function defaultWorkerBin(): string {
  return path.join(
    process.env.RTCPLANE_CACHE ?? path.join(os.homedir(), ".cache", "rtcplane"),
    "mediasoup-worker-3.12.16",
  );
}

export class Media {
  private readonly workers: types.Worker[] = [];
  private next = 0;
  /** Published streams by app, conference and stream id (see streamKey). */
  private readonly streams = new Map<string, Published>();
  private closed = false;
  private statsTimer: NodeJS.Timeout | undefined;
  /** Told every statsIntervalMs, per conference with media, how its endpoints' networks are. */
  onNetworkIndicators:
    | ((
        ref: ConferenceRef,
        indicators: { averageNetworkQuality: number; participantIndicatorMap: Record<string, EndpointIndicator> },
      ) => void)
    | undefined;
  /** Told which streams were lost when a worker died (their publishers are told too). */
  onStreamsLost: ((lost: LostStream[], publisherSick: boolean) => void) | undefined;

  private constructor(
    private readonly mediasoup: typeof import("mediasoup"),
    private readonly settings: MediaSettings,
    private readonly log: Logger,
  ) {}

  /** Starts the worker pool, or answers undefined (media unavailable) without a worker binary. */
  static async start(settings: MediaSettings, log: Logger): Promise<Media | undefined> {
    if (!fs.existsSync(settings.workerBin)) {
      log.warn(
        { workerBin: settings.workerBin },
        "no mediasoup worker binary: publish/view answer 412 (run scripts/build-mediasoup-worker.sh)",
      );
      return undefined;
    }
    process.env.MEDIASOUP_WORKER_BIN = settings.workerBin;
    const mediasoup = await import("mediasoup");
    const media = new Media(mediasoup, settings, log);
    for (let i = 0; i < settings.workers; i++) await media.addWorker();
    if (settings.statsIntervalMs > 0) {
      media.statsTimer = setInterval(() => void media.reportIndicators(), settings.statsIntervalMs);
      media.statsTimer.unref();
    }
    log.info({ workers: settings.workers }, "mediasoup workers started");
    return media;
  }

  private async addWorker(): Promise<types.Worker> {
    const worker = await this.mediasoup.createWorker({
      rtcMinPort: this.settings.rtcMinPort,
      rtcMaxPort: this.settings.rtcMaxPort,
      logLevel: "warn",
    });
    this.workers.push(worker);
    worker.on("died", (err) => {
      this.log.error({ err, pid: worker.pid }, "mediasoup worker died; replacing it");
      this.workers.splice(this.workers.indexOf(worker), 1);
      void this.afterWorkerDied();
    });
    return worker;
  }

  /** Forgets the streams the dead worker took with it, then starts a replacement. */
  private async afterWorkerDied(): Promise<void> {
    if (this.closed) return;
    const lost: LostStream[] = [];
    for (const [key, s] of [...this.streams]) {
      if (s.router.closed || s.transport.closed) {
        this.drop(key);
        lost.push({ ...s.ref, endpointId: s.endpointId, streamId: s.streamId });
        continue;
      }
      for (const [key, worker] of [...s.pipeWorkers]) {
        if (worker.closed) {
          s.pipes.delete(key);
          s.pipeWorkers.delete(key);
        }
      }
      for (const [viewerId, view] of [...s.views]) if (view.transport.closed) s.views.delete(viewerId);
    }
    try {
      await this.addWorker();
    } catch (e) {
      this.log.error({ err: e }, "could not replace the mediasoup worker");
    }
    if (lost.length > 0) this.onStreamsLost?.(lost, true);
  }

  private worker(): types.Worker {
    const w = this.workers[this.next++ % this.workers.length];
    if (w === undefined) throw new Error("no mediasoup worker is running");
    return w;
  }

  private readonly routerWorkers = new WeakMap<types.Router, types.Worker>();

  private async createRouter(worker: types.Worker, mediaCodecs: types.RtpCodecCapability[]): Promise<types.Router> {
    const router = await worker.createRouter({ mediaCodecs });
    this.routerWorkers.set(router, worker);
    return router;
  }

  private workerOf(router: types.Router): types.Worker | undefined {
    return this.routerWorkers.get(router);
  }

  private transport(router: types.Router): Promise<types.WebRtcTransport> {
    return router.createWebRtcTransport({
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

  /**
   * Network indicators from mediasoup's stats: jitter and score of what each publisher sends
   * us, round-trip time and score of what each viewer receives. Score 0–10 → grade.
   */
  private async reportIndicators(): Promise<void> {
    const byConference = new Map<
      string,
      { ref: ConferenceRef; endpoints: Map<string, { jitter: number[]; rtt: number[]; score: number[] }> }
    >();
    const add = (ref: ConferenceRef, endpointId: string) => {
      const key = `${ref.appId}/${ref.conferenceId}`;
      const c = byConference.get(key)?.endpoints ?? new Map();
      byConference.set(key, { ref, endpoints: c });
      const e = c.get(endpointId) ?? { jitter: [], rtt: [], score: [] };
      c.set(endpointId, e);
      return e as { jitter: number[]; rtt: number[]; score: number[] };
    };
    try {
      for (const stream of this.streams.values()) {
        const pub = add(stream.ref, stream.endpointId);
        for (const p of stream.producers) {
          for (const s of await p.getStats()) {
            pub.jitter.push(s.jitter ?? 0);
            pub.score.push(s.score ?? 10);
            if (typeof s.roundTripTime === "number") pub.rtt.push(s.roundTripTime);
          }
        }
        for (const view of stream.views.values()) {
          const viewer = add(stream.ref, view.endpointId);
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
      this.log.debug({ err }, "media stats unavailable");
      return;
    }
    const mean = (xs: number[], fallback: number) =>
      xs.length === 0 ? fallback : xs.reduce((a, b) => a + b, 0) / xs.length;
    for (const { ref, endpoints } of byConference.values()) {
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
      this.onNetworkIndicators?.(ref, {
        averageNetworkQuality: Math.round(mean(all, 10) * 10) / 10,
        participantIndicatorMap,
      });
    }
  }

  /** Process ids of the running workers (operators and tests use them). */
  workerPids(): number[] {
    return this.workers.map((w) => w.pid);
  }

  private readonly pending = new Set<string>();

  hasStream(ref: ConferenceRef, streamId: string): boolean {
    const key = streamKey(ref, streamId);
    return this.streams.has(key) || this.pending.has(key);
  }

  /** Publishes a browser's sendonly offer; answers with the SDP to apply. */
  async publish(ref: ConferenceRef, endpointId: string, streamId: string, sdpOffer: string): Promise<string> {
    const offer = parseOffer(sdpOffer);
    const key = streamKey(ref, streamId);
    // Reserved before the first await, so a retried publish cannot race this one.
    if (this.hasStream(ref, streamId)) throw new StreamConflictError(streamId);
    this.pending.add(key);
    let router: types.Router | undefined;
    try {
      router = await this.createRouter(this.worker(), viewerRouterCodecs(offer));
      const transport = await this.transport(router);
      await transport.connect({
        dtlsParameters: { role: "client", fingerprints: [offer.fingerprint as types.DtlsFingerprint] },
      });
      const producers: types.Producer[] = [];
      const sections: AnswerSection[] = [];
      for (const media of offer.medias) {
        if (media.kind === "application" || !["sendonly", "sendrecv"].includes(media.direction)) {
          sections.push({ media, direction: "recvonly" });
          continue;
        }
        const produced = await this.produce(transport, media);
        if (produced === undefined)
          throw new SdpError(`m-line ${media.index} (${media.kind}) offers no codec the SFU supports`);
        producers.push(produced);
        sections.push({ media, direction: "recvonly", rtpParameters: produced.rtpParameters });
      }
      if (producers.length === 0) throw new SdpError("the offer sends no audio or video");
      this.streams.set(key, {
        ref,
        streamId,
        endpointId,
        router,
        pipes: new Map(),
        pipeWorkers: new Map(),
        transport,
        producers,
        views: new Map(),
      });
      // A publisher that goes away without unpublishing loses its stream like a dead worker.
      transport.on("dtlsstatechange", (state) => {
        if ((state === "failed" || state === "closed") && this.streams.get(key)?.transport === transport) {
          this.drop(key);
          // A failed handshake or connection is an unhealthy publisher; a closed one just left.
          this.onStreamsLost?.([{ ...ref, endpointId, streamId }], state === "failed");
        }
      });
      return writeAnswer(transport, sections);
    } catch (e) {
      router?.close();
      throw e;
    } finally {
      this.pending.delete(key);
    }
  }

  private async produce(transport: types.WebRtcTransport, media: OfferMedia): Promise<types.Producer | undefined> {
    for (const codec of media.codecs.filter(isSupportedCodec)) {
      try {
        return await transport.produce({
          kind: media.kind as types.MediaKind,
          rtpParameters: producerParameters(media, codec),
          keyFrameRequestDelay: KEY_FRAME_REQUEST_DELAY_MS,
        });
      } catch (e) {
        if ((e as Error).name !== "UnsupportedError" && (e as Error).name !== "TypeError") throw e;
      }
    }
    return undefined;
  }

  /** Whether a viewer offered every stream codec it receives on the stream router's payload type. */
  private static direct(stream: Published, offer: ReturnType<typeof parseOffer>): boolean {
    const kinds = new Set(offer.medias.map((m) => m.kind));
    return stream.producers
      .filter((p) => kinds.has(p.kind))
      .every((p) => {
        const codec = p.rtpParameters.codecs[0];
        return offer.medias.some((m) =>
          m.codecs.some(
            (c) =>
              c.payloadType === codec?.payloadType &&
              c.mimeType.toLowerCase() === codec?.mimeType.toLowerCase() &&
              isSupportedCodec(c) &&
              (c.mimeType.toLowerCase() !== "video/h264" ||
                (String(c.parameters["packetization-mode"]) === String(codec?.parameters?.["packetization-mode"]) &&
                  String(c.parameters["profile-level-id"]).toLowerCase() ===
                    String(codec?.parameters?.["profile-level-id"]).toLowerCase())),
          ),
        );
      });
  }

  /** The router a viewer with other payload types consumes from: the stream piped into it. */
  private pipeRouter(stream: Published, offer: ReturnType<typeof parseOffer>): Promise<types.Router> {
    const codecs = viewerRouterCodecs(offer);
    const kinds = new Set(offer.medias.map((m) => m.kind));
    const key = JSON.stringify([
      [...kinds].sort(),
      codecs.map((c) => `${c.mimeType}/${c.preferredPayloadType}/${JSON.stringify(c.parameters)}`),
    ]);
    const existing = stream.pipes.get(key);
    if (existing !== undefined) return existing;
    // A worker may hold one copy of a producer: skip the stream's worker and other pipes' workers.
    const busy = new Set([this.workerOf(stream.router), ...stream.pipeWorkers.values()]);
    const free = this.workers.find((w) => !busy.has(w));
    if (free === undefined) {
      return Promise.reject(
        new SdpError(
          "the viewer's payload types differ from the publisher's and every worker already carries this stream; add MEDIA_WORKERS",
        ),
      );
    }
    stream.pipeWorkers.set(key, free);
    const made = (async () => {
      const router = await this.createRouter(free, codecs);
      try {
        // Only the kinds the viewer receives: the pipe router has only the viewer's codecs.
        for (const p of stream.producers.filter((p) => kinds.has(p.kind))) {
          await stream.router.pipeToRouter({ producerId: p.id, router });
        }
        return router;
      } catch (e) {
        router.close();
        if ((e as Error).name === "UnsupportedError")
          throw new SdpError(`the viewer cannot receive this stream: ${(e as Error).message}`);
        throw e;
      }
    })();
    stream.pipes.set(key, made);
    made.catch(() => {
      stream.pipes.delete(key);
      stream.pipeWorkers.delete(key);
    });
    return made;
  }

  /**
   * Consumers are created paused and resumed, with a key-frame request, only once the
   * viewer's DTLS is up (as mediasoup-demo does): a key frame sent before then is lost, and
   * the viewer would wait for its own retry (~1 s) — every viewer of a batch joining at once.
   */
  private static startSending(consumers: readonly types.Consumer[]): void {
    for (const c of consumers) {
      if (c.closed) continue;
      c.resume()
        .then(() => (c.kind === "video" && !c.closed ? c.requestKeyFrame() : undefined))
        .catch(() => undefined); // closed meanwhile
    }
  }

  /** Views a published stream with a browser's recvonly offer; answers with the SDP to apply. */
  async view(
    ref: ConferenceRef,
    streamId: string,
    viewerId: string,
    endpointId: string,
    owner: string | undefined,
    sdpOffer: string,
  ): Promise<string> {
    const stream = this.streams.get(streamKey(ref, streamId));
    if (stream === undefined) throw new SdpError(`stream ${streamId} is not published`);
    const previous = stream.views.get(viewerId);
    if (previous !== undefined && previous.owner !== undefined && previous.owner !== owner) {
      throw new SdpError(`viewerId ${viewerId} is another viewer's`);
    }
    const offer = parseOffer(sdpOffer);
    const router = Media.direct(stream, offer) ? stream.router : await this.pipeRouter(stream, offer);
    const transport = await this.transport(router);
    try {
      await transport.connect({
        dtlsParameters: { role: "client", fingerprints: [offer.fingerprint as types.DtlsFingerprint] },
      });
      const sections: AnswerSection[] = [];
      const consumers: types.Consumer[] = [];
      const used = new Set<string>();
      for (const media of offer.medias) {
        const producer = stream.producers.find((p) => p.kind === media.kind && !used.has(p.id));
        if (
          media.kind === "application" ||
          producer === undefined ||
          !["recvonly", "sendrecv"].includes(media.direction)
        ) {
          sections.push({ media, direction: "sendonly" });
          continue;
        }
        used.add(producer.id);
        const rtpCapabilities = viewerCapabilities(media, router.rtpCapabilities);
        if (!router.canConsume({ producerId: producer.id, rtpCapabilities })) {
          sections.push({ media, direction: "sendonly" });
          continue;
        }
        const consumer = await transport.consume({ producerId: producer.id, rtpCapabilities, paused: true });
        consumers.push(consumer);
        sections.push({
          media,
          direction: "sendonly",
          rtpParameters: { ...consumer.rtpParameters, mid: media.mid },
          msid: `${streamId} ${consumer.id}`,
        });
      }
      if (consumers.length === 0) throw new SdpError("the offer receives none of the stream's media kinds");
      stream.views.get(viewerId)?.transport.close();
      stream.views.set(viewerId, { transport, consumers, endpointId, owner });
      // A viewer that goes away without stopping frees its transport.
      transport.on("dtlsstatechange", (state) => {
        if (state === "connected") Media.startSending(consumers);
        if ((state === "failed" || state === "closed") && stream.views.get(viewerId)?.transport === transport) {
          transport.close();
          stream.views.delete(viewerId);
        }
      });
      return writeAnswer(transport, sections);
    } catch (e) {
      transport.close();
      if ((e as Error).name === "UnsupportedError")
        throw new SdpError(`the viewer cannot receive this stream: ${(e as Error).message}`);
      throw e;
    }
  }

  /**
   * Stops a view the caller may stop (its own, or any for SERVICE: owner undefined). Clients
   * sometimes send their endpoint id as viewerId: an unknown viewerId stops the caller's own
   * views of the stream instead.
   */
  stopView(ref: ConferenceRef, streamId: string, viewerId: string, owner: string | undefined): number {
    const stream = this.streams.get(streamKey(ref, streamId));
    if (stream === undefined) return 0;
    const mayStop = (v: View) => owner === undefined || v.owner === owner;
    const named = stream.views.get(viewerId);
    const targets =
      named !== undefined
        ? [[viewerId, named] as const]
        : owner === undefined
          ? []
          : [...stream.views].filter(([, v]) => v.owner === owner);
    let stopped = 0;
    for (const [id, view] of targets) {
      if (!mayStop(view)) continue;
      view.transport.close();
      stream.views.delete(id);
      stopped++;
    }
    return stopped;
  }

  unpublish(ref: ConferenceRef, streamId: string): void {
    this.drop(streamKey(ref, streamId));
  }

  /** Closes a published stream by its key, and everything that consumed it. */
  private drop(key: string): void {
    const stream = this.streams.get(key);
    if (stream === undefined) return;
    // The stream's router and its pipes take every transport, producer and consumer along.
    for (const pipe of stream.pipes.values())
      void pipe.then(
        (r) => r.close(),
        () => undefined,
      );
    stream.router.close();
    this.streams.delete(key);
  }

  async setMaxIncomingBitrate(ref: ConferenceRef, streamId: string, bitrate: number): Promise<void> {
    const stream = this.streams.get(streamKey(ref, streamId));
    if (stream !== undefined && bitrate > 0) await stream.transport.setMaxIncomingBitrate(bitrate);
  }

  /** Closes everything an endpoint published or viewed (leave, unregister, expiry). */
  closeEndpoint(ref: ConferenceRef, endpointId: string): string[] {
    const unpublished: string[] = [];
    for (const [key, stream] of this.streams) {
      if (!Media.sameConference(stream.ref, ref)) continue;
      for (const [viewerId, view] of stream.views) {
        if (view.endpointId === endpointId) {
          view.transport.close();
          stream.views.delete(viewerId);
        }
      }
      if (stream.endpointId === endpointId) {
        this.drop(key);
        unpublished.push(stream.streamId);
      }
    }
    return unpublished;
  }

  closeConference(ref: ConferenceRef): void {
    for (const [key, stream] of this.streams) if (Media.sameConference(stream.ref, ref)) this.drop(key);
  }

  private static sameConference(a: ConferenceRef, b: ConferenceRef): boolean {
    return a.appId === b.appId && a.conferenceId === b.conferenceId;
  }

  close(): void {
    this.closed = true;
    if (this.statsTimer !== undefined) clearInterval(this.statsTimer);
    for (const w of this.workers) w.close();
  }

  /** A generated stream id. */
  static newStreamId(): string {
    return randomUUID();
  }
}

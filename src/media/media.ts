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
import { createRequire } from "node:module";
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

/** The signature of view routers on the publisher's own payload types. */
const PUBLISHER_SIGNATURE = "publisher";

/** How many more views than the least-loaded worker a worker that has the stream may take. */
const VIEW_SPREAD_SLACK = 2;

/** One endpoint's network figures, as ConferenceNetworkIndicatorUpdatedEvent carries them. */
export interface EndpointIndicator {
  averageJitter: number;
  averageRtt: number;
  averageNetworkQuality: number;
  grade: "OPTIMAL" | "SUBOPTIMAL" | "BAD";
}

/**
 * A router viewers of a stream consume from: the stream's own, or one the stream is piped
 * into — on another worker, to spread a big audience over every core, or on a viewer's
 * payload types. Its producers are the stream's as that router knows them.
 */
interface ViewRouter {
  readonly worker: types.Worker;
  /** "publisher", or the viewer payload types it was made for (see routerSignature). */
  readonly signature: string;
  readonly ready: Promise<{ router: types.Router; producers: types.Producer[] }>;
}

interface Published {
  readonly ref: ConferenceRef;
  readonly streamId: string;
  readonly endpointId: string;
  /** The stream's own router, on the publisher's payload types. */
  readonly router: types.Router;
  /** The codecs that router was made with (clones on other workers take them too). */
  readonly codecs: types.RtpCodecCapability[];
  readonly viewRouters: ViewRouter[];
  readonly transport: types.WebRtcTransport;
  readonly producers: types.Producer[];
  readonly views: Map<string, View>;
}

interface View {
  readonly worker: types.Worker;
  readonly transport: types.WebRtcTransport;
  /** The worker's latest bandwidth estimate for this viewer (from transport-cc feedback). */
  bwe: BandwidthEstimate | undefined;
  readonly consumers: types.Consumer[];
  readonly endpointId: string;
  /** Who may stop or replace it (the viewer's user); undefined for SERVICE callers. */
  readonly owner: string | undefined;
}

/** What mediasoup's "bwe" trace says of a viewer's downlink, bits per second. */
export interface BandwidthEstimate {
  readonly availableBitrate: number;
  readonly desiredBitrate: number;
}

export interface ViewDescription {
  readonly bwe: BandwidthEstimate | undefined;
  readonly workerPid: number;
  readonly consumers: {
    kind: types.MediaKind;
    type: types.ConsumerType;
    rtpParameters: types.RtpParameters;
    currentLayers: types.ConsumerLayers | undefined;
    stats: types.ConsumerStat[];
  }[];
  readonly transport: types.WebRtcTransportStat | undefined;
}

/** Layers were asked of a stream published with one layer. */
export class NotSimulcastError extends Error {
  constructor(streamId: string) {
    super(`stream ${streamId} is not simulcast: it has a single layer`);
    this.name = "NotSimulcastError";
  }
}

/** A stream id that is published, or being published, already. */
export class StreamConflictError extends Error {
  constructor(streamId: string) {
    super(`stream ${streamId} is already published`);
    this.name = "StreamConflictError";
  }
}

/**
 * Where mediasoup looks for its worker, and scripts/build-mediasoup-worker.sh links the one
 * it built (from the package's source with our patch) out of its cache.
 */
export function defaultWorkerBin(): string {
  const lib = createRequire(import.meta.url).resolve("mediasoup"); // <package>/node/lib/index.js
  return path.join(path.dirname(lib), "..", "..", "worker", "out", "Release", "mediasoup-worker");
}

export class Media {
  private readonly workers: types.Worker[] = [];
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

  /** Each worker's WebRtcServer, when settings.rtcPort is set. */
  private readonly webRtcServers = new Map<types.Worker, types.WebRtcServer>();

  private async addWorker(): Promise<types.Worker> {
    const worker = await this.mediasoup.createWorker({
      rtcMinPort: this.settings.rtcMinPort,
      rtcMaxPort: this.settings.rtcMaxPort,
      logLevel: "warn",
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
      s.viewRouters.splice(0, s.viewRouters.length, ...s.viewRouters.filter((r) => !r.worker.closed));
      for (const [viewerId, view] of [...s.views]) if (view.transport.closed) s.views.delete(viewerId);
    }
    try {
      await this.addWorker();
    } catch (e) {
      this.log.error({ err: e }, "could not replace the mediasoup worker");
    }
    if (lost.length > 0) this.onStreamsLost?.(lost, true);
  }

  /** Views and publishes each worker carries (reserved before they exist, released on close). */
  private readonly load = new Map<types.Worker, number>();

  private addLoad(worker: types.Worker, delta: number): void {
    this.load.set(worker, (this.load.get(worker) ?? 0) + delta);
  }

  /** The least-loaded worker (publishers and viewers alike), reserved for one more endpoint. */
  private reserveWorker(): types.Worker {
    const w = this.leastLoaded(this.workers);
    this.addLoad(w, 1);
    return w;
  }

  private leastLoaded(workers: readonly types.Worker[]): types.Worker {
    let best: types.Worker | undefined;
    for (const w of workers) if (best === undefined || (this.load.get(w) ?? 0) < (this.load.get(best) ?? 0)) best = w;
    if (best === undefined) throw new Error("no mediasoup worker is running");
    return best;
  }

  private transport(router: types.Router, worker: types.Worker): Promise<types.WebRtcTransport> {
    const webRtcServer = this.webRtcServers.get(worker);
    if (webRtcServer !== undefined) {
      return router.createWebRtcTransport({ webRtcServer, enableUdp: true, enableTcp: true, preferUdp: true });
    }
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

  /** What a view sends, for operators and tests: its worker, consumers and transport figures. */
  async describeView(ref: ConferenceRef, streamId: string, viewerId: string): Promise<ViewDescription | undefined> {
    const view = this.streams.get(streamKey(ref, streamId))?.views.get(viewerId);
    if (view === undefined) return undefined;
    const [transport] = await view.transport.getStats();
    return {
      bwe: view.bwe,
      workerPid: view.worker.pid,
      consumers: await Promise.all(
        view.consumers.map(async (c) => ({
          kind: c.kind,
          type: c.type,
          rtpParameters: c.rtpParameters,
          currentLayers: c.currentLayers,
          stats: await c.getStats(),
        })),
      ),
      transport,
    };
  }

  /** How many viewers' consumers each worker (by pid) carries. */
  consumersPerWorker(): Map<number, number> {
    const counts = new Map(this.workers.map((w) => [w.pid, 0]));
    for (const stream of this.streams.values()) {
      for (const view of stream.views.values()) {
        counts.set(view.worker.pid, (counts.get(view.worker.pid) ?? 0) + view.consumers.length);
      }
    }
    return counts;
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
    const worker = this.reserveWorker();
    const codecs = viewerRouterCodecs(offer);
    try {
      router = await worker.createRouter({ mediaCodecs: codecs });
      router.observer.once("close", () => this.addLoad(worker, -1));
      const transport = await this.transport(router, worker);
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
        codecs,
        viewRouters: [{ worker, signature: PUBLISHER_SIGNATURE, ready: Promise.resolve({ router, producers }) }],
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
      if (router === undefined) this.addLoad(worker, -1);
      else router.close();
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

  /**
   * The router a viewer consumes from, on the least-loaded worker: a router of the stream on
   * the viewer's payload types (the publisher's, or its own) there, piped in if need be. A
   * worker that carries an existing one is kept unless it is VIEW_SPREAD_SLACK views busier
   * than the least-loaded, so small audiences are not piped around. The worker is reserved
   * for the view; the caller releases it.
   */
  private viewRouter(stream: Published, offer: ReturnType<typeof parseOffer>): ViewRouter {
    const direct = Media.direct(stream, offer);
    const kinds = new Set(offer.medias.map((m) => m.kind));
    const codecs = direct ? stream.codecs : viewerRouterCodecs(offer);
    const signature = direct
      ? PUBLISHER_SIGNATURE
      : JSON.stringify([
          [...kinds].sort(),
          codecs.map((c) => `${c.mimeType}/${c.preferredPayloadType}/${JSON.stringify(c.parameters)}`),
        ]);
    const existing = stream.viewRouters.filter((r) => r.signature === signature && !r.worker.closed);
    const least = this.leastLoaded(this.workers);
    const held = existing.length > 0 ? this.leastLoaded(existing.map((r) => r.worker)) : undefined;
    const worker =
      held !== undefined && (this.load.get(held) ?? 0) <= (this.load.get(least) ?? 0) + VIEW_SPREAD_SLACK
        ? held
        : least;
    this.addLoad(worker, 1);
    const found = existing.find((r) => r.worker === worker);
    if (found !== undefined) return found;
    // Piped producers take new ids: mediasoup keeps a producer id unique per worker.
    const producers = stream.producers.filter((p) => direct || kinds.has(p.kind));
    const made: ViewRouter = { worker, signature, ready: this.pipeStream(stream, producers, worker, codecs) };
    stream.viewRouters.push(made);
    made.ready.catch(() => {
      const i = stream.viewRouters.indexOf(made);
      if (i >= 0) stream.viewRouters.splice(i, 1);
    });
    return made;
  }

  /** A router on `worker` with `codecs`, fed the stream's producers through a pipe transport pair. */
  private async pipeStream(
    stream: Published,
    producers: readonly types.Producer[],
    worker: types.Worker,
    codecs: types.RtpCodecCapability[],
  ): Promise<{ router: types.Router; producers: types.Producer[] }> {
    const router = await worker.createRouter({ mediaCodecs: codecs });
    try {
      const listenIp = { ip: "127.0.0.1" };
      const [from, to] = await Promise.all([
        stream.router.createPipeTransport({ listenIp, enableRtx: true }),
        router.createPipeTransport({ listenIp, enableRtx: true }),
      ]);
      // The pipe goes when either router does.
      router.observer.once("close", () => from.close());
      await Promise.all([
        from.connect({ ip: to.tuple.localIp, port: to.tuple.localPort }),
        to.connect({ ip: from.tuple.localIp, port: from.tuple.localPort }),
      ]);
      const piped: types.Producer[] = [];
      for (const p of producers) {
        const consumer = await from.consume({ producerId: p.id });
        const producer = await to.produce({
          kind: consumer.kind,
          rtpParameters: consumer.rtpParameters,
          paused: consumer.producerPaused,
          // No delay of its own: its requests reach the stream's producer, which coalesces them
          // with every other worker's; two delays in series would push some viewers a key frame on.
        });
        consumer.observer.once("close", () => producer.close());
        consumer.on("producerpause", () => void producer.pause());
        consumer.on("producerresume", () => void producer.resume());
        piped.push(producer);
      }
      return { router, producers: piped };
    } catch (e) {
      router.close();
      if ((e as Error).name === "UnsupportedError")
        throw new SdpError(`the viewer cannot receive this stream: ${(e as Error).message}`);
      throw e;
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
    const placed = this.viewRouter(stream, offer);
    let transport: types.WebRtcTransport;
    let router: types.Router;
    let producers: types.Producer[];
    try {
      ({ router, producers } = await placed.ready);
      transport = await this.transport(router, placed.worker);
    } catch (e) {
      this.addLoad(placed.worker, -1);
      throw e;
    }
    transport.observer.once("close", () => this.addLoad(placed.worker, -1));
    // Not awaited before consuming (one round trip to the worker less); awaited before answering.
    const connected = transport.connect({
      dtlsParameters: { role: "client", fingerprints: [offer.fingerprint as types.DtlsFingerprint] },
    });
    connected.catch(() => undefined); // awaited below, or the transport closed on another error
    try {
      const sections: AnswerSection[] = [];
      const consumers: types.Consumer[] = [];
      const used = new Set<string>();
      for (const media of offer.medias) {
        const producer = producers.find((p) => p.kind === media.kind && !used.has(p.id));
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
        // Not paused: a consumer sends nothing before the viewer's DTLS is up, and the worker
        // asks for a key frame the moment it is (Consumer::TransportConnected) — resuming from
        // here on the "connected" event would add two round trips to Node to every first frame.
        const consumer = await transport.consume({ producerId: producer.id, rtpCapabilities });
        consumers.push(consumer);
        sections.push({
          media,
          direction: "sendonly",
          rtpParameters: { ...consumer.rtpParameters, mid: media.mid },
          msid: `${streamId} ${consumer.id}`,
        });
      }
      if (consumers.length === 0) throw new SdpError("the offer receives none of the stream's media kinds");
      await connected;
      stream.views.get(viewerId)?.transport.close();
      const view: View = { worker: placed.worker, transport, consumers, endpointId, owner, bwe: undefined };
      stream.views.set(viewerId, view);
      // Bandwidth estimates exist once the viewer sends transport-cc feedback (see sdp-bridge);
      // not awaited: the answer need not wait for one more round trip to the worker.
      transport.enableTraceEvent(["bwe"]).catch(() => undefined); // closed meanwhile
      transport.on("trace", (trace) => {
        if (trace.type !== "bwe") return;
        const info = trace.info as { availableBitrate?: number; desiredBitrate?: number };
        view.bwe = { availableBitrate: info.availableBitrate ?? 0, desiredBitrate: info.desiredBitrate ?? 0 };
      });
      // A viewer that goes away without stopping frees its transport.
      transport.on("dtlsstatechange", (state) => {
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

  /**
   * Sets the simulcast layers a view prefers: its consumer climbs up to them as the viewer's
   * estimated bandwidth allows. Undefined when there is no such view the caller may change;
   * NotSimulcastError when the stream has one layer only.
   */
  async setViewLayers(
    ref: ConferenceRef,
    streamId: string,
    viewerId: string,
    owner: string | undefined,
    layers: types.ConsumerLayers,
  ): Promise<{ preferred: types.ConsumerLayers; current: types.ConsumerLayers | undefined } | undefined> {
    const view = this.streams.get(streamKey(ref, streamId))?.views.get(viewerId);
    if (view === undefined || (owner !== undefined && view.owner !== owner)) return undefined;
    const consumer = view.consumers.find((c) => c.type === "simulcast" || c.type === "svc");
    if (consumer === undefined) throw new NotSimulcastError(streamId);
    await consumer.setPreferredLayers(layers);
    const preferred = consumer.preferredLayers ?? layers;
    return { preferred, current: consumer.currentLayers };
  }

  unpublish(ref: ConferenceRef, streamId: string): void {
    this.drop(streamKey(ref, streamId));
  }

  /** Closes a published stream by its key, and everything that consumed it. */
  private drop(key: string): void {
    const stream = this.streams.get(key);
    if (stream === undefined) return;
    // The stream's routers take every transport, producer and consumer along.
    for (const r of stream.viewRouters)
      void r.ready.then(
        ({ router }) => router.close(),
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

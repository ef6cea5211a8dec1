/**
 * One conference's media, in the shape of mediasoup-demo's Room: its published streams by id,
 * each with its views by viewer id, and the routers viewers consume from. Each published
 * stream gets a router whose codecs use the publisher's payload types (see sdp-bridge.ts), so a
 * viewer offering the same — any other libwebrtc browser — consumes from it directly; a viewer
 * with other payload types (Firefox watching Chrome) gets the stream piped into a router on its
 * own. Closing a router or transport cascades to its producers and consumers (mediasoup's own
 * events keep the maps in step); publishes are queued so that two never race.
 */
import type { types } from "mediasoup";
import {
  type ConferenceRef,
  type LostStream,
  NotSimulcastError,
  type PublishDescription,
  StreamConflictError,
  type ViewDescription,
} from "./media-types.js";
import {
  type AnswerSection,
  isSupportedCodec,
  type OfferMedia,
  type ParsedOffer,
  parseOffer,
  producerParameters,
  SdpError,
  viewerCapabilities,
  viewerRouterCodecs,
  viewerSendCapKbps,
  writeAnswer,
} from "./sdp-bridge.js";
import { PUBLISHER_SIGNATURE, type Published, placeView, type View } from "./stream-routers.js";
import type { WorkerPool } from "./worker-pool.js";

/**
 * Key-frame requests for a producer are coalesced this long after one was sent: libwebrtc
 * encoders ignore requests within 300 ms of the last one, and mediasoup retries an ignored
 * one only after a second, so viewers joining just after another would wait over a second.
 * Past this delay one more request goes out and is honoured.
 */
const KEY_FRAME_REQUEST_DELAY_MS = 350;

export class ConferenceMedia {
  /** Published streams by stream id. */
  readonly streams = new Map<string, Published>();
  /** Publishes run one at a time (a retried publish waits for the first, and conflicts). */
  private queue: Promise<unknown> = Promise.resolve();
  private queued = 0;

  constructor(
    readonly ref: ConferenceRef,
    private readonly pool: WorkerPool,
    /** Told when a stream goes without an unpublish: its publisher went away, or its worker died. */
    private readonly onStreamLost: (lost: LostStream, publisherSick: boolean) => void,
  ) {}

  /** Nothing published and nothing about to be: the conference's media can be forgotten. */
  get idle(): boolean {
    return this.streams.size === 0 && this.queued === 0;
  }

  /** Publishes a browser's sendonly offer; answers with the SDP to apply. */
  publish(endpointId: string, streamId: string, sdpOffer: string): Promise<string> {
    const offer = parseOffer(sdpOffer);
    this.queued++;
    const done = this.queue.then(() => this.publishNow(offer, endpointId, streamId)).finally(() => this.queued--);
    this.queue = done.catch(() => undefined);
    return done;
  }

  private async publishNow(offer: ParsedOffer, endpointId: string, streamId: string): Promise<string> {
    if (this.streams.has(streamId)) throw new StreamConflictError(streamId);
    let router: types.Router | undefined;
    const worker = this.pool.reserve();
    const codecs = viewerRouterCodecs(offer);
    try {
      router = await worker.createRouter({ mediaCodecs: codecs });
      router.observer.once("close", () => this.pool.addLoad(worker, -1));
      const transport = await this.pool.webRtcTransport(router, worker);
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
        const produced = await ConferenceMedia.produce(transport, media);
        if (produced === undefined)
          throw new SdpError(`m-line ${media.index} (${media.kind}) offers no codec the SFU supports`);
        producers.push(produced);
        sections.push({ media, direction: "recvonly", rtpParameters: produced.rtpParameters });
      }
      if (producers.length === 0) throw new SdpError("the offer sends no audio or video");
      const answer = writeAnswer(transport, sections);
      const stream: Published = {
        streamId,
        endpointId,
        router,
        codecs,
        viewRouters: [{ worker, signature: PUBLISHER_SIGNATURE, ready: Promise.resolve({ router, producers }) }],
        transport,
        producers,
        views: new Map(),
      };
      this.streams.set(streamId, stream);
      // Closed while still published (drop() forgets a stream first): its worker died. A
      // worker closed at shutdown closes its routers too, and that loses no stream.
      router.observer.once("close", () => {
        if (this.streams.get(streamId) !== stream || !worker.died) return;
        this.streams.delete(streamId);
        this.onStreamLost({ ...this.ref, endpointId, streamId }, true);
      });
      // A publisher that goes away without unpublishing loses its stream like a dead worker.
      transport.on("dtlsstatechange", (state) => {
        if ((state === "failed" || state === "closed") && this.streams.get(streamId) === stream) {
          this.drop(stream);
          // A failed handshake or connection is an unhealthy publisher; a closed one just left.
          this.onStreamLost({ ...this.ref, endpointId, streamId }, state === "failed");
        }
      });
      return answer;
    } catch (e) {
      if (router === undefined) this.pool.addLoad(worker, -1);
      else router.close();
      throw e;
    }
  }

  private static async produce(
    transport: types.WebRtcTransport,
    media: OfferMedia,
  ): Promise<types.Producer | undefined> {
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

  /** Views a published stream with a browser's recvonly offer; answers with the SDP to apply. */
  async view(
    streamId: string,
    viewerId: string,
    endpointId: string,
    owner: string | undefined,
    sdpOffer: string,
  ): Promise<string> {
    const stream = this.streams.get(streamId);
    if (stream === undefined) throw new SdpError(`stream ${streamId} is not published`);
    const previous = stream.views.get(viewerId);
    if (previous !== undefined && previous.owner !== undefined && previous.owner !== owner) {
      throw new SdpError(`viewerId ${viewerId} is another viewer's`);
    }
    const offer = parseOffer(sdpOffer);
    const placed = placeView(this.pool, stream, offer);
    let transport: types.WebRtcTransport;
    let router: types.Router;
    let producers: types.Producer[];
    try {
      ({ router, producers } = await placed.ready);
      transport = await this.pool.webRtcTransport(router, placed.worker);
    } catch (e) {
      this.pool.addLoad(placed.worker, -1);
      throw e;
    }
    transport.observer.once("close", () => this.pool.addLoad(placed.worker, -1));
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
        const rtpCapabilities = viewerCapabilities(media, router.rtpCapabilities, this.pool.settings.viewerBwe);
        if (!router.canConsume({ producerId: producer.id, rtpCapabilities })) {
          sections.push({ media, direction: "sendonly" });
          continue;
        }
        // A single-layer stream's consumer starts unpaused: it sends nothing before the viewer's
        // DTLS is up, and the worker asks for a key frame the moment it is
        // (Consumer::TransportConnected) — resuming from Node on "connected" costs the first
        // frame two more round trips. A simulcast consumer told of the connection before the
        // transport's congestion controller is (Transport::Connected's order) stays on the
        // layer of the initial estimate (tested: it never climbed to the top layer), so it
        // starts paused and is resumed once connected, as mediasoup-demo does.
        const consumer = await transport.consume({
          producerId: producer.id,
          rtpCapabilities,
          paused: producer.type !== "simple",
        });
        consumers.push(consumer);
        const feedbackMs = this.pool.settings.viewerFeedbackMs;
        sections.push({
          media,
          direction: "sendonly",
          rtpParameters: { ...consumer.rtpParameters, mid: media.mid },
          msid: `${streamId} ${consumer.id}`,
          // The viewer sends nothing on the m-lines it views: capping that sets its feedback rate.
          ...(feedbackMs > 0 ? { maxSendKbps: viewerSendCapKbps(feedbackMs) } : {}),
        });
      }
      if (consumers.length === 0) throw new SdpError("the offer receives none of the stream's media kinds");
      await connected;
      // Its router went meanwhile (the stream was unpublished, or its worker died).
      if (transport.closed) throw new SdpError(`stream ${streamId} was unpublished while the view was set up`);
      stream.views.get(viewerId)?.transport.close();
      const view: View = { worker: placed.worker, transport, consumers, endpointId, owner };
      stream.views.set(viewerId, view);
      // Closed by a stop, a replacing view, its router or its viewer leaving: forgotten.
      transport.observer.once("close", () => {
        if (stream.views.get(viewerId) === view) stream.views.delete(viewerId);
      });
      // A viewer that goes away without stopping frees its transport.
      transport.on("dtlsstatechange", (state) => {
        if (state === "connected") ConferenceMedia.resumePaused(consumers);
        if (state === "failed" || state === "closed") transport.close();
      });
      return writeAnswer(transport, sections);
    } catch (e) {
      transport.close();
      if ((e as Error).name === "UnsupportedError")
        throw new SdpError(`the viewer cannot receive this stream: ${(e as Error).message}`);
      throw e;
    }
  }

  /** Resumes the consumers created paused, each with a key-frame request. */
  private static resumePaused(consumers: readonly types.Consumer[]): void {
    for (const c of consumers) {
      if (!c.paused || c.closed) continue;
      c.resume()
        .then(() => (c.kind === "video" && !c.closed ? c.requestKeyFrame() : undefined))
        .catch(() => undefined); // closed meanwhile
    }
  }

  /**
   * Stops a view the caller may stop (its own, or any for SERVICE: owner undefined). Clients
   * sometimes send their endpoint id as viewerId: an unknown viewerId stops the caller's own
   * views of the stream instead.
   */
  stopView(streamId: string, viewerId: string, owner: string | undefined): number {
    const stream = this.streams.get(streamId);
    if (stream === undefined) return 0;
    const named = stream.views.get(viewerId);
    const targets =
      named !== undefined
        ? [named]
        : owner === undefined
          ? []
          : [...stream.views.values()].filter((v) => v.owner === owner);
    let stopped = 0;
    for (const view of targets) {
      if (owner !== undefined && view.owner !== owner) continue;
      view.transport.close();
      stopped++;
    }
    return stopped;
  }

  /** A view the caller may change (its own, or any for SERVICE). */
  private changeableView(streamId: string, viewerId: string, owner: string | undefined): View | undefined {
    const view = this.streams.get(streamId)?.views.get(viewerId);
    return view === undefined || (owner !== undefined && view.owner !== owner) ? undefined : view;
  }

  /**
   * Sets the simulcast layers a view prefers: its consumer climbs up to them as the viewer's
   * estimated bandwidth allows. Undefined when there is no such view the caller may change;
   * NotSimulcastError when the stream has one layer only.
   */
  async setViewLayers(
    streamId: string,
    viewerId: string,
    owner: string | undefined,
    layers: types.ConsumerLayers,
  ): Promise<{ preferred: types.ConsumerLayers; current: types.ConsumerLayers | undefined } | undefined> {
    const view = this.changeableView(streamId, viewerId, owner);
    if (view === undefined) return undefined;
    const consumer = view.consumers.find((c) => c.type === "simulcast" || c.type === "svc");
    if (consumer === undefined) throw new NotSimulcastError(streamId);
    await consumer.setPreferredLayers(layers);
    return { preferred: consumer.preferredLayers ?? layers, current: consumer.currentLayers };
  }

  unpublish(streamId: string): void {
    const stream = this.streams.get(streamId);
    if (stream !== undefined) this.drop(stream);
  }

  /** Closes a published stream: its router takes every pipe, view router, transport and consumer along. */
  private drop(stream: Published): void {
    this.streams.delete(stream.streamId);
    stream.router.close();
  }

  async setMaxIncomingBitrate(streamId: string, bitrate: number): Promise<void> {
    const stream = this.streams.get(streamId);
    if (stream !== undefined && bitrate > 0) await stream.transport.setMaxIncomingBitrate(bitrate);
  }

  /** Closes everything an endpoint published or viewed (leave, unregister, expiry); answers its streams. */
  closeEndpoint(endpointId: string): string[] {
    const unpublished: string[] = [];
    for (const stream of [...this.streams.values()]) {
      for (const view of [...stream.views.values()]) if (view.endpointId === endpointId) view.transport.close();
      if (stream.endpointId === endpointId) {
        this.drop(stream);
        unpublished.push(stream.streamId);
      }
    }
    return unpublished;
  }

  close(): void {
    for (const stream of [...this.streams.values()]) this.drop(stream);
  }

  /** What a view sends, for operators and tests: its worker, consumers and transport figures. */
  async describeView(streamId: string, viewerId: string): Promise<ViewDescription | undefined> {
    const view = this.streams.get(streamId)?.views.get(viewerId);
    if (view === undefined) return undefined;
    const [transport] = await view.transport.getStats();
    // Present once the viewer sends transport-cc feedback (see sdp-bridge). Read when asked,
    // not followed with mediasoup's per-second "bwe" trace: a message a second per viewer
    // from the worker to Node, for a figure only operators and tests look at.
    const available = transport?.availableOutgoingBitrate;
    return {
      bwe: available === undefined ? undefined : { availableBitrate: available },
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
      readInBatches: readInBatches(transport),
    };
  }

  /** What a stream's publisher sends in on, for operators and tests. */
  async describePublish(streamId: string): Promise<PublishDescription | undefined> {
    const stream = this.streams.get(streamId);
    if (stream === undefined) return undefined;
    const [transport] = await stream.transport.getStats();
    return { transport, readInBatches: readInBatches(transport) };
  }
}

/** Added to a transport's stats by our worker patch (WebRtcTransport::FillJsonStats). */
function readInBatches(transport: types.WebRtcTransportStat | undefined): boolean {
  return (transport as { readInBatches?: boolean } | undefined)?.readInBatches === true;
}

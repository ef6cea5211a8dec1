/**
 * Where a viewer of a published stream consumes from. A stream's own router is on the
 * publisher's payload types and worker; a big audience is spread over every worker, and a
 * viewer with other payload types gets a router on its own, each fed the stream through a
 * pipe transport pair (mediasoup-demo pipes producers between routers the same way).
 */
import type { types } from "mediasoup";
import { isSupportedCodec, type ParsedOffer, SdpError, viewerRouterCodecs } from "./sdp-bridge.js";
import type { WorkerPool } from "./worker-pool.js";

/** The signature of view routers on the publisher's own payload types. */
export const PUBLISHER_SIGNATURE = "publisher";

/** How many more views than the least-loaded worker a worker that has the stream may take. */
const VIEW_SPREAD_SLACK = 2;

/**
 * A router viewers of a stream consume from: the stream's own, or one the stream is piped
 * into — on another worker, to spread a big audience over every core, or on a viewer's
 * payload types. Its producers are the stream's as that router knows them.
 */
export interface ViewRouter {
  readonly worker: types.Worker;
  /** "publisher", or the viewer payload types it was made for (see placeView). */
  readonly signature: string;
  readonly ready: Promise<{ router: types.Router; producers: types.Producer[] }>;
}

export interface Published {
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

export interface View {
  readonly worker: types.Worker;
  readonly transport: types.WebRtcTransport;
  readonly consumers: types.Consumer[];
  readonly endpointId: string;
  /** Who may stop or replace it (the viewer's user); undefined for SERVICE callers. */
  readonly owner: string | undefined;
}

/** Whether a viewer offered every stream codec it receives on the stream router's payload type. */
function isDirect(stream: Published, offer: ParsedOffer): boolean {
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
export function placeView(pool: WorkerPool, stream: Published, offer: ParsedOffer): ViewRouter {
  const direct = isDirect(stream, offer);
  const kinds = new Set(offer.medias.map((m) => m.kind));
  const codecs = direct ? stream.codecs : viewerRouterCodecs(offer);
  const signature = direct
    ? PUBLISHER_SIGNATURE
    : JSON.stringify([
        [...kinds].sort(),
        codecs.map((c) => `${c.mimeType}/${c.preferredPayloadType}/${JSON.stringify(c.parameters)}`),
      ]);
  const existing = stream.viewRouters.filter((r) => r.signature === signature && !r.worker.closed);
  const least = pool.leastLoaded();
  const held = existing.length > 0 ? pool.leastLoaded(existing.map((r) => r.worker)) : undefined;
  const worker = held !== undefined && pool.loadOf(held) <= pool.loadOf(least) + VIEW_SPREAD_SLACK ? held : least;
  pool.addLoad(worker, 1);
  const found = existing.find((r) => r.worker === worker);
  if (found !== undefined) return found;
  // Piped producers take new ids: mediasoup keeps a producer id unique per worker.
  const producers = stream.producers.filter((p) => direct || kinds.has(p.kind));
  const made: ViewRouter = { worker, signature, ready: pipe(stream, producers, worker, codecs) };
  stream.viewRouters.push(made);
  // Forgotten when it fails or its router goes (its worker died, or the stream's router closed).
  const forget = () => {
    const i = stream.viewRouters.indexOf(made);
    if (i >= 0) stream.viewRouters.splice(i, 1);
  };
  made.ready.then(({ router }) => router.observer.once("close", forget), forget);
  return made;
}

/** A router on `worker` with `codecs`, fed the stream's producers through a pipe transport pair. */
async function pipe(
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
    // The pipe goes when either router does; the stream's router takes this one along.
    const closeRouter = () => router.close();
    stream.router.observer.once("close", closeRouter);
    router.observer.once("close", () => {
      from.close();
      stream.router.observer.off("close", closeRouter);
    });
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

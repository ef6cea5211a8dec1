/**
 * The SDP bridge between browsers and mediasoup (pure: no I/O). Browsers always offer here —
 * to publish (sendonly m-lines) and to view (recvonly m-lines) — and get an ICE-lite answer
 * carrying every server candidate. Parsing and writing use `sdp-transform`.
 *
 * Viewing: a browser receives on the payload types and header-extension ids of its own offer,
 * but a mediasoup consumer sends media on its router's payload types. So a viewer consumes
 * from a router whose codecs take its offered payload types (`viewerRouterCodecs`; the stream
 * is piped into it when they differ from the publisher's), and the consumer takes the viewer's
 * RTX payload types and extension ids (`viewerCapabilities`), so the answer matches the offer.
 */
import type { types } from "mediasoup";
import * as sdpTransform from "sdp-transform";

export class SdpError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SdpError";
  }
}

type MediaDescription = sdpTransform.MediaDescription;

export interface OfferCodec {
  readonly payloadType: number;
  readonly mimeType: string;
  readonly clockRate: number;
  readonly channels?: number;
  readonly parameters: Record<string, string | number>;
  readonly rtcpFeedback: { type: string; parameter: string }[];
  /** The payload type of this codec's RTX, if offered. */
  readonly rtxPayloadType?: number;
}

export interface OfferMedia {
  readonly index: number;
  readonly mid: string;
  readonly kind: "audio" | "video" | "application";
  readonly direction: string;
  readonly codecs: OfferCodec[];
  readonly extensions: { id: number; uri: string }[];
  readonly ssrcs: { ssrc: number; rtxSsrc?: number }[];
  readonly rids: string[];
  readonly cname: string;
  readonly raw: MediaDescription;
}

export interface ParsedOffer {
  readonly medias: OfferMedia[];
  readonly fingerprint: { algorithm: string; value: string };
}

const MAX_SDP = 64 * 1024;
const SUPPORTED = new Set(["audio/opus", "video/vp8", "video/h264"]);

function parameters(config: string | undefined): Record<string, string | number> {
  if (config === undefined) return {};
  const out: Record<string, string | number> = {};
  for (const [k, v] of Object.entries(sdpTransform.parseParams(config))) out[k] = v as string | number;
  return out;
}

/** Reads a browser offer; throws SdpError saying what is missing or wrong. */
export function parseOffer(sdp: string): ParsedOffer {
  if (typeof sdp !== "string" || !sdp.startsWith("v=0"))
    throw new SdpError("the offer is not SDP (it must start with v=0)");
  if (sdp.length > MAX_SDP) throw new SdpError(`the offer is larger than ${MAX_SDP} bytes`);
  let session: sdpTransform.SessionDescription;
  try {
    session = sdpTransform.parse(sdp);
  } catch (e) {
    throw new SdpError(`the offer cannot be parsed: ${(e as Error).message}`);
  }
  if (!session.media || session.media.length === 0) throw new SdpError("the offer has no m-lines");
  const sessionFingerprint = session.fingerprint;
  const medias: OfferMedia[] = session.media.map((m, index) => {
    const fp = m.fingerprint ?? sessionFingerprint;
    if (fp === undefined) throw new SdpError("the offer has no DTLS fingerprint");
    if (m.type !== "application" && m.type !== "audio" && m.type !== "video") {
      throw new SdpError(`m-line ${index} has an unsupported type ${m.type}`);
    }
    const rtx = new Map<number, number>(); // apt → rtx pt
    const fmtps = new Map((m.fmtp ?? []).map((f) => [Number(f.payload), f.config]));
    for (const r of m.rtp ?? []) {
      if (r.codec.toLowerCase() === "rtx") {
        const apt = Number(parameters(fmtps.get(r.payload)).apt);
        if (Number.isInteger(apt)) rtx.set(apt, r.payload);
      }
    }
    // Preference order is the m-line's payload list, not the order of the rtpmap lines.
    const order = String(m.payloads ?? "")
      .split(" ")
      .map(Number);
    const rank = (pt: number) => (order.includes(pt) ? order.indexOf(pt) : order.length);
    const codecs: OfferCodec[] = [...(m.rtp ?? [])]
      .sort((x, y) => rank(x.payload) - rank(y.payload))
      .filter((r) => !["rtx", "red", "ulpfec", "flexfec-03", "cn", "telephone-event"].includes(r.codec.toLowerCase()))
      .map((r) => ({
        payloadType: r.payload,
        mimeType: `${m.type}/${r.codec}`,
        clockRate: r.rate ?? 90000,
        ...(r.encoding ? { channels: Number(r.encoding) } : {}),
        parameters: parameters(fmtps.get(r.payload)),
        rtcpFeedback: (m.rtcpFb ?? [])
          .filter((fb) => String(fb.payload) === String(r.payload) || fb.payload === "*")
          .map((fb) => ({ type: fb.type, parameter: fb.subtype ?? "" })),
        ...(rtx.has(r.payload) ? { rtxPayloadType: rtx.get(r.payload) as number } : {}),
      }));
    const fid = (m.ssrcGroups ?? []).filter((g) => g.semantics === "FID").map((g) => g.ssrcs.split(" ").map(Number));
    const rtxSsrcs = new Set(fid.map((g) => g[1]));
    const primary = [...new Set((m.ssrcs ?? []).map((s) => Number(s.id)))].filter((s) => !rtxSsrcs.has(s));
    const ssrcs = primary.map((ssrc) => {
      const group = fid.find((g) => g[0] === ssrc);
      return group?.[1] === undefined ? { ssrc } : { ssrc, rtxSsrc: group[1] };
    });
    const cname = String((m.ssrcs ?? []).find((s) => s.attribute === "cname")?.value ?? "");
    return {
      index,
      mid: String(m.mid ?? index),
      kind: m.type as OfferMedia["kind"],
      direction: m.direction ?? session.direction ?? "sendrecv",
      codecs,
      extensions: (m.ext ?? []).map((e) => ({ id: e.value, uri: e.uri })),
      ssrcs,
      rids: (m.rids ?? []).filter((r) => r.direction === "send").map((r) => String(r.id)),
      cname,
      raw: m,
    };
  });
  const fp = medias[0]?.raw.fingerprint ?? sessionFingerprint;
  return { medias, fingerprint: { algorithm: fp?.type ?? "", value: fp?.hash ?? "" } };
}

export function isSupportedCodec(c: OfferCodec): boolean {
  const mime = c.mimeType.toLowerCase();
  if (!SUPPORTED.has(mime)) return false;
  if (mime === "video/h264") return String(c.parameters["packetization-mode"] ?? "0") === "1";
  return true;
}

/** Producer RTP parameters for one offered m-line with one chosen codec. */
export function producerParameters(media: OfferMedia, codec: OfferCodec): types.RtpParameters {
  const codecs: types.RtpCodecParameters[] = [
    {
      mimeType: codec.mimeType,
      payloadType: codec.payloadType,
      clockRate: codec.clockRate,
      ...(codec.channels ? { channels: codec.channels } : {}),
      parameters: codec.parameters,
      rtcpFeedback: codec.rtcpFeedback,
    },
  ];
  if (codec.rtxPayloadType !== undefined) {
    codecs.push({
      mimeType: `${media.kind}/rtx`,
      payloadType: codec.rtxPayloadType,
      clockRate: codec.clockRate,
      parameters: { apt: codec.payloadType },
      rtcpFeedback: [],
    });
  }
  let encodings: types.RtpEncodingParameters[];
  if (media.rids.length > 0) encodings = media.rids.map((rid) => ({ rid }));
  else if (media.ssrcs.length > 0) {
    encodings = media.ssrcs.map((s) => ({
      ssrc: s.ssrc,
      ...(s.rtxSsrc !== undefined && codec.rtxPayloadType !== undefined ? { rtx: { ssrc: s.rtxSsrc } } : {}),
    }));
  } else throw new SdpError(`m-line ${media.index} sends neither SSRCs nor simulcast rids`);
  return {
    mid: media.mid,
    codecs,
    headerExtensions: media.extensions.map((e) => ({ uri: e.uri, id: e.id, encrypt: false, parameters: {} })),
    encodings,
    rtcp: { cname: media.cname || "rtcplane", reducedSize: true },
  };
}

/** Codecs for a viewer's router: what the viewer offered and we support, on its payload types. */
export function viewerRouterCodecs(offer: ParsedOffer): types.RtpCodecCapability[] {
  const out: types.RtpCodecCapability[] = [];
  for (const media of offer.medias) {
    if (media.kind === "application") continue;
    for (const c of media.codecs.filter(isSupportedCodec)) {
      if (out.some((o) => o.preferredPayloadType === c.payloadType)) continue;
      out.push({
        kind: media.kind,
        mimeType: c.mimeType,
        clockRate: c.clockRate,
        ...(c.channels ? { channels: c.channels } : {}),
        preferredPayloadType: c.payloadType,
        parameters: c.parameters,
        rtcpFeedback: c.rtcpFeedback,
      });
    }
  }
  if (out.length === 0) throw new SdpError("the offer has no codec this server can send (opus, VP8, H264)");
  return out;
}

/**
 * How the SFU learns a viewer's bandwidth: transport-cc (the viewer reports every packet's
 * arrival and the worker's GoogCC estimates: libwebrtc's modern way, 4–20 reports a second)
 * or REMB (the viewer estimates from abs-send-time and sends its estimate a few times a
 * second; the worker's GoogCC takes it as a cap — needs the worker patch that lets GoogCC
 * read REMB at all). See "The viewer's feedback" in the README.
 */
export type ViewerBwe = "transport-cc" | "remb";

/**
 * The viewer's RTP capabilities for one m-line: its media codecs (on the router's payload
 * types, which are the viewer's), the RTX it offered for each on its own payload type, and
 * every header extension the router can send that it offered, with the viewer's ids. A
 * browser receives with the payload types and extension ids of its own offer, whatever the
 * answer says; our mediasoup patch lets a consumer take the endpoint's RTX payload type and
 * renumbers extensions per consumer (patches/mediasoup+3.12.16.patch).
 */
export function viewerCapabilities(
  media: OfferMedia,
  router: types.RtpCapabilities,
  bwe: ViewerBwe = "transport-cc",
): types.RtpCapabilities {
  const codecs: types.RtpCodecCapability[] = [];
  for (const c of router.codecs ?? []) {
    if (c.kind !== media.kind || c.mimeType.toLowerCase().endsWith("/rtx")) continue;
    const offered = media.codecs.find(
      (o) => o.payloadType === c.preferredPayloadType && o.mimeType.toLowerCase() === c.mimeType.toLowerCase(),
    );
    if (offered === undefined) continue;
    codecs.push(
      bwe === "remb" ? { ...c, rtcpFeedback: (c.rtcpFeedback ?? []).filter((f) => f.type !== "transport-cc") } : c,
    );
    if (offered.rtxPayloadType !== undefined) {
      codecs.push({
        kind: c.kind,
        mimeType: `${c.kind}/rtx`,
        preferredPayloadType: offered.rtxPayloadType,
        clockRate: c.clockRate,
        parameters: { apt: offered.payloadType },
        rtcpFeedback: [],
      });
    }
  }
  const headerExtensions: types.RtpHeaderExtension[] = [];
  for (const h of router.headerExtensions ?? []) {
    // recvonly: the router takes it from publishers but never sends it.
    if (h.kind !== media.kind || h.direction === "recvonly") continue;
    if (bwe === "remb" && h.uri.includes("transport-wide-cc")) continue;
    const offered = media.extensions.find((e) => e.uri === h.uri);
    if (offered !== undefined) headerExtensions.push({ ...h, preferredId: offered.id });
  }
  return { codecs, headerExtensions };
}

export interface TransportInfo {
  readonly iceParameters: types.IceParameters;
  readonly iceCandidates: types.IceCandidate[];
  readonly dtlsParameters: types.DtlsParameters;
}

export interface AnswerSection {
  readonly media: OfferMedia;
  /** Parameters we receive (publish) or send (view); undefined rejects the m-line. */
  readonly rtpParameters?: types.RtpParameters;
  readonly direction: "recvonly" | "sendonly";
  /** For sendonly: the msid "<stream> <track>". */
  readonly msid?: string;
  /** b=AS: the most the peer may send us on this m-line, in kbit/s (see viewerSendCapKbps). */
  readonly maxSendKbps?: number;
}

/**
 * The b=AS that makes a libwebrtc viewer send transport-cc feedback every `intervalMs`.
 * libwebrtc times its feedback by its own *sending* budget: a 68-byte report may take 5 % of
 * it, between every 50 and every 250 ms (RemoteEstimatorProxy::OnBitrateChanged). A viewer
 * sends no media, so that budget stays at its 300 kbit/s start: a report every 50 ms, 20 a
 * second per viewer, each one decrypted and run through the worker's GoogCC — a third of a
 * worker's CPU with 30 viewers (perf). The answer's b=AS on the m-lines it views caps that
 * budget (it sends nothing on them anyway), and with it the feedback rate.
 */
export function viewerSendCapKbps(intervalMs: number): number {
  return Math.floor((68 * 8) / (0.05 * intervalMs));
}

/** Writes the ICE-lite answer: every server candidate, DTLS passive, one BUNDLE group. */
export function writeAnswer(transport: TransportInfo, sections: readonly AnswerSection[]): string {
  const fingerprint =
    transport.dtlsParameters.fingerprints.find((f) => f.algorithm === "sha-256") ??
    transport.dtlsParameters.fingerprints[0];
  if (fingerprint === undefined) throw new SdpError("the transport has no DTLS fingerprint");
  const accepted = sections.filter((s) => s.rtpParameters !== undefined).map((s) => s.media.mid);
  const media = sections.map((s): MediaDescription => {
    const m = s.media;
    const base = {
      type: m.kind,
      protocol: m.raw.protocol,
      connection: { version: 4, ip: "127.0.0.1" },
      mid: m.mid,
      iceUfrag: transport.iceParameters.usernameFragment,
      icePwd: transport.iceParameters.password,
      setup: "passive",
      rtcpMux: "rtcp-mux",
    };
    const rp = s.rtpParameters;
    if (rp === undefined) {
      return {
        ...base,
        port: 0,
        payloads: String(m.raw.payloads ?? ""),
        direction: "inactive",
        rtp: [],
        fmtp: [],
      } as unknown as MediaDescription;
    }
    const desc: Record<string, unknown> = {
      ...base,
      port: 7,
      payloads: rp.codecs.map((c) => c.payloadType).join(" "),
      rtp: rp.codecs.map((c) => ({
        payload: c.payloadType,
        codec: c.mimeType.split("/")[1],
        rate: c.clockRate,
        ...(c.channels && c.channels > 1 ? { encoding: c.channels } : {}),
      })),
      fmtp: rp.codecs
        .filter((c) => c.parameters && Object.keys(c.parameters).length > 0)
        .map((c) => ({
          payload: c.payloadType,
          config: Object.entries(c.parameters ?? {})
            .map(([k, v]) => `${k}=${v}`)
            .join(";"),
        })),
      rtcpFb: rp.codecs.flatMap((c) =>
        (c.rtcpFeedback ?? []).map((fb) => ({
          payload: c.payloadType,
          type: fb.type,
          ...(fb.parameter ? { subtype: fb.parameter } : {}),
        })),
      ),
      ext: (rp.headerExtensions ?? []).map((h) => ({ value: h.id, uri: h.uri })),
      direction: s.direction,
      rtcpRsize: "rtcp-rsize",
      candidates: transport.iceCandidates.map((c) => ({
        foundation: c.foundation,
        component: 1,
        transport: c.protocol,
        priority: c.priority,
        ip: c.ip,
        port: c.port,
        type: c.type,
        ...(c.tcpType ? { tcptype: c.tcpType } : {}),
        generation: 0,
      })),
      endOfCandidates: "end-of-candidates",
    };
    if (s.direction === "recvonly" && m.rids.length > 0) {
      desc.rids = m.rids.map((id) => ({ id, direction: "recv" }));
      desc.simulcast = { dir1: "recv", list1: m.rids.join(";") };
    }
    if (s.maxSendKbps !== undefined) desc.bandwidth = [{ type: "AS", limit: s.maxSendKbps }];
    if (s.direction === "sendonly") {
      const encoding = rp.encodings?.[0];
      const cname = rp.rtcp?.cname ?? "rtcplane";
      if (encoding?.ssrc !== undefined) {
        const ssrcs = encoding.rtx === undefined ? [encoding.ssrc] : [encoding.ssrc, encoding.rtx.ssrc];
        desc.ssrcs = ssrcs.flatMap((id) => [
          { id, attribute: "cname", value: cname },
          ...(s.msid ? [{ id, attribute: "msid", value: s.msid }] : []),
        ]);
        if (ssrcs.length > 1) desc.ssrcGroups = [{ semantics: "FID", ssrcs: ssrcs.join(" ") }];
      }
      if (s.msid) desc.msid = s.msid;
    }
    return desc as unknown as MediaDescription;
  });
  const session = {
    version: 0,
    origin: {
      username: "rtcplane",
      sessionId: String(Date.now()),
      sessionVersion: 1,
      netType: "IN",
      ipVer: 4,
      address: "0.0.0.0",
    },
    name: "-",
    timing: { start: 0, stop: 0 },
    icelite: "ice-lite",
    fingerprint: { type: fingerprint.algorithm, hash: fingerprint.value },
    groups: accepted.length > 0 ? [{ type: "BUNDLE", mids: accepted.join(" ") }] : [],
    msidSemantic: { semantic: "WMS", token: "*" },
    media,
  };
  return sdpTransform.write(session as unknown as sdpTransform.SessionDescription);
}

/** The SDP bridge on captured and representative browser offers, and on malformed ones. */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import type { types } from "mediasoup";
import * as sdpTransform from "sdp-transform";
import {
  isSupportedCodec,
  parseOffer,
  producerParameters,
  SdpError,
  type TransportInfo,
  viewerCapabilities,
  viewerRouterCodecs,
  viewerSendCapKbps,
  writeAnswer,
} from "../../src/media/sdp-bridge.js";
import { ROOT } from "../helpers/protoc.js";

const offer = (name: string) => fs.readFileSync(path.join(ROOT, "test/fixtures/sdp", `${name}.sdp`), "utf8");

const TRANSPORT: TransportInfo = {
  iceParameters: { usernameFragment: "ufrag1234", password: "pwd-0123456789abcdef", iceLite: true },
  iceCandidates: [
    {
      foundation: "udpcandidate",
      priority: 1076302079,
      ip: "127.0.0.1",
      protocol: "udp" as const,
      port: 40001,
      type: "host" as const,
      tcpType: undefined,
    },
    {
      foundation: "tcpcandidate",
      priority: 1076276479,
      ip: "127.0.0.1",
      protocol: "tcp" as const,
      port: 40002,
      type: "host" as const,
      tcpType: "passive" as const,
    },
  ],
  dtlsParameters: { role: "auto", fingerprints: [{ algorithm: "sha-256", value: "AB:CD" }] },
};

describe("parseOffer", () => {
  it("reads Chrome's publish offer: codecs with RTX, SSRCs with their RTX, cname, extensions", () => {
    const o = parseOffer(offer("chrome-publish"));
    assert.deepEqual(
      o.medias.map((m) => [m.kind, m.direction, m.mid]),
      [
        ["video", "sendonly", "0"],
        ["audio", "sendonly", "1"],
      ],
    );
    assert.equal(o.fingerprint.algorithm, "sha-256");
    const video = o.medias[0];
    const vp8 = video?.codecs.find((c) => c.mimeType === "video/VP8");
    assert.equal(vp8?.payloadType, 96);
    assert.equal(vp8?.rtxPayloadType, 97);
    assert.ok(vp8?.rtcpFeedback.some((f) => f.type === "nack" && f.parameter === "pli"));
    assert.equal(video?.ssrcs.length, 1);
    assert.ok(video?.ssrcs[0]?.rtxSsrc !== undefined);
    assert.ok((video?.cname ?? "").length > 0);
    assert.ok(video?.extensions.some((e) => e.uri === "urn:ietf:params:rtp-hdrext:sdes:mid"));
    assert.ok(!video?.codecs.some((c) => c.mimeType.toLowerCase() === "video/rtx"), "RTX is folded into its codec");
  });

  it("reads simulcast rids and Firefox's session-level fingerprint and {uuid} cnames", () => {
    const sim = parseOffer(offer("chrome-publish-simulcast")).medias[0];
    assert.deepEqual(sim?.rids, ["q", "h", "f"]);
    const ff = parseOffer(offer("firefox-publish"));
    assert.match(ff.fingerprint.value, /^5C:2A/);
    const [audio, video] = ff.medias;
    assert.equal(audio?.codecs[0]?.mimeType, "audio/opus");
    assert.equal(audio?.codecs[0]?.payloadType, 109);
    assert.equal(video?.codecs.find((c) => c.mimeType === "video/VP8")?.rtxPayloadType, 124);
    assert.deepEqual(video?.ssrcs, [{ ssrc: 3310742981, rtxSsrc: 3896411446 }]);
  });

  const malformed: [string, string, RegExp][] = [
    ["empty", "", /not SDP/],
    ["not SDP", "hello", /not SDP/],
    ["no m-lines", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", /no m-lines/],
    [
      "no fingerprint",
      "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\na=mid:0\r\na=sendonly\r\n",
      /fingerprint/,
    ],
    ["too large", `v=0\r\n${"a=x\r\n".repeat(20000)}`, /larger than/],
  ];
  for (const [what, sdp, reason] of malformed) {
    it(`rejects an offer with ${what}`, () => {
      assert.throws(
        () => parseOffer(sdp),
        (e: unknown) => e instanceof SdpError && reason.test(e.message),
      );
    });
  }
});

describe("producerParameters", () => {
  it("maps Chrome's VP8 m-line to codec + RTX and an SSRC encoding with its RTX", () => {
    const video = parseOffer(offer("chrome-publish")).medias[0];
    assert.ok(video);
    const vp8 = video.codecs.find((c) => c.mimeType === "video/VP8");
    assert.ok(vp8);
    const p = producerParameters(video, vp8);
    assert.deepEqual(
      p.codecs.map((c) => [c.mimeType, c.payloadType, c.parameters?.apt]),
      [
        ["video/VP8", 96, undefined],
        ["video/rtx", 97, 96],
      ],
    );
    assert.equal(p.mid, "0");
    assert.deepEqual(p.encodings, [{ ssrc: video.ssrcs[0]?.ssrc, rtx: { ssrc: video.ssrcs[0]?.rtxSsrc } }]);
    assert.equal(p.rtcp?.cname, video.cname);
  });

  it("maps simulcast to one encoding per rid", () => {
    const video = parseOffer(offer("chrome-publish-simulcast")).medias[0];
    assert.ok(video);
    const p = producerParameters(video, video.codecs[0] as (typeof video.codecs)[0]);
    assert.deepEqual(p.encodings, [{ rid: "q" }, { rid: "h" }, { rid: "f" }]);
  });

  it("refuses an m-line with neither SSRCs nor rids", () => {
    const sdp = offer("chrome-publish").replace(/a=ssrc[^\r\n]*\r\n/g, "");
    const video = parseOffer(sdp).medias[0];
    assert.ok(video);
    assert.throws(() => producerParameters(video, video.codecs[0] as (typeof video.codecs)[0]), SdpError);
  });
});

describe("codec support", () => {
  it("takes opus, VP8 and packetization-mode 1 H264 (Safari-like offers lead with H264)", () => {
    const video = parseOffer(offer("safari-h264-publish")).medias[0];
    const supported = video?.codecs.filter(isSupportedCodec) ?? [];
    assert.equal(supported[0]?.mimeType, "video/H264", "H264 stays first when offered first");
    assert.ok(
      supported.every((c) => c.mimeType !== "video/H264" || String(c.parameters["packetization-mode"]) === "1"),
    );
    assert.ok(!supported.some((c) => c.mimeType === "video/VP9" || c.mimeType === "video/AV1"));
  });

  it("builds a viewer's router codecs on the viewer's own payload types, without duplicates", () => {
    const o = parseOffer(offer("chrome-view"));
    const codecs = viewerRouterCodecs(o);
    const vp8 = codecs.find((c) => c.mimeType === "video/VP8");
    const chromeVp8 = o.medias[0]?.codecs.find((c) => c.mimeType === "video/VP8");
    assert.equal(vp8?.preferredPayloadType, chromeVp8?.payloadType);
    assert.equal(codecs.find((c) => c.mimeType === "audio/opus")?.preferredPayloadType, 111);
    const pts = codecs.map((c) => c.preferredPayloadType);
    assert.equal(new Set(pts).size, pts.length);
  });

  it("gives the viewer's consumer its own RTX payload type and extension ids, not the router's", () => {
    const media = parseOffer(offer("chrome-view")).medias[0];
    assert.ok(media);
    const vp8 = media.codecs.find((c) => c.mimeType === "video/VP8");
    assert.ok(vp8?.rtxPayloadType !== undefined);
    const caps = viewerCapabilities(media, {
      codecs: [
        { kind: "video", mimeType: "video/VP8", clockRate: 90000, preferredPayloadType: vp8.payloadType },
        { kind: "video", mimeType: "video/rtx", clockRate: 90000, preferredPayloadType: 100, parameters: { apt: 96 } },
      ],
      headerExtensions: [
        { kind: "video", uri: "urn:ietf:params:rtp-hdrext:sdes:mid", preferredId: 1, direction: "sendrecv" },
        { kind: "video", uri: "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id", preferredId: 2, direction: "recvonly" },
        { kind: "video", uri: "urn:ietf:params:rtp-hdrext:toffset", preferredId: 12, direction: "sendrecv" },
        { kind: "video", uri: "urn:example:not-offered", preferredId: 13, direction: "sendrecv" },
        { kind: "audio", uri: "urn:ietf:params:rtp-hdrext:ssrc-audio-level", preferredId: 10 },
      ],
    });
    assert.deepEqual(
      caps.codecs?.map((c) => [c.mimeType, c.preferredPayloadType, c.parameters?.apt]),
      [
        ["video/VP8", vp8.payloadType, undefined],
        ["video/rtx", vp8.rtxPayloadType, vp8.payloadType],
      ],
    );
    const offeredId = (uri: string) => media.extensions.find((e) => e.uri === uri)?.id;
    // Only what the router sends (not recvonly rid) and the viewer offered, with the viewer's ids.
    assert.deepEqual(
      caps.headerExtensions?.map((h) => [h.uri, h.preferredId]),
      ["urn:ietf:params:rtp-hdrext:sdes:mid", "urn:ietf:params:rtp-hdrext:toffset"]
        .filter((uri) => offeredId(uri) !== undefined)
        .map((uri) => [uri, offeredId(uri)]),
    );
  });

  it("leaves transport-cc out of a viewer's capabilities when it is to report by REMB", () => {
    const media = parseOffer(offer("chrome-view")).medias[0];
    assert.ok(media);
    const vp8 = media.codecs.find((c) => c.mimeType === "video/VP8");
    assert.ok(vp8);
    const TWCC = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
    const ABS = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time";
    const router: types.RtpCapabilities = {
      codecs: [
        {
          kind: "video",
          mimeType: "video/VP8",
          clockRate: 90000,
          preferredPayloadType: vp8.payloadType,
          rtcpFeedback: [{ type: "nack" }, { type: "goog-remb" }, { type: "transport-cc" }],
        },
      ],
      headerExtensions: [
        { kind: "video", uri: ABS, preferredId: 4, direction: "sendrecv" },
        { kind: "video", uri: TWCC, preferredId: 5, direction: "sendrecv" },
      ],
    };
    const feedback = (c: types.RtpCapabilities) => c.codecs?.[0]?.rtcpFeedback?.map((f) => f.type);
    const uris = (c: types.RtpCapabilities) => c.headerExtensions?.map((h) => h.uri);
    const remb = viewerCapabilities(media, router, "remb");
    assert.deepEqual(feedback(remb), ["nack", "goog-remb"]);
    assert.deepEqual(uris(remb), [ABS]);
    const tcc = viewerCapabilities(media, router);
    assert.deepEqual(feedback(tcc), ["nack", "goog-remb", "transport-cc"]);
    assert.deepEqual(uris(tcc), [ABS, TWCC]);
  });
});

describe("writeAnswer", () => {
  it("answers ICE-lite with every candidate, DTLS passive, one BUNDLE, the offer's mids", () => {
    const o = parseOffer(offer("chrome-publish"));
    const video = o.medias[0];
    assert.ok(video);
    const vp8 = video.codecs.find((c) => c.mimeType === "video/VP8");
    assert.ok(vp8);
    const sdp = writeAnswer(TRANSPORT, [
      { media: video, direction: "recvonly", rtpParameters: producerParameters(video, vp8) },
      { media: o.medias[1] as (typeof o.medias)[0], direction: "recvonly" },
    ]);
    const parsed = sdpTransform.parse(sdp);
    assert.equal(parsed.icelite, "ice-lite");
    assert.deepEqual(
      parsed.groups?.map((g) => [g.type, String(g.mids)]),
      [["BUNDLE", "0"]],
    );
    const [m0, m1] = parsed.media;
    assert.equal(String(m0?.mid), "0");
    assert.equal(m0?.direction, "recvonly");
    assert.equal(m0?.setup, "passive");
    assert.equal(m0?.iceUfrag, "ufrag1234");
    assert.equal(m0?.candidates?.length, 2);
    assert.deepEqual(
      m0?.rtp.map((r) => [r.payload, r.codec]),
      [
        [96, "VP8"],
        [97, "rtx"],
      ],
    );
    assert.equal(m1?.port, 0, "an m-line we do not take is rejected");
    assert.match(sdp, /a=end-of-candidates/);
  });

  it("echoes simulcast as recv", () => {
    const video = parseOffer(offer("chrome-publish-simulcast")).medias[0];
    assert.ok(video);
    const sdp = writeAnswer(TRANSPORT, [
      {
        media: video,
        direction: "recvonly",
        rtpParameters: producerParameters(video, video.codecs[0] as (typeof video.codecs)[0]),
      },
    ]);
    assert.match(sdp, /a=simulcast:recv q;h;f/);
    assert.match(sdp, /a=rid:q recv/);
  });

  it("caps what a viewer may send with b=AS, at the rate that sets libwebrtc's feedback interval", () => {
    // libwebrtc: interval = 68 bytes / (5 % of its sending budget), within 50..250 ms.
    const interval = (kbps: number) => Math.min(250, Math.max(50, (68 * 8) / (0.05 * kbps)));
    for (const ms of [50, 100, 250]) assert.ok(Math.abs(interval(viewerSendCapKbps(ms)) - ms) < 1, `${ms} ms`);
    assert.equal(viewerSendCapKbps(250), 43);
    const video = parseOffer(offer("chrome-publish")).medias[0];
    assert.ok(video);
    const vp8 = video.codecs.find((c) => c.mimeType === "video/VP8");
    assert.ok(vp8);
    const rtpParameters = producerParameters(video, vp8);
    const capped = sdpTransform.parse(
      writeAnswer(TRANSPORT, [{ media: video, direction: "sendonly", rtpParameters, maxSendKbps: 43 }]),
    );
    assert.deepEqual(capped.media[0]?.bandwidth, [{ type: "AS", limit: 43 }]);
    const plain = sdpTransform.parse(writeAnswer(TRANSPORT, [{ media: video, direction: "sendonly", rtpParameters }]));
    assert.equal(plain.media[0]?.bandwidth, undefined);
  });
});

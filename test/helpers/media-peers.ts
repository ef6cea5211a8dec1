/** Publishers and viewers of a conference stream: libwebrtc peers driven through the REST API. */
import assert from "node:assert/strict";
import { rest, serviceToken } from "./conference-client.js";
import { createApp, startServer, type TestServer } from "./server.js";
import { decodedFrames, movingCamera, RTCPeerConnection, setLocalOffer, texturedCamera } from "./wrtc.js";

type Call = ReturnType<typeof rest>;

/**
 * What a media test starts from: a server with mediasoup workers (settings in `env`), a
 * SERVICE-token REST client of a new app, and a conference `conferenceId` of it.
 */
export async function mediaConference(
  env: Record<string, string>,
  conferenceId: string,
): Promise<{ server: TestServer; call: Call; ref: { appId: string; conferenceId: string } }> {
  const server = await startServer(env, undefined, undefined, true);
  const app = await createApp(server.url);
  const call = rest(server.url, await serviceToken(server.url, app));
  await call("POST", "/rtc-api/conferences/create", { conferenceId });
  return { server, call, ref: { appId: app.appId, conferenceId } };
}

/** Simulcast as browsers send it: three rids, each half the size of the next. */
export const THREE_LAYERS = [
  { rid: "l", scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: "m", scaleResolutionDownBy: 2, maxBitrate: 400_000 },
  { rid: "h", maxBitrate: 1_200_000 },
];

/**
 * Joins `endpointId` and publishes a camera as `streamId` (a flat moving one, or the textured
 * 960x540 one in three simulcast layers); close() stops it.
 */
export async function publishCamera(
  call: Call,
  conferenceId: string,
  endpointId: string,
  streamId: string,
  simulcast = false,
  fps = 30,
): Promise<{ pc: RTCPeerConnection; answer: string; close(): void }> {
  await call("POST", "/rtc-api/conferences/join", { conferenceId, userEndpointId: endpointId, userId: endpointId });
  const camera = simulcast ? texturedCamera(960, 540, fps) : movingCamera();
  const pc = new RTCPeerConnection();
  // @roamhq/wrtc takes sendEncodings with rids (libwebrtc simulcast), though its typings do not say so.
  const init = simulcast ? { direction: "sendonly", sendEncodings: THREE_LAYERS } : { direction: "sendonly" };
  pc.addTransceiver(camera.track, init as RTCRtpTransceiverInit);
  const offer = await setLocalOffer(pc);
  const published = await call("POST", "/rtc-api/conferences/publishStream", {
    conferenceId,
    userEndpointId: endpointId,
    conferenceStreamType: "CAM",
    streamId,
    sdpOffer: offer,
  });
  assert.equal(published.status, 200, published.text);
  const answer = published.json.sdpAnswer as string;
  await pc.setRemoteDescription({ type: "answer", sdp: answer });
  return {
    pc,
    answer,
    close() {
      camera.stop();
      pc.close();
    },
  };
}

/**
 * A recvonly video viewer of `streamId`: its offer, the server's answer (as the viewer applied
 * it after `shapeAnswer`, which stands for the network: a relay, blocked UDP) and the luma of
 * each frame it decodes.
 */
export async function viewVideo(
  call: Call,
  conferenceId: string,
  publisherEndpointId: string,
  streamId: string,
  viewerId: string,
  shapeAnswer: (sdp: string) => Promise<string> | string = (sdp) => sdp,
  onRequest: () => void = () => undefined,
): Promise<{ pc: RTCPeerConnection; offer: string; answer: string; frames: number[] }> {
  const pc = new RTCPeerConnection();
  pc.addTransceiver("video", { direction: "recvonly" });
  const frames = decodedFrames(pc);
  const offer = await setLocalOffer(pc);
  onRequest();
  const viewed = await call("POST", "/rtc-api/conferences/viewStream", {
    conferenceId,
    userEndpointId: publisherEndpointId,
    streamId,
    sdpOffer: offer,
    viewerId,
  });
  assert.equal(viewed.status, 200, viewed.text);
  const answer = viewed.json.sdpAnswer as string;
  await pc.setRemoteDescription({ type: "answer", sdp: await shapeAnswer(answer) });
  return { pc, offer, answer, frames };
}

/**
 * viewVideo, timed from the view request (the offer is made before, as a page makes it before
 * it calls the API) to its answer and to its first decoded frame (≤ limitMs).
 */
export async function viewUntilFirstFrame(
  call: Call,
  conferenceId: string,
  publisherEndpointId: string,
  streamId: string,
  viewerId: string,
  shapeAnswer?: (sdp: string) => Promise<string> | string,
  limitMs = 10_000,
): Promise<{ pc: RTCPeerConnection; answerMs: number; firstFrameMs: number }> {
  let started = Date.now();
  let answered = 0;
  const viewer = await viewVideo(
    call,
    conferenceId,
    publisherEndpointId,
    streamId,
    viewerId,
    (sdp) => {
      answered = Date.now();
      return shapeAnswer === undefined ? sdp : shapeAnswer(sdp);
    },
    () => {
      started = Date.now();
    },
  );
  while (viewer.frames.length === 0 && Date.now() - started < limitMs) await new Promise((r) => setTimeout(r, 5));
  return {
    pc: viewer.pc,
    answerMs: answered - started,
    firstFrameMs: viewer.frames.length > 0 ? Date.now() - started : Number.POSITIVE_INFINITY,
  };
}

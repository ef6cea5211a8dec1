/**
 * Peers of bench/media.bench.ts in processes of their own, as browsers are: the publisher in
 * one, the viewers spread over several. In one process every peer shares libwebrtc's network
 * and signalling threads and one event loop, and the answer and first-frame figures become
 * partly the audience's own queueing.
 *
 * The bench drives each process with one request at a time over IPC (AudienceRequest), and
 * each request gets one AudienceReply.
 */
import { rest } from "../test/helpers/conference-client.js";
import { answerCandidate, type LossyLink, lossyLink, throughLink } from "../test/helpers/lossy-link.js";
import { publishCamera, viewUntilFirstFrame } from "../test/helpers/media-peers.js";
import { movingCamera, type RTCPeerConnection, statsOfType } from "../test/helpers/wrtc.js";

/** Where the peers go: a conference of rtcplane's REST API, or a Janus videoroom. */
export type AudienceTarget =
  | { server: "rtcplane"; url: string; token: string; conferenceId: string }
  | { server: "janus"; url: string; room: number };

export type AudienceRequest =
  | { type: "publish"; target: AudienceTarget; textured: boolean }
  | { type: "view"; target: AudienceTarget; viewerIds: string[]; feedId: number; lossPercent: number }
  /** Frames each viewer has decoded so far. */
  | { type: "count" }
  | { type: "close" };

export type AudienceReply =
  | { type: "published"; feedId: number }
  | { type: "joined"; firstFrameMs: number[]; answerMs: number[] }
  | { type: "counted"; framesDecoded: number[] }
  | { type: "closed" }
  | { type: "error"; message: string };

const viewers: RTCPeerConnection[] = [];
const closers: (() => unknown)[] = [];

async function publish(target: AudienceTarget, textured: boolean): Promise<AudienceReply> {
  if (target.server === "rtcplane") {
    const pub = await publishCamera(rest(target.url, target.token), target.conferenceId, "pub", "cam", textured);
    closers.push(() => pub.close());
    return { type: "published", feedId: 0 };
  }
  const janus = await import("./janus.js");
  await janus.janusCreateRoom(target.url, target.room);
  const camera = movingCamera();
  const pub = await janus.janusPublish(target.url, target.room, camera.track);
  closers.push(camera.stop, pub.close);
  return { type: "published", feedId: pub.feedId };
}

async function view(request: Extract<AudienceRequest, { type: "view" }>): Promise<AudienceReply> {
  const { target } = request;
  // Node loads fetch (undici) on its first call, ~100 ms of compiling that a page's fetch
  // does not pay: paid here, before the clock starts.
  await (await fetch(target.server === "janus" ? `${target.url}/info` : `${target.url}/healthz`)).text();
  let joined: { pc: RTCPeerConnection; answerMs: number; firstFrameMs: number }[];
  if (target.server === "rtcplane") {
    const call = rest(target.url, target.token);
    const shape = async (answer: string) => {
      if (request.lossPercent === 0) return answer;
      const link: LossyLink = await lossyLink(answerCandidate(answer), { lossPercent: request.lossPercent });
      closers.push(() => link.close());
      return throughLink(answer, link.port);
    };
    joined = await Promise.all(
      request.viewerIds.map((id) => viewUntilFirstFrame(call, target.conferenceId, "pub", "cam", id, shape)),
    );
  } else {
    const janus = await import("./janus.js");
    const janusViewers = await Promise.all(
      request.viewerIds.map(() => janus.janusViewUntilFirstFrame(target.url, target.room, request.feedId)),
    );
    for (const v of janusViewers) closers.push(v.close);
    joined = janusViewers;
  }
  viewers.push(...joined.map((v) => v.pc));
  return { type: "joined", firstFrameMs: joined.map((v) => v.firstFrameMs), answerMs: joined.map((v) => v.answerMs) };
}

async function handle(request: AudienceRequest): Promise<AudienceReply> {
  switch (request.type) {
    case "publish":
      return publish(request.target, request.textured);
    case "view":
      return view(request);
    case "count":
      return {
        type: "counted",
        framesDecoded: await Promise.all(
          viewers.map(async (pc) => (await statsOfType(pc, "inbound-rtp"))[0]?.framesDecoded ?? 0),
        ),
      };
    case "close":
      for (const pc of viewers) pc.close();
      for (const close of closers) await close();
      return { type: "closed" };
  }
}

// Orphaned (the bench died): the peers' timers would keep this process alive.
process.on("disconnect", () => process.exit(0));

process.on("message", (request: AudienceRequest) => {
  handle(request).then(
    (reply) => process.send?.(reply),
    (e: Error) => process.send?.({ type: "error", message: e.stack ?? e.message }),
  );
});

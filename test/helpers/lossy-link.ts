/**
 * A shaped network link between a WebRTC peer and the SFU, in user space: a UDP relay on
 * loopback that drops, and rate-limits with a bounded queue, what the SFU sends to the peer.
 * This machine's kernel has no `sch_netem` ("Specified qdisc kind is unknown"), so `tc netem`
 * cannot add loss here; a relay shapes exactly one peer's downlink and runs on any kernel.
 *
 *   const link = await lossyLink(answerCandidate(answer), { lossPercent: 5 });
 *   await pc.setRemoteDescription({ type: "answer", sdp: throughLink(answer, link.port) });
 */
import dgram from "node:dgram";

export interface LinkShape {
  /** Share of SFU → peer datagrams dropped at random (0–100). */
  lossPercent: number;
  /** Downlink rate in kbit/s (0: unlimited); datagrams that would queue past `queueMs` are dropped. */
  rateKbps: number;
  queueMs: number;
}

export interface LossyLink {
  readonly port: number;
  /** Change the shape while it runs (a link that degrades). */
  readonly shape: LinkShape;
  readonly counts: { forwarded: number; dropped: number };
  close(): void;
}

/** A small seeded generator, so a run's losses are repeatable. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export async function lossyLink(
  target: { ip: string; port: number },
  shape: Partial<LinkShape> = {},
  seed = 1,
): Promise<LossyLink> {
  const front = dgram.createSocket("udp4"); // the peer talks to this one
  const back = dgram.createSocket("udp4"); // the SFU sees this one as the peer
  await Promise.all([
    new Promise<void>((r) => front.bind(0, "127.0.0.1", r)),
    new Promise<void>((r) => back.bind(0, "127.0.0.1", r)),
  ]);
  let closed = false;
  const link: LossyLink = {
    port: front.address().port,
    shape: { lossPercent: 0, rateKbps: 0, queueMs: 200, ...shape },
    counts: { forwarded: 0, dropped: 0 },
    close() {
      closed = true; // packets still queued on the rate limit are dropped with the link
      front.close();
      back.close();
    },
  };
  const next = random(seed);
  let peer: dgram.RemoteInfo | undefined;
  let departure = 0; // when the link is free again (ms, performance clock)
  front.on("message", (msg, from) => {
    peer = from;
    back.send(msg, target.port, target.ip);
  });
  back.on("message", (msg) => {
    const to = peer;
    if (to === undefined) return;
    if (next() * 100 < link.shape.lossPercent) {
      link.counts.dropped++;
      return;
    }
    if (link.shape.rateKbps <= 0) {
      link.counts.forwarded++;
      front.send(msg, to.port, to.address);
      return;
    }
    const now = performance.now();
    const start = Math.max(now, departure);
    if (start - now > link.shape.queueMs) {
      link.counts.dropped++;
      return;
    }
    departure = start + (msg.length * 8) / link.shape.rateKbps;
    link.counts.forwarded++;
    setTimeout(() => {
      if (!closed) front.send(msg, to.port, to.address);
    }, departure - now);
  });
  return link;
}

/** The answer's first UDP candidate: where the SFU listens for this peer. */
export function answerCandidate(sdp: string): { ip: string; port: number } {
  const m = /a=candidate:\S+ 1 udp \d+ (\S+) (\d+) typ host/i.exec(sdp);
  if (m === null) throw new Error("the answer has no UDP host candidate");
  return { ip: m[1] as string, port: Number(m[2]) };
}

/** The answer with its candidates replaced by the relay's, so the peer's media takes the link. */
export function throughLink(sdp: string, port: number): string {
  return sdp
    .split("\r\n")
    .filter((line) => !line.startsWith("a=candidate:"))
    .flatMap((line) =>
      line.startsWith("a=end-of-candidates")
        ? [`a=candidate:1 1 udp 2130706431 127.0.0.1 ${port} typ host`, line]
        : [line],
    )
    .join("\r\n");
}

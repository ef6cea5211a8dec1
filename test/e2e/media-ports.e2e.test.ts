/**
 * One port per worker (issue #13): with RTC_PORT every transport of a worker shares one UDP
 * and one TCP port (mediasoup WebRtcServer), and a viewer whose UDP is blocked connects over
 * ICE-TCP on that same port and still decodes frames.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import type { rest } from "../helpers/conference-client.js";
import { mediaConference, publishCamera, viewVideo } from "../helpers/media-peers.js";
import type { TestServer } from "../helpers/server.js";
import { statsOfType } from "../helpers/wrtc.js";

/** Two consecutive ports free for TCP now (UDP ones alike, in practice, on loopback). */
async function freePortPair(): Promise<number> {
  for (;;) {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const free = await Promise.all(
      [port, port + 1].map(
        (p) =>
          new Promise<boolean>((resolve) => {
            const s = net.createServer().once("error", () => resolve(false));
            s.listen(p, "127.0.0.1", () => s.close(() => resolve(true)));
          }),
      ),
    );
    if (free.every(Boolean)) return port;
  }
}

const candidates = (sdp: string) =>
  [...sdp.matchAll(/a=candidate:\S+ 1 (udp|tcp) \d+ (\S+) (\d+) typ host/gi)].map((m) => ({
    protocol: (m[1] as string).toLowerCase(),
    port: Number(m[3]),
  }));

let server: TestServer;
let port: number;
let call: ReturnType<typeof rest>;
const cleanup: (() => void)[] = [];

before(async () => {
  port = await freePortPair();
  ({ server, call } = await mediaConference(
    { MEDIA_WORKERS: "2", RTC_PORT: String(port), MEDIA_STATS_INTERVAL_MS: "0" },
    "ports",
  ));
  const pub = await publishCamera(call, "ports", "pub", "cam");
  cleanup.push(() => pub.close());
});
after(async () => {
  for (const f of cleanup) f();
  await server.close();
});

describe("RTC_PORT", () => {
  it("every transport of a worker answers on the worker's one UDP and one TCP port", async () => {
    const answers = await Promise.all(
      Array.from({ length: 6 }, async (_, i) => {
        const v = await viewVideo(call, "ports", "pub", "cam", `v${i}`);
        cleanup.push(() => v.pc.close());
        return v.answer;
      }),
    );
    const seen = answers.flatMap(candidates);
    assert.deepEqual([...new Set(seen.map((c) => c.protocol))].sort(), ["tcp", "udp"]);
    assert.ok(
      seen.every((c) => c.port === port || c.port === port + 1),
      `ports: ${[...new Set(seen.map((c) => c.port))]}`,
    );
    assert.equal(new Set(seen.map((c) => c.port)).size, 2, "both workers serve viewers");
  });

  it("a viewer whose UDP is blocked connects over ICE-TCP and decodes frames", async () => {
    const noUdp = (sdp: string) =>
      sdp
        .split("\r\n")
        .filter((l) => !/^a=candidate:\S+ 1 udp /i.test(l))
        .join("\r\n");
    const v = await viewVideo(call, "ports", "pub", "cam", "tcp-only", noUdp);
    cleanup.push(() => v.pc.close());
    const deadline = Date.now() + 8000;
    while (v.frames.length < 30 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.ok(v.frames.length >= 30, `decoded ${v.frames.length} frames over TCP`);
    const pair = (await statsOfType(v.pc, "candidate-pair")).find((p) => p.nominated);
    const remote = (await statsOfType(v.pc, "remote-candidate")).find((c) => c.id === pair?.remoteCandidateId);
    assert.equal(remote?.protocol, "tcp");
    assert.ok(remote?.port === port || remote?.port === port + 1);
  });
});

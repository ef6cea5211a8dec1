/**
 * `npm run bench:media-cluster` — what media across nodes costs, in one run: three nodes
 * (child processes, as `npm start` runs them through tsx) on one PostgreSQL, each on its own
 * loopback address (127.0.0.1/2/3) with its own SFU (one worker each).
 *
 *   (a) viewStream latency, local vs forwarded: one libwebrtc publisher through node 1 (its
 *       conference's media is placed there); BENCH_VIEWS (100) view requests, alternately to
 *       node 1 (the owner: local, the baseline) and to node 3 (forwarded to node 1 over the
 *       internal gRPC service), each a fresh recvonly offer, timed from sending to the SDP
 *       answer, then stopped (stopViewStream through the same node) so views do not pile up.
 *   (b) owner death → ConferenceStreamUnpublishedEvent: BENCH_DEATHS (3) times a fresh node
 *       on 127.0.0.4 takes a new conference's first publish, a long-poll waiter on node 2
 *       waits on that conference, the node is killed with SIGKILL; the time from the kill to
 *       the waiter's answer carrying the event. With the defaults (NODE_HEARTBEAT_MS 1000,
 *       NODE_DEAD_AFTER_MS 3000) it is the dead-after window plus up to one reaper round.
 *
 *   BENCH_VIEWS=100 BENCH_DEATHS=3 npm run bench:media-cluster
 */
import { clusterDatabase, clusterEnv, stopNodes } from "../test/helpers/cluster.js";
import { type Json, rest } from "../test/helpers/conference-client.js";
import { publishCamera } from "../test/helpers/media-peers.js";
import { type ChildServer, createApp, serviceToken, spawnServer, tempDir } from "../test/helpers/server.js";
import { RTCPeerConnection, setLocalOffer } from "../test/helpers/wrtc.js";

const VIEWS = Number(process.env.BENCH_VIEWS ?? 100);
const DEATHS = Number(process.env.BENCH_DEATHS ?? 3);

function node(ip: string, databaseUrl: string): Promise<ChildServer> {
  return spawnServer(
    tempDir(),
    clusterEnv(databaseUrl, {
      HOST: ip,
      ANNOUNCED_IP: ip,
      RTC_LISTEN_IP: ip,
      MEDIA_WORKERS: "1",
      MEDIA_STATS_INTERVAL_MS: "0",
      LONG_POLL_TIMEOUT_MS: "30000",
    }),
  );
}

function quantile(xs: number[], q: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

const f1 = (x: number) => x.toFixed(1);

function candidateIp(sdp: string): string | undefined {
  return /^a=candidate:\S+ \d+ \S+ \d+ (\S+) \d+ typ/m.exec(sdp)?.[1];
}

async function main(): Promise<void> {
  const db = await clusterDatabase({ durable: true });
  const nodes: ChildServer[] = [];
  const closers: (() => void)[] = [];
  try {
    for (const n of [1, 2, 3]) nodes.push(await node(`127.0.0.${n}`, db.url));
    const [n1, n2, n3] = nodes as [ChildServer, ChildServer, ChildServer];
    const token = await serviceToken(n1.url, await createApp(n1.url));
    const on = (server: ChildServer) => rest(server.url, token);

    // (a) viewStream, local vs forwarded.
    const conferenceId = "bench-views";
    await on(n1)("POST", "/rtc-api/conferences/create", { conferenceId, mode: "ROUTER" });
    await on(n1)("POST", "/rtc-api/conferences/join", { conferenceId, userEndpointId: "viewer", userId: "v" });
    const publisher = await publishCamera(on(n1), conferenceId, "pub", "cam");
    closers.push(() => publisher.close());
    if (candidateIp(publisher.answer) !== "127.0.0.1") throw new Error("the stream was not placed on node 1");
    const times: Record<"local" | "forwarded", number[]> = { local: [], forwarded: [] };
    const offers: string[] = [];
    for (let i = 0; i < 8; i++) {
      const pc = new RTCPeerConnection();
      pc.addTransceiver("video", { direction: "recvonly" });
      const offer = await setLocalOffer(pc);
      offers.push(offer);
      pc.close();
    }
    for (let i = 0; i < VIEWS + 10; i++) {
      const kind = i % 2 === 0 ? "local" : "forwarded";
      const via = kind === "local" ? n1 : n3;
      const viewerId = `view-${i}`;
      const sdpOffer = offers[i % offers.length];
      const started = performance.now();
      const r = await on(via)("POST", "/rtc-api/conferences/viewStream", {
        conferenceId,
        userEndpointId: "viewer",
        streamId: { id: "cam" },
        viewerId,
        sdpOffer,
      });
      const ms = performance.now() - started;
      if (r.status !== 200) throw new Error(`viewStream answered ${r.status}: ${r.text}`);
      if (candidateIp(String(r.json.sdpAnswer)) !== "127.0.0.1")
        throw new Error("an answer without node 1's candidates");
      if (i >= 10) times[kind].push(ms); // the first ten warm up both paths
      await on(via)("POST", "/rtc-api/conferences/stopViewStream", {
        conferenceId,
        userEndpointId: "viewer",
        streamId: { id: "cam" },
        viewerId,
      });
    }

    // (b) owner death → the unpublished event on a survivor.
    const deaths: number[] = [];
    for (let round = 0; round < DEATHS; round++) {
      const victim = await node("127.0.0.4", db.url);
      const c = `bench-death-${round}`;
      await on(n2)("POST", "/rtc-api/conferences/create", { conferenceId: c, mode: "ROUTER" });
      const pub = await publishCamera(on(victim), c, "pub", "cam");
      closers.push(() => pub.close());
      if (candidateIp(pub.answer) !== "127.0.0.4")
        throw new Error("the death round's stream was not placed on its node");
      const log = (await on(n2)("GET", `/rtc-api/conferences/${c}/events?v=0`)).json as unknown as Json[];
      let version = Math.max(...log.map((e) => Number(e.conferenceVersion ?? 0)));
      const killedAt = performance.now();
      victim.process.kill("SIGKILL");
      for (;;) {
        const r = await on(n2)("GET", `/rtc-api/conferences/${c}/events?v=${version}`);
        const events = r.json as unknown as Json[];
        if (Array.isArray(events) && events.some((e) => e.type === "ConferenceStreamUnpublishedEvent")) break;
        if (performance.now() - killedAt > 60_000) throw new Error("no unpublished event within 60 s");
        if (Array.isArray(events) && events.length > 0) {
          version = Math.max(version, ...events.map((e) => Number(e.conferenceVersion ?? 0)));
        }
      }
      deaths.push(performance.now() - killedAt);
      pub.close();
      await victim.exited;
    }

    const row = (cells: string[]) => `| ${cells.join(" | ")} |`;
    console.log(`\nviewStream answer latency, ms (${VIEWS / 2} each, alternating; one publisher on node 1)`);
    console.log(row(["path", "p50", "p90", "p99", "mean"]));
    console.log(row(["---", "---", "---", "---", "---"]));
    for (const kind of ["local", "forwarded"] as const) {
      const xs = times[kind];
      const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
      const label = kind === "local" ? "local (node 1, the owner)" : "forwarded (node 3 → node 1)";
      console.log(row([label, f1(quantile(xs, 0.5)), f1(quantile(xs, 0.9)), f1(quantile(xs, 0.99)), f1(mean)]));
    }
    console.log(`\nowner kill -9 → ConferenceStreamUnpublishedEvent on a survivor, ms (${DEATHS} deaths)`);
    console.log(row(["p50", "min", "max", "each"]));
    console.log(row(["---", "---", "---", "---"]));
    console.log(
      row([
        f1(quantile(deaths, 0.5)),
        f1(Math.min(...deaths)),
        f1(Math.max(...deaths)),
        deaths.map((d) => d.toFixed(0)).join(", "),
      ]),
    );
  } finally {
    for (const close of closers) close();
    await stopNodes(nodes);
    await db.stop();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);

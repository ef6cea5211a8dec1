/**
 * Media across the nodes of a cluster: three child-process nodes on one PostgreSQL, each on
 * its own loopback address (127.0.0.1/2/3) and announcing it, each with its own SFU. A
 * libwebrtc peer publishes through node 1 (its media is placed there); a viewer asks node 3
 * and decodes changing frames from node 1's candidates; a forwarded bad SDP gets the local
 * answer; the internal media service refuses every credential but the cluster's; kill -9 of
 * the owner → the survivors unpublish its stream with the usual event, and a new publish
 * through node 2 is placed on a live node and viewed again.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { MediaNodeService } from "../../gen/rtcplane/cluster/v1/media_node_pb.js";
import { ServerKey } from "../../src/auth/server-key.js";
import { type ClusterDatabase, clusterDatabase, clusterEnv, stopNodes } from "../helpers/cluster.js";
import { type Json, rest } from "../helpers/conference-client.js";
import { publishCamera, viewVideo } from "../helpers/media-peers.js";
import { CLUSTER_SECRET } from "../helpers/postgres.js";
import { ADMIN_TOKEN, type ChildServer, createApp, serviceToken, spawnServer, tempDir } from "../helpers/server.js";
import { RTCPeerConnection, setLocalOffer } from "../helpers/wrtc.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The IPs of an SDP's ICE candidates. */
function candidateIps(sdp: string): string[] {
  return [...sdp.matchAll(/^a=candidate:\S+ \d+ \S+ \d+ (\S+) \d+ typ/gm)].map((m) => m[1] as string);
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Frames keep arriving and their content changes. */
async function decodesChangingFrames(frames: number[]): Promise<void> {
  await until("decoded frames", async () => (frames.length >= 20 ? true : undefined));
  const recent = frames.slice(-20);
  assert.ok(new Set(recent).size > 3, `frames change: ${recent.join(",")}`);
}

let db: ClusterDatabase;
const nodes: ChildServer[] = [];
let token: string;
const call = (n: number) => rest(nodes[n - 1]?.url ?? "", token);

before(async () => {
  db = await clusterDatabase();
  for (const n of [1, 2, 3]) {
    const ip = `127.0.0.${n}`;
    nodes.push(
      await spawnServer(
        tempDir(),
        clusterEnv(db.url, {
          HOST: ip,
          ANNOUNCED_IP: ip,
          RTC_LISTEN_IP: ip,
          MEDIA_WORKERS: "1",
          NODE_HEARTBEAT_MS: "200",
          NODE_DEAD_AFTER_MS: "1000",
          MEDIA_STATS_INTERVAL_MS: "0",
        }),
      ),
    );
  }
  const app = await createApp(nodes[0]?.url ?? "");
  token = await serviceToken(nodes[0]?.url ?? "", app);
});

after(async () => {
  await stopNodes(nodes);
  await db?.stop();
});

describe("media across the nodes of a cluster", () => {
  const conferenceId = "media-cluster";
  const streamId = "cam-1";
  let publisher: Awaited<ReturnType<typeof publishCamera>> | undefined;
  /** After the kill: the stream published again, its node and a viewer of it. */
  let second: { ip: string; frames: number[] } | undefined;
  const closers: (() => void)[] = [];
  after(() => {
    for (const close of closers) close();
  });

  it("publish through node 1, view through node 3: the answer carries node 1's candidates and frames decode", async () => {
    assert.equal((await call(1)("POST", "/rtc-api/conferences/create", { conferenceId, mode: "ROUTER" })).status, 200);
    await call(2)("POST", "/rtc-api/conferences/join", { conferenceId, userEndpointId: "viewer", userId: "bob" });
    publisher = await publishCamera(call(1), conferenceId, "pub", streamId);
    closers.push(() => publisher?.close());
    assert.deepEqual([...new Set(candidateIps(publisher.answer))], ["127.0.0.1"]);

    const viewer = await viewVideo(call(3), conferenceId, "viewer", streamId, "view-3");
    closers.push(() => viewer.pc.close());
    assert.deepEqual([...new Set(candidateIps(viewer.answer))], ["127.0.0.1"], "the owner's candidates");
    await decodesChangingFrames(viewer.frames);
    // Layers, bitrate and stop are forwarded too: the owner answers for the view it holds.
    const layers = await call(2)("POST", "/rtc-api/conferences/updateViewLayers", {
      conferenceId,
      userEndpointId: "viewer",
      streamId: { id: streamId },
      viewerId: "view-3",
      spatialLayer: 0,
    });
    assert.equal(layers.status, 412, layers.text); // a single-layer stream, said by node 1
    assert.match(layers.text, /not simulcast/);
    const bitrate = await call(3)("POST", "/rtc-api/conferences/updatePublishedStreamBitrate", {
      conferenceId,
      userEndpointId: "pub",
      streamId: { id: streamId },
      videoBitrate: 300_000,
    });
    assert.equal(bitrate.status, 204, bitrate.text);
  });

  it("a forwarded request with a bad SDP gets the same answer as a local one", async () => {
    const bad = { conferenceId, userEndpointId: "viewer", streamId: { id: streamId }, sdpOffer: "v=0\r\nnot sdp\r\n" };
    const local = await call(1)("POST", "/rtc-api/conferences/viewStream", bad);
    const forwarded = await call(3)("POST", "/rtc-api/conferences/viewStream", bad);
    assert.equal(local.status, 400, local.text);
    assert.equal(forwarded.status, local.status);
    assert.equal(forwarded.text, local.text);
    const badPublish = { conferenceId, userEndpointId: "pub", conferenceStreamType: "CAM", sdpOffer: "nonsense" };
    const localPublish = await call(1)("POST", "/rtc-api/conferences/publishStream", badPublish);
    const forwardedPublish = await call(2)("POST", "/rtc-api/conferences/publishStream", badPublish);
    assert.equal(localPublish.status, 400, localPublish.text);
    assert.equal(forwardedPublish.status, 400);
    assert.equal(forwardedPublish.text, localPublish.text);
  });

  it("the internal media service refuses every credential but the cluster's", async () => {
    const url = nodes[0]?.url ?? "";
    const bearer =
      (value: string | undefined): Interceptor =>
      (next) =>
      (req) => {
        if (value !== undefined) req.header.set("authorization", `Bearer ${value}`);
        return next(req);
      };
    const ask = (credential: string | undefined, grpc = true) => {
      const options = { baseUrl: url, interceptors: [bearer(credential)] };
      const transport = grpc
        ? createGrpcTransport(options)
        : createConnectTransport({ ...options, httpVersion: "1.1" });
      return createClient(MediaNodeService, transport).stopView({
        conference: { appId: "any", conferenceId },
        streamId,
        viewerId: "view-3",
      });
    };
    for (const [name, credential] of [
      ["none", undefined],
      ["an app's service token", token],
      ["the admin token", ADMIN_TOKEN],
      ["a made-up key", "x".repeat(43)],
    ] as const) {
      for (const grpc of [true, false]) {
        await assert.rejects(
          ask(credential, grpc),
          (e: unknown) => ConnectError.from(e).code === Code.Unauthenticated,
          `${name} over ${grpc ? "gRPC" : "Connect"}`,
        );
      }
    }
    // The cluster's credential is taken; a call not meant for this node (no target) is refused.
    const credential = ServerKey.fromClusterSecret(CLUSTER_SECRET).derive("cluster.media-rpc").toString("base64url");
    await assert.rejects(ask(credential), (e: unknown) => {
      const err = ConnectError.from(e);
      return err.code === Code.Unavailable && /this is media node/.test(err.rawMessage);
    });
    // Not a REST route either.
    const res = await fetch(`${url}/rtcplane.cluster.v1.MediaNodeService/StopView`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: "{}",
    });
    assert.equal(res.status, 401);
  });

  it("kill -9 of the owner: survivors unpublish its stream with the event; a new publish is placed on a live node", async () => {
    const owner = nodes[0] as ChildServer;
    const killedAt = Date.now();
    owner.process.kill("SIGKILL");
    publisher?.close();
    // Before the owner is declared dead, media commands answer a documented status, never hang.
    const pc = new RTCPeerConnection();
    pc.addTransceiver("video", { direction: "recvonly" });
    const offer = await setLocalOffer(pc);
    const early = await call(2)("POST", "/rtc-api/conferences/viewStream", {
      conferenceId,
      userEndpointId: "viewer",
      streamId: { id: streamId },
      sdpOffer: offer,
    });
    pc.close();
    assert.ok([404, 503].includes(early.status), `${early.status} ${early.text}`);

    const unpublished = await until("ConferenceStreamUnpublishedEvent from a survivor", async () => {
      const r = await call(2)("GET", `/rtc-api/conferences/${conferenceId}/events?v=0`);
      const events = r.json as unknown as Json[];
      return Array.isArray(events)
        ? events.find((e) => e.type === "ConferenceStreamUnpublishedEvent" && e.streamId === streamId)
        : undefined;
    });
    const tookMs = Date.now() - killedAt;
    assert.ok(tookMs < 5_000, `unpublished ${tookMs} ms after the kill`);
    assert.equal(unpublished.streamType, "CAM");

    const again = await publishCamera(call(2), conferenceId, "pub2", "cam-2");
    closers.push(() => again.close());
    const ips = [...new Set(candidateIps(again.answer))];
    assert.equal(ips.length, 1);
    assert.ok(["127.0.0.2", "127.0.0.3"].includes(ips[0] as string), `placed on a live node: ${ips}`);
    const viewer = await viewVideo(call(3), conferenceId, "viewer", "cam-2", "view-again");
    closers.push(() => viewer.pc.close());
    assert.deepEqual([...new Set(candidateIps(viewer.answer))], ips);
    await decodesChangingFrames(viewer.frames);
    second = { ip: ips[0] as string, frames: viewer.frames };
  });

  it("a node frozen past NODE_DEAD_AFTER_MS is declared dead; once awake it closes the media it held and rejoins", async () => {
    assert.ok(second !== undefined, "the previous test published again");
    const owner = nodes[Number(second.ip.slice(-1)) - 1] as ChildServer;
    const other = owner === nodes[1] ? 3 : 2;
    owner.process.kill("SIGSTOP");
    try {
      await until("cam-2 unpublished by the other survivor", async () => {
        const r = await call(other)("GET", `/rtc-api/conferences/${conferenceId}/events?v=0`);
        const events = r.json as unknown as Json[];
        return events.some((e) => e.type === "ConferenceStreamUnpublishedEvent" && e.streamId === "cam-2")
          ? true
          : undefined;
      });
      // Its SFU worker is a process of its own: it forwards on while the node is frozen.
      const frozen = second.frames.length;
      await sleep(500);
      assert.ok(second.frames.length > frozen, "frames while the node is frozen");
    } finally {
      owner.process.kill("SIGCONT");
    }
    // Awake, the node finds itself declared dead and closes what it held: the frames stop.
    const frames = second.frames;
    await until("the media of the node declared dead closed", async () => {
      const n = frames.length;
      await sleep(600);
      return frames.length === n ? true : undefined;
    });
    // It rejoined: a new conference's first publish through it is placed on it.
    const c = "media-cluster-rejoined";
    const via = Number(second.ip.slice(-1));
    assert.equal(
      (await call(via)("POST", "/rtc-api/conferences/create", { conferenceId: c, mode: "ROUTER" })).status,
      200,
    );
    const again = await publishCamera(call(via), c, "pub3", "cam-3");
    closers.push(() => again.close());
    assert.deepEqual([...new Set(candidateIps(again.answer))], [second.ip]);
  });
});

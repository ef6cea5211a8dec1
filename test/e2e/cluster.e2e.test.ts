/**
 * Three nodes on one PostgreSQL (real, started for the run): what one node writes, the
 * others serve over REST, Connect and gRPC; a commit on one node wakes long-polls and MQTT
 * pushes on the others, in version order; a renewed secret is refused everywhere at once.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { clusterDatabase, startNodes } from "../helpers/cluster.js";
import { type Json, mqttClient, rest, roomToken, token, until } from "../helpers/conference-client.js";
import { type NatsServer, startNats } from "../helpers/nats.js";
import {
  ADMIN_TOKEN,
  bufCurl,
  createApp,
  createTenant,
  serviceToken,
  type TestApp,
  type TestServer,
} from "../helpers/server.js";
import { type Doc, Peer } from "../helpers/spreed-peer.js";

const nodes: TestServer[] = [];
let app: TestApp;

let stopDatabase: () => Promise<void> = async () => {};
let nats: NatsServer | undefined;

before(async () => {
  const db = await clusterDatabase();
  stopDatabase = db.stop;
  // One after the other: the first migrates, the others find the schema current.
  nats = await startNats();
  nodes.push(...(await startNodes(3, db.url, { LONG_POLL_TIMEOUT_MS: "5000", CLUSTER_BUS_URL: nats.url })));
  app = await createApp(node(1).url, { description: "cluster" });
});

after(async () => {
  await Promise.all(nodes.map((n) => n.close()));
  await stopDatabase();
  await nats?.stop();
});

function node(n: 1 | 2 | 3): TestServer {
  return nodes[n - 1] as TestServer;
}

function percentile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
}

describe("cluster: three nodes on one PostgreSQL", () => {
  it("a tenant, app and room made through node 1 are served by nodes 2 and 3 over REST, Connect and gRPC", async () => {
    const headers = { "x-auth-token": app.authToken };
    for (const n of [node(2), node(3)]) {
      const r = await fetch(`${n.url}/tenants/${app.tenantId}/apps/${app.appId}`, { headers });
      assert.equal(r.status, 200);
      assert.equal(((await r.json()) as Json).apikey, app.apikey);
    }
    for (const [n, protocol] of [
      [node(2), ["--protocol", "connect"]],
      [node(3), ["--protocol", "grpc", "--http2-prior-knowledge"]],
    ] as const) {
      const got = await bufCurl([
        ...protocol,
        "-H",
        `x-auth-token: ${app.authToken}`,
        "-d",
        JSON.stringify({ tenantId: app.tenantId, appId: app.appId }),
        `${n.url}/rtcplane.apps.v1.AppService/GetApp`,
      ]);
      assert.equal(got.code, 0, got.stderr);
      assert.equal((JSON.parse(got.stdout) as { app: Json }).app.apikey, app.apikey);
    }
    const room = await roomToken(node(1).url, app, { name: "made on node 1" });
    for (const n of [node(2), node(3)]) {
      const r = await fetch(`${n.url}/api/realtime/room/${room.id}`, { headers: { "x-vcs-token": app.secret } });
      assert.equal(r.status, 200);
      assert.equal(((await r.json()) as Json).name, "made on node 1");
    }
    // A page token sealed by one node opens on another (keys come from CLUSTER_SECRET).
    const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
    await createTenant(node(2).url, "second");
    const first = (await (
      await fetch(`${node(1).url}/admin/v1/tenants?pageSize=1`, { headers: admin })
    ).json()) as Json;
    const cursor = first.nextPageToken as string;
    assert.ok(typeof cursor === "string" && cursor !== "", JSON.stringify(first));
    const second = await fetch(`${node(3).url}/admin/v1/tenants?pageSize=1&pageToken=${encodeURIComponent(cursor)}`, {
      headers: admin,
    });
    assert.equal(second.status, 200, await second.clone().text());
  });

  it("a long-poll on node 2 is woken by a command on node 1 (p99 < 100 ms)", async () => {
    const service = await serviceToken(node(1).url, app);
    const on1 = rest(node(1).url, service);
    const on2 = rest(node(2).url, service);
    await on1("POST", "/rtc-api/conferences/create", { conferenceId: "wake" });
    await on1("POST", "/rtc-api/conferences/join", { conferenceId: "wake", userEndpointId: "w1", userId: "u" });
    let v = ((await on2("GET", "/rtc-api/conferences/wake/simpleView")).json as Json).version as number;
    const wakes: number[] = [];
    for (let i = 0; i < 40; i++) {
      let resolvedAt = 0;
      const poll = on2("GET", `/rtc-api/conferences/wake/events?v=${v}`).then((r) => {
        resolvedAt = performance.now();
        return r;
      });
      await new Promise((r) => setTimeout(r, 30)); // the waiter is parked on node 2
      const sent = await on1("POST", "/rtc-api/conferences/updateMetadata", {
        conferenceId: "wake",
        userEndpointId: "w1",
        key: "k",
        operation: "SET",
        value: String(i),
      });
      assert.ok(sent.status < 300, sent.text);
      const answered = performance.now();
      const r = await poll;
      assert.deepEqual(
        (r.json as Json[]).map((e) => [e.type, e.conferenceVersion]),
        [["ConferenceMetadataUpdatedEvent", v]],
      );
      wakes.push(Math.max(0, resolvedAt - answered));
      v += 1;
    }
    const p50 = percentile(wakes, 0.5);
    const p99 = percentile(wakes, 0.99);
    process.stdout.write(`# long-poll wake across nodes: p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms\n`);
    assert.ok(p99 < 100, `p99 ${p99} ms`);
  });

  it("an MQTT client on node 3 receives, in version order, the events of commands sent to nodes 1 and 2 at once", async () => {
    const room = await roomToken(node(1).url, app, { name: "mqtt" });
    const login = await token(node(3).url, { grant_type: "password", username: room.token }, `${app.apikey}:`);
    assert.equal(login.status, 200);
    const userId = login.json.userId as string;
    const user = rest(node(3).url, login.json.access_token as string);
    const ep = ((await user("POST", "/rtc-api/users/endpoints/register", { keepAliveSeconds: 30 })).json as Json)
      .id as string;
    assert.equal(
      (await user("POST", "/rtc-api/conferences/join", { conferenceId: room.id, userEndpointId: ep })).status,
      200,
    );
    const receiver = await mqttClient(node(3).url, userId, login.json.access_token as string);
    await receiver.client.subscribeAsync(`user/${userId}/${ep}`, { qos: 1 });
    const service = await serviceToken(node(2).url, app);
    const writers = [rest(node(1).url, service), rest(node(2).url, service)];
    const PER_NODE = 25;
    const answers = await Promise.all(
      writers.flatMap((write, w) =>
        Array.from({ length: PER_NODE }, (_, i) =>
          write("POST", "/rtc-api/conferences/updateMetadata", {
            conferenceId: room.id,
            userEndpointId: ep,
            key: `k${w}`,
            operation: "SET",
            value: String(i),
          }),
        ),
      ),
    );
    for (const a of answers) assert.ok(a.status < 300, a.text);
    const updates = () => receiver.messages.filter((m) => m.type === "ConferenceMetadataUpdatedEvent");
    await until("every update pushed", () => (updates().length >= 2 * PER_NODE ? true : undefined), 10_000);
    const versions = updates().map((m) => m.conferenceVersion as number);
    assert.equal(versions.length, 2 * PER_NODE, "no duplicates");
    for (let i = 1; i < versions.length; i++) {
      assert.equal(versions[i], (versions[0] as number) + i, `versions in order without gaps: ${versions.join(",")}`);
    }
    // The log agrees, read through the third node.
    const log = (await user("GET", `/rtc-api/conferences/${room.id}/events?v=${versions[0]}`)).json as Json[];
    assert.deepEqual(
      log.map((e) => e.conferenceVersion),
      versions,
    );
    await receiver.client.endAsync();
  });

  it("a renewed app secret is refused on every node at once", async () => {
    const renewed = await createApp(node(2).url, { description: "renew" });
    const clientCredentials = (url: string, secret: string) =>
      token(url, { grant_type: "client_credentials", client_id: renewed.apikey, client_secret: secret });
    // Every node has the app cached from a successful use.
    for (const n of nodes) assert.equal((await clientCredentials(n.url, renewed.secret)).status, 200);
    const r = await fetch(`${node(1).url}/tenants/${renewed.tenantId}/apps/${renewed.appId}/secretkey`, {
      method: "POST",
      headers: { "x-auth-token": renewed.authToken },
    });
    assert.equal(r.status, 200);
    const fresh = ((await r.json()) as { secretkey: string }).secretkey;
    const [old2, old3, new2, new3] = await Promise.all([
      clientCredentials(node(2).url, renewed.secret),
      clientCredentials(node(3).url, renewed.secret),
      clientCredentials(node(2).url, fresh),
      clientCredentials(node(3).url, fresh),
    ]);
    assert.deepEqual(
      [old2.status, old3.status, new2.status, new3.status],
      [401, 401, 200, 200],
      JSON.stringify([old2.json, old3.json]),
    );
  });

  it("two Spreed clients on nodes 1 and 2 in one room see each other and exchange Offer/Answer/Candidate/Bye", async () => {
    const name = `cluster-${Date.now()}`;
    const hello = async (p: Peer) => {
      p.send("Hello", { Version: "1.0", Ua: "test", Name: name, Type: "Room" });
      return (await p.next("Welcome")).Data as Doc;
    };
    const one = await Peer.connect(node(1).url);
    const two = await Peer.connect(node(2).url);
    try {
      one.send("Self", {});
      const oneId = (await one.self()).Id as string;
      two.send("Self", {});
      const twoId = (await two.self()).Id as string;
      await hello(one);
      const welcome = await hello(two);
      assert.ok(
        (welcome.Users as Doc[]).some((u) => u.Id === oneId),
        "node 2's Welcome lists node 1's session",
      );
      const joined = (await one.next("Joined")).Data as Doc;
      assert.equal(joined.Id, twoId, "node 1 hears of node 2's join");
      const sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";
      one.send("Offer", { To: twoId, Type: "Offer", Offer: { type: "offer", sdp } });
      assert.equal((await two.next("Offer")).From, oneId);
      two.send("Answer", { To: oneId, Type: "Answer", Answer: { type: "answer", sdp } });
      assert.equal((await one.next("Answer")).From, twoId);
      const candidate = {
        type: "candidate",
        sdpMid: "0",
        sdpMLineIndex: 0,
        candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ host",
      };
      one.send("Candidate", { To: twoId, Type: "Candidate", Candidate: candidate });
      assert.deepEqual(((await two.next("Candidate")).Data as Doc).Candidate, candidate);
      two.send("Bye", { To: oneId, Type: "Bye", Bye: {} });
      assert.equal((await one.next("Bye")).From, twoId);
      two.close();
      assert.equal(((await one.next("Left", 5000)).Data as Doc).Id, twoId, "node 2's session left, as seen on node 1");
    } finally {
      one.close();
      two.close();
    }
  });
});

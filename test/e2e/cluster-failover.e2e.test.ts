/**
 * Failover of a three-node cluster on one PostgreSQL (real, child-process nodes, kill -9):
 * under write load on every node no acknowledged write is lost and the surviving nodes answer
 * every request; the background sweeps (endpoint keep-alives, room expiry, call ring timeouts)
 * go on from the survivors; a node started again on the same database serves what was written.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { clusterDatabase, clusterEnv, stopNodes } from "../helpers/cluster.js";
import { type Json, rest, token } from "../helpers/conference-client.js";
import { type SdkUser, sdkUser, uuid } from "../helpers/sdk-user.js";
import {
  ADMIN_TOKEN,
  type ChildServer,
  createApp,
  serviceToken,
  spawnServer,
  type TestApp,
  tempDir,
} from "../helpers/server.js";

/** A child-process node and the lines it logged (JSON, one per line). */
interface Node {
  readonly n: number;
  readonly url: string;
  readonly child: ChildServer;
  readonly log: string[];
}

async function spawnNode(n: number, databaseUrl: string, env: Record<string, string> = {}): Promise<Node> {
  const child = await spawnServer(tempDir(), clusterEnv(databaseUrl, env));
  const log: string[] = [];
  for (const stream of [child.process.stdout, child.process.stderr]) {
    let partial = "";
    stream?.on("data", (chunk: Buffer) => {
      const lines = (partial + chunk.toString()).split("\n");
      partial = lines.pop() ?? "";
      log.push(...lines);
    });
  }
  return { n, url: child.url, child, log };
}

/** Log lines at warn level or above (pino: 40 warn, 50 error, 60 fatal). */
function problems(node: Node): string[] {
  return node.log.filter((l) => /"level":(4|5|6)\d/.test(l));
}

/** Log lines at error level or above. */
function errors(node: Node): string[] {
  return node.log.filter((l) => /"level":(5|6)\d/.test(l));
}

function kill9(node: Node): void {
  node.child.process.kill("SIGKILL");
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One HTTP exchange; throws on a connection error (no answer). */
async function http(
  url: string,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: unknown,
): Promise<{ status: number; text: string; json: Json }> {
  const res = await fetch(url + path, {
    method,
    headers: { ...headers, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  let json: Json = {};
  try {
    json = text === "" ? {} : (JSON.parse(text) as Json);
  } catch {}
  return { status: res.status, text, json };
}

const ok = (status: number) => status >= 200 && status < 300;

async function inChunks<T>(items: readonly T[], size: number, each: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(each));
}

/** A conference's whole versioned log read through `url`: versions 0..version-1, in pages. */
async function versionedLog(url: string, bearer: string, conferenceId: string, version: number): Promise<Json[]> {
  const call = rest(url, bearer);
  const events: Json[] = [];
  let from = 0;
  while (events.length < version) {
    const page = await call("GET", `/rtc-api/conferences/${conferenceId}/events?v=${from}`);
    assert.equal(page.status, 200, page.text);
    const versioned = (page.json as Json[]).filter((e) => typeof e.conferenceVersion === "number");
    assert.ok(versioned.length > 0, `no events from v=${from} of ${conferenceId} (view version ${version})`);
    events.push(...versioned);
    from = (versioned[versioned.length - 1]?.conferenceVersion as number) + 1;
  }
  return events;
}

function assertContiguous(conferenceId: string, events: readonly Json[], version: number): void {
  const versions = events.map((e) => e.conferenceVersion as number);
  const expected = Array.from({ length: version }, (_, i) => i);
  assert.deepEqual(versions, expected, `${conferenceId}: versions 0..${version - 1} without gaps or duplicates`);
}

describe("cluster failover: kill -9 under write load", () => {
  let stopDatabase: () => Promise<void> = async () => {};
  let databaseUrl = "";
  const nodes: Node[] = [];
  let app: TestApp;
  const node = (n: number) => nodes[n - 1] as Node;

  const WORKERS_PER_NODE = 4;
  const SHARED = "shared-by-all";
  /** What was acknowledged (2xx), kept for the checks after the kill and after the restart. */
  const acked = {
    metadata: [] as { node: number; conferenceId: string; key: string; value: string }[],
    tenants: [] as { node: number; tenantId: string; name: string }[],
    apps: [] as { node: number; tenantId: string; authToken: string; appId: string; description: string }[],
  };
  /** Metadata writes that got no answer (node 1's in-flight requests at the kill). */
  const inDoubt: { conferenceId: string; key: string; value: string }[] = [];

  before(async () => {
    const db = await clusterDatabase({ durable: false });
    stopDatabase = db.stop;
    databaseUrl = db.url;
    // One after the other: the first migrates.
    for (let n = 1; n <= 3; n++) nodes.push(await spawnNode(n, databaseUrl));
    app = await createApp(node(1).url, { description: "failover" });
  });

  after(async () => {
    await stopNodes(nodes.map((n) => n.child));
    await stopDatabase();
  });

  it("kill -9 of one node under write load: no acknowledged write lost, the other nodes keep serving", async () => {
    const tokens = await Promise.all(nodes.map((n) => serviceToken(n.url, app)));
    const bearer = (n: number) => ({ authorization: `Bearer ${tokens[n - 1]}` });
    assert.equal(
      (await http(node(2).url, "POST", "/rtc-api/conferences/create", bearer(2), { conferenceId: SHARED })).status,
      200,
    );
    // Each worker: a conference of its own, created and joined through its node; it also joins the shared one.
    const workers = nodes.flatMap((nd) => Array.from({ length: WORKERS_PER_NODE }, (_, w) => ({ nd, w })));
    await Promise.all(
      workers.map(async ({ nd, w }) => {
        const own = `own-${nd.n}-${w}`;
        const ep = `ep-${nd.n}-${w}`;
        const h = bearer(nd.n);
        assert.equal((await http(nd.url, "POST", "/rtc-api/conferences/create", h, { conferenceId: own })).status, 200);
        for (const conferenceId of [own, SHARED]) {
          const j = await http(nd.url, "POST", "/rtc-api/conferences/join", h, {
            conferenceId,
            userEndpointId: ep,
            userId: `user-${nd.n}-${w}`,
          });
          assert.equal(j.status, 200, j.text);
        }
      }),
    );

    let killedAt = 0; // performance.now() of the kill; 0 before
    let stopped = false;
    const failures: string[] = [];
    let lostInFlight = 0;
    /** Latencies of nodes 2 and 3's acknowledged writes, before and after the kill. */
    const latency = { before: [] as number[], after: [] as number[] };
    const count = { before: [0, 0, 0], after: [0, 0, 0] };
    const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

    const work = async (nd: Node, w: number): Promise<void> => {
      const own = `own-${nd.n}-${w}`;
      const ep = `ep-${nd.n}-${w}`;
      for (let i = 0; !stopped; i++) {
        let started = performance.now();
        const acknowledged = () => {
          const when = killedAt === 0 ? count.before : count.after;
          when[nd.n - 1] = (when[nd.n - 1] ?? 0) + 1;
          if (nd.n !== 1) (killedAt === 0 ? latency.before : latency.after).push(performance.now() - started);
        };
        const refused = (what: string, r: { status: number; text: string }) =>
          failures.push(
            `node ${nd.n} ${what}: ${r.status} ${r.text.slice(0, 300)} (${killedAt === 0 ? "before" : "after"} the kill)`,
          );
        let write: { conferenceId: string; key: string; value: string } | undefined;
        try {
          if (i % 5 === 4) {
            // Admin API: a tenant, then an app of it through the app API.
            const name = `tenant-${nd.n}-${w}-${i}`;
            const t = await http(nd.url, "POST", "/admin/v1/tenants", admin, { name });
            if (t.status !== 200) {
              refused("create tenant", t);
              continue;
            }
            const tenantId = t.json.tenantId as string;
            const authToken = t.json.authToken as string;
            acked.tenants.push({ node: nd.n, tenantId, name });
            acknowledged();
            started = performance.now();
            const description = `app-${nd.n}-${w}-${i}-${randomBytes(4).toString("hex")}`;
            const a = await http(
              nd.url,
              "POST",
              `/tenants/${tenantId}/apps`,
              { "x-auth-token": authToken },
              { description },
            );
            if (a.status !== 200) {
              refused("create app", a);
              continue;
            }
            acked.apps.push({ node: nd.n, tenantId, authToken, appId: a.json.id as string, description });
            acknowledged();
          } else {
            write = {
              conferenceId: i % 2 === 0 ? own : SHARED,
              key: `k-${nd.n}-${w}-${i}`,
              value: randomBytes(8).toString("hex"),
            };
            const r = await http(nd.url, "POST", "/rtc-api/conferences/updateMetadata", bearer(nd.n), {
              conferenceId: write.conferenceId,
              userEndpointId: ep,
              key: write.key,
              operation: "SET",
              value: write.value,
            });
            if (!ok(r.status)) {
              refused(`updateMetadata ${write.conferenceId}`, r);
              continue;
            }
            acked.metadata.push({ node: nd.n, ...write });
            acknowledged();
          }
        } catch (e) {
          if (nd.n === 1 && killedAt !== 0) {
            // No answer from the killed node: not acknowledged, so not counted.
            lostInFlight++;
            if (write !== undefined) inDoubt.push(write);
            return;
          }
          failures.push(`node ${nd.n}: no answer: ${(e as Error).message} ${String((e as Error).cause ?? "")}`);
        }
      }
    };

    const t0 = performance.now();
    const running = Promise.all(workers.map(({ nd, w }) => work(nd, w)));
    await sleep(2000);
    killedAt = performance.now();
    kill9(node(1));
    assert.equal(await node(1).child.exited, null, "node 1 died of the signal");
    await sleep(Math.max(0, killedAt + 3000 - performance.now()));
    stopped = true;
    await running;
    const loadMs = performance.now() - t0;

    for (const n of [2, 3]) {
      const p = problems(node(n));
      if (p.length > 0) process.stdout.write(`# node ${n} warnings/errors:\n#   ${p.join("\n#   ")}\n`);
    }
    assert.deepEqual(failures, [], "no refused or unanswered request except node 1's in flight at the kill");
    assert.deepEqual([...errors(node(2)), ...errors(node(3))], [], "no errors logged by the survivors");
    assert.ok((count.before[0] ?? 0) > 0, "node 1 acknowledged writes before the kill");
    assert.ok((count.after[1] ?? 0) > 0 && (count.after[2] ?? 0) > 0, "nodes 2 and 3 served after the kill");

    // Everything acknowledged is there, with its value, read through node 3.
    const v3 = bearer(3);
    const conferences = [SHARED, ...workers.map(({ nd, w }) => `own-${nd.n}-${w}`)];
    let events = 0;
    let inDoubtCommitted = 0;
    const doubtful = new Map(inDoubt.map((d) => [d.key, d]));
    const expectedByKey = new Map(acked.metadata.map((m) => [m.key, m]));
    for (const conferenceId of conferences) {
      const view = await http(node(3).url, "GET", `/rtc-api/conferences/${conferenceId}/simpleView`, v3);
      assert.equal(view.status, 200, view.text);
      const version = view.json.version as number;
      const metadata = view.json.metadata as Record<string, { value: string }>;
      const log = await versionedLog(node(3).url, tokens[2] as string, conferenceId, version);
      assertContiguous(conferenceId, log, version);
      events += log.length;
      const updates = log.filter((e) => e.type === "ConferenceMetadataUpdatedEvent");
      const seen = new Set<string>();
      for (const e of updates) {
        const key = e.key as string;
        assert.ok(!seen.has(key), `${conferenceId}: ${key} logged once`);
        seen.add(key);
        const expected = expectedByKey.get(key) ?? doubtful.get(key);
        assert.ok(expected !== undefined, `${conferenceId}: ${key} was written by a worker`);
        assert.equal(expected.conferenceId, conferenceId);
        assert.equal(e.value, expected.value, `${key}'s logged value`);
        if (doubtful.has(key)) inDoubtCommitted++;
      }
      for (const m of acked.metadata.filter((a) => a.conferenceId === conferenceId)) {
        assert.ok(seen.has(m.key), `acknowledged ${m.key} (node ${m.node}) is in ${conferenceId}'s log`);
        assert.equal(
          metadata[m.key]?.value,
          m.value,
          `acknowledged ${m.key} (node ${m.node}) in ${conferenceId}'s view`,
        );
      }
    }
    await inChunks(acked.tenants, 16, async (t) => {
      const r = await http(node(3).url, "GET", `/admin/v1/tenants/${t.tenantId}`, admin);
      assert.equal(r.status, 200, `tenant ${t.name} (node ${t.node}): ${r.text}`);
      assert.equal((r.json.tenant as Json).name, t.name);
    });
    await inChunks(acked.apps, 16, async (a) => {
      const r = await http(node(3).url, "GET", `/tenants/${a.tenantId}/apps/${a.appId}`, {
        "x-auth-token": a.authToken,
      });
      assert.equal(r.status, 200, `app ${a.description} (node ${a.node}): ${r.text}`);
      assert.equal(r.json.description, a.description);
    });

    const total = acked.metadata.length + acked.tenants.length + acked.apps.length;
    const pct = (values: number[], q: number) => {
      const sorted = [...values].sort((a, b) => a - b);
      return (sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0).toFixed(0);
    };
    const latencies = (values: number[]) =>
      `p50 ${pct(values, 0.5)} ms, p99 ${pct(values, 0.99)} ms, max ${pct(values, 1)} ms`;
    process.stdout.write(
      `# failover load: ${(loadMs / 1000).toFixed(1)} s, ${total} writes acknowledged ` +
        `(${acked.metadata.length} metadata, ${acked.tenants.length} tenants, ${acked.apps.length} apps), lost 0; ` +
        `per node before the kill ${count.before.join("/")}, after ${count.after.join("/")}; ` +
        `node 1 in flight at the kill ${lostInFlight} (metadata ${inDoubt.length}, of which committed ${inDoubtCommitted}); ` +
        `${events} versioned events in ${conferences.length} contiguous logs; ` +
        `nodes 2+3 write latency before the kill ${latencies(latency.before)}, after ${latencies(latency.after)}\n`,
    );
  });

  it("a node started again on the same database serves what was written before, and writes for the others", async () => {
    assert.ok(acked.metadata.length > 0, "the load test ran");
    const restarted = await spawnNode(4, databaseUrl);
    nodes.push(restarted);
    const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
    const fromNode1 = acked.tenants.filter((t) => t.node === 1);
    await inChunks(fromNode1, 16, async (t) => {
      const r = await http(restarted.url, "GET", `/admin/v1/tenants/${t.tenantId}`, admin);
      assert.equal(r.status, 200, r.text);
      assert.equal((r.json.tenant as Json).name, t.name);
    });
    const service = await serviceToken(restarted.url, app);
    const view = await http(restarted.url, "GET", `/rtc-api/conferences/${SHARED}/simpleView`, {
      authorization: `Bearer ${service}`,
    });
    assert.equal(view.status, 200, view.text);
    const metadata = view.json.metadata as Record<string, { value: string }>;
    for (const m of acked.metadata.filter((a) => a.conferenceId === SHARED))
      assert.equal(metadata[m.key]?.value, m.value);
    // A write through it is served by a node that ran all along.
    const w = await http(
      restarted.url,
      "POST",
      "/rtc-api/conferences/updateMetadata",
      { authorization: `Bearer ${service}` },
      { conferenceId: SHARED, userEndpointId: "ep-2-0", key: "after-restart", operation: "SET", value: "yes" },
    );
    assert.equal(w.status, 204, w.text);
    const seen = await http(node(2).url, "GET", `/rtc-api/conferences/${SHARED}/simpleView`, {
      authorization: `Bearer ${service}`,
    });
    assert.equal((seen.json.metadata as Record<string, { value: string }>)["after-restart"]?.value, "yes");
    assert.equal(seen.json.version, (view.json.version as number) + 1);
    process.stdout.write(
      `# restarted node: served ${fromNode1.length} of node 1's tenants and the shared conference at version ${view.json.version}\n`,
    );
  });
});

describe("cluster failover: sweeps go on when a node dies", () => {
  let stopDatabase: () => Promise<void> = async () => {};
  const nodes: Node[] = [];
  const users: SdkUser[] = [];
  const node = (n: number) => nodes[n - 1] as Node;
  const KEEP_ALIVE_SECONDS = 1; // the minimum
  const ROOM_TTL_SECONDS = 2;
  const RING_TIMEOUT_SECONDS = 1;
  const MARGIN_MS = 1500;

  before(async () => {
    const db = await clusterDatabase({ durable: false });
    stopDatabase = db.stop;
    const common = {
      ENDPOINT_SWEEP_INTERVAL_MS: "200",
      ROOM_SWEEP_INTERVAL_MS: "200",
      ROOM_USE_FLUSH_INTERVAL_MS: "200", // also the cluster's grace before a room expires
      CALL_RING_TIMEOUT_SECONDS: String(RING_TIMEOUT_SECONDS),
      LONG_POLL_TIMEOUT_MS: "1000",
    };
    // Node 1 (the one killed) sweeps most often, so it most likely ran the rounds before the
    // kill; a room's TTL is the creating node's ROOM_TTL_SECONDS, so only rooms made through
    // node 1 are short-lived.
    nodes.push(
      await spawnNode(1, db.url, {
        ...common,
        ENDPOINT_SWEEP_INTERVAL_MS: "50",
        ROOM_SWEEP_INTERVAL_MS: "100",
        ROOM_TTL_SECONDS: String(ROOM_TTL_SECONDS),
      }),
    );
    for (const n of [2, 3]) nodes.push(await spawnNode(n, db.url, common));
  });

  after(async () => {
    await Promise.all(users.map((u) => u.close().catch(() => {})));
    await stopNodes(nodes.map((n) => n.child));
    await stopDatabase();
  });

  it("sweeps continue when a node dies: keep-alive removal, room expiry and ring timeout from the survivors", async () => {
    const app = await createApp(node(2).url, { description: "sweeps" });
    const service = await serviceToken(node(2).url, app);
    const vcs = { "x-vcs-token": app.secret };
    // A room with the default TTL (made through node 2) and an endpoint of a ticket login in it.
    const room = await http(node(2).url, "POST", "/api/realtime/room", vcs, { name: "keep-alive" });
    assert.equal(room.status, 200, room.text);
    const { id: roomId, token: ticket } = room.json.room as { id: string; token: string };
    const login = await token(node(2).url, { grant_type: "password", username: ticket }, `${app.apikey}:`);
    assert.equal(login.status, 200, JSON.stringify(login.json));
    const user = rest(node(2).url, login.json.access_token as string);
    const endpointId = uuid();
    const reg = await user("POST", "/rtc-api/users/endpoints/register", {
      keepAliveSeconds: KEEP_ALIVE_SECONDS,
      userEndpointId: endpointId,
      userId: login.json.sub,
    });
    assert.equal(reg.status, 200, reg.text);
    assert.equal(
      (await user("POST", "/rtc-api/conferences/join", { conferenceId: roomId, userEndpointId: endpointId })).status,
      200,
    );
    const viaNode2 = rest(node(2).url, service);
    const joined = (await viaNode2("GET", `/rtc-api/conferences/${roomId}/simpleView`)).json;
    // A one-to-one call that nobody answers: Alice's endpoint on node 2, Bob's on node 3.
    const alice = await sdkUser(node(2).url, app, ticket);
    users.push(alice);
    const bob = await sdkUser(node(3).url, app, ticket);
    users.push(bob);

    // Right before the kill: the endpoint's last keep-alive, the call (through node 1) and a
    // short-lived room (through node 1).
    const ka = await user("POST", "/rtc-api/users/endpoints/keepalive", { userEndpointId: endpointId });
    assert.equal(ka.status, 204, ka.text);
    const lastKeepAlive = performance.now();
    const callId = uuid();
    const called = await rest(node(1).url, alice.access)("POST", "/rtc-api/calls/call", {
      callId,
      sdpOffer: "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n",
      target: bob.userId,
      userEndpointId: alice.endpointId,
    });
    assert.equal(called.status, 204, called.text);
    const calledAt = performance.now();
    const short = await http(node(1).url, "POST", "/api/realtime/room", vcs, { name: "short-lived" });
    assert.equal(short.status, 200, short.text);
    const shortRoom = short.json.room as { id: string; roomTTLSeconds?: number };
    const shortCreatedAt = performance.now();
    const listed = async () =>
      ((await http(node(2).url, "GET", "/api/realtime/room?numberOfRecords=100", vcs)).json.data as Json[]) ?? [];
    const listedShort = (await listed()).find((r) => r.id === shortRoom.id);
    assert.equal(listedShort?.roomTTLSeconds, ROOM_TTL_SECONDS, "node 2 lists the short-lived room");

    const killedAt = performance.now();
    kill9(node(1));
    await node(1).child.exited;
    const sinceKill = () => performance.now() - killedAt;

    const endpointGone = (async () => {
      // Long-polls through node 2 from the version after the join, until the endpoint has left.
      let v = joined.version as number;
      const deadline = killedAt + 2 * KEEP_ALIVE_SECONDS * 1000 + MARGIN_MS;
      let sickSeen: number | undefined;
      let done = false;
      // Meanwhile, when it turns SICK, seen through node 3.
      const sick = (async () => {
        while (!done && sickSeen === undefined) {
          const e = await http(node(3).url, "GET", `/rtc-api/users/endpoints/${endpointId}`, {
            authorization: `Bearer ${service}`,
          });
          if (e.json.state === "SICK") sickSeen = sinceKill();
          await sleep(25);
        }
      })();
      try {
        for (;;) {
          assert.ok(performance.now() < deadline, `the endpoint left within ${deadline - killedAt} ms of the kill`);
          const page = await viaNode2("GET", `/rtc-api/conferences/${roomId}/events?v=${v}`);
          assert.equal(page.status, 200, page.text);
          const events = page.json as Json[];
          const left = events.find((e) => e.type === "ConferenceLeftEvent" && e.userEndpointId === endpointId);
          if (left !== undefined) {
            const leftMs = sinceKill();
            const sinceKeepAliveMs = performance.now() - lastKeepAlive;
            assert.equal(left.reason, "keep-alive expired");
            assert.ok(performance.now() < deadline, `the endpoint left ${leftMs} ms after the kill`);
            return { leftMs, sinceKeepAliveMs, sickMs: sickSeen };
          }
          const last = events[events.length - 1]?.conferenceVersion;
          if (typeof last === "number") v = last + 1;
        }
      } finally {
        done = true;
        await sick;
      }
    })();
    const roomExpired = (async () => {
      const deadline = shortCreatedAt + ROOM_TTL_SECONDS * 1000 + 200 + 200 + MARGIN_MS;
      // Listing does not count as use (a GET of the room would keep it alive).
      while ((await listed()).some((r) => r.id === shortRoom.id)) {
        assert.ok(performance.now() < deadline, "the short-lived room expired in time");
        await sleep(50);
      }
      return sinceKill();
    })();
    const callTimedOut = (async () => {
      const ms = Math.max(0, calledAt + RING_TIMEOUT_SECONDS * 1000 + MARGIN_MS - performance.now());
      const [cancelled, ended] = await Promise.all([
        bob.event("CallCancelledEvent", (e) => e.callId === callId, ms),
        alice.event("CallEndedEvent", (e) => e.callId === callId, ms),
      ]);
      assert.deepEqual([cancelled.reason, ended.reason], ["no answer", "no answer"]);
      return sinceKill();
    })();
    const [endpoint, roomMs, callMs] = await Promise.all([endpointGone, roomExpired, callTimedOut]);

    const view = await rest(node(3).url, service)("GET", `/rtc-api/conferences/${roomId}/simpleView`);
    assert.deepEqual(view.json.participants, [], "the expired endpoint is no participant any more");
    assert.equal((await viaNode2("GET", `/rtc-api/users/endpoints/${endpointId}`)).status, 404);
    const gone = await http(node(3).url, "GET", `/api/realtime/room/${shortRoom.id}`, vcs);
    assert.equal(gone.json.code, "REALTIME-00004", gone.text);
    assert.equal((await http(node(3).url, "GET", `/api/realtime/room/${roomId}`, vcs)).status, 200);

    // Which survivor did what, from their logs.
    const by = (match: (line: string) => boolean) =>
      [2, 3]
        .filter((n) => node(n).log.some(match))
        .map((n) => `node ${n}`)
        .join("+") || "?";
    const sweptBy = by((l) => l.includes("endpoint keep-alive sweep") && l.includes(`"removed":["${endpointId}"`));
    const expiredBy = by((l) => l.includes("expired rooms deleted") && l.includes(shortRoom.id));
    const timedOutBy = by((l) => l.includes("unanswered calls timed out"));
    for (const n of [2, 3]) {
      const p = problems(node(n));
      if (p.length > 0) process.stdout.write(`# node ${n} warnings/errors:\n#   ${p.join("\n#   ")}\n`);
    }
    assert.deepEqual([...errors(node(2)), ...errors(node(3))], [], "no errors logged by the survivors");
    process.stdout.write(
      `# sweeps after the kill: endpoint (keep-alive ${KEEP_ALIVE_SECONDS} s) SICK at ${endpoint.sickMs?.toFixed(0) ?? "-"} ms, ` +
        `left its conference at ${endpoint.leftMs.toFixed(0)} ms after the kill ` +
        `(${endpoint.sinceKeepAliveMs.toFixed(0)} ms after its last keep-alive; ${sweptBy}); ` +
        `room (TTL ${ROOM_TTL_SECONDS} s) gone at ${roomMs.toFixed(0)} ms (${expiredBy}); ` +
        `call (ring ${RING_TIMEOUT_SECONDS} s) cancelled at ${callMs.toFixed(0)} ms (${timedOutBy})\n`,
    );
  });
});

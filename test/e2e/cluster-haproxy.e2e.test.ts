/**
 * The cluster behind a real HAProxy run from deploy/haproxy.cfg (as production runs it): three
 * node processes on one PostgreSQL. Through the balancer, REST, Connect (HTTP/1.1 and HTTP/2),
 * gRPC (h2c) and WebSocket upgrades (MQTT) all work and are spread over the three nodes
 * (HAProxy's own per-server counters say so), media calls like the others. Then a node is
 * killed with SIGKILL under a mixed read/write load: every answer is right or a clean failure
 * (a 502/503/504 from HAProxy, or a connection error), never a wrong one; HAProxy takes the
 * node out within seconds and requests succeed again; every acknowledged write is there.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type ClusterDatabase, clusterDatabase, spawnNodes, stopNodes } from "../helpers/cluster.js";
import { type Json, mqttClient, rest, roomToken, token, until } from "../helpers/conference-client.js";
import { type HAProxy, type StatRow, startHAProxy } from "../helpers/haproxy.js";
import { bufCurl, type ChildServer, createApp, serviceToken, type TestApp } from "../helpers/server.js";

let db: ClusterDatabase | undefined;
let nodes: ChildServer[] = [];
let haproxy: HAProxy | undefined;
let app: TestApp;
/** Each node's log lines at level error or above (pino: "level":50+). */
const errors: string[][] = [[], [], []];

before(async () => {
  db = await clusterDatabase();
  nodes = await spawnNodes(3, db.url, { LONG_POLL_TIMEOUT_MS: "5000" });
  nodes.forEach((n, i) => {
    let partial = "";
    n.process.stdout?.on("data", (chunk: Buffer) => {
      const lines = (partial + chunk.toString()).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) if (/"level":(5|6)\d/.test(line)) errors[i]?.push(line);
    });
  });
  haproxy = await startHAProxy(nodes.map((n) => n.url));
  app = await createApp(lb(), { description: "behind haproxy" });
});

after(async () => {
  await haproxy?.stop();
  await stopNodes(nodes);
  await db?.stop();
});

function lb(): string {
  return (haproxy as HAProxy).url;
}

/** Requests each server of `proxy` got since `before` (HAProxy's `stot` counters). */
function spread(before: readonly StatRow[], now: readonly StatRow[], proxy: string): number[] {
  const total = (rows: readonly StatRow[], server: string) =>
    rows.find((r) => r.proxy === proxy && r.server === server)?.total ?? 0;
  return ["node1", "node2", "node3"].map((s) => total(now, s) - total(before, s));
}

function getApp(protocol: readonly string[]) {
  return bufCurl([
    ...protocol,
    "-H",
    `x-auth-token: ${app.authToken}`,
    "-d",
    JSON.stringify({ tenantId: app.tenantId, appId: app.appId }),
    `${lb()}/rtcplane.apps.v1.AppService/GetApp`,
  ]);
}

describe("cluster behind HAProxy (deploy/haproxy.cfg)", () => {
  it("serves REST, Connect, gRPC and WebSockets through one port, spread over all three nodes", async () => {
    const hp = haproxy as HAProxy;
    assert.equal((await fetch(`${lb()}/haproxy-health`)).status, 200);

    // REST (HTTP/1.1): round robin over the nodes.
    let before = await hp.stats();
    for (let i = 0; i < 9; i++) {
      const r = await fetch(`${lb()}/tenants/${app.tenantId}/apps/${app.appId}`, {
        headers: { "x-auth-token": app.authToken },
      });
      assert.equal(r.status, 200);
      assert.equal(((await r.json()) as Json).apikey, app.apikey);
    }
    assert.deepEqual(spread(before, await hp.stats(), "be_http"), [3, 3, 3], "REST round robin");

    // Connect over HTTP/1.1 (a plain unary JSON POST) stays HTTP/1.1 to the nodes.
    before = await hp.stats();
    for (let i = 0; i < 3; i++) {
      const r = await fetch(`${lb()}/rtcplane.apps.v1.AppService/GetApp`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "connect-protocol-version": "1",
          "x-auth-token": app.authToken,
        },
        body: JSON.stringify({ tenantId: app.tenantId, appId: app.appId }),
      });
      assert.equal(r.status, 200);
      assert.equal(((await r.json()) as { app: Json }).app.apikey, app.apikey);
    }
    assert.deepEqual(spread(before, await hp.stats(), "be_http"), [1, 1, 1], "Connect over HTTP/1.1");

    // gRPC over h2c (prior knowledge) and Connect from an HTTP/2 client (buf curl, with its
    // reflection stream): HTTP/2 to the nodes, spread over all three.
    before = await hp.stats();
    for (const protocol of [
      ["--protocol", "grpc", "--http2-prior-knowledge"],
      ["--protocol", "grpc", "--http2-prior-knowledge"],
      ["--protocol", "connect"],
    ]) {
      const got = await getApp(protocol);
      assert.equal(got.code, 0, `${protocol.join(" ")}: ${got.stderr}`);
      assert.equal((JSON.parse(got.stdout) as { app: Json }).app.apikey, app.apikey);
    }
    const h2 = spread(before, await hp.stats(), "be_h2");
    assert.ok(
      h2.every((n) => n >= 1),
      `gRPC spread over every node: ${h2}`,
    );

    // WebSockets (MQTT on /ws): three clients, one per node (leastconn); a command sent through
    // the balancer (to any node) is pushed to each of them, whatever node holds its socket.
    before = await hp.stats();
    const service = await serviceToken(lb(), app);
    const room = await roomToken(lb(), app, { name: "behind haproxy" });
    const clients: Awaited<ReturnType<typeof mqttClient>>[] = [];
    const endpoints: string[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const login = await token(lb(), { grant_type: "password", username: room.token }, `${app.apikey}:`);
        assert.equal(login.status, 200, JSON.stringify(login.json));
        const access = login.json.access_token as string;
        const userId = login.json.userId as string;
        const user = rest(lb(), access);
        const ep = ((await user("POST", "/rtc-api/users/endpoints/register", { keepAliveSeconds: 30 })).json as Json)
          .id as string;
        const joined = await user("POST", "/rtc-api/conferences/join", { conferenceId: room.id, userEndpointId: ep });
        assert.equal(joined.status, 200, joined.text);
        const client = await mqttClient(lb(), userId, access);
        clients.push(client);
        endpoints.push(ep);
        await client.client.subscribeAsync(`user/${userId}/${ep}`, { qos: 1 });
      }
      assert.deepEqual(spread(before, await hp.stats(), "be_ws"), [1, 1, 1], "one WebSocket per node");
      const sent = await rest(lb(), service)("POST", "/rtc-api/conferences/updateMetadata", {
        conferenceId: room.id,
        userEndpointId: endpoints[0],
        key: "through",
        operation: "SET",
        value: "haproxy",
      });
      assert.equal(sent.status, 204, sent.text);
      for (const c of clients) {
        await until("the update pushed over every WebSocket", () =>
          c.messages.find((m) => m.type === "ConferenceMetadataUpdatedEvent") ? true : undefined,
        );
      }
    } finally {
      for (const c of clients) await c.client.endAsync();
    }

    // Media calls (here refused for bad input) are spread like the others: any node takes
    // them and forwards the media part to the conference's media node.
    before = await hp.stats();
    const call = rest(lb(), service);
    for (let i = 0; i < 3; i++) {
      const r = await call("POST", "/rtc-api/conferences/publishStream", { conferenceId: room.id });
      assert.ok(r.status >= 400 && r.status < 500, `${r.status} ${r.text}`);
    }
    assert.deepEqual(spread(before, await hp.stats(), "be_http"), [1, 1, 1], "media calls on every node");
    // The nodes' internal media service is not reachable through the balancer.
    const internal = await fetch(`${lb()}/rtcplane.cluster.v1.MediaNodeService/StopView`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    assert.equal(internal.status, 404);
  });

  it("a node killed with SIGKILL under load: only right answers or clean failures, recovery within seconds, no acknowledged write lost", async () => {
    const hp = haproxy as HAProxy;
    const service = await serviceToken(lb(), app);
    const WORKERS = 8;
    const RUN_MS = 10_000;
    const KILL_AT_MS = 3_000;
    const victim = nodes[1] as ChildServer; // node2
    const survivors = [nodes[0], nodes[2]] as ChildServer[];

    type Outcome = "ok" | "clean" | "wrong";
    interface Answer {
      readonly worker: number;
      readonly at: number;
      readonly ms: number;
      readonly what: string;
      readonly outcome: Outcome;
      readonly detail: string;
    }
    const records: Answer[] = [];
    const started = performance.now();
    const now = () => performance.now() - started;
    let killedAt = Number.POSITIVE_INFINITY;
    let downAt = Number.POSITIVE_INFINITY;

    /**
     * A request through HAProxy: the answer, or "clean" for a 502/503/504 or a connection error.
     * (A request in flight on the killed node fails; HAProxy answers 502, or, on a client
     * keep-alive connection past its first request, closes it without an answer: undici's
     * UND_ERR_SOCKET. Requests it could not connect for are redispatched to another node.)
     */
    async function send(method: string, path: string, body?: unknown) {
      try {
        const res = await fetch(lb() + path, {
          method,
          headers: {
            authorization: `Bearer ${service}`,
            ...(body === undefined ? {} : { "content-type": "application/json" }),
          },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
          signal: AbortSignal.timeout(20_000),
        });
        const text = await res.text();
        if (res.status === 502 || res.status === 503 || res.status === 504) {
          return { clean: `HTTP ${res.status}` } as const;
        }
        return { status: res.status, text } as const;
      } catch (err) {
        const e = err as Error & { cause?: { code?: string } };
        if (e.name === "TimeoutError") return { status: 0, text: "no answer in 20 s" } as const;
        return { clean: `connection: ${e.cause?.code ?? e.message}` } as const;
      }
    }

    /** What one worker's conferences hold: acknowledged values, and values of unanswered writes. */
    interface Conference {
      readonly id: string;
      readonly acked: Map<string, string>;
      readonly unsure: Map<string, string>;
      lastVersion: number;
    }
    const acknowledged: Conference[] = [];
    const createdUnsure: string[] = [];

    async function worker(w: number): Promise<void> {
      const conferences: Conference[] = [];
      const record = (what: string, t0: number, outcome: Outcome, detail = "") =>
        records.push({ worker: w, at: t0, ms: now() - t0, what, outcome, detail });

      /** Creates a conference and joins the worker's endpoint (joining again is a no-op, so retried). */
      const create = async (id: string): Promise<void> => {
        const t0 = now();
        const made = await send("POST", "/rtc-api/conferences/create", { conferenceId: id });
        if ("clean" in made) {
          record("create", t0, "clean", made.clean);
          createdUnsure.push(id);
          return;
        }
        if (made.status !== 200 || (JSON.parse(made.text) as Json).id !== id) {
          record("create", t0, "wrong", `${made.status} ${made.text}`);
          return;
        }
        record("create", t0, "ok");
        for (;;) {
          const t1 = now();
          const joined = await send("POST", "/rtc-api/conferences/join", {
            conferenceId: id,
            userEndpointId: `ep-${w}`,
            userId: `user-${w}`,
          });
          if ("clean" in joined) {
            record("join", t1, "clean", joined.clean);
            continue;
          }
          record(
            "join",
            t1,
            joined.status === 200 ? "ok" : "wrong",
            joined.status === 200 ? "" : `${joined.status} ${joined.text}`,
          );
          if (joined.status === 200) break;
          return;
        }
        const conference: Conference = { id, acked: new Map(), unsure: new Map(), lastVersion: -1 };
        conferences.push(conference);
        acknowledged.push(conference);
      };

      const write = async (c: Conference, i: number): Promise<void> => {
        const key = `k${i}`;
        const value = `w${w}-${i}-${Math.random().toString(36).slice(2)}`;
        const t0 = now();
        const r = await send("POST", "/rtc-api/conferences/updateMetadata", {
          conferenceId: c.id,
          userEndpointId: `ep-${w}`,
          key,
          operation: "SET",
          value,
        });
        if ("clean" in r) {
          c.unsure.set(key, value);
          record("updateMetadata", t0, "clean", r.clean);
        } else if (r.status === 204) {
          c.acked.set(key, value);
          record("updateMetadata", t0, "ok");
        } else {
          record("updateMetadata", t0, "wrong", `${r.status} ${r.text}`);
        }
      };

      const read = async (c: Conference): Promise<void> => {
        const t0 = now();
        const r = await send("GET", `/rtc-api/conferences/${c.id}/simpleView`);
        if ("clean" in r) {
          record("simpleView", t0, "clean", r.clean);
          return;
        }
        const problem = ((): string | undefined => {
          if (r.status !== 200) return `${r.status} ${r.text}`;
          const view = JSON.parse(r.text) as { id: string; version: number; metadata?: Record<string, Json> };
          if (view.id !== c.id) return `another conference: ${r.text}`;
          const got = new Map(Object.entries(view.metadata ?? {}).map(([k, m]) => [k, m.value as string]));
          // Every write has a key of its own: acknowledged ones must be there, unanswered ones may be.
          for (const [k, v] of c.acked) if (got.get(k) !== v) return `acknowledged ${k}=${v} reads ${got.get(k)}`;
          for (const [k, v] of got) {
            if (c.acked.get(k) !== v && c.unsure.get(k) !== v) return `${k}=${v} was never written`;
          }
          if (Number(view.version) < c.lastVersion) return `version went back: ${c.lastVersion} → ${view.version}`;
          c.lastVersion = Number(view.version);
          return undefined;
        })();
        record("simpleView", t0, problem === undefined ? "ok" : "wrong", problem);
      };

      await create(`failover-${w}-0`);
      for (let i = 1; now() < RUN_MS; i++) {
        const c = conferences[Math.floor(Math.random() * conferences.length)];
        const dice = Math.random();
        if (c === undefined || dice < 0.1) await create(`failover-${w}-${i}`);
        else if (dice < 0.55) await write(c, i);
        else await read(c);
      }
    }

    const killer = (async () => {
      await new Promise((r) => setTimeout(r, KILL_AT_MS));
      killedAt = now();
      process.kill(victim.process.pid as number, "SIGKILL");
      for (;;) {
        if ((await hp.server("be_http", "node2")).status.startsWith("DOWN")) {
          downAt = now();
          return;
        }
        if (now() > killedAt + 15_000) return;
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await Promise.all([killer, ...Array.from({ length: WORKERS }, (_, w) => worker(w))]);
    assert.notEqual(await victim.exited, 0);

    const count = (o: Outcome) => records.filter((r) => r.outcome === o).length;
    const failures = records.filter((r) => r.outcome === "clean");
    const kinds = new Map<string, number>();
    for (const f of failures) kinds.set(f.detail, (kinds.get(f.detail) ?? 0) + 1);
    const lastFailureEnd = Math.max(killedAt, ...failures.map((f) => f.at + f.ms));
    const afterDown = records.filter((r) => r.at > downAt);
    const slowest = Math.max(...records.map((r) => r.ms));
    process.stdout.write(
      `# failover: ${records.length} answers from ${WORKERS} workers in ${(RUN_MS / 1000).toFixed(0)} s: ` +
        `${count("ok")} right, ${count("clean")} clean failures ` +
        `(${[...kinds].map(([k, n]) => `${k} ×${n}`).join(", ") || "none"}), ${count("wrong")} wrong\n` +
        `# node2 killed at +${killedAt.toFixed(0)} ms; HAProxy marked it DOWN ${(downAt - killedAt).toFixed(0)} ms later; ` +
        `last clean failure ended ${(lastFailureEnd - killedAt).toFixed(0)} ms after the kill; ` +
        `${afterDown.length} answers after DOWN, slowest answer ${slowest.toFixed(0)} ms\n`,
    );
    const wrong = records.filter((r) => r.outcome === "wrong");
    assert.deepEqual(wrong, [], `wrong answers; node error logs:\n${errors.flat().join("\n")}`);
    assert.ok(downAt - killedAt < 5_000, `HAProxy took ${downAt - killedAt} ms to mark node2 down`);
    assert.ok(afterDown.length > 50, `${afterDown.length} answers after node2 went DOWN`);
    assert.deepEqual(
      afterDown.filter((r) => r.outcome !== "ok"),
      [],
      "every request after HAProxy marked the node down succeeded",
    );

    // Every acknowledged write, read directly from each surviving node.
    let checked = 0;
    for (const node of survivors) {
      const direct = rest(node.url, service);
      for (const c of acknowledged) {
        const r = await direct("GET", `/rtc-api/conferences/${c.id}/simpleView`);
        assert.equal(r.status, 200, `${c.id} on ${node.url}: ${r.text}`);
        const metadata = (r.json.metadata ?? {}) as Record<string, Json>;
        for (const [k, v] of c.acked) {
          assert.equal(metadata[k]?.value, v, `${c.id} ${k}: acknowledged ${v}, not so on ${node.url}`);
          checked++;
        }
      }
    }
    process.stdout.write(
      `# ${acknowledged.length} acknowledged conferences and ${checked / survivors.length} acknowledged metadata writes ` +
        `found on both surviving nodes (${createdUnsure.length} creates unanswered)\n`,
    );
    for (const e of errors) assert.deepEqual(e, [], "no node logged an error");
  });
});

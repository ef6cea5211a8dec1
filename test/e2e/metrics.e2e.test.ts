/**
 * Prometheus metrics end to end (issue #16): `/metrics` behind METRICS_TOKEN, RPCs over REST,
 * Connect, gRPC and gRPC-web counted with their protocol, method and code (unknown paths
 * not at all), the node's state (waiters, media on a real mediasoup worker with a libwebrtc
 * publisher, Spreed sockets), `promtool check metrics` on the exposition, and a real
 * Prometheus scraping the server with the bearer token.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { WebSocket } from "ws";
import { type Json, rest, serviceToken } from "../helpers/conference-client.js";
import { publishCamera } from "../helpers/media-peers.js";
import { type Daemon, spawnDaemon } from "../helpers/nats.js";
import { ADMIN_TOKEN, bufCurl, createApp, run, startServer, type TestServer, tempDir } from "../helpers/server.js";

const METRICS_TOKEN = "metrics-token-0123456789abcdef";
const GRPC = ["--protocol", "grpc", "--http2-prior-knowledge"];
const ADMIN = "rtcplane.admin.v1.AdminService";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let server: TestServer;
const cleanup: (() => void | Promise<void>)[] = [];

before(async () => {
  server = await startServer(
    { METRICS_TOKEN, MEDIA_WORKERS: "1", MEDIA_STATS_INTERVAL_MS: "0", LONG_POLL_TIMEOUT_MS: "5000" },
    undefined,
    undefined,
    true,
  );
});
after(async () => {
  for (const f of cleanup.reverse()) await f();
  await server.close();
});

/** GET /metrics with `Authorization: Bearer <token>` (none when token is null). */
async function scrape(token: string | null = METRICS_TOKEN): Promise<Response> {
  return fetch(`${server.url}/metrics`, token === null ? {} : { headers: { authorization: `Bearer ${token}` } });
}

async function metrics(): Promise<string> {
  const res = await scrape();
  assert.equal(res.status, 200);
  return res.text();
}

/** The sum of the samples of `name` whose labels include `labels`; undefined when none. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  let total: number | undefined;
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) total = (total ?? 0) + Number(m[3]);
  }
  return total;
}

const requests = (text: string, protocol: string, service: string, method: string, code: string) =>
  sample(text, "rtcplane_rpc_requests_total", { protocol, service, method, code }) ?? 0;

describe("metrics endpoint", () => {
  it("wants the bearer token when METRICS_TOKEN is set", async () => {
    const none = await scrape(null);
    assert.equal(none.status, 401);
    assert.match(none.headers.get("www-authenticate") ?? "", /^Bearer/);
    assert.equal((await scrape("metrics-token-0123456789abcdeX")).status, 401);
    assert.equal((await scrape("short")).status, 401);
    const ok = await scrape();
    assert.equal(ok.status, 200);
    assert.match(ok.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    const head = await fetch(`${server.url}/metrics`, {
      method: "HEAD",
      headers: { authorization: `Bearer ${METRICS_TOKEN}` },
    });
    assert.equal(head.status, 200);
  });

  it("counts RPCs over REST, Connect, gRPC and gRPC-web by protocol, method and code", async () => {
    const before = await metrics();
    const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" };
    const created = await fetch(`${server.url}/admin/v1/tenants`, {
      method: "POST",
      headers: admin,
      body: JSON.stringify({ name: "m" }),
    });
    assert.equal(created.status, 200);
    const { tenantId } = (await created.json()) as { tenantId: string };
    const renamed = await fetch(`${server.url}/admin/v1/tenants/${tenantId}`, {
      method: "PATCH",
      headers: admin,
      body: JSON.stringify({ name: "m2" }),
    });
    assert.equal(renamed.status, 200); // in a store transaction
    const missing = await fetch(`${server.url}/admin/v1/tenants/nope`, { headers: admin });
    assert.equal(missing.status, 404);
    const refused = await fetch(`${server.url}/admin/v1/tenants`, { headers: { authorization: "Bearer wrong" } });
    assert.equal(refused.status, 401);
    const auth = ["-H", `authorization: Bearer ${ADMIN_TOKEN}`];
    for (const protocol of [["--protocol", "connect"], GRPC, ["--protocol", "grpcweb"]]) {
      const r = await bufCurl([...protocol, ...auth, "-d", "{}", `${server.url}/${ADMIN}/ListTenants`]);
      assert.equal(r.code, 0, r.stderr);
    }
    const notFound = await bufCurl([...GRPC, ...auth, "-d", '{"tenantId":"nope"}', `${server.url}/${ADMIN}/GetTenant`]);
    assert.notEqual(notFound.code, 0);
    const health = await bufCurl([...GRPC, `${server.url}/grpc.health.v1.Health/Check`]);
    assert.equal(health.code, 0, health.stderr);
    // Paths that are no method: answered 404, and never a label.
    assert.equal((await fetch(`${server.url}/rtcplane.nope.v1.Nope/Call`, { method: "POST" })).status, 404);
    assert.equal((await fetch(`${server.url}/no/such/path-${Date.now()}`)).status, 404);

    const now = await metrics();
    const delta = (protocol: string, service: string, method: string, code: string) =>
      requests(now, protocol, service, method, code) - requests(before, protocol, service, method, code);
    assert.equal(delta("rest", ADMIN, "CreateTenant", "OK"), 1);
    assert.equal(delta("rest", ADMIN, "UpdateTenant", "OK"), 1);
    assert.equal(delta("rest", ADMIN, "GetTenant", "NotFound"), 1);
    assert.equal(delta("rest", ADMIN, "ListTenants", "Unauthenticated"), 1);
    assert.equal(delta("connect", ADMIN, "ListTenants", "OK"), 1);
    assert.equal(delta("grpc", ADMIN, "ListTenants", "OK"), 1);
    assert.equal(delta("grpc-web", ADMIN, "ListTenants", "OK"), 1);
    assert.equal(delta("grpc", ADMIN, "GetTenant", "NotFound"), 1);
    assert.equal(delta("grpc", "grpc.health.v1.Health", "Check", "OK"), 1);
    const latency = { protocol: "grpc", service: ADMIN, method: "ListTenants" };
    assert.ok((sample(now, "rtcplane_rpc_duration_seconds_count", latency) ?? 0) >= 1);
    assert.ok((sample(now, "rtcplane_rpc_duration_seconds_bucket", { ...latency, le: "+Inf" }) ?? 0) >= 1);
    assert.ok(!/nope|no\/such|service="unknown"/i.test(now), "unknown paths made no series");
    // ...but they are answers: counted by status with every other answer (at least these two 404s).
    const answered404 = (text: string) => sample(text, "rtcplane_http_responses_total", { code: "404" }) ?? 0;
    assert.ok(answered404(now) - answered404(before) >= 2, "refused requests are counted by status");
    // The store's statements and transactions, and Node's own process metrics.
    assert.ok((sample(now, "rtcplane_store_query_duration_seconds_count", { statement: "insert" }) ?? 0) > 0);
    assert.ok((sample(now, "rtcplane_store_query_duration_seconds_count", { statement: "transaction" }) ?? 0) > 0);
    assert.ok((sample(now, "process_cpu_user_seconds_total") ?? 0) > 0);
    assert.ok(sample(now, "nodejs_eventloop_lag_seconds") !== undefined);
  });

  it("shows waiters, requests in flight, media per worker and Spreed sockets", async () => {
    const app = await createApp(server.url);
    const call = rest(server.url, await serviceToken(server.url, app));
    await call("POST", "/rtc-api/conferences/create", { conferenceId: "metrics" });
    const pub = await publishCamera(call, "metrics", "pub", "cam");
    cleanup.push(() => pub.close());
    const v = ((await call("GET", "/rtc-api/conferences/metrics/simpleView")).json as Json).version as number;
    const poll = call("GET", `/rtc-api/conferences/metrics/events?v=${v}`);
    const ws = new WebSocket(`${server.url.replace("http", "ws")}/ws`);
    await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
    cleanup.push(() => ws.close());
    await sleep(200);

    const text = await metrics();
    assert.ok((sample(text, "rtcplane_event_waiters") ?? 0) >= 1);
    assert.ok((sample(text, "rtcplane_rpc_in_flight", { protocol: "rest" }) ?? 0) >= 1);
    assert.equal(sample(text, "rtcplane_spreed_connections"), 1);
    assert.equal(sample(text, "rtcplane_mqtt_sockets"), 0);
    assert.equal(sample(text, "rtcplane_media_conferences"), 1);
    assert.equal(sample(text, "rtcplane_media_streams"), 1);
    assert.equal(sample(text, "rtcplane_media_participants"), 1);
    assert.equal(sample(text, "rtcplane_mediasoup_workers"), 1);
    const [pid] = server.media?.workerPids() ?? [];
    assert.ok(pid !== undefined);
    const worker = { pid: String(pid) };
    assert.equal(sample(text, "rtcplane_mediasoup_worker_transports", worker), 1);
    assert.equal(sample(text, "rtcplane_mediasoup_worker_producers", worker), 1);
    // user + system: a worker this young may have too little of either alone to show.
    assert.ok((sample(text, "rtcplane_mediasoup_worker_cpu_seconds_total", worker) ?? 0) > 0);
    assert.ok(sample(text, "rtcplane_mediasoup_worker_cpu_seconds_total", { ...worker, mode: "system" }) !== undefined);
    assert.ok((sample(text, "rtcplane_mediasoup_worker_max_rss_bytes", worker) ?? 0) > 1_000_000);
    assert.deepEqual((await poll).json, []); // the long-poll times out empty
  });

  it("passes promtool check metrics", async () => {
    const text = await metrics();
    const checked = await run("/usr/bin/promtool", ["check", "metrics"], text);
    assert.equal(checked.code, 0, `${checked.stdout}${checked.stderr}`);
  });

  it("is scraped by a real Prometheus with the bearer token", { timeout: 90_000 }, async () => {
    const dir = tempDir("rtcplane-prometheus-");
    const config = path.join(dir, "prometheus.yml");
    fs.writeFileSync(
      config,
      [
        "global: { scrape_interval: 1s, evaluation_interval: 1s }",
        "scrape_configs:",
        "  - job_name: rtcplane",
        `    authorization: { type: Bearer, credentials: "${METRICS_TOKEN}" }`,
        `    static_configs: [{ targets: ["127.0.0.1:${server.port}"] }]`,
      ].join("\n"),
    );
    const prometheus: Daemon = await spawnDaemon(
      "/usr/bin/prometheus",
      (port, data) => [
        `--config.file=${config}`,
        `--storage.tsdb.path=${path.join(data, "data")}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      "Server is ready to receive web requests",
      "rtcplane-prometheus-data-",
    );
    try {
      const query = async (q: string) => {
        const res = await fetch(`http://127.0.0.1:${prometheus.port}/api/v1/query?query=${encodeURIComponent(q)}`);
        const body = (await res.json()) as {
          data: { result: { metric: Record<string, string>; value: [number, string] }[] };
        };
        return body.data.result;
      };
      const deadline = Date.now() + 30_000;
      let up: string | undefined;
      while (Date.now() < deadline) {
        up = (await query('up{job="rtcplane"}'))[0]?.value[1];
        if (up === "1") break;
        await sleep(250);
      }
      assert.equal(up, "1", "Prometheus scraped the target");
      const grpc = await query(`rtcplane_rpc_requests_total{protocol="grpc",service="${ADMIN}",method="ListTenants"}`);
      assert.ok(Number(grpc[0]?.value[1]) >= 1, JSON.stringify(grpc));
      const workers = await query("rtcplane_mediasoup_workers");
      assert.equal(workers[0]?.value[1], "1");
    } finally {
      await prometheus.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

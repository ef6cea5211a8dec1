/**
 * `npm run bench:api` — the request pipeline against the stack's own ceilings, in one run
 * (these 2-core machines are noisy; only ratios from one run hold):
 *
 *   1. the same primary-key read of one room from rtcplane's SQLite file, served by a bare
 *      node:http handler and a bare @grpc/grpc-js server (the stack's ceiling), a plain
 *      connect-node server (the library's ceiling) and rtcplane over REST, Connect JSON,
 *      Connect binary, gRPC-web and gRPC (autocannon for HTTP/1.1, h2load for HTTP/2);
 *   2. two control sequences (rooms create→get→list→delete; conferences
 *      create→join→simpleView→leave→end) with the server's CPU per request from /proc;
 *   3. long-poll: 1000 waiters on one conference woken by one commit, and the RSS of
 *      10,000 idle waiters across 100 conferences;
 *   4. idle RSS.
 *
 * Every server runs in its own process; rtcplane as `npm start` runs it (compiled
 * JavaScript when built, else through tsx). Prints tables; asserts nothing.
 *
 *   BENCH_SECONDS=8 BENCH_SEQUENCES=1000 npm run bench:api
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import http2 from "node:http2";
import os from "node:os";
import path from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { GetRoomRequestSchema } from "../gen/rtcplane/rooms/v1/rooms_pb.js";
import { grpcFrame, h1, h2, type LoadResult } from "./lib/load.js";
import { type Child, cpuMs, ROOT, rssMiB, startChild } from "./lib/processes.js";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const WARMUP_SECONDS = 2;
const SEQUENCES = Number(process.env.BENCH_SEQUENCES ?? 1000);
/** Which parts to run: read, control, longpoll (all by default). */
const PARTS = new Set((process.env.BENCH_PARTS ?? "read,control,longpoll").split(","));
const ADMIN_TOKEN = "bench-admin-token-0123456789abcdef";

const children: Child[] = [];
async function child(args: string[], env?: Record<string, string>, ready?: (l: Record<string, unknown>) => boolean) {
  const c = await startChild(args, env, ready);
  children.push(c);
  return c;
}

/** rtcplane as `npm start` runs it. */
function rtcplaneCommand(): string[] {
  const built = path.join(ROOT, "dist/server.js");
  return fs.existsSync(built) ? [built] : ["--import", "tsx", path.join(ROOT, "src/server.ts")];
}

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "rtcplane-bench-api-"));
const server = await child(
  rtcplaneCommand(),
  {
    DATA_DIR: dataDir,
    PORT: "0",
    HOST: "127.0.0.1",
    ADMIN_TOKEN,
    LOG_LEVEL: "info",
    MEDIASOUP_WORKER_BIN: "/nonexistent",
    MAX_CONNECTIONS_PER_IP: "100000",
    LONG_POLL_TIMEOUT_MS: "60000",
    LONG_POLL_MAX_WAITERS: "20000",
    LONG_POLL_MAX_WAITERS_PER_TENANT: "20000",
    LONG_POLL_MAX_WAITERS_PER_CONFERENCE: "2000",
  },
  (l) => l.msg === "listening",
);
const base = server.ready.url as string;
await new Promise((r) => setTimeout(r, 1000));
const idleRss = rssMiB(server.pid);

async function json(method: string, url: string, headers: Record<string, string>, body?: unknown) {
  const res = await fetch(url, {
    method,
    headers: { ...headers, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${url}: ${res.status} ${text}`);
  return (text === "" ? {} : JSON.parse(text)) as Record<string, unknown>;
}

// A tenant, an app, its secret, one room and a SERVICE token.
const tenant = await json(
  "POST",
  `${base}/admin/v1/tenants`,
  { authorization: `Bearer ${ADMIN_TOKEN}` },
  { name: "bench" },
);
const tenantAuth = { "x-auth-token": tenant.authToken as string };
const app = await json("POST", `${base}/tenants/${tenant.tenantId}/apps`, tenantAuth, {});
const { secretkey } = await json("GET", `${base}/tenants/${tenant.tenantId}/apps/${app.id}/secretkey`, tenantAuth);
const vcs = { "x-vcs-token": secretkey as string };
const room = ((await json("POST", `${base}/api/realtime/room`, vcs, {})).room as { id: string }).id;
const oauth = await fetch(`${base}/security/oauth/token`, {
  method: "POST",
  headers: { "content-type": "application/x-www-form-urlencoded" },
  body: new URLSearchParams({
    grant_type: "client_credentials",
    client_id: app.apikey as string,
    client_secret: secretkey as string,
  }),
}).then((r) => r.json() as Promise<{ access_token: string }>);
const bearer = { authorization: `Bearer ${oauth.access_token}` };

const dbFile = path.join(dataDir, "rtcplane.db");
const rawHttp = await child(["--import", "tsx", "bench/servers/raw-http.ts", dbFile]);
const rawGrpc = await child(["--import", "tsx", "bench/servers/raw-grpc.ts", dbFile]);
const plain = await child(["--import", "tsx", "bench/servers/plain-connect.ts", dbFile]);

const getRoomJson = JSON.stringify({ id: room });
const getRoomBinary = Buffer.from(toBinary(GetRoomRequestSchema, create(GetRoomRequestSchema, { id: room })));
const GET_ROOM = "/rtcplane.rooms.v1.RoomService/GetRoom";
const h1Url = (c: Child) => `http://127.0.0.1:${c.ready.http}`;
const h2Url = (c: Child) => `http://127.0.0.1:${c.ready.h2}`;

interface Scenario {
  readonly server: string;
  readonly protocol: string;
  /** "server|protocol" of the row this one is compared with. */
  readonly baseline?: string;
  readonly pid: number;
  readonly run: (seconds: number) => Promise<LoadResult>;
}

interface Row extends Scenario {
  readonly result: LoadResult;
  /** Server CPU per request during the measured window, µs (from /proc). */
  readonly cpuUs: number;
}

const C = 32;
const json1 = { "content-type": "application/json" };
const grpcHeaders = { "content-type": "application/grpc", te: "trailers" };
const h1Post = (url: string, headers: Record<string, string>, body: string | Buffer) => (s: number) =>
  h1({ url, method: "POST", headers, body, connections: C, seconds: s });
const grpcLoad = (url: string, headers: Record<string, string>) => (s: number) =>
  h2({ url, headers, body: grpcFrame(getRoomBinary), clients: 4, streams: 16, seconds: s });
const RAW = "raw node:http + SQLite|HTTP/1.1 JSON";
const PLAIN_H1 = "plain connect-node|Connect JSON h1";
const GRPC_JS = "@grpc/grpc-js + SQLite|gRPC h2c 4×16";
const PLAIN_H2 = "plain connect-node|gRPC h2c 4×16";
const scenarios: Scenario[] = [
  {
    server: "raw node:http + SQLite",
    protocol: "HTTP/1.1 JSON",
    pid: rawHttp.pid,
    run: (s) => h1({ url: `${h1Url(rawHttp)}/room/${room}`, connections: C, seconds: s }),
  },
  {
    server: "rtcplane REST gateway",
    protocol: "HTTP/1.1 JSON",
    baseline: RAW,
    pid: server.pid,
    run: (s) => h1({ url: `${base}/api/realtime/room/${room}`, headers: vcs, connections: C, seconds: s }),
  },
  {
    server: "plain connect-node",
    protocol: "Connect JSON h1",
    pid: plain.pid,
    run: h1Post(`${h1Url(plain)}${GET_ROOM}`, json1, getRoomJson),
  },
  {
    server: "rtcplane",
    protocol: "Connect JSON h1",
    baseline: PLAIN_H1,
    pid: server.pid,
    run: h1Post(`${base}${GET_ROOM}`, { ...vcs, ...json1 }, getRoomJson),
  },
  {
    server: "rtcplane",
    protocol: "Connect binary h1",
    baseline: PLAIN_H1,
    pid: server.pid,
    run: h1Post(`${base}${GET_ROOM}`, { ...vcs, "content-type": "application/proto" }, getRoomBinary),
  },
  {
    server: "rtcplane",
    protocol: "gRPC-web h1",
    baseline: PLAIN_H1,
    pid: server.pid,
    run: h1Post(
      `${base}${GET_ROOM}`,
      { ...vcs, "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
      grpcFrame(getRoomBinary),
    ),
  },
  {
    server: "@grpc/grpc-js + SQLite",
    protocol: "gRPC h2c 4×16",
    pid: rawGrpc.pid,
    run: grpcLoad(`${h2Url(rawGrpc)}${GET_ROOM}`, grpcHeaders),
  },
  {
    server: "plain connect-node",
    protocol: "gRPC h2c 4×16",
    baseline: GRPC_JS,
    pid: plain.pid,
    run: grpcLoad(`${h2Url(plain)}${GET_ROOM}`, grpcHeaders),
  },
  {
    server: "rtcplane",
    protocol: "gRPC h2c 4×16",
    baseline: PLAIN_H2,
    pid: server.pid,
    run: grpcLoad(`${base}${GET_ROOM}`, { ...grpcHeaders, ...vcs }),
  },
];
const only = process.env.BENCH_ONLY;
const rows: Row[] = [];
console.error(`room read, ${SECONDS} s each after ${WARMUP_SECONDS} s warm-up:`);
for (const scenario of scenarios) {
  if (
    only !== undefined &&
    !`${scenario.server} ${scenario.protocol}`.includes(only) &&
    scenario.baseline !== undefined
  ) {
    continue;
  }
  await scenario.run(WARMUP_SECONDS);
  const before = cpuMs(scenario.pid);
  const result = await scenario.run(SECONDS);
  const cpuUs = ((cpuMs(scenario.pid) - before) * 1000) / (result.rps * SECONDS);
  rows.push({ ...scenario, result, cpuUs });
  console.error(
    `  ${scenario.server} ${scenario.protocol}: ${result.rps.toFixed(0)} req/s, ${cpuUs.toFixed(0)} µs CPU/req${result.errors > 0 ? ` (${result.errors} errors!)` : ""}`,
  );
}

const byKey = new Map(rows.map((r) => [`${r.server}|${r.protocol}`, r]));
const baselineOf = (r: Row) => (r.baseline === undefined ? undefined : byKey.get(r.baseline));
console.log(
  `\n## Room read (${SECONDS} s per row, one run, ${os.cpus().length} cores shared with the load generator)\n`,
);
console.log("| server | protocol | req/s | latency p50 / p99 ms (h2load: mean) | server CPU µs/req | vs |");
console.log("|---|---|---|---|---|---|");
for (const r of rows) {
  const b = baselineOf(r);
  const latency = Number.isNaN(r.result.p50) ? `mean ${r.result.mean.toFixed(1)}` : `${r.result.p50} / ${r.result.p99}`;
  const vs = b === undefined ? "" : `${(r.result.rps / b.result.rps).toFixed(2)}× ${b.server} ${b.protocol}`;
  const errors = r.result.errors ? ` (${r.result.errors} errors)` : "";
  console.log(
    `| ${r.server} | ${r.protocol} | ${r.result.rps.toFixed(0)}${errors} | ${latency} | ${r.cpuUs.toFixed(0)} | ${vs} |`,
  );
}
const rawGrpcRow = byKey.get("@grpc/grpc-js + SQLite|gRPC h2c 4×16");
const ours = byKey.get("rtcplane|gRPC h2c 4×16");
if (rawGrpcRow && ours)
  console.log(`\nrtcplane gRPC h2c = ${(ours.result.rps / rawGrpcRow.result.rps).toFixed(2)}× @grpc/grpc-js`);

if (PARTS.has("control")) await controlPlane();
if (PARTS.has("longpoll")) await longPoll();

console.log(
  `\nIdle RSS after start: ${idleRss.toFixed(0)} MiB (rtcplane), ${rssMiB(rawHttp.pid).toFixed(0)} MiB (raw node:http)`,
);
for (const c of children) await c.stop();
process.exit(0);

async function controlPlane(): Promise<void> {
  // Control plane: server CPU per request over whole sequences, 32 at a time.
  async function sequences(name: string, steps: (i: number) => Promise<number>): Promise<void> {
    let next = 0;
    let requests = 0;
    const before = cpuMs(server.pid);
    const started = performance.now();
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < SEQUENCES) {
          const made = await steps(next++);
          requests += made;
        }
      }),
    );
    const wall = performance.now() - started;
    const cpu = cpuMs(server.pid) - before;
    console.log(
      `| ${name} | ${SEQUENCES} | ${requests} | ${(cpu / requests).toFixed(3)} | ${((requests / wall) * 1000).toFixed(0)} |`,
    );
  }
  console.log("\n## Control plane (keep-alive HTTP/1.1, 32 sequences at a time)\n");
  console.log("| sequence | sequences | requests | server CPU ms per request | requests/s |");
  console.log("|---|---|---|---|---|");
  await sequences("rooms create→get→list→delete", async () => {
    const r = ((await json("POST", `${base}/api/realtime/room`, vcs, {})).room as { id: string }).id;
    await json("GET", `${base}/api/realtime/room/${r}`, vcs);
    await json("GET", `${base}/api/realtime/room?numberOfRecords=5`, vcs);
    await json("DELETE", `${base}/api/realtime/room?id=${r}`, vcs);
    return 4;
  });
  await sequences("conferences create→join→simpleView→leave→end", async (i) => {
    const id = (await json("POST", `${base}/rtc-api/conferences/create`, bearer, {})).id as string;
    await json("POST", `${base}/rtc-api/conferences/join`, bearer, {
      conferenceId: id,
      userEndpointId: `ep-${i}`,
      userId: `u-${i}`,
    });
    await json("GET", `${base}/rtc-api/conferences/${id}/simpleView`, bearer);
    await json("POST", `${base}/rtc-api/conferences/leave`, bearer, {
      conferenceId: id,
      userEndpointId: `ep-${i}`,
      reason: "",
    });
    await json("POST", `${base}/rtc-api/conferences/end`, bearer, { conferenceId: id, reason: "" });
    return 5;
  });
}

async function longPoll(): Promise<void> {
  // Long-poll: 1000 waiters (in two processes of their own) woken at once, rtcplane by one
  // commit on one conference, the bare node:http ceiling by one POST.
  const id = (await json("POST", `${base}/rtc-api/conferences/create`, bearer, {})).id as string;
  await json("POST", `${base}/rtc-api/conferences/join`, bearer, {
    conferenceId: id,
    userEndpointId: "lp",
    userId: "lp",
  });
  const v = (await json("GET", `${base}/rtc-api/conferences/${id}/simpleView`, bearer)).version as number;
  const rawLongPoll = await child(["--import", "tsx", "bench/servers/raw-longpoll.ts"]);
  const ours = await wakeAll(`${base}/rtc-api/conferences/${id}/events?v=${v}`, () =>
    json("POST", `${base}/rtc-api/conferences/updateMetadata`, bearer, {
      conferenceId: id,
      userEndpointId: "lp",
      key: "k",
      operation: "SET",
      value: "v",
    }),
  );
  const raw = await wakeAll(`${h1Url(rawLongPoll)}/events`, () => json("POST", `${h1Url(rawLongPoll)}/wake`, {}));
  console.log("\n## Long-poll (1000 waiters woken at once; ms from the waking request being sent)\n");
  console.log("| server | answered | p50 | p99 | max |");
  console.log("|---|---|---|---|---|");
  for (const [name, w] of [
    ["raw node:http, one loop", raw],
    ["rtcplane, one commit", ours],
  ] as const) {
    const q = (p: number) => w[Math.min(w.length - 1, Math.floor(p * w.length))]?.toFixed(1);
    console.log(`| ${name} | ${w.length} | ${q(0.5)} | ${q(0.99)} | ${q(1)} |`);
  }

  // 10,000 idle waiters across 100 conferences, multiplexed over 100 HTTP/2 connections.
  {
    const conferences: string[] = [];
    for (let i = 0; i < 100; i++)
      conferences.push((await json("POST", `${base}/rtc-api/conferences/create`, bearer, {})).id as string);
    const before = rssMiB(server.pid);
    const sessions = Array.from({ length: 100 }, () => http2.connect(base));
    const streams: http2.ClientHttp2Stream[] = [];
    for (const [s, session] of sessions.entries()) {
      session.on("error", () => undefined);
      for (let i = 0; i < 100; i++) {
        const st = session.request({ ":path": `/rtc-api/conferences/${conferences[s]}/events?v=1`, ...bearer });
        st.on("error", () => undefined);
        st.resume();
        streams.push(st);
      }
    }
    await new Promise((r) => setTimeout(r, 5000));
    const during = rssMiB(server.pid);
    for (const s of sessions) s.destroy();
    console.log(
      `10,000 idle waiters across 100 conferences: server RSS ${during.toFixed(0)} MiB (${before.toFixed(0)} MiB before, +${(during - before).toFixed(0)} MiB)`,
    );
  }
}

/** Opens 1000 waiters on `url` in two processes, runs `wake`, answers when each was answered (ms, sorted). */
async function wakeAll(url: string, wake: () => Promise<unknown>): Promise<number[]> {
  const waiterProcs = [0, 1].map(() =>
    spawn(process.execPath, ["--import", "tsx", "bench/lib/waiters.ts", url, "500", bearer.authorization], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "inherit"],
    }),
  );
  const outputs = waiterProcs.map(
    (p) =>
      new Promise<string>((resolve) => {
        let out = "";
        p.stdout.on("data", (c: Buffer) => {
          out += c.toString();
        });
        p.once("exit", () => resolve(out));
      }),
  );
  await new Promise((r) => setTimeout(r, 4000));
  const wokenAt = performance.timeOrigin + performance.now();
  await wake();
  return (await Promise.all(outputs))
    .flatMap((o) => JSON.parse(o.split("\n").find((l) => l.startsWith("[")) ?? "[]") as number[])
    .map((t) => t - wokenAt)
    .sort((a, b) => a - b);
}

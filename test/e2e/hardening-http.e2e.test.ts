/**
 * Attacks on the one port (issue 10, findings 5, 6 and 10) against a server in its own
 * process: slowloris over HTTP/1.1 and HTTP/2, one app taking the shared waiter caps,
 * oversized uploads on every protocol, a forged Host, file modes, and a request flood
 * that must not flood the log. /healthz must stay under 100 ms at p99 throughout.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import fs from "node:fs";
import http2 from "node:http2";
import net from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import tls from "node:tls";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ConferenceService } from "../../gen/rtcplane/conference/v1/conference_pb.js";
import { type AttackTarget, alive, attackTarget, underAttack } from "../helpers/attack.js";
import { rest, serviceToken } from "../helpers/conference-client.js";
import { createApp, selfSignedCert, startServer } from "../helpers/server.js";

const HEALTH_P99_MS = 100;
const HEADERS_TIMEOUT_MS = 2000;
const REQUEST_TIMEOUT_MS = 4000;
let target: AttackTarget;
const stdoutLines: string[] = [];

before(async () => {
  target = await attackTarget({
    HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
    REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
    MAX_CONNECTIONS_PER_IP: "100",
    LONG_POLL_MAX_WAITERS: "40",
    LONG_POLL_TIMEOUT_MS: "20000",
    REQUEST_LOG_PER_SECOND: "20",
  });
  target.process.stdout?.on("data", (c: Buffer) => stdoutLines.push(...c.toString().split("\n").filter(Boolean)));
});
after(() => {
  target.process.kill("SIGKILL");
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const port = () => Number(new URL(target.url).port);

/** Opens a socket from `localAddress`; resolves when connected or when refused/closed. */
function openSocket(localAddress: string): Promise<net.Socket> {
  return new Promise((resolve) => {
    const s = net.connect({ port: port(), host: "127.0.0.1", localAddress });
    s.on("error", () => undefined);
    s.once("connect", () => resolve(s));
    s.once("close", () => resolve(s));
  });
}

function curl(args: string[]): Promise<string> {
  return new Promise((resolve) => execFile("curl", ["-s", ...args], (_e, stdout) => resolve(stdout)));
}

describe("hardening: slowloris", () => {
  it("closes HTTP/1.1 sockets that trickle headers, and caps sockets per client address", async () => {
    const { result, health } = await underAttack(target.url, async () => {
      const sockets = await Promise.all(Array.from({ length: 1000 }, () => openSocket("127.0.0.2")));
      let closed = 0;
      const started = Date.now();
      const closedAt: number[] = [];
      for (const s of sockets) {
        if (s.destroyed) {
          closed++;
          closedAt.push(0);
          continue;
        }
        s.once("close", () => {
          closed++;
          closedAt.push(Date.now() - started);
        });
        s.write("GET /healthz HTTP/1.1\r\nHost: x\r\n");
      }
      const trickle = setInterval(() => {
        for (const s of sockets) if (!s.destroyed) s.write("X-Slow: 1\r\n");
      }, 300);
      while (closed < sockets.length && Date.now() - started < HEADERS_TIMEOUT_MS + 4000) await sleep(100);
      clearInterval(trickle);
      for (const s of sockets) s.destroy();
      return { closed, total: sockets.length, last: Math.max(...closedAt) };
    });
    assert.equal(result.closed, result.total, "every trickling socket was closed");
    assert.ok(result.last <= HEADERS_TIMEOUT_MS + 2500, `the last one after ${result.last} ms`);
    assert.equal(health.failures, 0);
    assert.ok(health.p99 < HEALTH_P99_MS, `healthz p99 ${health.p99} ms`);
    assert.ok(alive(target.pid));
  });

  it("closes HTTP/2 sessions that send no request, and streams whose body never ends", async () => {
    const sessions: http2.ClientHttp2Session[] = [];
    const { result, health } = await underAttack(target.url, async () => {
      const closed = new Set<number>();
      for (let i = 0; i < 50; i++) {
        const s = http2.connect(target.url, { localAddress: "127.0.0.3" } as http2.SecureClientSessionOptions);
        s.on("error", () => undefined);
        s.once("close", () => closed.add(i));
        sessions.push(s);
      }
      // One stream that starts a body and never finishes it.
      const lingering = http2.connect(target.url);
      lingering.on("error", () => undefined);
      const stream = lingering.request({
        ":method": "POST",
        ":path": "/admin/v1/tenants",
        "content-type": "application/json",
      });
      stream.on("error", () => undefined);
      stream.write("{");
      const streamClosed = new Promise<number>((resolve) => stream.once("close", () => resolve(stream.rstCode ?? -1)));
      const started = Date.now();
      while (closed.size < sessions.length && Date.now() - started < HEADERS_TIMEOUT_MS + 3000) await sleep(100);
      const rst = await Promise.race([streamClosed, sleep(REQUEST_TIMEOUT_MS + 3000).then(() => -2)]);
      lingering.destroy();
      return { closed: closed.size, rst };
    });
    for (const s of sessions) s.destroy();
    assert.equal(result.closed, 50, "request-less sessions are closed");
    assert.equal(result.rst, http2.constants.NGHTTP2_CANCEL, "the never-ending request is cancelled");
    assert.ok(health.p99 < HEALTH_P99_MS, `healthz p99 ${health.p99} ms`);
  });

  it("applies the header timeout to HTTP/1.1 over TLS too", async () => {
    const { cert, key } = await selfSignedCert();
    const tlsServer = await startServer({ TLS_CERT: cert, TLS_KEY: key, HEADERS_TIMEOUT_MS: "1000" });
    try {
      const socket = tls.connect({
        port: tlsServer.port,
        host: "127.0.0.1",
        rejectUnauthorized: false,
        ALPNProtocols: ["http/1.1"],
      });
      socket.on("error", () => undefined);
      await new Promise((r) => socket.once("secureConnect", r));
      const started = Date.now();
      socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\n");
      const trickle = setInterval(() => socket.write("X-Slow: 1\r\n"), 200);
      let answer = "";
      socket.on("data", (c) => {
        answer += c.toString();
      });
      await new Promise((r) => socket.once("close", r));
      clearInterval(trickle);
      const ms = Date.now() - started;
      assert.ok(ms < 3500, `closed after ${ms} ms`);
      assert.match(answer, /^HTTP\/1\.1 408/);
    } finally {
      await tlsServer.close();
    }
  });

  it("advertises a sane number of concurrent HTTP/2 streams", async () => {
    const s = http2.connect(target.url);
    const settings = await new Promise<http2.Settings>((resolve) => s.once("remoteSettings", resolve));
    s.close();
    assert.equal(settings.maxConcurrentStreams, 100);
  });
});

describe("hardening: shared caps", () => {
  it("one app cannot take every event waiter: its quota answers 429, other apps keep theirs", async () => {
    const greedy = await createApp(target.url);
    const other = await createApp(target.url);
    const greedyToken = await serviceToken(target.url, greedy);
    const api = rest(target.url, greedyToken);
    const conferenceIds: string[] = [];
    for (let i = 0; i < 3; i++)
      conferenceIds.push((await api("POST", "/rtc-api/conferences/create", {})).json.id as string);
    // A quarter of LONG_POLL_MAX_WAITERS (40) per app: 10 waiters, streams and long-polls together.
    const abort = new AbortController();
    const grpc = createClient(ConferenceService, createGrpcTransport({ baseUrl: target.url }));
    const streams = conferenceIds.map(async (conferenceId) => {
      try {
        for await (const _ of grpc.watchConferenceEvents(
          { conferenceId, sinceVersion: 1n },
          { headers: { authorization: `Bearer ${greedyToken}` }, signal: abort.signal },
        )) {
          // Nothing arrives; the stream holds a waiter slot.
        }
      } catch {
        // Aborted at the end.
      }
    });
    const polls = Array.from({ length: 7 }, (_, i) =>
      fetch(`${target.url}/rtc-api/conferences/${conferenceIds[i % 3]}/events?v=1`, {
        headers: { authorization: `Bearer ${greedyToken}` },
        signal: abort.signal,
      }).catch(() => undefined),
    );
    await sleep(500);
    const refused = await api("GET", `/rtc-api/conferences/${conferenceIds[0]}/events?v=1`);
    assert.equal(refused.status, 429, refused.text);
    const otherApi = rest(target.url, await serviceToken(target.url, other));
    const mine = (await otherApi("POST", "/rtc-api/conferences/create", {})).json.id as string;
    const served = await otherApi("GET", `/rtc-api/conferences/${mine}/events?v=0`);
    assert.equal(served.status, 200, "another app's long-poll is served");
    abort.abort();
    await Promise.all([...streams, ...polls]);
  });
});

describe("hardening: uploads, headers, files and logs", () => {
  const big = path.join(fs.mkdtempSync("/tmp/rtcplane-big-"), "big.json");
  fs.writeFileSync(big, Buffer.alloc(20 * 1024 * 1024, 0x61));

  it("answers a 20 MB upload on HTTP/1.1 with 413 every time, never a reset", async () => {
    for (let i = 0; i < 10; i++) {
      const out = await curl([
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        "--data-binary",
        `@${big}`,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        `${target.url}/admin/v1/tenants`,
      ]);
      assert.equal(out, "413", `attempt ${i}`);
    }
  });

  it("stops receiving an oversized body on HTTP/2 (REST, Connect, gRPC) right after answering", async () => {
    const body = fs.readFileSync(big);
    for (const [path, type, want, error] of [
      ["/admin/v1/tenants", "application/json", 413, /request body exceeds/],
      ["/rtcplane.admin.v1.AdminService/CreateTenant", "application/json", 429, /resource_exhausted/],
      ["/rtcplane.admin.v1.AdminService/CreateTenant", "application/grpc", 200, /larger%20than%20configured/],
    ] as const) {
      const r = await h2Upload(path, type, body);
      assert.equal(r.status, want, `${path} ${type}`);
      assert.match(r.body + r.trailers, error, `${path} ${type}: the whole answer arrived`);
      assert.ok(r.ms < 2000, `${path} ${type}: ${r.ms} ms`);
    }
  });

  it("never reflects the Host header into links, and marks responses nosniff", async () => {
    const out = await curl(["-H", "Host: evil.example", "-D", "-", `${target.url}/.well-known/spreed-configuration`]);
    assert.match(out, /x-content-type-options: nosniff/i);
    assert.ok(!out.includes("evil.example"), out);
    assert.ok(out.includes(`"spreed-webrtc_endpoint":"${target.url}"`), out);
  });

  it("keeps DATA_DIR and its files private to the server's user", () => {
    assert.equal(fs.statSync(target.dataDir).mode & 0o777, 0o700);
    for (const f of ["rtcplane.db", "rtcplane.db-wal", "server.key", "admin-token.sha256"]) {
      const file = path.join(target.dataDir, f);
      if (fs.existsSync(file)) assert.equal(fs.statSync(file).mode & 0o777, 0o600, f);
    }
  });

  it("logs a flood of bad requests within REQUEST_LOG_PER_SECOND and says how many it dropped", async () => {
    const before = stdoutLines.length;
    const started = Date.now();
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let i = 0; i < 500; i++) await fetch(`${target.url}/no/such/path/${i}`).then((r) => r.arrayBuffer());
      }),
    );
    const seconds = (Date.now() - started) / 1000;
    await sleep(10_500);
    const lines = stdoutLines.slice(before);
    const requestLines = lines.filter((l) => l.includes('"request refused"')).length;
    assert.ok(requestLines <= 20 * (seconds + 1) + 20, `${requestLines} lines for 2000 requests in ${seconds} s`);
    assert.ok(
      lines.some((l) => l.includes("REQUEST_LOG_PER_SECOND")),
      "a summary line counts the dropped ones",
    );
  });
});

/**
 * POSTs `body` over HTTP/2 as fast as flow control allows, until the server answers and
 * ends the stream; answers what came back and how long the stream stayed open.
 */
async function h2Upload(path: string, type: string, body: Buffer) {
  const started = Date.now();
  const session = http2.connect(target.url);
  session.on("error", () => undefined);
  const stream = session.request({ ":method": "POST", ":path": path, "content-type": type, te: "trailers" });
  let status = 0;
  let text = "";
  let trailers = "";
  stream.on("response", (h) => {
    status = Number(h[":status"]);
    trailers += JSON.stringify(h);
  });
  stream.on("trailers", (t) => {
    trailers += JSON.stringify(t);
  });
  stream.on("data", (d: Buffer) => {
    text += d.toString();
  });
  stream.on("error", () => undefined);
  const closed = new Promise<void>((resolve) => stream.once("close", () => resolve()));
  const chunk = 64 * 1024;
  for (let sent = 0; sent < body.length && !stream.closed; sent += chunk) {
    if (!stream.write(body.subarray(sent, sent + chunk))) {
      await Promise.race([new Promise((r) => stream.once("drain", r)), closed]);
    }
  }
  if (!stream.closed) stream.end();
  await Promise.race([closed, sleep(10_000)]);
  session.destroy();
  return { status, body: text, trailers, ms: Date.now() - started };
}

/**
 * A real HAProxy (Debian's `haproxy`) in front of test nodes, run from deploy/haproxy.cfg as
 * production runs it: the listen address and the nodes' addresses in the environment, in the
 * foreground (`-db`), stopped by PID. Its runtime API (a stats socket in a temp directory)
 * tells per-server request counts and health states.
 */

import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { freePort } from "./nats.js";
import { ROOT } from "./protoc.js";
import { tempDir } from "./server.js";

export const HAPROXY_CFG = path.join(ROOT, "deploy/haproxy.cfg");

/** One row of `show stat` (a frontend, a backend, or one of its servers). */
export interface StatRow {
  readonly proxy: string;
  /** "FRONTEND", "BACKEND" or the server's name. */
  readonly server: string;
  /** "UP", "DOWN", "UP 1/2" (going down), "DOWN 1/2" (coming up), "OPEN", "no check"… */
  readonly status: string;
  /** Sessions (requests, for HTTP) sent to this server in total. */
  readonly total: number;
  /** HTTP responses by class, as HAProxy counted them. */
  readonly http: { readonly "2xx": number; readonly "4xx": number; readonly "5xx": number };
}

export interface HAProxy {
  readonly url: string;
  readonly process: ChildProcess;
  /** What HAProxy wrote (its log lines and alerts). */
  output(): string;
  /** `show stat`, parsed. */
  stats(): Promise<StatRow[]>;
  /** One server's row. */
  server(proxy: string, server: string): Promise<StatRow>;
  stop(): Promise<void>;
}

/** Sends one command to HAProxy's runtime API and returns its whole answer. */
function runtimeApi(socketPath: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    let out = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      out += chunk;
    });
    socket.once("error", reject);
    socket.once("end", () => resolve(out));
    socket.once("connect", () => socket.write(`${command}\n`));
  });
}

function parseStats(csv: string): StatRow[] {
  const [header = "", ...lines] = csv.trim().split("\n");
  const names = header.replace(/^# /, "").split(",");
  const at = (name: string) => names.indexOf(name);
  const [pxname, svname, status, stot, h2, h4, h5] = [
    at("pxname"),
    at("svname"),
    at("status"),
    at("stot"),
    at("hrsp_2xx"),
    at("hrsp_4xx"),
    at("hrsp_5xx"),
  ];
  return lines.map((line) => {
    const f = line.split(",");
    const n = (i: number) => Number(f[i] || 0);
    return {
      proxy: f[pxname] ?? "",
      server: f[svname] ?? "",
      status: f[status] ?? "",
      total: n(stot),
      http: { "2xx": n(h2), "4xx": n(h4), "5xx": n(h5) },
    };
  });
}

/** "http://127.0.0.1:1234" → "127.0.0.1:1234", as HAProxy's server lines take it. */
function address(url: string): string {
  return new URL(url).host;
}

/**
 * Starts HAProxy on a free loopback port in front of `nodeUrls` (as many as the config has
 * server lines: three) and waits until it answers /healthz through a node and sees every
 * node up.
 */
export async function startHAProxy(nodeUrls: readonly string[], config = HAPROXY_CFG): Promise<HAProxy> {
  for (let attempt = 1; ; attempt++) {
    const dir = tempDir("rtcplane-haproxy-");
    const socketPath = path.join(dir, "admin.sock");
    const port = await freePort();
    const env: Record<string, string> = {
      ...(process.env as Record<string, string>),
      RTCPLANE_LISTEN: `127.0.0.1:${port}`,
      RTCPLANE_HAPROXY_SOCKET: socketPath,
    };
    nodeUrls.forEach((u, i) => {
      env[`RTCPLANE_NODE${i + 1}`] = address(u);
    });
    const child = spawn("haproxy", ["-db", "-f", config], { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout?.on("data", (c: Buffer) => {
      out += c.toString();
    });
    child.stderr?.on("data", (c: Buffer) => {
      out += c.toString();
    });
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    let dead = false;
    void exited.then(() => {
      dead = true;
    });
    const url = `http://127.0.0.1:${port}`;
    const stats = async () => parseStats(await runtimeApi(socketPath, "show stat"));
    const proxy: HAProxy = {
      url,
      process: child,
      output: () => out,
      stats,
      server: async (p, s) => {
        const row = (await stats()).find((r) => r.proxy === p && r.server === s);
        if (row === undefined) throw new Error(`no server ${p}/${s} in show stat`);
        return row;
      },
      stop: async () => {
        if (!dead) {
          child.kill("SIGTERM"); // -db: SIGTERM stops at once
          const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
          await exited;
          clearTimeout(timer);
        }
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
    const deadline = Date.now() + 15_000;
    let ready = false;
    while (!dead && Date.now() < deadline) {
      try {
        const r = await fetch(`${url}/healthz`);
        const rows = r.status === 200 ? await stats() : [];
        if (rows.filter((row) => row.proxy === "be_http" && row.status === "UP").length === nodeUrls.length) {
          ready = true;
          break;
        }
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    if (ready) return proxy;
    await proxy.stop();
    if (dead && attempt < 3 && /cannot bind|Address already in use/i.test(out)) continue; // port taken in between
    throw new Error(`HAProxy did not start:\n${out}`);
  }
}

/**
 * Load generators: autocannon (npm) for HTTP/1.1, h2load (Debian nghttp2-client) for
 * HTTP/2. Both report requests per second and latency; errors and non-2xx answers are
 * counted so a broken server cannot look fast.
 */
import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const AUTOCANNON = path.resolve(import.meta.dirname, "../../node_modules/autocannon/autocannon.js");

function tempFile(content: string | Buffer): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "rtcplane-load-")), "body");
  fs.writeFileSync(file, content);
  return file;
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(cmd, args, { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${cmd} failed: ${stderr || err.message}`)) : resolve(stdout),
    ),
  );
}

export interface LoadResult {
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly mean: number;
  readonly errors: number;
}

export interface H1Load {
  readonly url: string;
  readonly method?: "GET" | "POST";
  readonly headers?: Record<string, string>;
  readonly body?: string | Buffer;
  readonly connections: number;
  readonly seconds: number;
}

/** Runs the autocannon CLI in its own process, so the load generator has a core of its own to compete for. */
export async function h1(load: H1Load): Promise<LoadResult> {
  const args = [
    AUTOCANNON,
    "-j",
    "-c",
    String(load.connections),
    "-d",
    String(load.seconds),
    "-m",
    load.method ?? "GET",
  ];
  for (const [k, v] of Object.entries(load.headers ?? {})) args.push("-H", `${k}=${v}`);
  if (load.body !== undefined) args.push("-i", tempFile(load.body));
  args.push(load.url);
  const result = JSON.parse(await run(process.execPath, args)) as {
    requests: { average: number };
    latency: { p50: number; p99: number; average: number };
    errors: number;
    timeouts: number;
    non2xx: number;
  };
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    mean: result.latency.average,
    errors: result.errors + result.timeouts + result.non2xx,
  };
}

export interface H2Load {
  readonly url: string;
  readonly headers?: Record<string, string>;
  readonly body?: Buffer;
  readonly clients: number;
  readonly streams: number;
  readonly seconds: number;
}

/** Runs h2load; gRPC status travels in trailers, so callers check one answer before loading. */
export async function h2(load: H2Load): Promise<LoadResult> {
  const args = ["-c", String(load.clients), "-m", String(load.streams), "-D", String(load.seconds), "-t", "1"];
  for (const [k, v] of Object.entries(load.headers ?? {})) args.push("-H", `${k}: ${v}`);
  if (load.body !== undefined) args.push("-d", tempFile(load.body));
  args.push(load.url);
  const out = await run("h2load", args);
  const rps = Number(/finished in [\d.]+s, ([\d.]+) req\/s/.exec(out)?.[1] ?? Number.NaN);
  const failed = /(\d+) failed, (\d+) errored, (\d+) timeout/.exec(out);
  const non2xx = /status codes: \d+ 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
  const time = /time for request:\s+(\S+)\s+(\S+)\s+(\S+)/.exec(out);
  return {
    rps,
    p50: Number.NaN,
    p99: Number.NaN,
    mean: time?.[3] === undefined ? Number.NaN : toMs(time[3]),
    errors:
      Number(failed?.[1] ?? 0) +
      Number(failed?.[2] ?? 0) +
      Number(failed?.[3] ?? 0) +
      Number(non2xx?.[1] ?? 0) +
      Number(non2xx?.[2] ?? 0) +
      Number(non2xx?.[3] ?? 0),
  };
}

function toMs(value: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(value);
  if (m === null) return Number.NaN;
  const n = Number(m[1]);
  return m[2] === "us" ? n / 1000 : m[2] === "s" ? n * 1000 : n;
}

/** A gRPC / gRPC-web length-prefixed frame around one message. */
export function grpcFrame(message: Uint8Array): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt32BE(message.length, 1);
  return Buffer.concat([header, message]);
}

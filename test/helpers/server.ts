/** Real servers for end-to-end tests: in-process on port 0, or as a child process. */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { loadConfig } from "../../src/config.js";
import type { Media } from "../../src/media/media.js";
import { createLogger, type Logger } from "../../src/observability/log.js";
import { build, type RunningServer, startMedia } from "../../src/server.js";
import { storeEnv } from "./postgres.js";
import { ROOT } from "./protoc.js";

export const ADMIN_TOKEN = "e2e-admin-token-0123456789abcdef";
export const BUF = path.join(ROOT, "node_modules/.bin/buf");

export function tempDir(prefix = "rtcplane-e2e-"): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface TestServer extends RunningServer {
  readonly dataDir: string;
  /** The SFU, when started with media. */
  readonly media?: Media;
}

export async function startServer(
  env: Record<string, string> = {},
  dataDir = tempDir(),
  logger?: Logger,
  withMedia = false,
): Promise<TestServer> {
  const config = loadConfig({
    DATA_DIR: dataDir,
    PORT: "0",
    HOST: "127.0.0.1",
    ADMIN_TOKEN,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
    SHUTDOWN_GRACE_MS: "2000",
    ...(await storeEnv(dataDir)),
    ...env,
  });
  const log = logger ?? createLogger(config.logLevel);
  const media = withMedia ? await startMedia(config, log) : undefined;
  if (withMedia && media === undefined) throw new Error("no mediasoup worker: run scripts/build-mediasoup-worker.sh");
  const server = await build(config, { logger: log, ...(media ? { media } : {}) });
  const running = await server.listen();
  return { url: running.url, port: running.port, close: () => running.close(), dataDir, ...(media ? { media } : {}) };
}

export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export function run(cmd: string, args: readonly string[], input?: string): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === "number" ? err.code : 1;
      resolve({ code, stdout, stderr });
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** `buf curl`, a gRPC / gRPC-web / Connect client we did not write. */
export function bufCurl(args: readonly string[]): Promise<CommandResult> {
  return run(BUF, ["curl", ...args]);
}

/** The server as `npm start` runs it, in its own process, for restarts and signals. */
export interface ChildServer {
  readonly process: ChildProcess;
  readonly url: string;
  readonly exited: Promise<number | null>;
}

/**
 * Starts the server in a child process: through tsx from the sources (tests' default), or
 * as `npm start` runs it, from the build (`entry: "dist"`).
 */
export async function spawnServer(
  dataDir: string,
  env: Record<string, string> = {},
  entry: "src" | "dist" = "src",
): Promise<ChildServer> {
  const args =
    entry === "dist" ? [path.join(ROOT, "dist/server.js")] : ["--import", "tsx", path.join(ROOT, "src/server.ts")];
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: {
      ...process.env,
      DATA_DIR: dataDir,
      PORT: "0",
      HOST: "127.0.0.1",
      ADMIN_TOKEN,
      LOG_LEVEL: "info",
      ...(await storeEnv(dataDir)),
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL"); // not left running: nobody holds it to stop it later
      reject(new Error(`server did not start:\n${out}`));
    }, 30_000);
    child.stdout?.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const m = /"url":"([^"]+)"[^\n]*"msg":"listening"/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.stderr?.on("data", (chunk: Buffer) => {
      out += chunk.toString();
    });
    void exited.then((code) => reject(new Error(`server exited with ${code}:\n${out}`)));
  });
  return { process: child, url, exited };
}

/** A self-signed certificate for 127.0.0.1 and localhost (Debian's openssl), as PEM files. */
export async function selfSignedCert(): Promise<{ cert: string; key: string }> {
  const dir = tempDir("rtcplane-tls-");
  const cert = path.join(dir, "cert.pem");
  const key = path.join(dir, "key.pem");
  const gen = await run("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-days",
    "1",
    "-subj",
    "/CN=localhost",
    "-addext",
    "subjectAltName=IP:127.0.0.1,DNS:localhost",
    "-keyout",
    key,
    "-out",
    cert,
  ]);
  if (gen.code !== 0) throw new Error(`openssl: ${gen.stderr}`);
  return { cert, key };
}

/** Creates a tenant through the admin API and returns its id and auth token. */
export async function createTenant(url: string, name = "tenant"): Promise<{ tenantId: string; authToken: string }> {
  const res = await fetch(`${url}/admin/v1/tenants`, {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ name }),
  });
  if (res.status !== 200) throw new Error(`create tenant: ${res.status} ${await res.text()}`);
  return (await res.json()) as { tenantId: string; authToken: string };
}

/** Changes a tenant's status through the admin API. */
export async function setTenantStatus(url: string, tenantId: string, status: string): Promise<void> {
  const res = await fetch(`${url}/admin/v1/tenants/${tenantId}`, {
    method: "PATCH",
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ status }),
  });
  if (res.status !== 200) throw new Error(`set tenant status: ${res.status} ${await res.text()}`);
}

export interface TestApp {
  readonly tenantId: string;
  readonly authToken: string;
  readonly appId: string;
  readonly apikey: string;
  readonly secret: string;
}

/** A tenant with one app, through the admin and app APIs; returns the app's keys. */
export async function createApp(url: string, body: Record<string, unknown> = {}): Promise<TestApp> {
  const tenant = await createTenant(url, "app owner");
  const headers = { "x-auth-token": tenant.authToken, "content-type": "application/json" };
  const res = await fetch(`${url}/tenants/${tenant.tenantId}/apps`, {
    method: "POST",
    headers,
    body: JSON.stringify(body),
  });
  const app = (await res.json()) as { id: string; apikey: string };
  const secret = (await (
    await fetch(`${url}/tenants/${tenant.tenantId}/apps/${app.id}/secretkey`, { headers })
  ).json()) as { secretkey: string };
  return { ...tenant, appId: app.id, apikey: app.apikey, secret: secret.secretkey };
}

/** A SERVICE access token for an app (OAuth2 client credentials). */
export async function serviceToken(url: string, app: TestApp): Promise<string> {
  const res = await fetch(`${url}/security/oauth/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "client_credentials", client_id: app.apikey, client_secret: app.secret }),
  });
  if (res.status !== 200) throw new Error(`token: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { access_token: string }).access_token;
}

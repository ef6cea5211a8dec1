/**
 * A real PostgreSQL 15 (Debian's `postgresql`) for tests: `initdb` into a temp directory as
 * the `postgres` user, the server on a loopback port, stopped by PID. A whole test run
 * shares one (scripts/with-postgres.sh exports TEST_PG_URL); a test that needs its own starts
 * one with startPostgres(). Each test server gets a database of its own, named after its
 * DATA_DIR, so a server restarted on the same DATA_DIR finds its data again.
 */

import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import pg from "pg";
import { freePort } from "./nats.js";
import { tempDir } from "./server.js";

export const PG_BIN = process.env.PG_BIN ?? "/usr/lib/postgresql/15/bin";

export interface Postgres {
  readonly port: number;
  readonly process: ChildProcess;
  /** A URL to `database` (default: the maintenance database "postgres"). */
  url(database?: string): string;
  stop(): Promise<void>;
}

/** uid/gid of the `postgres` user when we are root (PostgreSQL refuses to run as root). */
function postgresUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = fs
    .readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith("postgres:"));
  if (line === undefined) throw new Error("no postgres user: apt-get install postgresql");
  const [, , uid, gid] = line.split(":");
  return { uid: Number(uid), gid: Number(gid) };
}

/** Starts a throwaway PostgreSQL; `durable: false` turns fsync off (tests kill nodes, not the database). */
export async function startPostgres(options: { durable?: boolean } = {}): Promise<Postgres> {
  const dir = tempDir("rtcplane-pg-");
  const user = postgresUser();
  if (user !== undefined) fs.chownSync(dir, user.uid, user.gid);
  const data = path.join(dir, "data");
  execFileSync(
    path.join(PG_BIN, "initdb"),
    ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"],
    { stdio: ["ignore", "ignore", "pipe"], ...(user ?? {}) },
  );
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const args = ["-D", data, "-p", String(port), "-k", dir, "-h", "127.0.0.1", "-c", "max_connections=400"];
    if (options.durable === false) args.push("-c", "fsync=off", "-c", "full_page_writes=off");
    const child = spawn(path.join(PG_BIN, "postgres"), args, { stdio: ["ignore", "ignore", "pipe"], ...(user ?? {}) });
    const ready = await new Promise<boolean>((resolve) => {
      let err = "";
      const timer = setTimeout(() => resolve(false), 30_000);
      child.stderr?.on("data", (chunk: Buffer) => {
        err += chunk.toString();
        if (err.includes("ready to accept connections")) {
          clearTimeout(timer);
          resolve(true);
        }
      });
      child.once("exit", () => {
        clearTimeout(timer);
        resolve(false);
      });
    });
    if (!ready) {
      child.kill("SIGKILL");
      if (attempt < 3) continue; // most likely the port was taken in between
      throw new Error("PostgreSQL did not start");
    }
    child.stderr?.resume();
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    return {
      port,
      process: child,
      url: (database = "postgres") => `postgres://postgres@127.0.0.1:${port}/${database}`,
      stop: async () => {
        child.kill("SIGINT"); // fast shutdown
        await exited;
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  }
}

/** Creates `name` on the server at `adminUrl` unless it exists; returns its URL. */
export async function ensureDatabase(adminUrl: string, name: string): Promise<string> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const exists = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]);
    if (exists.rowCount === 0) {
      await client.query(`CREATE DATABASE "${name}"`).catch((e: { code?: string }) => {
        if (e.code !== "42P04") throw e; // created by someone else in between
      });
    }
  } finally {
    await client.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/** The database of a test server's DATA_DIR on the run's shared PostgreSQL. */
export function databaseNameFor(dataDir: string): string {
  return `t_${createHash("sha1").update(dataDir).digest("hex").slice(0, 20)}`;
}

export const CLUSTER_SECRET = "e2e-cluster-secret-0123456789abcdef0123456789";

/**
 * The environment that points a test server at PostgreSQL when the run asks for it
 * (TEST_STORE=postgres with TEST_PG_URL); {} otherwise (SQLite in DATA_DIR).
 */
export async function storeEnv(dataDir: string): Promise<Record<string, string>> {
  if (process.env.TEST_STORE !== "postgres") return {};
  const admin = process.env.TEST_PG_URL;
  if (admin === undefined) throw new Error("TEST_STORE=postgres needs TEST_PG_URL (scripts/with-postgres.sh sets it)");
  return { DATABASE_URL: await ensureDatabase(admin, databaseNameFor(dataDir)), CLUSTER_SECRET };
}

/**
 * Clusters for tests and benchmarks: N rtcplane nodes sharing one fresh database on a real
 * PostgreSQL (the run's, from TEST_PG_URL, or one started here), in this process or as
 * child processes (for kill -9).
 */
import { randomBytes } from "node:crypto";
import { CLUSTER_SECRET, ensureDatabase, type Postgres, startPostgres } from "./postgres.js";
import { type ChildServer, spawnServer, startServer, type TestServer, tempDir } from "./server.js";

export interface ClusterDatabase {
  readonly url: string;
  stop(): Promise<void>;
}

/** A fresh database on the run's PostgreSQL (or on one of our own, stopped by stop()). */
export async function clusterDatabase(options: { durable?: boolean } = {}): Promise<ClusterDatabase> {
  const own = process.env.TEST_PG_URL === undefined ? await startPostgres(options) : undefined;
  const admin = process.env.TEST_PG_URL ?? (own as Postgres).url();
  const url = await ensureDatabase(admin, `cluster_${randomBytes(6).toString("hex")}`);
  return { url, stop: async () => own?.stop() };
}

/** The environment every node of the cluster on `databaseUrl` shares. */
export function clusterEnv(databaseUrl: string, env: Record<string, string> = {}): Record<string, string> {
  return { DATABASE_URL: databaseUrl, CLUSTER_SECRET, ...env };
}

/** N nodes in this process, started one after the other (the first migrates). */
export async function startNodes(
  n: number,
  databaseUrl: string,
  env: Record<string, string> = {},
): Promise<TestServer[]> {
  const nodes: TestServer[] = [];
  for (let i = 0; i < n; i++) nodes.push(await startServer(clusterEnv(databaseUrl, env)));
  return nodes;
}

/** N nodes as child processes (`kill -9`-able), started one after the other. */
export async function spawnNodes(
  n: number,
  databaseUrl: string,
  env: Record<string, string> = {},
): Promise<ChildServer[]> {
  const nodes: ChildServer[] = [];
  for (let i = 0; i < n; i++) nodes.push(await spawnServer(tempDir(), clusterEnv(databaseUrl, env)));
  return nodes;
}

/** Stops child nodes still running (SIGTERM, then SIGKILL after `graceMs`). */
export async function stopNodes(nodes: readonly ChildServer[], graceMs = 5000): Promise<void> {
  await Promise.all(
    nodes.map(async (n) => {
      if (n.process.exitCode !== null || n.process.signalCode !== null) return;
      n.process.kill("SIGTERM");
      const timer = setTimeout(() => n.process.kill("SIGKILL"), graceMs);
      await n.exited;
      clearTimeout(timer);
    }),
  );
}

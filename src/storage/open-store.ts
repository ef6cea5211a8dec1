/**
 * Picks the store from the configuration: PostgreSQL when DATABASE_URL is set (a cluster's
 * shared store), else the embedded SQLite file in DATA_DIR.
 */
import path from "node:path";
import type { Config } from "../config.js";
import type { Logger } from "../observability/log.js";
import { storeQueryTimes } from "../observability/process-metrics.js";
import { PostgresStore } from "./postgres-store.js";
import { SqliteStore } from "./sqlite-store.js";
import type { Store } from "./store.js";
import { timedStore } from "./timed-store.js";

/** The store, its query time measured for /metrics (rtcplane_store_query_duration_seconds). */
export async function openStore(config: Config, logger: Logger): Promise<Store> {
  if (config.databaseUrl === undefined) {
    return timedStore(SqliteStore.open(path.join(config.dataDir, "rtcplane.db")), storeQueryTimes);
  }
  const store = await PostgresStore.open({
    url: config.databaseUrl,
    poolSize: config.databasePoolSize,
    logger,
    // A lease holder silent as long as a dead node loses its leases, as that node loses its streams.
    leaseTimeoutMs: config.nodes.deadAfterMs,
  });
  logger.info({ database: redactedUrl(config.databaseUrl), pool: config.databasePoolSize }, "PostgreSQL store");
  return timedStore(store, storeQueryTimes);
}

/** The URL without its password, for logs. */
export function redactedUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== "") u.password = "***";
    return u.toString();
  } catch {
    return "(unparseable URL)";
  }
}

/**
 * The clustered store: PostgreSQL 15 through node-postgres (`pg`; why this driver: README,
 * "Running a cluster"). Every node of a cluster uses the same database. Statements are
 * named (prepared once per pooled connection); BIGINT and NUMERIC come back as numbers
 * (our integers are milliseconds, sequence numbers and counts, far below 2^53).
 * Transactions that lose a serialization race or a deadlock run again; LISTEN runs on a
 * connection of its own that reconnects; leases (postgres-leases.ts) are session advisory
 * locks, freed by the server when the node holding one dies or stops running.
 */
import { createHash } from "node:crypto";
import pg from "pg";
import type { Logger } from "../observability/log.js";
import { migrations as defaultMigrations, type Migration } from "./migrations.js";
import { PostgresLeases } from "./postgres-leases.js";
import { PLAN_EACH_TIME, SchemaError, type Store, storeUnavailable, type Tx, uniqueViolation } from "./store.js";

pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));
pg.types.setTypeParser(pg.types.builtins.NUMERIC, (v) => Number(v));

const RETRIES = 5;
/** How often the LISTEN connection is pinged (finds a connection that died silently). */
const LISTEN_PING_MS = 5_000;
/** Lock key of schema migrations (any constant; each node takes it before migrating). */
const MIGRATION_LOCK = 72_616_401;

interface Prepared {
  /** Undefined for statements marked PLAN_EACH_TIME: sent unnamed, planned with their values. */
  readonly name: string | undefined;
  readonly text: string;
}

/** `?` placeholders become `$1…$n`; quoted literals and identifiers are left alone. */
export function toPostgresSql(sql: string): string {
  let out = "";
  let n = 0;
  let quote: string | undefined;
  for (const ch of sql) {
    if (quote !== undefined) {
      if (ch === quote) quote = undefined;
      out += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      out += ch;
    } else if (ch === "?") {
      n += 1;
      out += `$${n}`;
    } else {
      out += ch;
    }
  }
  return out;
}

const CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "57P01",
  "57P02",
  "57P03",
]);

function isRetryable(e: unknown): boolean {
  const code = (e as { code?: unknown })?.code;
  return code === "40001" || code === "40P01";
}

function translateError(e: unknown): unknown {
  const err = e as { code?: unknown; message?: string; detail?: string; constraint?: string };
  if (err?.code === "23505") return uniqueViolation(err.constraint ?? err.detail ?? "unique key");
  if (
    (typeof err?.code === "string" && (CONNECTION_CODES.has(err.code) || err.code.startsWith("08"))) ||
    /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(
      err?.message ?? "",
    )
  ) {
    return storeUnavailable(err.message ?? String(err.code));
  }
  return e;
}

export interface PostgresOptions {
  readonly url: string;
  /** Connections in the pool (each node has its own pool). */
  readonly poolSize: number;
  readonly logger: Logger;
  readonly migrations?: readonly Migration[];
  /**
   * A lease holder silent this long loses its leases (see postgres-leases.ts): a node frozen
   * or cut off while holding one must not stall that job on every node. Default 10 s; a
   * cluster passes NODE_DEAD_AFTER_MS (a node silent that long is counted dead anyway).
   */
  readonly leaseTimeoutMs?: number;
}

export class PostgresStore implements Store {
  readonly kind = "postgres" as const;
  readonly forUpdate = " FOR UPDATE";
  private readonly prepared = new Map<string, Prepared>();
  private listener: pg.Client | undefined;
  private readonly channels = new Map<string, Set<(payload: string) => void>>();
  private closed = false;
  private reconnecting: NodeJS.Timeout | undefined;
  /** Called when LISTEN is lost (notifications stop arriving until onListenGap). */
  onListenLost: (() => void) | undefined;
  /** Called when LISTEN was lost and is back: notifications in between may be missing. */
  onListenGap: (() => void) | undefined;

  private readonly leases: PostgresLeases;

  private constructor(
    private readonly pool: pg.Pool,
    private readonly options: PostgresOptions,
  ) {
    this.leases = new PostgresLeases(options.url, options.leaseTimeoutMs ?? 10_000, options.logger);
  }

  static async open(options: PostgresOptions): Promise<PostgresStore> {
    const pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolSize,
      connectionTimeoutMillis: 5_000,
      idleTimeoutMillis: 30_000,
      application_name: "rtcplane",
    });
    // An idle pooled connection that the server drops must not end the process.
    pool.on("error", (err) => options.logger.warn({ err }, "idle PostgreSQL connection lost"));
    const store = new PostgresStore(pool, options);
    try {
      await store.migrate(options.migrations ?? defaultMigrations);
    } catch (e) {
      await pool.end();
      throw e;
    }
    return store;
  }

  /** Applies the migrations above the recorded version, each in its own transaction. */
  async migrate(migrations: readonly Migration[]): Promise<number> {
    const latest = migrations.reduce((max, m) => Math.max(max, m.version), 0);
    const client = await this.pool.connect();
    try {
      // Nodes starting together migrate one at a time; the others then find nothing to do.
      await client.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK]);
      await client.query("CREATE TABLE IF NOT EXISTS rtcplane_schema (version INTEGER NOT NULL)");
      const row = (await client.query<{ version: number }>("SELECT version FROM rtcplane_schema")).rows[0];
      const current = row?.version ?? 0;
      if (row === undefined) await client.query("INSERT INTO rtcplane_schema (version) VALUES (0)");
      if (current > latest) {
        throw new SchemaError(
          `database schema version ${current} is newer than this server understands (${latest}); ` +
            "run a newer rtcplane or restore a backup",
        );
      }
      const pending = migrations.filter((m) => m.version > current).sort((a, b) => a.version - b.version);
      for (const m of pending) {
        await client.query("BEGIN");
        try {
          await client.query(m.postgres);
          await client.query("UPDATE rtcplane_schema SET version = $1", [m.version]);
          await client.query("COMMIT");
        } catch (e) {
          await client.query("ROLLBACK");
          throw e;
        }
      }
      return pending.length;
    } finally {
      await client.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK]).catch(() => {});
      client.release();
    }
  }

  private statement(sql: string): Prepared {
    let p = this.prepared.get(sql);
    if (p === undefined) {
      const name = sql.startsWith(PLAN_EACH_TIME)
        ? undefined
        : `q${createHash("sha1").update(sql).digest("base64url").slice(0, 20)}`;
      p = { name, text: toPostgresSql(sql) };
      this.prepared.set(sql, p);
    }
    return p;
  }

  async query<T>(
    client: pg.Pool | pg.PoolClient,
    sql: string,
    params: readonly unknown[],
  ): Promise<pg.QueryResult<T & pg.QueryResultRow>> {
    const p = this.statement(sql);
    try {
      const config = { text: p.text, values: params as unknown[] };
      return await client.query<T & pg.QueryResultRow>(p.name === undefined ? config : { ...config, name: p.name });
    } catch (e) {
      throw translateError(e);
    }
  }

  async all<T>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
    return (await this.query<T>(this.pool, sql, params)).rows;
  }

  async get<T>(sql: string, params: readonly unknown[] = []): Promise<T | undefined> {
    return (await this.query<T>(this.pool, sql, params)).rows[0];
  }

  async run(sql: string, params: readonly unknown[] = []): Promise<number> {
    return (await this.query(this.pool, sql, params)).rowCount ?? 0;
  }

  async transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      let client: pg.PoolClient;
      try {
        client = await this.pool.connect();
      } catch (e) {
        throw translateError(e);
      }
      const tx = new PostgresTx(this, client);
      let broken: Error | undefined;
      try {
        await client.query("BEGIN");
        const result = await fn(tx);
        if (tx.pending.length > 0) {
          // One round trip for all of them, in the order they were made.
          await this.query(client, "SELECT pg_notify(c, p) FROM unnest(?::text[], ?::text[]) AS n (c, p)", [
            tx.pending.map(([c]) => c),
            tx.pending.map(([, p]) => p),
          ]);
        }
        await client.query("COMMIT");
        tx.committed();
        return result;
      } catch (e) {
        await client.query("ROLLBACK").catch((err: Error) => {
          broken = err; // the connection is gone: do not return it to the pool
        });
        if (isRetryable(e) && attempt < RETRIES) continue;
        throw translateError(e);
      } finally {
        tx.closed = true;
        client.release(broken);
      }
    }
  }

  async listen(channel: string, onMessage: (payload: string) => void): Promise<() => void> {
    let set = this.channels.get(channel);
    if (set === undefined) {
      set = new Set();
      this.channels.set(channel, set);
      if (this.listener !== undefined) await this.listener.query(`LISTEN "${channel.replaceAll('"', "")}"`);
    }
    set.add(onMessage);
    if (this.listener === undefined) await this.connectListener();
    return () => set.delete(onMessage);
  }

  /**
   * The LISTEN connection: TCP keep-alive and a ping every few seconds find a half-open
   * connection; on any loss onListenLost is told at once, and reconnection is retried every
   * half second until it listens again (then onListenGap: messages in between are missing).
   */
  private async connectListener(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.options.url,
      application_name: "rtcplane-listen",
      keepAlive: true,
      connectionTimeoutMillis: 5_000,
    });
    client.on("notification", (msg) => {
      if (msg.payload === undefined) return;
      for (const fn of [...(this.channels.get(msg.channel) ?? [])]) {
        try {
          fn(msg.payload);
        } catch (err) {
          this.options.logger.warn({ err, channel: msg.channel }, "notification listener failed");
        }
      }
    });
    let ping: NodeJS.Timeout | undefined;
    const lost = (err?: unknown) => {
      if (this.listener !== client) return;
      this.listener = undefined;
      if (ping !== undefined) clearInterval(ping);
      client.end().catch(() => {});
      if (this.closed) return;
      this.options.logger.warn({ err }, "LISTEN connection lost; reconnecting");
      this.onListenLost?.();
      this.scheduleReconnect();
    };
    client.on("error", lost);
    client.on("end", () => lost());
    this.listener = client;
    try {
      await client.connect();
      for (const channel of this.channels.keys()) await client.query(`LISTEN "${channel.replaceAll('"', "")}"`);
    } catch (err) {
      lost(err);
      throw err;
    }
    ping = setInterval(() => {
      client.query("SELECT 1").catch((err: unknown) => lost(err));
    }, LISTEN_PING_MS);
    ping.unref();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnecting !== undefined) return;
    this.reconnecting = setTimeout(() => {
      this.reconnecting = undefined;
      this.connectListener().then(
        () => this.onListenGap?.(),
        () => this.scheduleReconnect(),
      );
    }, 500);
  }

  /** Cluster leases (postgres-leases.ts): one node at a time runs `work`. */
  async withLease(name: string, work: () => Promise<void>): Promise<boolean> {
    try {
      return await this.leases.withLease(name, work);
    } catch (e) {
      throw translateError(e);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.reconnecting !== undefined) clearTimeout(this.reconnecting);
    const listener = this.listener;
    this.listener = undefined;
    await listener?.end().catch(() => {});
    await this.leases.close();
    await this.pool.end();
  }
}

class PostgresTx implements Tx {
  closed = false;
  private readonly after: (() => void)[] = [];

  constructor(
    private readonly store: PostgresStore,
    private readonly client: pg.PoolClient,
  ) {}

  private check(): void {
    if (this.closed) throw new Error("transaction used after it ended");
  }

  async all<T>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
    this.check();
    return (await this.store.query<T>(this.client, sql, params)).rows;
  }

  async get<T>(sql: string, params: readonly unknown[] = []): Promise<T | undefined> {
    this.check();
    return (await this.store.query<T>(this.client, sql, params)).rows[0];
  }

  async run(sql: string, params: readonly unknown[] = []): Promise<number> {
    this.check();
    return (await this.store.query(this.client, sql, params)).rowCount ?? 0;
  }

  afterCommit(fn: () => void): void {
    this.check();
    this.after.push(fn);
  }

  notify(channel: string, payload: string): void {
    this.check();
    // Queued as a statement of this transaction: PostgreSQL sends it at commit, in commit order.
    this.pending.push([channel, payload]);
  }

  readonly pending: [string, string][] = [];

  committed(): void {
    for (const fn of this.after) {
      try {
        fn();
      } catch {
        // What runs after a commit cannot undo it; its failure is its own.
      }
    }
  }
}

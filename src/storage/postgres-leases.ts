/**
 * Cluster leases on PostgreSQL: session advisory locks on one connection of their own (held
 * locks must not take pooled connections that the leased work needs). The server frees a lock
 * when its session ends — when the holding node dies, and, since that session has
 * `idle_session_timeout` while it holds a lease and the holder pings it meanwhile, when the
 * holder stops running (frozen, its event loop stalled, cut off) for longer than the timeout.
 * A lease lost while its work runs is logged, not interrupted: leased work must bear another
 * node starting the same round (every job here re-checks what it changes).
 */
import { createHash } from "node:crypto";
import pg from "pg";
import type { Logger } from "../observability/log.js";

export class PostgresLeases {
  private connection: { readonly client: pg.Client; readonly ready: Promise<pg.Client> } | undefined;
  /** Leases of different jobs share the connection: their statements go one at a time. */
  private tail: Promise<unknown> = Promise.resolve();
  /** Names being tried or held by this node (a session lock is re-entrant: refuse our own). */
  private readonly busy = new Set<string>();
  /** Leases held, with the connection holding each. */
  private readonly held = new Map<string, pg.Client>();
  private closed = false;
  /** idle_session_timeout exists (PostgreSQL 14+); before, a frozen holder keeps its leases. */
  private canTimeOut = true;

  constructor(
    private readonly url: string,
    /** A holder silent this long loses its leases. */
    private readonly timeoutMs: number,
    private readonly logger: Logger,
  ) {
    if (!Number.isInteger(timeoutMs) || timeoutMs < 100) {
      throw new RangeError(`the lease timeout must be a whole number of ms ≥ 100, not ${timeoutMs}`);
    }
  }

  /** Runs `work` holding the lease `name`; false (without running it) when another holds it. */
  async withLease(name: string, work: () => Promise<void>): Promise<boolean> {
    if (this.closed || this.busy.has(name)) return false;
    const key = createHash("sha1").update(`rtcplane.lease.${name}`).digest().readInt32BE(0);
    this.busy.add(name);
    try {
      const client = await this.client();
      // The idle timeout is on only while the session holds a lease: a node holding none keeps
      // its connection however long its jobs sleep.
      const got = (
        await this.query<{ ok: boolean }>(
          client,
          this.canTimeOut
            ? "SELECT ok, CASE WHEN ok THEN set_config('idle_session_timeout', $2, false) END FROM (SELECT pg_try_advisory_lock($1) AS ok) AS t"
            : "SELECT pg_try_advisory_lock($1) AS ok, $2 AS unused",
          [key, String(this.timeoutMs)],
        )
      ).rows[0]?.ok;
      if (!got) return false;
      this.held.set(name, client);
      const ping = this.pinger(client);
      try {
        await work();
      } finally {
        clearInterval(ping);
        this.held.delete(name);
        if (this.connection?.client === client) {
          const others = [...this.held.values()].includes(client);
          const unlock = this.canTimeOut
            ? "SELECT pg_advisory_unlock($1), set_config('idle_session_timeout', $2, false)"
            : "SELECT pg_advisory_unlock($1), $2 AS unused";
          await this.query(client, unlock, [key, others ? String(this.timeoutMs) : "0"]).catch(() => {
            // The connection went meanwhile: the server freed the lock with it.
          });
        }
      }
      return true;
    } finally {
      this.busy.delete(name);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const connection = this.connection;
    this.connection = undefined;
    if (connection !== undefined) await (await connection.ready.catch(() => undefined))?.end().catch(() => {});
  }

  /** Keeps `client`'s session busy while a lease runs; a ping that fails ends the connection. */
  private pinger(client: pg.Client): NodeJS.Timeout {
    let inFlight = false;
    const ping = setInterval(() => {
      if (inFlight || this.connection?.client !== client) return;
      inFlight = true;
      this.query(client, "SELECT 1", [])
        .catch((err: unknown) => this.lost(client, err))
        .finally(() => {
          inFlight = false;
        });
    }, this.timeoutMs / 3);
    ping.unref();
    return ping;
  }

  /** One statement on `client`, after the statements before it; it may wait timeoutMs at most. */
  private query<T extends pg.QueryResultRow>(
    client: pg.Client,
    text: string,
    values: unknown[],
  ): Promise<pg.QueryResult<T>> {
    const run = this.tail.then(() =>
      client.query<T>({ text, values, query_timeout: this.timeoutMs } as pg.QueryConfig),
    );
    this.tail = run.catch(() => {});
    return run;
  }

  private client(): Promise<pg.Client> {
    if (this.closed) return Promise.reject(new Error("the store is closed"));
    if (this.connection === undefined) {
      const client = new pg.Client({
        connectionString: this.url,
        application_name: "rtcplane-leases",
        keepAlive: true,
        connectionTimeoutMillis: 5_000,
      });
      client.on("error", (err) => this.lost(client, err));
      client.on("end", () => this.lost(client));
      const ready = client.connect().then(
        async () => {
          const version = await client.query<{ v: number }>("SELECT current_setting('server_version_num')::int AS v");
          if ((version.rows[0]?.v ?? 0) < 140000 && this.canTimeOut) {
            this.canTimeOut = false;
            this.logger.warn("PostgreSQL before 14 has no idle_session_timeout: a frozen node keeps its leases");
          }
          return client;
        },
        (err: unknown) => {
          this.lost(client);
          throw err;
        },
      );
      this.connection = { client, ready };
    }
    return this.connection.ready;
  }

  /** `client`'s session is over (or must be): its leases are free for other nodes. */
  private lost(client: pg.Client, err?: unknown): void {
    if (this.connection?.client !== client) return;
    this.connection = undefined;
    client.end().catch(() => {});
    const leases = [...this.held].filter(([, c]) => c === client).map(([name]) => name);
    if (leases.length > 0 && !this.closed) {
      this.logger.warn({ err, leases }, "lease connection lost while holding leases: other nodes may take them");
    }
  }
}

/**
 * The PostgreSQL store against a real PostgreSQL 15: migrations (once, concurrently, refusing a
 * newer schema), placeholders, error mapping, transactions (rollback, retry), notifications in
 * commit order and only on commit, and leases held by one store at a time, kept while the
 * holder runs and freed when it freezes.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { pino } from "pino";
import { DomainError } from "../../src/errors.js";
import { createLogger } from "../../src/observability/log.js";
import { migrations } from "../../src/storage/migrations.js";
import { PostgresStore, toPostgresSql } from "../../src/storage/postgres-store.js";
import { SchemaError } from "../../src/storage/store.js";
import { clusterDatabase } from "../helpers/cluster.js";
import { spawnLeaseHolder } from "../helpers/lease-holder.js";

const logger = createLogger("silent");
let url: string;
let stopDatabase: () => Promise<void>;
const open = () => PostgresStore.open({ url, poolSize: 4, logger });

before(async () => {
  const db = await clusterDatabase({ durable: false });
  url = db.url;
  stopDatabase = db.stop;
});
after(() => stopDatabase());

describe("PostgreSQL store", () => {
  it("rewrites ? placeholders, leaving quoted text alone", () => {
    assert.equal(toPostgresSql("SELECT ? WHERE a = '?' AND \"b?\" = ?"), "SELECT $1 WHERE a = '?' AND \"b?\" = $2");
  });

  it("migrates once when several nodes start together, and refuses a newer schema", async () => {
    const stores = await Promise.all([open(), open(), open()]);
    const latest = Math.max(...migrations.map((m) => m.version));
    const row = await stores[0]?.get<{ version: number }>("SELECT version FROM rtcplane_schema");
    assert.equal(row?.version, latest);
    assert.equal((await stores[0]?.all("SELECT version FROM rtcplane_schema"))?.length, 1);
    await stores[0]?.run("UPDATE rtcplane_schema SET version = 999");
    await assert.rejects(open(), SchemaError);
    await stores[0]?.run("UPDATE rtcplane_schema SET version = ?", [latest]);
    await Promise.all(stores.map((s) => s.close()));
  });

  it("maps unique violations to already_exists, and rolls a failed transaction back", async () => {
    const store = await open();
    const insert =
      "INSERT INTO tenants (tenant_id, name, status, token_hash, create_time_ms, update_time_ms) VALUES (?, ?, 'active', ?, 1, 1)";
    await store.run(insert, ["t-unique", "a", Buffer.from("h1")]);
    await assert.rejects(store.run(insert, ["t-unique", "b", Buffer.from("h2")]), (e: unknown) => {
      return e instanceof DomainError && e.kind === "already_exists";
    });
    await assert.rejects(
      store.transaction(async (tx) => {
        await tx.run(insert, ["t-rolled-back", "c", Buffer.from("h3")]);
        throw new Error("boom");
      }),
      /boom/,
    );
    assert.equal(await store.get("SELECT 1 FROM tenants WHERE tenant_id = 't-rolled-back'"), undefined);
    const seq = await store.get<{ seq: number }>("SELECT seq FROM tenants WHERE tenant_id = 't-unique'");
    assert.equal(typeof seq?.seq, "number", "BIGINT comes back as a number");
    await store.close();
  });

  it("runs again a transaction that lost a serialization race", async () => {
    const store = await open();
    let attempts = 0;
    const result = await store.transaction(async (tx) => {
      attempts += 1;
      if (attempts === 1) throw Object.assign(new Error("could not serialize access"), { code: "40001" });
      return (await tx.get<{ n: number }>("SELECT 41 + 1 AS n"))?.n;
    });
    assert.deepEqual([result, attempts], [42, 2]);
    await store.close();
  });

  it("notifies every listener after commit, in commit order, and never for a rollback", async () => {
    const [a, b] = await Promise.all([open(), open()]);
    if (a === undefined || b === undefined) throw new Error("stores");
    const heard: string[] = [];
    const stop = await b.listen("unit_test", (p) => heard.push(p));
    // Two transactions on one row: the second waits for the first's lock and commits after it.
    await a.run(
      "INSERT INTO tenants (tenant_id, name, status, token_hash, create_time_ms, update_time_ms) VALUES ('t-order', 'n', 'active', ?, 1, 1)",
      [Buffer.from("order")],
    );
    let releaseFirst = () => {};
    const firstHolds = new Promise<void>((r) => {
      releaseFirst = r;
    });
    const first = a.transaction(async (tx) => {
      await tx.run("UPDATE tenants SET name = 'first' WHERE tenant_id = 't-order'");
      tx.notify("unit_test", "first");
      await firstHolds;
    });
    await new Promise((r) => setTimeout(r, 50));
    const second = b.transaction(async (tx) => {
      await tx.get(`SELECT name FROM tenants WHERE tenant_id = 't-order'${b.forUpdate}`);
      tx.notify("unit_test", "second");
    });
    await new Promise((r) => setTimeout(r, 50));
    releaseFirst();
    await Promise.all([first, second]);
    await assert.rejects(
      a.transaction(async (tx) => {
        tx.notify("unit_test", "rolled back");
        throw new Error("no");
      }),
    );
    await a.transaction(async (tx) => tx.notify("unit_test", "x".repeat(100)));
    for (let i = 0; i < 50 && heard.length < 3; i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(heard, ["first", "second", "x".repeat(100)]);
    stop();
    await Promise.all([a.close(), b.close()]);
  });

  it("holds a lease on one store at a time, and frees it when the work ends", async () => {
    const [a, b] = await Promise.all([open(), open()]);
    if (a === undefined || b === undefined) throw new Error("stores");
    let inside = 0;
    let most = 0;
    const work = async () => {
      inside += 1;
      most = Math.max(most, inside);
      await new Promise((r) => setTimeout(r, 100));
      inside -= 1;
    };
    const [ranA, ranB] = await Promise.all([a.withLease("unit", work), b.withLease("unit", work)]);
    assert.equal(most, 1);
    assert.equal(Number(ranA) + Number(ranB), 1, "one ran, the other found the lease taken");
    assert.equal(await b.withLease("unit", work), true, "free again afterwards");
    await Promise.all([a.close(), b.close()]);
  });

  it("keeps a lease while its holder runs, and frees it once the holder freezes past leaseTimeoutMs", async () => {
    const timeoutMs = 1500; // pings every 500 ms: a holder stalled on a busy CI machine keeps it
    const holder = await spawnLeaseHolder(url, "frozen", timeoutMs);
    const other = await open();
    try {
      // The holder's work outlasts the timeout several times over: its pings keep the lease.
      const until = Date.now() + 4 * timeoutMs;
      while (Date.now() < until) {
        assert.equal(await other.withLease("frozen", async () => {}), false, "taken from a running holder");
        await new Promise((r) => setTimeout(r, 100));
      }
      process.kill(holder.pid, "SIGSTOP");
      const frozenAt = Date.now();
      let got = false;
      while (!got && Date.now() - frozenAt < timeoutMs + 5_000) {
        got = await other.withLease("frozen", async () => {});
        if (!got) await new Promise((r) => setTimeout(r, 50));
      }
      const tookMs = Date.now() - frozenAt;
      assert.ok(got, "the frozen holder's lease was never freed");
      assert.ok(tookMs >= timeoutMs / 2, `freed after ${tookMs} ms, before the holder could have idled out`);
    } finally {
      process.kill(holder.pid, "SIGKILL");
      await holder.exited;
      await other.close();
    }
  });

  it("logs a lease whose connection went while its work ran; the work ends, the lease is free and taken again", async () => {
    const lines: string[] = [];
    const logger = pino({ level: "warn" }, { write: (line: string) => lines.push(line) });
    const [a, b] = await Promise.all([PostgresStore.open({ url, poolSize: 2, logger }), open()]);
    if (a === undefined || b === undefined) throw new Error("stores");
    let release = () => {};
    const released = new Promise<void>((r) => {
      release = r;
    });
    let taken: () => void = () => {};
    const isTaken = new Promise<void>((r) => {
      taken = r;
    });
    const running = a.withLease("cut", async () => {
      taken();
      await released;
    });
    await isTaken;
    // The server ends the holder's session (as it does past idle_session_timeout).
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    await admin.query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'rtcplane-leases'",
    );
    await admin.end();
    let got = false;
    for (let i = 0; i < 50 && !got; i++) {
      got = await b.withLease("cut", async () => {});
      if (!got) await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(got, "the lease is free once its session is gone");
    release();
    assert.equal(await running, true);
    assert.ok(
      lines.some((l) => /lease connection lost while holding leases/.test(l) && /"cut"/.test(l)),
      lines.join(""),
    );
    assert.equal(await a.withLease("cut", async () => {}), true, "the holder takes it again on a new connection");
    await Promise.all([a.close(), b.close()]);
  });
});

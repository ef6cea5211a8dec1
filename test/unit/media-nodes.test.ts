/**
 * The media node registry and placement against a real PostgreSQL 15: the least loaded live
 * node is chosen (per worker, then by conferences held, then the asking node), nodes placing
 * one conference at once agree, dead nodes are neither chosen nor revived by their heartbeat,
 * a dead owner's conference is placed anew, and a forgotten node takes its placements along.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { MediaNodes } from "../../src/cluster/media-nodes.js";
import { DomainError } from "../../src/errors.js";
import { createLogger } from "../../src/observability/log.js";
import { PostgresStore } from "../../src/storage/postgres-store.js";
import { clusterDatabase } from "../helpers/cluster.js";

const DEAD_AFTER_MS = 400;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let store: PostgresStore;
let stopDatabase: () => Promise<void>;

before(async () => {
  const db = await clusterDatabase({ durable: false });
  stopDatabase = db.stop;
  store = await PostgresStore.open({ url: db.url, poolSize: 8, logger: createLogger("silent") });
});
after(async () => {
  await store.close();
  await stopDatabase();
});

/** A node joined with `workers` SFU workers and a load. */
async function joined(name: string, workers: number, transports = 0, consumers = 0): Promise<MediaNodes> {
  const node = new MediaNodes(store, DEAD_AFTER_MS);
  await node.register({ rpcUrl: `http://${name}:8080`, mediaIp: "127.0.0.1", workers }, { transports, consumers });
  return node;
}

describe("media nodes and placement", () => {
  it("places on the least loaded per worker; without a live SFU it refuses", async () => {
    await store.run("DELETE FROM media_nodes");
    const none = await joined("none", 0);
    await assert.rejects(
      none.place("app", "c0"),
      (e: unknown) => e instanceof DomainError && e.kind === "failed_precondition",
    );
    const busy = await joined("busy", 1, 10, 40); // 50 per worker
    const big = await joined("big", 4, 20, 100); // 30 per worker
    const placed = await busy.place("app", "c1");
    assert.equal(placed.nodeId, big.nodeId);
    assert.equal(placed.rpcUrl, "http://big:8080");
    // Equal load: the one holding fewer conferences, then the asking node.
    const a = await joined("a", 2);
    const b = await joined("b", 2);
    assert.equal((await a.place("app", "c2")).nodeId, a.nodeId, "the asking node on a tie");
    assert.equal((await a.place("app", "c3")).nodeId, b.nodeId, "then the one holding fewer");
    assert.equal((await b.place("app", "c2")).nodeId, a.nodeId, "a placed conference stays where it is");
    for (const n of [none, busy, big, a, b]) await n.leave();
  });

  it("nodes placing one conference at once agree", async () => {
    await store.run("DELETE FROM media_nodes");
    const nodes = await Promise.all(["x", "y", "z"].map((n) => joined(n, 1)));
    for (let i = 0; i < 10; i++) {
      const placed = await Promise.all(nodes.map((n) => n.place("app", `race-${i}`)));
      assert.equal(new Set(placed.map((p) => p.nodeId)).size, 1, `race ${i}: ${placed.map((p) => p.nodeId)}`);
    }
    for (const n of nodes) await n.leave();
  });

  it("a silent node is dead: not chosen, its conference placed anew, its heartbeat refused, forgotten with its placements", async () => {
    await store.run("DELETE FROM media_nodes");
    const owner = await joined("owner", 1);
    const other = await joined("other", 1, 5, 5);
    assert.equal((await owner.place("app", "d1")).nodeId, owner.nodeId);
    assert.ok(await owner.heartbeat({ transports: 1, consumers: 1 }));
    const deadline = Date.now() + DEAD_AFTER_MS + 200;
    while (Date.now() < deadline) {
      await other.heartbeat({ transports: 5, consumers: 5 });
      await sleep(100);
    }
    assert.deepEqual(await other.deadIds(), [owner.nodeId]);
    assert.deepEqual(await other.liveIds(), [other.nodeId]);
    assert.equal((await other.placement("app", "d1"))?.alive, false);
    assert.equal(await owner.heartbeat({ transports: 1, consumers: 1 }), false, "a lapsed row is never revived");
    assert.equal((await other.place("app", "d1")).nodeId, other.nodeId, "placed anew on the live node");
    assert.equal((await owner.place("app", "d2")).nodeId, other.nodeId, "the dead node is not chosen");
    await other.forget(owner.nodeId);
    assert.deepEqual(await other.deadIds(), []);
    // The dead node rejoins under a new id and can be chosen again.
    const was = owner.nodeId;
    owner.renew();
    assert.notEqual(owner.nodeId, was);
    await owner.register(
      { rpcUrl: "http://owner:8080", mediaIp: "127.0.0.1", workers: 1 },
      { transports: 0, consumers: 0 },
    );
    assert.equal((await owner.place("app", "d3")).nodeId, owner.nodeId);
    // A conference's end releases its placement on its node only.
    await other.release("app", "d3");
    assert.equal((await owner.placement("app", "d3"))?.nodeId, owner.nodeId);
    await owner.release("app", "d3");
    assert.equal(await owner.placement("app", "d3"), undefined);
    // Leaving (shutdown) makes a node dead at once.
    await owner.leave();
    assert.deepEqual(await other.deadIds(), [owner.nodeId]);
  });
});

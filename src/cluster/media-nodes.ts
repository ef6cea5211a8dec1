/**
 * The cluster's media nodes and where each conference's media lives (tables media_nodes and
 * media_placements, PostgreSQL only). Every node registers itself with the address other
 * nodes call it on, how many SFU workers it runs, how loaded they are, and a heartbeat; times
 * are the database's clock, so the nodes' clocks never need to agree. A conference's media is
 * placed on one live node when its first stream is published (the least loaded per worker,
 * then the one holding fewest conferences) and stays there while that node lives.
 */
import { randomUUID } from "node:crypto";
import { failedPrecondition } from "../errors.js";
import type { Store } from "../storage/store.js";

/** The database's clock, in epoch milliseconds. */
const NOW_MS = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

export interface MediaNode {
  readonly nodeId: string;
  /** Where its internal media service answers (NODE_URL). */
  readonly rpcUrl: string;
}

/** A conference's media node, and whether it still lives. */
export interface Placement extends MediaNode {
  readonly alive: boolean;
}

/** What this node tells the others about itself. */
export interface NodeAnnouncement {
  readonly rpcUrl: string;
  /** The address its ICE candidates carry (ANNOUNCED_IP, or the RTP listen address). */
  readonly mediaIp: string;
  /** SFU workers it runs; 0 = no media here (it forwards, and is never placed on). */
  readonly workers: number;
}

/** How loaded this node's SFU is now. */
export interface NodeLoad {
  readonly transports: number;
  readonly consumers: number;
}

interface PlacementRow {
  node_id: string;
  rpc_url: string | null;
  alive: boolean | null;
}

export class MediaNodes {
  private id = randomUUID();

  constructor(
    private readonly store: Store,
    /** A node silent this long is dead (NODE_DEAD_AFTER_MS). */
    private readonly deadAfterMs: number,
  ) {}

  /**
   * This node's id in the registry: new on every start (media does not survive a restart) and
   * after being declared dead (see heartbeat), so streams recorded under an id are all gone
   * once that id is.
   */
  get nodeId(): string {
    return this.id;
  }

  /** Takes a new id (this node was declared dead: what it held under the old one is gone). */
  renew(): void {
    this.id = randomUUID();
  }

  /** Adds this node to the registry (or refreshes it), alive from now. */
  async register(self: NodeAnnouncement, load: NodeLoad): Promise<void> {
    await this.store.run(
      `INSERT INTO media_nodes (node_id, rpc_url, media_ip, workers, transports, consumers, heartbeat_ms, start_ms)
       VALUES (?, ?, ?, ?, ?, ?, ${NOW_MS}, ${NOW_MS})
       ON CONFLICT (node_id) DO UPDATE SET rpc_url = excluded.rpc_url, media_ip = excluded.media_ip,
         workers = excluded.workers, transports = excluded.transports, consumers = excluded.consumers,
         heartbeat_ms = excluded.heartbeat_ms`,
      [this.nodeId, self.rpcUrl, self.mediaIp, self.workers, load.transports, load.consumers],
    );
  }

  /**
   * Says this node is alive and how loaded it is. False when it was silent too long: the
   * others count it dead (its row lapsed or is gone) and unpublish its streams, if they have
   * not yet; a lapsed row is never revived, so they and this node agree.
   */
  async heartbeat(load: NodeLoad): Promise<boolean> {
    const changed = await this.store.run(
      `UPDATE media_nodes SET heartbeat_ms = ${NOW_MS}, transports = ?, consumers = ?
       WHERE node_id = ? AND heartbeat_ms >= ${NOW_MS} - ?`,
      [load.transports, load.consumers, this.nodeId, this.deadAfterMs],
    );
    return changed > 0;
  }

  /** Leaving for good (shutdown): the others treat this node as dead at once. */
  async leave(): Promise<void> {
    await this.store.run("UPDATE media_nodes SET heartbeat_ms = 0 WHERE node_id = ?", [this.nodeId]);
  }

  /** The ids of the nodes alive now. */
  async liveIds(): Promise<string[]> {
    const rows = await this.store.all<{ node_id: string }>(
      `SELECT node_id FROM media_nodes WHERE heartbeat_ms >= ${NOW_MS} - ?`,
      [this.deadAfterMs],
    );
    return rows.map((r) => r.node_id);
  }

  /** How many live nodes run an SFU. */
  async liveSfus(): Promise<number> {
    const row = await this.store.get<{ n: number | string }>(
      `SELECT count(*) AS n FROM media_nodes WHERE workers > 0 AND heartbeat_ms >= ${NOW_MS} - ?`,
      [this.deadAfterMs],
    );
    return Number(row?.n ?? 0);
  }

  /** Dead nodes (silent for NODE_DEAD_AFTER_MS), to be forgotten once their streams are handled. */
  async deadIds(): Promise<string[]> {
    const rows = await this.store.all<{ node_id: string }>(
      `SELECT node_id FROM media_nodes WHERE heartbeat_ms < ${NOW_MS} - ?`,
      [this.deadAfterMs],
    );
    return rows.map((r) => r.node_id);
  }

  /** Forgets a dead node and its placements (its conferences are placed anew on their next publish). */
  async forget(nodeId: string): Promise<void> {
    await this.store.transaction(async (tx) => {
      await tx.run("DELETE FROM media_placements WHERE node_id = ?", [nodeId]);
      await tx.run(`DELETE FROM media_nodes WHERE node_id = ? AND heartbeat_ms < ${NOW_MS} - ?`, [
        nodeId,
        this.deadAfterMs,
      ]);
    });
  }

  /** Where the conference's media is, alive or not; undefined when it was never placed. */
  async placement(appId: string, conferenceId: string): Promise<Placement | undefined> {
    const row = await this.store.get<PlacementRow>(
      `SELECT p.node_id AS node_id, n.rpc_url AS rpc_url, n.heartbeat_ms >= ${NOW_MS} - ? AS alive
       FROM media_placements p LEFT JOIN media_nodes n ON n.node_id = p.node_id
       WHERE p.app_id = ? AND p.conference_id = ?`,
      [this.deadAfterMs, appId, conferenceId],
    );
    if (row === undefined) return undefined;
    return { nodeId: row.node_id, rpcUrl: row.rpc_url ?? "", alive: row.alive === true };
  }

  /**
   * The live node the conference's media is on, placing it first when it is on none (never
   * placed, or its node died). Nodes placing the same conference at once agree: the first
   * write wins and the others read it. FAILED_PRECONDITION when no live node runs media.
   */
  async place(appId: string, conferenceId: string): Promise<MediaNode> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const current = await this.placement(appId, conferenceId);
      if (current?.alive) return current;
      const chosen = await this.leastLoaded();
      if (chosen === undefined) {
        throw failedPrecondition("media is not available: no live node of the cluster runs an SFU");
      }
      const won =
        current === undefined
          ? await this.store.run(
              `INSERT INTO media_placements (app_id, conference_id, node_id, placed_ms) VALUES (?, ?, ?, ${NOW_MS})
               ON CONFLICT (app_id, conference_id) DO NOTHING`,
              [appId, conferenceId, chosen.nodeId],
            )
          : await this.store.run(
              `UPDATE media_placements SET node_id = ?, placed_ms = ${NOW_MS}
               WHERE app_id = ? AND conference_id = ? AND node_id = ?`,
              [chosen.nodeId, appId, conferenceId, current.nodeId],
            );
      if (won > 0) return chosen;
    }
    throw failedPrecondition("media placement kept changing under this request: retry");
  }

  /** Forgets where an ended conference's media was (the owner calls it). */
  async release(appId: string, conferenceId: string): Promise<void> {
    await this.store.run("DELETE FROM media_placements WHERE app_id = ? AND conference_id = ? AND node_id = ?", [
      appId,
      conferenceId,
      this.nodeId,
    ]);
  }

  /**
   * The live node with SFU workers that carries least per worker, then holds fewest
   * conferences, then this one (the publisher's request needs no forwarding).
   */
  private async leastLoaded(): Promise<MediaNode | undefined> {
    const row = await this.store.get<{ node_id: string; rpc_url: string }>(
      `SELECT n.node_id AS node_id, n.rpc_url AS rpc_url FROM media_nodes n
       WHERE n.workers > 0 AND n.heartbeat_ms >= ${NOW_MS} - ?
       ORDER BY (n.transports + n.consumers)::float8 / n.workers,
         (SELECT count(*) FROM media_placements p WHERE p.node_id = n.node_id), n.node_id = ? DESC, random()
       LIMIT 1`,
      [this.deadAfterMs, this.nodeId],
    );
    return row && { nodeId: row.node_id, rpcUrl: row.rpc_url };
  }
}

/**
 * User endpoints (a user's devices) and their keep-alive. An endpoint that misses its
 * keep-alive window turns SICK (and so do its participations); after a second window it
 * leaves every conference (with events) and is removed. Only this module touches the
 * user_endpoints table.
 */
import { randomUUID } from "node:crypto";
import type { Conferences } from "../conferences/conferences.js";
import { validateId } from "../conferences/conferences.js";
import { alreadyExists, invalidArgument, notFound, permissionDenied, resourceExhausted } from "../errors.js";
import type { Logger } from "../observability/log.js";
import type { Queryable, Store } from "../storage/store.js";

export type EndpointState = "HEALTHY" | "SICK";

export interface EndpointRow {
  endpointId: string;
  appId: string;
  userId: string;
  keepAliveSeconds: number;
  state: EndpointState;
  lastSeenMs: number;
}

interface RawEndpoint {
  endpoint_id: string;
  app_id: string;
  user_id: string;
  keep_alive_seconds: number;
  state: EndpointState;
  last_seen_ms: number;
}

function fromRaw(r: RawEndpoint): EndpointRow {
  return {
    endpointId: r.endpoint_id,
    appId: r.app_id,
    userId: r.user_id,
    keepAliveSeconds: r.keep_alive_seconds,
    state: r.state,
    lastSeenMs: r.last_seen_ms,
  };
}

const COLUMNS = "endpoint_id, app_id, user_id, keep_alive_seconds, state, last_seen_ms";
export const DEFAULT_KEEP_ALIVE_SECONDS = 30;
const MIN_KEEP_ALIVE = 1;
const MAX_KEEP_ALIVE = 86400;
/** Endpoints one USER login may hold registered at once (its devices and retries). */
export const MAX_ENDPOINTS_PER_USER_LOGIN = 16;

const GET = `SELECT ${COLUMNS} FROM user_endpoints WHERE app_id = ? AND endpoint_id = ?`;
/** Refreshes the endpoint only when it is the same user's: no change means another user's. */
const UPSERT = `INSERT INTO user_endpoints (endpoint_id, app_id, user_id, keep_alive_seconds, state, last_seen_ms, create_time_ms)
  VALUES (?, ?, ?, ?, 'HEALTHY', ?, ?)
  ON CONFLICT (app_id, endpoint_id) DO UPDATE SET keep_alive_seconds = excluded.keep_alive_seconds,
    state = 'HEALTHY', last_seen_ms = excluded.last_seen_ms
  WHERE user_endpoints.user_id = excluded.user_id`;
const TOUCH = "UPDATE user_endpoints SET last_seen_ms = ?, state = 'HEALTHY' WHERE app_id = ? AND endpoint_id = ?";
const REMOVE = "DELETE FROM user_endpoints WHERE app_id = ? AND endpoint_id = ?";
const COUNT_OF_USER = "SELECT count(*) AS n FROM user_endpoints WHERE app_id = ? AND user_id = ?";
const BY_APP = `SELECT ${COLUMNS} FROM user_endpoints WHERE app_id = ? ORDER BY create_time_ms, endpoint_id`;
const BY_USER = `SELECT ${COLUMNS} FROM user_endpoints WHERE app_id = ? AND user_id = ? ORDER BY create_time_ms, endpoint_id`;
const TURNED_SICK = `UPDATE user_endpoints SET state = 'SICK' WHERE state = 'HEALTHY' AND last_seen_ms + keep_alive_seconds * 1000 < ?
  RETURNING app_id, endpoint_id`;
const EXPIRED = `SELECT ${COLUMNS} FROM user_endpoints WHERE last_seen_ms + keep_alive_seconds * 2000 < ?`;
/** Removes the endpoint only if it is still expired (a keep-alive or re-register may have come meanwhile). */
const REMOVE_EXPIRED = `DELETE FROM user_endpoints WHERE app_id = ? AND endpoint_id = ?
  AND last_seen_ms + keep_alive_seconds * 2000 < ?`;

async function getEndpoint(q: Queryable, appId: string, endpointId: string): Promise<EndpointRow | undefined> {
  const r = await q.get<RawEndpoint>(GET, [appId, endpointId]);
  return r && fromRaw(r);
}

async function countOfUser(q: Queryable, appId: string, userId: string): Promise<number> {
  return (await q.get<{ n: number }>(COUNT_OF_USER, [appId, userId]))?.n ?? 0;
}

export class Endpoints {
  /** Called after an endpoint is removed (unregistered or expired); one-to-one calls end. */
  onRemoved: (appId: string, endpointId: string, userId: string) => void | Promise<void> = () => {};

  constructor(
    private readonly store: Store,
    private readonly conferences: Conferences,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** The app's endpoint (endpoint ids are unique per app). */
  async get(appId: string, endpointId: string): Promise<EndpointRow | undefined> {
    return getEndpoint(this.store, appId, endpointId);
  }

  /** The endpoint of this app and user, or NOT_FOUND / PERMISSION_DENIED. */
  async own(appId: string, userId: string | undefined, endpointId: string): Promise<EndpointRow> {
    const e = await this.get(appId, endpointId);
    if (e === undefined) throw notFound(`endpoint ${JSON.stringify(endpointId)} is not registered`);
    if (userId !== undefined && e.userId !== userId) throw permissionDenied("the endpoint belongs to another user");
    return e;
  }

  /**
   * Registers or refreshes an endpoint; its id is the client's or a new UUID. With
   * `maxPerUser` (USER callers), a user holds at most that many registered endpoints.
   */
  async register(
    appId: string,
    userId: string,
    endpointId: string,
    keepAliveSeconds: number,
    maxPerUser?: number,
  ): Promise<string> {
    const id = endpointId === "" ? randomUUID() : validateId("userEndpointId", endpointId);
    validateId("userId", userId);
    const keepAlive = keepAliveSeconds === 0 ? DEFAULT_KEEP_ALIVE_SECONDS : keepAliveSeconds;
    if (!Number.isInteger(keepAlive) || keepAlive < MIN_KEEP_ALIVE || keepAlive > MAX_KEEP_ALIVE) {
      throw invalidArgument(`keepAliveSeconds: must be between ${MIN_KEEP_ALIVE} and ${MAX_KEEP_ALIVE}`);
    }
    const anotherUsers = () => alreadyExists(`endpoint ${JSON.stringify(id)} belongs to another user`);
    const existing = await this.store.transaction(async (tx) => {
      const existing = await getEndpoint(tx, appId, id);
      if (existing !== undefined && existing.userId !== userId) throw anotherUsers();
      if (existing === undefined && maxPerUser !== undefined) {
        if ((await countOfUser(tx, appId, userId)) >= maxPerUser) {
          throw resourceExhausted(`a user holds at most ${maxPerUser} endpoints; unregister one first`);
        }
      }
      const now = this.now();
      // Another node may have registered the id for another user since the read.
      if ((await tx.run(UPSERT, [id, appId, userId, keepAlive, now, now])) !== 1) throw anotherUsers();
      return existing;
    });
    if (existing?.state === "SICK") await this.conferences.setEndpointState(appId, id, "HEALTHY");
    return id;
  }

  /** Registers an endpoint a client joined with before registering it (legacy clients do). */
  async ensure(
    appId: string,
    userId: string,
    endpointId: string,
    keepAliveSeconds: number,
    maxPerUser?: number,
  ): Promise<void> {
    const e = await this.get(appId, endpointId);
    if (e === undefined) await this.register(appId, userId, endpointId, keepAliveSeconds, maxPerUser);
    else if (e.userId !== userId) throw permissionDenied("the endpoint belongs to another user");
  }

  async keepAlive(appId: string, userId: string | undefined, endpointId: string): Promise<void> {
    const e = await this.own(appId, userId, endpointId);
    if ((await this.store.run(TOUCH, [this.now(), appId, endpointId])) === 0) {
      throw notFound(`endpoint ${JSON.stringify(endpointId)} is not registered`);
    }
    if (e.state === "SICK") await this.conferences.setEndpointState(appId, endpointId, "HEALTHY");
  }

  async unregister(appId: string, userId: string | undefined, endpointId: string, reason: string): Promise<void> {
    const e = await this.own(appId, userId, endpointId);
    await this.conferences.leaveAll(appId, endpointId, e.userId, reason || "unregistered");
    await this.store.run(REMOVE, [appId, endpointId]);
    await this.removed(appId, endpointId, e.userId);
  }

  private async removed(appId: string, endpointId: string, userId: string): Promise<void> {
    try {
      await this.onRemoved(appId, endpointId, userId);
    } catch (err) {
      this.log.warn({ err, endpointId }, "endpoint removal hook failed");
    }
  }

  /** Whether the app's user has any endpoint registered. */
  async hasAny(appId: string, userId: string): Promise<boolean> {
    return (await countOfUser(this.store, appId, userId)) > 0;
  }

  async list(appId: string, userId: string | undefined): Promise<EndpointRow[]> {
    const rows =
      userId === undefined
        ? await this.store.all<RawEndpoint>(BY_APP, [appId])
        : await this.store.all<RawEndpoint>(BY_USER, [appId, userId]);
    return rows.map(fromRaw);
  }

  /**
   * One sweep: late endpoints turn SICK; twice-late ones leave their conferences and go. Runs
   * under the "endpoints.keep-alive" lease (one node of a cluster at a time); does nothing
   * when another node holds it. An endpoint whose leaving fails stays for the next sweep.
   */
  async sweep(): Promise<{ sick: number; removed: number }> {
    let sick: { app_id: string; endpoint_id: string }[] = [];
    const removed: string[] = [];
    await this.store.withLease("endpoints.keep-alive", async () => {
      const now = this.now();
      sick = await this.store.all<{ app_id: string; endpoint_id: string }>(TURNED_SICK, [now]);
      for (const r of sick) {
        try {
          await this.conferences.setEndpointState(r.app_id, r.endpoint_id, "SICK");
        } catch (err) {
          this.log.warn({ err, endpointId: r.endpoint_id }, "could not mark a late endpoint's participations SICK");
        }
      }
      const expired = (await this.store.all<RawEndpoint>(EXPIRED, [now])).map(fromRaw);
      for (const e of expired) {
        try {
          const still = await this.get(e.appId, e.endpointId);
          if (still === undefined || still.lastSeenMs + still.keepAliveSeconds * 2000 >= now) continue;
          await this.conferences.leaveAll(e.appId, e.endpointId, e.userId, "keep-alive expired");
          if ((await this.store.run(REMOVE_EXPIRED, [e.appId, e.endpointId, now])) === 0) continue;
        } catch (err) {
          this.log.warn({ err, endpointId: e.endpointId }, "could not remove an expired endpoint");
          continue;
        }
        removed.push(e.endpointId);
        await this.removed(e.appId, e.endpointId, e.userId);
      }
    });
    if (sick.length + removed.length > 0) {
      this.log.info({ sick: sick.map((r) => r.endpoint_id), removed }, "endpoint keep-alive sweep");
    }
    return { sick: sick.length, removed: removed.length };
  }
}

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
import type { Db } from "../storage/database.js";

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

export class Endpoints {
  private readonly s;
  /** Called after an endpoint is removed (unregistered or expired); one-to-one calls end. */
  onRemoved: (appId: string, endpointId: string, userId: string) => void = () => {};

  constructor(
    db: Db,
    private readonly conferences: Conferences,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.s = {
      get: db.prepare(`SELECT ${COLUMNS} FROM user_endpoints WHERE app_id = ? AND endpoint_id = ?`),
      upsert: db.prepare(
        `INSERT INTO user_endpoints (endpoint_id, app_id, user_id, keep_alive_seconds, state, last_seen_ms, create_time_ms)
         VALUES (@endpointId, @appId, @userId, @keepAlive, 'HEALTHY', @now, @now)
         ON CONFLICT (app_id, endpoint_id) DO UPDATE SET keep_alive_seconds = excluded.keep_alive_seconds,
           state = 'HEALTHY', last_seen_ms = excluded.last_seen_ms`,
      ),
      touch: db.prepare(
        "UPDATE user_endpoints SET last_seen_ms = ?, state = 'HEALTHY' WHERE app_id = ? AND endpoint_id = ?",
      ),
      remove: db.prepare("DELETE FROM user_endpoints WHERE app_id = ? AND endpoint_id = ?"),
      countOfUser: db.prepare("SELECT count(*) AS n FROM user_endpoints WHERE app_id = ? AND user_id = ?"),
      byApp: db.prepare(`SELECT ${COLUMNS} FROM user_endpoints WHERE app_id = ? ORDER BY create_time_ms, endpoint_id`),
      byUser: db.prepare(
        `SELECT ${COLUMNS} FROM user_endpoints WHERE app_id = ? AND user_id = ? ORDER BY create_time_ms, endpoint_id`,
      ),
      turnedSick: db.prepare(
        `UPDATE user_endpoints SET state = 'SICK' WHERE state = 'HEALTHY' AND last_seen_ms + keep_alive_seconds * 1000 < ?
         RETURNING app_id, endpoint_id`,
      ),
      expired: db.prepare(`SELECT ${COLUMNS} FROM user_endpoints WHERE last_seen_ms + keep_alive_seconds * 2000 < ?`),
    };
  }

  /** The app's endpoint (endpoint ids are unique per app). */
  get(appId: string, endpointId: string): EndpointRow | undefined {
    const r = this.s.get.get(appId, endpointId) as RawEndpoint | undefined;
    return r && fromRaw(r);
  }

  /** The endpoint of this app and user, or NOT_FOUND / PERMISSION_DENIED. */
  own(appId: string, userId: string | undefined, endpointId: string): EndpointRow {
    const e = this.get(appId, endpointId);
    if (e === undefined) throw notFound(`endpoint ${JSON.stringify(endpointId)} is not registered`);
    if (userId !== undefined && e.userId !== userId) throw permissionDenied("the endpoint belongs to another user");
    return e;
  }

  /**
   * Registers or refreshes an endpoint; its id is the client's or a new UUID. With
   * `maxPerUser` (USER callers), a user holds at most that many registered endpoints.
   */
  register(appId: string, userId: string, endpointId: string, keepAliveSeconds: number, maxPerUser?: number): string {
    const id = endpointId === "" ? randomUUID() : validateId("userEndpointId", endpointId);
    validateId("userId", userId);
    const keepAlive = keepAliveSeconds === 0 ? DEFAULT_KEEP_ALIVE_SECONDS : keepAliveSeconds;
    if (!Number.isInteger(keepAlive) || keepAlive < MIN_KEEP_ALIVE || keepAlive > MAX_KEEP_ALIVE) {
      throw invalidArgument(`keepAliveSeconds: must be between ${MIN_KEEP_ALIVE} and ${MAX_KEEP_ALIVE}`);
    }
    const existing = this.get(appId, id);
    if (existing !== undefined && existing.userId !== userId) {
      throw alreadyExists(`endpoint ${JSON.stringify(id)} belongs to another user`);
    }
    if (existing === undefined && maxPerUser !== undefined) {
      const held = (this.s.countOfUser.get(appId, userId) as { n: number }).n;
      if (held >= maxPerUser) {
        throw resourceExhausted(`a user holds at most ${maxPerUser} endpoints; unregister one first`);
      }
    }
    this.s.upsert.run({ endpointId: id, appId, userId, keepAlive, now: this.now() });
    if (existing?.state === "SICK") this.conferences.setEndpointState(appId, id, "HEALTHY");
    return id;
  }

  /** Registers an endpoint a client joined with before registering it (legacy clients do). */
  ensure(appId: string, userId: string, endpointId: string, keepAliveSeconds: number, maxPerUser?: number): void {
    const e = this.get(appId, endpointId);
    if (e === undefined) this.register(appId, userId, endpointId, keepAliveSeconds, maxPerUser);
    else if (e.userId !== userId) throw permissionDenied("the endpoint belongs to another user");
  }

  keepAlive(appId: string, userId: string | undefined, endpointId: string): void {
    const e = this.own(appId, userId, endpointId);
    this.s.touch.run(this.now(), appId, endpointId);
    if (e.state === "SICK") this.conferences.setEndpointState(appId, endpointId, "HEALTHY");
  }

  unregister(appId: string, userId: string | undefined, endpointId: string, reason: string): void {
    const e = this.own(appId, userId, endpointId);
    this.conferences.leaveAll(appId, endpointId, e.userId, reason || "unregistered");
    this.s.remove.run(appId, endpointId);
    this.removed(appId, endpointId, e.userId);
  }

  private removed(appId: string, endpointId: string, userId: string): void {
    try {
      this.onRemoved(appId, endpointId, userId);
    } catch (err) {
      this.log.warn({ err, endpointId }, "endpoint removal hook failed");
    }
  }

  /** Whether the app's user has any endpoint registered. */
  hasAny(appId: string, userId: string): boolean {
    return (this.s.countOfUser.get(appId, userId) as { n: number }).n > 0;
  }

  list(appId: string, userId: string | undefined): EndpointRow[] {
    const rows = userId === undefined ? this.s.byApp.all(appId) : this.s.byUser.all(appId, userId);
    return (rows as RawEndpoint[]).map(fromRaw);
  }

  /** One sweep: late endpoints turn SICK; twice-late ones leave their conferences and go. */
  sweep(): { sick: number; removed: number } {
    const now = this.now();
    const sick = this.s.turnedSick.all(now) as { app_id: string; endpoint_id: string }[];
    for (const r of sick) this.conferences.setEndpointState(r.app_id, r.endpoint_id, "SICK");
    const expired = (this.s.expired.all(now) as RawEndpoint[]).map(fromRaw);
    for (const e of expired) {
      this.conferences.leaveAll(e.appId, e.endpointId, e.userId, "keep-alive expired");
      this.s.remove.run(e.appId, e.endpointId);
      this.removed(e.appId, e.endpointId, e.userId);
    }
    if (sick.length + expired.length > 0) {
      this.log.info(
        { sick: sick.map((r) => r.endpoint_id), removed: expired.map((e) => e.endpointId) },
        "endpoint keep-alive sweep",
      );
    }
    return { sick: sick.length, removed: expired.length };
  }
}

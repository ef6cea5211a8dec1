/**
 * The calls table: one row per one-to-one call, keyed by app and the client's call id. Every
 * state change is a conditional UPDATE (`WHERE state IN (...)`) that bumps the call's version,
 * so two commands racing for one call cannot both win, in one process or many. A change that
 * depends on what the call held before reads it with `get(…, forUpdate)` in a transaction.
 */
import { placeholders, type Queryable } from "../storage/store.js";

export type CallState = "CREATED" | "RINGING" | "ANSWERED" | "ENDED" | "REJECTED" | "CANCELLED";
export const UNANSWERED: readonly CallState[] = ["CREATED", "RINGING"];
export const TERMINAL: readonly CallState[] = ["ENDED", "REJECTED", "CANCELLED"];

/** A candidate as the conference API carries it. */
export interface CandidateJson {
  readonly candidate: string;
  readonly sdpMLineIndex: number;
  readonly sdpMid: string;
}

export interface CallRow {
  readonly appId: string;
  readonly callId: string;
  readonly callerUser: string;
  readonly callerEndpoint: string;
  readonly targetUser: string;
  readonly calleeEndpoint: string | undefined;
  readonly state: CallState;
  readonly version: number;
  readonly sipHeaders: Record<string, string>;
  readonly heldCandidates: CandidateJson[];
  readonly ringDeadlineMs: number;
}

interface RawCall {
  app_id: string;
  call_id: string;
  caller_user: string;
  caller_endpoint: string;
  target_user: string;
  callee_endpoint: string | null;
  state: CallState;
  version: number;
  sip_headers: string;
  held_candidates: string;
  ring_deadline_ms: number;
}

const COLUMNS =
  "app_id, call_id, caller_user, caller_endpoint, target_user, callee_endpoint, state, version, sip_headers, held_candidates, ring_deadline_ms";

function fromRaw(r: RawCall): CallRow {
  return {
    appId: r.app_id,
    callId: r.call_id,
    callerUser: r.caller_user,
    callerEndpoint: r.caller_endpoint,
    targetUser: r.target_user,
    calleeEndpoint: r.callee_endpoint ?? undefined,
    state: r.state,
    version: r.version,
    sipHeaders: JSON.parse(r.sip_headers) as Record<string, string>,
    heldCandidates: JSON.parse(r.held_candidates) as CandidateJson[],
    ringDeadlineMs: r.ring_deadline_ms,
  };
}

function inList(states: readonly CallState[]): string {
  return states.map((s) => `'${s}'`).join(", ");
}

export interface NewCall {
  readonly appId: string;
  readonly callId: string;
  readonly callerUser: string;
  readonly callerEndpoint: string;
  readonly targetUser: string;
  readonly sipHeaders: Record<string, string>;
  readonly ringDeadlineMs: number;
  readonly now: number;
}

const UNANSWERED_IN = `(${inList(UNANSWERED)})`;
const INSERT = `INSERT INTO calls (app_id, call_id, caller_user, caller_endpoint, target_user, callee_endpoint, state, version,
    sip_headers, held_candidates, ring_deadline_ms, create_time_ms, update_time_ms)
  VALUES (?, ?, ?, ?, ?, NULL, 'CREATED', 1, ?, '[]', ?, ?, ?)
  ON CONFLICT (app_id, call_id) DO NOTHING`;
const GET = `SELECT ${COLUMNS} FROM calls WHERE app_id = ? AND call_id = ?`;
/** The transition from `n` states (they are bound as the last `n` parameters). */
function transitionSql(n: number): string {
  return `UPDATE calls SET state = ?, version = version + ?, update_time_ms = ?,
    callee_endpoint = coalesce(?, callee_endpoint),
    held_candidates = CASE WHEN ? = 1 THEN '[]' ELSE held_candidates END
  WHERE app_id = ? AND call_id = ? AND state IN ${placeholders(n)}
  RETURNING ${COLUMNS}`;
}
const BUMP = `UPDATE calls SET version = version + 1, update_time_ms = ? WHERE app_id = ? AND call_id = ? AND state = ?
  RETURNING version`;
const HOLD = `UPDATE calls SET held_candidates = ?, update_time_ms = ? WHERE app_id = ? AND call_id = ?
    AND state IN ${UNANSWERED_IN}`;
const OUTGOING_UNANSWERED = `SELECT count(*) AS n FROM calls WHERE app_id = ? AND caller_endpoint = ? AND state IN ${UNANSWERED_IN}`;
const LIVE_OF_ENDPOINT = `SELECT ${COLUMNS} FROM calls WHERE app_id = ? AND state IN (${inList(UNANSWERED)}, 'ANSWERED')
    AND (caller_endpoint = ? OR callee_endpoint = ?)`;
const RING_EXPIRED = `SELECT ${COLUMNS} FROM calls WHERE state IN ${UNANSWERED_IN} AND ring_deadline_ms <= ? LIMIT 1000`;
const PURGE = `DELETE FROM calls WHERE state IN (${inList(TERMINAL)}) AND update_time_ms < ?`;

export class CallRepository {
  constructor(private readonly q: Queryable) {}

  /** The same repository over `q` (a transaction). */
  in(q: Queryable): CallRepository {
    return new CallRepository(q);
  }

  /** Inserts a new call; false when the app already has a call with that id. */
  async insert(c: NewCall): Promise<boolean> {
    const changed = await this.q.run(INSERT, [
      c.appId,
      c.callId,
      c.callerUser,
      c.callerEndpoint,
      c.targetUser,
      JSON.stringify(c.sipHeaders),
      c.ringDeadlineMs,
      c.now,
      c.now,
    ]);
    return changed === 1;
  }

  /** The call; with the store's `forUpdate`, locked until the transaction ends. */
  async get(appId: string, callId: string, forUpdate = ""): Promise<CallRow | undefined> {
    const r = await this.q.get<RawCall>(GET + forUpdate, [appId, callId]);
    return r && fromRaw(r);
  }

  /**
   * Moves a call from one of `from` to `to`, counting `events` versions (one per event the
   * change emits); undefined when the call was not in one of `from`.
   */
  async transition(
    appId: string,
    callId: string,
    from: readonly CallState[],
    to: CallState,
    events: number,
    now: number,
    options: { callee?: string; clearHeld?: boolean } = {},
  ): Promise<CallRow | undefined> {
    const r = await this.q.get<RawCall>(transitionSql(from.length), [
      to,
      events,
      now,
      options.callee ?? null,
      options.clearHeld === true ? 1 : 0,
      appId,
      callId,
      ...from,
    ]);
    return r && fromRaw(r);
  }

  /** The next version of a call still in `state` (an event that changes no state), or undefined. */
  async bump(appId: string, callId: string, state: CallState, now: number): Promise<number | undefined> {
    return (await this.q.get<{ version: number }>(BUMP, [now, appId, callId, state]))?.version;
  }

  /** Replaces the candidates held for an unanswered call; false once it is answered or over. */
  async hold(appId: string, callId: string, held: readonly CandidateJson[], now: number): Promise<boolean> {
    return (await this.q.run(HOLD, [JSON.stringify(held), now, appId, callId])) === 1;
  }

  async outgoingUnanswered(appId: string, endpointId: string): Promise<number> {
    return (await this.q.get<{ n: number }>(OUTGOING_UNANSWERED, [appId, endpointId]))?.n ?? 0;
  }

  /** Calls not over in which the endpoint is the caller or the answering callee. */
  async liveOfEndpoint(appId: string, endpointId: string): Promise<CallRow[]> {
    return (await this.q.all<RawCall>(LIVE_OF_ENDPOINT, [appId, endpointId, endpointId])).map(fromRaw);
  }

  /** Unanswered calls whose ring time is up (a page of them). */
  async ringExpired(now: number): Promise<CallRow[]> {
    return (await this.q.all<RawCall>(RING_EXPIRED, [now])).map(fromRaw);
  }

  /** Forgets calls that ended before `beforeMs`. */
  async purge(beforeMs: number): Promise<number> {
    return this.q.run(PURGE, [beforeMs]);
  }
}

/**
 * The calls table: one row per one-to-one call, keyed by app and the client's call id. Every
 * state change is a conditional UPDATE (`WHERE state IN (...)`) that bumps the call's version,
 * so two commands racing for one call cannot both win, in one process or many.
 */
import type { Db } from "../storage/database.js";

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

export class CallRepository {
  private readonly s;

  constructor(private readonly db: Db) {
    const unanswered = inList(UNANSWERED);
    this.s = {
      insert: db.prepare(
        `INSERT INTO calls (app_id, call_id, caller_user, caller_endpoint, target_user, callee_endpoint, state, version,
           sip_headers, held_candidates, ring_deadline_ms, create_time_ms, update_time_ms)
         VALUES (@appId, @callId, @callerUser, @callerEndpoint, @targetUser, NULL, 'CREATED', 1, @sipHeaders, '[]',
           @ringDeadlineMs, @now, @now)
         ON CONFLICT (app_id, call_id) DO NOTHING`,
      ),
      get: db.prepare(`SELECT ${COLUMNS} FROM calls WHERE app_id = ? AND call_id = ?`),
      transition: db.prepare(
        `UPDATE calls SET state = @to, version = version + @events, update_time_ms = @now,
           callee_endpoint = coalesce(@callee, callee_endpoint),
           held_candidates = CASE WHEN @clearHeld = 1 THEN '[]' ELSE held_candidates END
         WHERE app_id = @appId AND call_id = @callId AND state IN (SELECT value FROM json_each(@from))
         RETURNING ${COLUMNS}`,
      ),
      bump: db.prepare(
        `UPDATE calls SET version = version + 1, update_time_ms = ? WHERE app_id = ? AND call_id = ? AND state = ?
         RETURNING version`,
      ),
      hold: db.prepare(
        `UPDATE calls SET held_candidates = ?, update_time_ms = ? WHERE app_id = ? AND call_id = ?
           AND state IN (${unanswered})`,
      ),
      outgoingUnanswered: db.prepare(
        `SELECT count(*) AS n FROM calls WHERE app_id = ? AND caller_endpoint = ? AND state IN (${unanswered})`,
      ),
      liveOfEndpoint: db.prepare(
        `SELECT ${COLUMNS} FROM calls WHERE app_id = @appId AND state IN (${unanswered}, 'ANSWERED')
           AND (caller_endpoint = @endpointId OR callee_endpoint = @endpointId)`,
      ),
      ringExpired: db.prepare(
        `SELECT ${COLUMNS} FROM calls WHERE state IN (${unanswered}) AND ring_deadline_ms <= ? LIMIT 1000`,
      ),
      purge: db.prepare(`DELETE FROM calls WHERE state IN (${inList(TERMINAL)}) AND update_time_ms < ?`),
    };
  }

  /** Inserts a new call; false when the app already has a call with that id. */
  insert(c: NewCall): boolean {
    return this.s.insert.run({ ...c, sipHeaders: JSON.stringify(c.sipHeaders) }).changes === 1;
  }

  get(appId: string, callId: string): CallRow | undefined {
    const r = this.s.get.get(appId, callId) as RawCall | undefined;
    return r && fromRaw(r);
  }

  /**
   * Moves a call from one of `from` to `to`, counting `events` versions (one per event the
   * change emits); undefined when the call was not in one of `from`.
   */
  transition(
    appId: string,
    callId: string,
    from: readonly CallState[],
    to: CallState,
    events: number,
    now: number,
    options: { callee?: string; clearHeld?: boolean } = {},
  ): CallRow | undefined {
    const r = this.s.transition.get({
      appId,
      callId,
      from: JSON.stringify(from),
      to,
      events,
      now,
      callee: options.callee ?? null,
      clearHeld: options.clearHeld === true ? 1 : 0,
    }) as RawCall | undefined;
    return r && fromRaw(r);
  }

  /** The next version of a call still in `state` (an event that changes no state), or undefined. */
  bump(appId: string, callId: string, state: CallState, now: number): number | undefined {
    return (this.s.bump.get(now, appId, callId, state) as { version: number } | undefined)?.version;
  }

  /** Replaces the candidates held for an unanswered call; false once it is answered or over. */
  hold(appId: string, callId: string, held: readonly CandidateJson[], now: number): boolean {
    return this.s.hold.run(JSON.stringify(held), now, appId, callId).changes === 1;
  }

  outgoingUnanswered(appId: string, endpointId: string): number {
    return (this.s.outgoingUnanswered.get(appId, endpointId) as { n: number }).n;
  }

  /** Calls not over in which the endpoint is the caller or the answering callee. */
  liveOfEndpoint(appId: string, endpointId: string): CallRow[] {
    return (this.s.liveOfEndpoint.all({ appId, endpointId }) as RawCall[]).map(fromRaw);
  }

  /** Unanswered calls whose ring time is up (a page of them). */
  ringExpired(now: number): CallRow[] {
    return (this.s.ringExpired.all(now) as RawCall[]).map(fromRaw);
  }

  /** Forgets calls that ended before `beforeMs`. */
  purge(beforeMs: number): number {
    return this.s.purge.run(beforeMs).changes;
  }

  inTransaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }
}

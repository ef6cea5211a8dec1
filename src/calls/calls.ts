/**
 * One-to-one calls between two users' endpoints, as the vendor's iOS SDK drives them: the
 * server relays the SDP offer and answer and the ICE candidates, and tells each party what
 * the other did. Media flows peer to peer.
 *
 * States: CREATED → RINGING → ANSWERED → ENDED, or REJECTED / CANCELLED before an answer.
 * Every event goes to the counterpart only (the SDK rings for any CallCreatedEvent it sees,
 * its own included), never with an empty candidate list (the SDK crashes on one), and the
 * caller's candidates sent before the answer are held and delivered right after
 * CallAnsweredEvent (the callee's SDK drops earlier ones). Events carry the call's version
 * (`aggregateVersion`), one per event.
 */
import { randomUUID } from "node:crypto";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type CallEvent, CallEventSchema } from "../../gen/rtcplane/conference/v1/events_pb.js";
import { validateId } from "../conferences/conferences.js";
import type { EventBus, Recipient } from "../conferences/event-bus.js";
import { alreadyExists, failedPrecondition, invalidArgument, notFound, resourceExhausted } from "../errors.js";
import type { Logger } from "../observability/log.js";
import type { Store, Tx } from "../storage/store.js";
import { hasControlCharacters, iceCandidatesProblem } from "../validation.js";
import { CallRepository, type CallRow, type CandidateJson, UNANSWERED } from "./call-repository.js";

type CallPayloadInit = NonNullable<MessageInitShape<typeof CallEventSchema>["payload"]>;

/** Who acts: a registered endpoint and its owner. */
export interface CallActor {
  readonly appId: string;
  readonly userId: string;
  readonly endpointId: string;
}

/** What calls need to know of registered endpoints (the endpoints module answers). */
export interface EndpointDirectory {
  /** The user's registered endpoints. */
  ofUser(appId: string, userId: string): Promise<Recipient[]>;
}

export interface CallSettings {
  /** How long an unanswered call rings before it is cancelled. */
  readonly ringTimeoutMs: number;
  /** How long a finished call is remembered (commands on it answer 412, not 404). */
  readonly retentionMs: number;
  /** Event streams (shared with the conference API's waiters) per tenant and in all. */
  readonly maxWaitersPerTenant: number;
  readonly maxWaiters: number;
}

const MAX_SDP = 64 * 1024;
const MAX_REASON = 1024;
const MAX_SIP_HEADERS = 32;
const SIP_HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$/;
/** Unanswered calls one endpoint may have going out at once. */
export const MAX_OUTGOING_UNANSWERED = 4;
/** Events held for one slow event-stream reader before its stream is ended. */
const MAX_QUEUED_PER_STREAM = 1000;
/** Caller candidates held until the answer. */
const MAX_HELD_CANDIDATES = 200;

function validateSdp(field: string, sdp: string): string {
  if (!sdp.startsWith("v=0")) throw invalidArgument(`${field}: must be an SDP description (v=0 ...)`);
  if (sdp.length > MAX_SDP) throw invalidArgument(`${field}: must be at most ${MAX_SDP} characters`);
  return sdp;
}

function validateReason(reason: string): string {
  if (reason.length > MAX_REASON) throw invalidArgument(`reason: must be at most ${MAX_REASON} characters`);
  return reason;
}

function validateSipHeaders(headers: Record<string, string>): Record<string, string> {
  const entries = Object.entries(headers);
  if (entries.length > MAX_SIP_HEADERS) throw invalidArgument(`sipHeaders: at most ${MAX_SIP_HEADERS}`);
  for (const [name, value] of entries) {
    if (!SIP_HEADER_NAME.test(name)) throw invalidArgument(`sipHeaders: ${JSON.stringify(name)} is no header name`);
    if (value.length > 1024 || hasControlCharacters(value)) {
      throw invalidArgument(`sipHeaders.${name}: at most 1024 characters, no control characters`);
    }
  }
  return headers;
}

export class Calls {
  private readonly repo: CallRepository;

  constructor(
    private readonly store: Store,
    private readonly directory: EndpointDirectory,
    private readonly bus: EventBus,
    private readonly settings: CallSettings,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.repo = new CallRepository(store);
  }

  /** Calls `target` from the actor's endpoint; the target's endpoints get CallCreatedEvent. */
  async start(
    actor: CallActor,
    callId: string,
    sdpOffer: string,
    target: string,
    sipHeaders: Record<string, string>,
  ): Promise<void> {
    validateId("callId", callId);
    validateSdp("sdpOffer", sdpOffer);
    validateId("target", target);
    validateSipHeaders(sipHeaders);
    if (target === actor.userId) throw invalidArgument("target: a user cannot call itself");
    const callees = await this.directory.ofUser(actor.appId, target);
    if (callees.length === 0) throw notFound(`user ${JSON.stringify(target)} has no registered endpoint`);
    const now = this.now();
    // The count and the insert in one transaction: exact on SQLite; on PostgreSQL, calls
    // started at the same instant from one endpoint on several nodes may pass it together.
    await this.store.transaction(async (tx) => {
      const repo = this.repo.in(tx);
      if ((await repo.outgoingUnanswered(actor.appId, actor.endpointId)) >= MAX_OUTGOING_UNANSWERED) {
        throw resourceExhausted(`an endpoint rings at most ${MAX_OUTGOING_UNANSWERED} calls at once`);
      }
      const inserted = await repo.insert({
        appId: actor.appId,
        callId,
        callerUser: actor.userId,
        callerEndpoint: actor.endpointId,
        targetUser: target,
        sipHeaders,
        ringDeadlineMs: now + this.settings.ringTimeoutMs,
        now,
      });
      if (!inserted) throw alreadyExists(`call ${JSON.stringify(callId)} already exists`);
      await this.send(
        tx,
        actor.appId,
        callees,
        this.event({ case: "created", value: { sdpOffer, target, sipHeaders } }, callId, 1, actor, now),
      );
    });
    this.log.info({ callId, caller: actor.endpointId, target, endpoints: callees.length }, "call started");
  }

  /** A callee's endpoint rings; the caller hears of it once. */
  async ring(actor: CallActor, callId: string): Promise<void> {
    const call = await this.asCallee(actor, callId);
    const now = this.now();
    await this.store.transaction(async (tx) => {
      const repo = this.repo.in(tx);
      const moved = await repo.transition(actor.appId, callId, ["CREATED"], "RINGING", 1, now);
      if (moved === undefined) {
        const current = await this.current(repo, actor.appId, callId);
        if (current.state === "RINGING") return;
        throw this.wrongState(current, "ring");
      }
      const event = this.event({ case: "ringing", value: {} }, callId, moved.version, actor, now);
      await this.send(tx, actor.appId, [caller(call)], event);
    });
  }

  /**
   * A callee's endpoint answers: the caller gets CallAnsweredEvent then the candidates it sent
   * before the answer; the target's other endpoints stop ringing (CallCancelledEvent).
   */
  async answer(actor: CallActor, callId: string, sdpAnswer: string): Promise<void> {
    validateSdp("sdpAnswer", sdpAnswer);
    // Recipients are looked up first, so that the events go out together once it is answered.
    const others = await this.otherCalleeEndpoints(await this.asCallee(actor, callId), actor.endpointId);
    const now = this.now();
    // The call is locked from the read of its held candidates and version to the answer, and
    // its events go out with the answer.
    await this.store.transaction(async (tx) => {
      const repo = this.repo.in(tx);
      const before = await this.current(repo, actor.appId, callId, this.store.forUpdate);
      const held = before.heldCandidates;
      const after = await repo.transition(actor.appId, callId, UNANSWERED, "ANSWERED", held.length > 0 ? 3 : 2, now, {
        callee: actor.endpointId,
        clearHeld: true,
      });
      if (after === undefined) throw this.wrongState(before, "answer");
      let v = before.version;
      const answered = this.event({ case: "answered", value: { sdpAnswer } }, callId, ++v, actor, now);
      await this.send(tx, actor.appId, [caller(before)], answered);
      const cancelled = { case: "cancelled", value: { reason: "answered on another device" } } as const;
      await this.send(tx, actor.appId, others, this.event(cancelled, callId, ++v, actor, now));
      if (held.length > 0) {
        const from = { appId: actor.appId, userId: before.callerUser, endpointId: before.callerEndpoint };
        const found = this.event(
          { case: "iceCandidatesFound", value: { iceCandidates: held } },
          callId,
          ++v,
          from,
          now,
        );
        await this.send(tx, actor.appId, [{ userId: actor.userId, endpointId: actor.endpointId }], found);
      }
    });
    this.log.info({ callId, callee: actor.endpointId }, "call answered");
  }

  /** A callee's endpoint refuses: the caller gets CallRejectedEvent, the other endpoints stop ringing. */
  async reject(actor: CallActor, callId: string, reason: string): Promise<void> {
    validateReason(reason);
    const call = await this.asCallee(actor, callId);
    await this.finishUnanswered(call, actor, "REJECTED", reason);
  }

  /** The caller withdraws an unanswered call; the target's endpoints get CallCancelledEvent. */
  async cancel(actor: CallActor, callId: string, reason: string): Promise<void> {
    validateReason(reason);
    const call = await this.party(actor, callId);
    if (call.callerEndpoint !== actor.endpointId) throw this.notParty(callId);
    await this.finishUnanswered(call, actor, "CANCELLED", reason);
  }

  /**
   * Either party ends an answered call; the other gets CallEndedEvent. Before an answer, a
   * hangup is what it means to the SDK's users: the caller's a cancel, a callee's a reject
   * (backgrounding the app sends hangup whatever the state).
   */
  async hangup(actor: CallActor, callId: string, reason: string): Promise<void> {
    validateReason(reason);
    const call = await this.party(actor, callId);
    if (UNANSWERED.includes(call.state)) {
      if (call.callerEndpoint === actor.endpointId) await this.finishUnanswered(call, actor, "CANCELLED", reason);
      else await this.finishUnanswered(call, actor, "REJECTED", reason);
      return;
    }
    await this.end(call, actor, reason);
  }

  /**
   * One party's candidates for the other as IceCandidatesFoundEvent. Empty candidates
   * (end-of-candidates markers) are dropped and an empty list goes nowhere; the caller's
   * candidates before the answer are held for it.
   */
  async addCandidates(actor: CallActor, callId: string, list: readonly CandidateJson[]): Promise<void> {
    const problem = iceCandidatesProblem(list);
    if (problem !== undefined) throw invalidArgument(`iceCandidates: ${problem}`);
    const call = await this.party(actor, callId);
    const candidates = list.filter((c) => c.candidate !== "");
    const isCaller = call.callerEndpoint === actor.endpointId;
    if (UNANSWERED.includes(call.state)) {
      if (!isCaller) throw failedPrecondition(`call ${JSON.stringify(callId)} is ${call.state}: answer it first`);
      if (candidates.length === 0) return;
      // Read (locked) and replaced in one transaction, so that batches sent together all stay.
      const held = await this.store.transaction(async (tx) => {
        const repo = this.repo.in(tx);
        const locked = await repo.get(actor.appId, callId, this.store.forUpdate);
        if (locked === undefined || !UNANSWERED.includes(locked.state)) return false;
        const held = [...locked.heldCandidates, ...candidates];
        if (held.length > MAX_HELD_CANDIDATES) {
          throw resourceExhausted(`at most ${MAX_HELD_CANDIDATES} candidates are held until the answer`);
        }
        return repo.hold(actor.appId, callId, held, this.now());
      });
      if (held) return;
      // Answered (or ended) in between: deliver, or refuse, as for an answered call.
      await this.addCandidates(actor, callId, list);
      return;
    }
    if (call.state !== "ANSWERED") throw this.wrongState(call, "add candidates to");
    if (candidates.length === 0) return;
    const now = this.now();
    const to = isCaller ? callee(call) : caller(call);
    await this.store.transaction(async (tx) => {
      const repo = this.repo.in(tx);
      const version = await repo.bump(actor.appId, callId, "ANSWERED", now);
      if (version === undefined) {
        throw this.wrongState(await this.current(repo, actor.appId, callId), "add candidates to");
      }
      const payload = { case: "iceCandidatesFound", value: { iceCandidates: candidates } } as const;
      await this.send(tx, actor.appId, [to], this.event(payload, callId, version, actor, now));
    });
  }

  /**
   * An endpoint is gone (unregistered, or its keep-alive expired): its unanswered outgoing
   * calls are cancelled and its answered calls end, each with the counterpart told.
   */
  async endpointGone(appId: string, endpointId: string, userId: string): Promise<void> {
    const actor = { appId, userId, endpointId };
    for (const call of await this.repo.liveOfEndpoint(appId, endpointId)) {
      try {
        if (UNANSWERED.includes(call.state)) await this.finishUnanswered(call, actor, "CANCELLED", "caller gone");
        else await this.end(call, actor, "peer gone");
      } catch (err) {
        this.log.warn({ err, callId: call.callId, endpointId }, "could not end the call of a gone endpoint");
      }
    }
  }

  /**
   * One sweep: unanswered calls past their ring time are cancelled (the target's endpoints
   * get CallCancelledEvent, the caller CallEndedEvent), and finished calls are forgotten after
   * their retention. Runs under the "calls.sweep" lease (one node of a cluster at a time);
   * does nothing when another node holds it.
   */
  async sweep(): Promise<{ timedOut: number; purged: number }> {
    let timedOut = 0;
    let purged = 0;
    await this.store.withLease("calls.sweep", async () => {
      const now = this.now();
      for (const call of await this.repo.ringExpired(now)) {
        const actor = { appId: call.appId, userId: call.callerUser, endpointId: call.callerEndpoint };
        const targets = await this.directory.ofUser(call.appId, call.targetUser);
        const done = await this.store.transaction(async (tx) => {
          const moved = await this.repo.in(tx).transition(call.appId, call.callId, UNANSWERED, "CANCELLED", 2, now);
          if (moved === undefined) return false;
          const reason = "no answer";
          const cancelled = this.event(
            { case: "cancelled", value: { reason } },
            call.callId,
            moved.version - 1,
            actor,
            now,
          );
          await this.send(tx, call.appId, targets, cancelled);
          const ended = this.event({ case: "ended", value: { reason } }, call.callId, moved.version, actor, now);
          await this.send(tx, call.appId, [caller(call)], ended);
          return true;
        });
        if (done) timedOut++;
      }
      purged = await this.repo.purge(now - this.settings.retentionMs);
    });
    if (timedOut > 0) this.log.info({ timedOut }, "unanswered calls timed out");
    return { timedOut, purged };
  }

  /**
   * The call events pushed to any endpoint of one user, from now until `signal` aborts. A
   * reader that cannot keep up loses its stream rather than our memory.
   */
  async *watch(appId: string, userId: string, signal: AbortSignal, tenantId: string): AsyncGenerator<CallEvent> {
    validateId("userId", userId);
    if (this.bus.ownerListeners(tenantId) >= this.settings.maxWaitersPerTenant) {
      throw resourceExhausted("too many event waiters for this tenant");
    }
    if (this.bus.allListeners() >= this.settings.maxWaiters) throw resourceExhausted("too many event waiters");
    const queue: CallEvent[] = [];
    let overflowed = false;
    let wake: (() => void) | undefined;
    const unsubscribe = this.bus.subscribeUser(
      appId,
      userId,
      (event) => {
        if (queue.length >= MAX_QUEUED_PER_STREAM) overflowed = true;
        else queue.push(event);
        wake?.();
      },
      tenantId,
    );
    const onAbort = () => wake?.();
    signal.addEventListener("abort", onAbort);
    try {
      while (!signal.aborted) {
        if (overflowed) throw resourceExhausted("the event stream's reader is too slow");
        while (queue.length > 0) yield queue.shift() as CallEvent;
        await new Promise<void>((resolve) => {
          wake = resolve;
          if (queue.length > 0 || signal.aborted) resolve();
        });
        wake = undefined;
      }
    } finally {
      unsubscribe();
      signal.removeEventListener("abort", onAbort);
    }
  }

  private async finishUnanswered(
    call: CallRow,
    actor: CallActor,
    to: "REJECTED" | "CANCELLED",
    reason: string,
  ): Promise<void> {
    // Recipients are looked up first, so that the events go out together once the call is over.
    const targets = await this.directory.ofUser(call.appId, call.targetUser);
    const now = this.now();
    await this.store.transaction(async (tx) => {
      const repo = this.repo.in(tx);
      const moved = await repo.transition(actor.appId, call.callId, UNANSWERED, to, 2, now);
      if (moved === undefined) {
        throw this.wrongState(await this.current(repo, actor.appId, call.callId), to.toLowerCase());
      }
      const v = moved.version - 2;
      if (to === "REJECTED") {
        const rejected = this.event({ case: "rejected", value: { reason } }, call.callId, v + 1, actor, now);
        await this.send(tx, actor.appId, [caller(call)], rejected);
        const others = targets.filter((r) => r.endpointId !== actor.endpointId);
        const payload = { case: "cancelled", value: { reason: "rejected on another device" } } as const;
        await this.send(tx, actor.appId, others, this.event(payload, call.callId, v + 2, actor, now));
      } else {
        const cancelled = this.event({ case: "cancelled", value: { reason } }, call.callId, v + 1, actor, now);
        await this.send(tx, actor.appId, targets, cancelled);
      }
    });
    this.log.info({ callId: call.callId, state: to, by: actor.endpointId }, "call over before an answer");
  }

  private async end(call: CallRow, actor: CallActor, reason: string): Promise<void> {
    const now = this.now();
    const other = call.callerEndpoint === actor.endpointId ? callee(call) : caller(call);
    await this.store.transaction(async (tx) => {
      const repo = this.repo.in(tx);
      const moved = await repo.transition(actor.appId, call.callId, ["ANSWERED"], "ENDED", 1, now);
      if (moved === undefined) throw this.wrongState(await this.current(repo, actor.appId, call.callId), "hang up");
      const ended = this.event({ case: "ended", value: { reason } }, call.callId, moved.version, actor, now);
      await this.send(tx, actor.appId, [other], ended);
    });
    this.log.info({ callId: call.callId, by: actor.endpointId, reason }, "call ended");
  }

  /** The call, for an actor that is its caller's endpoint, its answering endpoint or the target user. */
  private async party(actor: CallActor, callId: string): Promise<CallRow> {
    validateId("callId", callId);
    const call = await this.repo.get(actor.appId, callId);
    if (call === undefined) throw this.notParty(callId);
    const isParty =
      call.callerEndpoint === actor.endpointId ||
      call.calleeEndpoint === actor.endpointId ||
      (call.calleeEndpoint === undefined && call.targetUser === actor.userId);
    if (!isParty) throw this.notParty(callId);
    return call;
  }

  /** The call, for an endpoint of its target user (before or at its answer). */
  private async asCallee(actor: CallActor, callId: string): Promise<CallRow> {
    const call = await this.party(actor, callId);
    if (call.targetUser !== actor.userId) throw this.notParty(callId);
    return call;
  }

  /** The call through `repo` (a transaction's, with `forUpdate` to lock it), or NOT_FOUND. */
  private async current(repo: CallRepository, appId: string, callId: string, forUpdate = ""): Promise<CallRow> {
    const call = await repo.get(appId, callId, forUpdate);
    if (call === undefined) throw this.notParty(callId);
    return call;
  }

  private notParty(callId: string) {
    return notFound(`call ${JSON.stringify(callId)} not found`);
  }

  private wrongState(call: CallRow, what: string) {
    return failedPrecondition(`call ${JSON.stringify(call.callId)} is ${call.state}: cannot ${what} it`);
  }

  private async otherCalleeEndpoints(call: CallRow, answering: string): Promise<Recipient[]> {
    return (await this.directory.ofUser(call.appId, call.targetUser)).filter((r) => r.endpointId !== answering);
  }

  private event(payload: CallPayloadInit, callId: string, version: number, actor: CallActor, now: number): CallEvent {
    return create(CallEventSchema, {
      id: randomUUID(),
      callId,
      timestamp: timestampFromMs(now),
      userEndpointId: actor.endpointId,
      userId: actor.userId,
      aggregateVersion: BigInt(version),
      payload,
    });
  }

  /** Publishes the event with `tx`, the transaction that changes the call (delivered in version order). */
  private send(tx: Tx, appId: string, recipients: readonly Recipient[], event: CallEvent): Promise<void> {
    return this.bus.stageCall(tx, appId, recipients, event);
  }
}

function caller(call: CallRow): Recipient {
  return { userId: call.callerUser, endpointId: call.callerEndpoint };
}

function callee(call: CallRow): Recipient {
  return { userId: call.targetUser, endpointId: call.calleeEndpoint ?? "" };
}

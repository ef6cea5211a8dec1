/**
 * How a conference changes: the transaction every state change runs in (the conference's
 * row read locked, the change applied through the transaction's repository, the event
 * logged with the version before the change and the version raised by one, the event
 * staged on the bus with the transaction), and the lookups the rules share. Conferences,
 * ConferenceStreams and ConferenceCustomEvents all change conferences through it.
 */

import { randomUUID } from "node:crypto";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type ConferenceEvent, ConferenceEventSchema } from "../../gen/rtcplane/conference/v1/events_pb.js";
import { type DomainError, failedPrecondition, notFound, permissionDenied } from "../errors.js";
import type { Logger } from "../observability/log.js";
import type { Store } from "../storage/store.js";
import { ConferenceRepository, type ConferenceRow, type ParticipantRow } from "./conference-repository.js";
import type { EventBus, Recipient } from "./event-bus.js";

/** A typed event's payload, as the domain builds it. */
export type PayloadInit = NonNullable<MessageInitShape<typeof ConferenceEventSchema>["payload"]>;

/** Who acts: the app, the user and (for endpoint commands) the endpoint. */
export interface Actor {
  readonly appId: string;
  readonly userId: string;
  readonly endpointId: string;
}

/** What a state change did: the event's payload, and who hears of it beyond the participants. */
export type Change = { payload: PayloadInit; alsoTo?: Recipient };
/** Applies a change inside its transaction, through the transaction's repository. */
export type Apply = (repo: ConferenceRepository, c: ConferenceRow) => Promise<Change | undefined>;

export function conferenceEnded(id: string): DomainError {
  return failedPrecondition(`conference ${JSON.stringify(id)} has ended`);
}

export class ConferenceChanges {
  /** Bound to the store; transactions use `this.repo.in(tx)`. */
  readonly repo: ConferenceRepository;

  constructor(
    readonly store: Store,
    readonly bus: EventBus,
    readonly log: Logger,
    readonly now: () => number,
  ) {
    this.repo = new ConferenceRepository(store);
  }

  /** The app's conference; another app's conference does not exist for the caller. */
  async find(appId: string, conferenceId: string): Promise<ConferenceRow> {
    const c = await this.repo.get(appId, conferenceId);
    if (c === undefined) throw notFound(`conference ${JSON.stringify(conferenceId)} not found`);
    return c;
  }

  /** The conference, its row locked until the transaction ends (see ConferenceRepository.lock). */
  async lockConference(repo: ConferenceRepository, appId: string, conferenceId: string): Promise<ConferenceRow> {
    const c = await repo.lock(appId, conferenceId, this.store.forUpdate);
    if (c === undefined) throw notFound(`conference ${JSON.stringify(conferenceId)} not found`);
    return c;
  }

  /**
   * Logs `event` (its conferenceVersion is `c.version`) and raises the version by exactly
   * one. `c` must have been read with lockConference in the same transaction.
   */
  async logVersioned(repo: ConferenceRepository, c: ConferenceRow, event: ConferenceEvent): Promise<void> {
    await repo.appendEvent(c.seq, c.version, event, this.now());
    const version = await repo.bumpVersion(c.seq, this.now());
    if (version !== c.version + 1) {
      // Only possible if the row was not locked: roll back rather than log a broken sequence.
      throw new Error(`conference ${c.seq}: version ${c.version} became ${version} inside one change`);
    }
  }

  event(
    c: ConferenceRow,
    payload: PayloadInit,
    actor: Actor | undefined,
    version: number | null,
    timestampMs = this.now(),
  ): ConferenceEvent {
    return create(ConferenceEventSchema, {
      id: randomUUID(),
      conferenceId: c.conferenceId,
      ...(version === null ? {} : { conferenceVersion: BigInt(version) }),
      organizationId: c.appId,
      timestamp: timestampFromMs(timestampMs),
      userEndpointId: actor?.endpointId ?? "",
      userId: actor?.userId ?? "",
      payload,
    });
  }

  async recipients(repo: ConferenceRepository, c: ConferenceRow): Promise<Recipient[]> {
    return (await repo.participants(c.seq)).map((p) => ({ userId: p.userId, endpointId: p.endpointId }));
  }

  /**
   * Runs one state change in one transaction: the conference's row is read locked, `apply`
   * mutates through the transaction's repository and returns the event's payload (or
   * undefined for "nothing changed"), the event is logged and the version raised by one.
   * Recipients are the participants after the change, plus whoever `apply` names in
   * `alsoTo` (a leaving endpoint hears of its own leave). The event is published with the
   * transaction (delivered once it commits, in commit order on every node). `apply` may run more than once (PostgreSQL retries): no effects outside `repo`.
   */
  async change(
    conferenceId: string,
    appId: string,
    actor: Actor | undefined,
    apply: Apply,
    allowEnded = false,
  ): Promise<ConferenceEvent | undefined> {
    const result = await this.store.transaction(async (tx) => {
      const repo = this.repo.in(tx);
      const c = await this.lockConference(repo, appId, conferenceId);
      if (c.ended && !allowEnded) throw conferenceEnded(conferenceId);
      const change = await apply(repo, c);
      if (change === undefined) return undefined;
      const event = this.event(c, change.payload, actor, c.version);
      await this.logVersioned(repo, c, event);
      const recipients = await this.recipients(repo, c);
      if (change.alsoTo !== undefined) recipients.push(change.alsoTo);
      await this.bus.stage(tx, { appId, conferenceId }, event, recipients);
      return { event, recipients };
    });
    if (result === undefined) return undefined;
    this.log.debug(
      { conferenceId, type: result.event.payload.case, version: Number(result.event.conferenceVersion) },
      "conference event",
    );
    return result.event;
  }

  /** The participant an actor may act as: it must be joined and be the actor's user's. */
  async ownParticipant(
    repo: ConferenceRepository,
    c: ConferenceRow,
    actor: Actor,
    enforceUser: boolean,
  ): Promise<ParticipantRow> {
    const p = await repo.participant(c.seq, actor.endpointId);
    if (p === undefined) throw notFound(`endpoint ${JSON.stringify(actor.endpointId)} has not joined this conference`);
    if (enforceUser && p.userId !== actor.userId) throw permissionDenied("the endpoint belongs to another user");
    return p;
  }
}

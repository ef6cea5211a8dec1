/**
 * Conference rules. Every state change runs in one transaction that reads the conference's
 * row locked (so changes of one conference, on any node, run one after the other), applies
 * the change, logs an event whose conferenceVersion is the version before the change, and
 * raises the version by one; listeners hear of it only after the commit. This is the
 * clients' rule: a client at version V processes the event with conferenceVersion V and
 * then expects V+1.
 */

import { randomUUID } from "node:crypto";
import { clone, create, type JsonObject, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { JSONPath } from "jsonpath-plus";
import {
  type ConferenceEvent,
  ConferenceEventSchema,
  CustomEventSchema,
} from "../../gen/rtcplane/conference/v1/events_pb.js";
import {
  alreadyExists,
  DomainError,
  failedPrecondition,
  invalidArgument,
  notFound,
  permissionDenied,
  resourceExhausted,
} from "../errors.js";
import { CALL_EVENT_TYPES, CONFERENCE_EVENT_TYPES } from "../events/legacy-json.js";
import type { Logger } from "../observability/log.js";
import type { RoomRecord } from "../rooms/rooms.js";
import type { Store } from "../storage/store.js";
import {
  type ConferenceMode,
  ConferenceRepository,
  type ConferenceRow,
  type HealthState,
  type Json,
  type MetadataRow,
  type ParticipantRow,
  type StreamRow,
} from "./conference-repository.js";
import type { ConferenceRef, EventBus, Recipient } from "./event-bus.js";
import { ConferenceEventReaders, type ConferenceSettings } from "./event-readers.js";

export type {
  ConferenceMode,
  ConferenceRef,
  ConferenceRow,
  ConferenceSettings,
  HealthState,
  Json,
  MetadataRow,
  ParticipantRow,
  StreamRow,
};

/** A typed event's payload, as the domain builds it. */
type PayloadInit = NonNullable<MessageInitShape<typeof ConferenceEventSchema>["payload"]>;

/** Who acts: the app, the user and (for endpoint commands) the endpoint. */
export interface Actor {
  readonly appId: string;
  readonly userId: string;
  readonly endpointId: string;
}

/** Looks up rooms by id for their conferences (the rooms module's API, not its table). */
export interface RoomLookup {
  find(appId: string, roomId: string): Promise<RoomRecord | undefined>;
  /** Counts as a use of the room (its expiry starts again); rejects if it no longer exists. */
  use(appId: string, roomId: string): Promise<unknown>;
}

export interface ConferenceAggregate {
  conference: ConferenceRow;
  metadata: MetadataRow[];
  participants: ParticipantRow[];
  streams: StreamRow[];
}

const ID = /^[A-Za-z0-9._:@-]{1,128}$/;
const MAX_KEY = 256;
const MAX_VALUE = 64 * 1024;
const MAX_REASON = 1024;
const MAX_JSON = 64 * 1024;
/** Endpoints one USER may have joined to one conference at once. */
export const MAX_ENDPOINTS_PER_USER = 4;
/** Event types only the server sends. */
const RESERVED_EVENT_TYPES: ReadonlySet<string> = new Set([
  ...Object.values(CONFERENCE_EVENT_TYPES),
  ...Object.values(CALL_EVENT_TYPES),
]);
const EVENT_TYPE = /^[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)+Event$/;
const ISO_INSTANT = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)$/;

export function validateId(field: string, value: string): string {
  if (!ID.test(value)) throw invalidArgument(`${field}: must be 1-128 characters of letters, digits and ._:@-`);
  return value;
}

function validateText(field: string, value: string, max: number): string {
  if (value.length > max) throw invalidArgument(`${field}: must be at most ${max} characters`);
  return value;
}

function validateJson(field: string, value: Json): Json {
  if (JSON.stringify(value).length > MAX_JSON) throw invalidArgument(`${field}: must be at most ${MAX_JSON} bytes`);
  return value;
}

/** `yyyy-MM-ddTHH:mm:ss.SSSZ`, as the clients parse it. */
export function isoMillis(ms: number): string {
  return new Date(ms).toISOString();
}

/** Replaces every string a JSONPath mask matches with '*' of the same length. */
export function applyMasks(event: Json, masks: readonly string[]): Json {
  if (masks.length === 0) return event;
  const copy = structuredClone(event);
  for (const path of masks) {
    let results: { parent: Json | unknown[] | null; parentProperty: string | number | null; value: unknown }[];
    try {
      results = JSONPath({ path, json: copy, resultType: "all", wrap: true, eval: false }) ?? [];
    } catch (e) {
      throw invalidArgument(`masks: ${JSON.stringify(path)} is not a JSONPath expression (${(e as Error).message})`);
    }
    for (const r of results) {
      if (typeof r.value === "string" && r.parent !== null && r.parentProperty !== null) {
        (r.parent as Record<string | number, unknown>)[r.parentProperty] = "*".repeat(r.value.length);
      }
    }
  }
  return copy;
}

function conferenceEnded(id: string): DomainError {
  return failedPrecondition(`conference ${JSON.stringify(id)} has ended`);
}

/** What a state change did: the event's payload, and who hears of it beyond the participants. */
type Change = { payload: PayloadInit; alsoTo?: Recipient };
/** Applies a change inside its transaction, through the transaction's repository. */
type Apply = (repo: ConferenceRepository, c: ConferenceRow) => Promise<Change | undefined>;

export class Conferences {
  /** Bound to the store; transactions use `this.repo.in(tx)`. */
  private readonly repo: ConferenceRepository;
  private readonly readers: ConferenceEventReaders;

  constructor(
    private readonly store: Store,
    private readonly bus: EventBus,
    private readonly rooms: RoomLookup,
    settings: ConferenceSettings,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.repo = new ConferenceRepository(store);
    this.readers = new ConferenceEventReaders(this.repo, bus, settings);
  }

  /**
   * Media lives in memory: after a restart no stream is really published any more, so the
   * recorded ones are forgotten. Call once at startup, before serving.
   */
  async forgetStreams(): Promise<void> {
    await this.repo.clearAllStreams();
  }

  /** The app's conference; another app's conference does not exist for the caller. */
  async find(appId: string, conferenceId: string): Promise<ConferenceRow> {
    const c = await this.repo.get(appId, conferenceId);
    if (c === undefined) throw notFound(`conference ${JSON.stringify(conferenceId)} not found`);
    return c;
  }

  /** The app's conference, or undefined. */
  lookup(appId: string, conferenceId: string): Promise<ConferenceRow | undefined> {
    return this.repo.get(appId, conferenceId);
  }

  /** The app's running conferences, newest first. */
  running(appId: string, limit: number): Promise<ConferenceRow[]> {
    return this.repo.running(appId, limit);
  }

  /** Like find, but a rooms-API room without a conference yet gets one (its first use). */
  private async findOrOpenRoom(appId: string, conferenceId: string, actor: Actor): Promise<ConferenceRow> {
    const existing = await this.repo.get(appId, conferenceId);
    if (existing !== undefined) return existing;
    const room = await this.rooms.find(appId, conferenceId);
    if (room === undefined) throw notFound(`conference ${JSON.stringify(conferenceId)} not found`);
    try {
      return await this.create(appId, { conferenceId, creator: actor.userId, creatorEndpoint: actor.endpointId });
    } catch (e) {
      // Another join (on this node or another) opened it meanwhile: join that one.
      if (!(e instanceof DomainError) || e.kind !== "already_exists") throw e;
    }
    return this.find(appId, conferenceId);
  }

  /** The conference, its row locked until the transaction ends (see ConferenceRepository.lock). */
  private async lockConference(
    repo: ConferenceRepository,
    appId: string,
    conferenceId: string,
  ): Promise<ConferenceRow> {
    const c = await repo.lock(appId, conferenceId, this.store.forUpdate);
    if (c === undefined) throw notFound(`conference ${JSON.stringify(conferenceId)} not found`);
    return c;
  }

  /**
   * Logs `event` (its conferenceVersion is `c.version`) and raises the version by exactly
   * one. `c` must have been read with lockConference in the same transaction.
   */
  private async logVersioned(repo: ConferenceRepository, c: ConferenceRow, event: ConferenceEvent): Promise<void> {
    await repo.appendEvent(c.seq, c.version, event, this.now());
    const version = await repo.bumpVersion(c.seq, this.now());
    if (version !== c.version + 1) {
      // Only possible if the row was not locked: roll back rather than log a broken sequence.
      throw new Error(`conference ${c.seq}: version ${c.version} became ${version} inside one change`);
    }
  }

  private event(
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

  private async recipients(repo: ConferenceRepository, c: ConferenceRow): Promise<Recipient[]> {
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
  private async change(
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

  async create(
    appId: string,
    input: {
      conferenceId?: string;
      creator: string;
      creatorEndpoint: string;
      mode?: string;
      metadata?: Record<string, string>;
    },
  ): Promise<ConferenceRow> {
    const conferenceId = input.conferenceId ? validateId("conferenceId", input.conferenceId) : randomUUID();
    const room = await this.rooms.find(appId, conferenceId);
    let mode: ConferenceMode = room ? (room.conferenceType === "SFU" ? "ROUTER" : "P2P") : "ROUTER";
    if (input.mode) {
      if (input.mode !== "P2P" && input.mode !== "ROUTER") throw invalidArgument("mode: must be P2P or ROUTER");
      mode = input.mode;
    }
    const metadata = Object.entries(input.metadata ?? {});
    for (const [key, value] of metadata) {
      validateText("metadata key", key, MAX_KEY);
      validateText("metadata value", value, MAX_VALUE);
    }
    // No row to lock yet: of two creations racing, the second insert breaks the unique key
    // (app_id, conference_id) and the store turns that into already_exists too.
    const created = await this.store.transaction(async (tx) => {
      const repo = this.repo.in(tx);
      if ((await repo.get(appId, conferenceId)) !== undefined) {
        throw alreadyExists(`conference ${JSON.stringify(conferenceId)} already exists`);
      }
      const c = await repo.insert({
        conferenceId,
        appId,
        roomId: room?.roomId ?? null,
        mode,
        creator: validateText("creator", input.creator, 128),
        creatorEndpoint: validateText("creatorEndpoint", input.creatorEndpoint, 128),
        maxParticipants: room?.maxParticipants ?? null,
        autoUpgradeCount: room?.autoUpgradeParticipantCount ?? null,
        now: this.now(),
      });
      for (const [key, value] of metadata) {
        await repo.setMetadata(c.seq, key, value, this.now(), input.creatorEndpoint, input.creator);
      }
      const actor = { appId, userId: input.creator, endpointId: input.creatorEndpoint };
      const event = this.event(c, { case: "created", value: { mode, creator: input.creator } }, actor, null);
      await repo.appendEvent(c.seq, null, event, this.now());
      await this.bus.stage(tx, { appId, conferenceId }, event, []);
      return { c, event };
    });
    return created.c;
  }

  /**
   * Joins an endpoint. A USER (enforceUser) joins with at most MAX_ENDPOINTS_PER_USER
   * endpoints, so one token cannot fill a room or force its upgrade alone.
   */
  async join(appId: string, conferenceId: string, actor: Actor, metadata: Json, enforceUser: boolean): Promise<void> {
    validateId("userEndpointId", actor.endpointId);
    validateJson("metadata", metadata);
    const c0 = await this.findOrOpenRoom(appId, conferenceId, actor);
    if (c0.roomId !== null) await this.rooms.use(appId, c0.roomId);
    await this.change(conferenceId, appId, actor, async (repo, c) => {
      const existing = await repo.participant(c.seq, actor.endpointId);
      if (existing !== undefined) {
        if (existing.userId !== actor.userId) throw permissionDenied("the endpoint belongs to another user");
        return undefined; // joining twice is a no-op
      }
      if (c.maxParticipants !== null && (await repo.countParticipants(c.seq)) >= c.maxParticipants) {
        throw resourceExhausted(`conference is full (${c.maxParticipants} participants)`);
      }
      if (enforceUser && (await repo.endpointsOfUser(c.seq, actor.userId)).length >= MAX_ENDPOINTS_PER_USER) {
        throw resourceExhausted(`a user joins with at most ${MAX_ENDPOINTS_PER_USER} endpoints; leave with one first`);
      }
      await repo.addParticipant(c.seq, {
        endpointId: actor.endpointId,
        userId: actor.userId,
        metadata,
        state: "HEALTHY",
        joinTimeMs: this.now(),
      });
      return { payload: { case: "joined", value: { metadata: metadata as JsonObject } } };
    });
    // A MESH room becomes SFU when autoUpgradeParticipantCount participants (different users) have joined.
    if (c0.mode !== "P2P" || c0.autoUpgradeCount === null) return;
    await this.change(conferenceId, appId, actor, async (repo, c) => {
      if (c.mode !== "P2P" || c.autoUpgradeCount === null) return undefined;
      if ((await repo.countUsers(c.seq)) < c.autoUpgradeCount) return undefined;
      await repo.setMode(c.seq, "ROUTER");
      return { payload: { case: "modeUpdated", value: { mode: "ROUTER", previousMode: "P2P" } } };
    });
  }

  /** The participant an actor may act as: it must be joined and be the actor's user's. */
  private async ownParticipant(
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

  async leave(appId: string, conferenceId: string, actor: Actor, reason: string, enforceUser: boolean): Promise<void> {
    validateText("reason", reason, MAX_REASON);
    // Its streams go first, each with its own event, so viewers stop viewing them.
    const c0 = await this.find(appId, conferenceId);
    const leaving = await this.repo.participant(c0.seq, actor.endpointId);
    if (leaving !== undefined && (!enforceUser || leaving.userId === actor.userId)) {
      for (const s of (await this.repo.streams(c0.seq)).filter((s) => s.endpointId === actor.endpointId)) {
        // A stream lost meanwhile (streamLost) is simply not unpublished twice.
        await this.unpublish(appId, conferenceId, { ...actor, userId: leaving.userId }, s.streamId, false, true);
      }
    }
    await this.change(
      conferenceId,
      appId,
      actor,
      async (repo, c) => {
        const p = await this.ownParticipant(repo, c, actor, enforceUser);
        await repo.removeParticipant(c.seq, p.endpointId);
        return {
          payload: { case: "left", value: { reason } },
          alsoTo: { userId: p.userId, endpointId: p.endpointId },
        };
      },
      true,
    );
  }

  /** What ending a conference changes (in end's or endIfOpen's transaction). */
  private async ending(
    repo: ConferenceRepository,
    c: ConferenceRow,
    actor: Actor,
    reason: string,
    enforceUser: boolean,
  ): Promise<Change> {
    if (enforceUser) {
      const p = await repo.participant(c.seq, actor.endpointId);
      if (p === undefined || p.userId !== actor.userId) {
        throw permissionDenied("only a joined participant may end the conference");
      }
    }
    await repo.end(c.seq, reason);
    await repo.removeAllStreams(c.seq);
    return { payload: { case: "ended", value: { reason } } };
  }

  /** Ends the conference; a USER (enforceUser) may end it only as one of its joined endpoints. */
  async end(appId: string, conferenceId: string, actor: Actor, reason: string, enforceUser: boolean): Promise<void> {
    validateText("reason", reason, MAX_REASON);
    await this.change(conferenceId, appId, actor, (repo, c) => this.ending(repo, c, actor, reason, enforceUser));
  }

  /** Ends a conference if it exists and runs (its room was deleted or expired); no actor. */
  async endIfOpen(appId: string, conferenceId: string, reason: string): Promise<void> {
    const c0 = await this.repo.get(appId, conferenceId);
    if (c0 === undefined || c0.ended) return;
    validateText("reason", reason, MAX_REASON);
    const actor = { appId, userId: "", endpointId: "" };
    try {
      // Checked again under the lock: whoever ends it first logs the one "ended" event.
      await this.change(
        conferenceId,
        appId,
        actor,
        async (repo, c) => (c.ended ? undefined : this.ending(repo, c, actor, reason, false)),
        true,
      );
    } catch (e) {
      if (e instanceof DomainError && e.kind === "not_found") return; // its app was deleted meanwhile
      throw e;
    }
  }

  /** Records a published stream (the SFU already accepted it) and announces it. */
  async streamPublished(
    appId: string,
    conferenceId: string,
    actor: Actor,
    stream: StreamRow,
    enforceUser: boolean,
  ): Promise<void> {
    validateJson("metadata", stream.metadata);
    await this.change(conferenceId, appId, actor, async (repo, c) => {
      await this.ownParticipant(repo, c, actor, enforceUser);
      await repo.addStream(c.seq, stream);
      return { payload: { case: "streamPublished", value: { streamId: stream.streamId, streamType: stream.type } } };
    });
  }

  /** Forgets a stream and tells everyone, its viewers included. */
  async streamUnpublished(
    appId: string,
    conferenceId: string,
    actor: Actor,
    streamId: string,
    enforceUser: boolean,
  ): Promise<void> {
    await this.unpublish(appId, conferenceId, actor, streamId, enforceUser, false);
  }

  /** streamUnpublished; with `ifPresent`, a stream the endpoint no longer publishes changes nothing. */
  private async unpublish(
    appId: string,
    conferenceId: string,
    actor: Actor,
    streamId: string,
    enforceUser: boolean,
    ifPresent: boolean,
  ): Promise<void> {
    await this.change(
      conferenceId,
      appId,
      actor,
      async (repo, c) => {
        if (ifPresent && (await repo.stream(c.seq, streamId))?.endpointId !== actor.endpointId) return undefined;
        const s = await this.ownStream(repo, c, actor, streamId, enforceUser);
        await repo.removeStream(c.seq, streamId);
        return { payload: { case: "streamUnpublished", value: { streamId, streamType: s.type } } };
      },
      true,
    );
  }

  /**
   * The SFU lost a stream (its worker died): the stream is unpublished with the usual event
   * and its publisher is marked SICK until it publishes again or keeps alive. Never rejects
   * (media calls it from its own events): failures are logged.
   */
  async streamLost(ref: ConferenceRef, endpointId: string, streamId: string, publisherSick = true): Promise<void> {
    const { appId, conferenceId } = ref;
    try {
      const c = await this.repo.get(appId, conferenceId);
      const p = c && (await this.repo.participant(c.seq, endpointId));
      if (c === undefined || p === undefined) return;
      try {
        await this.streamUnpublished(
          c.appId,
          conferenceId,
          { appId: c.appId, userId: p.userId, endpointId },
          streamId,
          false,
        );
      } catch (err) {
        this.log.warn({ err, conferenceId, streamId }, "could not record a lost stream");
      }
      if (publisherSick) await this.setEndpointState(appId, endpointId, "SICK");
    } catch (err) {
      this.log.warn({ err, conferenceId, streamId }, "could not record a lost stream");
    }
  }

  /**
   * The endpoint a USER views as: the named one when it is the user's own joined endpoint
   * (clients may also name the publisher's), else the user's first joined endpoint.
   * PERMISSION_DENIED when the user has joined with none: viewing is for participants.
   */
  async viewerEndpoint(appId: string, conferenceId: string, userId: string, named: string): Promise<string> {
    const c = await this.find(appId, conferenceId);
    const own = await this.repo.endpointsOfUser(c.seq, userId);
    if (own.includes(named)) return named;
    const first = own[0];
    if (first === undefined) throw permissionDenied("join the conference before viewing its streams");
    return first;
  }

  /**
   * Throws NOT_FOUND unless the endpoint has joined the (caller's) conference, and
   * PERMISSION_DENIED when `userId` is given and the endpoint is another user's.
   */
  async requireParticipant(appId: string, conferenceId: string, endpointId: string, userId?: string): Promise<void> {
    const c = await this.find(appId, conferenceId);
    const p = await this.repo.participant(c.seq, endpointId);
    if (p === undefined) throw notFound(`endpoint ${JSON.stringify(endpointId)} has not joined this conference`);
    if (userId !== undefined && p.userId !== userId) throw permissionDenied("the endpoint belongs to another user");
  }

  /** A published stream of the conference, by id (viewers may name any endpoint). */
  async findStream(appId: string, conferenceId: string, streamId: string): Promise<StreamRow> {
    const c = await this.find(appId, conferenceId);
    const s = await this.repo.stream(c.seq, streamId);
    if (s === undefined) throw notFound(`stream ${JSON.stringify(streamId)} is not published in this conference`);
    return s;
  }

  /** Sets or removes a conference metadata key; a USER (enforceUser) writes only as its own joined endpoint. */
  async updateMetadata(
    appId: string,
    conferenceId: string,
    actor: Actor,
    change: { key: string; operation: string; value: string },
    enforceUser: boolean,
  ): Promise<void> {
    const { key, operation, value } = change;
    if (key === "" || key.length > MAX_KEY) throw invalidArgument(`key: must be 1-${MAX_KEY} characters`);
    if (operation !== "SET" && operation !== "REMOVE") throw invalidArgument("operation: must be SET or REMOVE");
    if (operation === "SET") validateText("value", value, MAX_VALUE);
    await this.change(conferenceId, appId, actor, async (repo, c) => {
      if (enforceUser) await this.ownParticipant(repo, c, actor, true);
      if (operation === "SET") {
        await repo.setMetadata(c.seq, key, value, this.now(), actor.endpointId, actor.userId);
        return { payload: { case: "metadataUpdated", value: { key, operation, value } } };
      }
      if (!(await repo.removeMetadata(c.seq, key))) return undefined; // removing an absent key changes nothing
      return { payload: { case: "metadataUpdated", value: { key, operation } } };
    });
  }

  async updateParticipantMetadata(
    appId: string,
    conferenceId: string,
    actor: Actor,
    metadata: Json,
    enforceUser: boolean,
  ): Promise<void> {
    validateJson("newMetadata", metadata);
    await this.change(conferenceId, appId, actor, async (repo, c) => {
      const p = await this.ownParticipant(repo, c, actor, enforceUser);
      await repo.setParticipantMetadata(c.seq, p.endpointId, metadata);
      return { payload: { case: "participantMetadataUpdated", value: { newMetadata: metadata as JsonObject } } };
    });
  }

  private async ownStream(
    repo: ConferenceRepository,
    c: ConferenceRow,
    actor: Actor,
    streamId: string,
    enforceUser: boolean,
  ): Promise<StreamRow> {
    await this.ownParticipant(repo, c, actor, enforceUser);
    const s = await repo.stream(c.seq, streamId);
    if (s === undefined || s.endpointId !== actor.endpointId) {
      throw notFound(`stream ${JSON.stringify(streamId)} is not published by this endpoint`);
    }
    return s;
  }

  async updateStreamMetadata(
    appId: string,
    conferenceId: string,
    actor: Actor,
    streamId: string,
    metadata: Json,
    enforceUser: boolean,
  ): Promise<void> {
    validateJson("newMetadata", metadata);
    await this.change(conferenceId, appId, actor, async (repo, c) => {
      const s = await this.ownStream(repo, c, actor, streamId, enforceUser);
      await repo.setStreamMetadata(c.seq, s.streamId, metadata);
      return { payload: { case: "streamMetadataUpdated", value: { streamId, newMetadata: metadata as JsonObject } } };
    });
  }

  async updateStreamBitrate(
    appId: string,
    conferenceId: string,
    actor: Actor,
    streamId: string,
    bitrate: number,
    enforceUser: boolean,
  ): Promise<void> {
    if (!Number.isInteger(bitrate) || bitrate < 0 || bitrate > 100_000_000) {
      throw invalidArgument("videoBitrate: must be between 0 and 100000000");
    }
    await this.change(conferenceId, appId, actor, async (repo, c) => {
      const s = await this.ownStream(repo, c, actor, streamId, enforceUser);
      if (s.videoBitrate === bitrate) return undefined;
      await repo.setStreamBitrate(c.seq, s.streamId, bitrate);
      return { payload: { case: "streamBitrateUpdated", value: { streamId, videoBitrate: bitrate } } };
    });
  }

  /**
   * A custom event from a SERVICE caller. AT_LEAST_ONCE: logged (masked) and versioned like
   * any change; BEST_EFFORT: only current listeners and push receive it. Returns how many
   * joined endpoints it was sent to.
   */
  async sendEvent(
    appId: string,
    conferenceId: string,
    event: Json,
    masks: readonly string[],
    qos: string,
  ): Promise<number> {
    const type = event.type;
    if (typeof type !== "string" || !EVENT_TYPE.test(type)) {
      throw invalidArgument(
        'event.type: must be Capitalized camel case ending in "Event", e.g. "RecordingStartedEvent"',
      );
    }
    // The server's own event names are its own: an app cannot make clients see a forged
    // "ConferenceEndedEvent" or "CallAnsweredEvent" (the API documents say so too).
    if (RESERVED_EVENT_TYPES.has(type)) {
      throw invalidArgument(
        `event.type: ${JSON.stringify(type)} is the server's own event; name the app's event otherwise`,
      );
    }
    const timestamp = event.timestamp;
    if (typeof timestamp !== "string" || !ISO_INSTANT.test(timestamp) || Number.isNaN(Date.parse(timestamp))) {
      throw invalidArgument('event.timestamp: must be an ISO-8601 instant such as "2011-12-03T10:15:30Z"');
    }
    validateJson("event", event);
    const mode = qos === "" ? "BEST_EFFORT" : qos;
    if (mode !== "AT_LEAST_ONCE" && mode !== "BEST_EFFORT")
      throw invalidArgument("qos: must be AT_LEAST_ONCE or BEST_EFFORT");
    const masked = applyMasks(event, masks);
    // Live receivers get the app's event as sent; the log and long-polls the masked copy.
    const custom = (c: ConferenceRow, version: number | null) => {
      const full = this.event(
        c,
        { case: "custom", value: { type, data: event as JsonObject } },
        undefined,
        version,
        Date.parse(timestamp),
      );
      const shown = clone(ConferenceEventSchema, full);
      shown.payload = { case: "custom", value: create(CustomEventSchema, { type, data: masked as JsonObject }) };
      return { full, shown };
    };
    if (mode === "BEST_EFFORT") {
      const c = await this.find(appId, conferenceId);
      if (c.ended) throw conferenceEnded(conferenceId);
      const recipients = await this.recipients(this.repo, c);
      const { full, shown } = custom(c, null);
      this.log.debug({ conferenceId, type }, "best-effort event sent");
      this.bus.publish({ appId, conferenceId }, shown, recipients, false, full);
      return recipients.length;
    }
    const result = await this.store.transaction(async (tx) => {
      const repo = this.repo.in(tx);
      const c = await this.lockConference(repo, appId, conferenceId);
      if (c.ended) throw conferenceEnded(conferenceId);
      const recipients = await this.recipients(repo, c);
      const { full, shown: stored } = custom(c, c.version);
      await this.logVersioned(repo, c, stored);
      await this.bus.stage(tx, { appId, conferenceId }, stored, recipients, full);
      return { full, stored, recipients };
    });
    this.log.debug({ conferenceId, type, version: Number(result.stored.conferenceVersion) }, "event sent");
    return result.recipients.length;
  }

  /**
   * The conference with its metadata, participants and streams, as of one version: its row
   * is locked while the parts are read (on PostgreSQL a transaction's statements would
   * otherwise each see the latest commit), so no change commits in between.
   */
  aggregate(appId: string, conferenceId: string): Promise<ConferenceAggregate> {
    return this.store.transaction(async (tx) => {
      const repo = this.repo.in(tx);
      const conference = await this.lockConference(repo, appId, conferenceId);
      return {
        conference,
        metadata: await repo.metadata(conference.seq),
        participants: await repo.participants(conference.seq),
        streams: await repo.streams(conference.seq),
      };
    });
  }

  /** Logged events with conferenceVersion >= fromVersion, at most 1000 per answer. */
  async events(appId: string, conferenceId: string, fromVersion: number): Promise<ConferenceEvent[]> {
    return this.readers.events(await this.find(appId, conferenceId), fromVersion);
  }

  /** Long-poll for the conference's events (ConferenceEventReaders.waitForEvents). */
  async waitForEvents(
    appId: string,
    conferenceId: string,
    fromVersion: number,
    signal: AbortSignal,
    tenantId: string,
  ): Promise<ConferenceEvent[]> {
    const c = await this.find(appId, conferenceId);
    return this.readers.waitForEvents(c, fromVersion, signal, tenantId);
  }

  /** The conference's events from `fromVersion` on, then live ones (ConferenceEventReaders.watch). */
  async *watch(
    appId: string,
    conferenceId: string,
    fromVersion: number,
    signal: AbortSignal,
    tenantId: string,
  ): AsyncGenerator<ConferenceEvent> {
    const c = await this.find(appId, conferenceId);
    yield* this.readers.watch(c, fromVersion, signal, tenantId);
  }

  /**
   * An observation about the conference (network indicators): pushed to participants and
   * waiters without a conferenceVersion, neither logged nor versioned. Never rejects (media
   * calls it from its own events): failures are logged.
   */
  async observe(ref: ConferenceRef, payload: PayloadInit): Promise<void> {
    try {
      const c = await this.repo.get(ref.appId, ref.conferenceId);
      if (c === undefined || c.ended) return;
      const recipients = await this.recipients(this.repo, c);
      this.bus.publish(ref, this.event(c, payload, undefined, null), recipients, false);
    } catch (err) {
      this.log.warn({ err, conferenceId: ref.conferenceId }, "could not send an observation");
    }
  }

  /** Marks an endpoint's participations HEALTHY or SICK (an observation: no version change). */
  async setEndpointState(appId: string, endpointId: string, state: HealthState): Promise<void> {
    await this.repo.setEndpointState(appId, endpointId, state);
  }

  /** Makes an endpoint leave every conference it joined (unregister, keep-alive expiry). */
  async leaveAll(appId: string, endpointId: string, userId: string, reason: string): Promise<void> {
    for (const conferenceId of await this.repo.conferencesOfEndpoint(appId, endpointId)) {
      try {
        await this.leave(appId, conferenceId, { appId, userId, endpointId }, reason, false);
      } catch (err) {
        this.log.warn({ err, conferenceId, endpointId }, "could not remove endpoint from conference");
      }
    }
  }
}

/**
 * Conference rules. Every state change runs in one transaction that applies the change,
 * logs an event whose conferenceVersion is the version before the change, and raises the
 * version by one; listeners hear of it only after the commit. This is the clients' rule:
 * a client at version V processes the event with conferenceVersion V and then expects V+1.
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
  type DomainError,
  failedPrecondition,
  invalidArgument,
  notFound,
  permissionDenied,
  resourceExhausted,
} from "../errors.js";
import type { Logger } from "../observability/log.js";
import type { RoomRecord } from "../rooms/rooms.js";
import type { Db } from "../storage/database.js";
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

export type { ConferenceMode, ConferenceRef, ConferenceRow, HealthState, Json, MetadataRow, ParticipantRow, StreamRow };

/** A typed event's payload, as the domain builds it. */
type PayloadInit = NonNullable<MessageInitShape<typeof ConferenceEventSchema>["payload"]>;

/** Who acts: the app, the user and (for endpoint commands) the endpoint. */
export interface Actor {
  readonly appId: string;
  readonly userId: string;
  readonly endpointId: string;
}

export interface ConferenceSettings {
  readonly longPollTimeoutMs: number;
  readonly maxWaitersPerConference: number;
  /** Waiters of one tenant's apps together: one tenant cannot take the whole global cap. */
  readonly maxWaitersPerTenant: number;
  readonly maxWaiters: number;
}

/** Looks up rooms by id for their conferences (the rooms module's API, not its table). */
export interface RoomLookup {
  find(appId: string, roomId: string): RoomRecord | undefined;
  use(appId: string, roomId: string): void;
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
const MAX_EVENTS_PER_ANSWER = 1000;
/** Endpoints one USER may have joined to one conference at once. */
export const MAX_ENDPOINTS_PER_USER = 4;
/** Live events held for one slow event-stream reader before its stream is ended. */
const MAX_QUEUED_PER_STREAM = 10_000;
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

export class Conferences {
  private readonly repo: ConferenceRepository;

  constructor(
    private readonly db: Db,
    private readonly bus: EventBus,
    private readonly rooms: RoomLookup,
    private readonly settings: ConferenceSettings,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.repo = new ConferenceRepository(db);
    this.repo.clearAllStreams();
  }

  /** Called after an endpoint left a conference (media closes its transports). */
  onParticipantLeft: ((ref: ConferenceRef, endpointId: string) => void) | undefined;
  /** Called after a conference ended. */
  onConferenceEnded: ((ref: ConferenceRef) => void) | undefined;

  /** The app's conference; another app's conference does not exist for the caller. */
  find(appId: string, conferenceId: string): ConferenceRow {
    const c = this.repo.get(appId, conferenceId);
    if (c === undefined) throw notFound(`conference ${JSON.stringify(conferenceId)} not found`);
    return c;
  }

  /** The app's conference, or undefined. */
  lookup(appId: string, conferenceId: string): ConferenceRow | undefined {
    return this.repo.get(appId, conferenceId);
  }

  /** The app's running conferences, newest first. */
  running(appId: string, limit: number): ConferenceRow[] {
    return this.repo.running(appId, limit);
  }

  /** Like find, but a rooms-API room without a conference yet gets one (its first use). */
  private findOrOpenRoom(appId: string, conferenceId: string, actor: Actor): ConferenceRow {
    const existing = this.repo.get(appId, conferenceId);
    if (existing !== undefined) return existing;
    const room = this.rooms.find(appId, conferenceId);
    if (room === undefined) throw notFound(`conference ${JSON.stringify(conferenceId)} not found`);
    this.create(appId, { conferenceId, creator: actor.userId, creatorEndpoint: actor.endpointId });
    return this.find(appId, conferenceId);
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

  private recipients(c: ConferenceRow): Recipient[] {
    return this.repo.participants(c.seq).map((p) => ({ userId: p.userId, endpointId: p.endpointId }));
  }

  /**
   * Runs one state change: `apply` mutates inside the transaction and returns the event's
   * type and fields (or undefined for "nothing changed"). Recipients are the participants
   * after the change, plus whoever `apply` names in `alsoTo` (a leaving endpoint hears of
   * its own leave).
   */
  private change(
    conferenceId: string,
    appId: string,
    actor: Actor | undefined,
    apply: (c: ConferenceRow) => { payload: PayloadInit; alsoTo?: Recipient } | undefined,
    allowEnded = false,
  ): ConferenceEvent | undefined {
    const result = this.db.transaction(() => {
      const c = this.find(appId, conferenceId);
      if (c.ended && !allowEnded) throw conferenceEnded(conferenceId);
      const change = apply(c);
      if (change === undefined) return undefined;
      const event = this.event(c, change.payload, actor, c.version);
      this.repo.appendEvent(c.seq, c.version, event, this.now());
      this.repo.bumpVersion(c.seq, this.now());
      const recipients = this.recipients(c);
      if (change.alsoTo !== undefined) recipients.push(change.alsoTo);
      return { event, recipients };
    })();
    if (result === undefined) return undefined;
    this.bus.publish({ appId, conferenceId }, result.event, result.recipients, true);
    this.log.debug(
      { conferenceId, type: result.event.payload.case, version: Number(result.event.conferenceVersion) },
      "conference event",
    );
    return result.event;
  }

  create(
    appId: string,
    input: {
      conferenceId?: string;
      creator: string;
      creatorEndpoint: string;
      mode?: string;
      metadata?: Record<string, string>;
    },
  ): ConferenceRow {
    const conferenceId = input.conferenceId ? validateId("conferenceId", input.conferenceId) : randomUUID();
    const room = this.rooms.find(appId, conferenceId);
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
    const created = this.db.transaction(() => {
      if (this.repo.get(appId, conferenceId) !== undefined) {
        throw alreadyExists(`conference ${JSON.stringify(conferenceId)} already exists`);
      }
      const c = this.repo.insert({
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
        this.repo.setMetadata(c.seq, key, value, this.now(), input.creatorEndpoint, input.creator);
      }
      const actor = { appId, userId: input.creator, endpointId: input.creatorEndpoint };
      const event = this.event(c, { case: "created", value: { mode, creator: input.creator } }, actor, null);
      this.repo.appendEvent(c.seq, null, event, this.now());
      return { c, event };
    })();
    this.bus.publish({ appId, conferenceId }, created.event, [], true);
    return created.c;
  }

  /**
   * Joins an endpoint. A USER (enforceUser) joins with at most MAX_ENDPOINTS_PER_USER
   * endpoints, so one token cannot fill a room or force its upgrade alone.
   */
  join(appId: string, conferenceId: string, actor: Actor, metadata: Json, enforceUser: boolean): void {
    validateId("userEndpointId", actor.endpointId);
    validateJson("metadata", metadata);
    const c0 = this.findOrOpenRoom(appId, conferenceId, actor);
    if (c0.roomId !== null) this.rooms.use(appId, c0.roomId);
    this.change(conferenceId, appId, actor, (c) => {
      const existing = this.repo.participant(c.seq, actor.endpointId);
      if (existing !== undefined) {
        if (existing.userId !== actor.userId) throw permissionDenied("the endpoint belongs to another user");
        return undefined; // joining twice is a no-op
      }
      if (c.maxParticipants !== null && this.repo.countParticipants(c.seq) >= c.maxParticipants) {
        throw resourceExhausted(`conference is full (${c.maxParticipants} participants)`);
      }
      if (enforceUser && this.repo.endpointsOfUser(c.seq, actor.userId).length >= MAX_ENDPOINTS_PER_USER) {
        throw resourceExhausted(`a user joins with at most ${MAX_ENDPOINTS_PER_USER} endpoints; leave with one first`);
      }
      this.repo.addParticipant(c.seq, {
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
    this.change(conferenceId, appId, actor, (c) => {
      if (c.mode !== "P2P" || c.autoUpgradeCount === null) return undefined;
      if (this.repo.countUsers(c.seq) < c.autoUpgradeCount) return undefined;
      this.repo.setMode(c.seq, "ROUTER");
      return { payload: { case: "modeUpdated", value: { mode: "ROUTER", previousMode: "P2P" } } };
    });
  }

  /** The participant an actor may act as: it must be joined and be the actor's user's. */
  private ownParticipant(c: ConferenceRow, actor: Actor, enforceUser: boolean): ParticipantRow {
    const p = this.repo.participant(c.seq, actor.endpointId);
    if (p === undefined) throw notFound(`endpoint ${JSON.stringify(actor.endpointId)} has not joined this conference`);
    if (enforceUser && p.userId !== actor.userId) throw permissionDenied("the endpoint belongs to another user");
    return p;
  }

  leave(appId: string, conferenceId: string, actor: Actor, reason: string, enforceUser: boolean): void {
    validateText("reason", reason, MAX_REASON);
    // Its streams go first, each with its own event, so viewers stop viewing them.
    const c0 = this.find(appId, conferenceId);
    const leaving = this.repo.participant(c0.seq, actor.endpointId);
    if (leaving !== undefined && (!enforceUser || leaving.userId === actor.userId)) {
      for (const s of this.repo.streams(c0.seq).filter((s) => s.endpointId === actor.endpointId)) {
        this.streamUnpublished(appId, conferenceId, { ...actor, userId: leaving.userId }, s.streamId, false);
      }
    }
    this.change(
      conferenceId,
      appId,
      actor,
      (c) => {
        const p = this.ownParticipant(c, actor, enforceUser);
        this.repo.removeParticipant(c.seq, p.endpointId);
        return {
          payload: { case: "left", value: { reason } },
          alsoTo: { userId: p.userId, endpointId: p.endpointId },
        };
      },
      true,
    );
    this.onParticipantLeft?.({ appId, conferenceId }, actor.endpointId);
  }

  /** Ends the conference; a USER (enforceUser) may end it only as one of its joined endpoints. */
  end(appId: string, conferenceId: string, actor: Actor, reason: string, enforceUser: boolean): void {
    validateText("reason", reason, MAX_REASON);
    this.change(conferenceId, appId, actor, (c) => {
      if (enforceUser) {
        const p = this.repo.participant(c.seq, actor.endpointId);
        if (p === undefined || p.userId !== actor.userId) {
          throw permissionDenied("only a joined participant may end the conference");
        }
      }
      this.repo.end(c.seq, reason);
      this.repo.removeAllStreams(c.seq);
      return { payload: { case: "ended", value: { reason } } };
    });
    this.onConferenceEnded?.({ appId, conferenceId });
  }

  /** Ends a conference if it exists and runs (its room was deleted or expired); no actor. */
  endIfOpen(appId: string, conferenceId: string, reason: string): void {
    const c = this.repo.get(appId, conferenceId);
    if (c === undefined || c.ended) return;
    this.end(appId, conferenceId, { appId, userId: "", endpointId: "" }, reason, false);
  }

  /** Records a published stream (the SFU already accepted it) and announces it. */
  streamPublished(appId: string, conferenceId: string, actor: Actor, stream: StreamRow, enforceUser: boolean): void {
    validateJson("metadata", stream.metadata);
    this.change(conferenceId, appId, actor, (c) => {
      this.ownParticipant(c, actor, enforceUser);
      this.repo.addStream(c.seq, stream);
      return { payload: { case: "streamPublished", value: { streamId: stream.streamId, streamType: stream.type } } };
    });
  }

  /** Forgets a stream and tells everyone, its viewers included. */
  streamUnpublished(appId: string, conferenceId: string, actor: Actor, streamId: string, enforceUser: boolean): void {
    this.change(
      conferenceId,
      appId,
      actor,
      (c) => {
        const s = this.ownStream(c, actor, streamId, enforceUser);
        this.repo.removeStream(c.seq, streamId);
        return { payload: { case: "streamUnpublished", value: { streamId, streamType: s.type } } };
      },
      true,
    );
  }

  /**
   * The SFU lost a stream (its worker died): the stream is unpublished with the usual event
   * and its publisher is marked SICK until it publishes again or keeps alive.
   */
  streamLost(ref: ConferenceRef, endpointId: string, streamId: string, publisherSick = true): void {
    const { appId, conferenceId } = ref;
    const c = this.repo.get(appId, conferenceId);
    const p = c && this.repo.participant(c.seq, endpointId);
    if (c === undefined || p === undefined) return;
    try {
      this.streamUnpublished(c.appId, conferenceId, { appId: c.appId, userId: p.userId, endpointId }, streamId, false);
    } catch (err) {
      this.log.warn({ err, conferenceId, streamId }, "could not record a lost stream");
    }
    if (publisherSick) this.setEndpointState(appId, endpointId, "SICK");
  }

  /**
   * The endpoint a USER views as: the named one when it is the user's own joined endpoint
   * (clients may also name the publisher's), else the user's first joined endpoint.
   * PERMISSION_DENIED when the user has joined with none: viewing is for participants.
   */
  viewerEndpoint(appId: string, conferenceId: string, userId: string, named: string): string {
    const c = this.find(appId, conferenceId);
    const own = this.repo.endpointsOfUser(c.seq, userId);
    if (own.includes(named)) return named;
    const first = own[0];
    if (first === undefined) throw permissionDenied("join the conference before viewing its streams");
    return first;
  }

  /**
   * Throws NOT_FOUND unless the endpoint has joined the (caller's) conference, and
   * PERMISSION_DENIED when `userId` is given and the endpoint is another user's.
   */
  requireParticipant(appId: string, conferenceId: string, endpointId: string, userId?: string): void {
    const c = this.find(appId, conferenceId);
    const p = this.repo.participant(c.seq, endpointId);
    if (p === undefined) throw notFound(`endpoint ${JSON.stringify(endpointId)} has not joined this conference`);
    if (userId !== undefined && p.userId !== userId) throw permissionDenied("the endpoint belongs to another user");
  }

  /** A published stream of the conference, by id (viewers may name any endpoint). */
  findStream(appId: string, conferenceId: string, streamId: string): StreamRow {
    const c = this.find(appId, conferenceId);
    const s = this.repo.stream(c.seq, streamId);
    if (s === undefined) throw notFound(`stream ${JSON.stringify(streamId)} is not published in this conference`);
    return s;
  }

  /** Sets or removes a conference metadata key; a USER (enforceUser) writes only as its own joined endpoint. */
  updateMetadata(
    appId: string,
    conferenceId: string,
    actor: Actor,
    change: { key: string; operation: string; value: string },
    enforceUser: boolean,
  ) {
    const { key, operation, value } = change;
    if (key === "" || key.length > MAX_KEY) throw invalidArgument(`key: must be 1-${MAX_KEY} characters`);
    if (operation !== "SET" && operation !== "REMOVE") throw invalidArgument("operation: must be SET or REMOVE");
    if (operation === "SET") validateText("value", value, MAX_VALUE);
    this.change(conferenceId, appId, actor, (c) => {
      if (enforceUser) this.ownParticipant(c, actor, true);
      if (operation === "SET") {
        this.repo.setMetadata(c.seq, key, value, this.now(), actor.endpointId, actor.userId);
        return { payload: { case: "metadataUpdated", value: { key, operation, value } } };
      }
      if (!this.repo.removeMetadata(c.seq, key)) return undefined; // removing an absent key changes nothing
      return { payload: { case: "metadataUpdated", value: { key, operation } } };
    });
  }

  updateParticipantMetadata(appId: string, conferenceId: string, actor: Actor, metadata: Json, enforceUser: boolean) {
    validateJson("newMetadata", metadata);
    this.change(conferenceId, appId, actor, (c) => {
      const p = this.ownParticipant(c, actor, enforceUser);
      this.repo.setParticipantMetadata(c.seq, p.endpointId, metadata);
      return { payload: { case: "participantMetadataUpdated", value: { newMetadata: metadata as JsonObject } } };
    });
  }

  private ownStream(c: ConferenceRow, actor: Actor, streamId: string, enforceUser: boolean): StreamRow {
    this.ownParticipant(c, actor, enforceUser);
    const s = this.repo.stream(c.seq, streamId);
    if (s === undefined || s.endpointId !== actor.endpointId) {
      throw notFound(`stream ${JSON.stringify(streamId)} is not published by this endpoint`);
    }
    return s;
  }

  updateStreamMetadata(
    appId: string,
    conferenceId: string,
    actor: Actor,
    streamId: string,
    metadata: Json,
    enforceUser: boolean,
  ) {
    validateJson("newMetadata", metadata);
    this.change(conferenceId, appId, actor, (c) => {
      const s = this.ownStream(c, actor, streamId, enforceUser);
      this.repo.setStreamMetadata(c.seq, s.streamId, metadata);
      return { payload: { case: "streamMetadataUpdated", value: { streamId, newMetadata: metadata as JsonObject } } };
    });
  }

  updateStreamBitrate(
    appId: string,
    conferenceId: string,
    actor: Actor,
    streamId: string,
    bitrate: number,
    enforceUser: boolean,
  ) {
    if (!Number.isInteger(bitrate) || bitrate < 0 || bitrate > 100_000_000) {
      throw invalidArgument("videoBitrate: must be between 0 and 100000000");
    }
    this.change(conferenceId, appId, actor, (c) => {
      const s = this.ownStream(c, actor, streamId, enforceUser);
      if (s.videoBitrate === bitrate) return undefined;
      this.repo.setStreamBitrate(c.seq, s.streamId, bitrate);
      return { payload: { case: "streamBitrateUpdated", value: { streamId, videoBitrate: bitrate } } };
    });
  }

  /**
   * A custom event from a SERVICE caller. AT_LEAST_ONCE: logged (masked) and versioned like
   * any change; BEST_EFFORT: only current listeners and push receive it. Returns how many
   * joined endpoints it was sent to.
   */
  sendEvent(appId: string, conferenceId: string, event: Json, masks: readonly string[], qos: string): number {
    const type = event.type;
    if (typeof type !== "string" || !EVENT_TYPE.test(type)) {
      throw invalidArgument(
        'event.type: must be Capitalized camel case ending in "Event", e.g. "RecordingStartedEvent"',
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
      const c = this.find(appId, conferenceId);
      if (c.ended) throw conferenceEnded(conferenceId);
      const recipients = this.recipients(c);
      const { full, shown } = custom(c, null);
      this.log.debug({ conferenceId, type }, "best-effort event sent");
      this.bus.publish({ appId, conferenceId }, shown, recipients, false, full);
      return recipients.length;
    }
    let sent = 0;
    const result = this.db.transaction(() => {
      const c = this.find(appId, conferenceId);
      if (c.ended) throw conferenceEnded(conferenceId);
      const recipients = this.recipients(c);
      sent = recipients.length;
      const { full, shown: stored } = custom(c, c.version);
      this.repo.appendEvent(c.seq, c.version, stored, this.now());
      this.repo.bumpVersion(c.seq, this.now());
      return { full, stored, recipients };
    })();
    this.log.debug({ conferenceId, type, version: Number(result.stored.conferenceVersion) }, "event sent");
    this.bus.publish({ appId, conferenceId }, result.stored, result.recipients, true, result.full);
    return sent;
  }

  aggregate(appId: string, conferenceId: string): ConferenceAggregate {
    return this.db.transaction(() => {
      const conference = this.find(appId, conferenceId);
      return {
        conference,
        metadata: this.repo.metadata(conference.seq),
        participants: this.repo.participants(conference.seq),
        streams: this.repo.streams(conference.seq),
      };
    })();
  }

  /** Logged events with conferenceVersion >= fromVersion, at most 1000 per answer. */
  events(appId: string, conferenceId: string, fromVersion: number): ConferenceEvent[] {
    const c = this.find(appId, conferenceId);
    return this.repo.eventsSince(c.seq, fromVersion, MAX_EVENTS_PER_ANSWER);
  }

  /**
   * Long-poll: the logged events from `fromVersion` at once if there are any; otherwise
   * waits (up to the configured timeout or until `signal` aborts) for the next event and
   * answers with what the log then holds, or the best-effort event itself; `[]` on timeout.
   */
  async waitForEvents(
    appId: string,
    conferenceId: string,
    fromVersion: number,
    signal: AbortSignal,
    tenantId: string,
  ): Promise<ConferenceEvent[]> {
    const c = this.find(appId, conferenceId);
    this.checkWaiterCaps(appId, conferenceId, tenantId);
    return new Promise<ConferenceEvent[]>((resolve) => {
      let done = false;
      const finish = (events: ConferenceEvent[]) => {
        if (done) return;
        done = true;
        unsubscribe();
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        resolve(events);
      };
      // Subscribe before reading the log so a commit in between is not missed.
      const unsubscribe = this.bus.subscribe(
        { appId, conferenceId },
        (event, logged) => {
          if (!logged) finish([event]);
          else if (event.conferenceVersion === undefined || Number(event.conferenceVersion) >= fromVersion) {
            finish(this.eventsForWaiters(c.seq, fromVersion, event.id));
          }
        },
        tenantId,
      );
      const timer = setTimeout(() => finish([]), this.settings.longPollTimeoutMs);
      const onAbort = () => finish([]);
      signal.addEventListener("abort", onAbort);
      if (signal.aborted) {
        // A listener added to an already-aborted signal never fires (e.g. during shutdown).
        finish([]);
        return;
      }
      const now = this.repo.eventsSince(c.seq, fromVersion, MAX_EVENTS_PER_ANSWER);
      if (now.length > 0) finish(now);
    });
  }

  /** Log reads made while one commit wakes its waiters, shared by waiters with the same cursor. */
  private readonly wakeReads = new Map<string, ConferenceEvent[]>();

  /**
   * The log from `fromVersion` for a waiter being woken. Hundreds of waiters usually hold the
   * same cursor, so the read is made once per waking event and cursor, and forgotten after.
   */
  private eventsForWaiters(seq: number, fromVersion: number, wakingEventId: string): ConferenceEvent[] {
    const key = `${seq}:${fromVersion}:${wakingEventId}`;
    let events = this.wakeReads.get(key);
    if (events === undefined) {
      if (this.wakeReads.size === 0) queueMicrotask(() => this.wakeReads.clear());
      events = this.repo.eventsSince(seq, fromVersion, MAX_EVENTS_PER_ANSWER);
      this.wakeReads.set(key, events);
    }
    return events;
  }

  /** Long-poll waiters and event streams share these caps (429 beyond them). */
  private checkWaiterCaps(appId: string, conferenceId: string, tenantId: string): void {
    if (this.bus.conferenceListeners({ appId, conferenceId }) >= this.settings.maxWaitersPerConference) {
      throw resourceExhausted("too many waiters on this conference");
    }
    if (this.bus.ownerListeners(tenantId) >= this.settings.maxWaitersPerTenant) {
      throw resourceExhausted("too many event waiters for this tenant");
    }
    if (this.bus.allListeners() >= this.settings.maxWaiters) {
      throw resourceExhausted("too many event waiters");
    }
  }

  /**
   * Events from `fromVersion` on (the log replayed a page at a time), then live ones, until
   * `signal` aborts. Live events that arrive during the replay are not sent twice.
   */
  async *watch(
    appId: string,
    conferenceId: string,
    fromVersion: number,
    signal: AbortSignal,
    tenantId: string,
  ): AsyncGenerator<ConferenceEvent> {
    const c = this.find(appId, conferenceId);
    this.checkWaiterCaps(appId, conferenceId, tenantId);
    const queue: ConferenceEvent[] = [];
    let overflowed = false;
    let wake: (() => void) | undefined;
    const unsubscribe = this.bus.subscribe(
      { appId, conferenceId },
      (event) => {
        // A reader that cannot keep up loses its stream rather than our memory.
        if (queue.length >= MAX_QUEUED_PER_STREAM) overflowed = true;
        else queue.push(event);
        wake?.();
      },
      tenantId,
    );
    const onAbort = () => wake?.();
    signal.addEventListener("abort", onAbort);
    try {
      let next = fromVersion;
      const seen = new Set<unknown>();
      for (;;) {
        const page = this.repo.eventsSince(c.seq, next, MAX_EVENTS_PER_ANSWER);
        for (const e of page) {
          if (seen.has(e.id)) continue;
          seen.add(e.id);
          if (e.conferenceVersion !== undefined) next = Math.max(next, Number(e.conferenceVersion) + 1);
          yield e;
        }
        if (page.length < MAX_EVENTS_PER_ANSWER || signal.aborted) break;
      }
      while (!signal.aborted) {
        if (overflowed) throw resourceExhausted("the event stream's reader is too slow");
        while (queue.length > 0) {
          const e = queue.shift() as ConferenceEvent;
          if (seen.has(e.id)) continue;
          if (e.conferenceVersion !== undefined && Number(e.conferenceVersion) < next) continue;
          yield e;
        }
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

  /**
   * An observation about the conference (network indicators): pushed to participants and
   * waiters without a conferenceVersion, neither logged nor versioned.
   */
  observe(ref: ConferenceRef, payload: PayloadInit): void {
    const c = this.repo.get(ref.appId, ref.conferenceId);
    if (c === undefined || c.ended) return;
    this.bus.publish(ref, this.event(c, payload, undefined, null), this.recipients(c), false);
  }

  /** Marks an endpoint's participations HEALTHY or SICK (an observation: no version change). */
  setEndpointState(appId: string, endpointId: string, state: HealthState): void {
    this.repo.setEndpointState(appId, endpointId, state);
  }

  /** Makes an endpoint leave every conference it joined (unregister, keep-alive expiry). */
  leaveAll(appId: string, endpointId: string, userId: string, reason: string): void {
    for (const conferenceId of this.repo.conferencesOfEndpoint(appId, endpointId)) {
      try {
        this.leave(appId, conferenceId, { appId, userId, endpointId }, reason, false);
      } catch (err) {
        this.log.warn({ err, conferenceId, endpointId }, "could not remove endpoint from conference");
      }
    }
  }
}

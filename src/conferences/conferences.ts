/**
 * Conference rules. Every state change runs in one transaction that reads the conference's
 * row locked (so changes of one conference, on any node, run one after the other), applies
 * the change, logs an event whose conferenceVersion is the version before the change, and
 * raises the version by one; listeners hear of it only after the commit. This is the
 * clients' rule: a client at version V processes the event with conferenceVersion V and
 * then expects V+1.
 *
 * The transaction itself is ConferenceChanges.change (conference-changes.ts). Opening,
 * joining, leaving and ending (conference-lifecycle.ts), streams (conference-streams.ts) and
 * custom events (custom-events.ts) have their own modules, which Conferences delegates to;
 * input checks and limits are in conference-inputs.ts.
 */

import type { JsonObject } from "@bufbuild/protobuf";
import type { ConferenceEvent } from "../../gen/rtcplane/conference/v1/events_pb.js";
import { invalidArgument, notFound, permissionDenied } from "../errors.js";
import type { Logger } from "../observability/log.js";
import type { Store } from "../storage/store.js";
import { type Actor, ConferenceChanges, type PayloadInit } from "./conference-changes.js";
import { MAX_KEY, MAX_VALUE, validateJson, validateText } from "./conference-inputs.js";
import { ConferenceLifecycle, type NewConference, type RoomLookup } from "./conference-lifecycle.js";
import type {
  ConferenceMode,
  ConferenceRepository,
  ConferenceRow,
  HealthState,
  Json,
  MetadataRow,
  ParticipantRow,
  PlacedStream,
  StreamRow,
} from "./conference-repository.js";
import { ConferenceStreams } from "./conference-streams.js";
import { ConferenceCustomEvents } from "./custom-events.js";
import type { ConferenceRef, EventBus } from "./event-bus.js";
import { ConferenceEventReaders, type ConferenceSettings } from "./event-readers.js";

export { applyMasks, isoMillis, MAX_ENDPOINTS_PER_USER, validateId } from "./conference-inputs.js";
export type {
  Actor,
  ConferenceMode,
  ConferenceRef,
  ConferenceRow,
  ConferenceSettings,
  HealthState,
  Json,
  MetadataRow,
  ParticipantRow,
  RoomLookup,
  StreamRow,
};

export interface ConferenceAggregate {
  conference: ConferenceRow;
  metadata: MetadataRow[];
  participants: ParticipantRow[];
  streams: StreamRow[];
}

export class Conferences {
  /** Bound to the store; transactions use `this.repo.in(tx)`. */
  private readonly repo: ConferenceRepository;
  /** The transaction every state change runs in, and the lookups the rules share. */
  private readonly changes: ConferenceChanges;
  private readonly streams: ConferenceStreams;
  private readonly lifecycle: ConferenceLifecycle;
  private readonly customEvents: ConferenceCustomEvents;
  private readonly readers: ConferenceEventReaders;

  constructor(
    private readonly store: Store,
    private readonly bus: EventBus,
    rooms: RoomLookup,
    settings: ConferenceSettings,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.changes = new ConferenceChanges(store, bus, log, now);
    this.repo = this.changes.repo;
    this.streams = new ConferenceStreams(this.changes);
    this.lifecycle = new ConferenceLifecycle(this.changes, this.streams, rooms);
    this.customEvents = new ConferenceCustomEvents(this.changes);
    this.readers = new ConferenceEventReaders(this.repo, bus, settings);
  }

  /**
   * Media lives in memory: after a restart no stream is really published any more, so the
   * recorded ones are forgotten. Call once at startup, before serving.
   */
  async forgetStreams(): Promise<void> {
    await this.repo.clearAllStreams();
  }

  /**
   * In a cluster: up to `limit` published streams whose media is on none of `liveNodes`
   * (their node died, or was declared dead); see streamLost.
   */
  streamsNotOn(liveNodes: readonly string[], limit: number): Promise<PlacedStream[]> {
    return this.repo.streamsNotOn(liveNodes, limit);
  }

  /** The app's conference; another app's conference does not exist for the caller. */
  find(appId: string, conferenceId: string): Promise<ConferenceRow> {
    return this.changes.find(appId, conferenceId);
  }

  /** The app's conference, or undefined. */
  lookup(appId: string, conferenceId: string): Promise<ConferenceRow | undefined> {
    return this.repo.get(appId, conferenceId);
  }

  /** The app's running conferences, newest first. */
  running(appId: string, limit: number): Promise<ConferenceRow[]> {
    return this.repo.running(appId, limit);
  }

  async create(appId: string, input: NewConference): Promise<ConferenceRow> {
    return this.lifecycle.create(appId, input);
  }

  /**
   * Joins an endpoint. A USER (enforceUser) joins with at most MAX_ENDPOINTS_PER_USER
   * endpoints, so one token cannot fill a room or force its upgrade alone (ConferenceLifecycle).
   */
  join(appId: string, conferenceId: string, actor: Actor, metadata: Json, enforceUser: boolean): Promise<void> {
    return this.lifecycle.join(appId, conferenceId, actor, metadata, enforceUser);
  }

  /** Leaves, its streams unpublished first (ConferenceLifecycle). */
  leave(appId: string, conferenceId: string, actor: Actor, reason: string, enforceUser: boolean): Promise<void> {
    return this.lifecycle.leave(appId, conferenceId, actor, reason, enforceUser);
  }

  /** Ends the conference; a USER (enforceUser) may end it only as one of its joined endpoints. */
  end(appId: string, conferenceId: string, actor: Actor, reason: string, enforceUser: boolean): Promise<void> {
    return this.lifecycle.end(appId, conferenceId, actor, reason, enforceUser);
  }

  /** Ends a conference if it exists and runs (its room was deleted or expired); no actor. */
  endIfOpen(appId: string, conferenceId: string, reason: string): Promise<void> {
    return this.lifecycle.endIfOpen(appId, conferenceId, reason);
  }

  /** Records a published stream (the SFU already accepted it) and announces it (ConferenceStreams). */
  streamPublished(
    appId: string,
    conferenceId: string,
    actor: Actor,
    stream: StreamRow,
    enforceUser: boolean,
  ): Promise<void> {
    return this.streams.streamPublished(appId, conferenceId, actor, stream, enforceUser);
  }

  /** Forgets a stream and tells everyone, its viewers included (ConferenceStreams). */
  streamUnpublished(
    appId: string,
    conferenceId: string,
    actor: Actor,
    streamId: string,
    enforceUser: boolean,
  ): Promise<void> {
    return this.streams.streamUnpublished(appId, conferenceId, actor, streamId, enforceUser);
  }

  /** The SFU lost a stream (its worker or node died); never rejects (ConferenceStreams). */
  streamLost(
    ref: ConferenceRef,
    endpointId: string,
    streamId: string,
    publisherSick = true,
    onNode?: string,
  ): Promise<void> {
    return this.streams.streamLost(ref, endpointId, streamId, publisherSick, onNode);
  }

  /**
   * The endpoint a USER views as: the named one when it is the user's own joined endpoint
   * (clients may also name the publisher's), else the user's first joined endpoint.
   * PERMISSION_DENIED when the user has joined with none (ConferenceStreams).
   */
  viewerEndpoint(appId: string, conferenceId: string, userId: string, named: string): Promise<string> {
    return this.streams.viewerEndpoint(appId, conferenceId, userId, named);
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
  findStream(appId: string, conferenceId: string, streamId: string): Promise<StreamRow> {
    return this.streams.findStream(appId, conferenceId, streamId);
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
    await this.changes.change(conferenceId, appId, actor, async (repo, c) => {
      if (enforceUser) await this.changes.ownParticipant(repo, c, actor, true);
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
    await this.changes.change(conferenceId, appId, actor, async (repo, c) => {
      const p = await this.changes.ownParticipant(repo, c, actor, enforceUser);
      await repo.setParticipantMetadata(c.seq, p.endpointId, metadata);
      return { payload: { case: "participantMetadataUpdated", value: { newMetadata: metadata as JsonObject } } };
    });
  }

  updateStreamMetadata(
    appId: string,
    conferenceId: string,
    actor: Actor,
    streamId: string,
    metadata: Json,
    enforceUser: boolean,
  ): Promise<void> {
    return this.streams.updateStreamMetadata(appId, conferenceId, actor, streamId, metadata, enforceUser);
  }

  updateStreamBitrate(
    appId: string,
    conferenceId: string,
    actor: Actor,
    streamId: string,
    bitrate: number,
    enforceUser: boolean,
  ): Promise<void> {
    return this.streams.updateStreamBitrate(appId, conferenceId, actor, streamId, bitrate, enforceUser);
  }

  /**
   * A custom event from a SERVICE caller. AT_LEAST_ONCE: logged (masked) and versioned like
   * any change; BEST_EFFORT: only current listeners and push receive it. Returns how many
   * joined endpoints it was sent to (ConferenceCustomEvents).
   */
  sendEvent(appId: string, conferenceId: string, event: Json, masks: readonly string[], qos: string): Promise<number> {
    return this.customEvents.sendEvent(appId, conferenceId, event, masks, qos);
  }

  /**
   * The conference with its metadata, participants and streams, as of one version: its row
   * is locked while the parts are read (on PostgreSQL a transaction's statements would
   * otherwise each see the latest commit), so no change commits in between.
   */
  aggregate(appId: string, conferenceId: string): Promise<ConferenceAggregate> {
    return this.store.transaction(async (tx) => {
      const repo = this.repo.in(tx);
      const conference = await this.changes.lockConference(repo, appId, conferenceId);
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
      const recipients = await this.changes.recipients(this.repo, c);
      this.bus.publish(ref, this.changes.event(c, payload, undefined, null), recipients, false);
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

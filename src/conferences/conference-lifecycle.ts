/**
 * A conference's life: opened (explicitly, or by a rooms-API room's first join), joined and
 * left by endpoints, and ended. Every change runs through ConferenceChanges.change (one
 * transaction, the row locked, the event logged and staged), except the opening, which has
 * no row to lock yet.
 */

import { randomUUID } from "node:crypto";
import type { JsonObject } from "@bufbuild/protobuf";
import {
  alreadyExists,
  DomainError,
  invalidArgument,
  notFound,
  permissionDenied,
  resourceExhausted,
} from "../errors.js";
import type { RoomRecord } from "../rooms/rooms.js";
import type { Actor, Change, ConferenceChanges } from "./conference-changes.js";
import {
  MAX_ENDPOINTS_PER_USER,
  MAX_KEY,
  MAX_REASON,
  MAX_VALUE,
  validateId,
  validateJson,
  validateText,
} from "./conference-inputs.js";
import type { ConferenceMode, ConferenceRepository, ConferenceRow, Json } from "./conference-repository.js";
import type { ConferenceStreams } from "./conference-streams.js";

/** Looks up rooms by id for their conferences (the rooms module's API, not its table). */
/** What a CreateConference asks for. */
export interface NewConference {
  conferenceId?: string;
  creator: string;
  creatorEndpoint: string;
  mode?: string;
  metadata?: Record<string, string>;
}

export interface RoomLookup {
  find(appId: string, roomId: string): Promise<RoomRecord | undefined>;
  /** Counts as a use of the room (its expiry starts again); rejects if it no longer exists. */
  use(appId: string, roomId: string): Promise<unknown>;
}

export class ConferenceLifecycle {
  constructor(
    private readonly changes: ConferenceChanges,
    private readonly streams: ConferenceStreams,
    private readonly rooms: RoomLookup,
  ) {}

  /** Like find, but a rooms-API room without a conference yet gets one (its first use). */
  private async findOrOpenRoom(appId: string, conferenceId: string, actor: Actor): Promise<ConferenceRow> {
    const existing = await this.changes.repo.get(appId, conferenceId);
    if (existing !== undefined) return existing;
    const room = await this.rooms.find(appId, conferenceId);
    if (room === undefined) throw notFound(`conference ${JSON.stringify(conferenceId)} not found`);
    try {
      return await this.create(appId, { conferenceId, creator: actor.userId, creatorEndpoint: actor.endpointId });
    } catch (e) {
      // Another join (on this node or another) opened it meanwhile: join that one.
      if (!(e instanceof DomainError) || e.kind !== "already_exists") throw e;
    }
    return this.changes.find(appId, conferenceId);
  }

  async create(appId: string, input: NewConference): Promise<ConferenceRow> {
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
    const created = await this.changes.store.transaction(async (tx) => {
      const repo = this.changes.repo.in(tx);
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
        now: this.changes.now(),
      });
      for (const [key, value] of metadata) {
        await repo.setMetadata(c.seq, key, value, this.changes.now(), input.creatorEndpoint, input.creator);
      }
      const actor = { appId, userId: input.creator, endpointId: input.creatorEndpoint };
      const event = this.changes.event(c, { case: "created", value: { mode, creator: input.creator } }, actor, null);
      await repo.appendEvent(c.seq, null, event, this.changes.now());
      await this.changes.bus.stage(tx, { appId, conferenceId }, event, []);
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
    await this.changes.change(conferenceId, appId, actor, async (repo, c) => {
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
        joinTimeMs: this.changes.now(),
      });
      return { payload: { case: "joined", value: { metadata: metadata as JsonObject } } };
    });
    // A MESH room becomes SFU when autoUpgradeParticipantCount participants (different users) have joined.
    if (c0.mode !== "P2P" || c0.autoUpgradeCount === null) return;
    await this.changes.change(conferenceId, appId, actor, async (repo, c) => {
      if (c.mode !== "P2P" || c.autoUpgradeCount === null) return undefined;
      if ((await repo.countUsers(c.seq)) < c.autoUpgradeCount) return undefined;
      await repo.setMode(c.seq, "ROUTER");
      return { payload: { case: "modeUpdated", value: { mode: "ROUTER", previousMode: "P2P" } } };
    });
  }

  async leave(appId: string, conferenceId: string, actor: Actor, reason: string, enforceUser: boolean): Promise<void> {
    validateText("reason", reason, MAX_REASON);
    // Its streams go first, each with its own event, so viewers stop viewing them.
    const c0 = await this.changes.find(appId, conferenceId);
    const leaving = await this.changes.repo.participant(c0.seq, actor.endpointId);
    if (leaving !== undefined && (!enforceUser || leaving.userId === actor.userId)) {
      for (const s of (await this.changes.repo.streams(c0.seq)).filter((s) => s.endpointId === actor.endpointId)) {
        // A stream lost meanwhile (streamLost) is simply not unpublished twice.
        await this.streams.unpublish(
          appId,
          conferenceId,
          { ...actor, userId: leaving.userId },
          s.streamId,
          false,
          true,
        );
      }
    }
    await this.changes.change(
      conferenceId,
      appId,
      actor,
      async (repo, c) => {
        const p = await this.changes.ownParticipant(repo, c, actor, enforceUser);
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
    await this.changes.change(conferenceId, appId, actor, (repo, c) =>
      this.ending(repo, c, actor, reason, enforceUser),
    );
  }

  /** Ends a conference if it exists and runs (its room was deleted or expired); no actor. */
  async endIfOpen(appId: string, conferenceId: string, reason: string): Promise<void> {
    const c0 = await this.changes.repo.get(appId, conferenceId);
    if (c0 === undefined || c0.ended) return;
    validateText("reason", reason, MAX_REASON);
    const actor = { appId, userId: "", endpointId: "" };
    try {
      // Checked again under the lock: whoever ends it first logs the one "ended" event.
      await this.changes.change(
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
}

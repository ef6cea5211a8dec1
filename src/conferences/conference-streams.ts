/**
 * The conference's streams: published and unpublished as the SFU accepts or loses them,
 * their metadata and bitrate, and the lookups viewers make. Every change runs through
 * ConferenceChanges.change (one transaction, the row locked, the event logged and staged).
 */

import type { JsonObject } from "@bufbuild/protobuf";
import { invalidArgument, notFound, permissionDenied } from "../errors.js";
import type { Actor, ConferenceChanges } from "./conference-changes.js";
import { validateJson } from "./conference-inputs.js";
import type { ConferenceRepository, ConferenceRow, Json, StreamRow } from "./conference-repository.js";
import type { ConferenceRef } from "./event-bus.js";

export class ConferenceStreams {
  constructor(private readonly changes: ConferenceChanges) {}

  /** Records a published stream (the SFU already accepted it) and announces it. */
  async streamPublished(
    appId: string,
    conferenceId: string,
    actor: Actor,
    stream: StreamRow,
    enforceUser: boolean,
  ): Promise<void> {
    validateJson("metadata", stream.metadata);
    await this.changes.change(conferenceId, appId, actor, async (repo, c) => {
      await this.changes.ownParticipant(repo, c, actor, enforceUser);
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

  /**
   * streamUnpublished; with `ifPresent`, a stream the endpoint no longer publishes changes
   * nothing, nor does one that is now on another media node than `onNode` (published again).
   */
  async unpublish(
    appId: string,
    conferenceId: string,
    actor: Actor,
    streamId: string,
    enforceUser: boolean,
    ifPresent: boolean,
    onNode?: string,
  ): Promise<void> {
    await this.changes.change(
      conferenceId,
      appId,
      actor,
      async (repo, c) => {
        if (ifPresent) {
          const present = await repo.stream(c.seq, streamId);
          if (present?.endpointId !== actor.endpointId) return undefined;
          if (onNode !== undefined && present.mediaNode !== onNode) return undefined;
        }
        const s = await this.ownStream(repo, c, actor, streamId, enforceUser);
        await repo.removeStream(c.seq, streamId);
        return { payload: { case: "streamUnpublished", value: { streamId, streamType: s.type } } };
      },
      true,
    );
  }

  /**
   * The SFU lost a stream (its worker or its node died): the stream is unpublished with the
   * usual event and its publisher is marked SICK until it publishes again or keeps alive.
   * With `onNode`, only while the stream is still the one recorded on that media node. Never
   * rejects (media calls it from its own events): failures are logged.
   */
  async streamLost(
    ref: ConferenceRef,
    endpointId: string,
    streamId: string,
    publisherSick = true,
    onNode?: string,
  ): Promise<void> {
    const { appId, conferenceId } = ref;
    const { repo, log } = this.changes;
    try {
      const c = await repo.get(appId, conferenceId);
      const p = c && (await repo.participant(c.seq, endpointId));
      if (c === undefined || p === undefined) return;
      const s = await repo.stream(c.seq, streamId);
      if (s === undefined || s.endpointId !== endpointId || (onNode !== undefined && s.mediaNode !== onNode)) return;
      try {
        // A stream unpublished meanwhile (by its publisher, or a sweep on another node) stays so.
        await this.unpublish(
          c.appId,
          conferenceId,
          { appId: c.appId, userId: p.userId, endpointId },
          streamId,
          false,
          true,
          onNode,
        );
      } catch (err) {
        log.warn({ err, conferenceId, streamId }, "could not record a lost stream");
      }
      // Conferences.setEndpointState: an observation, no version change.
      if (publisherSick) await repo.setEndpointState(appId, endpointId, "SICK");
    } catch (err) {
      log.warn({ err, conferenceId, streamId }, "could not record a lost stream");
    }
  }

  /**
   * The endpoint a USER views as: the named one when it is the user's own joined endpoint
   * (clients may also name the publisher's), else the user's first joined endpoint.
   * PERMISSION_DENIED when the user has joined with none: viewing is for participants.
   */
  async viewerEndpoint(appId: string, conferenceId: string, userId: string, named: string): Promise<string> {
    const c = await this.changes.find(appId, conferenceId);
    const own = await this.changes.repo.endpointsOfUser(c.seq, userId);
    if (own.includes(named)) return named;
    const first = own[0];
    if (first === undefined) throw permissionDenied("join the conference before viewing its streams");
    return first;
  }

  /** A published stream of the conference, by id (viewers may name any endpoint). */
  async findStream(appId: string, conferenceId: string, streamId: string): Promise<StreamRow> {
    const c = await this.changes.find(appId, conferenceId);
    const s = await this.changes.repo.stream(c.seq, streamId);
    if (s === undefined) throw notFound(`stream ${JSON.stringify(streamId)} is not published in this conference`);
    return s;
  }

  private async ownStream(
    repo: ConferenceRepository,
    c: ConferenceRow,
    actor: Actor,
    streamId: string,
    enforceUser: boolean,
  ): Promise<StreamRow> {
    await this.changes.ownParticipant(repo, c, actor, enforceUser);
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
    await this.changes.change(conferenceId, appId, actor, async (repo, c) => {
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
    await this.changes.change(conferenceId, appId, actor, async (repo, c) => {
      const s = await this.ownStream(repo, c, actor, streamId, enforceUser);
      if (s.videoBitrate === bitrate) return undefined;
      await repo.setStreamBitrate(c.seq, s.streamId, bitrate);
      return { payload: { case: "streamBitrateUpdated", value: { streamId, videoBitrate: bitrate } } };
    });
  }
}

/**
 * The only module that reads or writes the conference aggregate's tables: conferences,
 * their metadata, participants, streams and event log. JSON columns hold arbitrary
 * client metadata; the log holds typed events as their canonical proto JSON.
 */
import { fromJson, type JsonValue, toJsonString } from "@bufbuild/protobuf";
import { type ConferenceEvent, ConferenceEventSchema } from "../../gen/rtcplane/conference/v1/events_pb.js";
import { conferenceEventFromLegacy } from "../events/legacy-json.js";
import type { Db } from "../storage/database.js";

export type ConferenceMode = "P2P" | "ROUTER";
export type HealthState = "HEALTHY" | "SICK";
export type StreamType = "CAM" | "MIC" | "MIC_AND_CAM" | "SCREEN";
export type Json = { [key: string]: unknown };

export interface ConferenceRow {
  seq: number;
  conferenceId: string;
  appId: string;
  roomId: string | null;
  mode: ConferenceMode;
  creator: string;
  creatorEndpoint: string;
  maxParticipants: number | null;
  autoUpgradeCount: number | null;
  version: number;
  ended: boolean;
  endReason: string | null;
  createTimeMs: number;
}

export interface MetadataRow {
  key: string;
  value: string;
  lastModifiedMs: number;
  userEndpointId: string;
  userId: string;
}

export interface ParticipantRow {
  endpointId: string;
  userId: string;
  metadata: Json;
  state: HealthState;
  joinTimeMs: number;
}

export interface StreamRow {
  streamId: string;
  endpointId: string;
  type: StreamType;
  metadata: Json;
  videoBitrate: number;
}

interface RawConference {
  seq: number;
  conference_id: string;
  app_id: string;
  room_id: string | null;
  mode: ConferenceMode;
  creator: string;
  creator_endpoint: string;
  max_participants: number | null;
  auto_upgrade_count: number | null;
  version: number;
  ended: number;
  end_reason: string | null;
  create_time_ms: number;
}

function conferenceFromRaw(r: RawConference): ConferenceRow {
  return {
    seq: r.seq,
    conferenceId: r.conference_id,
    appId: r.app_id,
    roomId: r.room_id,
    mode: r.mode,
    creator: r.creator,
    creatorEndpoint: r.creator_endpoint,
    maxParticipants: r.max_participants,
    autoUpgradeCount: r.auto_upgrade_count,
    version: r.version,
    ended: r.ended !== 0,
    endReason: r.end_reason,
    createTimeMs: r.create_time_ms,
  };
}

const CONFERENCE_COLUMNS = `seq, conference_id, app_id, room_id, mode, creator, creator_endpoint, max_participants,
  auto_upgrade_count, version, ended, end_reason, create_time_ms`;

export interface NewConference {
  conferenceId: string;
  appId: string;
  roomId: string | null;
  mode: ConferenceMode;
  creator: string;
  creatorEndpoint: string;
  maxParticipants: number | null;
  autoUpgradeCount: number | null;
  now: number;
}

export class ConferenceRepository {
  private readonly s;
  private readonly decoded = new Map<number, { body: string; event: ConferenceEvent }>();

  constructor(db: Db) {
    this.s = {
      insert: db.prepare(
        `INSERT INTO conferences (conference_id, app_id, room_id, mode, creator, creator_endpoint, max_participants,
           auto_upgrade_count, version, create_time_ms, update_time_ms)
         VALUES (@conferenceId, @appId, @roomId, @mode, @creator, @creatorEndpoint, @maxParticipants,
           @autoUpgradeCount, 0, @now, @now)
         RETURNING ${CONFERENCE_COLUMNS}`,
      ),
      byId: db.prepare(`SELECT ${CONFERENCE_COLUMNS} FROM conferences WHERE app_id = ? AND conference_id = ?`),
      running: db.prepare(
        `SELECT ${CONFERENCE_COLUMNS} FROM conferences WHERE app_id = ? AND ended = 0 ORDER BY seq DESC LIMIT ?`,
      ),
      bumpVersion: db.prepare("UPDATE conferences SET version = version + 1, update_time_ms = ? WHERE seq = ?"),
      setMode: db.prepare("UPDATE conferences SET mode = ? WHERE seq = ?"),
      end: db.prepare("UPDATE conferences SET ended = 1, end_reason = ? WHERE seq = ?"),
      metadata: db.prepare(
        "SELECT key, value, last_modified_ms, user_endpoint_id, user_id FROM conference_metadata WHERE conference_seq = ? ORDER BY key",
      ),
      setMetadata: db.prepare(
        `INSERT INTO conference_metadata (conference_seq, key, value, last_modified_ms, user_endpoint_id, user_id)
         VALUES (@seq, @key, @value, @now, @endpointId, @userId)
         ON CONFLICT (conference_seq, key) DO UPDATE SET value = excluded.value,
           last_modified_ms = excluded.last_modified_ms, user_endpoint_id = excluded.user_endpoint_id,
           user_id = excluded.user_id`,
      ),
      removeMetadata: db.prepare("DELETE FROM conference_metadata WHERE conference_seq = ? AND key = ?"),
      participants: db.prepare(
        "SELECT endpoint_id, user_id, metadata, state, join_time_ms FROM participants WHERE conference_seq = ? ORDER BY join_time_ms, endpoint_id",
      ),
      participant: db.prepare(
        "SELECT endpoint_id, user_id, metadata, state, join_time_ms FROM participants WHERE conference_seq = ? AND endpoint_id = ?",
      ),
      countParticipants: db.prepare("SELECT count(*) AS n FROM participants WHERE conference_seq = ?"),
      countUsers: db.prepare("SELECT count(DISTINCT user_id) AS n FROM participants WHERE conference_seq = ?"),
      endpointsOfUser: db.prepare(
        "SELECT endpoint_id FROM participants WHERE conference_seq = ? AND user_id = ? ORDER BY join_time_ms, endpoint_id",
      ),
      addParticipant: db.prepare(
        `INSERT INTO participants (conference_seq, endpoint_id, user_id, metadata, state, join_time_ms)
         VALUES (?, ?, ?, ?, ?, ?)`,
      ),
      removeParticipant: db.prepare("DELETE FROM participants WHERE conference_seq = ? AND endpoint_id = ?"),
      setParticipantMetadata: db.prepare(
        "UPDATE participants SET metadata = ? WHERE conference_seq = ? AND endpoint_id = ?",
      ),
      setParticipantState: db.prepare(
        `UPDATE participants SET state = @state WHERE endpoint_id = @endpointId AND state != @state
           AND conference_seq IN (SELECT seq FROM conferences WHERE app_id = @appId)`,
      ),
      conferencesOfEndpoint: db.prepare(
        `SELECT c.conference_id AS conference_id FROM participants p
         JOIN conferences c ON c.seq = p.conference_seq WHERE p.endpoint_id = ? AND c.app_id = ?`,
      ),
      streams: db.prepare(
        "SELECT stream_id, endpoint_id, type, metadata, video_bitrate FROM streams WHERE conference_seq = ? ORDER BY stream_id",
      ),
      stream: db.prepare(
        "SELECT stream_id, endpoint_id, type, metadata, video_bitrate FROM streams WHERE conference_seq = ? AND stream_id = ?",
      ),
      setStreamMetadata: db.prepare("UPDATE streams SET metadata = ? WHERE conference_seq = ? AND stream_id = ?"),
      setStreamBitrate: db.prepare("UPDATE streams SET video_bitrate = ? WHERE conference_seq = ? AND stream_id = ?"),
      addStream: db.prepare(
        `INSERT INTO streams (conference_seq, stream_id, endpoint_id, type, metadata, video_bitrate)
         VALUES (?, ?, ?, ?, ?, ?)`,
      ),
      removeStream: db.prepare("DELETE FROM streams WHERE conference_seq = ? AND stream_id = ?"),
      clearAllStreams: db.prepare("DELETE FROM streams"),
      removeStreamsOf: db.prepare("DELETE FROM streams WHERE conference_seq = ? AND endpoint_id = ?"),
      removeAllStreams: db.prepare("DELETE FROM streams WHERE conference_seq = ?"),
      appendEvent: db.prepare(
        "INSERT INTO conference_events (conference_seq, conference_version, body, create_time_ms) VALUES (?, ?, ?, ?)",
      ),
      eventsSince: db.prepare(
        `SELECT seq, body FROM conference_events WHERE conference_seq = ?
           AND (conference_version >= ? OR (conference_version IS NULL AND ? <= 0)) ORDER BY seq LIMIT ?`,
      ),
    };
  }

  insert(c: NewConference): ConferenceRow {
    return conferenceFromRaw(this.s.insert.get(c) as RawConference);
  }

  get(appId: string, conferenceId: string): ConferenceRow | undefined {
    const r = this.s.byId.get(appId, conferenceId) as RawConference | undefined;
    return r && conferenceFromRaw(r);
  }

  /** The app's conferences that have not ended, newest first. */
  running(appId: string, limit: number): ConferenceRow[] {
    return (this.s.running.all(appId, limit) as RawConference[]).map(conferenceFromRaw);
  }

  bumpVersion(seq: number, now: number): void {
    this.s.bumpVersion.run(now, seq);
  }

  setMode(seq: number, mode: ConferenceMode): void {
    this.s.setMode.run(mode, seq);
  }

  end(seq: number, reason: string): void {
    this.s.end.run(reason, seq);
  }

  metadata(seq: number): MetadataRow[] {
    return (
      this.s.metadata.all(seq) as {
        key: string;
        value: string;
        last_modified_ms: number;
        user_endpoint_id: string;
        user_id: string;
      }[]
    ).map((r) => ({
      key: r.key,
      value: r.value,
      lastModifiedMs: r.last_modified_ms,
      userEndpointId: r.user_endpoint_id,
      userId: r.user_id,
    }));
  }

  setMetadata(seq: number, key: string, value: string, now: number, endpointId: string, userId: string): void {
    this.s.setMetadata.run({ seq, key, value, now, endpointId, userId });
  }

  removeMetadata(seq: number, key: string): boolean {
    return this.s.removeMetadata.run(seq, key).changes > 0;
  }

  participants(seq: number): ParticipantRow[] {
    return (this.s.participants.all(seq) as RawParticipant[]).map(participantFromRaw);
  }

  participant(seq: number, endpointId: string): ParticipantRow | undefined {
    const r = this.s.participant.get(seq, endpointId) as RawParticipant | undefined;
    return r && participantFromRaw(r);
  }

  countParticipants(seq: number): number {
    return (this.s.countParticipants.get(seq) as { n: number }).n;
  }

  /** How many different users have joined. */
  countUsers(seq: number): number {
    return (this.s.countUsers.get(seq) as { n: number }).n;
  }

  /** The endpoints a user has joined with, in join order. */
  endpointsOfUser(seq: number, userId: string): string[] {
    return (this.s.endpointsOfUser.all(seq, userId) as { endpoint_id: string }[]).map((r) => r.endpoint_id);
  }

  addParticipant(seq: number, p: ParticipantRow): void {
    this.s.addParticipant.run(seq, p.endpointId, p.userId, JSON.stringify(p.metadata), p.state, p.joinTimeMs);
  }

  removeParticipant(seq: number, endpointId: string): void {
    this.s.removeParticipant.run(seq, endpointId);
    this.s.removeStreamsOf.run(seq, endpointId);
  }

  setParticipantMetadata(seq: number, endpointId: string, metadata: Json): void {
    this.s.setParticipantMetadata.run(JSON.stringify(metadata), seq, endpointId);
  }

  /** Sets the health of an app's endpoint in every conference it is in; returns how many changed. */
  setEndpointState(appId: string, endpointId: string, state: HealthState): number {
    return this.s.setParticipantState.run({ appId, endpointId, state }).changes;
  }

  /** The ids of the app's conferences the endpoint has joined. */
  conferencesOfEndpoint(appId: string, endpointId: string): string[] {
    return (this.s.conferencesOfEndpoint.all(endpointId, appId) as { conference_id: string }[]).map(
      (r) => r.conference_id,
    );
  }

  streams(seq: number): StreamRow[] {
    return (this.s.streams.all(seq) as RawStream[]).map(streamFromRaw);
  }

  stream(seq: number, streamId: string): StreamRow | undefined {
    const r = this.s.stream.get(seq, streamId) as RawStream | undefined;
    return r && streamFromRaw(r);
  }

  setStreamMetadata(seq: number, streamId: string, metadata: Json): void {
    this.s.setStreamMetadata.run(JSON.stringify(metadata), seq, streamId);
  }

  setStreamBitrate(seq: number, streamId: string, bitrate: number): void {
    this.s.setStreamBitrate.run(bitrate, seq, streamId);
  }

  addStream(seq: number, s: StreamRow): void {
    this.s.addStream.run(seq, s.streamId, s.endpointId, s.type, JSON.stringify(s.metadata), s.videoBitrate);
  }

  removeStream(seq: number, streamId: string): void {
    this.s.removeStream.run(seq, streamId);
  }

  /** Media lives in memory: after a restart no stream is really published any more. */
  clearAllStreams(): void {
    this.s.clearAllStreams.run();
  }

  removeAllStreams(seq: number): void {
    this.s.removeAllStreams.run(seq);
  }

  /** Logs a typed event as its canonical proto JSON. */
  appendEvent(seq: number, conferenceVersion: number | null, event: ConferenceEvent, now: number): void {
    this.s.appendEvent.run(seq, conferenceVersion, toJsonString(ConferenceEventSchema, event), now);
  }

  /** Logged events with conferenceVersion >= fromVersion (creation events too when fromVersion <= 0). */
  eventsSince(seq: number, fromVersion: number, limit: number): ConferenceEvent[] {
    return (this.s.eventsSince.all(seq, fromVersion, fromVersion, limit) as { seq: number; body: string }[]).map(
      (r) => {
        // Row ids can be reused after deletions, so a hit must hold the same text.
        const hit = this.decoded.get(r.seq);
        if (hit !== undefined && hit.body === r.body) return hit.event;
        const event = readEvent(r.body);
        if (this.decoded.size >= DECODED_EVENTS) this.decoded.delete(this.decoded.keys().next().value as number);
        this.decoded.set(r.seq, { body: r.body, event });
        return event;
      },
    );
  }
}

/**
 * Logged events decoded lately, by row: events never change, and the recent ones are read
 * by every long-poll and stream of their conference, so each row is parsed once (the
 * legacy rendering is kept per event object too). Oldest first out.
 */
const DECODED_EVENTS = 10_000;

/**
 * A logged event. Rows written before the log was typed hold the legacy JSON (it has a
 * top-level "type", which the proto JSON of ConferenceEvent never has) and are read through
 * the legacy reader.
 */
function readEvent(body: string): ConferenceEvent {
  const json = JSON.parse(body) as Json;
  if (typeof json.type === "string") return conferenceEventFromLegacy(json);
  return fromJson(ConferenceEventSchema, json as JsonValue, { ignoreUnknownFields: true });
}

interface RawParticipant {
  endpoint_id: string;
  user_id: string;
  metadata: string;
  state: HealthState;
  join_time_ms: number;
}

function participantFromRaw(r: RawParticipant): ParticipantRow {
  return {
    endpointId: r.endpoint_id,
    userId: r.user_id,
    metadata: JSON.parse(r.metadata) as Json,
    state: r.state,
    joinTimeMs: r.join_time_ms,
  };
}

interface RawStream {
  stream_id: string;
  endpoint_id: string;
  type: StreamType;
  metadata: string;
  video_bitrate: number;
}

function streamFromRaw(r: RawStream): StreamRow {
  return {
    streamId: r.stream_id,
    endpointId: r.endpoint_id,
    type: r.type,
    metadata: JSON.parse(r.metadata) as Json,
    videoBitrate: r.video_bitrate,
  };
}

/**
 * The only module that reads or writes the conference aggregate's tables: conferences,
 * their metadata, participants, streams and event log. JSON columns hold arbitrary
 * client metadata; the log holds typed events as their canonical proto JSON.
 */
import { fromJson, type JsonValue, toJsonString } from "@bufbuild/protobuf";
import { type ConferenceEvent, ConferenceEventSchema } from "../../gen/rtcplane/conference/v1/events_pb.js";
import { conferenceEventFromLegacy } from "../events/legacy-json.js";
import { PLAN_EACH_TIME, type Queryable } from "../storage/store.js";

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
  /** The cluster node whose SFU holds the stream's media (unset on one node). */
  mediaNode?: string | undefined;
}

/** A published stream, wherever it is (see ConferenceRepository.streamsNotOn). */
export interface PlacedStream {
  appId: string;
  conferenceId: string;
  endpointId: string;
  streamId: string;
  mediaNode: string;
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

const INSERT = `INSERT INTO conferences (conference_id, app_id, room_id, mode, creator, creator_endpoint, max_participants,
    auto_upgrade_count, version, create_time_ms, update_time_ms)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)
  RETURNING ${CONFERENCE_COLUMNS}`;
const BY_ID = `SELECT ${CONFERENCE_COLUMNS} FROM conferences WHERE app_id = ? AND conference_id = ?`;
const RUNNING = `SELECT ${CONFERENCE_COLUMNS} FROM conferences WHERE app_id = ? AND ended = 0 ORDER BY seq DESC LIMIT ?`;
const BUMP_VERSION = "UPDATE conferences SET version = version + 1, update_time_ms = ? WHERE seq = ? RETURNING version";
const SET_MODE = "UPDATE conferences SET mode = ? WHERE seq = ?";
const END = "UPDATE conferences SET ended = 1, end_reason = ? WHERE seq = ?";
const METADATA =
  "SELECT key, value, last_modified_ms, user_endpoint_id, user_id FROM conference_metadata WHERE conference_seq = ? ORDER BY key";
const SET_METADATA = `INSERT INTO conference_metadata (conference_seq, key, value, last_modified_ms, user_endpoint_id, user_id)
  VALUES (?, ?, ?, ?, ?, ?)
  ON CONFLICT (conference_seq, key) DO UPDATE SET value = excluded.value,
    last_modified_ms = excluded.last_modified_ms, user_endpoint_id = excluded.user_endpoint_id,
    user_id = excluded.user_id`;
const REMOVE_METADATA = "DELETE FROM conference_metadata WHERE conference_seq = ? AND key = ?";
const PARTICIPANTS =
  "SELECT endpoint_id, user_id, metadata, state, join_time_ms FROM participants WHERE conference_seq = ? ORDER BY join_time_ms, endpoint_id";
const PARTICIPANT =
  "SELECT endpoint_id, user_id, metadata, state, join_time_ms FROM participants WHERE conference_seq = ? AND endpoint_id = ?";
const COUNT_PARTICIPANTS = "SELECT count(*) AS n FROM participants WHERE conference_seq = ?";
const COUNT_USERS = "SELECT count(DISTINCT user_id) AS n FROM participants WHERE conference_seq = ?";
const ENDPOINTS_OF_USER =
  "SELECT endpoint_id FROM participants WHERE conference_seq = ? AND user_id = ? ORDER BY join_time_ms, endpoint_id";
const ADD_PARTICIPANT = `INSERT INTO participants (conference_seq, endpoint_id, user_id, metadata, state, join_time_ms)
  VALUES (?, ?, ?, ?, ?, ?)`;
const REMOVE_PARTICIPANT = "DELETE FROM participants WHERE conference_seq = ? AND endpoint_id = ?";
const SET_PARTICIPANT_METADATA = "UPDATE participants SET metadata = ? WHERE conference_seq = ? AND endpoint_id = ?";
const SET_PARTICIPANT_STATE = `UPDATE participants SET state = ? WHERE endpoint_id = ? AND state != ?
  AND conference_seq IN (SELECT seq FROM conferences WHERE app_id = ?)`;
const CONFERENCES_OF_ENDPOINT = `SELECT c.conference_id AS conference_id FROM participants p
  JOIN conferences c ON c.seq = p.conference_seq WHERE p.endpoint_id = ? AND c.app_id = ?`;
const STREAM_COLUMNS = "stream_id, endpoint_id, type, metadata, video_bitrate, media_node";
const STREAMS = `SELECT ${STREAM_COLUMNS} FROM streams WHERE conference_seq = ? ORDER BY stream_id`;
const STREAM = `SELECT ${STREAM_COLUMNS} FROM streams WHERE conference_seq = ? AND stream_id = ?`;
const SET_STREAM_METADATA = "UPDATE streams SET metadata = ? WHERE conference_seq = ? AND stream_id = ?";
const SET_STREAM_BITRATE = "UPDATE streams SET video_bitrate = ? WHERE conference_seq = ? AND stream_id = ?";
const ADD_STREAM = `INSERT INTO streams (conference_seq, stream_id, endpoint_id, type, metadata, video_bitrate, media_node)
  VALUES (?, ?, ?, ?, ?, ?, ?)`;
/** Streams held by a node, except those of `?…` (the live nodes); list appended. */
const STREAMS_NOT_ON = `SELECT c.app_id AS app_id, c.conference_id AS conference_id, s.endpoint_id AS endpoint_id,
  s.stream_id AS stream_id, s.media_node AS media_node
  FROM streams s JOIN conferences c ON c.seq = s.conference_seq WHERE s.media_node IS NOT NULL`;
const REMOVE_STREAM = "DELETE FROM streams WHERE conference_seq = ? AND stream_id = ?";
const CLEAR_ALL_STREAMS = "DELETE FROM streams";
const REMOVE_STREAMS_OF = "DELETE FROM streams WHERE conference_seq = ? AND endpoint_id = ?";
const REMOVE_ALL_STREAMS = "DELETE FROM streams WHERE conference_seq = ?";
const APPEND_EVENT =
  "INSERT INTO conference_events (conference_seq, conference_version, body, create_time_ms) VALUES (?, ?, ?, ?)";
/** The second parameter is 1 when creation events (which have no version) are wanted too. */
const EVENTS_SINCE = `${PLAN_EACH_TIME}SELECT seq, body FROM conference_events WHERE conference_seq = ?
  AND (conference_version >= ? OR (conference_version IS NULL AND ? = 1)) ORDER BY seq LIMIT ?`;

/** Cursors beyond what a BIGINT holds match the same rows as these (versions stay far below). */
const MAX_CURSOR = Number.MAX_SAFE_INTEGER;

type DecodedEvents = Map<number, { body: string; event: ConferenceEvent }>;

export class ConferenceRepository {
  /**
   * `decoded` is shared with the repositories `in()` makes, so transactions and plain reads
   * use one cache.
   */
  constructor(
    private readonly q: Queryable,
    private readonly decoded: DecodedEvents = new Map(),
  ) {}

  /** The same repository over `q` (a transaction). */
  in(q: Queryable): ConferenceRepository {
    return new ConferenceRepository(q, this.decoded);
  }

  async insert(c: NewConference): Promise<ConferenceRow> {
    const r = await this.q.get<RawConference>(INSERT, [
      c.conferenceId,
      c.appId,
      c.roomId,
      c.mode,
      c.creator,
      c.creatorEndpoint,
      c.maxParticipants,
      c.autoUpgradeCount,
      c.now,
      c.now,
    ]);
    if (r === undefined) throw new Error("INSERT … RETURNING returned no row");
    return conferenceFromRaw(r);
  }

  async get(appId: string, conferenceId: string): Promise<ConferenceRow | undefined> {
    const r = await this.q.get<RawConference>(BY_ID, [appId, conferenceId]);
    return r && conferenceFromRaw(r);
  }

  /**
   * Like get, for a transaction that will change the conference: `forUpdate` (the store's)
   * locks its row until the transaction ends, so concurrent changes of one conference (on
   * any node) run one after the other and each sees the version the previous one left.
   */
  async lock(appId: string, conferenceId: string, forUpdate: string): Promise<ConferenceRow | undefined> {
    const r = await this.q.get<RawConference>(BY_ID + forUpdate, [appId, conferenceId]);
    return r && conferenceFromRaw(r);
  }

  /** The app's conferences that have not ended, newest first. */
  async running(appId: string, limit: number): Promise<ConferenceRow[]> {
    return (await this.q.all<RawConference>(RUNNING, [appId, limit])).map(conferenceFromRaw);
  }

  /** Raises the version by one; resolves to the new version. */
  async bumpVersion(seq: number, now: number): Promise<number> {
    const r = await this.q.get<{ version: number }>(BUMP_VERSION, [now, seq]);
    if (r === undefined) throw new Error(`conference ${seq} is gone`);
    return r.version;
  }

  async setMode(seq: number, mode: ConferenceMode): Promise<void> {
    await this.q.run(SET_MODE, [mode, seq]);
  }

  async end(seq: number, reason: string): Promise<void> {
    await this.q.run(END, [reason, seq]);
  }

  async metadata(seq: number): Promise<MetadataRow[]> {
    const rows = await this.q.all<{
      key: string;
      value: string;
      last_modified_ms: number;
      user_endpoint_id: string;
      user_id: string;
    }>(METADATA, [seq]);
    return rows.map((r) => ({
      key: r.key,
      value: r.value,
      lastModifiedMs: r.last_modified_ms,
      userEndpointId: r.user_endpoint_id,
      userId: r.user_id,
    }));
  }

  async setMetadata(
    seq: number,
    key: string,
    value: string,
    now: number,
    endpointId: string,
    userId: string,
  ): Promise<void> {
    await this.q.run(SET_METADATA, [seq, key, value, now, endpointId, userId]);
  }

  async removeMetadata(seq: number, key: string): Promise<boolean> {
    return (await this.q.run(REMOVE_METADATA, [seq, key])) > 0;
  }

  async participants(seq: number): Promise<ParticipantRow[]> {
    return (await this.q.all<RawParticipant>(PARTICIPANTS, [seq])).map(participantFromRaw);
  }

  async participant(seq: number, endpointId: string): Promise<ParticipantRow | undefined> {
    const r = await this.q.get<RawParticipant>(PARTICIPANT, [seq, endpointId]);
    return r && participantFromRaw(r);
  }

  async countParticipants(seq: number): Promise<number> {
    return (await this.q.get<{ n: number }>(COUNT_PARTICIPANTS, [seq]))?.n ?? 0;
  }

  /** How many different users have joined. */
  async countUsers(seq: number): Promise<number> {
    return (await this.q.get<{ n: number }>(COUNT_USERS, [seq]))?.n ?? 0;
  }

  /** The endpoints a user has joined with, in join order. */
  async endpointsOfUser(seq: number, userId: string): Promise<string[]> {
    return (await this.q.all<{ endpoint_id: string }>(ENDPOINTS_OF_USER, [seq, userId])).map((r) => r.endpoint_id);
  }

  async addParticipant(seq: number, p: ParticipantRow): Promise<void> {
    await this.q.run(ADD_PARTICIPANT, [seq, p.endpointId, p.userId, JSON.stringify(p.metadata), p.state, p.joinTimeMs]);
  }

  /** Removes a participant and its streams (call it in a transaction). */
  async removeParticipant(seq: number, endpointId: string): Promise<void> {
    await this.q.run(REMOVE_PARTICIPANT, [seq, endpointId]);
    await this.q.run(REMOVE_STREAMS_OF, [seq, endpointId]);
  }

  async setParticipantMetadata(seq: number, endpointId: string, metadata: Json): Promise<void> {
    await this.q.run(SET_PARTICIPANT_METADATA, [JSON.stringify(metadata), seq, endpointId]);
  }

  /** Sets the health of an app's endpoint in every conference it is in; returns how many changed. */
  async setEndpointState(appId: string, endpointId: string, state: HealthState): Promise<number> {
    return await this.q.run(SET_PARTICIPANT_STATE, [state, endpointId, state, appId]);
  }

  /** The ids of the app's conferences the endpoint has joined. */
  async conferencesOfEndpoint(appId: string, endpointId: string): Promise<string[]> {
    const rows = await this.q.all<{ conference_id: string }>(CONFERENCES_OF_ENDPOINT, [endpointId, appId]);
    return rows.map((r) => r.conference_id);
  }

  async streams(seq: number): Promise<StreamRow[]> {
    return (await this.q.all<RawStream>(STREAMS, [seq])).map(streamFromRaw);
  }

  async stream(seq: number, streamId: string): Promise<StreamRow | undefined> {
    const r = await this.q.get<RawStream>(STREAM, [seq, streamId]);
    return r && streamFromRaw(r);
  }

  async setStreamMetadata(seq: number, streamId: string, metadata: Json): Promise<void> {
    await this.q.run(SET_STREAM_METADATA, [JSON.stringify(metadata), seq, streamId]);
  }

  async setStreamBitrate(seq: number, streamId: string, bitrate: number): Promise<void> {
    await this.q.run(SET_STREAM_BITRATE, [bitrate, seq, streamId]);
  }

  async addStream(seq: number, s: StreamRow): Promise<void> {
    const { streamId, endpointId, type, metadata, videoBitrate, mediaNode } = s;
    await this.q.run(ADD_STREAM, [
      seq,
      streamId,
      endpointId,
      type,
      JSON.stringify(metadata),
      videoBitrate,
      mediaNode ?? null,
    ]);
  }

  /** Up to `limit` streams whose media is on a node other than `nodes` (the live ones). */
  async streamsNotOn(nodes: readonly string[], limit: number): Promise<PlacedStream[]> {
    const except = nodes.length === 0 ? "" : ` AND s.media_node NOT IN (${nodes.map(() => "?").join(", ")})`;
    const rows = await this.q.all<{
      app_id: string;
      conference_id: string;
      endpoint_id: string;
      stream_id: string;
      media_node: string;
    }>(`${STREAMS_NOT_ON}${except} LIMIT ?`, [...nodes, limit]);
    return rows.map((r) => ({
      appId: r.app_id,
      conferenceId: r.conference_id,
      endpointId: r.endpoint_id,
      streamId: r.stream_id,
      mediaNode: r.media_node,
    }));
  }

  async removeStream(seq: number, streamId: string): Promise<void> {
    await this.q.run(REMOVE_STREAM, [seq, streamId]);
  }

  /** Media lives in memory: after a restart no stream is really published any more. */
  async clearAllStreams(): Promise<void> {
    await this.q.run(CLEAR_ALL_STREAMS);
  }

  async removeAllStreams(seq: number): Promise<void> {
    await this.q.run(REMOVE_ALL_STREAMS, [seq]);
  }

  /** Logs a typed event as its canonical proto JSON. */
  async appendEvent(seq: number, conferenceVersion: number | null, event: ConferenceEvent, now: number): Promise<void> {
    await this.q.run(APPEND_EVENT, [seq, conferenceVersion, toJsonString(ConferenceEventSchema, event), now]);
  }

  /** Logged events with conferenceVersion >= fromVersion (creation events too when fromVersion <= 0). */
  async eventsSince(seq: number, fromVersion: number, limit: number): Promise<ConferenceEvent[]> {
    const from = Math.min(Math.max(fromVersion, -MAX_CURSOR), MAX_CURSOR);
    const rows = await this.q.all<{ seq: number; body: string }>(EVENTS_SINCE, [
      seq,
      from,
      fromVersion <= 0 ? 1 : 0,
      limit,
    ]);
    return rows.map((r) => {
      // Row ids can be reused after deletions (SQLite), so a hit must hold the same text.
      const hit = this.decoded.get(r.seq);
      if (hit !== undefined && hit.body === r.body) return hit.event;
      const event = readEvent(r.body);
      if (this.decoded.size >= DECODED_EVENTS) this.decoded.delete(this.decoded.keys().next().value as number);
      this.decoded.set(r.seq, { body: r.body, event });
      return event;
    });
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
  media_node: string | null;
}

function streamFromRaw(r: RawStream): StreamRow {
  return {
    streamId: r.stream_id,
    endpointId: r.endpoint_id,
    type: r.type,
    metadata: JSON.parse(r.metadata) as Json,
    videoBitrate: r.video_bitrate,
    ...(r.media_node === null ? {} : { mediaNode: r.media_node }),
  };
}

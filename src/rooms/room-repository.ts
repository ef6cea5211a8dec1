/** The only module that reads or writes the `rooms` table. */
import type { Queryable } from "../storage/store.js";

export type ConferenceType = "MESH" | "SFU";

export interface RoomRecord {
  seq: number;
  roomId: string;
  appId: string;
  name: string | null;
  description: string | null;
  conferenceType: ConferenceType;
  autoUpgradeParticipantCount: number | null;
  maxParticipants: number;
  roomTokenTtlSeconds: number;
  roomTtlSeconds: number;
  endpointTtlSeconds: number;
  creationTimeMs: number;
  modificationTimeMs: number;
  lastUsedMs: number;
}

interface RawRoom {
  seq: number;
  room_id: string;
  app_id: string;
  name: string | null;
  description: string | null;
  conference_type: ConferenceType;
  auto_upgrade_participant_count: number | null;
  max_participants: number;
  room_token_ttl_seconds: number;
  room_ttl_seconds: number;
  endpoint_ttl_seconds: number;
  creation_time_ms: number;
  modification_time_ms: number;
  last_used_ms: number;
}

const COLUMNS = `seq, room_id, app_id, name, description, conference_type, auto_upgrade_participant_count,
  max_participants, room_token_ttl_seconds, room_ttl_seconds, endpoint_ttl_seconds, creation_time_ms,
  modification_time_ms, last_used_ms`;

function fromRaw(r: RawRoom): RoomRecord {
  return {
    seq: r.seq,
    roomId: r.room_id,
    appId: r.app_id,
    name: r.name,
    description: r.description,
    conferenceType: r.conference_type,
    autoUpgradeParticipantCount: r.auto_upgrade_participant_count,
    maxParticipants: r.max_participants,
    roomTokenTtlSeconds: r.room_token_ttl_seconds,
    roomTtlSeconds: r.room_ttl_seconds,
    endpointTtlSeconds: r.endpoint_ttl_seconds,
    creationTimeMs: r.creation_time_ms,
    modificationTimeMs: r.modification_time_ms,
    lastUsedMs: r.last_used_ms,
  };
}

export type NewRoom = Omit<RoomRecord, "seq" | "modificationTimeMs" | "lastUsedMs">;

const INSERT = `INSERT INTO rooms (room_id, app_id, name, description, conference_type, auto_upgrade_participant_count,
    max_participants, room_token_ttl_seconds, room_ttl_seconds, endpoint_ttl_seconds, creation_time_ms,
    modification_time_ms, last_used_ms)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
  RETURNING ${COLUMNS}`;
const BY_ID = `SELECT ${COLUMNS} FROM rooms WHERE room_id = ?`;
const PAGE = `SELECT ${COLUMNS} FROM rooms WHERE app_id = ? AND seq > ? ORDER BY seq LIMIT ?`;
const DELETE = `DELETE FROM rooms WHERE room_id = ? RETURNING ${COLUMNS}`;
/** A use never moves last_used_ms back (uses of several nodes may be written out of order). */
const TOUCH =
  "UPDATE rooms SET last_used_ms = CASE WHEN last_used_ms > ? THEN last_used_ms ELSE ? END WHERE room_id = ?";
const DELETE_EXPIRED = "DELETE FROM rooms WHERE last_used_ms + room_ttl_seconds * 1000 < ? RETURNING room_id, app_id";

export class RoomRepository {
  constructor(private readonly q: Queryable) {}

  /** The same repository over `q` (a transaction). */
  in(q: Queryable): RoomRepository {
    return new RoomRepository(q);
  }

  async insert(room: NewRoom): Promise<RoomRecord> {
    const r = await this.q.get<RawRoom>(INSERT, [
      room.roomId,
      room.appId,
      room.name,
      room.description,
      room.conferenceType,
      room.autoUpgradeParticipantCount,
      room.maxParticipants,
      room.roomTokenTtlSeconds,
      room.roomTtlSeconds,
      room.endpointTtlSeconds,
      room.creationTimeMs,
      room.creationTimeMs,
      room.creationTimeMs,
    ]);
    if (r === undefined) throw new Error("INSERT … RETURNING returned no row");
    return fromRaw(r);
  }

  async get(roomId: string): Promise<RoomRecord | undefined> {
    const r = await this.q.get<RawRoom>(BY_ID, [roomId]);
    return r && fromRaw(r);
  }

  /** The app's rooms after `afterSeq` in creation order (keyset paging). */
  async page(appId: string, afterSeq: number, limit: number): Promise<RoomRecord[]> {
    return (await this.q.all<RawRoom>(PAGE, [appId, afterSeq, limit])).map(fromRaw);
  }

  async delete(roomId: string): Promise<RoomRecord | undefined> {
    const r = await this.q.get<RawRoom>(DELETE, [roomId]);
    return r && fromRaw(r);
  }

  async touch(roomId: string, now: number): Promise<void> {
    await this.q.run(TOUCH, [now, now, roomId]);
  }

  /** Deletes rooms unused for longer than their TTL and returns their ids. */
  async deleteExpired(now: number): Promise<{ roomId: string; appId: string }[]> {
    return (await this.q.all<{ room_id: string; app_id: string }>(DELETE_EXPIRED, [now])).map((r) => ({
      roomId: r.room_id,
      appId: r.app_id,
    }));
  }
}

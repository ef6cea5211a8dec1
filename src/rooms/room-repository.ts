/** The only module that reads or writes the `rooms` table. */
import type { Db } from "../storage/database.js";

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

export class RoomRepository {
  private readonly insertStmt;
  private readonly byIdStmt;
  private readonly pageStmt;
  private readonly deleteStmt;
  private readonly touchStmt;
  private readonly expiredStmt;

  constructor(db: Db) {
    this.insertStmt = db.prepare(
      `INSERT INTO rooms (room_id, app_id, name, description, conference_type, auto_upgrade_participant_count,
         max_participants, room_token_ttl_seconds, room_ttl_seconds, endpoint_ttl_seconds, creation_time_ms,
         modification_time_ms, last_used_ms)
       VALUES (@roomId, @appId, @name, @description, @conferenceType, @autoUpgradeParticipantCount,
         @maxParticipants, @roomTokenTtlSeconds, @roomTtlSeconds, @endpointTtlSeconds, @creationTimeMs,
         @creationTimeMs, @creationTimeMs)
       RETURNING ${COLUMNS}`,
    );
    this.byIdStmt = db.prepare(`SELECT ${COLUMNS} FROM rooms WHERE room_id = ?`);
    this.pageStmt = db.prepare(`SELECT ${COLUMNS} FROM rooms WHERE app_id = ? AND seq > ? ORDER BY seq LIMIT ?`);
    this.deleteStmt = db.prepare(`DELETE FROM rooms WHERE room_id = ? RETURNING ${COLUMNS}`);
    this.touchStmt = db.prepare("UPDATE rooms SET last_used_ms = max(last_used_ms, ?) WHERE room_id = ?");
    this.expiredStmt = db.prepare(
      "DELETE FROM rooms WHERE last_used_ms + room_ttl_seconds * 1000 < ? RETURNING room_id, app_id",
    );
  }

  insert(room: NewRoom): RoomRecord {
    return fromRaw(this.insertStmt.get(room) as RawRoom);
  }

  get(roomId: string): RoomRecord | undefined {
    const r = this.byIdStmt.get(roomId) as RawRoom | undefined;
    return r && fromRaw(r);
  }

  /** The app's rooms after `afterSeq` in creation order (keyset paging). */
  page(appId: string, afterSeq: number, limit: number): RoomRecord[] {
    return (this.pageStmt.all(appId, afterSeq, limit) as RawRoom[]).map(fromRaw);
  }

  delete(roomId: string): RoomRecord | undefined {
    const r = this.deleteStmt.get(roomId) as RawRoom | undefined;
    return r && fromRaw(r);
  }

  touch(roomId: string, now: number): void {
    this.touchStmt.run(now, roomId);
  }

  /** Deletes rooms unused for longer than their TTL and returns their ids. */
  deleteExpired(now: number): { roomId: string; appId: string }[] {
    return (this.expiredStmt.all(now) as { room_id: string; app_id: string }[]).map((r) => ({
      roomId: r.room_id,
      appId: r.app_id,
    }));
  }
}

/**
 * The read every API benchmark server does: one room by primary key from rtcplane's own
 * SQLite file (opened read-only), as the Room message.
 */
import { create } from "@bufbuild/protobuf";
import Database from "better-sqlite3";
import { type Room, RoomSchema } from "../../gen/rtcplane/rooms/v1/rooms_pb.js";

interface RoomRow {
  room_id: string;
  name: string | null;
  description: string | null;
  conference_type: string;
  auto_upgrade_participant_count: number | null;
  max_participants: number;
  room_token_ttl_seconds: number;
  room_ttl_seconds: number;
  endpoint_ttl_seconds: number;
  creation_time_ms: number;
  modification_time_ms: number;
}

export function roomReader(dbFile: string): (id: string) => RoomRow | undefined {
  const db = new Database(dbFile, { readonly: true });
  const stmt = db.prepare(
    `SELECT room_id, name, description, conference_type, auto_upgrade_participant_count, max_participants,
       room_token_ttl_seconds, room_ttl_seconds, endpoint_ttl_seconds, creation_time_ms, modification_time_ms
     FROM rooms WHERE room_id = ?`,
  );
  return (id) => stmt.get(id) as RoomRow | undefined;
}

/** The row as the realtime API's JSON (what the REST read answers, token aside). */
export function roomJson(r: RoomRow): Record<string, unknown> {
  return {
    id: r.room_id,
    ...(r.name === null ? {} : { name: r.name }),
    ...(r.description === null ? {} : { description: r.description }),
    creationTime: r.creation_time_ms,
    conferenceType: r.conference_type,
    modificationTime: r.modification_time_ms,
    maxParticipants: r.max_participants,
    roomTokenTTLSeconds: r.room_token_ttl_seconds,
    roomTTLSeconds: r.room_ttl_seconds,
    endpointTTLSeconds: r.endpoint_ttl_seconds,
  };
}

export function roomMessage(r: RoomRow): Room {
  return create(RoomSchema, {
    id: r.room_id,
    ...(r.name === null ? {} : { name: r.name }),
    ...(r.description === null ? {} : { description: r.description }),
    creationTime: BigInt(r.creation_time_ms),
    conferenceType: r.conference_type,
    modificationTime: BigInt(r.modification_time_ms),
    maxParticipants: r.max_participants,
    roomTokenTtlSeconds: r.room_token_ttl_seconds,
    roomTtlSeconds: r.room_ttl_seconds,
    endpointTtlSeconds: r.endpoint_ttl_seconds,
  });
}

/** Prints the port(s) the parent reads, as one JSON line. */
export function announce(ports: Record<string, number>): void {
  process.stdout.write(`${JSON.stringify({ ready: true, ...ports })}\n`);
}

/**
 * Realtime rooms: validation with the documented limits, keyset paging with sealed
 * cursors, room expiry after roomTTLSeconds without use. A room is the conference of the
 * same id (MESH → P2P, SFU → ROUTER); the conference API builds on these records.
 */
import { randomUUID } from "node:crypto";
import type { ServerKey } from "../auth/server-key.js";
import { Reason, withReason } from "../errors.js";
import type { Logger } from "../observability/log.js";
import type { Store } from "../storage/store.js";
import { type ConferenceType, type RoomRecord, RoomRepository } from "./room-repository.js";

export type { ConferenceType, RoomRecord };

export const MAX_NAME = 512;
export const MAX_DESCRIPTION = 2048;
export const PAGE_MIN = 1;
export const PAGE_MAX = 100;
export const PAGE_DEFAULT = 25;
const CONFERENCE_TYPES: readonly ConferenceType[] = ["MESH", "SFU"];
const PAGE_PURPOSE = "rooms.page";

export interface RoomSettings {
  readonly maxParticipants: number;
  readonly tokenTtlSeconds: number;
  readonly ttlSeconds: number;
  readonly endpointTtlSeconds: number;
}

export interface NewRoomInput {
  name?: string | undefined;
  description?: string | undefined;
  conferenceType?: string | undefined;
  autoUpgradeParticipantCount?: number | undefined;
}

function stringSize(parameter: string, value: string | undefined, max: number): string | undefined {
  if (value !== undefined && [...value].length > max) {
    throw withReason("invalid_argument", `${parameter} is longer than ${max} characters`, Reason.StringSize, {
      parameter,
      max: String(max),
    });
  }
  return value;
}

function numberSize(parameter: string, value: number, min: number, max: number): number {
  if (value < min || value > max) {
    throw withReason("invalid_argument", `${parameter} is not within ${min}..${max}`, Reason.NumberSize, {
      parameter,
      min: String(min),
      max: String(max),
    });
  }
  return value;
}

function roomNotFound(id: string) {
  return withReason("not_found", `room ${JSON.stringify(id)} does not exist`, Reason.RoomNotFound, {
    id: id.slice(0, 256),
  });
}

export class Rooms {
  private readonly repo: RoomRepository;
  /**
   * Told of every room deleted, by the API or by expiry: its conference ends and its tokens
   * stop working (the conference module's concern, wired by the server).
   */
  onDeleted:
    | ((room: { appId: string; roomId: string }, why: "deleted" | "expired") => void | Promise<void>)
    | undefined;

  /** Room id → the latest use not yet written (see use()). */
  private readonly pendingUses = new Map<string, number>();

  constructor(
    private readonly store: Store,
    private readonly serverKey: ServerKey,
    private readonly settings: RoomSettings,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.repo = new RoomRepository(store);
  }

  async create(appId: string, input: NewRoomInput): Promise<RoomRecord> {
    const type = (input.conferenceType ?? "MESH").toUpperCase();
    if (!(CONFERENCE_TYPES as readonly string[]).includes(type)) {
      throw withReason("invalid_argument", "conferenceType must be MESH or SFU", Reason.InvalidValue, {
        parameter: "conferenceType",
        value: String(input.conferenceType).slice(0, 64),
        allowed: CONFERENCE_TYPES.join(", "),
      });
    }
    const autoUpgrade =
      input.autoUpgradeParticipantCount === undefined
        ? null
        : numberSize(
            "autoUpgradeParticipantCount",
            input.autoUpgradeParticipantCount,
            2,
            this.settings.maxParticipants,
          );
    return this.repo.insert({
      roomId: `RO-${randomUUID()}`,
      appId,
      name: stringSize("name", input.name, MAX_NAME) ?? null,
      description: stringSize("description", input.description, MAX_DESCRIPTION) ?? null,
      conferenceType: type as ConferenceType,
      autoUpgradeParticipantCount: autoUpgrade,
      maxParticipants: this.settings.maxParticipants,
      roomTokenTtlSeconds: this.settings.tokenTtlSeconds,
      roomTtlSeconds: this.settings.ttlSeconds,
      endpointTtlSeconds: this.settings.endpointTtlSeconds,
      creationTimeMs: this.now(),
    });
  }

  /** The app's room, or undefined (another app's room does not exist for it). */
  async find(appId: string, roomId: string): Promise<RoomRecord | undefined> {
    const room = await this.repo.get(roomId);
    return room?.appId === appId ? room : undefined;
  }

  /** Like find, but CONFERENCE_ROOM_DOES_NOT_EXIST when there is none. */
  async get(appId: string, roomId: string): Promise<RoomRecord> {
    const room = await this.find(appId, roomId);
    if (room === undefined) throw roomNotFound(roomId);
    return room;
  }

  /**
   * Like get, and counts as use: the room's expiry starts again. Reads must not write, so
   * uses are remembered and written together by flushUses() (every minute, before each
   * expiry sweep and at shutdown), at most one write per room per flush.
   */
  async use(appId: string, roomId: string): Promise<RoomRecord> {
    const room = await this.get(appId, roomId);
    this.pendingUses.set(roomId, this.now());
    return room;
  }

  /**
   * Writes the uses remembered since the last flush, in one transaction. Uses it could not
   * write are remembered again (unless a later use of the room came meanwhile).
   */
  async flushUses(): Promise<number> {
    if (this.pendingUses.size === 0) return 0;
    const uses = [...this.pendingUses];
    this.pendingUses.clear();
    try {
      await this.store.transaction(async (tx) => {
        const repo = this.repo.in(tx);
        for (const [roomId, at] of uses) await repo.touch(roomId, at);
      });
    } catch (e) {
      for (const [roomId, at] of uses) {
        if (!this.pendingUses.has(roomId)) this.pendingUses.set(roomId, at);
      }
      throw e;
    }
    return uses.length;
  }

  async list(
    appId: string,
    numberOfRecords: number | undefined,
    token: string | undefined,
  ): Promise<{ rooms: RoomRecord[]; nextToken: string | undefined }> {
    const limit = numberSize("numberOfRecords", numberOfRecords ?? PAGE_DEFAULT, PAGE_MIN, PAGE_MAX);
    let after = 0;
    if (token !== undefined && token !== "") {
      const cursor = this.serverKey.unseal(PAGE_PURPOSE, token) as { app?: unknown; after?: unknown } | undefined;
      if (cursor?.app !== appId || typeof cursor.after !== "number") {
        throw withReason("invalid_argument", "the page token is invalid", Reason.InvalidToken, {
          token: token.slice(0, 128),
        });
      }
      after = cursor.after;
    }
    const rows = await this.repo.page(appId, after, limit + 1);
    const rooms = rows.slice(0, limit);
    const last = rooms[rooms.length - 1];
    const nextToken =
      rows.length > limit && last !== undefined
        ? this.serverKey.seal(PAGE_PURPOSE, { app: appId, after: last.seq })
        : undefined;
    return { rooms, nextToken };
  }

  async delete(appId: string, roomId: string): Promise<RoomRecord> {
    await this.get(appId, roomId);
    const deleted = await this.repo.delete(roomId);
    if (deleted === undefined) throw roomNotFound(roomId);
    await this.onDeleted?.({ appId, roomId }, "deleted");
    return deleted;
  }

  /**
   * Deletes rooms unused for longer than their roomTTLSeconds; returns what it removed. This
   * node's uses are written first; the deletion runs under the "rooms.expiry" lease (one node
   * of a cluster at a time) and removes nothing when another node holds it.
   */
  /**
   * How much later than its TTL a room expires. In a cluster every node flushes the uses it
   * remembered on its own schedule, so a room used on another node within one flush interval
   * may look unused here: the grace is that interval.
   */
  expiryGraceMs = 0;

  async sweepExpired(): Promise<{ roomId: string; appId: string }[]> {
    await this.flushUses();
    let expired: { roomId: string; appId: string }[] = [];
    await this.store.withLease("rooms.expiry", async () => {
      expired = await this.repo.deleteExpired(this.now() - this.expiryGraceMs);
      for (const room of expired) {
        try {
          await this.onDeleted?.(room, "expired");
        } catch (err) {
          this.log.warn({ err, roomId: room.roomId }, "ending an expired room's conference failed");
        }
      }
    });
    return expired;
  }
}

/**
 * Spreed rooms, as the upstream server keeps them: a room is known by its type and name
 * (`Room` unless `Hello.Type` says otherwise; the name `""` is the default room), may be
 * PIN-protected — by the `Credentials` of whoever opens it, or later by a member's `Room`
 * document — and admits a session only under the realm's policy (default room enabled,
 * user accounts needed to open or join rooms). A PIN-protected room outlives its last
 * member for a while, so its PIN is not free for the taking the moment it empties.
 */
import { timingSafeEqual } from "node:crypto";

export const DEFAULT_ROOM_TYPE = "Room";
/** The upstream room type whose members are told each other's ids (`Conference` document). */
export const CONFERENCE_ROOM_TYPE = "Conference";

/** Why a session may not join or change a room; sent as an `Error` with this code. */
export class RoomRefusal extends Error {
  constructor(
    readonly code:
      | "default_room_disabled"
      | "room_join_requires_account"
      | "authorization_required"
      | "authorization_not_required"
      | "invalid_credentials"
      | "room_full"
      | "not_in_room",
    message: string,
  ) {
    super(message);
    this.name = "RoomRefusal";
  }
}

export interface RoomPolicy {
  readonly defaultRoomEnabled: boolean;
  /** Only authenticated sessions may open a room (when users are enabled). */
  readonly authorizeRoomCreation: boolean;
  /** Only authenticated sessions may join a room (when users are enabled). */
  readonly authorizeRoomJoin: boolean;
  readonly usersEnabled: boolean;
  readonly maxRoomSessions: number;
}

export interface SpreedRoom<M> {
  readonly key: string;
  readonly name: string;
  readonly type: string;
  pin: string | undefined;
  readonly members: Set<M>;
}

/** How long an empty PIN-protected room keeps its PIN, and how many such rooms are kept. */
const LINGER_MS = 60_000;
const MAX_LINGERING = 10_000;

function samePin(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export class SpreedRooms<M> {
  private readonly rooms = new Map<string, SpreedRoom<M>>();
  /** Empty PIN-protected rooms, oldest first, with when they emptied. */
  private readonly lingering = new Map<string, number>();

  constructor(
    private readonly policy: RoomPolicy,
    private readonly now: () => number = Date.now,
  ) {}

  static key(name: string, type: string): string {
    return `${type || DEFAULT_ROOM_TYPE}:${name}`;
  }

  get size(): number {
    return this.rooms.size;
  }

  get(key: string): SpreedRoom<M> | undefined {
    this.expire();
    return this.rooms.get(key);
  }

  /**
   * The room a session may enter, checked in the upstream order; a room that does not exist
   * yet is returned unregistered (enter() registers it). `outside` is the room as other nodes
   * of a cluster have it: its PIN and members count as this room's. Throws RoomRefusal.
   */
  admit(
    name: string,
    type: string,
    pin: string | undefined,
    authenticated: boolean,
    outside?: { readonly pin: string | undefined; readonly members: number },
  ): SpreedRoom<M> {
    const roomType = type || DEFAULT_ROOM_TYPE;
    if (name === "" && roomType === DEFAULT_ROOM_TYPE && !this.policy.defaultRoomEnabled) {
      throw new RoomRefusal("default_room_disabled", "The default room is not enabled");
    }
    const needsAccount = this.policy.usersEnabled && !authenticated;
    if (needsAccount && this.policy.authorizeRoomJoin) {
      throw new RoomRefusal("room_join_requires_account", "Room join requires a user account");
    }
    const key = SpreedRooms.key(name, roomType);
    const existing = this.get(key);
    if (existing === undefined && outside === undefined) {
      if (needsAccount && this.policy.authorizeRoomCreation) {
        throw new RoomRefusal("room_join_requires_account", "Room creation requires a user account");
      }
      return { key, name, type: roomType, pin: pin || undefined, members: new Set() };
    }
    // A room here keeps its PIN in step with the other nodes (Room documents travel the bus).
    const roomPin = existing !== undefined ? existing.pin : outside?.pin;
    if (roomPin === undefined && pin) {
      throw new RoomRefusal("authorization_not_required", "No credentials may be provided for this room");
    }
    if (roomPin !== undefined) {
      if (!pin) throw new RoomRefusal("authorization_required", "Valid credentials are required to join this room");
      if (!samePin(roomPin, pin)) {
        throw new RoomRefusal("invalid_credentials", "The provided credentials are incorrect");
      }
    }
    if ((existing?.members.size ?? 0) + (outside?.members ?? 0) >= this.policy.maxRoomSessions) {
      throw new RoomRefusal("room_full", `a room holds at most ${this.policy.maxRoomSessions} sessions`);
    }
    return existing ?? { key, name, type: roomType, pin: roomPin, members: new Set() };
  }

  enter(room: SpreedRoom<M>, member: M): void {
    this.rooms.set(room.key, room);
    this.lingering.delete(room.key);
    room.members.add(member);
  }

  leave(room: SpreedRoom<M>, member: M): void {
    room.members.delete(member);
    if (room.members.size > 0 || this.rooms.get(room.key) !== room) return;
    if (room.pin === undefined) {
      this.rooms.delete(room.key);
      return;
    }
    this.lingering.set(room.key, this.now());
    this.expire();
  }

  /**
   * The member's own room when a `Room` document names it (a missing type means the room's
   * own); only that room's PIN may be changed. Throws RoomRefusal not_in_room.
   */
  own(current: SpreedRoom<M> | undefined, name: string, type: string): SpreedRoom<M> {
    if (current === undefined || current.key !== SpreedRooms.key(name, type || current.type)) {
      throw new RoomRefusal("not_in_room", "Cannot update other rooms");
    }
    return current;
  }

  clear(): void {
    this.rooms.clear();
    this.lingering.clear();
  }

  /** Forgets empty rooms past their linger time, and the oldest beyond the bound. */
  private expire(): void {
    const cutoff = this.now() - LINGER_MS;
    for (const [key, since] of this.lingering) {
      if (since > cutoff && this.lingering.size <= MAX_LINGERING) break;
      this.lingering.delete(key);
      const room = this.rooms.get(key);
      if (room !== undefined && room.members.size === 0) this.rooms.delete(key);
    }
  }
}

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SpreedRooms } from "../../src/spreed/rooms.js";
import { refusal } from "../helpers/room-refusal.js";

const policy = {
  defaultRoomEnabled: true,
  authorizeRoomCreation: false,
  authorizeRoomJoin: false,
  usersEnabled: true,
  maxRoomSessions: 2,
};

describe("SpreedRooms", () => {
  it("keeps an empty PIN-protected room's PIN for a minute, forgets an open one at once", () => {
    let now = 0;
    const rooms = new SpreedRooms<string>(policy, () => now);
    const vault = rooms.admit("vault", "", "1234", false);
    rooms.enter(vault, "a");
    const open = rooms.admit("open", "", undefined, false);
    rooms.enter(open, "b");
    rooms.leave(vault, "a");
    rooms.leave(open, "b");
    assert.equal(rooms.get("Room:open"), undefined);
    now = 59_000;
    assert.equal(
      refusal(() => rooms.admit("vault", "", undefined, false)),
      "authorization_required",
    );
    now = 61_000;
    assert.equal(
      refusal(() => rooms.admit("vault", "", undefined, false)),
      "admitted",
    );
    assert.equal(rooms.size, 0);
  });

  it("applies the policy in the upstream order and bounds a room's size", () => {
    const strict = new SpreedRooms<string>({ ...policy, defaultRoomEnabled: false, authorizeRoomCreation: true });
    assert.equal(
      refusal(() => strict.admit("", "", undefined, true)),
      "default_room_disabled",
    );
    assert.equal(
      refusal(() => strict.admit("", "Conference", undefined, true)),
      "admitted",
    );
    assert.equal(
      refusal(() => strict.admit("x", "", undefined, false)),
      "room_join_requires_account",
    );
    const room = strict.admit("x", "", undefined, true);
    strict.enter(room, "a");
    assert.equal(
      refusal(() => strict.admit("x", "", undefined, false)),
      "admitted",
      "joining is open",
    );
    strict.enter(room, "b");
    assert.equal(
      refusal(() => strict.admit("x", "", undefined, false)),
      "room_full",
    );
    const closed = new SpreedRooms<string>({ ...policy, authorizeRoomJoin: true });
    assert.equal(
      refusal(() => closed.admit("x", "", undefined, false)),
      "room_join_requires_account",
    );
    assert.equal(
      refusal(() => closed.admit("x", "", undefined, true)),
      "admitted",
    );
  });

  it("lets a member change only its own room", () => {
    const rooms = new SpreedRooms<string>(policy);
    const room = rooms.admit("mine", "", undefined, false);
    rooms.enter(room, "a");
    assert.equal(rooms.own(room, "mine", ""), room);
    assert.equal(rooms.own(room, "mine", "Room"), room);
    assert.equal(
      refusal(() => rooms.own(room, "mine", "Conference")),
      "not_in_room",
    );
    assert.equal(
      refusal(() => rooms.own(undefined, "mine", "")),
      "not_in_room",
    );
  });
});

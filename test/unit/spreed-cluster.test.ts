import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { BadBusMessage, decodeBusMessage } from "../../src/spreed/cluster-wire.js";
import { SpreedRooms } from "../../src/spreed/rooms.js";
import { refusal } from "../helpers/room-refusal.js";

const session = { id: "abc", sid: "def", u: "", ua: "ua", st: null, rev: 0 };

function bad(body: unknown): string {
  try {
    decodeBusMessage(body, "self");
  } catch (e) {
    if (e instanceof BadBusMessage) return "bad";
    throw e;
  }
  return "ok";
}

describe("Spreed bus messages", () => {
  it("decodes well-formed messages and keeps only known fields", () => {
    assert.deepEqual(decodeBusMessage({ t: "hb", n: "n1", extra: 1 }, "self"), { t: "hb", n: "n1" });
    const joined = decodeBusMessage(
      { t: "s", n: "n1", ev: "join", s: { ...session, r: { k: "Room:x", name: "x", type: "Room", pin: "" } } },
      "self",
    );
    // An empty PIN is no PIN.
    assert.deepEqual(joined, {
      t: "s",
      n: "n1",
      ev: "join",
      s: { ...session, r: { k: "Room:x", name: "x", type: "Room" } },
    });
    assert.deepEqual(
      decodeBusMessage({ t: "d", n: "n1", from: "a", rk: "Room:x", d: { Type: "Chat" }, to: ["b"] }, "self"),
      {
        t: "d",
        n: "n1",
        from: "a",
        rk: "Room:x",
        d: { Type: "Chat" },
        to: ["b"],
      },
    );
  });

  it("refuses malformed ones", () => {
    for (const body of [
      null,
      [],
      "hb",
      { t: "hb" },
      { t: "hb", n: "self" }, // this node's own id
      { t: "hb", n: "x".repeat(65) },
      { t: "what", n: "n1" },
      { t: "s", n: "n1", ev: "dance", s: session },
      { t: "s", n: "n1", ev: "join", s: { ...session, rev: -1 } },
      { t: "s", n: "n1", ev: "join", s: { ...session, st: "not an object" } },
      { t: "s", n: "n1", ev: "join", s: { ...session, st: { big: "x".repeat(9000) } } },
      { t: "s", n: "n1", ev: "join", s: { ...session, r: { k: "Room:y", name: "x", type: "Room" } } },
      { t: "s", n: "n1", ev: "join", s: { ...session, id: "" } },
      { t: "d", n: "n1", from: "a", rk: "Room:x", d: { Type: "Self" } },
      { t: "d", n: "n1", from: "a", rk: "Room:x", d: { Type: "Chat" }, to: [1] },
      { t: "snap", n: "n1", s: new Array(1001).fill(session), end: true },
      { t: "x", n: "n1" },
    ]) {
      assert.equal(bad(body), "bad", JSON.stringify(body).slice(0, 80));
    }
  });
});

describe("SpreedRooms with members on other nodes", () => {
  const policy = {
    defaultRoomEnabled: true,
    authorizeRoomCreation: true,
    authorizeRoomJoin: false,
    usersEnabled: true,
    maxRoomSessions: 3,
  };

  it("a room that exists only elsewhere has its PIN and size, and joining it is not opening it", () => {
    const rooms = new SpreedRooms<string>(policy);
    const elsewhere = { pin: "1234", members: 2 };
    // Unauthenticated sessions may not open rooms here, but this one is open elsewhere.
    assert.equal(
      refusal(() => rooms.admit("r", "", undefined, false, elsewhere)),
      "authorization_required",
    );
    assert.equal(
      refusal(() => rooms.admit("r", "", "9", false, elsewhere)),
      "invalid_credentials",
    );
    const room = rooms.admit("r", "", "1234", false, elsewhere);
    assert.equal(room.pin, "1234");
    rooms.enter(room, "local");
    assert.equal(
      refusal(() => rooms.admit("r", "", "1234", false, elsewhere)),
      "room_full",
    );
    assert.equal(
      refusal(() => rooms.admit("r", "", "1234", false, { pin: "1234", members: 1 })),
      "admitted",
    );
    assert.equal(
      refusal(() => rooms.admit("open", "", "1", false, { pin: undefined, members: 1 })),
      "authorization_not_required",
    );
    assert.equal(
      refusal(() => rooms.admit("new", "", undefined, false)),
      "room_join_requires_account",
    );
  });
});

/**
 * Spreed rooms as the upstream web client uses them (notes/spreed-facts.md): the room in
 * `Hello.Name` (old clients: `Id`), room types, PIN-protected rooms (`Credentials`, the
 * `Room` document), `Leave`, and the realm's room policy — driven by `ws` clients.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startServer, type TestServer } from "../helpers/server.js";
import { type Doc, Peer } from "../helpers/spreed-peer.js";

let server: TestServer;
const peers: Peer[] = [];
before(async () => {
  server = await startServer();
});
after(async () => {
  for (const p of peers) p.close();
  await server.close();
});

async function peer(url = server.url): Promise<Peer & { id: string }> {
  const p = await Peer.connect(url);
  peers.push(p);
  p.send("Self", {});
  return Object.assign(p, { id: (await p.self()).Id as string });
}

/** Sends Hello and answers the Welcome's data, or the Error's code. */
async function hello(p: Peer, body: Doc): Promise<Doc> {
  p.send("Hello", { Version: "1.0", Ua: "test", ...body });
  return (await p.next(["Welcome", "Error"])).Data as Doc;
}

const ids = (welcome: Doc) => ((welcome.Users as Doc[]) ?? []).map((u) => u.Id).sort();

describe("Spreed rooms", () => {
  it("Hello.Name names the room (Id only as the fallback); sessions see only their own room", async () => {
    const [a, b, c, d] = await Promise.all([peer(), peer(), peer(), peer()]);
    const wa = await hello(a, { Name: "alpha" });
    assert.deepEqual(wa.Room, { Type: "Room", Name: "alpha" });
    const wc = await hello(c, { Name: "beta", Id: "alpha" });
    assert.deepEqual(wc.Room, { Type: "Room", Name: "beta" }, "Name wins over Id");
    const wb = await hello(b, { Name: "alpha" });
    assert.deepEqual(ids(wb), [a.id, b.id].sort());
    const wd = await hello(d, { Id: "alpha" }); // an old client
    assert.deepEqual(ids(wd), [a.id, b.id, d.id].sort());
    assert.equal(((await a.next("Joined")).Data as Doc).Id, b.id);
    assert.equal(((await a.next("Joined")).Data as Doc).Id, d.id);
    a.send("Users", {});
    const users = (await a.next("Users")).Data as Doc;
    assert.deepEqual(ids(users), [a.id, b.id, d.id].sort());
    // c is elsewhere: nothing of alpha reaches it, and it cannot be signalled from alpha.
    a.send("Offer", { To: c.id, Type: "Offer", Offer: { type: "offer", sdp: "v=0" } });
    assert.equal(((await a.next("Error")).Data as Doc).Code, "unknown_session");
    assert.equal(
      c.docs.some((x) => ["Joined", "Offer"].includes((x.Data as Doc).Type as string)),
      false,
    );
    // Leave: out of the room, the others are told.
    b.send("Leave", {});
    assert.equal(((await a.next("Left")).Data as Doc).Id, b.id);
    a.send("Users", {});
    assert.deepEqual(ids((await a.next("Users")).Data as Doc), [a.id, d.id].sort());
  });

  it("room types: a Conference room is another room than the Room of that name, and lists its members", async () => {
    const [a, b, c] = await Promise.all([peer(), peer(), peer()]);
    await hello(a, { Name: "meet", Type: "Conference" });
    const wb = await hello(b, { Name: "meet", Type: "Conference" });
    assert.deepEqual(wb.Room, { Type: "Conference", Name: "meet" });
    const wc = await hello(c, { Name: "meet" });
    assert.deepEqual(ids(wc), [c.id], "Room:meet is not Conference:meet");
    for (const p of [a, b]) {
      const conference = (await p.next("Conference")).Data as Doc;
      assert.deepEqual((conference.Conference as string[]).sort(), [a.id, b.id].sort());
    }
  });

  it("a PIN given by whoever opens the room protects it: required, checked, refused where there is none", async () => {
    const [a, b, e] = await Promise.all([peer(), peer(), peer()]);
    const opened = await hello(a, { Name: "vault", Credentials: { PIN: "1234" } });
    assert.deepEqual(opened.Room, { Type: "Room", Name: "vault" }, "the PIN is not echoed");
    assert.equal((await hello(b, { Name: "vault" })).Code, "authorization_required");
    assert.equal((await hello(b, { Name: "vault", Credentials: { PIN: "12345" } })).Code, "invalid_credentials");
    assert.equal((await hello(b, { Name: "vault", Credentials: { PIN: "1235" } })).Code, "invalid_credentials");
    assert.equal(b.docs.length, 0);
    assert.deepEqual(ids(await hello(b, { Name: "vault", Credentials: { PIN: "1234" } })), [a.id, b.id].sort());
    await hello(e, { Name: "open-room" });
    assert.equal(
      (await hello(a, { Name: "open-room", Credentials: { PIN: "1234" } })).Code,
      "authorization_not_required",
    );
    // A refused Hello leaves the session where it was.
    a.send("Users", {});
    assert.deepEqual(ids((await a.next("Users")).Data as Doc), [a.id, b.id].sort());
    // Once empty, the room keeps its PIN for a while.
    a.send("Leave", {});
    b.send("Leave", {});
    await new Promise((r) => setTimeout(r, 100));
    assert.equal((await hello(e, { Name: "vault" })).Code, "authorization_required");
  });

  it("a member's Room document sets and lifts the PIN; other rooms cannot be changed", async () => {
    const [a, b, c] = await Promise.all([peer(), peer(), peer()]);
    await hello(a, { Name: "lockable" });
    await hello(b, { Name: "lockable" });
    a.send("Room", { Name: "lockable", Type: "Room", Credentials: { PIN: "42" } }, "r1");
    const reply = await a.next("Room");
    assert.equal(reply.Iid, "r1");
    assert.deepEqual(reply.Data, { Type: "Room", Name: "lockable", Credentials: { PIN: "42" } });
    assert.deepEqual((await b.next("Room")).Data, reply.Data, "members learn the PIN to share it");
    assert.equal((await hello(c, { Name: "lockable" })).Code, "authorization_required");
    assert.deepEqual(ids(await hello(c, { Name: "lockable", Credentials: { PIN: "42" } })).length, 3);
    a.send("Room", { Name: "elsewhere", Credentials: { PIN: "1" } });
    assert.equal(((await a.next("Error")).Data as Doc).Code, "not_in_room");
    a.send("Room", { Name: "lockable", Credentials: { PIN: "" } });
    assert.deepEqual((await a.next("Room")).Data, { Type: "Room", Name: "lockable" });
    const d = await peer();
    assert.equal(ids(await hello(d, { Name: "lockable" })).length, 4, "open again");
    // Bad documents are answered, the socket stays open.
    for (const bad of [{ Name: 5 }, { Name: "lockable", Credentials: { PIN: "x".repeat(200) } }]) {
      a.send("Room", bad);
      assert.equal(((await a.next("Error")).Data as Doc).Code, "bad_request");
    }
    a.send("Alive", 1);
    await a.next("Alive");
  });
});

describe("Spreed room policy", () => {
  let strict: TestServer;
  before(async () => {
    strict = await startServer({
      SPREED_DEFAULT_ROOM_ENABLED: "false",
      SPREED_AUTHORIZE_ROOM_CREATION: "true",
      SPREED_RENEGOTIATION: "true",
      SPREED_MODULES: "screensharing,presentation",
    });
  });
  after(() => strict.close());

  it("config says what the hub enforces: no default room, accounts to open rooms", async () => {
    const config = (await (await fetch(`${strict.url}/api/v1/config`)).json()) as Doc;
    assert.equal(config.DefaultRoomEnabled, false);
    assert.equal(config.AuthorizeRoomCreation, true);
    assert.equal(config.AuthorizeRoomJoin, false);
    assert.equal(config.Renegotiation, true);
    assert.deepEqual(config.Modules, ["screensharing", "presentation"]);
    const a = await peer(strict.url);
    assert.equal((await hello(a, { Name: "" })).Code, "default_room_disabled");
    assert.equal((await hello(a, { Name: "new-room" })).Code, "room_join_requires_account");
  });

  it("refuses unknown modules at start", async () => {
    await assert.rejects(startServer({ SPREED_MODULES: "screensharing,telepathy" }), /SPREED_MODULES.*telepathy/);
  });
});

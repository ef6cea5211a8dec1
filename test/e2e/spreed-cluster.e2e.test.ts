/**
 * Spreed channeling across nodes: SpreedHubs on real WebSocket servers joined by a real
 * nats-server (no mocks), driven by `ws` clients. Sessions of one room on different nodes see
 * each other (Welcome, Joined, Users, Left), reach each other (Offer/Answer/Candidate/Bye,
 * Chat, Status, Conference), share the room's PIN and size, survive a node's death as `Left`,
 * and a node that starts late sees who is there. REST user registration and `?t=` reclaims
 * work for a session connected to another node. Malformed bus traffic is dropped.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { connect, type NatsConnection } from "nats";
import { type NatsServer, startNats } from "../helpers/nats.js";
import { type SpreedNode, spawnSpreedNode, startSpreedNode } from "../helpers/spreed-node.js";
import { type Doc, Peer } from "../helpers/spreed-peer.js";

let nats: NatsServer;
let a: SpreedNode;
let b: SpreedNode;
const PREFIX = `test.${randomBytes(4).toString("hex")}`;
const open: Peer[] = [];

before(async () => {
  nats = await startNats();
  a = await startSpreedNode(nats.url, PREFIX);
  b = await startSpreedNode(nats.url, PREFIX);
});
after(async () => {
  for (const p of open) p.close();
  await a?.close();
  await b?.close();
  await nats?.stop();
});

async function peer(
  node: { url: string },
  token?: string,
): Promise<{ peer: Peer; id: string; sid: string; token: string }> {
  const p = await Peer.connect(node.url, token);
  open.push(p);
  p.send("Self", {});
  const self = await p.self();
  return { peer: p, id: self.Id as string, sid: self.Sid as string, token: self.Token as string };
}

function room(name = randomBytes(6).toString("hex")): string {
  return name;
}

async function hello(p: Peer, name: string, pin?: string): Promise<Doc> {
  p.send("Hello", {
    Version: "1.0",
    Ua: "test",
    Name: name,
    Type: "Room",
    ...(pin ? { Credentials: { PIN: pin } } : {}),
  });
  return (await p.next(["Welcome", "Error"])).Data as Doc;
}

/** The ids `Users` lists for `p`, asked until `want` is met (other nodes hear of changes within ms). */
async function usersUntil(p: Peer, want: (ids: string[]) => boolean, timeout = 3000): Promise<string[]> {
  const deadline = Date.now() + timeout;
  for (;;) {
    p.send("Users", {});
    const users = ((await p.next("Users")).Data as Doc).Users as Doc[];
    const ids = users.map((u) => u.Id as string);
    if (want(ids)) return ids;
    if (Date.now() > deadline) throw new Error(`Users never matched; last ${JSON.stringify(ids)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The next document of `type` from `from`. */
async function nextFrom(p: Peer, type: string, from: string, timeout = 3000): Promise<Doc> {
  const deadline = Date.now() + timeout;
  const skipped: Doc[] = [];
  try {
    for (;;) {
      const d = await p.next(type, Math.max(1, deadline - Date.now()));
      if (d.From === from || (d.Data as Doc).Id === from) return d;
      skipped.push(d);
    }
  } finally {
    p.docs.unshift(...skipped);
  }
}

describe("Spreed channeling across nodes (NATS)", () => {
  it("sessions of one room on two nodes see each other: Welcome or Joined, Users, Left", async () => {
    const name = room();
    const one = await peer(a);
    const two = await peer(b);
    const w1 = await hello(one.peer, name);
    assert.equal(w1.Type, "Welcome");
    const w2 = await hello(two.peer, name);
    assert.equal(w2.Type, "Welcome");
    // two saw one in its Welcome, or hears of it as Joined if one's join was still on the way.
    const inWelcome = (w2.Users as Doc[]).some((u) => u.Id === one.id);
    if (!inWelcome) await nextFrom(two.peer, "Joined", one.id);
    const joined = await nextFrom(one.peer, "Joined", two.id);
    assert.deepEqual((joined.Data as Doc).Ua, "test");
    assert.equal(joined.From, two.id);
    const ids1 = await usersUntil(one.peer, (ids) => ids.includes(two.id));
    assert.deepEqual([...ids1].sort(), [one.id, two.id].sort());
    const ids2 = await usersUntil(two.peer, (ids) => ids.includes(one.id));
    assert.deepEqual([...ids2].sort(), [one.id, two.id].sort());

    // Leaving the room, then closing the connection: Left on the other node each time.
    two.peer.send("Leave", {});
    const left = await nextFrom(one.peer, "Left", two.id);
    assert.deepEqual(left.Data, { Type: "Left", Id: two.id, Status: "hard" });
    await usersUntil(one.peer, (ids) => !ids.includes(two.id));
    await hello(two.peer, name);
    await nextFrom(one.peer, "Joined", two.id);
    one.peer.close();
    await nextFrom(two.peer, "Left", one.id);
    await usersUntil(two.peer, (ids) => ids.length === 1);
    two.peer.close();
  });

  it("relays Offer, Answer, Candidate, Bye, Chat, Status and Conference between nodes", async () => {
    const name = room();
    const one = await peer(a);
    const two = await peer(b);
    await hello(one.peer, name);
    await hello(two.peer, name);
    await usersUntil(one.peer, (ids) => ids.includes(two.id));
    await usersUntil(two.peer, (ids) => ids.includes(one.id));

    const sdp = `v=0\r\n${"a=x\r\n".repeat(3000)}`; // a ~15 KB offer
    one.peer.send("Offer", { To: two.id, Type: "Offer", Offer: { type: "offer", sdp }, _conference: "c1" });
    const offer = await two.peer.next("Offer");
    assert.equal(offer.From, one.id);
    assert.equal(offer.To, two.id);
    assert.deepEqual(offer.Data, { _conference: "c1", To: two.id, Type: "Offer", Offer: { type: "offer", sdp } });

    two.peer.send("Answer", { To: one.id, Type: "Answer", Answer: { type: "answer", sdp: "v=0\r\n" } });
    const answer = await one.peer.next("Answer");
    assert.deepEqual([answer.From, (answer.Data as Doc).Answer], [two.id, { type: "answer", sdp: "v=0\r\n" }]);

    const candidate = {
      type: "candidate",
      sdpMLineIndex: 0,
      sdpMid: "0",
      candidate: "candidate:1 1 udp 1 10.0.0.1 9 typ host",
    };
    one.peer.send("Candidate", { To: two.id, Type: "Candidate", Candidate: candidate });
    assert.deepEqual(((await two.peer.next("Candidate")).Data as Doc).Candidate, candidate);

    two.peer.send("Bye", { To: one.id, Type: "Bye", Bye: { Reason: "done" } });
    const bye = await one.peer.next("Bye");
    assert.deepEqual([bye.From, (bye.Data as Doc).Bye], [two.id, { Reason: "done" }]);

    // Chat to the room (with a receipt), and to one session.
    one.peer.send("Chat", { Chat: { Message: "hello room", Mid: "m1", NoEcho: true } }, "chat-1");
    const receipt = await one.peer.next("Chat");
    assert.deepEqual((receipt.Data as Doc).Chat, { Mid: "m1", Status: { State: "sent" } });
    const chat = await two.peer.next("Chat");
    assert.equal(chat.From, one.id);
    assert.equal(((chat.Data as Doc).Chat as Doc).Message, "hello room");
    assert.equal(typeof ((chat.Data as Doc).Chat as Doc).Time, "string");
    two.peer.send("Chat", { To: one.id, Chat: { Message: "just you" } });
    const direct = await one.peer.next("Chat");
    assert.deepEqual([direct.From, ((direct.Data as Doc).Chat as Doc).Message], [two.id, "just you"]);

    // Status reaches the other node, and is what Users lists there.
    two.peer.send("Status", { Type: "Status", Status: { displayName: "Two" } });
    const status = await nextFrom(one.peer, "Status", two.id);
    assert.deepEqual((status.Data as Doc).Status, { displayName: "Two" });
    one.peer.send("Users", {});
    const listed = (((await one.peer.next("Users")).Data as Doc).Users as Doc[]).find((u) => u.Id === two.id);
    assert.deepEqual(listed?.Status, { displayName: "Two" });

    // A buddy picture set on node b is fetched through node a (from b, which keeps it).
    const png = Buffer.from(
      "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==",
      "base64",
    );
    two.peer.send("Status", {
      Type: "Status",
      Status: { buddyPicture: `data:image/png;base64,${png.toString("base64")}` },
    });
    const pictured = ((await nextFrom(one.peer, "Status", two.id)).Data as Doc).Status as Doc;
    const imageId = /^img:([\w-]+)\/picture\.png$/.exec(pictured.buddyPicture as string)?.[1] ?? "";
    assert.ok(imageId.startsWith(`${b.nodeId}_`), imageId);
    assert.equal(a.hub.image(imageId), undefined, "kept on node b only");
    const fetched = await a.hub.fetchImage(imageId);
    assert.deepEqual([fetched?.contentType, fetched?.data], ["image/png", png]);
    assert.equal(await a.hub.fetchImage(`${b.nodeId}_nope`), undefined);
    assert.equal(await a.hub.fetchImage("unknownnode_x"), undefined);

    one.peer.send("Conference", { Id: "conf", Conference: [one.id, two.id] });
    const conference = await two.peer.next("Conference");
    assert.deepEqual([conference.From, (conference.Data as Doc).Conference], [one.id, [one.id, two.id]]);

    // A session of another room, on another node, is not reachable.
    const stranger = await peer(b);
    await hello(stranger.peer, room());
    one.peer.send("Offer", { To: stranger.id, Type: "Offer", Offer: { type: "offer", sdp: "v=0" } });
    assert.equal(((await one.peer.next("Error")).Data as Doc).Code, "unknown_session");
    for (const p of [one, two, stranger]) p.peer.close();
  });

  it("a room's PIN and size hold across nodes; a PIN changed on one node is known on the other", async () => {
    const small = await startSpreedNode(nats.url, `${PREFIX}.pins`, { maxRoomSessions: 3 });
    const other = await startSpreedNode(nats.url, `${PREFIX}.pins`, { maxRoomSessions: 3 });
    try {
      const name = room();
      const owner = await peer(small);
      assert.equal((await hello(owner.peer, name, "1234")).Type, "Welcome");
      const guest = await peer(other);
      // The PIN came with the join that opened the room.
      await waitUntil(async () => {
        const e = await hello(guest.peer, name);
        return e.Type === "Error" && e.Code === "authorization_required";
      });
      assert.equal((await hello(guest.peer, name, "9999")).Code, "invalid_credentials");
      assert.equal((await hello(guest.peer, name, "1234")).Type, "Welcome");
      await nextFrom(owner.peer, "Joined", guest.id);

      // The owner changes the PIN on its node: the guest elsewhere hears it, and the other node enforces it.
      owner.peer.send("Room", { Name: name, Type: "Room", Credentials: { PIN: "5678" } });
      const changed = await nextFrom(guest.peer, "Room", owner.id);
      assert.deepEqual(changed.Data, { Type: "Room", Name: name, Credentials: { PIN: "5678" } });
      const third = await peer(other);
      assert.equal((await hello(third.peer, name, "1234")).Code, "invalid_credentials");
      assert.equal((await hello(third.peer, name, "5678")).Type, "Welcome");
      // Three members on two nodes fill a room of three, on either node.
      await usersUntil(owner.peer, (ids) => ids.length === 3);
      const fourth = await peer(small);
      assert.equal((await hello(fourth.peer, name, "5678")).Code, "room_full");
      const fifth = await peer(other);
      assert.equal((await hello(fifth.peer, name, "5678")).Code, "room_full");
    } finally {
      await small.close();
      await other.close();
    }
  });

  it("a Conference room's members on every node are told each other's ids after a join", async () => {
    const name = room();
    const one = await peer(a);
    const two = await peer(b);
    one.peer.send("Hello", { Version: "1.0", Ua: "test", Name: name, Type: "Conference" });
    await one.peer.next("Welcome");
    // Until node b has heard of one's join: a join that came too early is left and tried again.
    await waitUntil(async () => {
      two.peer.send("Hello", { Version: "1.0", Ua: "test", Name: name, Type: "Conference" });
      const w = (await two.peer.next("Welcome")).Data as Doc;
      if ((w.Users as Doc[]).some((u) => u.Id === one.id)) return true;
      two.peer.send("Leave", {});
      return false;
    });
    const there = ((await one.peer.next("Conference")).Data as Doc).Conference as string[];
    const here = ((await two.peer.next("Conference")).Data as Doc).Conference as string[];
    assert.deepEqual([...there].sort(), [one.id, two.id].sort());
    assert.deepEqual([...here].sort(), [one.id, two.id].sort());
    one.peer.close();
    two.peer.close();
  });

  it("a node that starts late sees the sessions that joined before it", async () => {
    const name = room();
    const early = await peer(a);
    await hello(early.peer, name);
    early.peer.send("Status", { Type: "Status", Status: { displayName: "Early" } });
    await early.peer.next("Status");
    const late = await startSpreedNode(nats.url, PREFIX);
    try {
      const newcomer = await peer(late);
      const welcome = await hello(newcomer.peer, name);
      const listed = (welcome.Users as Doc[]).find((u) => u.Id === early.id);
      assert.deepEqual(listed?.Status, { displayName: "Early" }, "the snapshot at start carried the session");
      await nextFrom(early.peer, "Joined", newcomer.id);
      // A node that stops says goodbye: its sessions are Left at once, not after the heartbeat timeout.
      const t0 = Date.now();
      await late.close();
      await nextFrom(early.peer, "Left", newcomer.id);
      assert.ok(Date.now() - t0 < 1000, `Left after ${Date.now() - t0} ms`);
    } finally {
      await late.close();
      early.peer.close();
    }
  });

  it("a node killed with SIGKILL: its sessions are Left on the other nodes within 5 s", async () => {
    const name = room();
    const child = await spawnSpreedNode(nats.url, PREFIX);
    const survivor = await peer(a);
    await hello(survivor.peer, name);
    const doomed = await peer(child);
    await hello(doomed.peer, name);
    await nextFrom(survivor.peer, "Joined", doomed.id);
    const t0 = Date.now();
    process.kill(child.pid, "SIGKILL");
    await child.exited;
    const left = await nextFrom(survivor.peer, "Left", doomed.id, 6000);
    const ms = Date.now() - t0;
    assert.equal((left.Data as Doc).Id, doomed.id);
    assert.ok(ms >= 1000 && ms < 5000, `Left after ${ms} ms (heartbeats every 1 s, dead after 3 s)`);
    assert.deepEqual(await usersUntil(survivor.peer, () => true), [survivor.id]);
    // Every node forgets it (each on its own check, within the same bound).
    await waitUntil(async () => !b.hub.liveSession(doomed.id, doomed.sid), 5000 - (Date.now() - t0));
    survivor.peer.close();
  });

  it("REST registration and nonces for a session on another node; ?t= reclaims a session on another node", async () => {
    const name = room();
    const user = await peer(a);
    const mate = await peer(b);
    await hello(user.peer, name);
    await hello(mate.peer, name);
    await usersUntil(mate.peer, (ids) => ids.includes(user.id));
    // The REST call lands on node b; the session is on node a, which issues and keeps the nonce.
    assert.equal(b.hub.liveSession(user.id, user.sid), true);
    assert.equal(b.hub.liveSession(user.id, "wrong"), false);
    const reg = await b.users.register(user.id, user.sid);
    await assert.rejects(b.users.register(user.id, "wrong"), /no live session/);
    user.peer.send("Authentication", { Userid: reg.userid, Nonce: reg.nonce });
    assert.equal((await user.peer.self()).Userid, reg.userid);
    const joined = await nextFrom(mate.peer, "Joined", user.id);
    assert.equal((joined.Data as Doc).Userid, reg.userid);
    mate.peer.send("Users", {});
    const listed = (((await mate.peer.next("Users")).Data as Doc).Users as Doc[]).find((u) => u.Id === user.id);
    assert.equal(listed?.Userid, reg.userid);

    // PATCH /sessions through node b as well.
    const patched = await b.users.patchSession(user.id, {
      id: user.id,
      sid: user.sid,
      useridcombo: reg.useridcombo,
      secret: reg.secret,
    });
    assert.equal(patched.userid, reg.userid);

    // The token reclaims the session on node b: node a ends its connection, the Id lives on.
    const closed = new Promise<number>((resolve) => user.peer.ws.once("close", (code) => resolve(code)));
    const again = await peer(b, user.token);
    assert.equal(again.id, user.id);
    assert.equal(await closed, 4000);
    assert.equal(a.hub.hasSession(user.id), false);
    assert.equal(a.hub.liveSession(user.id, user.sid), true, "node a mirrors it on node b now");
    await hello(again.peer, name);
    await usersUntil(mate.peer, (ids) => ids.includes(user.id));
    again.peer.close();
    mate.peer.close();
  });

  it("malformed or unexpected bus messages are dropped; the cluster goes on", async () => {
    const raw: NatsConnection = await connect({ servers: nats.url });
    try {
      const subjects = [`${PREFIX}.all`, `${PREFIX}.node.${a.nodeId}`];
      const garbage = [
        "not json",
        "[]",
        "null",
        `${"[".repeat(5000)}${"]".repeat(5000)}`,
        JSON.stringify({ t: "s", n: "evil", ev: "join", s: { id: 5 } }),
        JSON.stringify({ t: "s", n: "evil", ev: "join", s: { id: "x", sid: "y", u: "", ua: "", st: null, rev: -1 } }),
        JSON.stringify({ t: "d", n: "evil", from: "nobody", rk: "Room:x", d: { Type: "Offer" } }),
        JSON.stringify({ t: "d", n: "evil", from: "nobody", rk: "Room:x", d: { Type: "Self" } }),
        JSON.stringify({ t: "room", n: "evil", from: "nobody", room: { k: "Room:x", name: "y", type: "Room" } }),
        JSON.stringify({ t: "x", n: a.nodeId, id: "z" }),
        JSON.stringify({ t: "snap", n: "evil", s: [], end: true }),
        JSON.stringify({ t: "nope", n: "evil" }),
        JSON.stringify({ t: "bye", n: b.nodeId.slice(0, 4) }),
      ];
      for (const subject of subjects) for (const g of garbage) raw.publish(subject, Buffer.from(g));
      raw.publish(`${PREFIX}.all`, Buffer.alloc(1000 * 1024, 0x7b));
      await raw.flush();
      // A forged `d` from a session that is not in the room it names is not delivered.
      const name = room();
      const one = await peer(a);
      const two = await peer(b);
      await hello(one.peer, name);
      await hello(two.peer, name);
      await usersUntil(two.peer, (ids) => ids.includes(one.id));
      raw.publish(
        `${PREFIX}.node.${b.nodeId}`,
        Buffer.from(
          JSON.stringify({
            t: "d",
            n: a.nodeId,
            from: "forged",
            rk: `Room:${name}`,
            d: { Type: "Chat", Chat: { Message: "x" } },
          }),
        ),
      );
      one.peer.send("Chat", { Chat: { Message: "real" } });
      const chat = await two.peer.next("Chat");
      assert.deepEqual([chat.From, ((chat.Data as Doc).Chat as Doc).Message], [one.id, "real"]);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(two.peer.docs.filter((d) => (d.Data as Doc).Type === "Chat").length, 0);
      one.peer.close();
      two.peer.close();
    } finally {
      await raw.close();
    }
  });

  it("a node's messages over the rate are dropped, and what they carried comes back with a snapshot", async () => {
    const prefix = `${PREFIX}.rate`;
    const strict = await startSpreedNode(nats.url, prefix, {}, { messagesPerSecondPerNode: 20 });
    const busy = await startSpreedNode(nats.url, prefix);
    const raw: NatsConnection = await connect({ servers: nats.url });
    try {
      const name = room();
      const here = await peer(strict);
      await hello(here.peer, name);
      const there = await peer(busy);
      // Heartbeats in busy's name use up strict's budget for busy, so busy's join is dropped there...
      const flood = () => {
        for (let i = 0; i < 200; i++)
          raw.publish(`${prefix}.all`, Buffer.from(JSON.stringify({ t: "hb", n: busy.nodeId })));
      };
      flood();
      await raw.flush();
      await hello(there.peer, name);
      flood();
      await raw.flush();
      const dropped = strict.hub.stats().cluster?.dropped ?? 0;
      assert.ok(dropped >= 100, `dropped ${dropped}`);
      // ...until the budget refills: the next heartbeat let through makes strict ask for busy's sessions.
      const t0 = Date.now();
      await usersUntil(here.peer, (ids) => ids.includes(there.id), 5000);
      await nextFrom(here.peer, "Joined", there.id, 100);
      assert.ok(Date.now() - t0 < 4000);
    } finally {
      await raw.close();
      await strict.close();
      await busy.close();
    }
  });

  it("a bus outage: nodes drop each other after 3 s, and see each other again once the bus is back", async () => {
    const own = await startNats();
    const x = await startSpreedNode(own.url, PREFIX);
    const y = await startSpreedNode(own.url, PREFIX);
    let restarted: NatsServer | undefined;
    try {
      const name = room();
      const one = await peer(x);
      const two = await peer(y);
      await hello(one.peer, name);
      await hello(two.peer, name);
      await usersUntil(one.peer, (ids) => ids.includes(two.id));
      await own.stop();
      await nextFrom(one.peer, "Left", two.id, 5000);
      await nextFrom(two.peer, "Left", one.id, 5000);
      // Relays to a session no longer known are refused, not queued.
      one.peer.send("Offer", { To: two.id, Type: "Offer", Offer: { type: "offer", sdp: "v=0" } });
      assert.equal(((await one.peer.next("Error")).Data as Doc).Code, "unknown_session");
      restarted = await startNats(own.port);
      await nextFrom(one.peer, "Joined", two.id, 8000);
      await nextFrom(two.peer, "Joined", one.id, 8000);
      one.peer.send("Chat", { Chat: { Message: "back" } });
      assert.equal((((await two.peer.next("Chat")).Data as Doc).Chat as Doc).Message, "back");
    } finally {
      await x.close();
      await y.close();
      await restarted?.stop();
    }
  });
});

async function waitUntil(cond: () => Promise<boolean>, timeout = 3000): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error("condition never met");
    await new Promise((r) => setTimeout(r, 20));
  }
}

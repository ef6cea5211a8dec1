/**
 * Spreed WebRTC (seed 002 and notes/spreed-facts.md) on a real server: every REST endpoint
 * and error, and the channeling WebSocket driven by `ws` clients as a browser would.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import WebSocket from "ws";
import { ADMIN_TOKEN, createApp, startServer, type TestServer } from "../helpers/server.js";
import { type Doc, Peer } from "../helpers/spreed-peer.js";

let server: TestServer;
before(async () => {
  server = await startServer({
    SPREED_TOKENS: "Open-Sesame,second",
    SPREED_STATS_ENABLED: "true",
    SPREED_STUN_URIS: "stun:stun.example.org:3478",
    SPREED_TURN_URIS: "turn:turn.example.org:3478?transport=udp",
    SPREED_TURN_SECRET: "turn-shared-secret",
  });
});
after(() => server.close());

async function call(
  url: string,
  method: string,
  path: string,
  body?: string,
  contentType?: string,
  headers: Record<string, string> = {},
) {
  const res = await fetch(url + path, {
    method,
    headers: contentType === undefined ? headers : { ...headers, "content-type": contentType },
    ...(body === undefined ? {} : { body }),
  });
  const text = await res.text();
  const type = res.headers.get("content-type") ?? "";
  return {
    status: res.status,
    type,
    text,
    json: type.startsWith("application/json") ? (JSON.parse(text) as Doc) : undefined,
  };
}

describe("Spreed REST API", () => {
  it("/.well-known/spreed-configuration names the endpoint", async () => {
    const r = await call(server.url, "GET", "/.well-known/spreed-configuration");
    assert.deepEqual(
      [r.status, r.json],
      [200, { "spreed-webrtc_endpoint": server.url.replace("127.0.0.1", "127.0.0.1") }],
    );
  });

  it("/api/v1/config has the documented PascalCase fields and the ones the web client reads, all always sent", async () => {
    const r = await call(server.url, "GET", "/api/v1/config");
    assert.equal(r.status, 200);
    // Fields added later keep new field numbers (the wire stays compatible), so they come last.
    assert.deepEqual(
      Object.keys(r.json ?? {}).sort(),
      [
        "Title",
        "S",
        "B",
        "Token",
        "Renegotiation",
        "StunURIs",
        "TurnURIs",
        "Tokens",
        "Version",
        "UsersEnabled",
        "UsersAllowRegistration",
        "UsersMode",
        "DefaultRoomEnabled",
        "Plugin",
        "AuthorizeRoomCreation",
        "AuthorizeRoomJoin",
        "Modules",
      ].sort(),
    );
    assert.equal(r.json?.Renegotiation, false);
    assert.equal(r.json?.DefaultRoomEnabled, true);
    assert.equal(r.json?.AuthorizeRoomCreation, false);
    assert.equal(r.json?.AuthorizeRoomJoin, false);
    assert.deepEqual(r.json?.Modules, ["screensharing", "youtube", "presentation", "contacts"]);
    assert.equal(r.json?.Title, "Spreed WebRTC");
    assert.deepEqual(r.json?.StunURIs, ["stun:stun.example.org:3478"]);
    assert.deepEqual(r.json?.TurnURIs, ["turn:turn.example.org:3478?transport=udp"]);
    assert.equal(r.json?.Tokens, true);
    assert.equal(r.json?.UsersMode, "sharedsecret");
  });

  it("POST /api/v1/tokens: lower-cased match → 200; unknown → 403; over 100 characters → 413", async () => {
    const form = "application/x-www-form-urlencoded";
    assert.deepEqual((await call(server.url, "POST", "/api/v1/tokens", "a=OPEN-SESAME", form)).json, {
      token: "open-sesame",
      success: true,
    });
    const bad = await call(server.url, "POST", "/api/v1/tokens", "a=nope", form);
    assert.deepEqual([bad.status, bad.json?.success, bad.json?.code], [403, false, "invalid_token"]);
    assert.equal(typeof bad.json?.message, "string");
    const big = await call(server.url, "POST", "/api/v1/tokens", `a=${"x".repeat(101)}`, form);
    assert.deepEqual([big.status, big.json?.code], [413, "auth_too_large"]);
    assert.equal((await call(server.url, "POST", "/api/v1/tokens", "", form)).status, 403);
  });

  it("POST /api/v1/rooms makes unguessable room names and URLs", async () => {
    const a = await call(server.url, "POST", "/api/v1/rooms", "", "application/x-www-form-urlencoded");
    const b = await call(server.url, "POST", "/api/v1/rooms");
    assert.equal(a.json?.success, true);
    assert.match(a.json?.name as string, /^[\w-]{22}$/);
    assert.equal(a.json?.url, `${server.url}/${a.json?.name}`);
    assert.notEqual(a.json?.name, b.json?.name);
  });

  it("GET /api/v1/stats: Runtime and Hub, connections with details=1", async () => {
    const peer = await Peer.connect(server.url);
    try {
      const plain = await call(server.url, "GET", "/api/v1/stats");
      assert.deepEqual(Object.keys(plain.json ?? {}), ["Runtime", "Hub"]);
      const runtime = plain.json?.Runtime as Doc;
      assert.ok((runtime.Rss as number) > 0);
      assert.equal(typeof runtime.EventLoopLagMs, "number");
      const hub = (plain.json as Doc).Hub as Doc;
      assert.ok((hub.Sessions as number) >= 1);
      assert.deepEqual(hub.ConnectionDetails, []);
      // Details name rooms, and room names are Spreed's only access control: operator only.
      const anonymous = await call(server.url, "GET", "/api/v1/stats?details=1");
      assert.equal(anonymous.status, 401);
      assert.deepEqual([anonymous.json?.success, anonymous.json?.code], [false, "unauthorized"]);
      assert.doesNotMatch(anonymous.text, /"Room"/);
      const detailed = await call(server.url, "GET", "/api/v1/stats?details=1", undefined, undefined, {
        authorization: `Bearer ${ADMIN_TOKEN}`,
      });
      const details = ((detailed.json as Doc).Hub as Doc).ConnectionDetails as Doc[];
      assert.ok(details.length >= 1);
      assert.deepEqual(Object.keys(details[0] ?? {}), ["Id", "Room", "Userid", "Ua", "Connected"]);
    } finally {
      peer.close();
    }
  });

  it("disabled features answer 404 text/plain: users, registration, tokens, stats", async () => {
    const off = await startServer({ SPREED_USERS_ENABLED: "false" });
    const noReg = await startServer({ SPREED_USERS_ALLOW_REGISTRATION: "false" });
    try {
      for (const [url, method, path] of [
        [off.url, "POST", "/api/v1/users"],
        [off.url, "PATCH", "/api/v1/sessions/x/"],
        [off.url, "POST", "/api/v1/tokens"],
        [off.url, "GET", "/api/v1/stats"],
        [noReg.url, "POST", "/api/v1/users"],
      ] as const) {
        const r =
          method === "GET"
            ? await call(url, method, path)
            : await call(url, method, path, '{"id":"x","sid":"y"}', "application/json");
        assert.equal(r.status, 404, `${method} ${path}`);
        assert.match(r.type, /^text\/plain/);
      }
      assert.equal((await call(off.url, "GET", "/api/v1/config")).json?.UsersEnabled, false);
      assert.equal((await call(noReg.url, "GET", "/api/v1/config")).json?.UsersAllowRegistration, false);
    } finally {
      await off.close();
      await noReg.close();
    }
  });

  it("POST /api/v1/users errors: content type, unreadable body, no live session", async () => {
    const bad = await call(server.url, "POST", "/api/v1/users", "x", "text/plain");
    assert.deepEqual([bad.status, bad.json?.code], [400, "users_invalid_request"]);
    for (const body of ["{", '{"id":5}', "{}"]) {
      const r = await call(server.url, "POST", "/api/v1/users", body, "application/json");
      assert.deepEqual([r.status, r.json?.code, r.json?.success], [400, "users_bad_request", false], body);
    }
    const dead = await call(server.url, "POST", "/api/v1/users", '{"id":"x","sid":"y"}', "application/json");
    assert.deepEqual([dead.status, dead.json?.code], [403, "users_invalid_session"]);
  });
});

describe("Spreed channeling WebSocket", () => {
  it("sends Self on connect with Id, Sid, Token, Version, TURN credentials and STUN", async () => {
    const ws = new WebSocket(`${server.url.replace("http", "ws")}/ws`);
    const first = await new Promise<Doc>((resolve) => ws.once("message", (raw) => resolve(JSON.parse(raw.toString()))));
    ws.close();
    assert.deepEqual(Object.keys(first), ["From", "To", "Data", "Iid", "A"]);
    const self = first.Data as Doc;
    assert.equal(self.Type, "Self");
    assert.equal(first.To, self.Id);
    for (const k of ["Id", "Sid", "Token", "Version"]) assert.ok((self[k] as string).length > 0, k);
    assert.equal(self.Userid, "");
    assert.deepEqual(self.Stun, ["stun:stun.example.org:3478"]);
    const turn = self.Turn as Doc;
    assert.match(turn.username as string, new RegExp(`^\\d+:${self.Id}$`));
    const { createHmac } = await import("node:crypto");
    assert.equal(
      turn.password,
      createHmac("sha1", "turn-shared-secret")
        .update(turn.username as string)
        .digest("base64"),
    );
    assert.deepEqual(turn.urls, ["turn:turn.example.org:3478?transport=udp"]);
  });

  it("relays Offer, Answer, Candidate and Bye between two sessions of a room", async () => {
    const a = await Peer.connect(server.url);
    const b = await Peer.connect(server.url);
    try {
      a.send("Hello", { Version: "1.0", Ua: "peer-a", Id: "signaling-room" }, "h1");
      const welcome = await a.next("Welcome");
      assert.equal(welcome.Iid, "h1");
      const aId = (((welcome.Data as Doc).Users as Doc[])[0] as Doc).Id as string;
      b.send("Hello", { Version: "1.0", Ua: "peer-b", Id: "signaling-room" });
      await b.next("Welcome");
      const joined = await a.next("Joined");
      const bId = (joined.Data as Doc).Id as string;
      assert.equal((joined.Data as Doc).Ua, "peer-b");
      a.send("Offer", { To: bId, Type: "Offer", Offer: { type: "offer", sdp: "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n" } });
      const offer = await b.next("Offer");
      assert.equal(offer.From, aId);
      assert.deepEqual((offer.Data as Doc).Offer, { type: "offer", sdp: "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n" });
      b.send("Answer", { To: aId, Type: "Answer", Answer: { type: "answer", sdp: "v=0\r\n" } });
      assert.deepEqual(((await a.next("Answer")).Data as Doc).Answer, { type: "answer", sdp: "v=0\r\n" });
      const candidate = {
        type: "candidate",
        sdpMLineIndex: 0,
        sdpMid: "0",
        candidate: "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host",
      };
      b.send("Candidate", { To: aId, Type: "Candidate", Candidate: candidate });
      const got = await a.next("Candidate");
      assert.equal(got.From, bId);
      assert.deepEqual((got.Data as Doc).Candidate, candidate);
      a.send("Bye", { To: bId, Type: "Bye", Bye: { Reason: "done" } });
      assert.deepEqual(((await b.next("Bye")).Data as Doc).Bye, { Reason: "done" });
      // Not to a session outside the room.
      const c = await Peer.connect(server.url);
      c.send("Self", {});
      const cId = (await c.self()).Id as string;
      c.send("Hello", { Id: "elsewhere" });
      await c.next("Welcome");
      a.send("Offer", { To: cId, Type: "Offer", Offer: { type: "offer", sdp: "v=0" } });
      assert.equal(((await a.next("Error")).Data as Doc).Code, "unknown_session");
      c.close();
      b.close();
      const left = await a.next("Left");
      assert.equal((left.Data as Doc).Id, bId);
    } finally {
      a.close();
      b.close();
    }
  });

  it("register → PATCH session → Authentication → Users shows the user id", async () => {
    const peer = await Peer.connect(server.url);
    const other = await Peer.connect(server.url);
    try {
      peer.send("Self", {});
      const self = await peer.self();
      const reg = await call(
        server.url,
        "POST",
        "/api/v1/users",
        JSON.stringify({ id: self.Id, sid: self.Sid }),
        "application/json",
      );
      assert.equal(reg.status, 200);
      assert.deepEqual(Object.keys(reg.json ?? {}), [
        "success",
        "userid",
        "useridcombo",
        "timestamp",
        "secret",
        "nonce",
      ]);
      const userid = reg.json?.userid as string;
      assert.match(userid, /^[0-9a-f-]{36}@local$/);
      assert.equal(reg.json?.useridcombo, `${reg.json?.timestamp}:${userid}`);
      assert.ok((reg.json?.timestamp as number) > Date.now() / 1000 + 364 * 86400);
      // The form body works as well.
      const formReg = await call(
        server.url,
        "POST",
        "/api/v1/users",
        new URLSearchParams({ id: self.Id as string, sid: self.Sid as string }).toString(),
        "application/x-www-form-urlencoded",
      );
      assert.equal(formReg.status, 200);

      const patch = (body: Doc, id = self.Id as string) =>
        call(
          server.url,
          "PATCH",
          `/api/v1/sessions/${encodeURIComponent(id)}/`,
          JSON.stringify(body),
          "application/json",
        );
      const good = { id: self.Id, sid: self.Sid, useridcombo: reg.json?.useridcombo, secret: reg.json?.secret };
      const failed = { success: false, code: "session_patch_failed", message: "session patch failed" };
      for (const bad of [
        { ...good, sid: "wrong" },
        { ...good, secret: "wrong" },
        { ...good, useridcombo: `1:${userid}` },
        { ...good, useridcombo: `${(reg.json?.timestamp as number) + 1}:${userid}` },
        { ...good, id: "someone-else" },
      ]) {
        const r = await patch(bad);
        assert.deepEqual([r.status, r.json], [403, failed], JSON.stringify(bad));
      }
      assert.deepEqual([(await patch(good, "other-path-id")).status], [403]);
      assert.deepEqual(
        (await call(server.url, "PATCH", `/api/v1/sessions/${self.Id}/`, "{", "application/json")).json,
        failed,
      );
      const ok = await patch(good);
      assert.equal(ok.status, 200);
      assert.deepEqual(Object.keys(ok.json ?? {}), ["success", "userid", "nonce"]);
      assert.equal(ok.json?.userid, userid);

      peer.send("Hello", { Ua: "authed", Id: "users-room" });
      await peer.next("Welcome");
      other.send("Hello", { Ua: "watcher", Id: "users-room" });
      await other.next("Welcome");
      peer.send("Authentication", { Authentication: { Userid: userid, Nonce: "forged" } });
      assert.equal(((await peer.next("Error")).Data as Doc).Code, "authentication_failed");
      peer.send("Authentication", { Userid: userid, Nonce: ok.json?.nonce }, "auth-1");
      const fresh = await peer.next("Self");
      assert.equal(fresh.Iid, "auth-1");
      assert.equal((fresh.Data as Doc).Userid, userid);
      assert.equal((fresh.Data as Doc).Suserid, userid);
      other.send("Users", {}, "u1");
      const users = await other.next("Users");
      assert.equal(users.Iid, "u1");
      const entry = ((users.Data as Doc).Users as Doc[]).find((u) => u.Id === self.Id);
      assert.deepEqual(entry, { Type: "Online", Id: self.Id, Userid: userid, Ua: "authed", Status: null, Prio: 100 });
      // A nonce is good once.
      peer.send("Authentication", { Userid: userid, Nonce: ok.json?.nonce });
      assert.equal(((await peer.next("Error")).Data as Doc).Code, "authentication_failed");
    } finally {
      peer.close();
      other.close();
    }
  });

  it("echoes Alive, answers bad frames with an Error and stays open, reclaims a session by token", async () => {
    const peer = await Peer.connect(server.url);
    peer.send("Self", {});
    const self = await peer.self();
    peer.send("Alive", 1700000000123, "a1");
    const alive = await peer.next("Alive");
    assert.deepEqual([alive.Iid, (alive.Data as Doc).Alive], ["a1", 1700000000123]);
    peer.ws.send("{not json");
    assert.equal(((await peer.next("Error")).Data as Doc).Code, "bad_request");
    peer.ws.send(JSON.stringify({ Type: "Teleport" }));
    assert.equal(((await peer.next("Error")).Data as Doc).Code, "unknown_type");
    peer.ws.send(JSON.stringify([1, 2]));
    assert.equal(((await peer.next("Error")).Data as Doc).Code, "bad_request");
    peer.send("Alive", 1);
    await peer.next("Alive");
    peer.close();
    const again = await Peer.connect(server.url, self.Token as string);
    again.send("Self", {});
    const reclaimed = await again.self();
    assert.deepEqual([reclaimed.Id, reclaimed.Sid], [self.Id, self.Sid]);
    again.close();
    const forged = await Peer.connect(server.url, "forged-token");
    forged.send("Self", {});
    assert.notEqual((await forged.self()).Id, self.Id);
    forged.close();
  });

  it("buddy pictures from Status are served at /static/img/buddy/{flags}/{imageid}/{idx}", async () => {
    const png = Buffer.from(
      "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==",
      "base64",
    );
    const a = await Peer.connect(server.url);
    const b = await Peer.connect(server.url);
    try {
      a.send("Hello", { Id: "pictures" });
      b.send("Hello", { Id: "pictures" });
      await a.next("Welcome");
      await b.next("Welcome");
      a.send("Status", { displayName: "Ann", buddyPicture: `data:image/png;base64,${png.toString("base64")}` });
      const status = await b.next("Status");
      const shown = (status.Data as Doc).Status as Doc;
      assert.equal(shown.displayName, "Ann");
      assert.equal((status.Data as Doc).Rev, 1);
      const m = /^img:([\w-]+)\/(picture\.png)$/.exec(shown.buddyPicture as string);
      assert.ok(m, String(shown.buddyPicture));
      const res = await fetch(`${server.url}/static/img/buddy/s46/${m[1]}/${m[2]}`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-type"), "image/png");
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), png);
      assert.equal((await fetch(`${server.url}/static/img/buddy/s46/nope/picture.png`)).status, 404);
      a.send("Status", { buddyPicture: "data:text/html;base64,PGgxPg==" });
      assert.equal(((await a.next("Error")).Data as Doc).Code, "bad_request");
      a.close();
      await b.next("Left");
      assert.equal(
        (await fetch(`${server.url}/static/img/buddy/s46/${m[1]}/${m[2]}`)).status,
        404,
        "gone with its session",
      );
    } finally {
      a.close();
      b.close();
    }
  });

  it("chat with receipts; sessions count into the bound app's signaling usage", async () => {
    const app = await createApp(server.url);
    const counted = await startServer({ SPREED_APP_ID: app.appId }, server.dataDir);
    try {
      const a = await Peer.connect(counted.url);
      const b = await Peer.connect(counted.url);
      a.send("Hello", { Id: "chat" });
      b.send("Hello", { Id: "chat" });
      await a.next("Welcome");
      await b.next("Welcome");
      a.send("Chat", { Type: "Chat", Chat: { Message: "hi", Mid: "m1", NoEcho: true } }, "c1");
      const receipt = await a.next("Chat");
      assert.deepEqual((receipt.Data as Doc).Chat, { Mid: "m1", Status: { State: "sent" } });
      const got = ((await b.next("Chat")).Data as Doc).Chat as Doc;
      assert.equal(got.Message, "hi");
      assert.match(got.Time as string, /^\d{4}-/);
      a.close();
      b.close();
      const res = await fetch(`${counted.url}/tenants/${app.tenantId}/apps/${app.appId}`, {
        headers: { "x-auth-token": app.authToken },
      });
      const usage = ((await res.json()) as { usage_summary: Record<string, { signaling: number }> }).usage_summary;
      const month = Object.values(usage)[0];
      assert.equal(month?.signaling, 2);
    } finally {
      await counted.close();
    }
  });
});

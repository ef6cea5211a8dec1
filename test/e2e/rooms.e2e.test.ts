/**
 * The realtime rooms API (seed 003) on a real server: the four documented curl examples,
 * every documented error body field by field, paging under concurrent change, expiry,
 * isolation between apps, and the same RPCs over Connect and gRPC.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { bufCurl, createApp, setTenantStatus, startServer, type TestServer } from "../helpers/server.js";

type Json = Record<string, unknown>;

const newApp = createApp;

function client(url: string, token: string | undefined) {
  return async (method: string, path: string, body?: string, contentType = "application/json") => {
    const headers: Record<string, string> = {};
    if (token !== undefined) headers["x-vcs-token"] = token;
    if (contentType !== "") headers["Content-Type"] = contentType;
    const res = await fetch(url + path, { method, headers, ...(body === undefined ? {} : { body }) });
    const text = await res.text();
    return { status: res.status, json: (text === "" ? {} : JSON.parse(text)) as Json };
  };
}

const ROOM_KEYS_ALL = [
  "id",
  "name",
  "description",
  "creationTime",
  "conferenceType",
  "autoUpgradeParticipantCount",
  "modificationTime",
  "maxParticipants",
  "roomTokenTTLSeconds",
  "roomTTLSeconds",
  "endpointTTLSeconds",
  "token",
];

function assertRoom(room: unknown, present: string[]): Json {
  const r = room as Json;
  assert.deepEqual(
    Object.keys(r),
    ROOM_KEYS_ALL.filter((k) => present.includes(k)),
  );
  assert.match(r.id as string, /^RO-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(typeof r.creationTime, "number");
  assert.ok(Math.abs((r.creationTime as number) - Date.now()) < 600_000);
  assert.equal(r.modificationTime, r.creationTime);
  assert.equal(r.maxParticipants, 25);
  assert.equal(r.roomTokenTTLSeconds, 86400);
  assert.equal(r.roomTTLSeconds, 86400);
  assert.equal(r.endpointTTLSeconds, 86400);
  assert.match(r.token as string, /^[\w-]+\.[\w-]+\.[\w-]+$/);
  return r;
}

const BASE_KEYS = [
  "id",
  "creationTime",
  "conferenceType",
  "modificationTime",
  "maxParticipants",
  "roomTokenTTLSeconds",
  "roomTTLSeconds",
  "endpointTTLSeconds",
  "token",
];

let server: TestServer;
let app: Awaited<ReturnType<typeof newApp>>;
let api: ReturnType<typeof client>;

before(async () => {
  server = await startServer();
  app = await newApp(server.url);
  api = client(server.url, app.secret);
});
after(() => server.close());

describe("realtime rooms: documented examples", () => {
  let roomA: Json;

  it("curl -X POST with no body creates a MESH room with defaults", async () => {
    const r = await api("POST", "/api/realtime/room");
    assert.equal(r.status, 200);
    assert.deepEqual(Object.keys(r.json as Json), ["room"]);
    const room = assertRoom((r.json as Json).room, BASE_KEYS);
    assert.equal(room.conferenceType, "MESH");
  });

  it('curl -X POST with the documented body (autoUpgradeParticipantCount as "4")', async () => {
    const r = await api(
      "POST",
      "/api/realtime/room",
      '{"name":"Room A","description":"My room description","conferenceType":"MESH","autoUpgradeParticipantCount":"4"}',
    );
    assert.equal(r.status, 200);
    roomA = assertRoom((r.json as Json).room, ROOM_KEYS_ALL);
    assert.equal(roomA.name, "Room A");
    assert.equal(roomA.description, "My room description");
    assert.equal(roomA.autoUpgradeParticipantCount, 4);
    const sfu = await api("POST", "/api/realtime/room", '{"conferenceType":"SFU","autoUpgradeParticipantCount":5}');
    assert.equal(((sfu.json as Json).room as Json).conferenceType, "SFU");
  });

  it("curl GET /api/realtime/room/{id} returns the bare room", async () => {
    const r = await api("GET", `/api/realtime/room/${roomA.id}`);
    assert.equal(r.status, 200);
    const room = assertRoom(r.json, ROOM_KEYS_ALL);
    assert.deepEqual({ ...room, token: "" }, { ...roomA, token: "" });
  });

  it("curl GET /api/realtime/room lists up to 25; ?numberOfRecords=10&token= continues", async () => {
    const own = await newApp(server.url);
    const call = client(server.url, own.secret);
    const ids: string[] = [];
    for (let i = 0; i < 37; i++)
      ids.push(((await call("POST", "/api/realtime/room", `{"name":"r${i}"}`)).json.room as Json).id as string);
    const first = await call("GET", "/api/realtime/room");
    assert.equal(first.status, 200);
    assert.deepEqual(Object.keys(first.json as Json), ["data", "token"]);
    const data = (first.json as Json).data as Json[];
    assert.equal(data.length, 25);
    for (const room of data) assertRoom(room, [...BASE_KEYS, "name"]);
    assert.deepEqual(
      data.map((r) => r.id),
      ids.slice(0, 25),
    );
    const next = await call("GET", `/api/realtime/room?numberOfRecords=10&token=${(first.json as Json).token}`);
    assert.deepEqual(
      ((next.json as Json).data as Json[]).map((r) => r.id),
      ids.slice(25, 35),
    );
    const last = await call("GET", `/api/realtime/room?numberOfRecords=10&token=${(next.json as Json).token}`);
    assert.deepEqual(Object.keys(last.json as Json), ["data"], "no token on the last page");
    assert.deepEqual(
      ((last.json as Json).data as Json[]).map((r) => r.id),
      ids.slice(35),
    );
    const empty = await client(server.url, (await newApp(server.url)).secret)("GET", "/api/realtime/room");
    assert.deepEqual(empty.json, { data: [] });
  });

  it("curl -X DELETE /api/realtime/room?id= answers {room} as it was; the room is gone", async () => {
    const r = await api("DELETE", `/api/realtime/room?id=${roomA.id}`, undefined, "");
    assert.equal(r.status, 200);
    assert.deepEqual(Object.keys(r.json as Json), ["room"]);
    const room = assertRoom((r.json as Json).room, ROOM_KEYS_ALL);
    assert.equal(room.id, roomA.id);
    const gone = await api("GET", `/api/realtime/room/${roomA.id}`);
    assert.equal(gone.status, 400);
  });
});

describe("realtime rooms: documented error bodies", () => {
  const expectError = (r: { status: number; json: Json }, body: Json) => {
    assert.equal(r.status, body.httpCode);
    assert.deepEqual(r.json, body);
    assert.deepEqual(Object.keys(r.json as Json), ["httpCode", "code", "id", "description"]);
  };

  it("x-vcs-token missing → 401 BASE-00001 on every endpoint", async () => {
    const anon = client(server.url, undefined);
    const missing = { httpCode: 401, code: "BASE-00001", id: null, description: ["Authorization missing."] };
    expectError(await anon("POST", "/api/realtime/room"), missing);
    expectError(await anon("GET", "/api/realtime/room"), missing);
    expectError(await anon("GET", "/api/realtime/room/RO-x"), missing);
    expectError(await anon("DELETE", "/api/realtime/room?id=RO-x"), missing);
    expectError(await client(server.url, "")("GET", "/api/realtime/room"), missing);
  });

  it("x-vcs-token invalid → 400 REALTIME-00009 INVALID_TOKEN naming the token", async () => {
    const token = "ce0ef13256b4eff41bef65af69f53ae750a81c15fd124c235a59eecaa766105bc";
    expectError(await client(server.url, token)("GET", "/api/realtime/room"), {
      httpCode: 400,
      code: "REALTIME-00009",
      id: "INVALID_TOKEN",
      description: [`The token ::= [${token}] is invalid.`],
    });
  });

  it("POST: invalid JSON → BASE-00014, wrong content type → 415 BASE-00017", async () => {
    const invalidJson = {
      httpCode: 400,
      code: "BASE-00014",
      id: null,
      description: ["The passed JSON body is invalid."],
    };
    expectError(await api("POST", "/api/realtime/room", '{"name":'), invalidJson);
    expectError(await api("POST", "/api/realtime/room", "[1]"), invalidJson);
    expectError(await api("POST", "/api/realtime/room", '{"name":5}'), invalidJson);
    expectError(await api("POST", "/api/realtime/room", '{"autoUpgradeParticipantCount":"four"}'), invalidJson);
    expectError(await api("POST", "/api/realtime/room", "name=x", "text/plain"), {
      httpCode: 415,
      code: "BASE-00017",
      id: null,
      description: ["Passed media type is not supported."],
    });
  });

  it("POST: name over 512 → BASE-00013 STRING_SIZE; description over 2048 likewise", async () => {
    expectError(await api("POST", "/api/realtime/room", JSON.stringify({ name: "n".repeat(513) })), {
      httpCode: 400,
      code: "BASE-00013",
      id: "STRING_SIZE",
      description: ["The parameter with name ::= [name] is larger than ::= [512] characters"],
    });
    expectError(await api("POST", "/api/realtime/room", JSON.stringify({ description: "d".repeat(2049) })), {
      httpCode: 400,
      code: "BASE-00013",
      id: "STRING_SIZE",
      description: ["The parameter with name ::= [description] is larger than ::= [2048] characters"],
    });
    assert.equal((await api("POST", "/api/realtime/room", JSON.stringify({ name: "n".repeat(512) }))).status, 200);
  });

  it("GET: numberOfRecords out of 1..100 → BASE-00015 NUMBER_SIZE", async () => {
    for (const n of ["0", "101", "-5"]) {
      expectError(await api("GET", `/api/realtime/room?numberOfRecords=${n}`), {
        httpCode: 400,
        code: "BASE-00015",
        id: "NUMBER_SIZE",
        description: ["The parameter with name ::= [numberOfRecords] is is not within the range from ::= [1] to [100]"],
      });
    }
    for (const n of ["1", "100"])
      assert.equal((await api("GET", `/api/realtime/room?numberOfRecords=${n}`)).status, 200);
  });

  it("DELETE or GET of a missing room → REALTIME-00004", async () => {
    const id = "RO-fafd9427-fedf-4e58-9150-97d86a25fe58";
    const body = {
      httpCode: 400,
      code: "REALTIME-00004",
      id: "CONFERENCE_ROOM_DOES_NOT_EXIST",
      description: [`A conference room with id ::= [${id}] does not exist.`],
    };
    expectError(await api("DELETE", `/api/realtime/room?id=${id}`), body);
    expectError(await api("GET", `/api/realtime/room/${id}`), body);
    expectError(await api("DELETE", "/api/realtime/room"), {
      ...body,
      description: ["A conference room with id ::= [] does not exist."],
    });
  });

  it("our additions keep the envelope: bad values, bad page tokens, unknown routes", async () => {
    const type = await api("POST", "/api/realtime/room", '{"conferenceType":"P2P"}');
    assert.deepEqual([type.status, type.json.code, type.json.id], [400, "BASE-00016", "INVALID_VALUE"]);
    const upgrade = await api("POST", "/api/realtime/room", '{"autoUpgradeParticipantCount":1}');
    assert.deepEqual([upgrade.status, upgrade.json.code], [400, "BASE-00015"]);
    assert.deepEqual(
      (upgrade.json.description as string[])[0],
      "The parameter with name ::= [autoUpgradeParticipantCount] is is not within the range from ::= [2] to [25]",
    );
    const notNumber = await api("GET", "/api/realtime/room?numberOfRecords=ten");
    assert.deepEqual(
      [notNumber.status, notNumber.json.code, notNumber.json.id],
      [400, "BASE-00012", "INVALID_PARAMETER"],
    );
    const badPage = await api("GET", "/api/realtime/room?token=B53AF55E");
    assert.deepEqual(badPage.json, {
      httpCode: 400,
      code: "REALTIME-00009",
      id: "INVALID_TOKEN",
      description: ["The token ::= [B53AF55E] is invalid."],
    });
    const unknown = await api("GET", "/api/realtime/rooms");
    assert.deepEqual([unknown.status, unknown.json.code], [404, "BASE-00004"]);
    const method = await api("PUT", "/api/realtime/room");
    assert.deepEqual([method.status, method.json.code], [405, "BASE-00005"]);
  });
});

describe("realtime rooms: paging, isolation, credentials", () => {
  it("walks 260 rooms with concurrent inserts and deletes: none skipped, none repeated", async () => {
    const own = await newApp(server.url);
    const call = client(server.url, own.secret);
    const original: string[] = [];
    for (let batch = 0; batch < 13; batch++) {
      const made = await Promise.all(Array.from({ length: 20 }, () => call("POST", "/api/realtime/room")));
      for (const m of made) original.push((m.json.room as Json).id as string);
    }
    const deletedDuringWalk = new Set<string>();
    const seen: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const page = await call("GET", `/api/realtime/room?numberOfRecords=9${token ? `&token=${token}` : ""}`);
      assert.equal(page.status, 200);
      seen.push(...((page.json.data as Json[]) ?? []).map((r) => r.id as string));
      token = page.json.token as string | undefined;
      pages++;
      // Change the set while walking: new rooms arrive, some old and new ones leave.
      const churn = [call("POST", "/api/realtime/room"), call("POST", "/api/realtime/room")];
      const victim = original[(pages * 37) % original.length] as string;
      if (!deletedDuringWalk.has(victim)) {
        deletedDuringWalk.add(victim);
        churn.push(call("DELETE", `/api/realtime/room?id=${victim}`));
      }
      await Promise.all(churn);
    } while (token !== undefined && pages < 200);
    assert.equal(new Set(seen).size, seen.length, "no room repeated");
    for (const id of original) {
      if (!deletedDuringWalk.has(id))
        assert.ok(seen.includes(id), `room ${id} existed for the whole walk but was skipped`);
    }
    assert.ok(seen.length > 260 - deletedDuringWalk.size, "rooms created during the walk may appear too");
  });

  it("isolates apps: another app's rooms do not exist for it, its page tokens are invalid", async () => {
    const a = await newApp(server.url);
    const b = await newApp(server.url);
    const callA = client(server.url, a.secret);
    const callB = client(server.url, b.secret);
    const room = (await callA("POST", "/api/realtime/room", '{"name":"private"}')).json.room as Json;
    for (let i = 0; i < 3; i++) await callA("POST", "/api/realtime/room");
    assert.equal((await callB("GET", `/api/realtime/room/${room.id}`)).json.code, "REALTIME-00004");
    assert.equal((await callB("DELETE", `/api/realtime/room?id=${room.id}`)).json.code, "REALTIME-00004");
    assert.deepEqual((await callB("GET", "/api/realtime/room")).json, { data: [] });
    const pageA = await callA("GET", "/api/realtime/room?numberOfRecords=1");
    const stolen = await callB("GET", `/api/realtime/room?numberOfRecords=1&token=${pageA.json.token}`);
    assert.equal(stolen.json.code, "REALTIME-00009");
    assert.equal((await callA("GET", `/api/realtime/room/${room.id}`)).status, 200);
  });

  it("a renewed secret key, a suspended app or a suspended tenant makes the token invalid", async () => {
    const own = await newApp(server.url);
    const headers = { "x-auth-token": own.authToken, "content-type": "application/json" };
    const appUrl = `${server.url}/tenants/${own.tenantId}/apps/${own.appId}`;
    const renewed = (await (await fetch(`${appUrl}/secretkey`, { method: "POST", headers })).json()) as Json;
    assert.equal((await client(server.url, own.secret)("GET", "/api/realtime/room")).json.code, "REALTIME-00009");
    const call = client(server.url, renewed.secretkey as string);
    assert.equal((await call("GET", "/api/realtime/room")).status, 200);
    await fetch(appUrl, { method: "PUT", headers, body: '{"status":"suspended"}' });
    assert.equal((await call("GET", "/api/realtime/room")).json.code, "REALTIME-00009");
    await fetch(appUrl, { method: "PUT", headers, body: '{"status":"active"}' });
    assert.equal((await call("GET", "/api/realtime/room")).status, 200);
    await setTenantStatus(server.url, own.tenantId, "suspended");
    assert.equal((await call("GET", "/api/realtime/room")).json.code, "REALTIME-00009");
    await setTenantStatus(server.url, own.tenantId, "active");
    const appDeleted = await fetch(appUrl, { method: "DELETE", headers });
    assert.equal(appDeleted.status, 200);
    assert.equal((await call("GET", "/api/realtime/room")).json.code, "REALTIME-00009");
  });

  it("serves the same RPCs over Connect and gRPC with x-vcs-token metadata", async () => {
    for (const protocol of [
      ["--protocol", "connect"],
      ["--protocol", "grpc", "--http2-prior-knowledge"],
    ]) {
      const call = (method: string, body: unknown, token = app.secret) =>
        bufCurl([
          ...protocol,
          "-H",
          `x-vcs-token: ${token}`,
          "-d",
          JSON.stringify(body),
          `${server.url}/rtcplane.rooms.v1.RoomService/${method}`,
        ]);
      const created = await call("CreateRoom", { name: "rpc", conferenceType: "SFU", autoUpgradeParticipantCount: 3 });
      assert.equal(created.code, 0, created.stderr);
      const room = (JSON.parse(created.stdout) as { room: Json }).room;
      assert.equal(room.conferenceType, "SFU");
      const rest = await api("GET", `/api/realtime/room/${room.id}`);
      assert.equal(rest.json.name, "rpc");
      assert.equal(String(rest.json.creationTime), room.creationTime, "int64 is a string in proto3 JSON");
      const missing = await call("GetRoom", { id: "RO-none" });
      assert.match(missing.stderr, /not_found/);
      const detail = (JSON.parse(missing.stderr) as { details: { type: string; value: string }[] }).details[0];
      assert.equal(detail?.type, "google.rpc.ErrorInfo");
      assert.ok(Buffer.from(detail?.value ?? "", "base64").includes("CONFERENCE_ROOM_DOES_NOT_EXIST"));
      const denied = await call("ListRooms", {}, "bogus");
      assert.match(denied.stderr, /unauthenticated/);
    }
  });
});

describe("realtime rooms: expiry", () => {
  it("deletes rooms unused for roomTTLSeconds; fetching a room keeps it alive", async () => {
    const short = await startServer({
      ROOM_TTL_SECONDS: "1",
      ROOM_SWEEP_INTERVAL_MS: "100",
      ROOM_USE_FLUSH_INTERVAL_MS: "100",
    });
    try {
      const own = await newApp(short.url);
      const call = client(short.url, own.secret);
      const idle = ((await call("POST", "/api/realtime/room")).json.room as Json).id as string;
      const busy = ((await call("POST", "/api/realtime/room")).json.room as Json).id as string;
      assert.equal((await call("GET", `/api/realtime/room/${idle}`)).json.roomTTLSeconds, 1);
      for (let i = 0; i < 8; i++) {
        await new Promise((r) => setTimeout(r, 250));
        assert.equal((await call("GET", `/api/realtime/room/${busy}`)).status, 200, `busy room gone after ${i}`);
      }
      assert.equal((await call("GET", `/api/realtime/room/${idle}`)).json.code, "REALTIME-00004");
      assert.deepEqual(
        ((await call("GET", "/api/realtime/room")).json.data as Json[]).map((r) => r.id),
        [busy],
      );
    } finally {
      await short.close();
    }
  });
});

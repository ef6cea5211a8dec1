/** Room tokens: signed, room- and app-scoped, expiring after roomTokenTTLSeconds. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeJwt } from "jose";
import { ServerKey } from "../../src/auth/server-key.js";
import { TurnCredentials, turnCredential } from "../../src/auth/turn-credentials.js";
import { RoomTokenError, RoomTokens } from "../../src/rooms/room-tokens.js";
import { tempDir } from "../helpers/server.js";

describe("RoomTokens", () => {
  const key = ServerKey.loadOrCreate(tempDir("rtcplane-rt-"));
  let now = Date.UTC(2026, 0, 1);
  const tokens = new RoomTokens(key, () => now);

  it("carries the room, the app and role USER, and verifies until it expires", async () => {
    now = Date.UTC(2026, 0, 1);
    const token = tokens.issue("RO-1", "app-1", 60, 3);
    const claims = decodeJwt(token);
    assert.equal(claims.sub, "RO-1");
    assert.equal(claims.app, "app-1");
    assert.equal(claims.role, "USER");
    assert.equal((claims.exp ?? 0) - (claims.iat ?? 0), 60);
    assert.deepEqual(await tokens.verify(token), {
      roomId: "RO-1",
      appId: "app-1",
      role: "USER",
      expiresAtMs: now + 60_000,
      tokenId: claims.jti,
      credentialGen: 3,
    });
    now += 59_000;
    assert.equal((await tokens.verify(token)).roomId, "RO-1");
    now += 2_000;
    await assert.rejects(tokens.verify(token), (e: unknown) => e instanceof RoomTokenError && e.kind === "expired");
  });

  it("rejects tampered tokens and tokens of another server", async () => {
    now = Date.UTC(2026, 0, 1);
    const token = tokens.issue("RO-1", "app-1", 60, 3);
    const [h, p, s] = token.split(".");
    const forged = Buffer.from(JSON.stringify({ ...decodeJwt(token), sub: "RO-2" })).toString("base64url");
    for (const bad of [`${h}.${forged}.${s}`, `${h}.${p}.${s?.slice(0, -2)}xx`, "not.a.jwt", ""]) {
      await assert.rejects(tokens.verify(bad), (e: unknown) => e instanceof RoomTokenError && e.kind === "invalid");
    }
    const other = new RoomTokens(ServerKey.loadOrCreate(tempDir("rtcplane-rt-")), () => now);
    await assert.rejects(other.verify(token), RoomTokenError);
    const none = `${Buffer.from('{"alg":"none"}').toString("base64url")}.${p}.`;
    await assert.rejects(tokens.verify(none), RoomTokenError);
  });

  it("carries TURN REST credentials for its own id when a TURN server is configured, none otherwise", () => {
    now = Date.UTC(2026, 0, 1);
    assert.equal(decodeJwt(tokens.issue("RO-1", "app-1", 60, 1)).iceServers, undefined);
    const secret = "turn-secret-0123456789";
    const turn = new TurnCredentials({ uris: ["turn:127.0.0.1:3478"], secret, ttlSeconds: 600 }, () => now);
    const claims = decodeJwt(new RoomTokens(key, () => now, turn).issue("RO-1", "app-1", 60, 1));
    const [server] = claims.iceServers as { urls: string[]; username: string; credential: string }[];
    assert.deepEqual(server?.urls, ["turn:127.0.0.1:3478"]);
    assert.equal(server?.username, `${now / 1000 + 600}:${claims.jti}`);
    assert.equal(server?.credential, turnCredential(secret, server?.username ?? ""));
  });
});

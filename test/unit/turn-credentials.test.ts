/** TURN REST API credentials (src/auth/turn-credentials.ts) and the TURN settings of config.ts. */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { describe, it } from "node:test";
import { TurnCredentials, turnCredential } from "../../src/auth/turn-credentials.js";
import { ConfigError, loadConfig } from "../../src/config.js";

const NOW = Date.UTC(2026, 10, 24, 8, 0, 0);
const SETTINGS = { uris: ["turn:t.example.com:3478?transport=udp"], secret: "0123456789abcdef", ttlSeconds: 600 };

describe("TurnCredentials", () => {
  it("issues <expiry>:<user> with base64 HMAC-SHA1 of it, TTL seconds ahead", () => {
    const turn = new TurnCredentials(SETTINGS, () => NOW + 999);
    assert.equal(turn.enabled, true);
    const c = turn.issue("user-1");
    const expiresAt = NOW / 1000 + 600;
    assert.deepEqual(c, {
      urls: SETTINGS.uris,
      username: `${expiresAt}:user-1`,
      credential: createHmac("sha1", SETTINGS.secret).update(`${expiresAt}:user-1`).digest("base64"),
      ttlSeconds: 600,
      expiresAt,
    });
    assert.equal(c?.credential, turnCredential(SETTINGS.secret, c?.username ?? ""));
    // The URI list handed out is a copy: a caller cannot change the next one.
    c?.urls.push("turn:evil.example.com");
    assert.deepEqual(turn.issue("user-1")?.urls, SETTINGS.uris);
  });

  it("puts a digest in place of a long or unusual user id; nothing without URIs or a secret", () => {
    const turn = new TurnCredentials(SETTINGS, () => NOW);
    for (const odd of ["x".repeat(129), "ü", "a b", "a\nb", ""]) {
      const user = turn.issue(odd)?.username.split(":")[1] ?? "";
      assert.match(user, /^h\.[A-Za-z0-9_-]{22}$/, JSON.stringify(odd));
    }
    assert.equal(turn.issue("RO-1:jti")?.username.endsWith(":RO-1:jti"), false, "':' is not kept as is");
    assert.equal(new TurnCredentials({ ...SETTINGS, secret: undefined }).issue("u"), undefined);
    assert.equal(new TurnCredentials({ ...SETTINGS, uris: [] }).enabled, false);
  });
});

describe("TURN settings", () => {
  it("TURN settings are validated at start; Spreed's default to them and can be set apart", () => {
    const base = { DATA_DIR: "/tmp/unused", TURN_SECRET: "0123456789abcdef" };
    const refused = (env: Record<string, string>, pattern: RegExp) =>
      assert.throws(
        () => loadConfig({ ...base, ...env }),
        (e: unknown) => e instanceof ConfigError && pattern.test(e.message),
        JSON.stringify(env),
      );
    refused({ TURN_URIS: "stun:turn.example.com" }, /TURN_URIS: "stun:turn.example.com" is not a TURN URI/);
    refused({ TURN_URIS: "turn:turn.example.com:99999" }, /TURN_URIS: .* is not a TURN URI/);
    refused({ TURN_URIS: "turn:turn.example.com?transport=sctp" }, /is not a TURN URI/);
    refused({ TURN_URIS: "turn:a b" }, /is not a TURN URI/);
    refused({ TURN_URIS: "turn:t.example.com", TURN_SECRET: "short" }, /TURN_SECRET must be at least 16/);
    refused({ TURN_URIS: "" }, /TURN_URIS and TURN_SECRET must be set together/);
    refused({ TURN_URIS: "turn:t.example.com", TURN_TTL_SECONDS: "5" }, /TURN_TTL_SECONDS=5 is outside/);
    refused({ TURN_URIS: "turn:t.example.com", SPREED_TURN_URIS: "http://x" }, /SPREED_TURN_URIS: /);

    const uris = "turn:t.example.com:3478?transport=udp, turns:[2001:db8::1]:5349?transport=tcp,turn:192.0.2.7";
    const config = loadConfig({ ...base, TURN_URIS: uris, TURN_TTL_SECONDS: "3600" });
    assert.deepEqual(config.turn, {
      uris: ["turn:t.example.com:3478?transport=udp", "turns:[2001:db8::1]:5349?transport=tcp", "turn:192.0.2.7"],
      secret: "0123456789abcdef",
      ttlSeconds: 3600,
    });
    assert.deepEqual(
      [config.spreed.turnUris, config.spreed.turnSecret, config.spreed.turnTtlSeconds],
      [config.turn.uris, config.turn.secret, 3600],
    );
    const apart = loadConfig({
      ...base,
      TURN_URIS: "turn:t.example.com",
      SPREED_TURN_URIS: "turn:spreed.example.com",
      SPREED_TURN_SECRET: "another-secret-0123",
      SPREED_TURN_TTL_SECONDS: "120",
    });
    assert.deepEqual(
      [apart.spreed.turnUris, apart.spreed.turnSecret, apart.spreed.turnTtlSeconds],
      [["turn:spreed.example.com"], "another-secret-0123", 120],
    );
    const none = loadConfig({ DATA_DIR: "/tmp/unused" });
    assert.deepEqual([none.turn.uris, none.turn.secret, none.spreed.turnUris], [[], undefined, []]);
  });
});

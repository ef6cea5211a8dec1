import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError, loadConfig } from "../../src/config.js";

describe("loadConfig", () => {
  it("has documented defaults", () => {
    const c = loadConfig({});
    assert.equal(c.port, 8080);
    assert.equal(c.longPollTimeoutMs, 5000);
    assert.deepEqual(c.conference.iceServers, []);
    assert.equal(c.adminToken, undefined);
    assert.deepEqual(c.corsOrigins, ["*"]);
    assert.ok(c.dataDir.endsWith("/data"));
    assert.equal(c.media.viewerFeedbackMs, 0);
    assert.equal(loadConfig({ MEDIA_VIEWER_FEEDBACK_MS: "250" }).media.viewerFeedbackMs, 250);
    assert.equal(c.media.viewerBwe, "transport-cc");
    assert.equal(loadConfig({ MEDIA_VIEWER_BWE: "REMB" }).media.viewerBwe, "remb");
    assert.equal(c.media.viewerReadBatchMs, 20);
    assert.equal(loadConfig({ MEDIA_VIEWER_READ_BATCH_MS: "0" }).media.viewerReadBatchMs, 0);
  });

  const bad: [Record<string, string>, RegExp][] = [
    [{ PORT: "http" }, /PORT="http" is not a whole number/],
    [{ PORT: "70000" }, /PORT=70000 is outside 0\.\.65535/],
    [{ LOG_LEVEL: "loud" }, /LOG_LEVEL/],
    [{ ADMIN_TOKEN: "short" }, /ADMIN_TOKEN must be at least 16/],
    [{ TLS_CERT: "/x.pem" }, /TLS_CERT and TLS_KEY must be set together/],
    [{ RTC_MIN_PORT: "50000", RTC_MAX_PORT: "40000" }, /RTC_MIN_PORT=50000 is above RTC_MAX_PORT=40000/],
    [{ ANNOUNCED_IP: "example.com" }, /ANNOUNCED_IP/],
    [{ CORS_ORIGINS: "example.com" }, /CORS_ORIGINS/],
    [{ ICE_SERVERS: "stun:x" }, /ICE_SERVERS must be a JSON array/],
    [{ ICE_SERVERS: '[{"urls":["http://x"]}]' }, /ICE_SERVERS\[0\]\.urls/],
    [{ MEDIA_VIEWER_FEEDBACK_MS: "20" }, /MEDIA_VIEWER_FEEDBACK_MS=20: libwebrtc sends feedback every 50 to 250 ms/],
    [{ MEDIA_VIEWER_FEEDBACK_MS: "1000" }, /MEDIA_VIEWER_FEEDBACK_MS=1000 is outside 0\.\.250/],
    [{ MEDIA_VIEWER_BWE: "gcc" }, /MEDIA_VIEWER_BWE="gcc" is not one of transport-cc, remb/],
    [{ MEDIA_VIEWER_READ_BATCH_MS: "500" }, /MEDIA_VIEWER_READ_BATCH_MS=500 is outside 0\.\.100/],
  ];
  for (const [env, message] of bad) {
    it(`rejects ${JSON.stringify(env)} naming the variable`, () => {
      assert.throws(
        () => loadConfig(env),
        (e: unknown) => e instanceof ConfigError && message.test(e.message),
      );
    });
  }
});

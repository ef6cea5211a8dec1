/**
 * Typed events in a second language: Debian's Python grpcio, with messages compiled from
 * proto/ by protoc, watches a conference over h2c while a REST client joins, publishes from
 * a libwebrtc peer and updates metadata. It reads the payloads' fields by name.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { rest, serviceToken } from "../helpers/conference-client.js";
import { ROOT } from "../helpers/protoc.js";
import { bufCurl, createApp, run, startServer, type TestServer, tempDir } from "../helpers/server.js";
import { RTCPeerConnection, setLocalOffer } from "../helpers/wrtc.js";

const PYTHON = "/usr/bin/python3";

let server: TestServer;
before(async () => {
  server = await startServer({}, undefined, undefined, true);
});
after(() => server.close());

describe("Python grpcio watching typed conference events", () => {
  it("gets ConferenceEvent messages and reads ConferenceStreamPublishedEvent.stream_id by name", async () => {
    const out = tempDir("rtcplane-py-events-");
    const protoc = await run("protoc", [
      `-I${path.join(ROOT, "proto")}`,
      `-I${path.join(ROOT, "node_modules/google-proto-files")}`,
      `--python_out=${out}`,
      "rtcplane/conference/v1/conference.proto",
      "rtcplane/conference/v1/events.proto",
      "rtcplane/options/v1/options.proto",
      "google/api/annotations.proto",
      "google/api/http.proto",
    ]);
    assert.equal(protoc.code, 0, protoc.stderr);
    const app = await createApp(server.url);
    const token = await serviceToken(server.url, app);
    const call = rest(server.url, token);
    const conferenceId = "python-watched";
    assert.equal((await call("POST", "/rtc-api/conferences/create", { conferenceId })).status, 200);

    const child = spawn(
      "env",
      [
        `PYTHONPATH=${out}`,
        PYTHON,
        path.join(ROOT, "test/e2e/python/events_client.py"),
        server.url.replace("http://", ""),
        token,
        conferenceId,
        "4",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    const deadline = Date.now() + 15000;
    while (!stdout.includes("ready")) {
      assert.ok(Date.now() < deadline && child.exitCode === null, `the watcher did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }

    const join = await call("POST", "/rtc-api/conferences/join", {
      conferenceId,
      userEndpointId: "py-pub",
      userId: "alice",
      metadata: { name: "Alice" },
    });
    assert.equal(join.status, 200, join.text);
    const pc = new RTCPeerConnection();
    try {
      pc.addTransceiver("video", { direction: "sendonly" });
      const offer = await setLocalOffer(pc);
      const published = await call("POST", "/rtc-api/conferences/publishStream", {
        conferenceId,
        userEndpointId: "py-pub",
        conferenceStreamType: "SCREEN",
        streamId: "PY-STREAM-1",
        sdpOffer: offer,
      });
      assert.equal(published.status, 200, published.text);
    } finally {
      pc.close();
    }
    const set = await call("POST", "/rtc-api/conferences/updateMetadata", {
      conferenceId,
      userEndpointId: "py-pub",
      key: "topic",
      operation: "SET",
      value: "typed",
    });
    assert.equal(set.status, 204, set.text);

    assert.equal(await exited, 0, stderr);
    const seen = JSON.parse(stdout.slice(stdout.indexOf("\n") + 1)) as Record<string, unknown>[];
    assert.deepEqual(
      seen.map((e) => e.case),
      ["created", "joined", "stream_published", "metadata_updated"],
    );
    assert.equal(seen[0]?.version, undefined, "creation has no version");
    assert.deepEqual(
      seen.slice(1).map((e) => e.version),
      [0, 1, 2],
    );
    assert.equal(seen[1]?.name, "Alice");
    assert.deepEqual([seen[2]?.streamId, seen[2]?.streamType, seen[2]?.userId], ["PY-STREAM-1", "SCREEN", "alice"]);
    assert.deepEqual([seen[3]?.key, seen[3]?.value], ["topic", "typed"]);

    // Reflection serves the event types: buf curl decodes the typed ListEvents answer with
    // nothing but what the server's reflection tells it.
    for (const protocol of [
      ["--protocol", "connect"],
      ["--protocol", "grpc", "--http2-prior-knowledge"],
    ]) {
      const listed = await bufCurl([
        ...protocol,
        "-H",
        `authorization: Bearer ${token}`,
        "-d",
        JSON.stringify({ id: conferenceId, v: "0" }),
        `${server.url}/rtcplane.conference.v1.ConferenceService/ListEvents`,
      ]);
      assert.equal(listed.code, 0, listed.stderr);
      const events = (JSON.parse(listed.stdout) as { events: Record<string, unknown>[] }).events;
      const published = events.find((e) => e.streamPublished !== undefined);
      assert.deepEqual(published?.streamPublished, { streamId: "PY-STREAM-1", streamType: "SCREEN" });
      assert.equal(published?.conferenceVersion, "1", "int64 as the proto JSON mapping has it");
    }
  });
});

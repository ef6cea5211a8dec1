/**
 * The state the OpenAPI contract test's examples (openapi-examples.ts) run against: a tenant
 * with an app, a SERVICE token, a MESH room whose ticket logged in two USERs (alice and bob)
 * who joined its conference, a conference with every kind of event and a published stream,
 * and helpers that make more (apps, conferences, streams and views through the SFU, calls,
 * Spreed sessions and buddy pictures).
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { rest, roomToken, serviceToken, token } from "./conference-client.js";
import { ROOT } from "./protoc.js";
import { uuid } from "./sdk-user.js";
import { ADMIN_TOKEN, createApp, type TestApp } from "./server.js";
import { type Doc, Peer } from "./spreed-peer.js";

export const sdp = (name: string) => fs.readFileSync(path.join(ROOT, "test/fixtures/sdp", `${name}.sdp`), "utf8");
export const CALL_SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";
export const CANDIDATE = {
  candidate: "candidate:1 1 udp 2122063615 127.0.0.1 40000 typ host",
  sdpMLineIndex: 0,
  sdpMid: "0",
};
const PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

export interface User {
  readonly access: string;
  readonly userId: string;
  readonly endpointId: string;
}

/** The state the examples share, and helpers that make more of it. */
export class Fixture {
  private counter = 0;
  private readonly peers: Peer[] = [];
  readonly admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

  private constructor(
    readonly url: string,
    readonly app: TestApp,
    readonly service: string,
    /** A MESH room turning ROUTER at two participants; alice and bob logged in with its ticket. */
    readonly room: { id: string; token: string },
    readonly alice: User,
    readonly bob: User,
  ) {}

  /** A conference with every kind of event, a published stream and metadata. */
  rich = { id: "", streamId: "" };

  static async create(url: string): Promise<Fixture> {
    const app = await createApp(url, { permissions: ["SFU", "TURN"] });
    const service = await serviceToken(url, app);
    const room = await roomToken(url, app, { name: "contract", autoUpgradeParticipantCount: 2 });
    const login = async (): Promise<User> => {
      const r = await token(url, { grant_type: "password", username: room.token, password: "" }, `${app.apikey}:`);
      assert.equal(r.status, 200, JSON.stringify(r.json));
      const access = r.json.access_token as string;
      const userId = r.json.sub as string;
      const endpointId = uuid();
      const reg = await rest(url, access)("POST", "/rtc-api/users/endpoints/register", {
        keepAliveSeconds: 60,
        userEndpointId: endpointId,
        userId,
      });
      assert.equal(reg.status, 200, reg.text);
      return { access, userId, endpointId };
    };
    const alice = await login();
    const bob = await login();
    const f = new Fixture(url, app, service, room, alice, bob);
    // Both join the room's conference: created, joined twice, mode updated.
    for (const u of [alice, bob]) {
      await f.ok(u.access, "join", { conferenceId: room.id, userEndpointId: u.endpointId, userId: u.userId });
    }
    f.rich = await f.richConference();
    return f;
  }

  unique(prefix: string): string {
    this.counter++;
    return `${prefix}-${this.counter}-${Date.now().toString(36)}`;
  }

  bearer(access = this.service): Record<string, string> {
    return { authorization: `Bearer ${access}` };
  }

  get tenantAuth(): Record<string, string> {
    return { "x-auth-token": this.app.authToken };
  }

  get appAuth(): Record<string, string> {
    return { "x-vcs-token": this.app.secret };
  }

  /** A conference-API command that must succeed; its JSON answer. */
  async ok(access: string, command: string, body: unknown): Promise<Record<string, unknown>> {
    const r = await rest(this.url, access)("POST", `/rtc-api/conferences/${command}`, body);
    assert.ok(r.status === 200 || r.status === 204, `${command}: ${r.status} ${r.text}`);
    return (r.json ?? {}) as Record<string, unknown>;
  }

  /** A new ROUTER conference with `endpoints` joined (ids `<conference>-<i>`, users `u<i>`). */
  async conference(endpoints = 1): Promise<{ id: string; endpoints: string[] }> {
    const id = this.unique("conf");
    await this.ok(this.service, "create", { conferenceId: id, mode: "ROUTER" });
    const joined: string[] = [];
    for (let i = 0; i < endpoints; i++) {
      const endpoint = `${id}-${i}`;
      await this.ok(this.service, "join", { conferenceId: id, userEndpointId: endpoint, userId: `u${i}` });
      joined.push(endpoint);
    }
    return { id, endpoints: joined };
  }

  /** Publishes one of Chromium's captured offers through the SFU; the stream id. */
  async publish(conferenceId: string, endpoint: string, offer = "chrome-publish"): Promise<string> {
    const r = await this.ok(this.service, "publishStream", {
      conferenceId,
      userEndpointId: endpoint,
      conferenceStreamType: "MIC_AND_CAM",
      sdpOffer: sdp(offer),
    });
    return (r.streamId as { id: string }).id;
  }

  /** A view of a stream, as the conference's endpoint `viewer` (the view's id). */
  async view(conferenceId: string, streamId: string, viewer: string): Promise<string> {
    const r = await this.ok(this.service, "viewStream", {
      conferenceId,
      userEndpointId: viewer,
      streamId: { id: streamId },
      sdpOffer: sdp("chrome-view"),
    });
    return r.viewerId as string;
  }

  private async richConference(): Promise<{ id: string; streamId: string }> {
    const { id, endpoints } = await this.conference(2);
    const [a, b] = endpoints as [string, string];
    const base = { conferenceId: id, userEndpointId: a };
    await this.ok(this.service, "updateMetadata", { ...base, key: "topic", operation: "SET", value: "contract" });
    await this.ok(this.service, "updateMetadata", { ...base, key: "gone", operation: "SET", value: "x" });
    await this.ok(this.service, "updateMetadata", { ...base, key: "gone", operation: "REMOVE" });
    await this.ok(this.service, "updateParticipantMetadata", { ...base, newMetadata: { name: "Ann" } });
    await this.ok(this.service, "sendEvent", {
      conferenceId: id,
      event: { type: "RecordingStartedEvent", timestamp: new Date().toISOString(), by: "contract" },
      qos: "AT_LEAST_ONCE",
    });
    const streamId = await this.publish(id, a);
    await this.ok(this.service, "updateStreamMetadata", { ...base, streamId, newMetadata: { muted: false } });
    await this.ok(this.service, "updatePublishedStreamBitrate", { ...base, streamId, videoBitrate: 500000 });
    await this.ok(this.service, "leave", { conferenceId: id, userEndpointId: b, reason: "done" });
    return { id, streamId };
  }

  /** Another app of the fixture's tenant (for deleting and renewing). */
  async newApp(): Promise<string> {
    const res = await fetch(`${this.url}/tenants/${this.app.tenantId}/apps`, {
      method: "POST",
      headers: { ...this.tenantAuth, "content-type": "application/json" },
      body: "{}",
    });
    assert.equal(res.status, 200);
    return ((await res.json()) as { id: string }).id;
  }

  /** A fresh endpoint of a USER login (each caller endpoint has few unanswered calls). */
  async endpointOf(u: User): Promise<string> {
    const endpointId = uuid();
    const r = await rest(this.url, u.access)("POST", "/rtc-api/users/endpoints/register", {
      keepAliveSeconds: 60,
      userEndpointId: endpointId,
      userId: u.userId,
    });
    assert.equal(r.status, 200, r.text);
    return endpointId;
  }

  /** Alice calls Bob from a fresh endpoint, and Bob's endpoint rings (when asked); the call's ids. */
  async call(steps: readonly ("ring" | "answer")[] = []): Promise<{ callId: string; from: string }> {
    const callId = uuid();
    const from = await this.endpointOf(this.alice);
    const calls = (u: User) => (command: string, body: unknown) =>
      rest(this.url, u.access)("POST", `/rtc-api/calls/${command}`, body);
    const started = await calls(this.alice)("call", {
      callId,
      sdpOffer: CALL_SDP,
      target: this.bob.userId,
      userEndpointId: from,
      userId: this.alice.userId,
    });
    assert.equal(started.status, 204, started.text);
    const bobSays = { callId, userEndpointId: this.bob.endpointId, userId: this.bob.userId };
    for (const step of steps) {
      const body = step === "answer" ? { ...bobSays, sdpAnswer: CALL_SDP } : bobSays;
      const r = await calls(this.bob)(step === "ring" ? "ringing" : "answer", body);
      assert.equal(r.status, 204, r.text);
    }
    return { callId, from };
  }

  /** A live Spreed session (closed with the fixture): its id and secret id. */
  async spreedSession(room?: string): Promise<{ peer: Peer; id: string; sid: string }> {
    const peer = await Peer.connect(this.url);
    this.peers.push(peer);
    peer.send("Self", {});
    const self = await peer.self();
    if (room !== undefined) {
      peer.send("Hello", { Id: room });
      await peer.next("Welcome");
    }
    return { peer, id: self.Id as string, sid: self.Sid as string };
  }

  /** A buddy picture set by one session and seen by another: its path under /static/img/buddy/s46/. */
  async buddyPicture(): Promise<string> {
    const room = this.unique("pictures");
    const a = await this.spreedSession(room);
    const b = await this.spreedSession(room);
    a.peer.send("Status", { displayName: "Ann", buddyPicture: `data:image/png;base64,${PNG}` });
    const shown = ((await b.peer.next("Status")).Data as Doc).Status as Doc;
    const m = /^img:(.+)$/.exec(shown.buddyPicture as string);
    assert.ok(m?.[1], String(shown.buddyPicture));
    return m[1];
  }

  close(): void {
    for (const p of this.peers) p.close();
  }
}

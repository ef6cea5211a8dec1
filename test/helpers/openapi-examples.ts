/**
 * One example request (or a few) per documented operation, keyed by operationId, for the
 * OpenAPI contract test (test/e2e/openapi-contract.e2e.test.ts): valid inputs against a real
 * server, with whatever state each needs made by the fixture. A new route needs an entry
 * here, or the contract test fails.
 */
import { roomToken } from "./conference-client.js";
import { CALL_SDP, CANDIDATE, type Fixture, sdp } from "./openapi-fixture.js";
import { createTenant } from "./server.js";

export interface ExampleRequest {
  readonly method: string;
  /** The concrete path, with its query. */
  readonly path: string;
  /** The credential's headers. */
  readonly auth?: Record<string, string>;
  readonly json?: unknown;
  readonly form?: Record<string, string>;
  /** The expected status; the documented success status when absent. */
  readonly status?: number;
}

export type Example = (f: Fixture) => Promise<ExampleRequest | ExampleRequest[]>;

const json = (method: string, path: string, auth: Record<string, string>, body?: unknown): ExampleRequest => ({
  method,
  path,
  auth,
  ...(body === undefined ? {} : { json: body }),
});

const ADMIN: Record<string, Example> = {
  AdminService_CreateTenant: async (f) => json("POST", "/admin/v1/tenants", f.admin, { name: "contract" }),
  AdminService_ListTenants: async (f) => [
    json("GET", "/admin/v1/tenants?pageSize=1", f.admin),
    json("GET", "/admin/v1/tenants?showDeleted=true", f.admin),
  ],
  AdminService_GetTenant: async (f) => json("GET", `/admin/v1/tenants/${f.app.tenantId}`, f.admin),
  AdminService_UpdateTenant: async (f) => {
    const t = await createTenant(f.url, "to rename");
    return json("PATCH", `/admin/v1/tenants/${t.tenantId}`, f.admin, { name: "renamed", status: "suspended" });
  },
  AdminService_RotateTenantToken: async (f) => {
    const t = await createTenant(f.url, "to rotate");
    return json("POST", `/admin/v1/tenants/${t.tenantId}:rotateToken`, f.admin, {});
  },
};

const APPS: Record<string, Example> = {
  AppService_ListApps: async (f) => [
    json("GET", `/tenants/${f.app.tenantId}/apps`, f.tenantAuth),
    json("GET", `/tenants/${f.app.tenantId}/apps?expandApps`, f.tenantAuth),
  ],
  AppService_CreateApp: async (f) =>
    json("POST", `/tenants/${f.app.tenantId}/apps`, f.tenantAuth, {
      description: "contract",
      domains: ["example.com", "*.example.org"],
      permissions: ["TURN", "SFU", "RECORDING"],
      status: "active",
      recording_bucket_name: "contract-bucket",
      recording_service_account_key: '{"type":"service_account"}',
    }),
  AppService_GetApp: async (f) => json("GET", `/tenants/${f.app.tenantId}/apps/${f.app.appId}`, f.tenantAuth),
  AppService_UpdateApp: async (f) =>
    json("PUT", `/tenants/${f.app.tenantId}/apps/${await f.newApp()}`, f.tenantAuth, {
      description: "changed",
      domains: [],
      status: "suspended",
    }),
  AppService_DeleteApp: async (f) =>
    json("DELETE", `/tenants/${f.app.tenantId}/apps/${await f.newApp()}`, f.tenantAuth),
  AppService_GetAppSecretKey: async (f) =>
    json("GET", `/tenants/${f.app.tenantId}/apps/${f.app.appId}/secretkey`, f.tenantAuth),
  AppService_RenewAppSecretKey: async (f) =>
    json("POST", `/tenants/${f.app.tenantId}/apps/${await f.newApp()}/secretkey`, f.tenantAuth),
};

const ROOMS: Record<string, Example> = {
  RoomService_CreateRoom: async (f) => [
    json("POST", "/api/realtime/room", f.appAuth, {
      name: "contract",
      description: "a room",
      conferenceType: "MESH",
      autoUpgradeParticipantCount: 3,
    }),
    json("POST", "/api/realtime/room", f.appAuth),
  ],
  RoomService_ListRooms: async (f) => [
    json("GET", "/api/realtime/room?numberOfRecords=1", f.appAuth),
    json("GET", "/api/realtime/room", f.appAuth),
  ],
  RoomService_GetRoom: async (f) => json("GET", `/api/realtime/room/${f.room.id}`, f.appAuth),
  RoomService_DeleteRoom: async (f) => {
    const room = await roomToken(f.url, f.app, { conferenceType: "SFU" });
    return json("DELETE", `/api/realtime/room?id=${room.id}`, f.appAuth);
  },
};

const TOKENS: Record<string, Example> = {
  TokenService_IssueToken: async (f) => {
    const first = await fetch(`${f.url}/security/oauth/token`, {
      method: "POST",
      body: new URLSearchParams({
        grant_type: "client_credentials",
        client_id: f.app.apikey,
        client_secret: f.app.secret,
      }),
    });
    const refresh = ((await first.json()) as { refresh_token: string }).refresh_token;
    const basic = { authorization: `Basic ${Buffer.from(`${f.app.apikey}:`).toString("base64")}` };
    const requests: ExampleRequest[] = [
      {
        method: "POST",
        path: "/security/oauth/token",
        form: { grant_type: "client_credentials", client_id: f.app.apikey, client_secret: f.app.secret },
      },
      {
        method: "POST",
        path: "/security/oauth/token",
        auth: basic,
        form: { grant_type: "password", username: f.room.token, password: "" },
      },
      { method: "POST", path: "/security/oauth/token", json: { grant_type: "refresh_token", refresh_token: refresh } },
    ];
    return requests;
  },
};

const ENDPOINTS: Record<string, Example> = {
  UserEndpointService_RegisterEndpoint: async (f) =>
    json("POST", "/rtc-api/users/endpoints/register", f.bearer(), {
      keepAliveSeconds: 30,
      userEndpointId: f.unique("ep"),
      userId: "contract-user",
    }),
  UserEndpointService_CreateEndpoint: async (f) =>
    json("POST", "/rtc-api/users/endpoints", f.bearer(), { keepAliveSeconds: 30, userId: "contract-user" }),
  UserEndpointService_KeepAlive: async (f) =>
    json("POST", "/rtc-api/users/endpoints/keepalive", f.bearer(f.alice.access), {
      userEndpointId: f.alice.endpointId,
      userId: f.alice.userId,
    }),
  UserEndpointService_UnregisterEndpoint: async (f) =>
    json("POST", "/rtc-api/users/endpoints/unregister", f.bearer(f.alice.access), {
      userEndpointId: await f.endpointOf(f.alice),
      userId: f.alice.userId,
      reason: "contract",
    }),
  UserEndpointService_ListEndpoints: async (f) => [
    json("GET", "/rtc-api/users/endpoints", f.bearer()),
    json("GET", "/rtc-api/users/endpoints", f.bearer(f.alice.access)),
  ],
  UserEndpointService_GetEndpoint: async (f) =>
    json("GET", `/rtc-api/users/endpoints/${f.alice.endpointId}`, f.bearer(f.alice.access)),
  UserEndpointService_GetIceServers: async (f) => json("GET", "/rtc-api/iceServers", f.bearer(f.alice.access)),
};

const conferenceCommand =
  (command: string, body: (f: Fixture) => Promise<unknown>): Example =>
  async (f) =>
    json("POST", `/rtc-api/conferences/${command}`, f.bearer(), await body(f));

/** A conference with a stream published by its endpoint 0 and viewed by its endpoint 1. */
async function viewed(f: Fixture, offer?: string) {
  const c = await f.conference(2);
  const [publisher, viewer] = c.endpoints as [string, string];
  const streamId = await f.publish(c.id, publisher, offer);
  const viewerId = await f.view(c.id, streamId, viewer);
  return { conferenceId: c.id, publisher, viewer, streamId, viewerId };
}

const CONFERENCES: Record<string, Example> = {
  ConferenceService_CreateConference: async (f) =>
    json("POST", "/rtc-api/conferences/create", f.bearer(), {
      conferenceId: f.unique("created"),
      mode: "P2P",
      metadata: { topic: "contract" },
    }),
  ConferenceService_JoinConference: conferenceCommand("join", async (f) => ({
    conferenceId: (await f.conference(0)).id,
    userEndpointId: "joiner",
    userId: "u-join",
    metadata: { name: "Joe", roles: ["agent"] },
  })),
  ConferenceService_LeaveConference: conferenceCommand("leave", async (f) => {
    const c = await f.conference(1);
    return { conferenceId: c.id, userEndpointId: c.endpoints[0], reason: "contract" };
  }),
  ConferenceService_EndConference: conferenceCommand("end", async (f) => {
    const c = await f.conference(1);
    return { conferenceId: c.id, userEndpointId: c.endpoints[0], reason: "contract" };
  }),
  ConferenceService_UpdateMetadata: conferenceCommand("updateMetadata", async (f) => {
    const c = await f.conference(1);
    return { conferenceId: c.id, userEndpointId: c.endpoints[0], key: "k", operation: "SET", value: "v" };
  }),
  ConferenceService_UpdateParticipantMetadata: conferenceCommand("updateParticipantMetadata", async (f) => {
    const c = await f.conference(1);
    return { conferenceId: c.id, userEndpointId: c.endpoints[0], newMetadata: { name: "Ann", muted: true } };
  }),
  ConferenceService_UpdateStreamMetadata: conferenceCommand("updateStreamMetadata", async (f) => {
    const v = await viewed(f);
    return { conferenceId: v.conferenceId, userEndpointId: v.publisher, streamId: v.streamId, newMetadata: { x: 1 } };
  }),
  ConferenceService_UpdatePublishedStreamBitrate: conferenceCommand("updatePublishedStreamBitrate", async (f) => {
    const v = await viewed(f);
    return {
      conferenceId: v.conferenceId,
      userEndpointId: v.publisher,
      streamId: { id: v.streamId },
      videoBitrate: 300000,
    };
  }),
  ConferenceService_SendEvent: conferenceCommand("sendEvent", async (f) => ({
    conferenceId: f.rich.id,
    event: { type: "ContractCheckedEvent", timestamp: new Date().toISOString() },
    masks: ["$.secret"],
    qos: "BEST_EFFORT",
  })),
  ConferenceService_PublishStream: conferenceCommand("publishStream", async (f) => {
    const c = await f.conference(1);
    return {
      conferenceId: c.id,
      userEndpointId: c.endpoints[0],
      conferenceStreamType: "MIC_AND_CAM",
      sdpOffer: sdp("chrome-publish"),
      metadata: { portraitMode: false },
    };
  }),
  ConferenceService_ViewStream: conferenceCommand("viewStream", async (f) => {
    const v = await viewed(f);
    return {
      conferenceId: v.conferenceId,
      userEndpointId: v.viewer,
      streamId: v.streamId,
      sdpOffer: sdp("chrome-view"),
    };
  }),
  ConferenceService_UnpublishStream: conferenceCommand("unpublishStream", async (f) => {
    const v = await viewed(f);
    return { conferenceId: v.conferenceId, userEndpointId: v.publisher, streamId: { id: v.streamId } };
  }),
  ConferenceService_StopViewStream: conferenceCommand("stopViewStream", async (f) => {
    const v = await viewed(f);
    return { conferenceId: v.conferenceId, userEndpointId: v.viewer, streamId: v.streamId, viewerId: v.viewerId };
  }),
  ConferenceService_UpdateViewLayers: conferenceCommand("updateViewLayers", async (f) => {
    const v = await viewed(f, "chrome-publish-simulcast");
    return {
      conferenceId: v.conferenceId,
      userEndpointId: v.viewer,
      streamId: v.streamId,
      viewerId: v.viewerId,
      spatialLayer: 0,
      temporalLayer: 1,
    };
  }),
  ConferenceService_AddPublishStreamIceCandidates: conferenceCommand("addPublishStreamIceCandidates", async (f) => {
    const v = await viewed(f);
    return {
      conferenceId: v.conferenceId,
      userEndpointId: v.publisher,
      streamId: v.streamId,
      iceCandidates: [CANDIDATE],
    };
  }),
  ConferenceService_AddViewStreamIceCandidates: conferenceCommand("addViewStreamIceCandidates", async (f) => {
    const v = await viewed(f);
    return {
      conferenceId: v.conferenceId,
      userEndpointId: v.viewer,
      streamId: v.streamId,
      viewerId: v.viewerId,
      iceCandidates: [CANDIDATE],
    };
  }),
  ConferenceService_GetConference: async (f) => json("GET", `/rtc-api/conferences/${f.rich.id}`, f.bearer()),
  ConferenceService_GetConferenceSummary: async (f) => [
    json("GET", `/rtc-api/conferences/${f.rich.id}/summary`, f.bearer()),
    json("GET", `/rtc-api/conferences/${f.room.id}/summary`, f.bearer(f.bob.access)),
  ],
  ConferenceService_ListConferences: async (f) => [
    json("GET", "/rtc-api/conferences", f.bearer()),
    json("GET", "/rtc-api/conferences", f.bearer(f.alice.access)),
  ],
  ConferenceService_GetSimpleView: async (f) => json("GET", `/rtc-api/conferences/${f.rich.id}/simpleView`, f.bearer()),
  ConferenceService_ListEvents: async (f) => [
    json("GET", `/rtc-api/conferences/${f.rich.id}/events?v=0`, f.bearer()),
    json("GET", `/rtc-api/conferences/${f.room.id}/events?v=0`, f.bearer(f.alice.access)),
  ],
};

/** A call command from Bob (the callee) or Alice (the caller), after the steps it needs. */
const callCommand =
  (
    command: string,
    by: "alice" | "bob",
    steps: readonly ("ring" | "answer")[],
    extra: Record<string, unknown> = {},
  ): Example =>
  async (f) => {
    const { callId, from } = await f.call(steps);
    const user = by === "alice" ? f.alice : f.bob;
    const userEndpointId = by === "alice" ? from : f.bob.endpointId;
    return json("POST", `/rtc-api/calls/${command}`, f.bearer(user.access), {
      callId,
      userEndpointId,
      userId: user.userId,
      ...extra,
    });
  };

const CALLS: Record<string, Example> = {
  CallService_StartCall: async (f) =>
    json("POST", "/rtc-api/calls/call", f.bearer(f.alice.access), {
      callId: f.unique("call"),
      sdpOffer: CALL_SDP,
      target: f.bob.userId,
      userEndpointId: await f.endpointOf(f.alice),
      userId: f.alice.userId,
      sipHeaders: { "X-Case": "42" },
    }),
  CallService_RingCall: callCommand("ringing", "bob", []),
  CallService_AnswerCall: callCommand("answer", "bob", ["ring"], { sdpAnswer: CALL_SDP }),
  CallService_RejectCall: callCommand("reject", "bob", ["ring"], { reason: "busy" }),
  CallService_CancelCall: callCommand("cancel", "alice", [], { reason: "changed my mind" }),
  CallService_HangupCall: callCommand("hangup", "alice", ["ring", "answer"], { reason: "bye" }),
  CallService_AddCallIceCandidates: callCommand("addIceCandidates", "alice", [], { iceCandidates: [CANDIDATE] }),
};

const SPREED: Record<string, Example> = {
  SpreedService_GetWellKnown: async () => ({ method: "GET", path: "/.well-known/spreed-configuration" }),
  SpreedService_GetConfig: async () => ({ method: "GET", path: "/api/v1/config" }),
  SpreedService_ValidateToken: async () => [
    { method: "POST", path: "/api/v1/tokens", form: { a: "Open-Sesame" } },
    { method: "POST", path: "/api/v1/tokens", form: { a: "wrong" }, status: 403 },
  ],
  SpreedService_CreateRoom: async () => ({ method: "POST", path: "/api/v1/rooms" }),
  SpreedService_RegisterUser: async (f) => {
    const s = await f.spreedSession();
    return [
      { method: "POST", path: "/api/v1/users", json: { id: s.id, sid: s.sid } },
      { method: "POST", path: "/api/v1/users", form: { id: s.id, sid: s.sid } },
    ];
  },
  SpreedService_PatchSession: async (f) => {
    const s = await f.spreedSession();
    const res = await fetch(`${f.url}/api/v1/users`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ id: s.id, sid: s.sid }),
    });
    const user = (await res.json()) as { useridcombo: string; secret: string };
    return {
      method: "PATCH",
      path: `/api/v1/sessions/${encodeURIComponent(s.id)}/`,
      json: { id: s.id, sid: s.sid, useridcombo: user.useridcombo, secret: user.secret },
    };
  },
  SpreedService_GetStats: async (f) => {
    await f.spreedSession("stats");
    return [
      { method: "GET", path: "/api/v1/stats" },
      { method: "GET", path: "/api/v1/stats?details=1", auth: f.admin },
    ];
  },
  SpreedService_GetBuddyImage: async (f) => [
    { method: "GET", path: `/static/img/buddy/s46/${await f.buddyPicture()}` },
    { method: "GET", path: "/static/img/buddy/s46/nope/picture.png", status: 404 },
  ],
};

export const EXAMPLES: Readonly<Record<string, Example>> = {
  ...ADMIN,
  ...APPS,
  ...ROOMS,
  ...TOKENS,
  ...ENDPOINTS,
  ...CONFERENCES,
  ...CALLS,
  ...SPREED,
};

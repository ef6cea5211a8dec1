/** rtcplane.conference.v1.UserEndpointService: endpoint registration, keep-alive, ICE servers. */
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type * as pb from "../../gen/rtcplane/conference/v1/conference_pb.js";
import { bearerCaller } from "../auth/caller.js";
import type { TurnCredentials } from "../auth/turn-credentials.js";
import { type EndpointRow, type Endpoints, MAX_ENDPOINTS_PER_USER_LOGIN } from "../endpoints/endpoints.js";
import { invalidArgument, permissionDenied } from "../errors.js";
import type { Principal } from "../oauth/access-tokens.js";

export interface IceServerConfig {
  readonly urls: readonly string[];
  readonly username?: string;
  readonly credential?: string;
}

function toEndpoint(e: EndpointRow) {
  return {
    id: e.endpointId,
    userId: e.userId,
    keepAliveSeconds: e.keepAliveSeconds,
    state: e.state,
    lastSeen: new Date(e.lastSeenMs).toISOString(),
  };
}

export class UserEndpointServiceImpl implements ServiceImpl<typeof pb.UserEndpointService> {
  constructor(
    private readonly endpoints: Endpoints,
    private readonly iceServers: readonly IceServerConfig[],
    private readonly turn?: TurnCredentials,
  ) {}

  /** The user an endpoint call is for: a USER token's own; for SERVICE the given one. */
  private user(p: Principal, userId: string): string {
    if (p.role === "USER") {
      if (userId !== "" && userId !== p.userId) throw permissionDenied("userId is not the token's user");
      return p.userId;
    }
    return userId || p.userId;
  }

  /** How many endpoints the caller's user may hold: bounded for USER logins, not for the app. */
  private cap(p: Principal): number | undefined {
    return p.role === "USER" ? MAX_ENDPOINTS_PER_USER_LOGIN : undefined;
  }

  /** USER tokens reach only their own user's endpoints; SERVICE reaches the app's. */
  private scope(p: Principal): string | undefined {
    return p.role === "USER" ? p.userId : undefined;
  }

  async registerEndpoint(req: pb.RegisterEndpointRequest, ctx: HandlerContext) {
    const p = bearerCaller(ctx);
    return {
      id: await this.endpoints.register(
        p.appId,
        this.user(p, req.userId),
        req.userEndpointId,
        req.keepAliveSeconds,
        this.cap(p),
      ),
    };
  }

  async createEndpoint(req: pb.CreateEndpointRequest, ctx: HandlerContext) {
    const p = bearerCaller(ctx);
    return {
      id: await this.endpoints.register(p.appId, this.user(p, req.userId), "", req.keepAliveSeconds, this.cap(p)),
    };
  }

  async keepAlive(req: pb.KeepAliveRequest, ctx: HandlerContext) {
    const p = bearerCaller(ctx);
    if (req.userEndpointId === "") throw invalidArgument("userEndpointId: is required");
    await this.endpoints.keepAlive(p.appId, this.scope(p), req.userEndpointId);
    return {};
  }

  async unregisterEndpoint(req: pb.UnregisterEndpointRequest, ctx: HandlerContext) {
    const p = bearerCaller(ctx);
    if (req.userEndpointId === "") throw invalidArgument("userEndpointId: is required");
    if (req.reason.length > 1024) throw invalidArgument("reason: must be at most 1024 characters");
    await this.endpoints.unregister(p.appId, this.scope(p), req.userEndpointId, req.reason);
    return {};
  }

  async listEndpoints(_req: pb.ListEndpointsRequest, ctx: HandlerContext) {
    const p = bearerCaller(ctx);
    return { endpoints: (await this.endpoints.list(p.appId, this.scope(p))).map(toEndpoint) };
  }

  async getEndpoint(req: pb.GetEndpointRequest, ctx: HandlerContext) {
    const p = bearerCaller(ctx);
    return { endpoint: toEndpoint(await this.endpoints.own(p.appId, this.scope(p), req.id)) };
  }

  /**
   * ICE_SERVERS as configured, then the TURN server with fresh credentials for the caller's
   * user (a room token's user too, the SDKs' path from a rooms-API token to TURN).
   */
  async getIceServers(_req: pb.GetIceServersRequest, ctx: HandlerContext) {
    const p = bearerCaller(ctx);
    const iceServers = this.iceServers.map((s) => ({
      urls: [...s.urls],
      username: s.username ?? "",
      credential: s.credential ?? "",
    }));
    const turn = this.turn?.issue(p.userId);
    if (turn !== undefined) iceServers.push({ urls: turn.urls, username: turn.username, credential: turn.credential });
    return { iceServers };
  }
}

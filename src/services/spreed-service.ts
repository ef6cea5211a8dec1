/** rtcplane.spreed.v1.SpreedService: the Spreed WebRTC REST API. */
import { randomBytes } from "node:crypto";
import { monitorEventLoopDelay } from "node:perf_hooks";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type * as pb from "../../gen/rtcplane/spreed/v1/spreed_pb.js";
import { callerOf } from "../auth/caller.js";
import type { Config } from "../config.js";
import { type DomainError, notFound, Reason, unauthenticated, withReason } from "../errors.js";
import { SPREED_VERSION, type SpreedHub } from "../spreed/hub.js";
import type { SpreedUsers } from "../spreed/users.js";

const MAX_TOKEN = 100;
const loopDelay = monitorEventLoopDelay({ resolution: 20 });
loopDelay.enable();

function disabled(what: string): DomainError {
  return notFound(`${what} is disabled on this server`);
}

export class SpreedServiceImpl implements ServiceImpl<typeof pb.SpreedService> {
  constructor(
    private readonly settings: Config["spreed"],
    private readonly hub: SpreedHub,
    private readonly users: SpreedUsers,
    /** The server's public URL (PUBLIC_URL, else where it listens). */
    private readonly serverUrl: () => string,
  ) {}

  /**
   * SPREED_PUBLIC_URL, else the server's public URL — never the request's Host header,
   * which any client can set and which would then be handed to other clients.
   */
  private base(): string {
    return this.settings.publicUrl !== "" ? this.settings.publicUrl : this.serverUrl();
  }

  getWellKnown() {
    return { spreedWebrtcEndpoint: this.base() };
  }

  getConfig() {
    const s = this.settings;
    return {
      title: s.title,
      s: `static/ver=${SPREED_VERSION}`,
      b: "/",
      token: s.publicToken,
      renegotiation: s.renegotiation,
      stunUris: [...s.stunUris],
      turnUris: [...s.turnUris],
      tokens: s.tokens.length > 0,
      version: SPREED_VERSION,
      usersEnabled: s.usersEnabled,
      usersAllowRegistration: s.usersEnabled && s.usersAllowRegistration,
      usersMode: s.usersEnabled ? "sharedsecret" : "",
      defaultRoomEnabled: s.defaultRoomEnabled,
      plugin: "",
      authorizeRoomCreation: s.usersEnabled && s.authorizeRoomCreation,
      authorizeRoomJoin: s.usersEnabled && s.authorizeRoomJoin,
      modules: [...s.modules],
    };
  }

  validateToken(req: pb.ValidateTokenRequest) {
    if (this.settings.tokens.length === 0) throw disabled("token validation");
    if (req.a.length > MAX_TOKEN) {
      throw withReason("resource_exhausted", "the token is too long", Reason.SpreedAuthTooLarge);
    }
    const token = req.a.toLowerCase();
    if (!this.settings.tokens.includes(token)) {
      throw withReason("permission_denied", "invalid token", Reason.SpreedInvalidToken);
    }
    return { token, success: true };
  }

  createRoom() {
    const name = randomBytes(16).toString("base64url");
    return { success: true, name, url: `${this.base()}/${name}` };
  }

  patchSession(req: pb.PatchSessionRequest) {
    if (!this.settings.usersEnabled) throw disabled("users");
    return this.users.patchSession(req.sessionId, req);
  }

  registerUser(req: pb.RegisterUserRequest) {
    if (!this.settings.usersEnabled || !this.settings.usersAllowRegistration) throw disabled("user registration");
    return this.users.register(req.id, req.sid);
  }

  /** Counts for anyone (when stats are on); per-connection details, with room names, for the operator only. */
  getStats(req: pb.GetStatsRequest, ctx: HandlerContext) {
    if (!this.settings.statsEnabled) throw disabled("stats");
    // Room names are the only access control of Spreed rooms: never shown without the admin token.
    if (req.details === "1" && callerOf(ctx).kind !== "admin") {
      throw unauthenticated("details need the operator's Authorization: Bearer <admin token>");
    }
    const mem = process.memoryUsage();
    const hub = this.hub.stats();
    return {
      runtime: {
        rss: BigInt(mem.rss),
        heapUsed: BigInt(mem.heapUsed),
        heapTotal: BigInt(mem.heapTotal),
        uptime: BigInt(Math.floor(process.uptime())),
        eventLoopLagMs: Number.isNaN(loopDelay.mean) ? 0 : loopDelay.mean / 1e6,
        nodeVersion: process.version,
      },
      hub: {
        rooms: hub.rooms,
        connections: hub.connections,
        sessions: hub.sessions,
        users: hub.users,
        relayed: BigInt(hub.relayed),
        connectionDetails:
          req.details === "1"
            ? hub.details.map((d) => ({
                id: d.id,
                room: d.room,
                userid: d.userid,
                ua: d.ua,
                connected: BigInt(d.connected),
              }))
            : [],
      },
    };
  }

  async getBuddyImage(req: pb.GetBuddyImageRequest) {
    if (req.flags !== "" && !/^s\d{1,4}$/.test(req.flags)) throw disabled("this image");
    // A picture stays on the node its session sent it to; the hub asks the others.
    const image = await this.hub.fetchImage(req.imageId);
    if (image === undefined) throw notFound("no such image");
    return { image: { contentType: image.contentType, data: image.data } };
  }
}

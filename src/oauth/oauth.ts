/**
 * The OAuth2 token endpoint's grants (RFC 6749): client_credentials (app apikey and
 * secretkey → SERVICE), password with a ticket (a rooms-API room token as username, the
 * app's apikey as public client → USER in that room's conference, a new user id per login)
 * and refresh_token.
 */
import { randomUUID } from "node:crypto";
import type { Apps } from "../apps/apps.js";
import type { AppAuth } from "../auth/app-auth.js";
import type { RoomLookup } from "../conferences/conferences.js";
import { DomainError, Reason, withReason } from "../errors.js";
import type { Logger } from "../observability/log.js";
import type { RoomTokens } from "../rooms/room-tokens.js";
import type { AccessTokens, Principal } from "./access-tokens.js";
import type { Principals } from "./principals.js";
import type { RefreshFamilies } from "./refresh-families.js";

export interface TokenRequest {
  grantType: string;
  clientId: string;
  clientSecret: string;
  username: string;
  refreshToken: string;
  scope: string;
}

export interface TokenResult {
  accessToken: string;
  refreshToken: string;
  expiresIn: number;
  userId: string;
  conferenceId?: string;
}

const invalidRequest = (m: string) => withReason("invalid_argument", m, Reason.OAuthInvalidRequest);
const invalidClient = (m: string) => withReason("unauthenticated", m, Reason.OAuthInvalidClient);
const invalidGrant = (m: string) => withReason("invalid_argument", m, Reason.OAuthInvalidGrant);

/** Client credentials from `Authorization: Basic` (RFC 6749 2.3.1), if present. */
export function basicCredentials(headers: Headers): { id: string; secret: string } | undefined {
  const header = headers.get("authorization");
  const m = header === null ? null : /^Basic[ \t]+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (m === null || m[1] === undefined) return undefined;
  const decoded = Buffer.from(m[1], "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  try {
    // RFC 6749 2.3.1: both parts are form-urlencoded before Basic encoding.
    if (colon < 0) return { id: decodeURIComponent(decoded), secret: "" };
    return { id: decodeURIComponent(decoded.slice(0, colon)), secret: decodeURIComponent(decoded.slice(colon + 1)) };
  } catch {
    throw invalidClient("the Basic credentials are not form-urlencoded");
  }
}

export class OAuth {
  constructor(
    private readonly appAuth: AppAuth,
    private readonly apps: Apps,
    private readonly roomTokens: RoomTokens,
    private readonly rooms: RoomLookup,
    private readonly tokens: AccessTokens,
    private readonly families: RefreshFamilies,
    private readonly principals: Principals,
    /** How long a login's refresh chain may last, however often it is refreshed. */
    private readonly chainLifetimeSeconds: number,
    private readonly log: Logger,
  ) {}

  async grant(req: TokenRequest): Promise<TokenResult> {
    if (req.scope !== "" && !req.scope.split(" ").every((s) => s === "any" || s === "global")) {
      throw withReason("invalid_argument", `unknown scope ${JSON.stringify(req.scope)}`, Reason.OAuthInvalidRequest);
    }
    switch (req.grantType) {
      case "client_credentials":
        return this.clientCredentials(req);
      case "password":
        return this.ticket(req);
      case "refresh_token":
        return this.refresh(req);
      case "":
        throw invalidRequest("grant_type is required");
      default:
        throw withReason(
          "invalid_argument",
          `grant_type ${JSON.stringify(req.grantType)} is not supported`,
          Reason.OAuthUnsupportedGrantType,
        );
    }
  }

  /** A new login: a new refresh family, then its first tokens. */
  private async login(p: Omit<Principal, "familyId">): Promise<TokenResult> {
    const jti = this.tokens.newRefreshId();
    const family = await this.families.start(p.appId, jti, this.chainLifetimeSeconds);
    return this.result({ ...p, familyId: family.familyId }, jti, family.expiresAtMs);
  }

  private async result(p: Principal, refreshJti: string, chainEndsAtMs: number): Promise<TokenResult> {
    const { accessToken, refreshToken } = this.tokens.issue(p, refreshJti, chainEndsAtMs);
    return {
      accessToken,
      refreshToken,
      expiresIn: this.tokens.accessTtlSeconds,
      userId: p.userId,
      ...(p.conferenceId === undefined ? {} : { conferenceId: p.conferenceId }),
    };
  }

  private async clientCredentials(req: TokenRequest): Promise<TokenResult> {
    if (req.clientId === "" || req.clientSecret === "") throw invalidClient("client_id and client_secret are required");
    const app = await this.appAuth.byApikey(req.clientId);
    const bySecret = await this.apps.findBySecretKey(req.clientSecret);
    if (app === undefined || bySecret?.appId !== app.appId) throw invalidClient("unknown client or wrong secret");
    return this.login({
      appId: app.appId,
      role: "SERVICE",
      userId: `service-${app.appId}`,
      credentialGen: app.credentialGen,
    });
  }

  private async ticket(req: TokenRequest): Promise<TokenResult> {
    if (req.clientId === "") throw invalidClient("client_id is required");
    const app = await this.appAuth.byApikey(req.clientId);
    if (app === undefined) throw invalidClient("unknown client");
    if (req.clientSecret !== "" && (await this.apps.findBySecretKey(req.clientSecret))?.appId !== app.appId) {
      throw invalidClient("wrong client secret");
    }
    if (req.username === "") throw invalidRequest("username (the ticket) is required");
    let roomId: string;
    try {
      const claims = await this.roomTokens.verify(req.username);
      if (claims.appId !== app.appId) throw new Error("ticket of another app");
      if (claims.credentialGen !== app.credentialGen) throw new Error("ticket from before the secret was renewed");
      roomId = claims.roomId;
    } catch {
      throw invalidGrant("the ticket is not valid or has expired");
    }
    if ((await this.rooms.find(app.appId, roomId)) === undefined) {
      throw invalidGrant("the ticket's room no longer exists");
    }
    return this.login({
      appId: app.appId,
      role: "USER",
      userId: randomUUID(),
      conferenceId: roomId,
      credentialGen: app.credentialGen,
    });
  }

  /** One use per refresh token: it is exchanged for the next one in its family. */
  private async refresh(req: TokenRequest): Promise<TokenResult> {
    if (req.refreshToken === "") throw invalidRequest("refresh_token is required");
    let claims: Awaited<ReturnType<AccessTokens["verifyRefresh"]>>;
    try {
      claims = await this.tokens.verifyRefresh(req.refreshToken);
    } catch {
      throw invalidGrant("the refresh token is not valid or has expired");
    }
    const { principal, jti } = claims;
    const { familyId, ...rest } = principal;
    try {
      // The family's own state is rotate()'s to judge; the rest (app, generation, room) here.
      await this.principals.check(rest);
    } catch (e) {
      // A store that cannot answer refuses nothing: the client keeps its login for a retry.
      if (e instanceof DomainError && e.kind === "unavailable") throw e;
      throw invalidGrant("the refresh token was revoked or its app is not active");
    }
    const next = this.tokens.newRefreshId();
    const family = await this.families.rotate(familyId as string, jti, next);
    if (typeof family === "string") {
      if (family === "reused") {
        this.log.warn(
          { appId: principal.appId, userId: principal.userId, family: familyId },
          "a used refresh token was presented again: its login is revoked",
        );
      }
      throw invalidGrant(`the refresh token is ${family === "unknown" ? "not valid" : family}`);
    }
    return this.result(principal, next, family.expiresAtMs);
  }
}

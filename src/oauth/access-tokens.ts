/**
 * Bearer tokens of the conference API: HS256 JWTs (jose) issued by the token endpoint —
 * role SERVICE for an app, or USER for one user in one conference — plus refresh tokens.
 * A rooms-API room token is accepted as a USER bearer for its room's conference too.
 */
import { randomUUID } from "node:crypto";
import { errors, jwtVerify, SignJWT } from "jose";
import type { ServerKey } from "../auth/server-key.js";
import { unauthenticated } from "../errors.js";
import { RoomTokenError, type RoomTokens } from "../rooms/room-tokens.js";

const ISSUER = "rtcplane";
const ACCESS_AUDIENCE = "rtcplane:api";
const REFRESH_AUDIENCE = "rtcplane:refresh";

export type Role = "SERVICE" | "USER";

/** Who a bearer token speaks for. */
export interface Principal {
  readonly appId: string;
  readonly role: Role;
  readonly userId: string;
  /** USER tokens are bound to one conference. */
  readonly conferenceId?: string;
  /** When the token stops being valid (long-lived connections end then). */
  readonly expiresAtMs?: number;
}

export class AccessTokens {
  private readonly accessKey: Uint8Array;
  private readonly refreshKey: Uint8Array;

  constructor(
    serverKey: ServerKey,
    private readonly roomTokens: RoomTokens,
    readonly accessTtlSeconds: number,
    readonly refreshTtlSeconds: number,
    private readonly now: () => number = Date.now,
  ) {
    this.accessKey = new Uint8Array(serverKey.derive("oauth.access"));
    this.refreshKey = new Uint8Array(serverKey.derive("oauth.refresh"));
  }

  private sign(p: Principal, audience: string, key: Uint8Array, ttl: number): Promise<string> {
    const iat = Math.floor(this.now() / 1000);
    return new SignJWT({ app: p.appId, role: p.role, ...(p.conferenceId ? { conf: p.conferenceId } : {}) })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setIssuer(ISSUER)
      .setAudience(audience)
      .setSubject(p.userId)
      .setIssuedAt(iat)
      .setExpirationTime(iat + ttl)
      .setJti(randomUUID())
      .sign(key);
  }

  issue(p: Principal): Promise<{ accessToken: string; refreshToken: string }> {
    return Promise.all([
      this.sign(p, ACCESS_AUDIENCE, this.accessKey, this.accessTtlSeconds),
      this.sign(p, REFRESH_AUDIENCE, this.refreshKey, this.refreshTtlSeconds),
    ]).then(([accessToken, refreshToken]) => ({ accessToken, refreshToken }));
  }

  private async verify(token: string, audience: string, key: Uint8Array): Promise<Principal> {
    const { payload } = await jwtVerify(token, key, {
      issuer: ISSUER,
      audience,
      algorithms: ["HS256"],
      currentDate: new Date(this.now()),
    });
    const role = payload.role;
    if (typeof payload.sub !== "string" || typeof payload.app !== "string" || (role !== "SERVICE" && role !== "USER")) {
      throw new Error("token lacks its subject, app or role");
    }
    return {
      appId: payload.app,
      role,
      userId: payload.sub,
      ...(typeof payload.conf === "string" ? { conferenceId: payload.conf } : {}),
      ...(typeof payload.exp === "number" ? { expiresAtMs: payload.exp * 1000 } : {}),
    };
  }

  /** The principal of a refresh token; throws with a reason when it is not valid. */
  verifyRefresh(token: string): Promise<Principal> {
    return this.verify(token, REFRESH_AUDIENCE, this.refreshKey);
  }

  /**
   * The principal of an `Authorization: Bearer` token: an access token, or a room token
   * (USER in that room's conference, the token id as user id). UNAUTHENTICATED otherwise.
   */
  async authenticate(headers: Headers): Promise<Principal> {
    const header = headers.get("authorization");
    const m = header === null ? null : /^Bearer[ \t]+(\S+)\s*$/i.exec(header);
    if (m === null || m[1] === undefined) throw unauthenticated("missing Authorization: Bearer <token>");
    const token = m[1];
    try {
      return await this.verify(token, ACCESS_AUDIENCE, this.accessKey);
    } catch (e) {
      if (e instanceof errors.JWTExpired) throw unauthenticated("the access token has expired");
    }
    try {
      const room = await this.roomTokens.verify(token);
      return {
        appId: room.appId,
        role: "USER",
        userId: room.tokenId,
        conferenceId: room.roomId,
        expiresAtMs: room.expiresAtMs,
      };
    } catch (e) {
      if (e instanceof RoomTokenError && e.kind === "expired") throw unauthenticated("the room token has expired");
    }
    throw unauthenticated("the bearer token is not valid");
  }
}

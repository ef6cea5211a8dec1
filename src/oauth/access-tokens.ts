/**
 * Bearer tokens of the conference API: HS256 JWTs (jose) issued by the token endpoint —
 * role SERVICE for an app, or USER for one user in one conference — plus refresh tokens.
 * A rooms-API room token is accepted as a USER bearer for its room's conference too.
 * Every token names the app's credential generation (`gen`, raised when the app's secret
 * is renewed) and, when it came from a login, its refresh family (`fam`), so that renewal
 * and refresh-token reuse can revoke tokens that are still within their lifetime.
 */
import { randomUUID } from "node:crypto";
import { errors, jwtVerify } from "jose";
import { hmacKey } from "../auth/hmac-key.js";
import { Hs256Signer } from "../auth/hs256.js";
import type { ServerKey } from "../auth/server-key.js";
import { Lru } from "../cache/lru.js";
import { unauthenticated } from "../errors.js";
import { RoomTokenError, type RoomTokens } from "../rooms/room-tokens.js";

const ISSUER = "rtcplane";
const ACCESS_AUDIENCE = "rtcplane:api";
const REFRESH_AUDIENCE = "rtcplane:refresh";
/** Bearer tokens whose signature was checked, by their whole text (a forged one never matches). */
const VERIFIED_TOKENS = 20_000;

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
  /** The app's credential generation the token was issued under. */
  readonly credentialGen: number;
  /** The refresh family of a login's tokens. */
  readonly familyId?: string;
}

/** A verified refresh token: its principal and its own id (one use each). */
export interface RefreshClaims {
  readonly principal: Principal;
  readonly jti: string;
}

export interface IssuedTokens {
  readonly accessToken: string;
  readonly refreshToken: string;
}

export class AccessTokens {
  private readonly accessKey: Promise<CryptoKey>;
  private readonly refreshKey: Promise<CryptoKey>;
  private readonly accessSigner: Hs256Signer;
  private readonly refreshSigner: Hs256Signer;
  /**
   * Clients send the same bearer token for an hour: its signature is checked once and its
   * principal remembered (expiry is still checked on every use; revocation is Principals').
   */
  private readonly verified = new Lru<string, Principal>(VERIFIED_TOKENS);

  constructor(
    serverKey: ServerKey,
    private readonly roomTokens: RoomTokens,
    readonly accessTtlSeconds: number,
    readonly refreshTtlSeconds: number,
    private readonly now: () => number = Date.now,
  ) {
    const access = serverKey.derive("oauth.access");
    const refresh = serverKey.derive("oauth.refresh");
    this.accessKey = hmacKey(access);
    this.refreshKey = hmacKey(refresh);
    this.accessSigner = new Hs256Signer(access);
    this.refreshSigner = new Hs256Signer(refresh);
  }

  private sign(p: Principal, audience: string, signer: Hs256Signer, expiresAt: number, jti: string): string {
    const iat = Math.floor(this.now() / 1000);
    return signer.sign({
      app: p.appId,
      role: p.role,
      gen: p.credentialGen,
      ...(p.conferenceId ? { conf: p.conferenceId } : {}),
      ...(p.familyId ? { fam: p.familyId } : {}),
      iss: ISSUER,
      aud: audience,
      sub: p.userId,
      iat,
      exp: Math.max(iat + 1, expiresAt),
      jti,
    });
  }

  /** A fresh refresh token id; the family records which one is current. */
  newRefreshId(): string {
    return randomUUID();
  }

  /**
   * An access token and the refresh token `refreshJti`; the refresh token expires after its
   * TTL or at `chainEndsAtMs`, whichever is first (a chain never outlives its family).
   */
  issue(p: Principal, refreshJti: string, chainEndsAtMs: number): IssuedTokens {
    const now = Math.floor(this.now() / 1000);
    return {
      accessToken: this.sign(p, ACCESS_AUDIENCE, this.accessSigner, now + this.accessTtlSeconds, randomUUID()),
      refreshToken: this.sign(
        p,
        REFRESH_AUDIENCE,
        this.refreshSigner,
        // The family ends the chain to the millisecond; the token's own expiry only rounds up to it.
        Math.min(now + this.refreshTtlSeconds, Math.ceil(chainEndsAtMs / 1000)),
        refreshJti,
      ),
    };
  }

  private async verify(
    token: string,
    audience: string,
    key: Promise<CryptoKey>,
  ): Promise<{ p: Principal; jti: string }> {
    const { payload } = await jwtVerify(token, await key, {
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
      jti: typeof payload.jti === "string" ? payload.jti : "",
      p: {
        appId: payload.app,
        role,
        userId: payload.sub,
        // Tokens from before generations existed belong to the first one.
        credentialGen: typeof payload.gen === "number" ? payload.gen : 1,
        ...(typeof payload.conf === "string" ? { conferenceId: payload.conf } : {}),
        ...(typeof payload.fam === "string" ? { familyId: payload.fam } : {}),
        ...(typeof payload.exp === "number" ? { expiresAtMs: payload.exp * 1000 } : {}),
      },
    };
  }

  /**
   * The principal of an access token whose signature, issuer and audience hold but which may
   * have expired (undefined when it is no access token of ours at all). Only for the MQTT
   * reconnect rule (Principals.resumeLogin), which decides with the token's login.
   */
  async expiredPrincipalOf(token: string): Promise<Principal | undefined> {
    try {
      // jose checks expiry against currentDate; the epoch makes every expiry a future one.
      const { payload } = await jwtVerify(token, await this.accessKey, {
        issuer: ISSUER,
        audience: ACCESS_AUDIENCE,
        algorithms: ["HS256"],
        currentDate: new Date(0),
      });
      if (typeof payload.sub !== "string" || typeof payload.app !== "string") return undefined;
      if (payload.role !== "SERVICE" && payload.role !== "USER") return undefined;
      return {
        appId: payload.app,
        role: payload.role,
        userId: payload.sub,
        credentialGen: typeof payload.gen === "number" ? payload.gen : 1,
        ...(typeof payload.conf === "string" ? { conferenceId: payload.conf } : {}),
        ...(typeof payload.fam === "string" ? { familyId: payload.fam } : {}),
      };
    } catch {
      return undefined;
    }
  }

  /** The claims of a refresh token; throws with a reason when it is not valid. */
  async verifyRefresh(token: string): Promise<RefreshClaims> {
    const { p, jti } = await this.verify(token, REFRESH_AUDIENCE, this.refreshKey);
    if (jti === "" || p.familyId === undefined) throw new Error("refresh token lacks its id or family");
    return { principal: p, jti };
  }

  /**
   * The principal of a bearer token: an access token, or a room token (USER in that room's
   * conference, the token id as user id). UNAUTHENTICATED otherwise. Whether the principal
   * may still act (app, generation, family, room) is Principals' to say.
   */
  principalOf(token: string): Principal | Promise<Principal> {
    const known = this.verified.get(token);
    if (known !== undefined) {
      // A known token answers at once (no promise): most requests carry one.
      if ((known.expiresAtMs ?? Number.POSITIVE_INFINITY) > this.now()) return known;
      this.verified.delete(token);
      throw unauthenticated(
        known.conferenceId !== undefined && known.familyId === undefined
          ? "the room token has expired"
          : "the access token has expired",
      );
    }
    return this.verifyBearer(token).then((p) => {
      this.verified.set(token, p);
      return p;
    });
  }

  private async verifyBearer(token: string): Promise<Principal> {
    try {
      return (await this.verify(token, ACCESS_AUDIENCE, this.accessKey)).p;
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
        credentialGen: room.credentialGen,
      };
    } catch (e) {
      if (e instanceof RoomTokenError && e.kind === "expired") throw unauthenticated("the room token has expired");
    }
    throw unauthenticated("the bearer token is not valid");
  }
}

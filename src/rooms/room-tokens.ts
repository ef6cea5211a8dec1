/**
 * Room tokens: HS256 JWTs (jose) scoped to one room of one app, with role USER, that the
 * conference API accepts to join that room's conference. Stateless: each room response
 * carries a fresh one valid for the room's roomTokenTTLSeconds. With a TURN server
 * configured a token also carries `iceServers` (RTCIceServer-shaped, TURN REST credentials
 * for the token's own id — the identity it has as a bearer): the SDKs ask
 * `GET /rtc-api/iceServers` instead, but a page that reads its token needs no second call.
 */
import { randomUUID } from "node:crypto";
import { errors, jwtVerify } from "jose";
import { hmacKey } from "../auth/hmac-key.js";
import { Hs256Signer } from "../auth/hs256.js";
import type { ServerKey } from "../auth/server-key.js";
import type { TurnCredentials } from "../auth/turn-credentials.js";
import { Lru } from "../cache/lru.js";

const ISSUER = "rtcplane";
const AUDIENCE = "rtcplane:room";

export interface RoomTokenClaims {
  readonly roomId: string;
  readonly appId: string;
  readonly role: "USER";
  readonly expiresAtMs: number;
  /** The token's unique id (jti): a stable user identity for a room token used as a bearer. */
  readonly tokenId: string;
  /** The app's credential generation it was issued under (a renewed secret revokes it). */
  readonly credentialGen: number;
}

/** Why a token was refused, for logs and for the conference API's error mapping. */
export class RoomTokenError extends Error {
  constructor(
    readonly kind: "expired" | "invalid",
    message: string,
  ) {
    super(message);
    this.name = "RoomTokenError";
  }
}

/** Room tokens kept for re-use by room reads (one per room and generation). */
const CACHED_TOKENS = 10_000;

export class RoomTokens {
  private readonly key: Promise<CryptoKey>;
  private readonly signer: Hs256Signer;
  private readonly recent = new Lru<string, { token: string; renewAtMs: number }>(CACHED_TOKENS);

  constructor(
    serverKey: ServerKey,
    private readonly now: () => number = Date.now,
    private readonly turn?: TurnCredentials,
  ) {
    const bytes = serverKey.derive("rooms.token");
    this.key = hmacKey(bytes);
    this.signer = new Hs256Signer(bytes);
  }

  /**
   * A valid token for the room: the one handed out last while it has more than half its
   * lifetime left, else a new one. Every room response carries a token; signing one per
   * read would cost more than the read.
   */
  current(roomId: string, appId: string, ttlSeconds: number, credentialGen: number): string {
    const key = `${appId}/${roomId}/${credentialGen}/${ttlSeconds}`;
    const cached = this.recent.get(key);
    if (cached !== undefined && cached.renewAtMs > this.now()) return cached.token;
    const token = this.issue(roomId, appId, ttlSeconds, credentialGen);
    this.recent.set(key, { token, renewAtMs: this.now() + (ttlSeconds * 1000) / 2 });
    return token;
  }

  issue(roomId: string, appId: string, ttlSeconds: number, credentialGen: number): string {
    const iat = Math.floor(this.now() / 1000);
    const jti = randomUUID();
    const turn = this.turn?.issue(jti);
    return this.signer.sign({
      ...(turn === undefined
        ? {}
        : { iceServers: [{ urls: turn.urls, username: turn.username, credential: turn.credential }] }),
      app: appId,
      role: "USER",
      gen: credentialGen,
      iss: ISSUER,
      aud: AUDIENCE,
      sub: roomId,
      iat,
      exp: iat + ttlSeconds,
      jti,
    });
  }

  /** Checks signature, issuer, audience and expiry; throws RoomTokenError otherwise. */
  async verify(token: string): Promise<RoomTokenClaims> {
    try {
      const { payload } = await jwtVerify(token, await this.key, {
        issuer: ISSUER,
        audience: AUDIENCE,
        algorithms: ["HS256"],
        currentDate: new Date(this.now()),
      });
      if (typeof payload.sub !== "string" || typeof payload.app !== "string" || payload.role !== "USER") {
        throw new RoomTokenError("invalid", "room token lacks its room, app or role");
      }
      return {
        roomId: payload.sub,
        appId: payload.app,
        role: "USER",
        expiresAtMs: (payload.exp ?? 0) * 1000,
        tokenId: typeof payload.jti === "string" ? payload.jti : payload.sub,
        credentialGen: typeof payload.gen === "number" ? payload.gen : 1,
      };
    } catch (e) {
      if (e instanceof RoomTokenError) throw e;
      if (e instanceof errors.JWTExpired) throw new RoomTokenError("expired", "room token has expired");
      throw new RoomTokenError("invalid", "room token is not valid");
    }
  }
}

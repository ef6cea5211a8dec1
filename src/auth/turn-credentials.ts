/**
 * Time-limited TURN credentials (the "TURN REST API" of draft-uberti-behave-turn-rest, what
 * coturn checks with `use-auth-secret`): user name `<expiry unix seconds>:<user id>`,
 * credential base64(HMAC-SHA1(shared secret, user name)). coturn recomputes the HMAC with its
 * `static-auth-secret` and refuses a user name whose expiry has passed, so nothing is stored
 * and a holder cannot extend or re-target them. The one place that makes them: the conference
 * API's `GET /rtc-api/iceServers` (every bearer, room tokens included) and Spreed's `Self.Turn`.
 */
import { createHash, createHmac } from "node:crypto";

export interface TurnSettings {
  /** turn:/turns: URIs (validated by config.ts); empty = no TURN server. */
  readonly uris: readonly string[];
  /** The shared secret (coturn's `static-auth-secret`); undefined = no TURN server. */
  readonly secret: string | undefined;
  /** How long a credential works from the moment it is issued. */
  readonly ttlSeconds: number;
}

export interface TurnCredential {
  readonly urls: string[];
  readonly username: string;
  readonly credential: string;
  readonly ttlSeconds: number;
  /** Unix seconds from which the TURN server refuses the user name. */
  readonly expiresAt: number;
}

/** User ids put in a user name as they are; anything else is replaced by a digest of it. */
const PLAIN_USER_ID = /^[A-Za-z0-9._@+/=-]{1,128}$/;

/**
 * The user name's user part: the id itself when it is short printable ASCII (ids we generate
 * always are), else a digest — a STUN USERNAME is at most 513 bytes and SASLprep'd by the
 * server, and the part is only for the TURN server's logs.
 */
function userPart(userId: string): string {
  if (PLAIN_USER_ID.test(userId)) return userId;
  return `h.${createHash("sha256").update(userId).digest("base64url").slice(0, 22)}`;
}

export class TurnCredentials {
  constructor(
    private readonly settings: TurnSettings,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether a TURN server is configured (URIs and a secret). */
  get enabled(): boolean {
    return this.settings.secret !== undefined && this.settings.uris.length > 0;
  }

  /** Credentials for `userId` valid for the configured TTL from now; undefined without TURN. */
  issue(userId: string): TurnCredential | undefined {
    const { secret, uris, ttlSeconds } = this.settings;
    if (secret === undefined || uris.length === 0) return undefined;
    const expiresAt = Math.floor(this.now() / 1000) + ttlSeconds;
    const username = `${expiresAt}:${userPart(userId)}`;
    return {
      urls: [...uris],
      username,
      credential: turnCredential(secret, username),
      ttlSeconds,
      expiresAt,
    };
  }
}

/** base64(HMAC-SHA1(secret, username)): what coturn computes for `use-auth-secret`. */
export function turnCredential(secret: string, username: string): string {
  return createHmac("sha1", secret).update(username).digest("base64");
}

/**
 * HS256 JWT signing, synchronously with node:crypto's HMAC. jose signs through WebCrypto,
 * one asynchronous job per token, which costs more than the request that needs the token;
 * a compact JWS is three base64url parts, nothing more to get wrong. Verification stays
 * with jose (its parsing is the part worth a library), on a key imported once (hmac-key.ts).
 */
import { createHmac } from "node:crypto";

const HEADER = Buffer.from(JSON.stringify({ alg: "HS256", typ: "JWT" })).toString("base64url");

export class Hs256Signer {
  constructor(private readonly key: Buffer) {}

  /** The compact JWS of `claims` (registered claims included by the caller: iss, aud, sub, iat, exp, jti). */
  sign(claims: Readonly<Record<string, unknown>>): string {
    const signed = `${HEADER}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}`;
    return `${signed}.${createHmac("sha256", this.key).update(signed).digest("base64url")}`;
  }
}

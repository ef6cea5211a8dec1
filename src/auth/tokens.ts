/**
 * Bearer secrets: random, shown once, stored only as SHA-256 hashes and compared in
 * constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

/** A new 256-bit secret, base64url without padding. */
export function newSecretToken(): string {
  return randomBytes(32).toString("base64url");
}

/** A new 128-bit id, lowercase hex. */
export function newId(): string {
  return randomBytes(16).toString("hex");
}

export function hashToken(token: string): Buffer {
  return createHash("sha256").update(token, "utf8").digest();
}

/** Compares a presented token with a stored hash without leaking timing. */
export function tokenMatchesHash(token: string, hash: Buffer): boolean {
  const presented = hashToken(token);
  return presented.length === hash.length && timingSafeEqual(presented, hash);
}

/**
 * HS256 keys for jose, imported into WebCrypto once: handing jose raw bytes makes it import
 * the key again on every sign and verify (half the cost of each).
 */
import { webcrypto } from "node:crypto";

export function hmacKey(bytes: Uint8Array): Promise<CryptoKey> {
  return webcrypto.subtle.importKey("raw", bytes, { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
}

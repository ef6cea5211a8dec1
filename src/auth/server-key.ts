/**
 * The server's own secret, kept outside the database so a leaked database alone cannot
 * forge page tokens or decrypt stored secrets: DATA_DIR/server.key on one machine, or
 * derived from CLUSTER_SECRET, so every node of a cluster seals and opens the same way.
 */
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, timingSafeEqual } from "node:crypto";
import fs from "node:fs";
import path from "node:path";

export class ServerKey {
  private constructor(private readonly key: Buffer) {}

  /** The key of a cluster: HKDF-SHA256 of the shared secret (same on every node). */
  static fromClusterSecret(secret: string): ServerKey {
    return new ServerKey(Buffer.from(hkdfSync("sha256", secret, "rtcplane", "rtcplane server key v1", 32)));
  }

  /** Reads DATA_DIR/server.key, creating it (mode 0600) on first start. */
  static loadOrCreate(dataDir: string): ServerKey {
    const file = path.join(dataDir, "server.key");
    fs.mkdirSync(dataDir, { recursive: true });
    try {
      const key = fs.readFileSync(file);
      if (key.length !== 32) throw new Error(`${file} must hold exactly 32 bytes, found ${key.length}`);
      return new ServerKey(key);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
    const key = randomBytes(32);
    fs.writeFileSync(file, key, { mode: 0o600, flag: "wx" });
    return new ServerKey(key);
  }

  /** A key for one purpose, so a MAC made for one use is never valid for another. */
  derive(purpose: string): Buffer {
    return createHmac("sha256", this.key).update(`rtcplane:${purpose}`).digest();
  }

  /** Signs a payload as `<base64url payload>.<base64url mac>`. */
  seal(purpose: string, payload: object): string {
    const body = Buffer.from(JSON.stringify(payload)).toString("base64url");
    const mac = createHmac("sha256", this.derive(purpose)).update(body).digest("base64url");
    return `${body}.${mac}`;
  }

  /** Returns the payload of a token sealed for this purpose, or undefined if tampered. */
  unseal(purpose: string, token: string): unknown {
    const dot = token.indexOf(".");
    if (dot <= 0 || token.length > 4096) return undefined;
    const body = token.slice(0, dot);
    const mac = Buffer.from(token.slice(dot + 1), "base64url");
    const expected = createHmac("sha256", this.derive(purpose)).update(body).digest();
    if (mac.length !== expected.length || !timingSafeEqual(mac, expected)) return undefined;
    try {
      return JSON.parse(Buffer.from(body, "base64url").toString("utf8"));
    } catch {
      return undefined;
    }
  }

  /**
   * Encrypts a secret for storage with AES-256-GCM under a key derived for `purpose`;
   * `context` (e.g. the owning row's id) is authenticated so a ciphertext cannot be
   * moved to another row. Output: 12-byte nonce, 16-byte tag, ciphertext.
   */
  encrypt(purpose: string, plaintext: string, context: string): Buffer {
    const nonce = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", this.derive(`enc:${purpose}`), nonce);
    cipher.setAAD(Buffer.from(context, "utf8"));
    const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
    return Buffer.concat([nonce, cipher.getAuthTag(), body]);
  }

  /** Decrypts what encrypt() made for the same purpose and context; throws if tampered. */
  decrypt(purpose: string, sealed: Buffer, context: string): string {
    const decipher = createDecipheriv("aes-256-gcm", this.derive(`enc:${purpose}`), sealed.subarray(0, 12));
    decipher.setAAD(Buffer.from(context, "utf8"));
    decipher.setAuthTag(sealed.subarray(12, 28));
    return Buffer.concat([decipher.update(sealed.subarray(28)), decipher.final()]).toString("utf8");
  }
}

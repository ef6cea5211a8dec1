/**
 * The operator's ADMIN_TOKEN. When the environment gives none, one is generated on
 * first start, printed once, and only its hash is kept in DATA_DIR.
 */
import fs from "node:fs";
import path from "node:path";
import { hashToken, newSecretToken, tokenMatchesHash } from "./tokens.js";

export class AdminCredentials {
  private constructor(private readonly hash: Buffer) {}

  static fromToken(token: string): AdminCredentials {
    return new AdminCredentials(hashToken(token));
  }

  /**
   * Uses `token` if given; else the hash stored in DATA_DIR; else generates a token,
   * stores its hash and hands the token to `announce` (the only time it is seen).
   */
  static load(dataDir: string, token: string | undefined, announce: (token: string, file: string) => void) {
    if (token !== undefined) return AdminCredentials.fromToken(token);
    const file = path.join(dataDir, "admin-token.sha256");
    try {
      const hex = fs.readFileSync(file, "utf8").trim();
      if (!/^[0-9a-f]{64}$/.test(hex)) throw new Error(`${file} does not hold a SHA-256 hex digest`);
      return new AdminCredentials(Buffer.from(hex, "hex"));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
    fs.mkdirSync(dataDir, { recursive: true });
    const generated = newSecretToken();
    fs.writeFileSync(file, `${hashToken(generated).toString("hex")}\n`, { mode: 0o600, flag: "wx" });
    announce(generated, file);
    return AdminCredentials.fromToken(generated);
  }

  /** Whether `token` is the admin token (compared in constant time through its hash). */
  matches(token: string): boolean {
    return tokenMatchesHash(token, this.hash);
  }
}

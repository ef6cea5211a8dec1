/**
 * Refresh-token rotation with reuse detection (OAuth 2.0 Security BCP §4.14): every login
 * starts a family whose chain ends at an absolute time; each refresh token may be used
 * once and is replaced by the next; presenting an already-used one means it was copied,
 * so the whole family — and the access tokens it issued — is revoked. Only this module
 * touches the refresh_families table.
 */
import { randomUUID } from "node:crypto";
import type { Db } from "../storage/database.js";

export interface Family {
  readonly familyId: string;
  readonly appId: string;
  readonly expiresAtMs: number;
}

/** Why a refresh token was refused (logged; the client sees one invalid_grant). */
export type RotationRefusal = "unknown" | "expired" | "revoked" | "reused";

export class RefreshFamilies {
  private readonly s;
  /** Told when a family is revoked for reuse (its open connections must end). */
  onRevoked: ((appId: string) => void) | undefined;

  constructor(
    db: Db,
    private readonly now: () => number = Date.now,
  ) {
    this.s = {
      insert: db.prepare(
        `INSERT INTO refresh_families (family_id, app_id, current_jti, expires_ms, create_time_ms)
         VALUES (?, ?, ?, ?, ?)`,
      ),
      get: db.prepare("SELECT app_id, current_jti, revoked, expires_ms FROM refresh_families WHERE family_id = ?"),
      rotate: db.prepare(
        `UPDATE refresh_families SET current_jti = @next
         WHERE family_id = @familyId AND current_jti = @used AND revoked = 0 AND expires_ms > @now`,
      ),
      revoke: db.prepare("UPDATE refresh_families SET revoked = 1 WHERE family_id = ?"),
      sweep: db.prepare("DELETE FROM refresh_families WHERE expires_ms < ?"),
    };
  }

  /** Starts a family whose first refresh token has id `jti`. */
  start(appId: string, jti: string, lifetimeSeconds: number): Family {
    const familyId = randomUUID();
    const expiresAtMs = this.now() + lifetimeSeconds * 1000;
    this.s.insert.run(familyId, appId, jti, expiresAtMs, this.now());
    return { familyId, appId, expiresAtMs };
  }

  /**
   * Uses refresh token `used` of the family, making `next` the only valid one; answers the
   * family, or why the token is refused. A token used twice revokes its family.
   */
  rotate(familyId: string, used: string, next: string): Family | RotationRefusal {
    const row = this.s.get.get(familyId) as
      | { app_id: string; current_jti: string; revoked: number; expires_ms: number }
      | undefined;
    if (row === undefined) return "unknown";
    if (row.revoked !== 0) return "revoked";
    if (row.expires_ms <= this.now()) return "expired";
    if (this.s.rotate.run({ familyId, used, next, now: this.now() }).changes === 1) {
      return { familyId, appId: row.app_id, expiresAtMs: row.expires_ms };
    }
    this.s.revoke.run(familyId);
    this.onRevoked?.(row.app_id);
    return "reused";
  }

  /** When a live family's chain ends (ms), or undefined for a revoked, ended or unknown one. */
  liveUntil(familyId: string): number | undefined {
    const row = this.s.get.get(familyId) as { revoked: number; expires_ms: number } | undefined;
    return row === undefined || row.revoked !== 0 || row.expires_ms <= this.now() ? undefined : row.expires_ms;
  }

  /** Whether access tokens of this family must be refused. */
  isRevoked(familyId: string): boolean {
    const row = this.s.get.get(familyId) as { revoked: number } | undefined;
    return row === undefined || row.revoked !== 0;
  }

  /** Forgets families past their absolute end; returns how many. */
  sweep(): number {
    return this.s.sweep.run(this.now()).changes;
  }
}

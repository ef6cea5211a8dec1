/**
 * Refresh-token rotation with reuse detection (OAuth 2.0 Security BCP §4.14): every login
 * starts a family whose chain ends at an absolute time; each refresh token may be used
 * once and is replaced by the next; presenting an already-used one means it was copied,
 * so the whole family — and the access tokens it issued — is revoked. Only this module
 * touches the refresh_families table.
 */
import { randomUUID } from "node:crypto";
import type { Queryable } from "../storage/store.js";

export interface Family {
  readonly familyId: string;
  readonly appId: string;
  readonly expiresAtMs: number;
}

/** Why a refresh token was refused (logged; the client sees one invalid_grant). */
export type RotationRefusal = "unknown" | "expired" | "revoked" | "reused";

interface FamilyRow {
  app_id: string;
  current_jti: string;
  revoked: number;
  expires_ms: number;
}

const INSERT = `INSERT INTO refresh_families (family_id, app_id, current_jti, expires_ms, create_time_ms)
  VALUES (?, ?, ?, ?, ?)`;
const GET = "SELECT app_id, current_jti, revoked, expires_ms FROM refresh_families WHERE family_id = ?";
/**
 * The rotation itself: a compare-and-set on the current token id, so of two requests (on
 * any nodes) presenting the same refresh token only one changes the row.
 */
const ROTATE = `UPDATE refresh_families SET current_jti = ?
  WHERE family_id = ? AND current_jti = ? AND revoked = 0 AND expires_ms > ?`;
const REVOKE = "UPDATE refresh_families SET revoked = 1 WHERE family_id = ?";
const SWEEP = "DELETE FROM refresh_families WHERE expires_ms < ?";

export class RefreshFamilies {
  /** Told when a family is revoked for reuse (its open connections must end). */
  /** Awaited after a revocation, before "reused" is answered (every node then knows). */
  onRevoked: ((appId: string) => Promise<void> | void) | undefined;

  constructor(
    private readonly q: Queryable,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * The same families over `q` (a transaction). rotate() on it tells onRevoked as soon as
   * it revokes, before any commit: rotate outside transactions.
   */
  in(q: Queryable): RefreshFamilies {
    const bound = new RefreshFamilies(q, this.now);
    bound.onRevoked = this.onRevoked;
    return bound;
  }

  /** Starts a family whose first refresh token has id `jti`. */
  async start(appId: string, jti: string, lifetimeSeconds: number): Promise<Family> {
    const familyId = randomUUID();
    const expiresAtMs = this.now() + lifetimeSeconds * 1000;
    await this.q.run(INSERT, [familyId, appId, jti, expiresAtMs, this.now()]);
    return { familyId, appId, expiresAtMs };
  }

  /**
   * Uses refresh token `used` of the family, making `next` the only valid one; answers the
   * family, or why the token is refused. A token used twice revokes its family.
   */
  async rotate(familyId: string, used: string, next: string): Promise<Family | RotationRefusal> {
    const row = await this.q.get<FamilyRow>(GET, [familyId]);
    if (row === undefined) return "unknown";
    if (row.revoked !== 0) return "revoked";
    if (row.expires_ms <= this.now()) return "expired";
    if ((await this.q.run(ROTATE, [next, familyId, used, this.now()])) === 1) {
      return { familyId, appId: row.app_id, expiresAtMs: row.expires_ms };
    }
    await this.q.run(REVOKE, [familyId]);
    await this.onRevoked?.(row.app_id);
    return "reused";
  }

  /** When a live family's chain ends (ms), or undefined for a revoked, ended or unknown one. */
  async liveUntil(familyId: string): Promise<number | undefined> {
    const row = await this.q.get<FamilyRow>(GET, [familyId]);
    return row === undefined || row.revoked !== 0 || row.expires_ms <= this.now() ? undefined : row.expires_ms;
  }

  /** Whether access tokens of this family must be refused. */
  async isRevoked(familyId: string): Promise<boolean> {
    const row = await this.q.get<FamilyRow>(GET, [familyId]);
    return row === undefined || row.revoked !== 0;
  }

  /** Forgets families past their absolute end; returns how many. */
  async sweep(): Promise<number> {
    return this.q.run(SWEEP, [this.now()]);
  }
}

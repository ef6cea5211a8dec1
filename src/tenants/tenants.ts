/**
 * Tenant rules: names, status changes and auth tokens. Storage is the repository's;
 * wire formats are the service's.
 */

import type { ServerKey } from "../auth/server-key.js";
import { hashToken, newId, newSecretToken } from "../auth/tokens.js";
import { Lru } from "../cache/lru.js";
import { failedPrecondition, invalidArgument, notFound, permissionDenied } from "../errors.js";
import type { Db } from "../storage/database.js";
import { hasControlCharacters } from "../validation.js";
import { TenantRepository, type TenantRow, type TenantStatus } from "./tenant-repository.js";

export type { TenantRow, TenantStatus };

const STATUSES: readonly TenantStatus[] = ["active", "suspended", "deleted"];
const MAX_NAME = 128;
const MAX_PAGE = 1000;
const DEFAULT_PAGE = 50;
const PAGE_PURPOSE = "tenants.page";
/** Tenants (and token hashes) remembered between requests; every change forgets its tenant. */
const CACHED_TENANTS = 10_000;

/** Checks a display name: 1..128 characters, no control characters. */
export function validateTenantName(name: string): string {
  const trimmed = name.trim();
  if (trimmed === "") throw invalidArgument("name: must not be empty");
  if ([...trimmed].length > MAX_NAME) throw invalidArgument(`name: must be at most ${MAX_NAME} characters`);
  if (hasControlCharacters(trimmed)) throw invalidArgument("name: must not contain control characters");
  return trimmed;
}

function validateStatus(status: string): TenantStatus {
  if (!(STATUSES as readonly string[]).includes(status)) {
    throw invalidArgument(`status: must be one of ${STATUSES.join(", ")}, got ${JSON.stringify(status)}`);
  }
  return status as TenantStatus;
}

/** A tenant id is 32 lowercase hex characters; anything else cannot exist. */
function isTenantId(id: string): boolean {
  return /^[0-9a-f]{32}$/.test(id);
}

export interface TenantPage {
  tenants: TenantRow[];
  nextPageToken: string;
}

export class Tenants {
  private readonly repo: TenantRepository;
  /**
   * Credential lookups run on every request, so tenants are cached. Writes here forget the
   * tenant before they return (the next request sees the change); other processes' writes
   * arrive through forget().
   */
  private readonly byId = new Lru<string, TenantRow>(CACHED_TENANTS);
  private readonly idByToken = new Lru<string, string>(CACHED_TENANTS);
  /** Told after a tenant's status changed: its apps' credentials may have stopped working. */
  onStatusChanged: ((tenantId: string) => void) | undefined;

  constructor(
    private readonly db: Db,
    private readonly serverKey: ServerKey,
    private readonly now: () => number = Date.now,
  ) {
    this.repo = new TenantRepository(db);
  }

  create(name: string): { tenant: TenantRow; authToken: string } {
    const authToken = newSecretToken();
    const tenant = this.repo.insert(newId(), validateTenantName(name), hashToken(authToken), this.now());
    return { tenant, authToken };
  }

  get(tenantId: string): TenantRow {
    const tenant = this.find(tenantId);
    if (tenant === undefined) throw notFound(`tenant ${JSON.stringify(tenantId)} not found`);
    return tenant;
  }

  private find(tenantId: string): TenantRow | undefined {
    const cached = this.byId.get(tenantId);
    if (cached !== undefined) return cached;
    const tenant = isTenantId(tenantId) ? this.repo.get(tenantId) : undefined;
    if (tenant !== undefined) this.byId.set(tenantId, tenant);
    return tenant;
  }

  /**
   * The tenant whose auth token this is, whatever its status (callers decide). Known tokens
   * are looked up by their text, without hashing; any change to any tenant forgets them all,
   * so a rotated token never resolves.
   */
  findByAuthToken(token: string): TenantRow | undefined {
    const id = this.idByToken.get(token);
    if (id !== undefined) {
      const tenant = this.find(id);
      if (tenant !== undefined) return tenant;
      this.idByToken.delete(token);
    }
    const tenant = this.repo.getByTokenHash(hashToken(token));
    if (tenant !== undefined) {
      this.byId.set(tenant.tenantId, tenant);
      this.idByToken.set(token, tenant.tenantId);
    }
    return tenant;
  }

  /** Forgets what is cached of a tenant (it changed, here or on another node). */
  forget(tenantId: string): void {
    this.byId.delete(tenantId);
    this.idByToken.clear();
  }

  /**
   * The authenticated tenant, if it may act on `tenantId`: PERMISSION_DENIED when that is
   * another tenant or this one is suspended or deleted. Dialects decide how much of this a
   * client is told.
   */
  permit(tenant: TenantRow, tenantId: string): TenantRow {
    if (tenant.tenantId !== tenantId) throw permissionDenied("the auth token is not for this tenant");
    if (tenant.status !== "active") throw permissionDenied(`tenant is ${tenant.status}`);
    return tenant;
  }

  list(pageSize: number, pageToken: string, showDeleted: boolean): TenantPage {
    if (!Number.isInteger(pageSize) || pageSize < 0 || pageSize > MAX_PAGE) {
      throw invalidArgument(`page_size: must be between 0 and ${MAX_PAGE}`);
    }
    const limit = pageSize === 0 ? DEFAULT_PAGE : pageSize;
    let after = 0;
    if (pageToken !== "") {
      const cursor = this.serverKey.unseal(PAGE_PURPOSE, pageToken) as { after?: unknown; deleted?: unknown };
      if (typeof cursor?.after !== "number" || cursor.deleted !== showDeleted) {
        throw invalidArgument("page_token: not a token this server issued for this listing");
      }
      after = cursor.after;
    }
    // One extra row tells whether another page exists without a second query.
    const rows = this.repo.page(after, limit + 1, showDeleted);
    const tenants = rows.slice(0, limit);
    const last = tenants[tenants.length - 1];
    const nextPageToken =
      rows.length > limit && last !== undefined
        ? this.serverKey.seal(PAGE_PURPOSE, { after: last.seq, deleted: showDeleted })
        : "";
    return { tenants, nextPageToken };
  }

  update(tenantId: string, change: { name?: string | undefined; status?: string | undefined }): TenantRow {
    const name = change.name === undefined ? undefined : validateTenantName(change.name);
    const status = change.status === undefined ? undefined : validateStatus(change.status);
    const { updated, before } = this.db.transaction(() => {
      const current = this.get(tenantId);
      if (current.status === "deleted") throw failedPrecondition(`tenant ${tenantId} is deleted`);
      const row = this.repo.update(tenantId, name ?? current.name, status ?? current.status, this.now());
      if (row === undefined) throw notFound(`tenant ${JSON.stringify(tenantId)} not found`);
      return { updated: row, before: current.status };
    })();
    this.forget(tenantId);
    if (updated.status !== before) this.onStatusChanged?.(tenantId);
    return updated;
  }

  rotateToken(tenantId: string): { tenant: TenantRow; authToken: string } {
    const rotated = this.db.transaction(() => {
      const current = this.get(tenantId);
      if (current.status === "deleted") throw failedPrecondition(`tenant ${tenantId} is deleted`);
      const authToken = newSecretToken();
      const tenant = this.repo.setTokenHash(tenantId, hashToken(authToken), this.now());
      if (tenant === undefined) throw notFound(`tenant ${JSON.stringify(tenantId)} not found`);
      return { tenant, authToken };
    })();
    this.forget(tenantId);
    return rotated;
  }
}

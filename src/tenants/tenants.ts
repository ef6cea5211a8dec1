/**
 * Tenant rules: names, status changes and auth tokens. Storage is the repository's;
 * wire formats are the service's.
 */

import type { ServerKey } from "../auth/server-key.js";
import { hashToken, newId, newSecretToken } from "../auth/tokens.js";
import { Lru } from "../cache/lru.js";
import type { Announced } from "../cluster/cluster-caches.js";
import { failedPrecondition, invalidArgument, notFound, permissionDenied } from "../errors.js";
import type { Store, Tx } from "../storage/store.js";
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
  /**
   * Raised by every forget(): a lookup only caches what it read if no tenant changed while
   * it waited for the database, so a read from before a change never outlives the change.
   */
  private changes = 0;
  private caching = true;
  /**
   * Told after a change to a tenant commits, and awaited before its caller's answer:
   * `credentials` when its status changed (its apps' credentials may have stopped working).
   * A cluster makes every node forget the tenant before that answer.
   */
  onChanged: ((tx: Tx, tenantId: string, credentials: boolean) => Promise<Announced>) | undefined;

  constructor(
    private readonly store: Store,
    private readonly serverKey: ServerKey,
    private readonly now: () => number = Date.now,
  ) {
    this.repo = new TenantRepository(store);
  }

  async create(name: string): Promise<{ tenant: TenantRow; authToken: string }> {
    const authToken = newSecretToken();
    const tenant = await this.repo.insert(newId(), validateTenantName(name), hashToken(authToken), this.now());
    return { tenant, authToken };
  }

  async get(tenantId: string): Promise<TenantRow> {
    const tenant = await this.find(tenantId);
    if (tenant === undefined) throw notFound(`tenant ${JSON.stringify(tenantId)} not found`);
    return tenant;
  }

  private async find(tenantId: string): Promise<TenantRow | undefined> {
    const cached = this.byId.get(tenantId);
    if (cached !== undefined) return cached;
    if (!isTenantId(tenantId)) return undefined;
    const changes = this.changes;
    const tenant = await this.repo.get(tenantId);
    if (tenant !== undefined && changes === this.changes && this.caching) this.byId.set(tenantId, tenant);
    return tenant;
  }

  /**
   * Inside a transaction: the tenant's row, locked until the transaction ends (it is about
   * to change), read from the database rather than the cache. NOT_FOUND if missing,
   * FAILED_PRECONDITION if deleted.
   */
  private async locked(repo: TenantRepository, tenantId: string): Promise<TenantRow> {
    const current = isTenantId(tenantId) ? await repo.get(tenantId, this.store.forUpdate) : undefined;
    if (current === undefined) throw notFound(`tenant ${JSON.stringify(tenantId)} not found`);
    if (current.status === "deleted") throw failedPrecondition(`tenant ${tenantId} is deleted`);
    return current;
  }

  /**
   * The tenant whose auth token this is, whatever its status (callers decide). Known tokens
   * are looked up by their text, without hashing; any change to any tenant forgets them all,
   * so a rotated token never resolves.
   */
  async findByAuthToken(token: string): Promise<TenantRow | undefined> {
    const id = this.idByToken.get(token);
    if (id !== undefined) {
      const tenant = await this.find(id);
      if (tenant !== undefined) return tenant;
      this.idByToken.delete(token);
    }
    const changes = this.changes;
    const tenant = await this.repo.getByTokenHash(hashToken(token));
    if (tenant !== undefined && changes === this.changes && this.caching) {
      this.byId.set(tenant.tenantId, tenant);
      this.idByToken.set(token, tenant.tenantId);
    }
    return tenant;
  }

  /** Forgets what is cached of a tenant (it changed, here or on another node). */
  forget(tenantId: string): void {
    this.changes += 1;
    this.byId.delete(tenantId);
    this.idByToken.clear();
  }

  /** Turns caching off (news of other nodes' changes cannot arrive) or on; forgets what is cached. */
  setCaching(on: boolean): void {
    this.caching = on;
    this.forgetAll();
  }

  /** Forgets every cached tenant (news of other nodes' changes may have been missed). */
  forgetAll(): void {
    this.changes += 1;
    this.byId.clear();
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

  async list(pageSize: number, pageToken: string, showDeleted: boolean): Promise<TenantPage> {
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
    const rows = await this.repo.page(after, limit + 1, showDeleted);
    const tenants = rows.slice(0, limit);
    const last = tenants[tenants.length - 1];
    const nextPageToken =
      rows.length > limit && last !== undefined
        ? this.serverKey.seal(PAGE_PURPOSE, { after: last.seq, deleted: showDeleted })
        : "";
    return { tenants, nextPageToken };
  }

  async update(
    tenantId: string,
    change: { name?: string | undefined; status?: string | undefined },
  ): Promise<TenantRow> {
    const name = change.name === undefined ? undefined : validateTenantName(change.name);
    const status = change.status === undefined ? undefined : validateStatus(change.status);
    const { updated, announced } = await this.store.transaction(async (tx) => {
      const repo = this.repo.in(tx);
      const current = await this.locked(repo, tenantId);
      const row = await repo.update(tenantId, name ?? current.name, status ?? current.status, this.now());
      if (row === undefined) throw notFound(`tenant ${JSON.stringify(tenantId)} not found`);
      // Forgotten as the change commits, so no request here can still see the old tenant.
      tx.afterCommit(() => this.forget(tenantId));
      return { updated: row, announced: await this.onChanged?.(tx, tenantId, row.status !== current.status) };
    });
    await announced?.delivered;
    return updated;
  }

  async rotateToken(tenantId: string): Promise<{ tenant: TenantRow; authToken: string }> {
    const rotated = await this.store.transaction(async (tx) => {
      const repo = this.repo.in(tx);
      await this.locked(repo, tenantId);
      const authToken = newSecretToken();
      const tenant = await repo.setTokenHash(tenantId, hashToken(authToken), this.now());
      if (tenant === undefined) throw notFound(`tenant ${JSON.stringify(tenantId)} not found`);
      tx.afterCommit(() => this.forget(tenantId));
      return { tenant, authToken, announced: await this.onChanged?.(tx, tenantId, false) };
    });
    await rotated.announced?.delivered;
    return { tenant: rotated.tenant, authToken: rotated.authToken };
  }
}

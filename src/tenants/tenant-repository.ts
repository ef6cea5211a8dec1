/**
 * The only module that reads or writes the `tenants` table. SQL is written once per
 * statement (the stores prepare it once per text); values are always bound, never spliced
 * into SQL.
 */
import type { Queryable } from "../storage/store.js";

export type TenantStatus = "active" | "suspended" | "deleted";

export interface TenantRow {
  seq: number;
  tenantId: string;
  name: string;
  status: TenantStatus;
  createTimeMs: number;
  updateTimeMs: number;
}

interface RawRow {
  seq: number;
  tenant_id: string;
  name: string;
  status: TenantStatus;
  create_time_ms: number;
  update_time_ms: number;
}

const COLUMNS = "seq, tenant_id, name, status, create_time_ms, update_time_ms";

const INSERT = `INSERT INTO tenants (tenant_id, name, status, token_hash, create_time_ms, update_time_ms)
  VALUES (?, ?, 'active', ?, ?, ?) RETURNING ${COLUMNS}`;
const BY_ID = `SELECT ${COLUMNS} FROM tenants WHERE tenant_id = ?`;
const BY_TOKEN = `SELECT ${COLUMNS} FROM tenants WHERE token_hash = ?`;
const PAGE = `SELECT ${COLUMNS} FROM tenants WHERE seq > ? AND status != 'deleted' ORDER BY seq LIMIT ?`;
const PAGE_ALL = `SELECT ${COLUMNS} FROM tenants WHERE seq > ? ORDER BY seq LIMIT ?`;
const UPDATE = `UPDATE tenants SET name = ?, status = ?, update_time_ms = ?
  WHERE tenant_id = ? RETURNING ${COLUMNS}`;
const SET_TOKEN = `UPDATE tenants SET token_hash = ?, update_time_ms = ?
  WHERE tenant_id = ? RETURNING ${COLUMNS}`;

function fromRaw(r: RawRow): TenantRow {
  return {
    seq: r.seq,
    tenantId: r.tenant_id,
    name: r.name,
    status: r.status,
    createTimeMs: r.create_time_ms,
    updateTimeMs: r.update_time_ms,
  };
}

export class TenantRepository {
  constructor(private readonly q: Queryable) {}

  /** The same repository over another queryable (a transaction's `tx`). */
  in(q: Queryable): TenantRepository {
    return new TenantRepository(q);
  }

  async insert(tenantId: string, name: string, tokenHash: Buffer, now: number): Promise<TenantRow> {
    const r = await this.q.get<RawRow>(INSERT, [tenantId, name, tokenHash, now, now]);
    if (r === undefined) throw new Error("INSERT … RETURNING gave no row");
    return fromRaw(r);
  }

  /**
   * The tenant, if any. `forUpdate` (the store's) locks the row for the rest of the
   * transaction, for a read the transaction then changes.
   */
  async get(tenantId: string, forUpdate = ""): Promise<TenantRow | undefined> {
    const r = await this.q.get<RawRow>(BY_ID + forUpdate, [tenantId]);
    return r && fromRaw(r);
  }

  /** Looks a tenant up by the hash of its auth token (the app API's X-Auth-Token). */
  async getByTokenHash(tokenHash: Buffer): Promise<TenantRow | undefined> {
    const r = await this.q.get<RawRow>(BY_TOKEN, [tokenHash]);
    return r && fromRaw(r);
  }

  /** Tenants after `afterSeq` in creation order: keyset paging, stable under inserts. */
  async page(afterSeq: number, limit: number, includeDeleted: boolean): Promise<TenantRow[]> {
    const rows = await this.q.all<RawRow>(includeDeleted ? PAGE_ALL : PAGE, [afterSeq, limit]);
    return rows.map(fromRaw);
  }

  async update(tenantId: string, name: string, status: TenantStatus, now: number): Promise<TenantRow | undefined> {
    const r = await this.q.get<RawRow>(UPDATE, [name, status, now, tenantId]);
    return r && fromRaw(r);
  }

  async setTokenHash(tenantId: string, tokenHash: Buffer, now: number): Promise<TenantRow | undefined> {
    const r = await this.q.get<RawRow>(SET_TOKEN, [tokenHash, now, tenantId]);
    return r && fromRaw(r);
  }
}

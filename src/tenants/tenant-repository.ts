/**
 * The only module that reads or writes the `tenants` table. Statements are prepared
 * once; values are always bound, never spliced into SQL.
 */
import type { Db } from "../storage/database.js";

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
  private readonly insertStmt;
  private readonly byIdStmt;
  private readonly byTokenStmt;
  private readonly pageStmt;
  private readonly pageAllStmt;
  private readonly updateStmt;
  private readonly tokenStmt;

  constructor(db: Db) {
    this.insertStmt = db.prepare(
      `INSERT INTO tenants (tenant_id, name, status, token_hash, create_time_ms, update_time_ms)
       VALUES (@tenantId, @name, 'active', @tokenHash, @now, @now) RETURNING ${COLUMNS}`,
    );
    this.byIdStmt = db.prepare(`SELECT ${COLUMNS} FROM tenants WHERE tenant_id = ?`);
    this.byTokenStmt = db.prepare(`SELECT ${COLUMNS} FROM tenants WHERE token_hash = ?`);
    this.pageStmt = db.prepare(
      `SELECT ${COLUMNS} FROM tenants WHERE seq > ? AND status != 'deleted' ORDER BY seq LIMIT ?`,
    );
    this.pageAllStmt = db.prepare(`SELECT ${COLUMNS} FROM tenants WHERE seq > ? ORDER BY seq LIMIT ?`);
    this.updateStmt = db.prepare(
      `UPDATE tenants SET name = @name, status = @status, update_time_ms = @now
       WHERE tenant_id = @tenantId RETURNING ${COLUMNS}`,
    );
    this.tokenStmt = db.prepare(
      `UPDATE tenants SET token_hash = @tokenHash, update_time_ms = @now
       WHERE tenant_id = @tenantId RETURNING ${COLUMNS}`,
    );
  }

  insert(tenantId: string, name: string, tokenHash: Buffer, now: number): TenantRow {
    return fromRaw(this.insertStmt.get({ tenantId, name, tokenHash, now }) as RawRow);
  }

  get(tenantId: string): TenantRow | undefined {
    const r = this.byIdStmt.get(tenantId) as RawRow | undefined;
    return r && fromRaw(r);
  }

  /** Looks a tenant up by the hash of its auth token (the app API's X-Auth-Token). */
  getByTokenHash(tokenHash: Buffer): TenantRow | undefined {
    const r = this.byTokenStmt.get(tokenHash) as RawRow | undefined;
    return r && fromRaw(r);
  }

  /** Tenants after `afterSeq` in creation order: keyset paging, stable under inserts. */
  page(afterSeq: number, limit: number, includeDeleted: boolean): TenantRow[] {
    const stmt = includeDeleted ? this.pageAllStmt : this.pageStmt;
    return (stmt.all(afterSeq, limit) as RawRow[]).map(fromRaw);
  }

  update(tenantId: string, name: string, status: TenantStatus, now: number): TenantRow | undefined {
    const r = this.updateStmt.get({ tenantId, name, status, now }) as RawRow | undefined;
    return r && fromRaw(r);
  }

  setTokenHash(tenantId: string, tokenHash: Buffer, now: number): TenantRow | undefined {
    const r = this.tokenStmt.get({ tenantId, tokenHash, now }) as RawRow | undefined;
    return r && fromRaw(r);
  }
}

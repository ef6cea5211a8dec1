/**
 * The only module that reads or writes the `apps` and `app_usage` tables. Secrets arrive
 * here already hashed and encrypted; lists are stored as JSON text.
 */
import type { Db } from "../storage/database.js";

export type AppStatus = "active" | "suspended";

export interface AppRecord {
  seq: number;
  appId: string;
  tenantId: string;
  apikey: string;
  secretEnc: Buffer;
  description: string;
  domains: string[];
  permissions: string[];
  status: AppStatus;
  recordingBucket: string;
  recordingKeyEnc: Buffer | null;
  createTimeMs: number;
  updateTimeMs: number;
  /** Raised each time the secret key is renewed; tokens name the one they were issued under. */
  credentialGen: number;
}

export interface MonthlyUsage {
  signaling: number;
  turn: number;
  sfu: number;
}

interface RawApp {
  seq: number;
  app_id: string;
  tenant_id: string;
  apikey: string;
  secret_enc: Buffer;
  description: string;
  domains: string;
  permissions: string;
  status: AppStatus;
  recording_bucket: string;
  recording_key_enc: Buffer | null;
  create_time_ms: number;
  update_time_ms: number;
  credential_gen: number;
}

const COLUMNS =
  "seq, app_id, tenant_id, apikey, secret_enc, description, domains, permissions, status, recording_bucket, recording_key_enc, create_time_ms, update_time_ms, credential_gen";

function fromRaw(r: RawApp): AppRecord {
  return {
    seq: r.seq,
    appId: r.app_id,
    tenantId: r.tenant_id,
    apikey: r.apikey,
    secretEnc: r.secret_enc,
    description: r.description,
    domains: JSON.parse(r.domains) as string[],
    permissions: JSON.parse(r.permissions) as string[],
    status: r.status,
    recordingBucket: r.recording_bucket,
    recordingKeyEnc: r.recording_key_enc,
    createTimeMs: r.create_time_ms,
    updateTimeMs: r.update_time_ms,
    credentialGen: r.credential_gen,
  };
}

/** What an insert or update writes, besides keys and times. */
export interface AppFields {
  description: string;
  domains: string[];
  permissions: string[];
  status: AppStatus;
  recordingBucket: string;
  recordingKeyEnc: Buffer | null;
}

export class AppRepository {
  private readonly insertStmt;
  private readonly byIdStmt;
  private readonly bySecretStmt;
  private readonly byApikeyStmt;
  private readonly byTenantStmt;
  private readonly updateStmt;
  private readonly secretStmt;
  private readonly deleteStmt;
  private readonly usageStmt;
  private readonly usageByTenantStmt;
  private readonly addUsageStmt;

  constructor(db: Db) {
    this.insertStmt = db.prepare(
      `INSERT INTO apps (app_id, tenant_id, apikey, secret_hash, secret_enc, description, domains, permissions,
                         status, recording_bucket, recording_key_enc, create_time_ms, update_time_ms)
       VALUES (@appId, @tenantId, @apikey, @secretHash, @secretEnc, @description, @domains, @permissions,
               @status, @recordingBucket, @recordingKeyEnc, @now, @now)
       RETURNING ${COLUMNS}`,
    );
    this.byIdStmt = db.prepare(`SELECT ${COLUMNS} FROM apps WHERE app_id = ?`);
    this.bySecretStmt = db.prepare(`SELECT ${COLUMNS} FROM apps WHERE secret_hash = ?`);
    this.byApikeyStmt = db.prepare(`SELECT ${COLUMNS} FROM apps WHERE apikey = ?`);
    this.byTenantStmt = db.prepare(`SELECT ${COLUMNS} FROM apps WHERE tenant_id = ? ORDER BY seq`);
    this.updateStmt = db.prepare(
      `UPDATE apps SET description = @description, domains = @domains, permissions = @permissions, status = @status,
              recording_bucket = @recordingBucket, recording_key_enc = @recordingKeyEnc, update_time_ms = @now
       WHERE app_id = @appId RETURNING ${COLUMNS}`,
    );
    this.secretStmt = db.prepare(
      `UPDATE apps SET secret_hash = @secretHash, secret_enc = @secretEnc, update_time_ms = @now,
              credential_gen = credential_gen + 1
       WHERE app_id = @appId RETURNING ${COLUMNS}`,
    );
    this.deleteStmt = db.prepare("DELETE FROM apps WHERE app_id = ?");
    this.usageStmt = db.prepare("SELECT month, signaling, turn, sfu FROM app_usage WHERE app_seq = ? ORDER BY month");
    this.usageByTenantStmt = db.prepare(
      `SELECT u.app_seq AS app_seq, u.month AS month, u.signaling AS signaling, u.turn AS turn, u.sfu AS sfu
       FROM app_usage u JOIN apps a ON a.seq = u.app_seq WHERE a.tenant_id = ? ORDER BY u.month`,
    );
    this.addUsageStmt = db.prepare(
      `INSERT INTO app_usage (app_seq, month, signaling, turn, sfu) VALUES (@appSeq, @month, @signaling, @turn, @sfu)
       ON CONFLICT (app_seq, month) DO UPDATE SET signaling = signaling + excluded.signaling,
         turn = turn + excluded.turn, sfu = sfu + excluded.sfu`,
    );
  }

  insert(
    appId: string,
    tenantId: string,
    apikey: string,
    secretHash: Buffer,
    secretEnc: Buffer,
    fields: AppFields,
    now: number,
  ): AppRecord {
    return fromRaw(
      this.insertStmt.get({
        appId,
        tenantId,
        apikey,
        secretHash,
        secretEnc,
        ...fields,
        domains: JSON.stringify(fields.domains),
        permissions: JSON.stringify(fields.permissions),
        now,
      }) as RawApp,
    );
  }

  get(appId: string): AppRecord | undefined {
    const r = this.byIdStmt.get(appId) as RawApp | undefined;
    return r && fromRaw(r);
  }

  getBySecretHash(secretHash: Buffer): AppRecord | undefined {
    const r = this.bySecretStmt.get(secretHash) as RawApp | undefined;
    return r && fromRaw(r);
  }

  getByApikey(apikey: string): AppRecord | undefined {
    const r = this.byApikeyStmt.get(apikey) as RawApp | undefined;
    return r && fromRaw(r);
  }

  listByTenant(tenantId: string): AppRecord[] {
    return (this.byTenantStmt.all(tenantId) as RawApp[]).map(fromRaw);
  }

  update(appId: string, fields: AppFields, now: number): AppRecord | undefined {
    const r = this.updateStmt.get({
      appId,
      ...fields,
      domains: JSON.stringify(fields.domains),
      permissions: JSON.stringify(fields.permissions),
      now,
    }) as RawApp | undefined;
    return r && fromRaw(r);
  }

  setSecret(appId: string, secretHash: Buffer, secretEnc: Buffer, now: number): AppRecord | undefined {
    const r = this.secretStmt.get({ appId, secretHash, secretEnc, now }) as RawApp | undefined;
    return r && fromRaw(r);
  }

  delete(appId: string): boolean {
    return this.deleteStmt.run(appId).changes > 0;
  }

  usage(appSeq: number): Map<string, MonthlyUsage> {
    const rows = this.usageStmt.all(appSeq) as ({ month: string } & MonthlyUsage)[];
    return new Map(rows.map((r) => [r.month, { signaling: r.signaling, turn: r.turn, sfu: r.sfu }]));
  }

  /** Usage of every app of a tenant in one query, keyed by app seq (for expanded lists). */
  usageByTenant(tenantId: string): Map<number, Map<string, MonthlyUsage>> {
    const rows = this.usageByTenantStmt.all(tenantId) as ({ app_seq: number; month: string } & MonthlyUsage)[];
    const out = new Map<number, Map<string, MonthlyUsage>>();
    for (const r of rows) {
      const months = out.get(r.app_seq) ?? new Map<string, MonthlyUsage>();
      months.set(r.month, { signaling: r.signaling, turn: r.turn, sfu: r.sfu });
      out.set(r.app_seq, months);
    }
    return out;
  }

  addUsage(appSeq: number, month: string, delta: MonthlyUsage): void {
    this.addUsageStmt.run({ appSeq, month, ...delta });
  }
}

/**
 * The only module that reads or writes the `apps` and `app_usage` tables. Secrets arrive
 * here already hashed and encrypted; lists are stored as JSON text. SQL is written once per
 * statement (the stores prepare it once per text); values are always bound.
 */
import type { Queryable } from "../storage/store.js";

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

const INSERT = `INSERT INTO apps (app_id, tenant_id, apikey, secret_hash, secret_enc, description, domains, permissions,
                    status, recording_bucket, recording_key_enc, create_time_ms, update_time_ms)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
  RETURNING ${COLUMNS}`;
const BY_ID = `SELECT ${COLUMNS} FROM apps WHERE app_id = ?`;
const BY_SECRET = `SELECT ${COLUMNS} FROM apps WHERE secret_hash = ?`;
const BY_APIKEY = `SELECT ${COLUMNS} FROM apps WHERE apikey = ?`;
const BY_TENANT = `SELECT ${COLUMNS} FROM apps WHERE tenant_id = ? ORDER BY seq`;
const UPDATE = `UPDATE apps SET description = ?, domains = ?, permissions = ?, status = ?,
         recording_bucket = ?, recording_key_enc = ?, update_time_ms = ?
  WHERE app_id = ? RETURNING ${COLUMNS}`;
/** Only from the generation the caller read: a renewal never lands on top of another unseen. */
const SET_SECRET = `UPDATE apps SET secret_hash = ?, secret_enc = ?, update_time_ms = ?,
         credential_gen = credential_gen + 1
  WHERE app_id = ? AND credential_gen = ? RETURNING ${COLUMNS}`;
const DELETE = "DELETE FROM apps WHERE app_id = ?";
const USAGE = "SELECT month, signaling, turn, sfu FROM app_usage WHERE app_seq = ? ORDER BY month";
const USAGE_BY_TENANT = `SELECT u.app_seq AS app_seq, u.month AS month, u.signaling AS signaling, u.turn AS turn, u.sfu AS sfu
  FROM app_usage u JOIN apps a ON a.seq = u.app_seq WHERE a.tenant_id = ? ORDER BY u.month`;
const ADD_USAGE = `INSERT INTO app_usage (app_seq, month, signaling, turn, sfu) VALUES (?, ?, ?, ?, ?)
  ON CONFLICT (app_seq, month) DO UPDATE SET signaling = app_usage.signaling + excluded.signaling,
    turn = app_usage.turn + excluded.turn, sfu = app_usage.sfu + excluded.sfu`;

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
  constructor(private readonly q: Queryable) {}

  /** The same repository over another queryable (a transaction's `tx`). */
  in(q: Queryable): AppRepository {
    return new AppRepository(q);
  }

  async insert(
    appId: string,
    tenantId: string,
    apikey: string,
    secretHash: Buffer,
    secretEnc: Buffer,
    fields: AppFields,
    now: number,
  ): Promise<AppRecord> {
    const r = await this.q.get<RawApp>(INSERT, [
      appId,
      tenantId,
      apikey,
      secretHash,
      secretEnc,
      fields.description,
      JSON.stringify(fields.domains),
      JSON.stringify(fields.permissions),
      fields.status,
      fields.recordingBucket,
      fields.recordingKeyEnc,
      now,
      now,
    ]);
    if (r === undefined) throw new Error("INSERT … RETURNING gave no row");
    return fromRaw(r);
  }

  /**
   * The app, if any. `forUpdate` (the store's) locks the row for the rest of the
   * transaction, for a read the transaction then changes.
   */
  async get(appId: string, forUpdate = ""): Promise<AppRecord | undefined> {
    const r = await this.q.get<RawApp>(BY_ID + forUpdate, [appId]);
    return r && fromRaw(r);
  }

  async getBySecretHash(secretHash: Buffer): Promise<AppRecord | undefined> {
    const r = await this.q.get<RawApp>(BY_SECRET, [secretHash]);
    return r && fromRaw(r);
  }

  async getByApikey(apikey: string): Promise<AppRecord | undefined> {
    const r = await this.q.get<RawApp>(BY_APIKEY, [apikey]);
    return r && fromRaw(r);
  }

  async listByTenant(tenantId: string): Promise<AppRecord[]> {
    return (await this.q.all<RawApp>(BY_TENANT, [tenantId])).map(fromRaw);
  }

  async update(appId: string, fields: AppFields, now: number): Promise<AppRecord | undefined> {
    const r = await this.q.get<RawApp>(UPDATE, [
      fields.description,
      JSON.stringify(fields.domains),
      JSON.stringify(fields.permissions),
      fields.status,
      fields.recordingBucket,
      fields.recordingKeyEnc,
      now,
      appId,
    ]);
    return r && fromRaw(r);
  }

  /**
   * Replaces the secret and raises the credential generation by one, only if the app is
   * still at `expectedGen` (read, locked, by the caller's transaction); undefined otherwise.
   */
  async setSecret(
    appId: string,
    expectedGen: number,
    secretHash: Buffer,
    secretEnc: Buffer,
    now: number,
  ): Promise<AppRecord | undefined> {
    const r = await this.q.get<RawApp>(SET_SECRET, [secretHash, secretEnc, now, appId, expectedGen]);
    return r && fromRaw(r);
  }

  async delete(appId: string): Promise<boolean> {
    return (await this.q.run(DELETE, [appId])) > 0;
  }

  async usage(appSeq: number): Promise<Map<string, MonthlyUsage>> {
    const rows = await this.q.all<{ month: string } & MonthlyUsage>(USAGE, [appSeq]);
    return new Map(rows.map((r) => [r.month, { signaling: r.signaling, turn: r.turn, sfu: r.sfu }]));
  }

  /** Usage of every app of a tenant in one query, keyed by app seq (for expanded lists). */
  async usageByTenant(tenantId: string): Promise<Map<number, Map<string, MonthlyUsage>>> {
    const rows = await this.q.all<{ app_seq: number; month: string } & MonthlyUsage>(USAGE_BY_TENANT, [tenantId]);
    const out = new Map<number, Map<string, MonthlyUsage>>();
    for (const r of rows) {
      const months = out.get(r.app_seq) ?? new Map<string, MonthlyUsage>();
      months.set(r.month, { signaling: r.signaling, turn: r.turn, sfu: r.sfu });
      out.set(r.app_seq, months);
    }
    return out;
  }

  async addUsage(appSeq: number, month: string, delta: MonthlyUsage): Promise<void> {
    await this.q.run(ADD_USAGE, [appSeq, month, delta.signaling, delta.turn, delta.sfu]);
  }
}

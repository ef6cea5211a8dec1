/**
 * App rules: field validation, keys and secrets, recording state, usage. The secret key
 * must be shown again (GET secretkey), so it is stored encrypted under the server key
 * (kept in DATA_DIR, apart from the database) plus a SHA-256 hash for lookups; the
 * recording service account key is write-only and stored encrypted.
 */
import { randomUUID } from "node:crypto";
import type { ServerKey } from "../auth/server-key.js";
import { hashToken, newSecretToken } from "../auth/tokens.js";
import { Lru } from "../cache/lru.js";
import { invalidArgument, notFound } from "../errors.js";
import type { Db } from "../storage/database.js";
import { hasControlCharacters } from "../validation.js";
import { type AppFields, type AppRecord, AppRepository, type AppStatus, type MonthlyUsage } from "./app-repository.js";

export type { AppRecord, AppStatus, MonthlyUsage };

export const PERMISSIONS = ["TURN", "SFU", "USER_LIST", "PEER_AUTHENTICATION", "RECORDING"] as const;
const STATUSES: readonly AppStatus[] = ["active", "suspended"];
export const MAX_DESCRIPTION = 128;
export const MAX_DOMAIN = 253;
const MAX_DOMAINS = 100;
const MAX_SERVICE_ACCOUNT_KEY = 16 * 1024;
const SECRET_PURPOSE = "apps.secretkey";
const RECORDING_KEY_PURPOSE = "apps.recording-key";
/** Apps remembered between requests; every change forgets its app. */
const CACHED_APPS = 10_000;

/** Input of create and update; undefined means "not given". */
export interface AppChange {
  description?: string | undefined;
  domains?: readonly string[] | undefined;
  permissions?: readonly string[] | undefined;
  status?: string | undefined;
  recordingBucketName?: string | undefined;
  recordingServiceAccountKey?: string | undefined;
}

/** An app as the API shows it (never the secret or the service account key). */
export interface AppView {
  record: AppRecord;
  usage: Map<string, MonthlyUsage>;
  recordingStatus: "active" | "unavailable";
}

export function validateDescription(description: string): string {
  if ([...description].length > MAX_DESCRIPTION) {
    throw invalidArgument(`description: must be at most ${MAX_DESCRIPTION} characters`);
  }
  if (hasControlCharacters(description)) throw invalidArgument("description: must not contain control characters");
  return description;
}

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * A domain is a host name of dot-separated labels (letters, digits, inner hyphens, 1–63
 * characters each), at most 253 characters, optionally starting with "*." to allow every
 * subdomain. Case does not matter; it is stored in lowercase.
 */
export function validateDomain(domain: string): string {
  if (domain.length > MAX_DOMAIN)
    throw invalidArgument(`domains: "${domain.slice(0, 40)}…" exceeds ${MAX_DOMAIN} characters`);
  const lower = domain.toLowerCase();
  const host = lower.startsWith("*.") ? lower.slice(2) : lower;
  if (host === "" || !host.split(".").every((label) => LABEL.test(label))) {
    throw invalidArgument(`domains: ${JSON.stringify(domain)} is not a valid host name`);
  }
  return lower;
}

function validateDomains(domains: readonly string[]): string[] {
  if (domains.length > MAX_DOMAINS) throw invalidArgument(`domains: at most ${MAX_DOMAINS} entries`);
  return [...new Set(domains.map(validateDomain))];
}

function validatePermissions(permissions: readonly string[]): string[] {
  for (const p of permissions) {
    if (!(PERMISSIONS as readonly string[]).includes(p)) {
      throw invalidArgument(`permissions: ${JSON.stringify(p)} is not one of ${PERMISSIONS.join(", ")}`);
    }
  }
  return [...new Set(permissions)];
}

function validateStatus(status: string): AppStatus {
  if (!(STATUSES as readonly string[]).includes(status)) {
    throw invalidArgument(`status: must be "active" or "suspended", got ${JSON.stringify(status)}`);
  }
  return status as AppStatus;
}

const BUCKET = /^[a-z0-9][a-z0-9._-]*[a-z0-9]$/;

/** Google Cloud Storage bucket naming rules: 3–63 characters (222 with dots), lowercase. */
export function validateBucketName(name: string): string {
  if (name === "") return name;
  const ok =
    BUCKET.test(name) &&
    name.length >= 3 &&
    (name.includes(".")
      ? name.length <= 222 && name.split(".").every((p) => p.length > 0 && p.length <= 63)
      : name.length <= 63) &&
    !/^\d+\.\d+\.\d+\.\d+$/.test(name) &&
    !name.startsWith("goog");
  if (!ok) throw invalidArgument(`recording_bucket_name: ${JSON.stringify(name)} is not a valid bucket name`);
  return name;
}

function validateServiceAccountKey(key: string): string {
  if (key.length > MAX_SERVICE_ACCOUNT_KEY) {
    throw invalidArgument(`recording_service_account_key: must be at most ${MAX_SERVICE_ACCOUNT_KEY} characters`);
  }
  return key;
}

/** "YYYY/MM" of a time, in UTC, as usage_summary keys it. */
export function usageMonth(timeMs: number): string {
  const d = new Date(timeMs);
  return `${d.getUTCFullYear()}/${String(d.getUTCMonth() + 1).padStart(2, "0")}`;
}

export class Apps {
  private readonly repo: AppRepository;
  /**
   * Every authenticated request looks its app up (by secret key, apikey or id), so apps are
   * cached. Writes here forget the app before they return, so a renewed secret or a
   * suspension holds from the very next request; other processes' writes arrive through
   * forget(). The indexes only point at an app id: the app's current record decides.
   */
  private readonly byId = new Lru<string, AppRecord>(CACHED_APPS);
  private readonly idBySecret = new Lru<string, string>(CACHED_APPS);
  private readonly idByApikey = new Lru<string, string>(CACHED_APPS);
  /** Told after an app's credentials may have changed (renewed secret, status, deletion). */
  onCredentialsChanged: ((appId: string) => void) | undefined;

  constructor(
    private readonly db: Db,
    private readonly serverKey: ServerKey,
    private readonly now: () => number = Date.now,
  ) {
    this.repo = new AppRepository(db);
  }

  private view(record: AppRecord, usage?: Map<string, MonthlyUsage>): AppView {
    const recordingReady =
      record.permissions.includes("RECORDING") && record.recordingBucket !== "" && record.recordingKeyEnc !== null;
    return {
      record,
      usage: usage ?? this.repo.usage(record.seq),
      recordingStatus: recordingReady ? "active" : "unavailable",
    };
  }

  /** Validates a change against current fields (or defaults for a new app). */
  private apply(change: AppChange, current: AppFields, appId: string): AppFields {
    let recordingKeyEnc = current.recordingKeyEnc;
    if (change.recordingServiceAccountKey !== undefined) {
      const key = validateServiceAccountKey(change.recordingServiceAccountKey);
      recordingKeyEnc = key === "" ? null : this.serverKey.encrypt(RECORDING_KEY_PURPOSE, key, appId);
    }
    return {
      description: change.description === undefined ? current.description : validateDescription(change.description),
      domains: change.domains === undefined ? current.domains : validateDomains(change.domains),
      permissions: change.permissions === undefined ? current.permissions : validatePermissions(change.permissions),
      status: change.status === undefined ? current.status : validateStatus(change.status),
      recordingBucket:
        change.recordingBucketName === undefined
          ? current.recordingBucket
          : validateBucketName(change.recordingBucketName),
      recordingKeyEnc,
    };
  }

  private newSecret(appId: string): { secret: string; hash: Buffer; enc: Buffer } {
    const secret = newSecretToken();
    return { secret, hash: hashToken(secret), enc: this.serverKey.encrypt(SECRET_PURPOSE, secret, appId) };
  }

  create(tenantId: string, change: AppChange): AppView {
    const appId = randomUUID();
    const defaults: AppFields = {
      description: "",
      domains: [],
      permissions: [],
      status: "active",
      recordingBucket: "",
      recordingKeyEnc: null,
    };
    const fields = this.apply(change, defaults, appId);
    const { hash, enc } = this.newSecret(appId);
    const record = this.repo.insert(appId, tenantId, randomUUID(), hash, enc, fields, this.now());
    return this.view(record, new Map());
  }

  /** The tenant's app, or NOT_FOUND whether it is missing or another tenant's. */
  private owned(tenantId: string, appId: string): AppRecord {
    const record = this.repo.get(appId);
    if (record === undefined || record.tenantId !== tenantId) throw notFound(`app ${JSON.stringify(appId)} not found`);
    return record;
  }

  get(tenantId: string, appId: string): AppView {
    return this.view(this.owned(tenantId, appId));
  }

  /** Every app of the tenant, oldest first; usage is read in one query when asked for. */
  list(tenantId: string, withUsage: boolean): AppView[] {
    const records = this.repo.listByTenant(tenantId);
    const usage = withUsage ? this.repo.usageByTenant(tenantId) : new Map<number, Map<string, MonthlyUsage>>();
    return records.map((r) => this.view(r, usage.get(r.seq) ?? new Map()));
  }

  update(tenantId: string, appId: string, change: AppChange): AppView {
    const updated = this.db.transaction(() => {
      const current = this.owned(tenantId, appId);
      const updated = this.repo.update(appId, this.apply(change, current, appId), this.now());
      if (updated === undefined) throw notFound(`app ${JSON.stringify(appId)} not found`);
      return { view: this.view(updated), statusChanged: updated.status !== current.status };
    })();
    this.forget(appId);
    if (updated.statusChanged) this.onCredentialsChanged?.(appId);
    return updated.view;
  }

  delete(tenantId: string, appId: string): void {
    this.db.transaction(() => {
      this.owned(tenantId, appId);
      this.repo.delete(appId);
    })();
    this.forget(appId);
    this.onCredentialsChanged?.(appId);
  }

  secretKey(tenantId: string, appId: string): string {
    const record = this.owned(tenantId, appId);
    return this.serverKey.decrypt(SECRET_PURPOSE, record.secretEnc, record.appId);
  }

  /**
   * Replaces the secret and raises the app's credential generation: lookups by the old
   * secret, and every token issued under the old generation, fail from the moment this commits.
   */
  renewSecretKey(tenantId: string, appId: string): string {
    const secret = this.db.transaction(() => {
      this.owned(tenantId, appId);
      const { secret, hash, enc } = this.newSecret(appId);
      this.repo.setSecret(appId, hash, enc, this.now());
      return secret;
    })();
    this.forget(appId);
    this.onCredentialsChanged?.(appId);
    return secret;
  }

  /**
   * The app whose secret key this is (the rooms API's x-vcs-token, OAuth client secret).
   * Known secrets are looked up by their text, without hashing; any change to any app
   * forgets them all, so a renewed secret never resolves.
   */
  findBySecretKey(secret: string): AppRecord | undefined {
    const id = this.idBySecret.get(secret);
    if (id !== undefined) {
      const app = this.findById(id);
      if (app !== undefined) return app;
      this.idBySecret.delete(secret);
    }
    return this.remember(this.repo.getBySecretHash(hashToken(secret)), (app) => this.idBySecret.set(secret, app.appId));
  }

  findById(appId: string): AppRecord | undefined {
    return this.byId.get(appId) ?? this.remember(this.repo.get(appId));
  }

  findByApikey(apikey: string): AppRecord | undefined {
    const id = this.idByApikey.get(apikey);
    if (id !== undefined) {
      const app = this.findById(id);
      if (app?.apikey === apikey) return app;
      this.idByApikey.delete(apikey);
    }
    return this.remember(this.repo.getByApikey(apikey), (app) => this.idByApikey.set(apikey, app.appId));
  }

  private remember(app: AppRecord | undefined, index?: (app: AppRecord) => void): AppRecord | undefined {
    if (app !== undefined) {
      this.byId.set(app.appId, app);
      index?.(app);
    }
    return app;
  }

  /** Forgets what is cached of an app (it changed, here or on another node). */
  forget(appId: string): void {
    this.byId.delete(appId);
    this.idBySecret.clear();
  }

  /** Adds usage to the app's month (called by signaling, TURN and SFU as they meter). */
  recordUsage(appId: string, delta: Partial<MonthlyUsage>, atMs = this.now()): void {
    const record = this.repo.get(appId);
    if (record === undefined) return;
    this.repo.addUsage(record.seq, usageMonth(atMs), {
      signaling: delta.signaling ?? 0,
      turn: delta.turn ?? 0,
      sfu: delta.sfu ?? 0,
    });
  }
}

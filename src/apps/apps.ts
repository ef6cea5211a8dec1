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
import type { Announced } from "../cluster/cluster-caches.js";
import { failedPrecondition, invalidArgument, notFound } from "../errors.js";
import type { Store, Tx } from "../storage/store.js";
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
  /**
   * Raised by every forget(): a lookup only caches what it read if no app changed while it
   * waited for the database, so a read from before a renewal never outlives the renewal.
   */
  private changes = 0;
  private caching = true;
  /**
   * Told inside the transaction of every change to an app (`credentials` when what the app's
   * credentials can do changed: renewed secret, status, deletion); its `delivered` is awaited
   * after the commit, before the caller's answer. A cluster makes every node forget the app.
   */
  onChanged: ((tx: Tx, appId: string, credentials: boolean) => Promise<Announced>) | undefined;

  constructor(
    private readonly store: Store,
    private readonly serverKey: ServerKey,
    private readonly now: () => number = Date.now,
  ) {
    this.repo = new AppRepository(store);
  }

  private view(record: AppRecord, usage: Map<string, MonthlyUsage>): AppView {
    const recordingReady =
      record.permissions.includes("RECORDING") && record.recordingBucket !== "" && record.recordingKeyEnc !== null;
    return { record, usage, recordingStatus: recordingReady ? "active" : "unavailable" };
  }

  /** The view with the app's usage, read through `repo` (a transaction's, inside one). */
  private async viewWithUsage(repo: AppRepository, record: AppRecord): Promise<AppView> {
    return this.view(record, await repo.usage(record.seq));
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

  async create(tenantId: string, change: AppChange): Promise<AppView> {
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
    const record = await this.repo.insert(appId, tenantId, randomUUID(), hash, enc, fields, this.now());
    return this.view(record, new Map());
  }

  /**
   * The tenant's app, or NOT_FOUND whether it is missing or another tenant's. Inside a
   * transaction, `repo` is the transaction's and `forUpdate` the store's when the row is
   * about to change (it stays locked until the transaction ends).
   */
  private async owned(repo: AppRepository, tenantId: string, appId: string, forUpdate = ""): Promise<AppRecord> {
    const record = await repo.get(appId, forUpdate);
    if (record === undefined || record.tenantId !== tenantId) throw notFound(`app ${JSON.stringify(appId)} not found`);
    return record;
  }

  async get(tenantId: string, appId: string): Promise<AppView> {
    return await this.viewWithUsage(this.repo, await this.owned(this.repo, tenantId, appId));
  }

  /** Every app of the tenant, oldest first; usage is read in one query when asked for. */
  async list(tenantId: string, withUsage: boolean): Promise<AppView[]> {
    const records = await this.repo.listByTenant(tenantId);
    const usage = withUsage ? await this.repo.usageByTenant(tenantId) : new Map<number, Map<string, MonthlyUsage>>();
    return records.map((r) => this.view(r, usage.get(r.seq) ?? new Map()));
  }

  async update(tenantId: string, appId: string, change: AppChange): Promise<AppView> {
    const updated = await this.store.transaction(async (tx) => {
      const repo = this.repo.in(tx);
      const current = await this.owned(repo, tenantId, appId, this.store.forUpdate);
      const updated = await repo.update(appId, this.apply(change, current, appId), this.now());
      if (updated === undefined) throw notFound(`app ${JSON.stringify(appId)} not found`);
      // Forgotten as the change commits, so no request here can still see the old app.
      tx.afterCommit(() => this.forget(appId));
      const announced = await this.onChanged?.(tx, appId, updated.status !== current.status);
      return { view: await this.viewWithUsage(repo, updated), announced };
    });
    await updated.announced?.delivered;
    return updated.view;
  }

  async delete(tenantId: string, appId: string): Promise<void> {
    const announced = await this.store.transaction(async (tx) => {
      const repo = this.repo.in(tx);
      await this.owned(repo, tenantId, appId, this.store.forUpdate);
      await repo.delete(appId);
      tx.afterCommit(() => this.forget(appId));
      return await this.onChanged?.(tx, appId, true);
    });
    await announced?.delivered;
  }

  async secretKey(tenantId: string, appId: string): Promise<string> {
    const record = await this.owned(this.repo, tenantId, appId);
    return this.serverKey.decrypt(SECRET_PURPOSE, record.secretEnc, record.appId);
  }

  /**
   * Replaces the secret and raises the app's credential generation: lookups by the old
   * secret, and every token issued under the old generation, fail from the moment this commits.
   * The row is read locked (PostgreSQL: FOR UPDATE), so renewals of one app on several nodes
   * run one after the other, each raising the generation by exactly one; the last to commit
   * holds the secret that works. The update only applies to the generation read: should it
   * ever find another (the row was not locked), the renewal fails instead of passing silently.
   */
  async renewSecretKey(tenantId: string, appId: string): Promise<string> {
    const { secret, announced } = await this.store.transaction(async (tx) => {
      const repo = this.repo.in(tx);
      const current = await this.owned(repo, tenantId, appId, this.store.forUpdate);
      const { secret, hash, enc } = this.newSecret(appId);
      const renewed = await repo.setSecret(appId, current.credentialGen, hash, enc, this.now());
      if (renewed === undefined) {
        throw failedPrecondition(`app ${JSON.stringify(appId)} changed while its secret key was renewed; try again`);
      }
      tx.afterCommit(() => this.forget(appId));
      return { secret, announced: await this.onChanged?.(tx, appId, true) };
    });
    await announced?.delivered;
    return secret;
  }

  /**
   * The app whose secret key this is (the rooms API's x-vcs-token, OAuth client secret).
   * Known secrets are looked up by their text, without hashing; any change to any app
   * forgets them all, so a renewed secret never resolves.
   */
  async findBySecretKey(secret: string): Promise<AppRecord | undefined> {
    const id = this.idBySecret.get(secret);
    if (id !== undefined) {
      const app = await this.findById(id);
      if (app !== undefined) return app;
      this.idBySecret.delete(secret);
    }
    return await this.remember(
      () => this.repo.getBySecretHash(hashToken(secret)),
      (app) => this.idBySecret.set(secret, app.appId),
    );
  }

  async findById(appId: string): Promise<AppRecord | undefined> {
    return this.byId.get(appId) ?? (await this.remember(() => this.repo.get(appId)));
  }

  async findByApikey(apikey: string): Promise<AppRecord | undefined> {
    const id = this.idByApikey.get(apikey);
    if (id !== undefined) {
      const app = await this.findById(id);
      if (app?.apikey === apikey) return app;
      this.idByApikey.delete(apikey);
    }
    return await this.remember(
      () => this.repo.getByApikey(apikey),
      (app) => this.idByApikey.set(apikey, app.appId),
    );
  }

  /**
   * Caches what `read` finds, unless an app changed (forget()) while it was being read: that
   * read may be from before the change.
   */
  private async remember(
    read: () => Promise<AppRecord | undefined>,
    index?: (app: AppRecord) => void,
  ): Promise<AppRecord | undefined> {
    const changes = this.changes;
    const app = await read();
    if (app !== undefined && changes === this.changes && this.caching) {
      this.byId.set(app.appId, app);
      index?.(app);
    }
    return app;
  }

  /** Forgets what is cached of an app (it changed, here or on another node). */
  forget(appId: string): void {
    this.changes += 1;
    this.byId.delete(appId);
    this.idBySecret.clear();
  }

  /**
   * Turns caching off (while news of other nodes' changes cannot arrive) or back on; either
   * way what is cached is forgotten.
   */
  setCaching(on: boolean): void {
    this.caching = on;
    this.forgetAll();
  }

  /** Forgets every cached app (news of other nodes' changes may have been missed). */
  forgetAll(): void {
    this.changes += 1;
    this.byId.clear();
    this.idBySecret.clear();
    this.idByApikey.clear();
  }

  /** Adds usage to the app's month (called by signaling, TURN and SFU as they meter). */
  async recordUsage(appId: string, delta: Partial<MonthlyUsage>, atMs = this.now()): Promise<void> {
    const record = await this.repo.get(appId);
    if (record === undefined) return;
    await this.repo.addUsage(record.seq, usageMonth(atMs), {
      signaling: delta.signaling ?? 0,
      turn: delta.turn ?? 0,
      sfu: delta.sfu ?? 0,
    });
  }
}

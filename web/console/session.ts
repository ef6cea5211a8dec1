/**
 * Who is signed in (kept in sessionStorage: gone when the tab closes, never sent unless
 * asked) and the API clients that carry their credential. The operator's admin token goes in
 * `Authorization: Bearer`, a tenant's token in `x-auth-token`, an app's secret in
 * `x-vcs-token`, a conference access token in `Authorization: Bearer` — as each service's
 * proto declares. Everything is same-origin.
 */
import { type Client, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { AdminService } from "../../gen/rtcplane/admin/v1/admin_pb.js";
import { AppService } from "../../gen/rtcplane/apps/v1/apps_pb.js";
import { ConferenceService } from "../../gen/rtcplane/conference/v1/conference_pb.js";
import { RoomService } from "../../gen/rtcplane/rooms/v1/rooms_pb.js";

export type Session =
  | { readonly kind: "operator"; readonly token: string }
  | { readonly kind: "tenant"; readonly token: string; readonly tenantId: string };

const KEY = "rtcplane.console.session";
const APP_KEY = "rtcplane.console.app";

export function loadSession(): Session | undefined {
  try {
    const s = JSON.parse(sessionStorage.getItem(KEY) ?? "null") as Session | null;
    if (s?.kind === "operator" && typeof s.token === "string") return s;
    if (s?.kind === "tenant" && typeof s.token === "string" && typeof s.tenantId === "string") return s;
  } catch {
    // A damaged entry is as good as none.
  }
  return undefined;
}

export function saveSession(s: Session | undefined): void {
  if (s === undefined) sessionStorage.removeItem(KEY);
  else sessionStorage.setItem(KEY, JSON.stringify(s));
  sessionStorage.removeItem(APP_KEY);
  secrets.clear();
  serviceTokens.clear();
}

/** The app the tenant's pages work on. */
export function currentAppId(): string | undefined {
  return sessionStorage.getItem(APP_KEY) ?? undefined;
}

export function setCurrentApp(appId: string): void {
  sessionStorage.setItem(APP_KEY, appId);
}

const transport = createConnectTransport({ baseUrl: location.origin });

export const admin: Client<typeof AdminService> = createClient(AdminService, transport);
export const apps: Client<typeof AppService> = createClient(AppService, transport);
export const rooms: Client<typeof RoomService> = createClient(RoomService, transport);
export const conferences: Client<typeof ConferenceService> = createClient(ConferenceService, transport);

export function adminHeaders(s: Session): Record<string, string> {
  return { authorization: `Bearer ${s.token}` };
}

export function tenantHeaders(s: Session): Record<string, string> {
  return { "x-auth-token": s.token };
}

export interface AppKeys {
  readonly apikey: string;
  readonly secret: string;
}

const secrets = new Map<string, AppKeys>();
const serviceTokens = new Map<string, { token: string; expires: number }>();

/** The app's apikey and secret key (the tenant may read them; kept in memory only). */
export async function appKeys(s: Session & { kind: "tenant" }, appId: string, fresh = false): Promise<AppKeys> {
  const known = secrets.get(appId);
  if (known !== undefined && !fresh) return known;
  const headers = tenantHeaders(s);
  const [app, key] = await Promise.all([
    apps.getApp({ tenantId: s.tenantId, appId }, { headers }),
    apps.getAppSecretKey({ tenantId: s.tenantId, appId }, { headers }),
  ]);
  const keys = { apikey: app.app?.apikey ?? "", secret: key.secretkey };
  secrets.set(appId, keys);
  serviceTokens.delete(appId);
  return keys;
}

export function forgetAppKeys(appId: string): void {
  secrets.delete(appId);
  serviceTokens.delete(appId);
}

export function roomHeaders(keys: AppKeys): Record<string, string> {
  return { "x-vcs-token": keys.secret };
}

export interface TokenAnswer {
  readonly access_token: string;
  readonly expires_in: number;
  readonly userId?: string;
  readonly conference_id?: string;
}

/** The OAuth2 token endpoint, form-encoded, as the SDKs call it. */
export async function oauthToken(form: Record<string, string>): Promise<TokenAnswer> {
  const res = await fetch("/security/oauth/token", {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(form).toString(),
  });
  const json = (await res.json().catch(() => ({}))) as TokenAnswer & { error?: string; error_description?: string };
  if (!res.ok) throw new Error(`token: ${res.status} ${json.error ?? ""} ${json.error_description ?? ""}`.trim());
  return json;
}

/** A SERVICE access token of the app (client credentials), reused until shortly before it expires. */
export async function serviceToken(s: Session & { kind: "tenant" }, appId: string): Promise<string> {
  const known = serviceTokens.get(appId);
  if (known !== undefined && known.expires > Date.now()) return known.token;
  const keys = await appKeys(s, appId);
  const t = await oauthToken({ grant_type: "client_credentials", client_id: keys.apikey, client_secret: keys.secret });
  serviceTokens.set(appId, { token: t.access_token, expires: Date.now() + Math.max(1, t.expires_in - 30) * 1000 });
  return t.access_token;
}

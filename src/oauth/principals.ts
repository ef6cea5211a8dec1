/**
 * Whether a token's principal may still act, beyond its signature and expiry: its app and
 * tenant are active, the app's secret has not been renewed since (credential generation),
 * its refresh family has not been revoked for reuse, and a USER's room still exists. Every
 * protocol that accepts bearer tokens (REST, gRPC, Connect, MQTT) asks here.
 */
import type { AppAuth } from "../auth/app-auth.js";
import type { ChangeScope, CredentialChanges } from "../auth/credential-changes.js";
import { Lru } from "../cache/lru.js";
import { Reason, withReason } from "../errors.js";
import type { AccessTokens, Principal } from "./access-tokens.js";
import type { RefreshFamilies } from "./refresh-families.js";

/** Rooms by id (the rooms module's API): a USER's conference is its room. */
export interface RoomExistence {
  find(appId: string, roomId: string): Promise<unknown>;
}

const LIVE_FAMILIES = 20_000;

function revoked(message: string) {
  return withReason("unauthenticated", message, Reason.InvalidToken, {});
}

/** A principal that passed check(): it names its tenant too (quotas are per tenant). */
export type CheckedPrincipal = Principal & { readonly tenantId: string };

/** Whether a user of an app has a registered endpoint (the endpoints module's API). */
export type HasEndpoint = (appId: string, userId: string) => Promise<boolean>;

export class Principals {
  /**
   * Refresh families known not to be revoked: a login's every request checks its family,
   * and revocations are rare, so the answer is kept until any credential changes.
   */
  private readonly liveFamilies = new Lru<string, true>(LIVE_FAMILIES);
  /** Counts credential changes, so an answer a change overtook is not remembered. */
  private changesSeen = 0;

  constructor(
    private readonly tokens: AccessTokens,
    private readonly appAuth: AppAuth,
    private readonly families: RefreshFamilies,
    private readonly rooms: RoomExistence,
    private readonly changes: CredentialChanges,
    private readonly hasEndpoint: HasEndpoint,
  ) {
    changes.subscribe(() => {
      this.changesSeen++;
      this.liveFamilies.clear();
    });
  }

  /** The principal of a bare bearer token (MQTT passwords), if it may still act. */
  async fromToken(token: string): Promise<CheckedPrincipal> {
    return this.check(await this.tokens.principalOf(token));
  }

  /**
   * MQTT's reconnect rule. The vendor's iOS SDK refreshes its access token, drops MQTT and
   * reconnects with the *first* access token, long expired. Such a token still opens a
   * connection while its login is alive — its refresh family is neither revoked nor past its
   * absolute end — and its user has a registered endpoint; the connection then lasts no longer
   * than the login. Anything else is refused as an expired token is everywhere.
   */
  async forConnect(token: string): Promise<CheckedPrincipal> {
    try {
      return await this.fromToken(token);
    } catch (refused) {
      const expired = await this.tokens.expiredPrincipalOf(token);
      if (expired?.familyId === undefined) throw refused;
      const liveUntil = await this.families.liveUntil(expired.familyId);
      if (liveUntil === undefined || !(await this.hasEndpoint(expired.appId, expired.userId))) throw refused;
      return this.check({ ...expired, expiresAtMs: liveUntil });
    }
  }

  /** Throws UNAUTHENTICATED unless the principal may still act. */
  async check(p: Principal): Promise<CheckedPrincipal> {
    const app = await this.appAuth.requireActive(p.appId);
    if (app.credentialGen !== p.credentialGen) {
      throw revoked("the token was issued before the app's secret key was renewed");
    }
    if (p.familyId !== undefined && this.liveFamilies.get(p.familyId) === undefined) {
      const seen = this.changesSeen;
      if (await this.families.isRevoked(p.familyId)) throw revoked("the token's login was revoked");
      // A change while the store answered (a revocation, say) may have made the answer old.
      if (this.changesSeen === seen) this.liveFamilies.set(p.familyId, true);
    }
    if (
      p.role === "USER" &&
      p.conferenceId !== undefined &&
      (await this.rooms.find(p.appId, p.conferenceId)) === undefined
    ) {
      throw revoked("the token's room no longer exists");
    }
    return { ...p, tenantId: app.tenantId };
  }

  /**
   * For a connection that outlives its request: calls `onEnd` once, with the reason, when
   * the principal's token expires or a credential change makes check() refuse it. Answers
   * the function that stops watching (call it when the connection ends); a check still
   * running then calls `onEnd` no more.
   */
  watch(p: CheckedPrincipal, onEnd: (reason: string) => void): () => void {
    let ended = false;
    const end = (reason: string) => {
      if (ended) return;
      stop();
      onEnd(reason);
    };
    const affects = (scope: ChangeScope) =>
      "appId" in scope ? scope.appId === p.appId : scope.tenantId === p.tenantId;
    const unsubscribe = this.changes.subscribe((scope) => {
      if (!affects(scope)) return;
      void this.check(p).catch((e: unknown) => end((e as Error).message));
    });
    // Timers hold at most ~24.8 days; longer tokens are re-armed when that one fires.
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      if (p.expiresAtMs === undefined) return;
      const left = p.expiresAtMs - Date.now();
      if (left <= 0) return end("the token has expired");
      timer = setTimeout(arm, Math.min(left, 2 ** 31 - 1));
      timer.unref();
    };
    const stop = () => {
      ended = true;
      unsubscribe();
      if (timer !== undefined) clearTimeout(timer);
    };
    arm();
    return stop;
  }
}

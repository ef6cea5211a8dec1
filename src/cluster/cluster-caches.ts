/**
 * Node-local state that follows the shared store: cached apps and tenants, and the
 * connections opened with credentials that may have stopped working. A change announces
 * itself with its own transaction on the cluster channel, so the news cannot be lost once the
 * change is committed; every node (the sender too) then forgets the cached copy and re-checks
 * its connections, and the change's caller gets its answer only once the announcement came
 * back (`delivered`), so a renewed secret is refused everywhere from that answer on. Alone
 * (SQLite, no channel), the node forgets and re-checks as the change commits.
 */
import type { Apps } from "../apps/apps.js";
import type { ChangeScope, CredentialChanges } from "../auth/credential-changes.js";
import type { Store, Tx } from "../storage/store.js";
import type { Tenants } from "../tenants/tenants.js";
import type { ClusterChannel } from "./cluster-channel.js";

const TOPIC = "caches";

type Wire = { app: string; credentials: boolean } | { tenant: string; credentials: boolean };

/** What a change's transaction announced; await `delivered` after the commit. */
export interface Announced {
  readonly delivered: Promise<void>;
}

export class ClusterCaches {
  constructor(
    private readonly store: Store,
    private readonly channel: ClusterChannel | undefined,
    private readonly apps: Apps,
    private readonly tenants: Tenants,
    private readonly credentialChanges: CredentialChanges,
  ) {
    channel?.on(TOPIC, (body) => this.apply(body as Wire));
  }

  /** With the transaction that changes an app; `credentials` when what they allow changed. */
  appChanged(tx: Tx, appId: string, credentials: boolean): Promise<Announced> {
    return this.announce(tx, { app: appId, credentials });
  }

  /** With the transaction that changes a tenant. */
  tenantChanged(tx: Tx, tenantId: string, credentials: boolean): Promise<Announced> {
    return this.announce(tx, { tenant: tenantId, credentials });
  }

  /**
   * After a change that committed on its own (a room deleted, a refresh family revoked):
   * connections opened for the app re-check, everywhere, before this resolves.
   */
  async credentialsChanged(scope: ChangeScope): Promise<void> {
    const message: Wire =
      "appId" in scope ? { app: scope.appId, credentials: true } : { tenant: scope.tenantId, credentials: true };
    const announced = await this.store.transaction((tx) => this.announce(tx, message));
    await announced.delivered;
  }

  /** The channel is down: nothing cached can be trusted until it is back. */
  suspend(): void {
    this.apps.setCaching(false);
    this.tenants.setCaching(false);
  }

  /** The channel is back (news in between may be missing): start caching afresh. */
  resume(): void {
    this.apps.setCaching(true);
    this.tenants.setCaching(true);
  }

  private async announce(tx: Tx, message: Wire): Promise<Announced> {
    if (this.channel === undefined) {
      tx.afterCommit(() => this.apply(message));
      return { delivered: Promise.resolve() };
    }
    return await this.channel.sendInTxWithEcho(tx, TOPIC, message);
  }

  private apply(message: Wire): void {
    if ("app" in message) {
      this.apps.forget(message.app);
      if (message.credentials) this.credentialChanges.notify({ appId: message.app });
    } else {
      this.tenants.forget(message.tenant);
      if (message.credentials) this.credentialChanges.notify({ tenantId: message.tenant });
    }
  }
}

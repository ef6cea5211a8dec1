/**
 * Node-local state that follows the shared store: cached apps and tenants, and the
 * connections opened with credentials that may have stopped working. A change committed on
 * one node is announced on the cluster channel and every node (the sender too) forgets the
 * cached copy and re-checks its connections; the change's caller gets its answer only once
 * the announcement came back, so a renewed secret is refused everywhere from that answer on.
 * Alone (no channel), the node forgets and re-checks directly.
 */
import type { Apps } from "../apps/apps.js";
import type { ChangeScope, CredentialChanges } from "../auth/credential-changes.js";
import type { Tenants } from "../tenants/tenants.js";
import type { ClusterChannel } from "./cluster-channel.js";

const TOPIC = "caches";

type Wire = { app: string; credentials: boolean } | { tenant: string; credentials: boolean };

export class ClusterCaches {
  constructor(
    private readonly channel: ClusterChannel | undefined,
    private readonly apps: Apps,
    private readonly tenants: Tenants,
    private readonly credentialChanges: CredentialChanges,
  ) {
    channel?.on(TOPIC, (body) => this.apply(body as Wire));
  }

  appChanged(appId: string, credentials: boolean): Promise<void> {
    return this.announce({ app: appId, credentials });
  }

  tenantChanged(tenantId: string, credentials: boolean): Promise<void> {
    return this.announce({ tenant: tenantId, credentials });
  }

  /** Connections opened for an app must re-check (a room of it was deleted, a refresh family revoked). */
  credentialsChanged(scope: ChangeScope): Promise<void> {
    return this.announce(
      "appId" in scope ? { app: scope.appId, credentials: true } : { tenant: scope.tenantId, credentials: true },
    );
  }

  /** After the channel was interrupted: whatever changed meanwhile is forgotten here. */
  refreshAll(): void {
    this.apps.forgetAll();
    this.tenants.forgetAll();
  }

  private async announce(message: Wire): Promise<void> {
    if (this.channel === undefined) this.apply(message);
    else await this.channel.sendAndWait(TOPIC, message);
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

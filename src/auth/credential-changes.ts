/**
 * Tells long-lived connections (MQTT sessions, event streams) that credentials they were
 * opened with may have stopped being valid: an app's secret renewed or the app suspended or
 * deleted, a tenant suspended, a refresh family revoked, a room deleted. Each connection then
 * asks Principals again and closes if the answer changed — revocation reaches connections
 * already open, not only the next request.
 */

/** Whose credentials changed: one app's, or every app of a tenant. */
export type ChangeScope = { readonly appId: string } | { readonly tenantId: string };

export type ChangeListener = (scope: ChangeScope) => void;

export class CredentialChanges {
  private readonly listeners = new Set<ChangeListener>();

  notify(scope: ChangeScope): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(scope);
      } catch {
        // One connection's failure to re-check must not keep the others from theirs.
      }
    }
  }

  subscribe(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

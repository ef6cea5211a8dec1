/**
 * Authenticates an app by its secret key (the rooms API's x-vcs-token, the OAuth2
 * client secret): the app must exist and be active, and so must its tenant.
 */
import type { AppRecord, Apps } from "../apps/apps.js";
import { DomainError, Reason, withReason } from "../errors.js";
import type { Tenants } from "../tenants/tenants.js";

const MAX_ECHO = 128;

export class AppAuth {
  constructor(
    private readonly apps: Apps,
    private readonly tenants: Tenants,
  ) {}

  /** The active app whose secret key this is; UNAUTHENTICATED with a reason otherwise. */
  async bySecretKey(secret: string | null | undefined): Promise<AppRecord> {
    if (secret === null || secret === undefined || secret.trim() === "") {
      throw withReason("unauthenticated", "authorization missing", Reason.AuthorizationMissing);
    }
    const app = await this.apps.findBySecretKey(secret);
    if (app === undefined || !(await this.usable(app))) {
      throw withReason("unauthenticated", "the token is invalid", Reason.InvalidToken, {
        token: secret.slice(0, MAX_ECHO),
      });
    }
    return app;
  }

  /** The app by its public apikey if it and its tenant are active. */
  async byApikey(apikey: string): Promise<AppRecord | undefined> {
    const app = await this.apps.findByApikey(apikey);
    return app !== undefined && (await this.usable(app)) ? app : undefined;
  }

  /** Throws UNAUTHENTICATED unless the app of a token still exists and is active. */
  async requireActive(appId: string): Promise<AppRecord> {
    const app = await this.apps.findById(appId);
    if (app === undefined || !(await this.usable(app))) {
      throw withReason("unauthenticated", "the token's app is not active", Reason.InvalidToken, {});
    }
    return app;
  }

  private async usable(app: AppRecord): Promise<boolean> {
    return app.status === "active" && (await this.tenantActive(app.tenantId));
  }

  private async tenantActive(tenantId: string): Promise<boolean> {
    try {
      return (await this.tenants.get(tenantId)).status === "active";
    } catch (e) {
      // A missing tenant is an inactive one; a store that cannot answer is not a refusal.
      if (e instanceof DomainError && e.kind === "not_found") return false;
      throw e;
    }
  }
}

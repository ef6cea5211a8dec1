/**
 * Authenticates an app by its secret key (the rooms API's x-vcs-token, the OAuth2
 * client secret): the app must exist and be active, and so must its tenant.
 */
import type { AppRecord, Apps } from "../apps/apps.js";
import { Reason, withReason } from "../errors.js";
import type { Tenants } from "../tenants/tenants.js";

const MAX_ECHO = 128;

export class AppAuth {
  constructor(
    private readonly apps: Apps,
    private readonly tenants: Tenants,
  ) {}

  /** The active app whose secret key this is; UNAUTHENTICATED with a reason otherwise. */
  bySecretKey(secret: string | null | undefined): AppRecord {
    if (secret === null || secret === undefined || secret.trim() === "") {
      throw withReason("unauthenticated", "authorization missing", Reason.AuthorizationMissing);
    }
    const app = this.apps.findBySecretKey(secret);
    if (app === undefined || !this.usable(app)) {
      throw withReason("unauthenticated", "the token is invalid", Reason.InvalidToken, {
        token: secret.slice(0, MAX_ECHO),
      });
    }
    return app;
  }

  /** The app by its public apikey if it and its tenant are active. */
  byApikey(apikey: string): AppRecord | undefined {
    const app = this.apps.findByApikey(apikey);
    return app !== undefined && this.usable(app) ? app : undefined;
  }

  /** Throws UNAUTHENTICATED unless the app of a token still exists and is active. */
  requireActive(appId: string): AppRecord {
    const app = this.apps.findById(appId);
    if (app === undefined || !this.usable(app)) {
      throw withReason("unauthenticated", "the token's app is not active", Reason.InvalidToken, {});
    }
    return app;
  }

  private usable(app: AppRecord): boolean {
    return app.status === "active" && this.tenantActive(app.tenantId);
  }

  private tenantActive(tenantId: string): boolean {
    try {
      return this.tenants.get(tenantId).status === "active";
    } catch {
      return false;
    }
  }
}

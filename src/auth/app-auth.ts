/**
 * Authenticates an app by its secret key (the rooms API's x-vcs-token, the OAuth2
 * client secret): the app must exist and be active, and so must its tenant.
 */
import { Code } from "@connectrpc/connect";
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
      throw withReason(Code.Unauthenticated, "authorization missing", Reason.AuthorizationMissing);
    }
    const app = this.apps.findBySecretKey(secret);
    const usable = app !== undefined && app.status === "active" && this.tenantActive(app.tenantId);
    if (!usable) {
      throw withReason(Code.Unauthenticated, "the token is invalid", Reason.InvalidToken, {
        token: secret.slice(0, MAX_ECHO),
      });
    }
    return app;
  }

  private tenantActive(tenantId: string): boolean {
    try {
      return this.tenants.get(tenantId).status === "active";
    } catch {
      return false;
    }
  }
}

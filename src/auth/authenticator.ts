/**
 * Turns a presented credential into a caller: the operator's admin token, a tenant's auth
 * token, an app's secret key, or a bearer access/room token. Every protocol's requests get
 * here through the one authentication interceptor; nothing else parses credentials.
 */
import { timingSafeEqual } from "node:crypto";
import { unauthenticated } from "../errors.js";
import type { Principals } from "../oauth/principals.js";
import type { Tenants } from "../tenants/tenants.js";
import type { AdminCredentials } from "./admin-credentials.js";
import type { AppAuth } from "./app-auth.js";
import type { Caller } from "./caller.js";

export type CredentialName = "admin" | "tenant" | "app" | "bearer" | "cluster";

export class Authenticator {
  constructor(
    private readonly admin: AdminCredentials,
    private readonly tenants: Tenants,
    private readonly apps: AppAuth,
    private readonly principals: Principals,
    /** The credential nodes of this cluster call each other with; undefined on one machine. */
    private readonly clusterCredential: string | undefined,
  ) {}

  /**
   * The caller a credential speaks for; UNAUTHENTICATED (with the API's reason) when none.
   * Cached credentials answer without the store; the others wait for it.
   */
  async resolve(credential: CredentialName, presented: string | undefined): Promise<Caller> {
    switch (credential) {
      case "admin":
        if (presented === undefined) throw unauthenticated("missing Authorization: Bearer <admin token>");
        if (!this.admin.matches(presented)) throw unauthenticated("invalid admin token");
        return { kind: "admin" };
      case "tenant": {
        if (presented === undefined || presented === "") throw unauthenticated("missing tenant auth token");
        const tenant = await this.tenants.findByAuthToken(presented);
        if (tenant === undefined) throw unauthenticated("unknown tenant auth token");
        return { kind: "tenant", tenant };
      }
      case "app":
        return { kind: "app", app: await this.apps.bySecretKey(presented) };
      case "bearer": {
        if (presented === undefined) throw unauthenticated("missing Authorization: Bearer <token>");
        return { kind: "bearer", principal: await this.principals.fromToken(presented) };
      }
      case "cluster": {
        if (this.clusterCredential === undefined) throw unauthenticated("this server is not part of a cluster");
        if (presented === undefined) throw unauthenticated("missing Authorization: Bearer <cluster credential>");
        const a = Buffer.from(presented);
        const b = Buffer.from(this.clusterCredential);
        if (a.length !== b.length || !timingSafeEqual(a, b)) throw unauthenticated("invalid cluster credential");
        return { kind: "cluster" };
      }
    }
  }
}

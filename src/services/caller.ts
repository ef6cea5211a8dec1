/** Authentication shared by the conference API's services. */
import type { HandlerContext } from "@connectrpc/connect";
import type { AppAuth } from "../auth/app-auth.js";
import { notFound } from "../errors.js";
import type { AccessTokens, Principal } from "../oauth/access-tokens.js";

export class Callers {
  constructor(
    private readonly tokens: AccessTokens,
    private readonly appAuth: AppAuth,
  ) {}

  /** The caller's principal; its app must still be active. */
  async principal(ctx: HandlerContext): Promise<Principal> {
    const p = await this.tokens.authenticate(ctx.requestHeader);
    this.appAuth.requireActive(p.appId);
    return p;
  }

  /** A USER token sees only its own conference; others do not exist for it. */
  requireConference(p: Principal, conferenceId: string): void {
    if (p.role === "USER" && p.conferenceId !== conferenceId) {
      throw notFound(`conference ${JSON.stringify(conferenceId)} not found`);
    }
  }
}

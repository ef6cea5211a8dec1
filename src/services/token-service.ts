/** rtcplane.conference.v1.TokenService: the OAuth2 token endpoint. */
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { IssueTokenRequest, TokenService } from "../../gen/rtcplane/conference/v1/conference_pb.js";
import { basicCredentials, type OAuth } from "../oauth/oauth.js";

export class TokenServiceImpl implements ServiceImpl<typeof TokenService> {
  constructor(private readonly oauth: OAuth) {}

  /** Client credentials: HTTP Basic, else the form, else the query string (older tools). */
  async issueToken(req: IssueTokenRequest, ctx: HandlerContext) {
    const basic = basicCredentials(ctx.requestHeader);
    const query = new URL(ctx.url, "http://token.invalid").searchParams;
    const clientId = basic?.id ?? (req.clientId || query.get("client_id") || "");
    const clientSecret = basic?.secret ?? (req.clientSecret || query.get("client_secret") || "");
    // RFC 6749 5.1: token responses must not be cached.
    ctx.responseHeader.set("cache-control", "no-store");
    ctx.responseHeader.set("pragma", "no-cache");
    const result = await this.oauth.grant({
      grantType: req.grantType || query.get("grant_type") || "",
      clientId,
      clientSecret,
      username: req.username,
      refreshToken: req.refreshToken,
      scope: req.scope,
    });
    return {
      accessToken: result.accessToken,
      tokenType: "bearer",
      expiresIn: result.expiresIn,
      refreshToken: result.refreshToken,
      scope: "any",
      sub: result.userId,
      userId: result.userId,
      ...(result.conferenceId === undefined ? {} : { conferenceId: result.conferenceId }),
    };
  }
}

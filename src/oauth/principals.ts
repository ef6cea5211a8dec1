/**
 * Whether a token's principal may still act, beyond its signature and expiry: its app and
 * tenant are active, the app's secret has not been renewed since (credential generation),
 * its refresh family has not been revoked for reuse, and a USER's room still exists. Every
 * protocol that accepts bearer tokens (REST, gRPC, Connect, MQTT) asks here.
 */
import { Code } from "@connectrpc/connect";
import type { AppAuth } from "../auth/app-auth.js";
import { Reason, withReason } from "../errors.js";
import type { AccessTokens, Principal } from "./access-tokens.js";
import type { RefreshFamilies } from "./refresh-families.js";

/** Rooms by id (the rooms module's API): a USER's conference is its room. */
export interface RoomExistence {
  find(appId: string, roomId: string): unknown;
}

function revoked(message: string) {
  return withReason(Code.Unauthenticated, message, Reason.InvalidToken, {});
}

export class Principals {
  constructor(
    private readonly tokens: AccessTokens,
    private readonly appAuth: AppAuth,
    private readonly families: RefreshFamilies,
    private readonly rooms: RoomExistence,
  ) {}

  /** The principal of an `Authorization: Bearer` header, if it may still act. */
  async fromHeaders(headers: Headers): Promise<Principal> {
    return this.check(await this.tokens.authenticate(headers));
  }

  /** The principal of a bare bearer token (MQTT passwords), if it may still act. */
  async fromToken(token: string): Promise<Principal> {
    return this.check(await this.tokens.principalOf(token));
  }

  /** Throws UNAUTHENTICATED unless the principal may still act. */
  check(p: Principal): Principal {
    const app = this.appAuth.requireActive(p.appId);
    if (app.credentialGen !== p.credentialGen) {
      throw revoked("the token was issued before the app's secret key was renewed");
    }
    if (p.familyId !== undefined && this.families.isRevoked(p.familyId)) {
      throw revoked("the token's login was revoked");
    }
    if (p.role === "USER" && p.conferenceId !== undefined && this.rooms.find(p.appId, p.conferenceId) === undefined) {
      throw revoked("the token's room no longer exists");
    }
    return p;
  }
}

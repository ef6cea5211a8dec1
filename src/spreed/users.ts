/**
 * Spreed users in `sharedsecret` mode: registration hands out `useridcombo`
 * ("<expiry>:<userid>") and `secret` = base64 HMAC-SHA256(users secret, combo); a session
 * proves the combo with `PATCH /api/v1/sessions/{id}/` and gets a nonce for the channeling
 * `Authentication`. All PATCH failures look the same and take the same path.
 */
import { createHmac, randomUUID, timingSafeEqual } from "node:crypto";
import { Reason, withReason } from "../errors.js";
import type { SpreedHub } from "./hub.js";

const YEAR_SECONDS = 365 * 24 * 3600;

export class SpreedUsers {
  constructor(
    private readonly hub: SpreedHub,
    private readonly secret: Buffer,
    private readonly realm: string,
    private readonly now: () => number = Date.now,
  ) {}

  private sign(combo: string): string {
    return createHmac("sha256", this.secret).update(combo).digest("base64");
  }

  register(id: string, sid: string) {
    if (id === "" || sid === "") {
      throw withReason("invalid_argument", "id and sid are required", Reason.SpreedUsersBadRequest);
    }
    if (this.hub.session(id, sid) === undefined) {
      throw withReason("permission_denied", "no live session with this id and sid", Reason.SpreedUsersInvalidSession);
    }
    const userid = `${randomUUID()}@${this.realm}`;
    const timestamp = Math.floor(this.now() / 1000) + YEAR_SECONDS;
    const useridcombo = `${timestamp}:${userid}`;
    return {
      success: true,
      userid,
      useridcombo,
      timestamp: BigInt(timestamp),
      secret: this.sign(useridcombo),
      nonce: this.hub.issueNonce(id, userid),
    };
  }

  /** Verifies every condition before deciding, so timing does not tell which one failed. */
  patchSession(pathId: string, body: { id: string; sid: string; useridcombo: string; secret: string }) {
    const sessionOk = body.id === pathId && this.hub.session(body.id, body.sid) !== undefined;
    const colon = body.useridcombo.indexOf(":");
    const expiry = Number(body.useridcombo.slice(0, Math.max(colon, 0)));
    const userid = colon > 0 ? body.useridcombo.slice(colon + 1) : "";
    const unexpired = Number.isInteger(expiry) && expiry > this.now() / 1000 && userid !== "";
    const expected = Buffer.from(this.sign(body.useridcombo));
    const given = Buffer.from(body.secret);
    const macOk = expected.length === given.length && timingSafeEqual(expected, given);
    if (!(sessionOk && unexpired && macOk)) {
      throw withReason("permission_denied", "session patch failed", Reason.SpreedSessionPatchFailed);
    }
    return { success: true, userid, nonce: this.hub.issueNonce(body.id, userid) };
  }
}

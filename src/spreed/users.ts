/**
 * Spreed users in `sharedsecret` mode: registration hands out `useridcombo`
 * ("<expiry>:<userid>") and `secret` = base64 HMAC-SHA256(users secret, combo); a session
 * proves the combo with `PATCH /api/v1/sessions/{id}/` and gets a nonce for the channeling
 * `Authentication`. All PATCH failures look the same and take the same path. In a cluster the
 * session may be connected to another node: it is checked against that node's mirror here,
 * and its nonce is issued by (and kept on) its own node.
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

  async register(id: string, sid: string) {
    if (id === "" || sid === "") {
      throw withReason("invalid_argument", "id and sid are required", Reason.SpreedUsersBadRequest);
    }
    const gone = () =>
      withReason("permission_denied", "no live session with this id and sid", Reason.SpreedUsersInvalidSession);
    if (!this.hub.liveSession(id, sid)) throw gone();
    const userid = `${randomUUID()}@${this.realm}`;
    const timestamp = Math.floor(this.now() / 1000) + YEAR_SECONDS;
    const useridcombo = `${timestamp}:${userid}`;
    const nonce = await this.hub.nonceFor(id, userid);
    if (nonce === undefined) throw gone();
    return {
      success: true,
      userid,
      useridcombo,
      timestamp: BigInt(timestamp),
      secret: this.sign(useridcombo),
      nonce,
    };
  }

  /** Verifies every condition before deciding, so timing does not tell which one failed. */
  async patchSession(pathId: string, body: { id: string; sid: string; useridcombo: string; secret: string }) {
    const sessionOk = body.id === pathId && this.hub.liveSession(body.id, body.sid);
    const colon = body.useridcombo.indexOf(":");
    const expiry = Number(body.useridcombo.slice(0, Math.max(colon, 0)));
    const userid = colon > 0 ? body.useridcombo.slice(colon + 1) : "";
    const unexpired = Number.isInteger(expiry) && expiry > this.now() / 1000 && userid !== "";
    const expected = Buffer.from(this.sign(body.useridcombo));
    const given = Buffer.from(body.secret);
    const macOk = expected.length === given.length && timingSafeEqual(expected, given);
    const failed = () => withReason("permission_denied", "session patch failed", Reason.SpreedSessionPatchFailed);
    if (!(sessionOk && unexpired && macOk)) throw failed();
    const nonce = await this.hub.nonceFor(body.id, userid);
    if (nonce === undefined) throw failed();
    return { success: true, userid, nonce };
  }
}

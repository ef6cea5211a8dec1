/**
 * Nonces that let a session authenticate as a user over its socket (`Authentication`), issued
 * by the REST API: good once, for five minutes, the newest few per session, dropped with the
 * session. They are kept on the node the session is connected to.
 */
import { randomBytes } from "node:crypto";

const NONCE_TTL_MS = 5 * 60 * 1000;
const MAX_NONCES_PER_SESSION = 8;

export class Nonces {
  /** Per session: nonce → the user it may authenticate as. */
  private readonly bySession = new Map<string, Map<string, { userid: string; expires: number }>>();

  /** A nonce that lets session `id` authenticate as `userid`. */
  issue(id: string, userid: string): string {
    const nonce = randomBytes(24).toString("base64url");
    const now = Date.now();
    const own = this.bySession.get(id) ?? new Map<string, { userid: string; expires: number }>();
    for (const [n, e] of own) if (e.expires < now) own.delete(n);
    // Keep the newest few: a client asking again and again cannot grow the map.
    while (own.size >= MAX_NONCES_PER_SESSION) own.delete(own.keys().next().value as string);
    own.set(nonce, { userid, expires: now + NONCE_TTL_MS });
    this.bySession.set(id, own);
    return nonce;
  }

  /** Uses up `nonce` if it lets session `id` authenticate as `userid`. */
  take(id: string, nonce: string, userid: string): boolean {
    const own = this.bySession.get(id);
    const entry = own?.get(nonce);
    if (entry === undefined || entry.userid !== userid || entry.expires < Date.now()) return false;
    own?.delete(nonce);
    return true;
  }

  forget(id: string): void {
    this.bySession.delete(id);
  }
}

/** What the conference API's services ask of a bearer caller beyond who it is. */
import { notFound } from "../errors.js";
import type { Principal } from "../oauth/access-tokens.js";
import type { CheckedPrincipal, Principals } from "../oauth/principals.js";

export class Callers {
  constructor(private readonly principals: Principals) {}

  /** Calls `onEnd` when the principal's token expires or is revoked (for long-lived calls). */
  watch(p: CheckedPrincipal, onEnd: (reason: string) => void): () => void {
    return this.principals.watch(p, onEnd);
  }

  /** A USER token sees only its own conference; others do not exist for it. */
  requireConference(p: Principal, conferenceId: string): void {
    if (p.role === "USER" && p.conferenceId !== conferenceId) {
      throw notFound(`conference ${JSON.stringify(conferenceId)} not found`);
    }
  }
}

/** Small input rules shared by the domain modules. */

/** Whether text holds a C0 control character or DEL (names and descriptions must not). */
export function hasControlCharacters(text: string): boolean {
  for (const ch of text) {
    const code = ch.codePointAt(0) ?? 0;
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}

const CANDIDATE_LINE = /^(a=)?candidate:\S+ \d+ \S+ \d+ \S+ \d+ typ \S+/;
/** Candidates one request may carry. */
export const MAX_CANDIDATES_PER_REQUEST = 100;

/**
 * Checks ICE candidates as clients send them (an empty `candidate` is an end-of-candidates
 * marker and passes); returns the error text for the first bad one, or undefined.
 */
export function iceCandidatesProblem(list: readonly { candidate: string; sdpMid: string }[]): string | undefined {
  if (list.length > MAX_CANDIDATES_PER_REQUEST) return `at most ${MAX_CANDIDATES_PER_REQUEST} per call`;
  for (const c of list) {
    if (c.candidate.length > 1024) return "a candidate is at most 1024 characters";
    if (c.sdpMid.length > 64) return "sdpMid is at most 64 characters";
    if (c.candidate !== "" && !CANDIDATE_LINE.test(c.candidate)) {
      return `${JSON.stringify(c.candidate.slice(0, 80))} is not an ICE candidate`;
    }
  }
  return undefined;
}

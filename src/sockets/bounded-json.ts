/**
 * JSON from untrusted sockets. `JSON.parse` accepts any nesting, and a document nested ten
 * thousand deep later overflows the stack of whatever walks it (`JSON.stringify` on the
 * send path, structuredClone, a recursive validator). So the text is scanned for its
 * depth first — one pass, outside strings — and refused beyond a small bound.
 */

/** Raised for text that is not JSON or nests too deeply; the message says which. */
export class BadJsonError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BadJsonError";
  }
}

/** The deepest `[`/`{` nesting of a JSON text, stopping early once past `limit`. */
export function jsonDepth(text: string, limit = Number.POSITIVE_INFINITY): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      depth++;
      if (depth > max) {
        max = depth;
        if (max > limit) return max;
      }
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      depth--;
    }
  }
  return max;
}

/** Parses JSON text whose nesting is at most `maxDepth`; throws BadJsonError otherwise. */
export function parseBoundedJson(text: string, maxDepth: number): unknown {
  if (jsonDepth(text, maxDepth) > maxDepth) throw new BadJsonError(`JSON nested deeper than ${maxDepth} levels`);
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new BadJsonError((e as Error).message);
  }
}

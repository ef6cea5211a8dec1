/**
 * What the conference rules accept from callers: limits, the checks of ids, texts and JSON
 * values, the custom events' type and timestamp patterns, and the masks applied to custom
 * events before they are logged.
 */

import { JSONPath } from "jsonpath-plus";
import { invalidArgument } from "../errors.js";
import { CALL_EVENT_TYPES, CONFERENCE_EVENT_TYPES } from "../events/legacy-json.js";
import type { Json } from "./conference-repository.js";

const ID = /^[A-Za-z0-9._:@-]{1,128}$/;
export const MAX_KEY = 256;
export const MAX_VALUE = 64 * 1024;
export const MAX_REASON = 1024;
const MAX_JSON = 64 * 1024;
/** Endpoints one USER may have joined to one conference at once. */
export const MAX_ENDPOINTS_PER_USER = 4;
/** Event types only the server sends. */
export const RESERVED_EVENT_TYPES: ReadonlySet<string> = new Set([
  ...Object.values(CONFERENCE_EVENT_TYPES),
  ...Object.values(CALL_EVENT_TYPES),
]);
export const EVENT_TYPE = /^[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)+Event$/;
export const ISO_INSTANT = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)$/;

export function validateId(field: string, value: string): string {
  if (!ID.test(value)) throw invalidArgument(`${field}: must be 1-128 characters of letters, digits and ._:@-`);
  return value;
}

export function validateText(field: string, value: string, max: number): string {
  if (value.length > max) throw invalidArgument(`${field}: must be at most ${max} characters`);
  return value;
}

export function validateJson(field: string, value: Json): Json {
  if (JSON.stringify(value).length > MAX_JSON) throw invalidArgument(`${field}: must be at most ${MAX_JSON} bytes`);
  return value;
}

/** `yyyy-MM-ddTHH:mm:ss.SSSZ`, as the clients parse it. */
export function isoMillis(ms: number): string {
  return new Date(ms).toISOString();
}

/** Replaces every string a JSONPath mask matches with '*' of the same length. */
export function applyMasks(event: Json, masks: readonly string[]): Json {
  if (masks.length === 0) return event;
  const copy = structuredClone(event);
  for (const path of masks) {
    let results: { parent: Json | unknown[] | null; parentProperty: string | number | null; value: unknown }[];
    try {
      results = JSONPath({ path, json: copy, resultType: "all", wrap: true, eval: false }) ?? [];
    } catch (e) {
      throw invalidArgument(`masks: ${JSON.stringify(path)} is not a JSONPath expression (${(e as Error).message})`);
    }
    for (const r of results) {
      if (typeof r.value === "string" && r.parent !== null && r.parentProperty !== null) {
        (r.parent as Record<string | number, unknown>)[r.parentProperty] = "*".repeat(r.value.length);
      }
    }
  }
  return copy;
}

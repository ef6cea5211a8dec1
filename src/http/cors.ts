/**
 * CORS for browser clients served from another origin: Connect's and gRPC-web's
 * headers plus the legacy APIs' auth headers. No cookies are used, so "*" is safe.
 */
import { cors as connectCors } from "@connectrpc/connect";
import type { NodeRequest, NodeResponse } from "./types.js";

const ALLOWED_METHODS = [...new Set([...connectCors.allowedMethods, "GET", "POST", "PUT", "PATCH", "DELETE"])];
const ALLOWED_HEADERS = [
  ...new Set([...connectCors.allowedHeaders, "Authorization", "X-Auth-Token", "X-Vcs-Token", "X-Request-Id"]),
];
const EXPOSED_HEADERS = [...new Set([...connectCors.exposedHeaders, "X-Request-Id"])];

/**
 * Adds CORS headers for an allowed Origin and answers preflights.
 * Returns true when the request was a preflight and has been answered.
 */
export function applyCors(req: NodeRequest, res: NodeResponse, allowedOrigins: readonly string[]): boolean {
  const origin = req.headers.origin;
  if (typeof origin !== "string") return false;
  const allowAny = allowedOrigins.includes("*");
  if (!allowAny && !allowedOrigins.includes(origin)) return false;
  res.setHeader("access-control-allow-origin", allowAny ? "*" : origin);
  if (!allowAny) res.setHeader("vary", "Origin");
  if (req.method === "OPTIONS" && req.headers["access-control-request-method"] !== undefined) {
    res.writeHead(204, {
      "access-control-allow-methods": ALLOWED_METHODS.join(", "),
      "access-control-allow-headers": ALLOWED_HEADERS.join(", "),
      "access-control-max-age": "7200",
      "content-length": "0",
    });
    res.end();
    return true;
  }
  res.setHeader("access-control-expose-headers", EXPOSED_HEADERS.join(", "));
  return false;
}

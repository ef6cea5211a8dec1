/**
 * Spreed WebRTC REST: PascalCase config JSON (names fixed in the proto), form or JSON
 * bodies, errors as `{"success": false, "code": "...", "message": "..."}` with the upstream
 * server's codes, and a plain-text 404 (`404 page not found`) where a feature is disabled,
 * as its Go router answered. Per-endpoint wording lives here, keyed by method.
 */
import { Code } from "@connectrpc/connect";
import { reasonOf } from "../../http/rpc-errors.js";
import { type Dialect, httpStatusFromCode, httpStatusFromRefusal, type RenderedResponse } from "./dialect.js";

function json(status: number, code: string, message: string): RenderedResponse {
  return {
    status,
    headers: { "content-type": "application/json; charset=utf-8" },
    body: JSON.stringify({ success: false, code, message }),
  };
}

const NOT_FOUND: RenderedResponse = {
  status: 404,
  headers: { "content-type": "text/plain; charset=utf-8" },
  body: "404 page not found\n",
};

export const spreedDialect: Dialect = {
  name: "spreed",
  // Only the operator's stats details need one.
  credentials: { admin: { header: "authorization", scheme: "Bearer" } },
  jsonWrite: { alwaysEmitImplicit: true },
  jsonRead: { ignoreUnknownFields: true },
  int64AsNumber: true,
  acceptsForm: true,
  renderError(error, refusal, method) {
    if (refusal === "not-found" || (refusal === undefined && error.code === Code.NotFound)) return NOT_FOUND;
    const name = method?.name;
    if (refusal === "method-not-allowed") return json(405, "method_not_allowed", error.rawMessage);
    if (refusal === "body-too-large") return json(413, "request_too_large", error.rawMessage);
    // Requests the endpoint cannot read at all, worded per endpoint as upstream does.
    if (refusal !== undefined || (error.code === Code.InvalidArgument && reasonOf(error) === undefined)) {
      if (name === "RegisterUser") {
        return refusal === "unsupported-media-type"
          ? json(400, "users_invalid_request", "unsupported content type")
          : json(400, "users_bad_request", "the request body cannot be read");
      }
      if (name === "PatchSession") return json(403, "session_patch_failed", "session patch failed");
      if (name === "ValidateToken") return json(403, "invalid_token", "invalid token");
      return json(refusal ? httpStatusFromRefusal(refusal) : 400, "bad_request", error.rawMessage);
    }
    const reason = reasonOf(error)?.reason;
    if (reason !== undefined) {
      const status = error.code === Code.ResourceExhausted ? 413 : httpStatusFromCode(error.code);
      return json(status, reason, error.rawMessage);
    }
    if (error.code === Code.Unauthenticated) return json(401, "unauthorized", error.rawMessage);
    if (error.code === Code.PermissionDenied) return json(403, "forbidden", error.rawMessage);
    return json(httpStatusFromCode(error.code), "internal_error", error.rawMessage);
  },
};

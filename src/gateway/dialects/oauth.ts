/**
 * The OAuth2 token endpoint (RFC 6749): form-encoded requests, JSON responses with the
 * standard snake_case names, `Cache-Control: no-store`, and errors as
 * `{error, error_description}` — 401 for invalid_client (with a Basic challenge), else 400.
 */
import { Code } from "@connectrpc/connect";
import { reasonOf } from "../../http/rpc-errors.js";
import { type Dialect, httpStatusFromRefusal } from "./dialect.js";

const OAUTH_ERRORS = new Set(["invalid_request", "invalid_client", "invalid_grant", "unsupported_grant_type"]);

export const oauthDialect: Dialect = {
  name: "oauth",
  // The token endpoint authenticates its client inside the grant (form fields or Basic).
  credentials: {},
  jsonWrite: { alwaysEmitImplicit: true },
  jsonRead: { ignoreUnknownFields: true },
  int64AsNumber: true,
  acceptsForm: true,
  renderError(error, refusal) {
    const reason = reasonOf(error)?.reason;
    let code = reason !== undefined && OAUTH_ERRORS.has(reason) ? reason : "invalid_request";
    if (reason === undefined && error.code === Code.Unauthenticated) code = "invalid_client";
    if (reason === undefined && error.code !== Code.InvalidArgument && error.code !== Code.Unauthenticated) {
      code = "server_error";
    }
    const status =
      refusal !== undefined
        ? httpStatusFromRefusal(refusal)
        : code === "invalid_client"
          ? 401
          : code === "server_error"
            ? 500
            : 400;
    const headers: Record<string, string> = { "content-type": "application/json", "cache-control": "no-store" };
    if (status === 401) headers["www-authenticate"] = 'Basic realm="rtcplane"';
    return { status, headers, body: JSON.stringify({ error: code, error_description: error.rawMessage }) };
  },
};

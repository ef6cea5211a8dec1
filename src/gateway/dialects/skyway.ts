/**
 * SkyWay SDPF / ECL app management: snake_case JSON as documented, 64-bit counters as
 * numbers, unknown request fields ignored (old clients send extras). The documentation
 * gives errors as statuses only; we add a one-line JSON `{"message": ...}` for people,
 * and every authentication or authorization failure, including an app that does not
 * exist for this tenant, is the same 403 "forbidden" so that nothing reveals which.
 */
import { Code } from "@connectrpc/connect";
import { type Dialect, httpStatusFromCode, httpStatusFromRefusal } from "./dialect.js";

export const skywayDialect: Dialect = {
  name: "skyway",
  credentials: { tenant: { header: "x-auth-token" } },
  jsonWrite: { useProtoFieldName: true, alwaysEmitImplicit: true },
  jsonRead: { ignoreUnknownFields: true },
  int64AsNumber: true,
  renderError(error, refusal) {
    let status: number;
    let message = error.rawMessage;
    if (refusal !== undefined) {
      status = httpStatusFromRefusal(refusal);
    } else if (
      error.code === Code.Unauthenticated ||
      error.code === Code.PermissionDenied ||
      error.code === Code.NotFound
    ) {
      status = 403;
      message = "forbidden";
    } else {
      status = httpStatusFromCode(error.code);
    }
    return { status, headers: { "content-type": "application/json" }, body: JSON.stringify({ message }) };
  },
};

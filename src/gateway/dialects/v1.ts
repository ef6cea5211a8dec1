/**
 * Our own /v1 REST APIs: proto3 JSON (camelCase, defaults included so clients see every
 * field) and google.rpc.Status-shaped errors `{code, message, details}` with the
 * numeric gRPC code, like grpc-gateway.
 */
import type { Dialect } from "./dialect.js";
import { httpStatusFromCode, httpStatusFromRefusal } from "./dialect.js";

export const v1Dialect: Dialect = {
  name: "v1",
  credentials: { admin: { header: "authorization", scheme: "Bearer" } },
  jsonWrite: { alwaysEmitImplicit: true },
  jsonRead: { ignoreUnknownFields: false },
  int64AsNumber: false,
  renderError(error, refusal) {
    const status = refusal === undefined ? httpStatusFromCode(error.code) : httpStatusFromRefusal(refusal);
    return {
      status,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ code: error.code, message: error.rawMessage, details: [] }),
    };
  },
};

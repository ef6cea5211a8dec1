/**
 * The edge of the error model: a DomainError becomes a ConnectError with the gRPC code of
 * its kind and, when it has a reason, a google.rpc.ErrorInfo detail (domain "rtcplane");
 * anything else thrown becomes INTERNAL with a fixed message, the original kept as `cause`
 * for the logs and never sent to clients. Dialects read reasons back with reasonOf.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { DomainError, type ErrorKind } from "../errors.js";

export const ERROR_DOMAIN = "rtcplane";

const CODES: Record<ErrorKind, Code> = {
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  permission_denied: Code.PermissionDenied,
  unauthenticated: Code.Unauthenticated,
  resource_exhausted: Code.ResourceExhausted,
  unavailable: Code.Unavailable,
  internal: Code.Internal,
};

/** Builds a ConnectError without a stack trace: it is an answer to a client, not a bug. */
function answer(...args: ConstructorParameters<typeof ConnectError>): ConnectError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new ConnectError(...args);
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** Turns anything thrown into the ConnectError a client sees. */
export function toConnectError(e: unknown): ConnectError {
  if (e instanceof ConnectError) return e;
  if (e instanceof DomainError) {
    const details =
      e.reason === undefined
        ? undefined
        : [{ desc: ErrorInfoSchema, value: { reason: e.reason, domain: ERROR_DOMAIN, metadata: { ...e.metadata } } }];
    return answer(e.message, CODES[e.kind], undefined, details);
  }
  return new ConnectError("internal error", Code.Internal, undefined, undefined, e);
}

/** The ErrorInfo of an error, if it has one of ours. */
export function reasonOf(error: ConnectError): { reason: string; metadata: Record<string, string> } | undefined {
  const info = error.findDetails(ErrorInfoSchema).find((d) => d.domain === ERROR_DOMAIN);
  return info && { reason: info.reason, metadata: info.metadata };
}

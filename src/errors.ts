/**
 * Every failure a client can see is a ConnectError made here, with a precise Code.
 * Dialects render these at the edge; nothing else decides how an error looks.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";

/** A field value that breaks a documented rule; the message names the field. */
export function invalidArgument(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}

export function notFound(message: string): ConnectError {
  return new ConnectError(message, Code.NotFound);
}

export function alreadyExists(message: string): ConnectError {
  return new ConnectError(message, Code.AlreadyExists);
}

export function failedPrecondition(message: string): ConnectError {
  return new ConnectError(message, Code.FailedPrecondition);
}

export function unauthenticated(message: string): ConnectError {
  return new ConnectError(message, Code.Unauthenticated);
}

export function permissionDenied(message: string): ConnectError {
  return new ConnectError(message, Code.PermissionDenied);
}

export function resourceExhausted(message: string): ConnectError {
  return new ConnectError(message, Code.ResourceExhausted);
}

/**
 * Turns anything thrown into a ConnectError. Unknown failures become INTERNAL with a
 * fixed message; the original is kept as `cause` for the logs, never sent to clients.
 */
export function toConnectError(e: unknown): ConnectError {
  if (e instanceof ConnectError) return e;
  return new ConnectError("internal error", Code.Internal, undefined, undefined, e);
}

/**
 * Machine-readable reasons, sent as a google.rpc.ErrorInfo detail (domain "rtcplane")
 * so gRPC clients can act on them and legacy dialects can map them to their catalogs.
 */
export const Reason = {
  /** No credential was sent. */
  AuthorizationMissing: "AUTHORIZATION_MISSING",
  /** metadata.token: the credential or page token that is not valid. */
  InvalidToken: "INVALID_TOKEN",
  /** metadata.parameter, metadata.max: a string longer than allowed. */
  StringSize: "STRING_SIZE",
  /** metadata.parameter, metadata.min, metadata.max: a number out of range. */
  NumberSize: "NUMBER_SIZE",
  /** metadata.parameter, metadata.value, metadata.allowed: a value not in its set. */
  InvalidValue: "INVALID_VALUE",
  /** metadata.parameter: a request parameter that could not be read at all. */
  InvalidParameter: "INVALID_PARAMETER",
  /** metadata.id: the conference room that does not exist. */
  RoomNotFound: "CONFERENCE_ROOM_DOES_NOT_EXIST",
  /** OAuth2 (RFC 6749 5.2) error codes, named as the token endpoint returns them. */
  OAuthInvalidRequest: "invalid_request",
  OAuthInvalidClient: "invalid_client",
  OAuthInvalidGrant: "invalid_grant",
  OAuthUnsupportedGrantType: "unsupported_grant_type",
  /** Spreed WebRTC REST error codes, named as its server returns them. */
  SpreedAuthTooLarge: "auth_too_large",
  SpreedInvalidToken: "invalid_token",
  SpreedUsersInvalidRequest: "users_invalid_request",
  SpreedUsersBadRequest: "users_bad_request",
  SpreedUsersInvalidSession: "users_invalid_session",
  SpreedSessionPatchFailed: "session_patch_failed",
} as const;

export type ReasonName = (typeof Reason)[keyof typeof Reason];

export const ERROR_DOMAIN = "rtcplane";

/** A ConnectError carrying an ErrorInfo with `reason` and string `metadata`. */
export function withReason(
  code: Code,
  message: string,
  reason: ReasonName,
  metadata: Record<string, string> = {},
): ConnectError {
  return new ConnectError(message, code, undefined, [
    { desc: ErrorInfoSchema, value: { reason, domain: ERROR_DOMAIN, metadata } },
  ]);
}

/** The ErrorInfo of an error, if it has one of ours. */
export function reasonOf(error: ConnectError): { reason: string; metadata: Record<string, string> } | undefined {
  const info = error.findDetails(ErrorInfoSchema).find((d) => d.domain === ERROR_DOMAIN);
  return info && { reason: info.reason, metadata: info.metadata };
}

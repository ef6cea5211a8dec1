/**
 * Every failure a client can see starts as a DomainError made here: a kind (what went
 * wrong, in gRPC's vocabulary but free of any transport), a message naming the field or
 * rule, and optionally a machine-readable reason with metadata. Domain modules know
 * nothing else; one mapping at the edge (src/http/rpc-errors.ts) turns a DomainError into
 * a ConnectError, and each dialect renders that in its documented envelope.
 */

/** The kinds of failure, named as the gRPC codes they map to. */
export type ErrorKind =
  | "invalid_argument"
  | "not_found"
  | "already_exists"
  | "failed_precondition"
  | "permission_denied"
  | "unauthenticated"
  | "resource_exhausted"
  | "unavailable"
  | "internal";

/** An expected failure of a request: no stack trace is taken (it is an answer, not a bug). */
export class DomainError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    readonly reason?: ReasonName,
    readonly metadata: Readonly<Record<string, string>> = {},
  ) {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = limit;
    this.name = "DomainError";
  }
}

/** A field value that breaks a documented rule; the message names the field. */
export function invalidArgument(message: string): DomainError {
  return new DomainError("invalid_argument", message);
}

export function notFound(message: string): DomainError {
  return new DomainError("not_found", message);
}

export function alreadyExists(message: string): DomainError {
  return new DomainError("already_exists", message);
}

export function failedPrecondition(message: string): DomainError {
  return new DomainError("failed_precondition", message);
}

export function unauthenticated(message: string): DomainError {
  return new DomainError("unauthenticated", message);
}

export function permissionDenied(message: string): DomainError {
  return new DomainError("permission_denied", message);
}

export function resourceExhausted(message: string): DomainError {
  return new DomainError("resource_exhausted", message);
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

/** A DomainError carrying a reason (sent as google.rpc.ErrorInfo) and string metadata. */
export function withReason(
  kind: ErrorKind,
  message: string,
  reason: ReasonName,
  metadata: Record<string, string> = {},
): DomainError {
  return new DomainError(kind, message, reason, metadata);
}

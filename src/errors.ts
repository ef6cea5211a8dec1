/**
 * Every failure a client can see is a ConnectError made here, with a precise Code.
 * Dialects render these at the edge; nothing else decides how an error looks.
 */
import { Code, ConnectError } from "@connectrpc/connect";

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

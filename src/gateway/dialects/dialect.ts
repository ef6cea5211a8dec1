/**
 * A dialect is everything legacy-specific about a REST API: its JSON print options,
 * and how a ConnectError becomes its documented error response. Nothing else in the
 * gateway knows one API from another.
 */
import type { DescMethod, JsonReadOptions, JsonWriteOptions, Message } from "@bufbuild/protobuf";
import { Code, type ConnectError } from "@connectrpc/connect";
import type { CredentialName } from "../../auth/authenticator.js";

/** A complete HTTP response, ready to write. */
export interface RenderedResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string | Uint8Array;
}

/**
 * Why the gateway itself refused a request before any RPC ran; dialects with their own
 * catalogs (413, 415, ...) map these to their documented codes.
 */
export type GatewayRefusal =
  | "not-found"
  | "method-not-allowed"
  | "body-too-large"
  | "unsupported-media-type"
  | "malformed-json";

/** Where a credential travels: a header (gRPC metadata of the same name), maybe after a scheme. */
export interface CredentialCarrier {
  readonly header: string;
  readonly scheme?: "Bearer";
}

export interface Dialect {
  readonly name: string;
  /**
   * Where each credential this API accepts travels. The same names serve as gRPC metadata,
   * so REST and RPC callers of a service present credentials alike.
   */
  readonly credentials: Partial<Record<CredentialName, CredentialCarrier>>;
  readonly jsonWrite: Partial<JsonWriteOptions>;
  readonly jsonRead: Partial<JsonReadOptions>;
  /** Print 64-bit integers as JSON numbers (legacy APIs did) instead of strings. */
  readonly int64AsNumber: boolean;
  /**
   * Accept `application/x-www-form-urlencoded` bodies for `body: "*"` routes, bound like
   * query parameters (the OAuth2 token endpoint needs it).
   */
  readonly acceptsForm?: boolean;
  /**
   * The legacy JSON of a message whose REST form predates its proto (typed events the SDKs
   * read as flat JSON); undefined for messages written with the proto JSON mapping.
   */
  legacyJson?(message: Message): unknown;
  /**
   * Renders an RPC error; `refusal` is set when the gateway refused the request itself, and
   * `method` when the route is known (some legacy APIs word errors per endpoint).
   */
  renderError(error: ConnectError, refusal?: GatewayRefusal, method?: DescMethod): RenderedResponse;
}

/** HTTP status for a gRPC code, as google.api.http gateways map it. */
export function httpStatusFromCode(code: Code): number {
  switch (code) {
    case Code.Canceled:
      return 499;
    case Code.InvalidArgument:
    case Code.FailedPrecondition:
    case Code.OutOfRange:
      return 400;
    case Code.DeadlineExceeded:
      return 504;
    case Code.NotFound:
      return 404;
    case Code.AlreadyExists:
    case Code.Aborted:
      return 409;
    case Code.PermissionDenied:
      return 403;
    case Code.Unauthenticated:
      return 401;
    case Code.ResourceExhausted:
      return 429;
    case Code.Unimplemented:
      return 501;
    case Code.Unavailable:
      return 503;
    default:
      return 500;
  }
}

/** HTTP status for a gateway refusal. */
export function httpStatusFromRefusal(refusal: GatewayRefusal): number {
  switch (refusal) {
    case "not-found":
      return 404;
    case "method-not-allowed":
      return 405;
    case "body-too-large":
      return 413;
    case "unsupported-media-type":
      return 415;
    case "malformed-json":
      return 400;
  }
}

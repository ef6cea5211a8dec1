/**
 * What each REST dialect (src/gateway/dialects/*) looks like on the wire, for the OpenAPI
 * documents: which API document it belongs to, its field naming and number printing, where
 * its credentials travel, and its error envelope. The plugin cannot import the dialects
 * themselves (they import gen/, which `buf generate` rewrites), so this table restates them;
 * test/unit/openapi.test.ts checks it against the real dialects, and the contract test
 * (test/e2e/openapi-contract.e2e.test.ts) checks the envelopes against real answers.
 */

export type CredentialName = "admin" | "tenant" | "app" | "bearer";
export type JsonSchema = { [key: string]: unknown };

export interface CredentialCarrierDoc {
  readonly header: string;
  readonly scheme?: "Bearer";
}

export interface DialectDoc {
  /** The API document (`gen/openapi/<document>.json`) the dialect's routes go to. */
  readonly document: string;
  /** Proto field names (`useProtoFieldName`) or JSON names (lowerCamelCase or `json_name`). */
  readonly fieldNames: "proto" | "json";
  readonly int64AsNumber: boolean;
  /** Request bodies with fields the message does not have are refused (`ignoreUnknownFields: false`). */
  readonly rejectsUnknownFields: boolean;
  /** `body: "*"` routes also read `application/x-www-form-urlencoded`. */
  readonly acceptsForm: boolean;
  readonly credentials: Partial<Record<CredentialName, CredentialCarrierDoc>>;
  /** The status an authentication failure answers. */
  readonly authFailure: number;
  /** Messages written as their legacy JSON instead of proto JSON (see legacy-events.ts). */
  readonly legacyMessages: readonly string[];
  /** The OAuth2 token endpoint: its client may authenticate with HTTP Basic; its path is the tokenUrl. */
  readonly tokenEndpoint?: boolean;
  /** The error envelope, as a component, and the statuses worth naming. */
  readonly error: {
    readonly description: string;
    /** Components the content refers to. */
    readonly schemas: Readonly<Record<string, JsonSchema>>;
    /** Media type → schema of an error answer with `status` ("default" for any other). */
    content(status: number | "default"): Record<string, JsonSchema>;
    readonly statuses: Readonly<Record<number, string>>;
  };
}

const json = (ref: string) => ({ "application/json": { $ref: `#/components/schemas/${ref}` } });

const STATUS_SCHEMA: JsonSchema = {
  type: "object",
  description: "google.rpc.Status, as grpc-gateway renders it.",
  required: ["code", "message", "details"],
  properties: {
    code: { type: "integer", description: "The gRPC status code (3 INVALID_ARGUMENT, 5 NOT_FOUND, 16 …)." },
    message: { type: "string", description: "What went wrong, for people." },
    details: { type: "array", items: {}, description: "Always empty over REST." },
  },
};

const REALTIME_ERROR: JsonSchema = {
  type: "object",
  description: "The realtime API's documented error envelope.",
  required: ["httpCode", "code", "id", "description"],
  properties: {
    httpCode: { type: "integer", description: "The HTTP status again." },
    code: { type: "string", pattern: "^[A-Z]+-[0-9]{5}$", description: "Catalog code, e.g. BASE-00001." },
    id: { type: ["string", "null"], description: "Catalog name, e.g. INVALID_TOKEN; null for some codes." },
    description: { type: "array", items: { type: "string" }, description: "One sentence naming the problem." },
  },
};

const SKYWAY_ERROR: JsonSchema = {
  type: "object",
  required: ["message"],
  properties: { message: { type: "string", description: '"forbidden", or `<field>: <rule>` for 400.' } },
};

const OAUTH_ERROR: JsonSchema = {
  type: "object",
  description: "RFC 6749 section 5.2.",
  required: ["error", "error_description"],
  properties: {
    error: {
      type: "string",
      enum: ["invalid_request", "invalid_client", "invalid_grant", "unsupported_grant_type", "server_error"],
    },
    error_description: { type: "string" },
  },
};

const SPREED_ERROR: JsonSchema = {
  type: "object",
  required: ["success", "code", "message"],
  properties: {
    success: { const: false },
    code: { type: "string", description: "e.g. invalid_token, users_invalid_session, session_patch_failed." },
    message: { type: "string" },
  },
};

const conferenceText = { "text/plain": { type: "string", pattern: "^[0-9]{3} " } };
const spreedNotFound = { "text/plain": { type: "string", const: "404 page not found\n" } };

export const DIALECT_DOCS: Readonly<Record<string, DialectDoc>> = {
  v1: {
    document: "v1",
    fieldNames: "json",
    int64AsNumber: false,
    rejectsUnknownFields: true,
    acceptsForm: false,
    credentials: { admin: { header: "authorization", scheme: "Bearer" } },
    authFailure: 401,
    legacyMessages: [],
    error: {
      schemas: { Status: STATUS_SCHEMA },
      description:
        "Errors are google.rpc.Status JSON `{code, message, details}` with the HTTP status grpc-gateway uses.",
      content: () => json("Status"),
      statuses: {
        400: "INVALID_ARGUMENT, FAILED_PRECONDITION or OUT_OF_RANGE",
        401: "UNAUTHENTICATED: credential missing or invalid",
      },
    },
  },
  skyway: {
    document: "skyway",
    fieldNames: "proto",
    int64AsNumber: true,
    rejectsUnknownFields: false,
    acceptsForm: false,
    credentials: { tenant: { header: "x-auth-token" } },
    authFailure: 403,
    legacyMessages: [],
    error: {
      schemas: { Error: SKYWAY_ERROR },
      description:
        'Errors are `{"message": …}`. Every authentication or authorization failure, including an app that ' +
        'does not exist for the tenant, is the same 403 `{"message":"forbidden"}`.',
      content: () => json("Error"),
      statuses: {
        400: "A field breaks its rule (`<field>: <rule>`) or the JSON is not readable",
        403: "Forbidden: token missing or unknown, another tenant, tenant suspended or deleted, no such app",
      },
    },
  },
  realtime: {
    document: "realtime",
    fieldNames: "json",
    int64AsNumber: true,
    rejectsUnknownFields: false,
    acceptsForm: false,
    credentials: { app: { header: "x-vcs-token" } },
    authFailure: 401,
    legacyMessages: [],
    error: {
      schemas: { Error: REALTIME_ERROR },
      description:
        "Errors are `{httpCode, code, id, description: [..]}` with the documented catalog codes " +
        "(BASE-00001 401, REALTIME-00009 INVALID_TOKEN, REALTIME-00004, BASE-00013/14/15/17 …).",
      content: () => json("Error"),
      statuses: {
        400: "BASE-00012..16, REALTIME-00004 (no such room) or REALTIME-00009 (token or page token invalid)",
        401: "BASE-00001: the x-vcs-token header is missing",
      },
    },
  },
  conference: {
    document: "conference",
    fieldNames: "json",
    int64AsNumber: true,
    rejectsUnknownFields: false,
    acceptsForm: false,
    credentials: { bearer: { header: "authorization", scheme: "Bearer" } },
    authFailure: 401,
    legacyMessages: ["rtcplane.conference.v1.ConferenceEvent", "rtcplane.conference.v1.CallEvent"],
    error: {
      schemas: {},
      description:
        'Errors are plain text (`412 Precondition Failed: conference "c1" has ended`), never JSON: the vendor\'s ' +
        "iOS SDK counts any JSON body as success. Statuses: 400, 401, 403, 404, 409 (id taken), 412 (conference " +
        "ended, media not available, call state), 429 (conference full, too many waiters).",
      content: () => conferenceText,
      statuses: {
        400: "Bad input",
        401: "Token missing, invalid or expired",
      },
    },
  },
  oauth: {
    document: "conference",
    fieldNames: "json",
    int64AsNumber: true,
    rejectsUnknownFields: false,
    acceptsForm: true,
    credentials: {},
    authFailure: 401,
    legacyMessages: [],
    tokenEndpoint: true,
    error: {
      schemas: { OAuthError: OAUTH_ERROR },
      description: "Token endpoint errors are RFC 6749 `{error, error_description}`.",
      content: () => json("OAuthError"),
      statuses: {
        400: "invalid_request, invalid_grant or unsupported_grant_type",
        401: "invalid_client (with a Basic challenge)",
      },
    },
  },
  spreed: {
    document: "spreed",
    fieldNames: "json",
    int64AsNumber: true,
    rejectsUnknownFields: false,
    acceptsForm: true,
    credentials: { admin: { header: "authorization", scheme: "Bearer" } },
    authFailure: 401,
    legacyMessages: [],
    error: {
      schemas: { Error: SPREED_ERROR },
      description:
        'Errors are `{"success": false, "code", "message"}` with the upstream server\'s codes; a disabled ' +
        "feature (users, registration, tokens, stats) answers `404 page not found` as text/plain.",
      content: (status) =>
        status === 404
          ? spreedNotFound
          : status === "default"
            ? { ...json("Error"), ...spreedNotFound }
            : json("Error"),
      statuses: {
        400: "The request cannot be read (bad_request, users_bad_request, users_invalid_request)",
        401: "unauthorized: stats details without the operator's token",
      },
    },
  },
};

/** Titles of the API documents (the document name when absent). */
export const DOCUMENT_TITLES: Readonly<Record<string, string>> = {
  v1: "rtcplane v1 API",
  skyway: "SkyWay app management API",
  realtime: "Realtime rooms API",
  conference: "Conference API (/rtc-api) and OAuth2",
  spreed: "Spreed WebRTC REST API",
};

/** Security scheme names by credential. */
export const SCHEME_NAMES: Readonly<Record<CredentialName, string>> = {
  admin: "adminToken",
  tenant: "tenantToken",
  app: "appSecretKey",
  bearer: "bearerToken",
};

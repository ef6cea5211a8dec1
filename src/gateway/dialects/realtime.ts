/**
 * The realtime rooms API: camelCase JSON with epoch-millisecond numbers, and the
 * documented error envelope `{httpCode, code, id, description: [..]}` whose codes and
 * `::= [x]` wording come from the vendor's catalog. Errors are mapped by the
 * google.rpc.ErrorInfo reason the domain attached; codes marked "ours" are not in the
 * vendor documentation and fill its gaps (unknown path, wrong method, oversized body,
 * a value outside its set, an unreadable parameter, server failure).
 */
import { Code, type ConnectError } from "@connectrpc/connect";
import { Reason } from "../../errors.js";
import { reasonOf } from "../../http/rpc-errors.js";
import { type Dialect, type GatewayRefusal, httpStatusFromCode, type RenderedResponse } from "./dialect.js";

interface Envelope {
  httpCode: number;
  code: string;
  id: string | null;
  description: string[];
}

function envelope(httpCode: number, code: string, id: string | null, description: string): Envelope {
  return { httpCode, code, id, description: [description] };
}

const REFUSALS: Record<GatewayRefusal, (e: ConnectError) => Envelope> = {
  "malformed-json": () => envelope(400, "BASE-00014", null, "The passed JSON body is invalid."),
  "unsupported-media-type": () => envelope(415, "BASE-00017", null, "Passed media type is not supported."),
  "body-too-large": (e) => envelope(413, "BASE-00018", "PAYLOAD_TOO_LARGE", e.rawMessage), // ours
  "not-found": (e) => envelope(404, "BASE-00004", "NOT_FOUND", e.rawMessage), // ours
  "method-not-allowed": (e) => envelope(405, "BASE-00005", "METHOD_NOT_ALLOWED", e.rawMessage), // ours
};

/** The documented envelope for an RPC error. */
export function realtimeEnvelope(error: ConnectError): Envelope {
  const info = reasonOf(error);
  const m = info?.metadata ?? {};
  switch (info?.reason) {
    case Reason.AuthorizationMissing:
      return envelope(401, "BASE-00001", null, "Authorization missing.");
    case Reason.InvalidToken:
      return envelope(400, "REALTIME-00009", "INVALID_TOKEN", `The token ::= [${m.token ?? ""}] is invalid.`);
    case Reason.StringSize:
      return envelope(
        400,
        "BASE-00013",
        "STRING_SIZE",
        `The parameter with name ::= [${m.parameter}] is larger than ::= [${m.max}] characters`,
      );
    case Reason.NumberSize:
      return envelope(
        400,
        "BASE-00015",
        "NUMBER_SIZE",
        `The parameter with name ::= [${m.parameter}] is is not within the range from ::= [${m.min}] to [${m.max}]`,
      );
    case Reason.RoomNotFound:
      return envelope(
        400,
        "REALTIME-00004",
        "CONFERENCE_ROOM_DOES_NOT_EXIST",
        `A conference room with id ::= [${m.id}] does not exist.`,
      );
    case Reason.InvalidValue: // ours
      return envelope(
        400,
        "BASE-00016",
        "INVALID_VALUE",
        `The parameter with name ::= [${m.parameter}] has the invalid value ::= [${m.value}]; allowed are ::= [${m.allowed}]`,
      );
    case Reason.InvalidParameter: // ours
      return envelope(
        400,
        "BASE-00012",
        "INVALID_PARAMETER",
        `The parameter with name ::= [${m.parameter}] is invalid.`,
      );
  }
  if (error.code === Code.InvalidArgument) {
    // A body field of the wrong JSON type: the body is not what the API accepts.
    return envelope(400, "BASE-00014", null, "The passed JSON body is invalid.");
  }
  const status = httpStatusFromCode(error.code);
  const id = Code[error.code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
  return envelope(status, "BASE-00000", id, error.rawMessage); // ours
}

export const realtimeDialect: Dialect = {
  name: "realtime",
  credentials: { app: { header: "x-vcs-token" } },
  jsonWrite: { alwaysEmitImplicit: true },
  jsonRead: { ignoreUnknownFields: true },
  int64AsNumber: true,
  renderError(error, refusal): RenderedResponse {
    const body = refusal === undefined ? realtimeEnvelope(error) : REFUSALS[refusal](error);
    return { status: body.httpCode, headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
  },
};

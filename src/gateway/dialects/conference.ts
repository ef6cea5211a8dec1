/**
 * The conference API (`/rtc-api`): camelCase JSON with versions as numbers, 200 with JSON
 * or 204 with no body (never 201, which one client treats as an error). Errors keep the
 * documented statuses — FAILED_PRECONDITION (ended conference, no media) is 412,
 * RESOURCE_EXHAUSTED 429 — with a plain-text body, never JSON: the vendor's iOS SDK counts
 * any JSON body as success whatever the status (a JSON error to viewStream would read as an
 * empty SDP answer), while a non-JSON body on a status other than 200/204 is an error to it
 * and to every other client. The seed documents these errors without a body schema.
 */
import type { Message } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import type { CallEvent, ConferenceEvent } from "../../../gen/rtcplane/conference/v1/events_pb.js";
import { legacyJson } from "../../events/legacy-json.js";
import { type Dialect, httpStatusFromCode, httpStatusFromRefusal } from "./dialect.js";

const REASON_PHRASES: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  409: "Conflict",
  412: "Precondition Failed",
  413: "Payload Too Large",
  415: "Unsupported Media Type",
  429: "Too Many Requests",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

export function conferenceStatus(code: Code): number {
  if (code === Code.FailedPrecondition) return 412;
  return httpStatusFromCode(code);
}

export const conferenceDialect: Dialect = {
  name: "conference",
  credentials: { bearer: { header: "authorization", scheme: "Bearer" } },
  jsonWrite: { alwaysEmitImplicit: true },
  jsonRead: { ignoreUnknownFields: true },
  int64AsNumber: true,
  // Events go out as the flat JSON the SDKs read, the same as over MQTT.
  legacyJson: (m: Message) =>
    m.$typeName === "rtcplane.conference.v1.ConferenceEvent" || m.$typeName === "rtcplane.conference.v1.CallEvent"
      ? legacyJson(m as ConferenceEvent | CallEvent)
      : undefined,
  renderError(error, refusal) {
    const status = refusal === undefined ? conferenceStatus(error.code) : httpStatusFromRefusal(refusal);
    return {
      status,
      headers: { "content-type": "text/plain; charset=utf-8" },
      body: `${status} ${REASON_PHRASES[status] ?? "Error"}: ${error.rawMessage}\n`,
    };
  },
};

/**
 * The one place that renders typed events (events.proto) as the legacy JSON the vendor SDKs
 * read on long-polls, MQTT and REST: `type` (the payload's message name), the envelope's
 * fields in their historic order, then the payload's fields flattened beside them; versions
 * as JSON numbers, timestamps as `yyyy-MM-ddTHH:mm:ss.SSSZ`. A custom event is the app's
 * own JSON laid over the envelope, as it always was. Renderings are kept per event object,
 * so an event pushed to a thousand endpoints is rendered once.
 *
 * It also reads the legacy form back into a typed event (conferenceEventFromLegacy), for
 * events logged before the log held typed events.
 */
import { create, type JsonObject, type MessageInitShape } from "@bufbuild/protobuf";
import { type Timestamp, timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type CallEvent,
  type ConferenceEvent,
  ConferenceEventSchema,
  type EndpointNetworkIndicator,
} from "../../gen/rtcplane/conference/v1/events_pb.js";

export type Json = { [key: string]: unknown };
export type ConferencePayload = ConferenceEvent["payload"];
type PayloadInit = MessageInitShape<typeof ConferenceEventSchema>["payload"];
export type CallPayload = CallEvent["payload"];

/** The legacy `type` of each conference payload (the payload's message name). */
export const CONFERENCE_EVENT_TYPES = {
  created: "ConferenceCreatedEvent",
  joined: "ConferenceJoinedEvent",
  left: "ConferenceLeftEvent",
  ended: "ConferenceEndedEvent",
  modeUpdated: "ConferenceModeUpdatedEvent",
  streamPublished: "ConferenceStreamPublishedEvent",
  streamUnpublished: "ConferenceStreamUnpublishedEvent",
  metadataUpdated: "ConferenceMetadataUpdatedEvent",
  participantMetadataUpdated: "ConferenceParticipantMetadataUpdatedEvent",
  streamMetadataUpdated: "ConferenceStreamMetadataUpdatedEvent",
  streamBitrateUpdated: "ConferenceStreamBitrateUpdatedEvent",
  networkIndicatorUpdated: "ConferenceNetworkIndicatorUpdatedEvent",
} as const satisfies Record<Exclude<ConferencePayload["case"], "custom" | undefined>, string>;

export const CALL_EVENT_TYPES = {
  created: "CallCreatedEvent",
  ringing: "CallRingingEvent",
  answered: "CallAnsweredEvent",
  rejected: "CallRejectedEvent",
  cancelled: "CallCancelledEvent",
  ended: "CallEndedEvent",
  iceCandidatesFound: "IceCandidatesFoundEvent",
} as const satisfies Record<Exclude<CallPayload["case"], undefined>, string>;

function isoMillis(t: Timestamp | undefined): string {
  return (t === undefined ? new Date(0) : timestampDate(t)).toISOString();
}

function indicator(i: EndpointNetworkIndicator): Json {
  return {
    averageJitter: i.averageJitter,
    averageRtt: i.averageRtt,
    averageNetworkQuality: i.averageNetworkQuality,
    grade: i.grade,
  };
}

/** A conference payload's own legacy fields, in their historic order. */
function conferenceFields(p: ConferencePayload): Json {
  switch (p.case) {
    case "created":
      return { mode: p.value.mode, creator: p.value.creator };
    case "joined":
      return { metadata: p.value.metadata ?? {} };
    case "left":
    case "ended":
      return { reason: p.value.reason };
    case "modeUpdated":
      return { mode: p.value.mode, previousMode: p.value.previousMode };
    case "streamPublished":
    case "streamUnpublished":
      return { streamId: p.value.streamId, streamType: p.value.streamType };
    case "metadataUpdated":
      return { key: p.value.key, operation: p.value.operation, value: p.value.value ?? null };
    case "participantMetadataUpdated":
      return { newMetadata: p.value.newMetadata ?? {} };
    case "streamMetadataUpdated":
      return { streamId: p.value.streamId, newMetadata: p.value.newMetadata ?? {} };
    case "streamBitrateUpdated":
      return { streamId: p.value.streamId, videoBitrate: p.value.videoBitrate };
    case "networkIndicatorUpdated":
      return {
        averageNetworkQuality: p.value.averageNetworkQuality,
        participantIndicatorMap: Object.fromEntries(
          Object.entries(p.value.participantIndicatorMap).map(([k, v]) => [k, indicator(v)]),
        ),
      };
    default:
      return {};
  }
}

function renderConference(e: ConferenceEvent): Json {
  const version = e.conferenceVersion === undefined ? {} : { conferenceVersion: Number(e.conferenceVersion) };
  const p = e.payload;
  if (p.case === "custom") {
    // The app's JSON over the envelope; the envelope keeps the ids and the version.
    const base = {
      type: p.value.type,
      id: e.id,
      conferenceId: e.conferenceId,
      ...version,
      organizationId: e.organizationId,
      timestamp: isoMillis(e.timestamp),
      userEndpointId: e.userEndpointId,
      userId: e.userId,
    };
    return {
      ...base,
      ...(p.value.data ?? {}),
      conferenceId: e.conferenceId,
      ...version,
      organizationId: e.organizationId,
    };
  }
  return {
    type: p.case === undefined ? "" : CONFERENCE_EVENT_TYPES[p.case],
    id: e.id,
    conferenceId: e.conferenceId,
    ...version,
    organizationId: e.organizationId,
    timestamp: isoMillis(e.timestamp),
    userEndpointId: e.userEndpointId,
    userId: e.userId,
    ...conferenceFields(p),
  };
}

function callFields(p: CallPayload): Json {
  switch (p.case) {
    case "created":
      return {
        sdpOffer: p.value.sdpOffer,
        target: p.value.target,
        ...(Object.keys(p.value.sipHeaders).length > 0 ? { sipHeaders: { ...p.value.sipHeaders } } : {}),
      };
    case "answered":
      return { sdpAnswer: p.value.sdpAnswer };
    case "rejected":
    case "cancelled":
    case "ended":
      return { reason: p.value.reason };
    case "iceCandidatesFound":
      return {
        iceCandidates: p.value.iceCandidates.map((c) => ({
          candidate: c.candidate,
          sdpMLineIndex: c.sdpMLineIndex,
          sdpMid: c.sdpMid,
        })),
      };
    default:
      return {};
  }
}

function renderCall(e: CallEvent): Json {
  return {
    type: e.payload.case === undefined ? "" : CALL_EVENT_TYPES[e.payload.case],
    id: e.id,
    callId: e.callId,
    timestamp: isoMillis(e.timestamp),
    userEndpointId: e.userEndpointId,
    userId: e.userId,
    aggregate: "Call",
    aggregateId: e.callId,
    aggregateVersion: Number(e.aggregateVersion),
    ...callFields(e.payload),
  };
}

const rendered = new WeakMap<ConferenceEvent | CallEvent, Json>();

/** The legacy JSON of a typed event (rendered once per event object). */
export function legacyJson(e: ConferenceEvent | CallEvent): Json {
  let json = rendered.get(e);
  if (json === undefined) {
    json = e.$typeName === "rtcplane.conference.v1.CallEvent" ? renderCall(e) : renderConference(e);
    rendered.set(e, json);
  }
  return json;
}

const ENVELOPE_KEYS = new Set([
  "type",
  "id",
  "conferenceId",
  "conferenceVersion",
  "organizationId",
  "timestamp",
  "userEndpointId",
  "userId",
]);

function str(v: unknown): string {
  return typeof v === "string" ? v : "";
}

function obj(v: unknown): JsonObject {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as JsonObject) : {};
}

/** The legacy `type` → payload case (custom for any other type). */
const CASE_OF_TYPE = new Map<string, keyof typeof CONFERENCE_EVENT_TYPES>(
  Object.entries(CONFERENCE_EVENT_TYPES).map(([c, t]) => [t, c as keyof typeof CONFERENCE_EVENT_TYPES]),
);

/** The payload (as an init shape) of a legacy event's own fields. */
function payloadFromLegacy(type: string, j: Json): PayloadInit {
  const num = (x: unknown) => (typeof x === "number" ? x : 0);
  const stream = { streamId: str(j.streamId), streamType: str(j.streamType) };
  switch (CASE_OF_TYPE.get(type)) {
    case "created":
      return { case: "created", value: { mode: str(j.mode), creator: str(j.creator) } };
    case "joined":
      return { case: "joined", value: { metadata: obj(j.metadata) } };
    case "left":
      return { case: "left", value: { reason: str(j.reason) } };
    case "ended":
      return { case: "ended", value: { reason: str(j.reason) } };
    case "modeUpdated":
      return { case: "modeUpdated", value: { mode: str(j.mode), previousMode: str(j.previousMode) } };
    case "streamPublished":
      return { case: "streamPublished", value: stream };
    case "streamUnpublished":
      return { case: "streamUnpublished", value: stream };
    case "metadataUpdated":
      return {
        case: "metadataUpdated",
        value: {
          key: str(j.key),
          operation: str(j.operation),
          ...(typeof j.value === "string" ? { value: j.value } : {}),
        },
      };
    case "participantMetadataUpdated":
      return { case: "participantMetadataUpdated", value: { newMetadata: obj(j.newMetadata) } };
    case "streamMetadataUpdated":
      return { case: "streamMetadataUpdated", value: { streamId: str(j.streamId), newMetadata: obj(j.newMetadata) } };
    case "streamBitrateUpdated":
      return { case: "streamBitrateUpdated", value: { streamId: str(j.streamId), videoBitrate: num(j.videoBitrate) } };
    case "networkIndicatorUpdated":
      return {
        case: "networkIndicatorUpdated",
        value: {
          averageNetworkQuality: num(j.averageNetworkQuality),
          participantIndicatorMap: Object.fromEntries(
            Object.entries(obj(j.participantIndicatorMap)).map(([k, v]) => {
              const i = obj(v);
              const figures = { averageJitter: num(i.averageJitter), averageRtt: num(i.averageRtt) };
              return [k, { ...figures, averageNetworkQuality: num(i.averageNetworkQuality), grade: str(i.grade) }];
            }),
          ),
        },
      };
    default: {
      const data: JsonObject = {};
      for (const [k, v] of Object.entries(j))
        if (k === "type" || k === "timestamp" || !ENVELOPE_KEYS.has(k)) data[k] = v as never;
      return { case: "custom", value: { type, data } };
    }
  }
}

/** A typed event from its legacy JSON (events logged before the log was typed). */
export function conferenceEventFromLegacy(j: Json): ConferenceEvent {
  const ms = Date.parse(str(j.timestamp));
  return create(ConferenceEventSchema, {
    id: str(j.id),
    conferenceId: str(j.conferenceId),
    ...(typeof j.conferenceVersion === "number" ? { conferenceVersion: BigInt(j.conferenceVersion) } : {}),
    organizationId: str(j.organizationId),
    timestamp: timestampFromMs(Number.isNaN(ms) ? 0 : ms),
    userEndpointId: str(j.userEndpointId),
    userId: str(j.userId),
    payload: payloadFromLegacy(str(j.type), j),
  });
}

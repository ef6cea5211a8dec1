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
import { create, type JsonObject } from "@bufbuild/protobuf";
import { type Timestamp, timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type CallEvent,
  CallEventSchema,
  type ConferenceEvent,
  ConferenceEventSchema,
  type EndpointNetworkIndicator,
  EndpointNetworkIndicatorSchema,
} from "../../gen/rtcplane/conference/v1/events_pb.js";

export type Json = { [key: string]: unknown };
export type ConferencePayload = ConferenceEvent["payload"];
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

/** The legacy `type` of a conference event. */
export function conferenceEventType(e: ConferenceEvent): string {
  const p = e.payload;
  if (p.case === "custom") return p.value.type;
  return p.case === undefined ? "" : CONFERENCE_EVENT_TYPES[p.case];
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

/** The typed payload of a legacy event's own fields. */
function payloadFromLegacy(type: string, j: Json): ConferencePayload {
  const streamFields = { streamId: str(j.streamId), streamType: str(j.streamType) };
  switch (type) {
    case "ConferenceCreatedEvent":
      return {
        case: "created",
        value: {
          $typeName: "rtcplane.conference.v1.ConferenceCreatedEvent",
          mode: str(j.mode),
          creator: str(j.creator),
        },
      };
    case "ConferenceJoinedEvent":
      return {
        case: "joined",
        value: { $typeName: "rtcplane.conference.v1.ConferenceJoinedEvent", metadata: obj(j.metadata) },
      };
    case "ConferenceLeftEvent":
      return {
        case: "left",
        value: { $typeName: "rtcplane.conference.v1.ConferenceLeftEvent", reason: str(j.reason) },
      };
    case "ConferenceEndedEvent":
      return {
        case: "ended",
        value: { $typeName: "rtcplane.conference.v1.ConferenceEndedEvent", reason: str(j.reason) },
      };
    case "ConferenceModeUpdatedEvent":
      return {
        case: "modeUpdated",
        value: {
          $typeName: "rtcplane.conference.v1.ConferenceModeUpdatedEvent",
          mode: str(j.mode),
          previousMode: str(j.previousMode),
        },
      };
    case "ConferenceStreamPublishedEvent":
      return {
        case: "streamPublished",
        value: { $typeName: "rtcplane.conference.v1.ConferenceStreamPublishedEvent", ...streamFields },
      };
    case "ConferenceStreamUnpublishedEvent":
      return {
        case: "streamUnpublished",
        value: { $typeName: "rtcplane.conference.v1.ConferenceStreamUnpublishedEvent", ...streamFields },
      };
    case "ConferenceMetadataUpdatedEvent":
      return {
        case: "metadataUpdated",
        value: {
          $typeName: "rtcplane.conference.v1.ConferenceMetadataUpdatedEvent",
          key: str(j.key),
          operation: str(j.operation),
          ...(typeof j.value === "string" ? { value: j.value } : {}),
        },
      };
    case "ConferenceParticipantMetadataUpdatedEvent":
      return {
        case: "participantMetadataUpdated",
        value: {
          $typeName: "rtcplane.conference.v1.ConferenceParticipantMetadataUpdatedEvent",
          newMetadata: obj(j.newMetadata),
        },
      };
    case "ConferenceStreamMetadataUpdatedEvent":
      return {
        case: "streamMetadataUpdated",
        value: {
          $typeName: "rtcplane.conference.v1.ConferenceStreamMetadataUpdatedEvent",
          streamId: str(j.streamId),
          newMetadata: obj(j.newMetadata),
        },
      };
    case "ConferenceStreamBitrateUpdatedEvent":
      return {
        case: "streamBitrateUpdated",
        value: {
          $typeName: "rtcplane.conference.v1.ConferenceStreamBitrateUpdatedEvent",
          streamId: str(j.streamId),
          videoBitrate: typeof j.videoBitrate === "number" ? j.videoBitrate : 0,
        },
      };
    case "ConferenceNetworkIndicatorUpdatedEvent":
      return {
        case: "networkIndicatorUpdated",
        value: {
          $typeName: "rtcplane.conference.v1.ConferenceNetworkIndicatorUpdatedEvent",
          averageNetworkQuality: typeof j.averageNetworkQuality === "number" ? j.averageNetworkQuality : 0,
          participantIndicatorMap: Object.fromEntries(
            Object.entries(obj(j.participantIndicatorMap)).map(([k, v]) => {
              const i = obj(v);
              const n = (x: unknown) => (typeof x === "number" ? x : 0);
              return [
                k,
                create(EndpointNetworkIndicatorSchema, {
                  averageJitter: n(i.averageJitter),
                  averageRtt: n(i.averageRtt),
                  averageNetworkQuality: n(i.averageNetworkQuality),
                  grade: str(i.grade),
                }),
              ];
            }),
          ),
        },
      };
    default: {
      const data: JsonObject = {};
      for (const [k, v] of Object.entries(j))
        if (k === "type" || k === "timestamp" || !ENVELOPE_KEYS.has(k)) data[k] = v as never;
      return { case: "custom", value: { $typeName: "rtcplane.conference.v1.CustomEvent", type, data } };
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

/** A typed call event's envelope. */
export function callEvent(init: {
  id: string;
  callId: string;
  timestampMs: number;
  userEndpointId: string;
  userId: string;
  aggregateVersion: number;
  payload: CallPayload;
}): CallEvent {
  return create(CallEventSchema, {
    id: init.id,
    callId: init.callId,
    timestamp: timestampFromMs(init.timestampMs),
    userEndpointId: init.userEndpointId,
    userId: init.userId,
    aggregateVersion: BigInt(init.aggregateVersion),
    payload: init.payload,
  });
}

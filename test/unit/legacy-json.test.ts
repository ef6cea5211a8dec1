/**
 * Golden renderings: every event type's legacy JSON, byte for byte as clients have always
 * received it (key order, `type` strings, timestamp format, versions as numbers), and legacy
 * rows read back into typed events that render to the same bytes.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  CallEventSchema,
  ConferenceEventSchema,
  file_rtcplane_conference_v1_events,
} from "../../gen/rtcplane/conference/v1/events_pb.js";
import {
  CALL_EVENT_TYPES,
  CONFERENCE_EVENT_TYPES,
  conferenceEventFromLegacy,
  legacyJson,
} from "../../src/events/legacy-json.js";

const AT = Date.UTC(2026, 10, 23, 9, 8, 7, 65);
const ENVELOPE =
  '"id":"e1","conferenceId":"c1","conferenceVersion":7,"organizationId":"app1","timestamp":"2026-11-23T09:08:07.065Z","userEndpointId":"ep1","userId":"u1"';

function conference(payload: MessageInitShape<typeof ConferenceEventSchema>["payload"], version: bigint | null = 7n) {
  return create(ConferenceEventSchema, {
    id: "e1",
    conferenceId: "c1",
    ...(version === null ? {} : { conferenceVersion: version }),
    organizationId: "app1",
    timestamp: timestampFromMs(AT),
    userEndpointId: "ep1",
    userId: "u1",
    payload,
  });
}

const CONFERENCE_GOLDEN: [MessageInitShape<typeof ConferenceEventSchema>["payload"], string][] = [
  [{ case: "created", value: { mode: "ROUTER", creator: "u1" } }, `"mode":"ROUTER","creator":"u1"`],
  [
    { case: "joined", value: { metadata: { roles: ["CUSTOMER"], name: null, n: 1.5, deep: { a: true } } } },
    `"metadata":{"roles":["CUSTOMER"],"name":null,"n":1.5,"deep":{"a":true}}`,
  ],
  [{ case: "left", value: { reason: "keep-alive expired" } }, `"reason":"keep-alive expired"`],
  [{ case: "ended", value: { reason: "" } }, `"reason":""`],
  [{ case: "modeUpdated", value: { mode: "ROUTER", previousMode: "P2P" } }, `"mode":"ROUTER","previousMode":"P2P"`],
  [{ case: "streamPublished", value: { streamId: "S1", streamType: "CAM" } }, `"streamId":"S1","streamType":"CAM"`],
  [
    { case: "streamUnpublished", value: { streamId: "S1", streamType: "MIC_AND_CAM" } },
    `"streamId":"S1","streamType":"MIC_AND_CAM"`,
  ],
  [
    { case: "metadataUpdated", value: { key: "TRACK_MUTED/audio/S1", operation: "SET", value: "true" } },
    `"key":"TRACK_MUTED/audio/S1","operation":"SET","value":"true"`,
  ],
  [
    { case: "metadataUpdated", value: { key: "TRACK_MUTED/audio/S1", operation: "REMOVE" } },
    `"key":"TRACK_MUTED/audio/S1","operation":"REMOVE","value":null`,
  ],
  [{ case: "participantMetadataUpdated", value: { newMetadata: { x: "y" } } }, `"newMetadata":{"x":"y"}`],
  [
    { case: "streamMetadataUpdated", value: { streamId: "S1", newMetadata: { portraitMode: false } } },
    `"streamId":"S1","newMetadata":{"portraitMode":false}`,
  ],
  [
    { case: "streamBitrateUpdated", value: { streamId: "S1", videoBitrate: 500000 } },
    `"streamId":"S1","videoBitrate":500000`,
  ],
];

describe("legacy JSON of typed events", () => {
  it("renders every conference event type byte for byte", () => {
    for (const [payload, fields] of CONFERENCE_GOLDEN) {
      const type = CONFERENCE_EVENT_TYPES[payload?.case as keyof typeof CONFERENCE_EVENT_TYPES];
      const e = conference(payload);
      assert.equal(JSON.stringify(legacyJson(e)), `{"type":"${type}",${ENVELOPE},${fields}}`);
      // A logged legacy row reads back into the same typed event.
      const back = conferenceEventFromLegacy(JSON.parse(JSON.stringify(legacyJson(e))));
      assert.equal(JSON.stringify(legacyJson(back)), JSON.stringify(legacyJson(e)), type);
      assert.equal(back.payload.case, e.payload.case);
    }
  });

  it("renders observations without a version: creation, network indicators", () => {
    const created = conference({ case: "created", value: { mode: "P2P", creator: "u1" } }, null);
    assert.equal(
      JSON.stringify(legacyJson(created)),
      '{"type":"ConferenceCreatedEvent","id":"e1","conferenceId":"c1","organizationId":"app1","timestamp":"2026-11-23T09:08:07.065Z","userEndpointId":"ep1","userId":"u1","mode":"P2P","creator":"u1"}',
    );
    const indicators = conference(
      {
        case: "networkIndicatorUpdated",
        value: {
          averageNetworkQuality: 9.5,
          participantIndicatorMap: {
            pub: { averageJitter: 1.2, averageRtt: 3, averageNetworkQuality: 9.5, grade: "OPTIMAL" },
          },
        },
      },
      null,
    );
    assert.equal(
      JSON.stringify(legacyJson(indicators)),
      '{"type":"ConferenceNetworkIndicatorUpdatedEvent","id":"e1","conferenceId":"c1","organizationId":"app1","timestamp":"2026-11-23T09:08:07.065Z","userEndpointId":"ep1","userId":"u1","averageNetworkQuality":9.5,"participantIndicatorMap":{"pub":{"averageJitter":1.2,"averageRtt":3,"averageNetworkQuality":9.5,"grade":"OPTIMAL"}}}',
    );
  });

  it("lays a custom event's own JSON over the envelope, as sendEvent always did", () => {
    const custom = create(ConferenceEventSchema, {
      id: "e2",
      conferenceId: "c1",
      conferenceVersion: 3n,
      organizationId: "app1",
      timestamp: timestampFromMs(Date.parse("2024-01-01T00:00:00Z")),
      payload: {
        case: "custom",
        value: {
          type: "CardEnteredEvent",
          data: { type: "CardEnteredEvent", timestamp: "2024-01-01T00:00:00Z", card: "****", conferenceId: "spoof" },
        },
      },
    });
    const json =
      '{"type":"CardEnteredEvent","id":"e2","conferenceId":"c1","conferenceVersion":3,"organizationId":"app1","timestamp":"2024-01-01T00:00:00Z","userEndpointId":"","userId":"","card":"****"}';
    assert.equal(JSON.stringify(legacyJson(custom)), json, "the envelope's ids win; the app's timestamp is kept");
    assert.equal(JSON.stringify(legacyJson(conferenceEventFromLegacy(JSON.parse(json)))), json);
  });

  it("renders every call event type byte for byte", () => {
    const base =
      '"id":"e3","callId":"call1","timestamp":"2026-11-23T09:08:07.065Z","userEndpointId":"ep1","userId":"u1","aggregate":"Call","aggregateId":"call1","aggregateVersion":2';
    const golden: [MessageInitShape<typeof CallEventSchema>["payload"], string][] = [
      [{ case: "created", value: { sdpOffer: "v=0", target: "u2" } }, `,"sdpOffer":"v=0","target":"u2"`],
      [
        { case: "created", value: { sdpOffer: "v=0", target: "u2", sipHeaders: { "X-A": "1" } } },
        `,"sdpOffer":"v=0","target":"u2","sipHeaders":{"X-A":"1"}`,
      ],
      [{ case: "ringing", value: {} }, ""],
      [{ case: "answered", value: { sdpAnswer: "v=0" } }, `,"sdpAnswer":"v=0"`],
      [{ case: "rejected", value: { reason: "busy" } }, `,"reason":"busy"`],
      [{ case: "cancelled", value: { reason: "no answer" } }, `,"reason":"no answer"`],
      [{ case: "ended", value: { reason: "No reason" } }, `,"reason":"No reason"`],
      [
        {
          case: "iceCandidatesFound",
          value: { iceCandidates: [{ candidate: "candidate:1", sdpMLineIndex: 0, sdpMid: "0" }] },
        },
        `,"iceCandidates":[{"candidate":"candidate:1","sdpMLineIndex":0,"sdpMid":"0"}]`,
      ],
    ];
    for (const [payload, fields] of golden) {
      const e = create(CallEventSchema, {
        id: "e3",
        callId: "call1",
        timestamp: timestampFromMs(AT),
        userEndpointId: "ep1",
        userId: "u1",
        aggregateVersion: 2n,
        payload,
      });
      const type = CALL_EVENT_TYPES[payload?.case as keyof typeof CALL_EVENT_TYPES];
      assert.equal(JSON.stringify(legacyJson(e)), `{"type":"${type}",${base}${fields}}`);
    }
  });

  it("names every payload of the protos, and each type string is its message's name", () => {
    const envelopes = [
      [file_rtcplane_conference_v1_events.messages.find((m) => m.name === "ConferenceEvent"), CONFERENCE_EVENT_TYPES],
      [file_rtcplane_conference_v1_events.messages.find((m) => m.name === "CallEvent"), CALL_EVENT_TYPES],
    ] as const;
    for (const [message, types] of envelopes) {
      const fields = message?.oneofs[0]?.fields ?? [];
      assert.ok(fields.length > 0);
      for (const f of fields) {
        if (f.localName === "custom") continue;
        assert.equal((types as Record<string, string>)[f.localName], f.message?.name, f.localName);
      }
      assert.equal(Object.keys(types).length, fields.filter((f) => f.localName !== "custom").length);
    }
  });
});

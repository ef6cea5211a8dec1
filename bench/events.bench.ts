/**
 * What typed events cost on the read path (a long-poll answer of 100 logged events): the log
 * row parsed into a ConferenceEvent and rendered to the legacy JSON the SDKs read, against
 * the untyped baseline in the same run (the row already holding the legacy JSON). Run:
 * `npx tsx bench/events.bench.ts`.
 */
import { create, fromJson, type JsonValue, toJsonString } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { ConferenceEventSchema } from "../gen/rtcplane/conference/v1/events_pb.js";
import { legacyJson } from "../src/events/legacy-json.js";

const events = Array.from({ length: 100 }, (_, i) =>
  create(ConferenceEventSchema, {
    id: `e${i}`,
    conferenceId: "c1",
    conferenceVersion: BigInt(i),
    organizationId: "app1",
    timestamp: timestampFromMs(Date.now()),
    userEndpointId: "ep1",
    userId: "u1",
    payload:
      i % 2 === 0
        ? { case: "streamPublished", value: { streamId: `s${i}`, streamType: "CAM" } }
        : { case: "joined", value: { metadata: { roles: ["CUSTOMER"], name: "Customer", capabilities: ["audio"] } } },
  }),
);
const typedRows = events.map((e) => toJsonString(ConferenceEventSchema, e));
const legacyRows = events.map((e) => JSON.stringify(legacyJson(e)));

const cache = new Map(typedRows.map((body, i) => [i, { body, event: events[i] }]));

function time(label: string, f: () => string): [string, number] {
  for (let i = 0; i < 200; i++) f();
  const n = 2000;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) f();
  return [label, Number(process.hrtime.bigint() - t0) / 1e3 / n];
}

const rows = [
  time("untyped: parse legacy rows, stringify", () => JSON.stringify(legacyRows.map((r) => JSON.parse(r)))),
  time("typed: parse proto JSON rows, render legacy, stringify", () =>
    JSON.stringify(typedRows.map((r) => legacyJson(fromJson(ConferenceEventSchema, JSON.parse(r) as JsonValue)))),
  ),
  time("typed, rows decoded before (the repository's cache: text compared, rendering kept)", () =>
    JSON.stringify(
      typedRows.map((r, i) => {
        const hit = cache.get(i);
        const event = hit !== undefined && hit.body === r ? hit.event : events[i];
        if (event === undefined) throw new Error("no event");
        return legacyJson(event);
      }),
    ),
  ),
];
console.log("| 100 events per answer | µs per answer |\n|---|---|");
for (const [label, us] of rows) console.log(`| ${label} | ${us.toFixed(0)} |`);

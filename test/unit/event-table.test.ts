import assert from "node:assert/strict";
import fs from "node:fs";
import { describe, it } from "node:test";
import { CALL_EVENT_TYPES, CONFERENCE_EVENT_TYPES } from "../../src/events/legacy-json.js";
import { EVENTS_PROTO, eventTable, README, readmeWithTable } from "../../tools/event-table.js";

describe("the README's event catalogue", () => {
  it("is the one generated from events.proto (run: npx tsx tools/event-table.ts --write)", () => {
    const readme = fs.readFileSync(README, "utf8");
    const table = eventTable(fs.readFileSync(EVENTS_PROTO, "utf8"));
    assert.equal(readmeWithTable(readme, table), readme);
  });

  it("lists every event type the server emits, custom events included", () => {
    const table = eventTable(fs.readFileSync(EVENTS_PROTO, "utf8"));
    for (const type of [...Object.values(CONFERENCE_EVENT_TYPES), ...Object.values(CALL_EVENT_TYPES)]) {
      assert.match(table, new RegExp(`\\| \`${type}\` \\|`), type);
    }
    assert.match(table, /\| `CustomEvent` \| `type`, `data` \|/);
  });
});

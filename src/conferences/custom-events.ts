/**
 * Custom events an app sends to a conference's participants (ConferenceService.SendEvent):
 * checked, masked for the log, and either logged and versioned like any change
 * (AT_LEAST_ONCE, in one transaction with the row locked, staged on the bus) or only pushed
 * to current listeners (BEST_EFFORT).
 */

import { clone, create, type JsonObject } from "@bufbuild/protobuf";
import { ConferenceEventSchema, CustomEventSchema } from "../../gen/rtcplane/conference/v1/events_pb.js";
import { invalidArgument } from "../errors.js";
import { type ConferenceChanges, conferenceEnded } from "./conference-changes.js";
import { applyMasks, EVENT_TYPE, ISO_INSTANT, RESERVED_EVENT_TYPES, validateJson } from "./conference-inputs.js";
import type { ConferenceRow, Json } from "./conference-repository.js";

export class ConferenceCustomEvents {
  constructor(private readonly changes: ConferenceChanges) {}

  /**
   * A custom event from a SERVICE caller. AT_LEAST_ONCE: logged (masked) and versioned like
   * any change; BEST_EFFORT: only current listeners and push receive it. Returns how many
   * joined endpoints it was sent to.
   */
  async sendEvent(
    appId: string,
    conferenceId: string,
    event: Json,
    masks: readonly string[],
    qos: string,
  ): Promise<number> {
    const type = event.type;
    if (typeof type !== "string" || !EVENT_TYPE.test(type)) {
      throw invalidArgument(
        'event.type: must be Capitalized camel case ending in "Event", e.g. "RecordingStartedEvent"',
      );
    }
    // The server's own event names are its own: an app cannot make clients see a forged
    // "ConferenceEndedEvent" or "CallAnsweredEvent" (the API documents say so too).
    if (RESERVED_EVENT_TYPES.has(type)) {
      throw invalidArgument(
        `event.type: ${JSON.stringify(type)} is the server's own event; name the app's event otherwise`,
      );
    }
    const timestamp = event.timestamp;
    if (typeof timestamp !== "string" || !ISO_INSTANT.test(timestamp) || Number.isNaN(Date.parse(timestamp))) {
      throw invalidArgument('event.timestamp: must be an ISO-8601 instant such as "2011-12-03T10:15:30Z"');
    }
    validateJson("event", event);
    const mode = qos === "" ? "BEST_EFFORT" : qos;
    if (mode !== "AT_LEAST_ONCE" && mode !== "BEST_EFFORT")
      throw invalidArgument("qos: must be AT_LEAST_ONCE or BEST_EFFORT");
    const masked = applyMasks(event, masks);
    const { store, bus, log } = this.changes;
    // Live receivers get the app's event as sent; the log and long-polls the masked copy.
    const custom = (c: ConferenceRow, version: number | null) => {
      const full = this.changes.event(
        c,
        { case: "custom", value: { type, data: event as JsonObject } },
        undefined,
        version,
        Date.parse(timestamp),
      );
      const shown = clone(ConferenceEventSchema, full);
      shown.payload = { case: "custom", value: create(CustomEventSchema, { type, data: masked as JsonObject }) };
      return { full, shown };
    };
    if (mode === "BEST_EFFORT") {
      const c = await this.changes.find(appId, conferenceId);
      if (c.ended) throw conferenceEnded(conferenceId);
      const recipients = await this.changes.recipients(this.changes.repo, c);
      const { full, shown } = custom(c, null);
      log.debug({ conferenceId, type }, "best-effort event sent");
      bus.publish({ appId, conferenceId }, shown, recipients, false, full);
      return recipients.length;
    }
    const result = await store.transaction(async (tx) => {
      const repo = this.changes.repo.in(tx);
      const c = await this.changes.lockConference(repo, appId, conferenceId);
      if (c.ended) throw conferenceEnded(conferenceId);
      const recipients = await this.changes.recipients(repo, c);
      const { full, shown: stored } = custom(c, c.version);
      await this.changes.logVersioned(repo, c, stored);
      await bus.stage(tx, { appId, conferenceId }, stored, recipients, full);
      return { full, stored, recipients };
    });
    log.debug({ conferenceId, type, version: Number(result.stored.conferenceVersion) }, "event sent");
    return result.recipients.length;
  }
}

/**
 * The event bus across nodes: each message of the bus travels on the cluster channel (events
 * as their binary proto, base64) and every node — the sender too — hands it to its own bus.
 * Conference events go with the transaction that logs them, so every node sees a
 * conference's events in version order.
 */
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { CallEventSchema, ConferenceEventSchema } from "../../gen/rtcplane/conference/v1/events_pb.js";
import type { BusMessage, BusRelay, EventBus, Recipient } from "../conferences/event-bus.js";
import type { Logger } from "../observability/log.js";
import type { Tx } from "../storage/store.js";
import type { ClusterChannel } from "./cluster-channel.js";

const TOPIC = "bus";

type Wire =
  | { k: "c"; a: string; c: string; e: string; r: [string, string][]; l: boolean; v?: string }
  | { k: "u"; a: string; e: string; r: [string, string][] };

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64");
const bytes = (text: string) => new Uint8Array(Buffer.from(text, "base64"));
const pairs = (rs: readonly Recipient[]): [string, string][] => rs.map((r) => [r.userId, r.endpointId]);
const recipients = (ps: [string, string][]): Recipient[] => ps.map(([userId, endpointId]) => ({ userId, endpointId }));

function encode(m: BusMessage): Wire {
  if (m.kind === "call")
    return { k: "u", a: m.appId, e: b64(toBinary(CallEventSchema, m.event)), r: pairs(m.recipients) };
  const wire: Wire = {
    k: "c",
    a: m.ref.appId,
    c: m.ref.conferenceId,
    e: b64(toBinary(ConferenceEventSchema, m.event)),
    r: pairs(m.recipients),
    l: m.logged,
  };
  if (m.live !== m.event) wire.v = b64(toBinary(ConferenceEventSchema, m.live));
  return wire;
}

function decode(w: Wire): BusMessage {
  if (w.k === "u") {
    return { kind: "call", appId: w.a, recipients: recipients(w.r), event: fromBinary(CallEventSchema, bytes(w.e)) };
  }
  const event = fromBinary(ConferenceEventSchema, bytes(w.e));
  return {
    kind: "conference",
    ref: { appId: w.a, conferenceId: w.c },
    event,
    recipients: recipients(w.r),
    logged: w.l,
    live: w.v === undefined ? event : fromBinary(ConferenceEventSchema, bytes(w.v)),
  };
}

export class ClusterBus implements BusRelay {
  constructor(
    private readonly channel: ClusterChannel,
    bus: EventBus,
    private readonly logger: Logger,
  ) {
    channel.on(TOPIC, (body) => bus.deliver(decode(body as Wire)));
  }

  sendInTx(tx: Tx, message: BusMessage): Promise<void> {
    return this.channel.sendInTx(tx, TOPIC, encode(message));
  }

  send(message: BusMessage): void {
    this.channel.send(TOPIC, encode(message)).catch((err: unknown) => {
      this.logger.warn({ err, kind: message.kind }, "could not send an event to the cluster");
    });
  }
}

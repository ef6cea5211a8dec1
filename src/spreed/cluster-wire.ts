/**
 * The messages Spreed nodes exchange on the bus (bus.ts), and their checked decoding: every
 * field is typed and bounded here, so cluster-rooms.ts only ever sees well-formed values and
 * a malformed message is one BadBusMessage (logged and dropped by the caller).
 */
import type { Doc } from "./documents.js";
import { MAX_ROOM_NAME, MAX_STATUS_BYTES } from "./documents.js";
import { IMAGE_TYPES, MAX_IMAGE } from "./pictures.js";

/** A session as other nodes mirror it (the room with its PIN as the sender knows it). */
export interface WireSession {
  readonly id: string;
  readonly sid: string;
  readonly u: string;
  readonly ua: string;
  readonly st: Doc | null;
  readonly rev: number;
  readonly r?: WireRoom;
}

export interface WireRoom {
  readonly k: string;
  readonly name: string;
  readonly type: string;
  readonly pin?: string;
}

/** Why a session's state was sent: what its room mates elsewhere are told. */
export type SessionEvent = "connect" | "join" | "leave" | "auth" | "status";

export type BusMessage =
  /** Start-up: "send me your sessions" (to all, with a reply inbox). */
  | { readonly t: "hello"; readonly n: string }
  | { readonly t: "hb"; readonly n: string }
  /** The node is stopping: its sessions are gone now. */
  | { readonly t: "bye"; readonly n: string }
  /** "Send me your sessions" (to one node, with a reply inbox). */
  | { readonly t: "snapreq"; readonly n: string }
  /** Part of a snapshot; the last part has `end`. */
  | { readonly t: "snap"; readonly n: string; readonly s: readonly WireSession[]; readonly end: boolean }
  /** A session's state, and why it was sent; `conf` lists a Conference room's members after a join. */
  | {
      readonly t: "s";
      readonly n: string;
      readonly ev: SessionEvent;
      readonly s: WireSession;
      readonly conf?: readonly string[];
    }
  /** A session ended. */
  | { readonly t: "x"; readonly n: string; readonly id: string }
  /** A room's PIN was set or lifted by session `from`. */
  | { readonly t: "room"; readonly n: string; readonly from: string; readonly room: WireRoom }
  /** A document from session `from` in room `rk` to sessions `to` of the receiver (all its members of `rk` when absent). */
  | {
      readonly t: "d";
      readonly n: string;
      readonly from: string;
      readonly rk: string;
      readonly to?: readonly string[];
      readonly d: Doc;
    }
  /** "Issue a nonce for your session `id` and user `u`" (with a reply inbox). */
  | { readonly t: "nonce"; readonly n: string; readonly id: string; readonly u: string }
  | { readonly t: "nonced"; readonly n: string; readonly nonce?: string }
  /** "Send me your buddy picture `id`" (with a reply inbox); answered with `image`. */
  | { readonly t: "img"; readonly n: string; readonly id: string }
  | {
      readonly t: "image";
      readonly n: string;
      readonly image?: { readonly contentType: string; readonly data: Buffer };
    };

export class BadBusMessage extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BadBusMessage";
  }
}

const MAX_ID = 64;
const MAX_SHORT = 256;
const MAX_PIN = 128;
const MAX_ROOM_TYPE = 32;
const MAX_ROOM_KEY = MAX_ROOM_TYPE + 1 + MAX_ROOM_NAME;
/** Sessions per snapshot part (parts also stay under the bus's size limit). */
export const MAX_SNAPSHOT_PART = 1000;
/** Session ids listed in one message (recipients of a `d`, a Conference room's members). */
const MAX_RECIPIENTS = 10_000;
const DOC_TYPES = new Set(["Offer", "Answer", "Candidate", "Bye", "Chat", "Conference"]);

function isObject(v: unknown): v is Doc {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function str(v: unknown, field: string, max: number, min = 0): string {
  if (typeof v !== "string" || v.length > max || v.length < min) throw new BadBusMessage(`bad ${field}`);
  return v;
}

function optionalStr(v: unknown, field: string, max: number): string | undefined {
  return v === undefined ? undefined : str(v, field, max);
}

function ids(v: unknown, field: string, max: number): string[] {
  if (!Array.isArray(v) || v.length > max) throw new BadBusMessage(`bad ${field}`);
  return v.map((x) => str(x, field, MAX_ID, 1));
}

function room(v: unknown): WireRoom {
  if (!isObject(v)) throw new BadBusMessage("bad room");
  const pin = optionalStr(v.pin, "room.pin", MAX_PIN);
  const r = {
    k: str(v.k, "room.k", MAX_ROOM_KEY, 1),
    name: str(v.name, "room.name", MAX_ROOM_NAME),
    type: str(v.type, "room.type", MAX_ROOM_TYPE, 1),
  };
  if (r.k !== `${r.type}:${r.name}`) throw new BadBusMessage("room key does not match its type and name");
  return pin === undefined || pin === "" ? r : { ...r, pin };
}

function session(v: unknown): WireSession {
  if (!isObject(v)) throw new BadBusMessage("bad session");
  const st = v.st;
  if (st !== null && (!isObject(st) || JSON.stringify(st).length > MAX_STATUS_BYTES)) {
    throw new BadBusMessage("bad session status");
  }
  const rev = v.rev;
  if (typeof rev !== "number" || !Number.isSafeInteger(rev) || rev < 0) throw new BadBusMessage("bad session rev");
  const s = {
    id: str(v.id, "session id", MAX_ID, 1),
    sid: str(v.sid, "session sid", MAX_ID, 1),
    u: str(v.u, "session userid", MAX_SHORT),
    ua: str(v.ua, "session ua", MAX_SHORT),
    st: st as Doc | null,
    rev,
  };
  return v.r === undefined ? s : { ...s, r: room(v.r) };
}

/** A bus message, checked; throws BadBusMessage. `self` is this node (its own messages are refused). */
export function decodeBusMessage(body: unknown, self: string): BusMessage {
  if (!isObject(body)) throw new BadBusMessage("not an object");
  const n = str(body.n, "node id", MAX_ID, 1);
  if (n === self) throw new BadBusMessage("a message from this node's own id");
  switch (body.t) {
    case "hello":
    case "hb":
    case "bye":
    case "snapreq":
      return { t: body.t, n };
    case "snap": {
      if (!Array.isArray(body.s) || body.s.length > MAX_SNAPSHOT_PART) throw new BadBusMessage("bad snapshot");
      return { t: "snap", n, s: body.s.map(session), end: body.end === true };
    }
    case "s": {
      const ev = body.ev;
      if (ev !== "connect" && ev !== "join" && ev !== "leave" && ev !== "auth" && ev !== "status") {
        throw new BadBusMessage("bad session event");
      }
      const s = session(body.s);
      return body.conf === undefined
        ? { t: "s", n, ev, s }
        : { t: "s", n, ev, s, conf: ids(body.conf, "conf", MAX_RECIPIENTS) };
    }
    case "x":
      return { t: "x", n, id: str(body.id, "session id", MAX_ID, 1) };
    case "room":
      return { t: "room", n, from: str(body.from, "from", MAX_ID, 1), room: room(body.room) };
    case "d": {
      const d = body.d;
      if (!isObject(d) || typeof d.Type !== "string" || !DOC_TYPES.has(d.Type)) throw new BadBusMessage("bad document");
      const m = {
        t: "d" as const,
        n,
        from: str(body.from, "from", MAX_ID, 1),
        rk: str(body.rk, "rk", MAX_ROOM_KEY, 1),
        d,
      };
      return body.to === undefined ? m : { ...m, to: ids(body.to, "to", MAX_RECIPIENTS) };
    }
    case "nonce":
      return { t: "nonce", n, id: str(body.id, "session id", MAX_ID, 1), u: str(body.u, "userid", MAX_SHORT, 1) };
    case "nonced":
      return { t: "nonced", n, ...(body.nonce === undefined ? {} : { nonce: str(body.nonce, "nonce", MAX_SHORT, 1) }) };
    case "img":
      return { t: "img", n, id: str(body.id, "image id", MAX_SHORT, 1) };
    case "image": {
      if (body.ct === undefined) return { t: "image", n };
      const contentType = str(body.ct, "image type", 32);
      const b64 = str(body.b64, "image data", Math.ceil(MAX_IMAGE / 3) * 4, 1);
      if (!IMAGE_TYPES.includes(contentType) || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) {
        throw new BadBusMessage("bad image");
      }
      return { t: "image", n, image: { contentType, data: Buffer.from(b64, "base64") } };
    }
    default:
      throw new BadBusMessage(`unknown type ${JSON.stringify(body.t)?.slice(0, 32)}`);
  }
}

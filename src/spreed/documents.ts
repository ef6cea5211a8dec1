/**
 * The Spreed channeling documents a client may send, decoded into typed values before the
 * hub touches them. Clients wrap each document by type (`{"Type": "X", "X": {...}}`); the
 * upstream web client wraps some twice (`{"Type":"Status","Status":{"Type":"Status","Status":{...}}}`),
 * old ones once, and both are read. Nothing a client sends is relayed as it came: every
 * relayed value is rebuilt here with bounded depth, key count and string length, so no
 * document can grow the work of serializing or fanning it out beyond those bounds.
 */
import { parseBoundedJson } from "../sockets/bounded-json.js";

export type Doc = { [key: string]: unknown };

/** A document the hub cannot use; answered with an `Error` of this code. */
export class BadDocument extends Error {
  constructor(
    readonly code: "bad_request" | "unknown_type",
    message: string,
  ) {
    super(message);
    this.name = "BadDocument";
  }
}

/** Whole frames nest at most this deep (the deepest real document, Chat.Status, has 5). */
export const MAX_FRAME_DEPTH = 16;
export const MAX_ROOM_NAME = 128;
export const MAX_CHAT_MESSAGE = 16 * 1024;
/** A Status as relayed (after a buddy picture is replaced by its image reference). */
export const MAX_STATUS_BYTES = 8 * 1024;
const MAX_SDP = 128 * 1024;
const MAX_SHORT = 256;
const MAX_IID = 128;
const MAX_CONFERENCE_IDS = 100;
const MAX_ROOM_TYPE = 32;
const MAX_PIN = 128;

export type RelayType = "Offer" | "Answer" | "Candidate" | "Bye";

export type ClientDocument =
  | { Type: "Self" }
  | { Type: "Users" }
  | { Type: "Leave" }
  | { Type: "Room"; name: string; roomType: string; pin: string | undefined }
  | { Type: "Hello"; room: string; ua: string | undefined; roomType: string; pin: string | undefined }
  | { Type: RelayType; to: string; payload: Doc; extra: Doc }
  | { Type: "Alive"; alive: number }
  | { Type: "Authentication"; userid: string; nonce: string }
  | { Type: "Status"; status: Doc }
  | { Type: "Chat"; to: string; chat: Doc }
  | { Type: "Conference"; id: string; sessions: string[] };

export interface Frame {
  readonly iid: string;
  readonly doc: ClientDocument;
}

function isObject(v: unknown): v is Doc {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function str(v: unknown, field: string, max: number): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw new BadDocument("bad_request", `${field} must be a string`);
  if (v.length > max) throw new BadDocument("bad_request", `${field} is longer than ${max} characters`);
  return v;
}

interface ValueBounds {
  readonly depth: number;
  readonly keys: number;
  readonly string: number;
}

/**
 * A copy of a JSON value within bounds: nesting depth, keys per object (and items per
 * array), and string length. Throws BadDocument naming `field` when the value exceeds one.
 */
export function boundedValue(v: unknown, field: string, b: ValueBounds, depth = 0): unknown {
  if (v === null || typeof v === "boolean") return v;
  if (typeof v === "number") {
    if (!Number.isFinite(v)) throw new BadDocument("bad_request", `${field} must be a finite number`);
    return v;
  }
  if (typeof v === "string") {
    if (v.length > b.string) throw new BadDocument("bad_request", `${field} has a string over ${b.string} characters`);
    return v;
  }
  if (depth >= b.depth) throw new BadDocument("bad_request", `${field} nests deeper than ${b.depth} levels`);
  if (Array.isArray(v)) {
    if (v.length > b.keys) throw new BadDocument("bad_request", `${field} has more than ${b.keys} items`);
    return v.map((x) => boundedValue(x, field, b, depth + 1));
  }
  if (isObject(v)) {
    const entries = Object.entries(v);
    if (entries.length > b.keys) throw new BadDocument("bad_request", `${field} has more than ${b.keys} keys`);
    const out: Doc = {};
    for (const [k, x] of entries) {
      if (k.length > MAX_SHORT) throw new BadDocument("bad_request", `${field} has a key over ${MAX_SHORT} characters`);
      if (k === "__proto__") continue;
      out[k] = boundedValue(x, field, b, depth + 1);
    }
    return out;
  }
  throw new BadDocument("bad_request", `${field} is not a JSON value`);
}

/** An SDP or ICE payload: a flat object of primitive values (`{type, sdp}`, `{candidate, …}`). */
const FLAT_PAYLOAD: ValueBounds = { depth: 1, keys: 16, string: MAX_SDP };
/** Status documents (display name, picture reference, message): flat and small. */
const STATUS: ValueBounds = { depth: 1, keys: 32, string: 512 * 1024 };
/** Chat status (typing, seen receipts, file and location info): a few levels, small. */
const CHAT_STATUS: ValueBounds = { depth: 3, keys: 100, string: 1024 };

/** The document under its type, unwrapping the second level the upstream client adds. */
function body(frame: Doc, type: string): Doc {
  const inner = frame[type];
  if (!isObject(inner)) return {};
  const twice = inner[type];
  return inner.Type === type && isObject(twice) ? twice : inner;
}

function decodeRelay(type: RelayType, frame: Doc): ClientDocument {
  const inner = isObject(frame[type]) ? (frame[type] as Doc) : {};
  const to = str(inner.To, "To", MAX_SHORT) ?? "";
  const payload = inner[type];
  const extra: Doc = {};
  // Token and conference connections mark their offers at this level too.
  for (const k of ["_token", "_id", "_conference"]) {
    const v = str(inner[k], k, MAX_SHORT);
    if (v !== undefined) extra[k] = v;
  }
  return {
    Type: type,
    to,
    payload: isObject(payload) ? (boundedValue(payload, type, FLAT_PAYLOAD) as Doc) : {},
    extra,
  };
}

function decodeAlive(frame: Doc): ClientDocument {
  const v = frame.Alive;
  const alive = typeof v === "number" ? v : isObject(v) ? v.Alive : undefined;
  if (typeof alive !== "number" || !Number.isFinite(alive)) {
    throw new BadDocument("bad_request", "Alive must carry a number (a millisecond timestamp)");
  }
  return { Type: "Alive", alive };
}

function roomName(v: unknown, field: string): string {
  const name = str(v, field, MAX_ROOM_NAME * 4) ?? "";
  if (name.length > MAX_ROOM_NAME) {
    throw new BadDocument("bad_request", `room names are at most ${MAX_ROOM_NAME} characters`);
  }
  return name;
}

/** A room's type and PIN as `Hello` and `Room` carry them. */
function roomFields(doc: Doc, type: string): { roomType: string; pin: string | undefined } {
  const credentials = isObject(doc.Credentials) ? doc.Credentials : {};
  return {
    roomType: str(doc.Type, `${type}.Type`, MAX_ROOM_TYPE) ?? "",
    pin: str(credentials.PIN, `${type}.Credentials.PIN`, MAX_PIN),
  };
}

function decodeHello(frame: Doc): ClientDocument {
  const hello = body(frame, "Hello");
  // Current clients name the room in `Name`; old ones in `Id`.
  const name = roomName(hello.Name, "Hello.Name");
  return {
    Type: "Hello",
    room: name !== "" ? name : roomName(hello.Id, "Hello.Id"),
    ua: str(hello.Ua, "Hello.Ua", 1024)?.slice(0, MAX_SHORT),
    ...roomFields(hello, "Hello"),
  };
}

/** `Room` {Name, Type, Credentials}: the room's own type field is not the document's. */
function decodeRoom(frame: Doc): ClientDocument {
  const room = isObject(frame.Room) ? frame.Room : {};
  const fields = roomFields(room, "Room");
  // An absent Credentials changes nothing; an empty PIN lifts the protection.
  const pin = isObject(room.Credentials) ? (fields.pin ?? "") : undefined;
  return { Type: "Room", name: roomName(room.Name, "Room.Name"), roomType: fields.roomType, pin };
}

function decodeChat(frame: Doc): ClientDocument {
  const inner = isObject(frame.Chat) ? (frame.Chat as Doc) : {};
  const chat = isObject(inner.Chat) ? (inner.Chat as Doc) : {};
  const out: Doc = {};
  const message = str(chat.Message, "Chat.Message", Number.MAX_SAFE_INTEGER);
  if (message !== undefined && message.length > MAX_CHAT_MESSAGE) {
    throw new BadDocument("bad_request", "chat messages are at most 16 KiB");
  }
  if (message !== undefined) out.Message = message;
  const mid = str(chat.Mid, "Chat.Mid", MAX_SHORT);
  if (mid !== undefined) out.Mid = mid;
  if (chat.NoEcho === true) out.NoEcho = true;
  if (chat.Status !== undefined) out.Status = boundedValue(chat.Status, "Chat.Status", CHAT_STATUS);
  return { Type: "Chat", to: str(inner.To, "Chat.To", MAX_SHORT) ?? "", chat: out };
}

function decodeConference(frame: Doc): ClientDocument {
  const inner = isObject(frame.Conference) ? (frame.Conference as Doc) : {};
  const ids = Array.isArray(inner.Conference) ? inner.Conference : [];
  if (ids.length === 0 || ids.length > MAX_CONFERENCE_IDS || !ids.every((x) => typeof x === "string")) {
    throw new BadDocument("bad_request", `Conference needs 1 to ${MAX_CONFERENCE_IDS} session ids`);
  }
  return {
    Type: "Conference",
    id: str(inner.Id, "Conference.Id", MAX_SHORT) ?? "",
    sessions: (ids as string[]).map((s) => s.slice(0, MAX_SHORT)),
  };
}

/**
 * Reads one text frame into a typed document. Throws BadDocument (answered with an Error
 * document; the socket stays open) for anything else.
 */
export function decodeFrame(text: string): Frame {
  let parsed: unknown;
  try {
    parsed = parseBoundedJson(text, MAX_FRAME_DEPTH);
  } catch (e) {
    throw new BadDocument("bad_request", `invalid document: ${(e as Error).message}`);
  }
  if (!isObject(parsed)) throw new BadDocument("bad_request", "invalid document: not a JSON object");
  const iid = typeof parsed.Iid === "string" ? parsed.Iid.slice(0, MAX_IID) : "";
  const type = parsed.Type;
  if (typeof type !== "string") throw new BadDocument("bad_request", "the document has no Type");
  const doc = decodeDocument(type, parsed);
  return { iid, doc };
}

function decodeDocument(type: string, frame: Doc): ClientDocument {
  switch (type) {
    case "Self":
    case "Users":
    case "Leave":
      return { Type: type };
    case "Room":
      return decodeRoom(frame);
    case "Hello":
      return decodeHello(frame);
    case "Offer":
    case "Answer":
    case "Candidate":
    case "Bye":
      return decodeRelay(type, frame);
    case "Alive":
      return decodeAlive(frame);
    case "Authentication": {
      const auth = body(frame, "Authentication");
      return {
        Type: "Authentication",
        userid: str(auth.Userid, "Authentication.Userid", MAX_SHORT) ?? "",
        nonce: str(auth.Nonce, "Authentication.Nonce", MAX_SHORT) ?? "",
      };
    }
    case "Status":
      return { Type: "Status", status: boundedValue(body(frame, "Status"), "Status", STATUS) as Doc };
    case "Chat":
      return decodeChat(frame);
    case "Conference":
      return decodeConference(frame);
    default:
      throw new BadDocument("unknown_type", `unknown document type ${JSON.stringify(type).slice(0, 64)}`);
  }
}

/** What room mates see of a session: `Joined`, and `Online` in `Users` and `Welcome` lists. */
export function presence(
  s: { readonly id: string; readonly userid: string; readonly ua: string; readonly status: Doc | null },
  type: "Joined" | "Online",
): Doc {
  return {
    Type: type,
    Id: s.id,
    ...(s.userid === "" ? {} : { Userid: s.userid }),
    Ua: s.ua,
    Status: s.status,
    Prio: 100,
  };
}

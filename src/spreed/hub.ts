/**
 * The Spreed WebRTC channeling hub: one session per WebSocket at `/ws`, rooms joined with
 * `Hello`, peer-to-peer signaling (`Offer`/`Answer`/`Candidate`/`Bye`) relayed between
 * sessions of the same room, presence (`Joined`/`Left`/`Users`/`Status`), `Alive` echo,
 * chat, and `Authentication` with a nonce from the REST API. Client documents are decoded
 * into typed values first (documents.ts); server documents are `{From, To, Data, Iid, A}`.
 * Sessions live in memory: they end with their connection (a `?t=<Token>` reconnect
 * reclaims the same Id and Sid).
 *
 * No session can make the hub do unbounded work: documents are rate-limited per session,
 * fan-out is charged to the sender in bytes, a reader whose socket buffers more than a
 * bound is disconnected, and a failure handling one frame answers that frame only.
 */
import { createHmac, randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { type WebSocket, WebSocketServer } from "ws";
import type { ServerKey } from "../auth/server-key.js";
import type { Logger } from "../observability/log.js";
import { TokenBucket } from "../sockets/token-bucket.js";
import {
  BadDocument,
  type ClientDocument,
  type Doc,
  decodeFrame,
  MAX_STATUS_BYTES,
  type RelayType,
} from "./documents.js";
import { CONFERENCE_ROOM_TYPE, type RoomPolicy, RoomRefusal, type SpreedRoom, SpreedRooms } from "./rooms.js";

export const SPREED_VERSION = "0.29.7";
const MAX_FRAME = 512 * 1024;
const MAX_IMAGE = 256 * 1024;
const NONCE_TTL_MS = 5 * 60 * 1000;
const MAX_NONCES_PER_SESSION = 8;
const TOKEN_PURPOSE = "spreed.session";
/** The size of a `Left` document, charged per room mate when a session moves rooms. */
const LEFT_BYTES = 96;

export interface HubSettings extends RoomPolicy {
  readonly stunUris: readonly string[];
  readonly turnUris: readonly string[];
  readonly turnSecret: string | undefined;
  readonly turnTtlSeconds: number;
  /** A session whose socket holds more unsent bytes than this is disconnected. */
  readonly maxBufferedBytes: number;
  /** Documents a session may send per second (twice that in a burst). */
  readonly docsPerSecond: number;
  /** Bytes of fan-out (document size × recipients) a session may cause per second. */
  readonly fanoutBytesPerSecond: number;
  /** Bytes of documents one session may send per second (bursts of twice that). */
  readonly inboundBytesPerSecond: number;
}

export interface Session {
  readonly id: string;
  readonly sid: string;
  readonly token: string;
  readonly connectedAt: number;
  room: SpreedRoom<Session> | undefined;
  userid: string;
  ua: string;
  status: Doc | null;
  rev: number;
  /** The session's current buddy picture (one per session; a new one replaces it). */
  imageId: string | undefined;
  readonly socket: WebSocket;
  /** Documents the session may send (one token each). */
  readonly inbound: TokenBucket;
  /** Bytes of documents the session may send: parsing costs by the byte, not by the document. */
  readonly inboundBytes: TokenBucket;
  readonly fanout: TokenBucket;
}

interface Image {
  readonly id: string;
  readonly contentType: string;
  readonly data: Buffer;
}

/** Magic numbers of the picture types accepted, so a declared type is the real one. */
const IMAGE_MAGIC: Record<string, (b: Buffer) => boolean> = {
  "image/png": (b) => b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])),
  "image/jpeg": (b) => b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff,
  "image/gif": (b) => /^GIF8[79]a/.test(b.subarray(0, 6).toString("latin1")),
  "image/webp": (b) =>
    b.subarray(0, 4).toString("latin1") === "RIFF" && b.subarray(8, 12).toString("latin1") === "WEBP",
};

function randomId(bytes = 18): string {
  return randomBytes(bytes).toString("base64url");
}

export class SpreedHub {
  private readonly wss: WebSocketServer;
  private readonly sessions = new Map<string, Session>();
  private readonly rooms: SpreedRooms<Session>;
  /** Per session: nonce → the user it may authenticate as. Dropped with the session. */
  private readonly nonces = new Map<string, Map<string, { userid: string; expires: number }>>();
  private readonly images = new Map<string, Image>();
  relayed = 0;
  /** Called once per new session (the realm's app counts signaling usage). */
  onSession: (() => void) | undefined;

  constructor(
    private readonly serverKey: ServerKey,
    private readonly settings: HubSettings,
    private readonly log: Logger,
  ) {
    this.wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME });
    this.rooms = new SpreedRooms(settings);
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.wss.handleUpgrade(req, socket, head, (ws) => this.connect(ws, req));
  }

  /** The live session with this id and secret id, if any. */
  session(id: string, sid: string): Session | undefined {
    const s = this.sessions.get(id);
    return s !== undefined && s.sid === sid ? s : undefined;
  }

  hasSession(id: string): boolean {
    return this.sessions.has(id);
  }

  /** A nonce that lets session `id` authenticate as `userid` over the socket. */
  issueNonce(id: string, userid: string): string {
    const nonce = randomId(24);
    const now = Date.now();
    const own = this.nonces.get(id) ?? new Map<string, { userid: string; expires: number }>();
    for (const [n, e] of own) if (e.expires < now) own.delete(n);
    // Keep the newest few: a client asking again and again cannot grow the map.
    while (own.size >= MAX_NONCES_PER_SESSION) own.delete(own.keys().next().value as string);
    own.set(nonce, { userid, expires: now + NONCE_TTL_MS });
    this.nonces.set(id, own);
    return nonce;
  }

  image(imageId: string): Image | undefined {
    return this.images.get(imageId);
  }

  stats() {
    return {
      rooms: this.rooms.size,
      connections: this.wss.clients.size,
      sessions: this.sessions.size,
      users: new Set([...this.sessions.values()].map((s) => s.userid).filter((u) => u !== "")).size,
      relayed: this.relayed,
      details: [...this.sessions.values()].map((s) => ({
        id: s.id,
        room: s.room?.name ?? "",
        userid: s.userid,
        ua: s.ua,
        connected: s.connectedAt,
      })),
    };
  }

  private connect(ws: WebSocket, req: IncomingMessage): void {
    const url = new URL(req.url ?? "/ws", "http://hub.invalid");
    const reclaimed = this.reclaim(url.searchParams.get("t"));
    const id = reclaimed?.id ?? randomId();
    const sid = reclaimed?.sid ?? randomId(24);
    const previous = this.sessions.get(id);
    if (previous !== undefined) this.drop(previous, "replaced");
    const { docsPerSecond, fanoutBytesPerSecond } = this.settings;
    const session: Session = {
      id,
      sid,
      token: this.serverKey.seal(TOKEN_PURPOSE, { id, sid }),
      connectedAt: Date.now(),
      room: undefined,
      userid: "",
      ua: "",
      status: null,
      rev: 0,
      imageId: undefined,
      socket: ws,
      inbound: new TokenBucket(docsPerSecond, docsPerSecond * 2),
      // A buddy picture (up to ~350 KB as a data URL) passes; a stream of them does not.
      inboundBytes: new TokenBucket(this.settings.inboundBytesPerSecond, this.settings.inboundBytesPerSecond * 2),
      fanout: new TokenBucket(fanoutBytesPerSecond, fanoutBytesPerSecond * 2),
    };
    this.sessions.set(id, session);
    this.onSession?.();
    this.log.info({ session: id, reclaimed: reclaimed !== undefined }, "spreed session connected");
    ws.on("message", (raw: Buffer, isBinary) => {
      // Charged before anything reads the frame: a refused frame costs no parsing.
      if (!session.inbound.take() || !session.inboundBytes.take(raw.length)) {
        this.error(session, "rate_limited", "too much sent; slow down");
        return;
      }
      this.receive(session, isBinary ? null : raw.toString());
    });
    ws.on("close", () => this.drop(session, "closed"));
    ws.on("error", (err) => this.log.debug({ err, session: id }, "spreed socket error"));
    this.sendSelf(session, "");
  }

  private reclaim(token: string | null): { id: string; sid: string } | undefined {
    if (token === null || token === "") return undefined;
    const payload = this.serverKey.unseal(TOKEN_PURPOSE, token) as { id?: unknown; sid?: unknown } | undefined;
    if (typeof payload?.id !== "string" || typeof payload.sid !== "string") return undefined;
    return { id: payload.id, sid: payload.sid };
  }

  private drop(session: Session, why: string): void {
    if (this.sessions.get(session.id) !== session) return;
    this.sessions.delete(session.id);
    this.leaveRoom(session);
    if (session.imageId !== undefined) this.images.delete(session.imageId);
    this.nonces.delete(session.id);
    if (why === "replaced") session.socket.close(4000, "replaced");
    else if (why === "slow reader") session.socket.terminate();
    this.log.info({ session: session.id, why }, "spreed session ended");
  }

  /**
   * Sends one document, serialized once by the caller (`data` is its JSON). A reader whose
   * socket already holds more than the bound is disconnected rather than buffered for.
   */
  private send(to: Session, data: string, from = "", iid = ""): void {
    const ws = to.socket;
    if (ws.readyState !== ws.OPEN) return;
    if (ws.bufferedAmount > this.settings.maxBufferedBytes) {
      this.log.warn({ session: to.id, buffered: ws.bufferedAmount }, "spreed reader too slow; disconnected");
      this.drop(to, "slow reader");
      return;
    }
    ws.send(
      `{"From":${JSON.stringify(from)},"To":${JSON.stringify(to.id)},"Data":${data},"Iid":${JSON.stringify(iid)},"A":""}`,
    );
  }

  private sendDoc(to: Session, doc: Doc, iid = ""): void {
    this.send(to, JSON.stringify(doc), "", iid);
  }

  private error(to: Session, code: string, message: string, iid = ""): void {
    this.sendDoc(to, { Type: "Error", Code: code, Message: message }, iid);
  }

  /**
   * Sends `doc` from `from` to every target, charging the sender's fan-out budget; answers
   * the sender with `rate_limited` instead when the budget does not cover it.
   */
  private fanOut(from: Session, targets: readonly Session[], doc: Doc, iid: string, selfIid = ""): boolean {
    if (targets.length === 0) return true;
    const data = JSON.stringify(doc);
    if (!from.fanout.take(data.length * targets.length)) {
      this.error(from, "rate_limited", "too much sent to this room; slow down", iid);
      return false;
    }
    for (const t of targets) this.send(t, data, from.id, t === from ? selfIid : "");
    return true;
  }

  /** Time-limited TURN REST API credentials (coturn `use-auth-secret`). */
  private turn(session: Session): Doc {
    const { turnSecret, turnUris, turnTtlSeconds } = this.settings;
    if (turnSecret === undefined || turnUris.length === 0) return { username: "", password: "", ttl: 0, urls: [] };
    const username = `${Math.floor(Date.now() / 1000) + turnTtlSeconds}:${session.id}`;
    const password = createHmac("sha1", turnSecret).update(username).digest("base64");
    return { username, password, ttl: turnTtlSeconds, urls: [...turnUris] };
  }

  private sendSelf(session: Session, iid: string): void {
    this.sendDoc(
      session,
      {
        Type: "Self",
        Id: session.id,
        Sid: session.sid,
        Userid: session.userid,
        Suserid: session.userid,
        Token: session.token,
        Version: SPREED_VERSION,
        Turn: this.turn(session),
        Stun: [...this.settings.stunUris],
      },
      iid,
    );
  }

  private roomMates(session: Session, includeSelf = false): Session[] {
    if (session.room === undefined) return [];
    const all = [...session.room.members];
    return includeSelf ? all : all.filter((s) => s !== session);
  }

  private presence(s: Session, type: "Joined" | "Online"): Doc {
    return {
      Type: type,
      Id: s.id,
      ...(s.userid === "" ? {} : { Userid: s.userid }),
      Ua: s.ua,
      Status: s.status,
      Prio: 100,
    };
  }

  /** Tells the room the session left (charged by hello; a disconnect is never refused). */
  private leaveRoom(session: Session): void {
    if (session.room === undefined) return;
    const data = JSON.stringify({ Type: "Left", Id: session.id, Status: "hard" });
    for (const other of this.roomMates(session)) this.send(other, data, session.id);
    this.rooms.leave(session.room, session);
    session.room = undefined;
  }

  /** One frame: decoded and handled; any failure is answered on this socket only. */
  private receive(session: Session, text: string | null): void {
    let iid = "";
    try {
      if (text === null)
        throw new BadDocument("bad_request", "invalid document: binary frames are not part of the protocol");
      const frame = decodeFrame(text);
      iid = frame.iid;
      this.handle(session, frame.doc, iid);
    } catch (e) {
      if (e instanceof BadDocument || e instanceof RoomRefusal) {
        this.error(session, e.code, e.message, iid);
        return;
      }
      this.log.error({ err: e, session: session.id }, "spreed document failed");
      this.error(session, "internal_error", "the document could not be handled", iid);
    }
  }

  private handle(session: Session, doc: ClientDocument, iid: string): void {
    switch (doc.Type) {
      case "Self":
        this.sendSelf(session, iid);
        break;
      case "Hello":
        this.hello(session, doc, iid);
        break;
      case "Room":
        this.updateRoom(session, doc, iid);
        break;
      case "Leave":
        this.leave(session, iid);
        break;
      case "Offer":
      case "Answer":
      case "Candidate":
      case "Bye":
        this.relay(session, doc.Type, doc.to, doc.payload, doc.extra, iid);
        break;
      case "Users":
        this.users(session, iid);
        break;
      case "Alive":
        this.sendDoc(session, { Type: "Alive", Alive: doc.alive }, iid);
        break;
      case "Authentication":
        this.authenticate(session, doc.userid, doc.nonce, iid);
        break;
      case "Status":
        this.status(session, doc.status, iid);
        break;
      case "Chat":
        this.chat(session, doc.to, doc.chat, iid);
        break;
      case "Conference":
        this.conference(session, doc.id, doc.sessions, iid);
        break;
    }
  }

  /**
   * Moves the session into the room `Hello` names (`Name`, or `Id` from old clients, of
   * `Type`), if the room admits it (policy, PIN, size). The whole move — `Left` to the old
   * room, `Joined` to the new one, the `Welcome` listing its users, a `Conference` room's
   * member list — is charged to the session's fan-out budget first, so switching rooms over
   * and over is limited like any other fan-out.
   */
  private hello(session: Session, hello: Extract<ClientDocument, { Type: "Hello" }>, iid: string): void {
    if (hello.ua !== undefined) session.ua = hello.ua;
    const current = session.room;
    const moving = current?.key !== SpreedRooms.key(hello.room, hello.roomType);
    const room =
      moving || current === undefined
        ? this.rooms.admit(hello.room, hello.roomType, hello.pin, session.userid !== "")
        : current;
    const members = [...room.members].filter((s) => s !== session);
    const joined = JSON.stringify(this.presence(session, "Joined"));
    const welcome = JSON.stringify({
      Type: "Welcome",
      Room: { Type: room.type, Name: room.name },
      Users: [...members, session].map((s) => this.presence(s, "Online")),
    });
    const everyone = [...members, session];
    const conference =
      moving && room.type === CONFERENCE_ROOM_TYPE && members.length > 0
        ? JSON.stringify({ Type: "Conference", Id: room.key, Conference: everyone.map((s) => s.id) })
        : undefined;
    const left = moving ? LEFT_BYTES * this.roomMates(session).length : 0;
    const cost =
      welcome.length +
      left +
      (moving ? joined.length * members.length : 0) +
      (conference === undefined ? 0 : conference.length * everyone.length);
    if (!session.fanout.take(cost)) {
      this.error(session, "rate_limited", "too much sent to rooms; slow down", iid);
      return;
    }
    if (moving) {
      this.leaveRoom(session);
      this.rooms.enter(room, session);
      session.room = room;
      for (const m of members) this.send(m, joined, session.id);
    }
    this.send(session, welcome, "", iid);
    // Upstream tells a Conference room's members each other's ids after every join.
    if (conference !== undefined) for (const m of everyone) this.send(m, conference);
  }

  /**
   * A member's `Room` document sets or lifts its room's PIN; the room (with its PIN, which
   * members may share) is echoed to the sender and its room mates.
   */
  private updateRoom(session: Session, doc: Extract<ClientDocument, { Type: "Room" }>, iid: string): void {
    const room = this.rooms.own(session.room, doc.name, doc.roomType);
    const pin = doc.pin === undefined ? room.pin : doc.pin || undefined;
    const reply: Doc = {
      Type: room.type,
      Name: room.name,
      ...(pin === undefined ? {} : { Credentials: { PIN: pin } }),
    };
    if (!this.fanOut(session, this.roomMates(session), reply, iid)) return;
    room.pin = pin;
    this.log.info({ session: session.id, protected: pin !== undefined }, "spreed room credentials changed");
    this.sendDoc(session, reply, iid);
  }

  /** `Leave`: out of the current room (its mates get `Left`), charged like a fan-out. */
  private leave(session: Session, iid: string): void {
    if (session.room === undefined) return;
    if (!session.fanout.take(LEFT_BYTES * this.roomMates(session).length)) {
      this.error(session, "rate_limited", "too much sent to rooms; slow down", iid);
      return;
    }
    this.leaveRoom(session);
  }

  /** The room's sessions, charged to the asker's budget like a fan-out (the answer grows with the room). */
  private users(session: Session, iid: string): void {
    const users = JSON.stringify({
      Type: "Users",
      Users: this.roomMates(session, true).map((s) => this.presence(s, "Online")),
    });
    if (!session.fanout.take(users.length)) {
      this.error(session, "rate_limited", "too many Users requests; slow down", iid);
      return;
    }
    this.send(session, users, "", iid);
  }

  /** Offer/Answer/Candidate/Bye go to the session named in `To`, in the same room. */
  private relay(session: Session, type: RelayType, to: string, payload: Doc, extra: Doc, iid: string): void {
    const target = this.sessions.get(to);
    if (target === undefined || session.room === undefined || target.room !== session.room) {
      this.error(session, "unknown_session", `no session ${JSON.stringify(to)} in this room`, iid);
      return;
    }
    if (this.fanOut(session, [target], { ...extra, To: to, Type: type, [type]: payload }, iid)) this.relayed++;
  }

  private authenticate(session: Session, userid: string, nonce: string, iid: string): void {
    const own = this.nonces.get(session.id);
    const entry = own?.get(nonce);
    if (entry === undefined || entry.userid !== userid || entry.expires < Date.now()) {
      this.error(session, "authentication_failed", "the nonce is not valid for this session and user", iid);
      return;
    }
    own?.delete(nonce);
    session.userid = userid;
    this.log.info({ session: session.id, userid }, "spreed session authenticated");
    this.sendSelf(session, iid);
    this.fanOut(session, this.roomMates(session), this.presence(session, "Joined"), iid);
  }

  /** A buddy picture sent as a data URL: checked, then its reference (the image is kept by status()). */
  private picture(dataUrl: string): { reference: string; image: Image } {
    const m = /^data:(image\/(?:png|jpeg|gif|webp));base64,([A-Za-z0-9+/=]+)$/.exec(dataUrl);
    const type = m?.[1];
    const data = m?.[2] === undefined ? undefined : Buffer.from(m[2], "base64");
    if (type === undefined || data === undefined || data.length === 0 || data.length > MAX_IMAGE) {
      throw new BadDocument(
        "bad_request",
        "buddyPicture must be a base64 PNG, JPEG, GIF or WebP data URL up to 256 KiB",
      );
    }
    if (!IMAGE_MAGIC[type]?.(data)) {
      throw new BadDocument("bad_request", `buddyPicture's bytes are not ${type}`);
    }
    const imageId = randomId(15);
    return {
      reference: `img:${imageId}/picture.${type === "image/jpeg" ? "jpg" : type.slice("image/".length)}`,
      image: { id: imageId, contentType: type, data },
    };
  }

  private status(session: Session, status: Doc, iid: string): void {
    const copy: Doc = { ...status };
    let picture: Image | undefined;
    if (typeof copy.buddyPicture === "string" && copy.buddyPicture.startsWith("data:")) {
      const checked = this.picture(copy.buddyPicture);
      copy.buddyPicture = checked.reference;
      picture = checked.image;
    }
    if (JSON.stringify(copy).length > MAX_STATUS_BYTES) {
      throw new BadDocument("bad_request", `a Status is at most ${MAX_STATUS_BYTES} bytes (pictures aside)`);
    }
    // Only an accepted Status replaces the session's picture.
    if (picture !== undefined) {
      if (session.imageId !== undefined) this.images.delete(session.imageId);
      session.imageId = picture.id;
      this.images.set(picture.id, picture);
    }
    session.status = copy;
    session.rev++;
    this.fanOut(session, this.roomMates(session, true), { Type: "Status", Status: copy, Rev: session.rev }, iid, iid);
  }

  private chat(session: Session, to: string, chat: Doc, iid: string): void {
    if (session.room === undefined) {
      this.error(session, "bad_request", "send Hello to join a room first", iid);
      return;
    }
    let targets: Session[];
    if (to !== "") {
      const target = this.sessions.get(to);
      if (target === undefined || target.room !== session.room) {
        // Not delivered, so no "sent" receipt either.
        this.error(session, "unknown_session", `no session ${JSON.stringify(to)} in this room`, iid);
        return;
      }
      targets = [target];
    } else {
      targets = this.roomMates(session, chat.NoEcho !== true);
    }
    const sent = this.fanOut(
      session,
      targets,
      { Type: "Chat", Chat: { ...chat, Time: new Date().toISOString() } },
      iid,
    );
    if (sent && typeof chat.Mid === "string" && chat.Mid !== "") {
      this.sendDoc(session, { Type: "Chat", Chat: { Mid: chat.Mid, Status: { State: "sent" } } }, iid);
    }
  }

  private conference(session: Session, id: string, ids: string[], iid: string): void {
    if (session.room === undefined) {
      this.error(session, "bad_request", "send Hello to join a room first", iid);
      return;
    }
    const targets = ids
      .map((x) => this.sessions.get(x))
      .filter((s): s is Session => s !== undefined && s !== session && s.room === session.room);
    this.fanOut(session, [...new Set(targets)], { Type: "Conference", Id: id, Conference: ids }, iid);
  }

  close(): Promise<void> {
    for (const s of this.sessions.values()) s.socket.terminate();
    this.sessions.clear();
    this.rooms.clear();
    return new Promise((resolve) => this.wss.close(() => resolve()));
  }
}

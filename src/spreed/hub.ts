/**
 * The Spreed WebRTC channeling hub: one session per WebSocket at `/ws`, rooms joined with
 * `Hello`, peer-to-peer signaling (`Offer`/`Answer`/`Candidate`/`Bye`) relayed between
 * sessions of the same room, presence (`Joined`/`Left`/`Users`/`Status`), `Alive` echo,
 * chat, and `Authentication` with a nonce from the REST API. Client documents are decoded
 * into typed values first (documents.ts); server documents are `{From, To, Data, Iid, A}`.
 * Sessions live in memory: they end with their connection (a `?t=<Token>` reconnect
 * reclaims the same Id and Sid). With a bus attached (attachBus), the sessions of other
 * nodes are mirrored (cluster-rooms.ts): they are listed, admitted against, and reached
 * like local ones.
 *
 * No session can make the hub do unbounded work: documents are rate-limited per session,
 * fan-out is charged to the sender in bytes, a reader whose socket buffers more than a
 * bound is disconnected, and a failure handling one frame answers that frame only.
 */
import { randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { type WebSocket, WebSocketServer } from "ws";
import type { ServerKey } from "../auth/server-key.js";
import { TurnCredentials } from "../auth/turn-credentials.js";
import type { Logger } from "../observability/log.js";
import { TokenBucket } from "../sockets/token-bucket.js";
import type { SpreedBus } from "./bus.js";
import { type ClusterOptions, ClusterRooms, type LocalSide, type RemoteSession } from "./cluster-rooms.js";
import type { WireSession } from "./cluster-wire.js";
import {
  BadDocument,
  type ClientDocument,
  type Doc,
  decodeFrame,
  MAX_STATUS_BYTES,
  presence,
  type RelayType,
} from "./documents.js";
import { Nonces } from "./nonces.js";
import { checkPicture, type Image } from "./pictures.js";
import { CONFERENCE_ROOM_TYPE, type RoomPolicy, RoomRefusal, type SpreedRoom, SpreedRooms } from "./rooms.js";

export const SPREED_VERSION = "0.29.7";
const MAX_FRAME = 512 * 1024;
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

/** A room mate: a session here, or one on another node. */
type Mate = Session | RemoteSession;

function isLocal(m: Mate): m is Session {
  return "socket" in m;
}

function randomId(bytes = 18): string {
  return randomBytes(bytes).toString("base64url");
}

export class SpreedHub {
  private readonly wss: WebSocketServer;
  private readonly sessions = new Map<string, Session>();
  private readonly rooms: SpreedRooms<Session>;
  private readonly nonces = new Nonces();
  private readonly images = new Map<string, Image>();
  private cluster: ClusterRooms | undefined;
  private readonly turnCredentials: TurnCredentials;
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
    this.turnCredentials = new TurnCredentials({
      uris: settings.turnUris,
      secret: settings.turnSecret,
      ttlSeconds: settings.turnTtlSeconds,
    });
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

  /** Whether a session with this id and secret id is live here or on another node. */
  liveSession(id: string, sid: string): boolean {
    return this.session(id, sid) !== undefined || this.cluster?.session(id)?.sid === sid;
  }

  /** A nonce for session `id` (here or on another node); undefined when the session is gone. */
  async nonceFor(id: string, userid: string): Promise<string | undefined> {
    if (this.sessions.has(id)) return this.issueNonce(id, userid);
    const remote = this.cluster?.session(id);
    return remote === undefined ? undefined : this.cluster?.issueNonce(remote, userid);
  }

  /**
   * Joins the cluster on `bus` (bus.ts): sessions in one room on different nodes see and
   * reach each other. Resolves once the other nodes' sessions are known; the hub closes the bus.
   */
  async attachBus(bus: SpreedBus, options: Partial<ClusterOptions> = {}): Promise<void> {
    if (this.cluster !== undefined) throw new Error("a bus is attached already");
    this.cluster = new ClusterRooms(bus, this.settings, this.localSide(), this.log, options);
    await this.cluster.start();
  }

  /** What the cluster sees of, and does to, this node's sessions. */
  private localSide(): LocalSide {
    return {
      sessions: () => [...this.sessions.values()].map((s) => this.wire(s)),
      isLocal: (id) => this.sessions.has(id),
      room: (key) => this.rooms.get(key),
      deliver: (key, data, from, to) => {
        const room = this.rooms.get(key);
        if (room === undefined) return;
        const targets = to === undefined ? room.members : to.map((id) => this.sessions.get(id));
        for (const t of targets) if (t?.room === room) this.send(t, data, from);
      },
      setPin: (key, pin) => {
        const room = this.rooms.get(key);
        if (room !== undefined) room.pin = pin;
      },
      replaced: (id) => {
        const s = this.sessions.get(id);
        if (s !== undefined) this.drop(s, "moved");
      },
      issueNonce: (id, userid) => (this.sessions.has(id) ? this.issueNonce(id, userid) : undefined),
      image: (id) => this.images.get(id),
    };
  }

  /** A session as other nodes mirror it. */
  private wire(s: Session): WireSession {
    const r = s.room;
    const w = { id: s.id, sid: s.sid, u: s.userid, ua: s.ua, st: s.status, rev: s.rev };
    if (r === undefined) return w;
    return { ...w, r: { k: r.key, name: r.name, type: r.type, ...(r.pin === undefined ? {} : { pin: r.pin }) } };
  }

  /** A nonce that lets session `id` (of this node) authenticate as `userid` over the socket. */
  issueNonce(id: string, userid: string): string {
    return this.nonces.issue(id, userid);
  }

  image(imageId: string): Image | undefined {
    return this.images.get(imageId);
  }

  /** A buddy picture kept here or, in a cluster, on the node its id names. */
  async fetchImage(imageId: string): Promise<Image | undefined> {
    return this.images.get(imageId) ?? this.cluster?.fetchImage(imageId);
  }

  stats() {
    return {
      rooms: this.rooms.size,
      connections: this.wss.clients.size,
      sessions: this.sessions.size,
      users: new Set([...this.sessions.values()].map((s) => s.userid).filter((u) => u !== "")).size,
      relayed: this.relayed,
      /** With a bus: the other nodes and their sessions as this node sees them. */
      cluster: this.cluster?.stats(),
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
    this.cluster?.announce("connect", this.wire(session));
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
    this.leaveRoom(session, false);
    // A session reclaimed on another node ("moved") is that node's to announce now.
    if (why !== "moved") this.cluster?.ended(session.id);
    if (session.imageId !== undefined) this.images.delete(session.imageId);
    this.nonces.forget(session.id);
    if (why === "replaced" || why === "moved") session.socket.close(4000, "replaced");
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
   * Sends `doc` from `from` to every target, here and (when `relay`) on other nodes, charging
   * the sender's fan-out budget for all of them; answers the sender with `rate_limited`
   * instead when the budget does not cover it. Without `relay`, other nodes are told by an
   * announcement and `remote` only counts into the charge.
   */
  private fanOut(from: Session, targets: readonly Mate[], doc: Doc, iid: string, selfIid = "", relay = true): boolean {
    if (targets.length === 0) return true;
    const data = JSON.stringify(doc);
    if (!from.fanout.take(data.length * targets.length)) {
      this.error(from, "rate_limited", "too much sent to this room; slow down", iid);
      return false;
    }
    const remote: RemoteSession[] = [];
    for (const t of targets) {
      if (isLocal(t)) this.send(t, data, from.id, t === from ? selfIid : "");
      else remote.push(t);
    }
    if (relay && remote.length > 0 && from.room !== undefined) this.cluster?.send(from.id, from.room.key, doc, remote);
    return true;
  }

  /** Time-limited TURN REST API credentials (coturn `use-auth-secret`). */
  private turn(session: Session): Doc {
    const turn = this.turnCredentials.issue(session.id);
    if (turn === undefined) return { username: "", password: "", ttl: 0, urls: [] };
    return { username: turn.username, password: turn.credential, ttl: turn.ttlSeconds, urls: turn.urls };
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

  /** The session's room mates on other nodes. */
  private remoteMates(session: Session): RemoteSession[] {
    return this.cluster?.members(session.room?.key) ?? [];
  }

  /** The session `id` if it is in `session`'s room, here or on another node. */
  private mate(session: Session, id: string): Mate | undefined {
    const room = session.room;
    if (room === undefined) return undefined;
    const local = this.sessions.get(id);
    if (local !== undefined) return local.room === room ? local : undefined;
    const remote = this.cluster?.session(id);
    return remote !== undefined && remote.room?.key === room.key ? remote : undefined;
  }

  /**
   * Tells the room the session left (charged by hello; a disconnect is never refused), and
   * other nodes unless `announce` is false (a join or the session's end tells them instead).
   */
  private leaveRoom(session: Session, announce = true): void {
    if (session.room === undefined) return;
    const data = JSON.stringify({ Type: "Left", Id: session.id, Status: "hard" });
    for (const other of this.roomMates(session)) this.send(other, data, session.id);
    this.rooms.leave(session.room, session);
    session.room = undefined;
    if (announce) this.cluster?.announce("leave", this.wire(session));
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
    const key = SpreedRooms.key(hello.room, hello.roomType);
    const moving = current?.key !== key;
    const room =
      moving || current === undefined
        ? this.rooms.admit(hello.room, hello.roomType, hello.pin, session.userid !== "", this.cluster?.outside(key))
        : current;
    const members = [...room.members].filter((s) => s !== session);
    const remote = this.cluster?.members(room.key) ?? [];
    const joined = JSON.stringify(presence(session, "Joined"));
    const welcome = JSON.stringify({
      Type: "Welcome",
      Room: { Type: room.type, Name: room.name },
      Users: [...members, ...remote, session].map((s) => presence(s, "Online")),
    });
    const everyone = [...members, ...remote, session].map((s) => s.id);
    const conference =
      moving && room.type === CONFERENCE_ROOM_TYPE && everyone.length > 1
        ? JSON.stringify({ Type: "Conference", Id: room.key, Conference: everyone })
        : undefined;
    const left = moving ? LEFT_BYTES * (this.roomMates(session).length + this.remoteMates(session).length) : 0;
    const cost =
      welcome.length +
      left +
      (moving ? joined.length * (everyone.length - 1) : 0) +
      (conference === undefined ? 0 : conference.length * everyone.length);
    if (!session.fanout.take(cost)) {
      this.error(session, "rate_limited", "too much sent to rooms; slow down", iid);
      return;
    }
    if (moving) {
      this.leaveRoom(session, false);
      this.rooms.enter(room, session);
      session.room = room;
      for (const m of members) this.send(m, joined, session.id);
      // Other nodes tell their members (Left from the old room, Joined, the Conference list).
      this.cluster?.announce("join", this.wire(session), conference === undefined ? undefined : everyone);
    }
    this.send(session, welcome, "", iid);
    // Upstream tells a Conference room's members each other's ids after every join.
    if (conference !== undefined) for (const m of [...members, session]) this.send(m, conference);
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
    if (!this.fanOut(session, [...this.roomMates(session), ...this.remoteMates(session)], reply, iid, "", false))
      return;
    room.pin = pin;
    this.cluster?.roomChanged(session.id, {
      k: room.key,
      name: room.name,
      type: room.type,
      ...(pin === undefined ? {} : { pin }),
    });
    this.log.info({ session: session.id, protected: pin !== undefined }, "spreed room credentials changed");
    this.sendDoc(session, reply, iid);
  }

  /** `Leave`: out of the current room (its mates get `Left`), charged like a fan-out. */
  private leave(session: Session, iid: string): void {
    if (session.room === undefined) return;
    if (!session.fanout.take(LEFT_BYTES * (this.roomMates(session).length + this.remoteMates(session).length))) {
      this.error(session, "rate_limited", "too much sent to rooms; slow down", iid);
      return;
    }
    this.leaveRoom(session);
  }

  /** The room's sessions, charged to the asker's budget like a fan-out (the answer grows with the room). */
  private users(session: Session, iid: string): void {
    const users = JSON.stringify({
      Type: "Users",
      Users: [...this.roomMates(session, true), ...this.remoteMates(session)].map((s) => presence(s, "Online")),
    });
    if (!session.fanout.take(users.length)) {
      this.error(session, "rate_limited", "too many Users requests; slow down", iid);
      return;
    }
    this.send(session, users, "", iid);
  }

  /** Offer/Answer/Candidate/Bye go to the session named in `To`, in the same room (on any node). */
  private relay(session: Session, type: RelayType, to: string, payload: Doc, extra: Doc, iid: string): void {
    const target = this.mate(session, to);
    if (target === undefined) {
      this.error(session, "unknown_session", `no session ${JSON.stringify(to)} in this room`, iid);
      return;
    }
    if (this.fanOut(session, [target], { ...extra, To: to, Type: type, [type]: payload }, iid)) this.relayed++;
  }

  private authenticate(session: Session, userid: string, nonce: string, iid: string): void {
    if (!this.nonces.take(session.id, nonce, userid)) {
      this.error(session, "authentication_failed", "the nonce is not valid for this session and user", iid);
      return;
    }
    session.userid = userid;
    this.log.info({ session: session.id, userid }, "spreed session authenticated");
    this.sendSelf(session, iid);
    const mates = [...this.roomMates(session), ...this.remoteMates(session)];
    this.fanOut(session, mates, presence(session, "Joined"), iid, "", false);
    this.cluster?.announce("auth", this.wire(session));
  }

  private status(session: Session, status: Doc, iid: string): void {
    const copy: Doc = { ...status };
    let picture: Image | undefined;
    if (typeof copy.buddyPicture === "string" && copy.buddyPicture.startsWith("data:")) {
      const checked = checkPicture(copy.buddyPicture, this.cluster === undefined ? "" : `${this.cluster.nodeId}_`);
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
    const mates = [...this.roomMates(session, true), ...this.remoteMates(session)];
    if (this.fanOut(session, mates, { Type: "Status", Status: copy, Rev: session.rev }, iid, iid, false)) {
      this.cluster?.announce("status", this.wire(session));
    }
  }

  private chat(session: Session, to: string, chat: Doc, iid: string): void {
    if (session.room === undefined) {
      this.error(session, "bad_request", "send Hello to join a room first", iid);
      return;
    }
    let targets: Mate[];
    if (to !== "") {
      const target = this.mate(session, to);
      if (target === undefined) {
        // Not delivered, so no "sent" receipt either.
        this.error(session, "unknown_session", `no session ${JSON.stringify(to)} in this room`, iid);
        return;
      }
      targets = [target];
    } else {
      targets = [...this.roomMates(session, chat.NoEcho !== true), ...this.remoteMates(session)];
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
    const targets = ids.map((x) => this.mate(session, x)).filter((s): s is Mate => s !== undefined && s !== session);
    this.fanOut(session, [...new Set(targets)], { Type: "Conference", Id: id, Conference: ids }, iid);
  }

  async close(): Promise<void> {
    for (const s of this.sessions.values()) s.socket.terminate();
    this.sessions.clear();
    this.rooms.clear();
    // Other nodes drop this node's sessions at its goodbye.
    await this.cluster?.close();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}

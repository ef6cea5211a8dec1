/**
 * The Spreed WebRTC channeling hub: one session per WebSocket at `/ws`, rooms joined with
 * `Hello`, peer-to-peer signaling (`Offer`/`Answer`/`Candidate`/`Bye`) relayed between
 * sessions of the same room, presence (`Joined`/`Left`/`Users`/`Status`), `Alive` echo,
 * chat, and `Authentication` with a nonce from the REST API. Client documents are
 * `{Type, <Type>: {...}, Iid}`; server documents are `{From, To, Data, Iid, A}`.
 * Sessions live in memory: they end with their connection (a `?t=<Token>` reconnect
 * reclaims the same Id and Sid).
 */
import { createHmac, randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { type WebSocket, WebSocketServer } from "ws";
import type { ServerKey } from "../auth/server-key.js";
import type { Logger } from "../observability/log.js";

export const SPREED_VERSION = "0.29.7";
const MAX_FRAME = 512 * 1024;
const MAX_ROOM_NAME = 128;
const MAX_IMAGE = 256 * 1024;
const NONCE_TTL_MS = 5 * 60 * 1000;
const MAX_NONCES_PER_SESSION = 8;
const TOKEN_PURPOSE = "spreed.session";

type Doc = { [key: string]: unknown };

export interface HubSettings {
  readonly stunUris: readonly string[];
  readonly turnUris: readonly string[];
  readonly turnSecret: string | undefined;
  readonly turnTtlSeconds: number;
}

export interface Session {
  readonly id: string;
  readonly sid: string;
  readonly token: string;
  readonly connectedAt: number;
  room: string | undefined;
  userid: string;
  ua: string;
  status: Doc | null;
  rev: number;
  /** The session's current buddy picture (one per session; a new one replaces it). */
  imageId: string | undefined;
  socket: WebSocket;
}

interface Image {
  contentType: string;
  data: Buffer;
  owner: string;
}

function randomId(bytes = 18): string {
  return randomBytes(bytes).toString("base64url");
}

export class SpreedHub {
  private readonly wss: WebSocketServer;
  private readonly sessions = new Map<string, Session>();
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
    const rooms = new Set([...this.sessions.values()].map((s) => s.room).filter((r) => r !== undefined));
    return {
      rooms: rooms.size,
      connections: this.wss.clients.size,
      sessions: this.sessions.size,
      users: new Set([...this.sessions.values()].map((s) => s.userid).filter((u) => u !== "")).size,
      relayed: this.relayed,
      details: [...this.sessions.values()].map((s) => ({
        id: s.id,
        room: s.room ?? "",
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
    };
    this.sessions.set(id, session);
    this.onSession?.();
    this.log.info({ session: id, reclaimed: reclaimed !== undefined }, "spreed session connected");
    ws.on("message", (raw, isBinary) => this.receive(session, isBinary ? null : raw.toString()));
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
    this.log.info({ session: session.id, why }, "spreed session ended");
  }

  private send(to: Session, data: Doc, from = "", iid = ""): void {
    if (to.socket.readyState !== to.socket.OPEN) return;
    to.socket.send(JSON.stringify({ From: from, To: to.id, Data: data, Iid: iid, A: "" }));
  }

  private error(to: Session, code: string, message: string, iid = ""): void {
    this.send(to, { Type: "Error", Code: code, Message: message }, "", iid);
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
    this.send(
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
      "",
      iid,
    );
  }

  private roomMates(session: Session, includeSelf = false): Session[] {
    if (session.room === undefined) return [];
    return [...this.sessions.values()].filter((s) => s.room === session.room && (includeSelf || s !== session));
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

  private leaveRoom(session: Session): void {
    if (session.room === undefined) return;
    for (const other of this.roomMates(session))
      this.send(other, { Type: "Left", Id: session.id, Status: "hard" }, session.id);
    session.room = undefined;
  }

  private receive(session: Session, text: string | null): void {
    let doc: Doc;
    try {
      if (text === null) throw new Error("binary frames are not part of the protocol");
      const parsed = JSON.parse(text) as unknown;
      if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("not a JSON object");
      doc = parsed as Doc;
    } catch (e) {
      this.error(session, "bad_request", `invalid document: ${(e as Error).message}`);
      return;
    }
    const iid = typeof doc.Iid === "string" ? doc.Iid.slice(0, 128) : "";
    const type = doc.Type;
    if (typeof type !== "string") {
      this.error(session, "bad_request", "the document has no Type", iid);
      return;
    }
    const body = doc[type];
    const inner = body !== null && typeof body === "object" && !Array.isArray(body) ? (body as Doc) : {};
    switch (type) {
      case "Self":
        this.sendSelf(session, iid);
        return;
      case "Hello":
        this.hello(session, inner, iid);
        return;
      case "Offer":
      case "Answer":
      case "Candidate":
      case "Bye":
        this.relay(session, type, inner, iid);
        return;
      case "Users":
        this.send(
          session,
          { Type: "Users", Users: this.roomMates(session, true).map((s) => this.presence(s, "Online")) },
          "",
          iid,
        );
        return;
      case "Alive":
        this.send(session, { Type: "Alive", Alive: typeof body === "number" ? body : (inner.Alive ?? body) }, "", iid);
        return;
      case "Authentication":
        this.authenticate(session, inner, iid);
        return;
      case "Status":
        this.status(session, inner, iid);
        return;
      case "Chat":
        this.chat(session, inner, iid);
        return;
      case "Conference":
        this.conference(session, inner, iid);
        return;
      default:
        this.error(session, "unknown_type", `unknown document type ${JSON.stringify(type).slice(0, 64)}`, iid);
    }
  }

  private hello(session: Session, hello: Doc, iid: string): void {
    const room = typeof hello.Id === "string" ? hello.Id : "";
    if (room.length > MAX_ROOM_NAME) {
      this.error(session, "bad_request", `room names are at most ${MAX_ROOM_NAME} characters`, iid);
      return;
    }
    if (typeof hello.Ua === "string") session.ua = hello.Ua.slice(0, 256);
    if (session.room !== room) {
      this.leaveRoom(session);
      session.room = room;
      for (const other of this.roomMates(session)) this.send(other, this.presence(session, "Joined"), session.id);
    }
    this.send(
      session,
      {
        Type: "Welcome",
        Room: { Type: "Room", Name: room },
        Users: this.roomMates(session, true).map((s) => this.presence(s, "Online")),
      },
      "",
      iid,
    );
  }

  /** Offer/Answer/Candidate/Bye go to the session named in `To`, in the same room. */
  private relay(session: Session, type: string, inner: Doc, iid: string): void {
    const to = typeof inner.To === "string" ? this.sessions.get(inner.To) : undefined;
    if (to === undefined || session.room === undefined || to.room !== session.room) {
      this.error(session, "unknown_session", `no session ${JSON.stringify(inner.To ?? "")} in this room`, iid);
      return;
    }
    this.relayed++;
    this.send(to, { ...inner, Type: type }, session.id);
  }

  private authenticate(session: Session, auth: Doc, iid: string): void {
    const userid = typeof auth.Userid === "string" ? auth.Userid : "";
    const nonce = typeof auth.Nonce === "string" ? auth.Nonce : "";
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
    for (const other of this.roomMates(session)) this.send(other, this.presence(session, "Joined"), session.id);
  }

  private status(session: Session, status: Doc, iid: string): void {
    const copy: Doc = { ...status };
    const picture = copy.buddyPicture;
    if (typeof picture === "string" && picture.startsWith("data:")) {
      const m = /^data:(image\/(?:png|jpeg|gif|webp));base64,([A-Za-z0-9+/=]+)$/.exec(picture);
      const data = m?.[2] === undefined ? undefined : Buffer.from(m[2], "base64");
      if (m?.[1] === undefined || data === undefined || data.length === 0 || data.length > MAX_IMAGE) {
        this.error(
          session,
          "bad_request",
          "buddyPicture must be a base64 PNG, JPEG, GIF or WebP data URL up to 256 KiB",
          iid,
        );
        return;
      }
      const imageId = randomId(15);
      if (session.imageId !== undefined) this.images.delete(session.imageId);
      session.imageId = imageId;
      this.images.set(imageId, { contentType: m[1], data, owner: session.id });
      const ext = m[1] === "image/jpeg" ? "jpg" : m[1].slice("image/".length);
      copy.buddyPicture = `img:${imageId}/picture.${ext}`;
    }
    session.status = copy;
    session.rev++;
    for (const s of this.roomMates(session, true)) {
      this.send(s, { Type: "Status", Status: copy, Rev: session.rev }, session.id, s === session ? iid : "");
    }
  }

  private chat(session: Session, inner: Doc, iid: string): void {
    if (session.room === undefined) {
      this.error(session, "bad_request", "send Hello to join a room first", iid);
      return;
    }
    const chat = inner.Chat !== null && typeof inner.Chat === "object" ? ({ ...(inner.Chat as Doc) } as Doc) : {};
    if (typeof chat.Message === "string" && chat.Message.length > 16 * 1024) {
      this.error(session, "bad_request", "chat messages are at most 16 KiB", iid);
      return;
    }
    chat.Time = new Date().toISOString();
    const targets =
      typeof inner.To === "string" && inner.To !== ""
        ? [this.sessions.get(inner.To)].filter(
            (s): s is Session => s !== undefined && session.room !== undefined && s.room === session.room,
          )
        : this.roomMates(session, chat.NoEcho !== true);
    for (const t of targets) this.send(t, { Type: "Chat", Chat: chat }, session.id);
    if (typeof chat.Mid === "string" && chat.Mid !== "") {
      this.send(session, { Type: "Chat", Chat: { Mid: chat.Mid, Status: { State: "sent" } } }, "", iid);
    }
  }

  private conference(session: Session, inner: Doc, iid: string): void {
    if (session.room === undefined) {
      this.error(session, "bad_request", "send Hello to join a room first", iid);
      return;
    }
    const ids = Array.isArray(inner.Conference)
      ? inner.Conference.filter((x): x is string => typeof x === "string")
      : [];
    if (ids.length === 0 || ids.length > 100) {
      this.error(session, "bad_request", "Conference needs 1 to 100 session ids", iid);
      return;
    }
    for (const id of ids) {
      const to = this.sessions.get(id);
      if (to !== undefined && to !== session && to.room === session.room) {
        this.send(to, { Type: "Conference", Id: inner.Id, Conference: ids }, session.id);
      }
    }
  }

  close(): Promise<void> {
    for (const s of this.sessions.values()) s.socket.terminate();
    this.sessions.clear();
    return new Promise((resolve) => this.wss.close(() => resolve()));
  }
}

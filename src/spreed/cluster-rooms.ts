/**
 * Spreed rooms across the nodes of a cluster. Every node mirrors every other node's sessions
 * (id, sid, user, user agent, status, room) from what they announce on the bus (bus.ts):
 *
 * - a session's state is broadcast when it connects, joins or leaves a room, authenticates
 *   or changes its status, and its end when it ends; receivers update the mirror and tell
 *   their own sessions in that room (`Joined`, `Left`, `Status`, `Conference`);
 * - documents for sessions elsewhere (relays, chat, conference lists) go only to the nodes
 *   holding them (`<prefix>.node.<id>`), checked there against the mirror: the sender must
 *   be in the room it names, and so must the recipients;
 * - a room's PIN travels with the join that opened the room and with every `Room` change,
 *   so any node admits (or refuses) a session as the room's own node would; room sizes
 *   count members everywhere;
 * - liveness: a heartbeat every second; a node silent for 3 s is dropped (its sessions
 *   `Left` everywhere), a node that stops says `bye`. A starting node asks everyone for
 *   their sessions (`hello`, answered with snapshots); a node heard from without having been
 *   known (back from an outage), or whose messages had to be dropped, is asked again
 *   (`snapreq`) — so what an outage or a drop lost is healed by the next snapshot.
 *
 * Bounds: messages and bytes per second from each node (token buckets; excess is dropped
 * and healed by a snapshot), nodes and mirrored sessions capped, the mirror shrinks with
 * every `Left`, session end and node death; malformed messages are logged and dropped.
 */
import type { Logger } from "../observability/log.js";
import { TokenBucket } from "../sockets/token-bucket.js";
import type { SpreedBus } from "./bus.js";
import {
  BadBusMessage,
  type BusMessage,
  decodeBusMessage,
  MAX_SNAPSHOT_PART,
  type SessionEvent,
  type WireRoom,
  type WireSession,
} from "./cluster-wire.js";
import { type Doc, presence } from "./documents.js";
import type { Image } from "./pictures.js";
import { type RoomPolicy, type SpreedRoom, SpreedRooms } from "./rooms.js";

/** A session of another node, as mirrored here. */
export interface RemoteSession {
  readonly id: string;
  node: string;
  sid: string;
  userid: string;
  ua: string;
  status: Doc | null;
  rev: number;
  room: SpreedRoom<RemoteSession> | undefined;
}

/** What the cluster needs from this node's hub. */
export interface LocalSide {
  /** This node's sessions, for snapshots. */
  sessions(): Iterable<WireSession>;
  isLocal(id: string): boolean;
  /** This node's room of that key (also an empty one keeping its PIN), if any. */
  room(key: string): { pin: string | undefined } | undefined;
  /** Sends a document (its JSON) from `from` to this node's members of the room (only to `to` when given). */
  deliver(roomKey: string, data: string, from: string, to?: readonly string[]): void;
  /** A room's PIN was changed on another node. */
  setPin(roomKey: string, pin: string | undefined): void;
  /** A local session's id was reclaimed (`?t=`) on another node: it ends here. */
  replaced(id: string): void;
  /** A nonce for a local session (undefined when there is no such session). */
  issueNonce(id: string, userid: string): string | undefined;
  /** A buddy picture kept here. */
  image(id: string): Image | undefined;
}

export interface ClusterOptions {
  readonly heartbeatMs: number;
  /** A node not heard from for this long is dropped. */
  readonly deadAfterMs: number;
  /** How long a starting node collects the others' snapshots. */
  readonly helloWaitMs: number;
  readonly requestTimeoutMs: number;
  readonly messagesPerSecondPerNode: number;
  readonly bytesPerSecondPerNode: number;
  readonly maxNodes: number;
  readonly maxRemoteSessions: number;
}

const DEFAULTS: ClusterOptions = {
  heartbeatMs: 1_000,
  deadAfterMs: 3_000,
  helloWaitMs: 300,
  requestTimeoutMs: 2_000,
  messagesPerSecondPerNode: 10_000,
  bytesPerSecondPerNode: 64 * 1024 * 1024,
  maxNodes: 256,
  maxRemoteSessions: 200_000,
};
/** Snapshot parts stay well under the bus's message size. */
const SNAPSHOT_PART_BYTES = 256 * 1024;
/** How often dropped and malformed messages are summed up in the log. */
const SUMMARY_MS = 10_000;

interface NodeState {
  lastSeen: number;
  readonly sessions: Set<string>;
  readonly messages: TokenBucket;
  readonly bytes: TokenBucket;
  /** Messages of this node were dropped: ask for a snapshot at its next heartbeat. */
  dirty: boolean;
  syncing: boolean;
}

export class ClusterRooms {
  private readonly options: ClusterOptions;
  private readonly remote = new Map<string, RemoteSession>();
  private readonly rooms: SpreedRooms<RemoteSession>;
  private readonly nodes = new Map<string, NodeState>();
  private readonly timers: NodeJS.Timeout[] = [];
  /** Since the last summary in the log. */
  private dropped = 0;
  private malformed = 0;
  private readonly totals = { dropped: 0, malformed: 0 };
  private lastSummary = Date.now();
  private closed = false;

  constructor(
    private readonly bus: SpreedBus,
    policy: RoomPolicy,
    private readonly local: LocalSide,
    private readonly log: Logger,
    options: Partial<ClusterOptions> = {},
  ) {
    this.options = { ...DEFAULTS, ...options };
    this.rooms = new SpreedRooms(policy);
  }

  get nodeId(): string {
    return this.bus.nodeId;
  }

  /** Listens, then asks every node for its sessions and waits briefly for the answers. */
  async start(): Promise<void> {
    this.bus.onMessage((body, reply, bytes) => this.received(body, reply, bytes));
    const every = (ms: number, f: () => void) => {
      const t = setInterval(f, ms);
      t.unref();
      this.timers.push(t);
    };
    every(this.options.heartbeatMs, () => this.bus.broadcast({ t: "hb", n: this.nodeId }));
    every(Math.max(100, Math.floor(this.options.heartbeatMs / 2)), () => this.check());
    const parts = new Map<string, Set<string>>();
    await this.bus.ask(undefined, { t: "hello", n: this.nodeId }, this.options.helloWaitMs, (body) => {
      this.snapshotPart(body, undefined, parts);
      return false;
    });
    this.bus.broadcast({ t: "hb", n: this.nodeId });
    this.log.info({ node: this.nodeId, nodes: this.nodes.size, sessions: this.remote.size }, "spreed cluster joined");
  }

  /** Members elsewhere of a room: its PIN (as known here) and how many. */
  outside(key: string): { pin: string | undefined; members: number } | undefined {
    const room = this.rooms.get(key);
    return room === undefined ? undefined : { pin: room.pin, members: room.members.size };
  }

  members(key: string | undefined): RemoteSession[] {
    const room = key === undefined ? undefined : this.rooms.get(key);
    return room === undefined ? [] : [...room.members];
  }

  session(id: string): RemoteSession | undefined {
    return this.remote.get(id);
  }

  /** This node's view of the cluster: other nodes, their sessions, messages dropped (ever). */
  stats() {
    return { node: this.nodeId, nodes: this.nodes.size, remoteSessions: this.remote.size, ...this.totals };
  }

  /** A local session's state changed (`ev` says how); `conf` lists a Conference room's members after a join. */
  announce(ev: SessionEvent, s: WireSession, conf?: readonly string[]): void {
    // A session that takes an id mirrored here (a reclaim moved it to this node) is ours now.
    if (ev === "connect") {
      const mirrored = this.remote.get(s.id);
      if (mirrored !== undefined) this.forget(mirrored);
    }
    this.bus.broadcast(
      conf === undefined ? { t: "s", n: this.nodeId, ev, s } : { t: "s", n: this.nodeId, ev, s, conf },
    );
  }

  ended(id: string): void {
    this.bus.broadcast({ t: "x", n: this.nodeId, id });
  }

  /** A local member changed its room's PIN. */
  roomChanged(from: string, room: WireRoom): void {
    const mirrored = this.rooms.get(room.k);
    if (mirrored !== undefined) mirrored.pin = room.pin;
    this.bus.broadcast({ t: "room", n: this.nodeId, from, room });
  }

  /** Sends `doc` from local session `from` in room `roomKey` to `targets`: one message to each of their nodes. */
  send(from: string, roomKey: string, doc: Doc, targets: readonly RemoteSession[]): void {
    const byNode = new Map<string, string[]>();
    for (const t of targets) {
      const ids = byNode.get(t.node) ?? [];
      ids.push(t.id);
      byNode.set(t.node, ids);
    }
    for (const [node, to] of byNode) this.bus.toNode(node, { t: "d", n: this.nodeId, from, rk: roomKey, to, d: doc });
  }

  /** Asks a session's node for a nonce (REST for a session connected elsewhere). */
  async issueNonce(session: RemoteSession, userid: string): Promise<string | undefined> {
    let nonce: string | undefined;
    const ask = { t: "nonce", n: this.nodeId, id: session.id, u: userid };
    await this.bus.ask(session.node, ask, this.options.requestTimeoutMs, (body) => {
      try {
        const m = decodeBusMessage(body, this.nodeId);
        if (m.t !== "nonced") return false;
        nonce = m.nonce;
        return true;
      } catch (e) {
        this.bad(e);
        return false;
      }
    });
    return nonce;
  }

  /** A buddy picture from the node its id names (`<node>_…`), if that node has it. */
  async fetchImage(imageId: string): Promise<Image | undefined> {
    const node = imageId.slice(0, Math.max(0, imageId.indexOf("_")));
    if (node === this.nodeId || !this.nodes.has(node)) return undefined;
    let image: Image | undefined;
    await this.bus.ask(node, { t: "img", n: this.nodeId, id: imageId }, this.options.requestTimeoutMs, (body) => {
      try {
        const m = decodeBusMessage(body, this.nodeId);
        if (m.t !== "image") return false;
        if (m.image !== undefined) image = { id: imageId, ...m.image };
        return true;
      } catch (e) {
        this.bad(e);
        return false;
      }
    });
    return image;
  }

  /** Says goodbye (other nodes drop this node's sessions at once) and closes the bus. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    this.bus.broadcast({ t: "bye", n: this.nodeId });
    await this.bus.close();
    this.remote.clear();
    this.nodes.clear();
    this.rooms.clear();
  }

  // ---- receiving ----

  private received(body: unknown, reply: string | undefined, bytes: number): void {
    if (this.closed) return;
    let m: BusMessage;
    try {
      m = decodeBusMessage(body, this.nodeId);
    } catch (e) {
      this.bad(e);
      return;
    }
    if (m.t === "bye") {
      this.dropNode(m.n, "stopped");
      return;
    }
    const known = this.nodes.has(m.n);
    const node = this.node(m.n);
    if (node === undefined) return;
    if (!node.messages.take() || !node.bytes.take(bytes)) {
      node.dirty = true;
      this.drop();
      return;
    }
    // An unknown node (just started, back from an outage, dropped as silent) may have sessions
    // this node does not know; one whose messages were dropped may have changed them.
    if (!known || (node.dirty && m.t === "hb")) this.sync(m.n, node);
    this.handle(m, reply);
  }

  private handle(m: BusMessage, reply: string | undefined): void {
    switch (m.t) {
      case "hello":
      case "snapreq":
        if (reply !== undefined) this.sendSnapshot(reply);
        break;
      case "s":
        this.apply(m.n, m.s, m.ev, m.conf);
        break;
      case "x": {
        const r = this.remote.get(m.id);
        if (r !== undefined && r.node === m.n) this.forget(r);
        break;
      }
      case "room":
        this.pinChanged(m.n, m.from, m.room);
        break;
      case "d":
        this.deliver(m.n, m.from, m.rk, m.d, m.to);
        break;
      case "nonce":
        if (reply !== undefined) {
          const nonce = this.local.issueNonce(m.id, m.u);
          this.bus.reply(
            reply,
            nonce === undefined ? { t: "nonced", n: this.nodeId } : { t: "nonced", n: this.nodeId, nonce },
          );
        }
        break;
      case "img":
        if (reply !== undefined) {
          const image = this.local.image(m.id);
          const found = image === undefined ? {} : { ct: image.contentType, b64: image.data.toString("base64") };
          this.bus.reply(reply, { t: "image", n: this.nodeId, ...found });
        }
        break;
      default:
        // hb: seen already; snap, nonced and image arrive as replies only.
        break;
    }
  }

  /** A node, known from now on (undefined beyond the bound of nodes). */
  private node(id: string): NodeState | undefined {
    let node = this.nodes.get(id);
    if (node === undefined) {
      if (this.nodes.size >= this.options.maxNodes) {
        this.drop();
        return undefined;
      }
      const { messagesPerSecondPerNode: rate, bytesPerSecondPerNode: bytes } = this.options;
      node = {
        lastSeen: Date.now(),
        sessions: new Set(),
        messages: new TokenBucket(rate, rate * 2),
        bytes: new TokenBucket(bytes, bytes * 2),
        dirty: false,
        syncing: false,
      };
      this.nodes.set(id, node);
      this.log.info({ node: id }, "spreed cluster node joined");
    }
    node.lastSeen = Date.now();
    return node;
  }

  /** One part of a snapshot; `expect` is the node asked (undefined: any node answering a hello). */
  private snapshotPart(body: unknown, expect: string | undefined, parts: Map<string, Set<string>>): boolean {
    let m: BusMessage;
    try {
      m = decodeBusMessage(body, this.nodeId);
    } catch (e) {
      this.bad(e);
      return false;
    }
    if (m.t !== "snap" || (expect !== undefined && m.n !== expect)) return false;
    const node = this.node(m.n);
    if (node === undefined) return false;
    const seen = parts.get(m.n) ?? new Set<string>();
    parts.set(m.n, seen);
    for (const s of m.s) {
      seen.add(s.id);
      this.apply(m.n, s, "snapshot");
    }
    if (!m.end) return false;
    // The whole snapshot is in: whatever else was mirrored for that node is gone.
    for (const id of [...node.sessions]) {
      const r = this.remote.get(id);
      if (!seen.has(id) && r !== undefined) this.forget(r);
    }
    parts.delete(m.n);
    return true;
  }

  private sync(id: string, node: NodeState): void {
    if (node.syncing) return;
    node.syncing = true;
    node.dirty = false;
    const parts = new Map<string, Set<string>>();
    void this.bus
      .ask(id, { t: "snapreq", n: this.nodeId }, this.options.requestTimeoutMs, (body) =>
        this.snapshotPart(body, id, parts),
      )
      .finally(() => {
        node.syncing = false;
      });
  }

  private sendSnapshot(reply: string): void {
    let part: WireSession[] = [];
    let bytes = 0;
    for (const s of this.local.sessions()) {
      const size = JSON.stringify(s).length;
      if (part.length > 0 && (part.length >= MAX_SNAPSHOT_PART || bytes + size > SNAPSHOT_PART_BYTES)) {
        this.bus.reply(reply, { t: "snap", n: this.nodeId, s: part, end: false });
        part = [];
        bytes = 0;
      }
      part.push(s);
      bytes += size;
    }
    this.bus.reply(reply, { t: "snap", n: this.nodeId, s: part, end: true });
  }

  /** A session's state from node `n`: the mirror follows, and local room mates are told. */
  private apply(n: string, w: WireSession, ev: SessionEvent | "snapshot", conf?: readonly string[]): void {
    if (this.local.isLocal(w.id)) {
      // Only a reclaim elsewhere announces a session live here; anything else is stale.
      if (ev === "connect") this.local.replaced(w.id);
      else return;
    }
    let r = this.remote.get(w.id);
    if (r === undefined) {
      if (this.remote.size >= this.options.maxRemoteSessions) {
        this.drop();
        return;
      }
      r = { id: w.id, node: n, sid: w.sid, userid: w.u, ua: w.ua, status: w.st, rev: w.rev, room: undefined };
      this.remote.set(w.id, r);
    } else if (r.node !== n) {
      this.nodes.get(r.node)?.sessions.delete(r.id);
      r.node = n;
    }
    this.nodes.get(n)?.sessions.add(r.id);
    Object.assign(r, { sid: w.sid, userid: w.u, ua: w.ua, status: w.st, rev: w.rev });
    if (r.room !== undefined && r.room.key !== w.r?.k) this.leaveRoom(r);
    let entered = false;
    if (w.r !== undefined && r.room === undefined) {
      r.room = this.enterRoom(w.r, r);
      entered = true;
    } else if (ev === "snapshot" && w.r !== undefined && r.room !== undefined && r.room.pin !== w.r.pin) {
      // A PIN change whose message was lost (dropped over the rate) comes back with a snapshot.
      r.room.pin = w.r.pin;
      this.local.setPin(w.r.k, w.r.pin);
    }
    const key = r.room?.key;
    if (key === undefined) return;
    if (entered || ev === "auth") this.tell(key, presence(r, "Joined"), r.id);
    if (ev === "status") this.tell(key, { Type: "Status", Status: r.status, Rev: r.rev }, r.id);
    if (ev === "join" && conf !== undefined) this.tell(key, { Type: "Conference", Id: key, Conference: conf }, "");
  }

  private enterRoom(w: WireRoom, r: RemoteSession): SpreedRoom<RemoteSession> {
    let room = this.rooms.get(w.k);
    if (room === undefined) {
      // A room this node has (or keeps the PIN of) has that PIN; else the opener's.
      const here = this.local.room(w.k);
      room = { key: w.k, name: w.name, type: w.type, pin: here === undefined ? w.pin : here.pin, members: new Set() };
    }
    this.rooms.enter(room, r);
    return room;
  }

  private leaveRoom(r: RemoteSession): void {
    const room = r.room;
    if (room === undefined) return;
    this.tell(room.key, { Type: "Left", Id: r.id, Status: "hard" }, r.id);
    this.rooms.leave(room, r);
    r.room = undefined;
  }

  /** Drops a mirrored session (its room mates here get `Left`). */
  private forget(r: RemoteSession): void {
    this.leaveRoom(r);
    this.remote.delete(r.id);
    this.nodes.get(r.node)?.sessions.delete(r.id);
  }

  private dropNode(id: string, why: string): void {
    const node = this.nodes.get(id);
    if (node === undefined) return;
    const sessions = node.sessions.size;
    for (const sid of [...node.sessions]) {
      const r = this.remote.get(sid);
      if (r !== undefined) this.forget(r);
    }
    this.nodes.delete(id);
    this.log.warn({ node: id, sessions, why }, "spreed cluster node dropped");
  }

  private pinChanged(n: string, from: string, w: WireRoom): void {
    const sender = this.remote.get(from);
    if (sender === undefined || sender.node !== n || sender.room?.key !== w.k) return;
    sender.room.pin = w.pin;
    this.local.setPin(w.k, w.pin);
    this.tell(
      w.k,
      { Type: w.type, Name: w.name, ...(w.pin === undefined ? {} : { Credentials: { PIN: w.pin } }) },
      from,
    );
  }

  /** A document from a session of node `n` in room `rk`, for this node's members there. */
  private deliver(n: string, from: string, rk: string, doc: Doc, to: readonly string[] | undefined): void {
    const sender = this.remote.get(from);
    if (sender === undefined || sender.node !== n || sender.room?.key !== rk) {
      this.log.debug({ node: n, from }, "spreed bus document from a session not in that room; dropped");
      return;
    }
    this.local.deliver(rk, JSON.stringify(doc), from, to);
  }

  private tell(roomKey: string, doc: Doc, from: string): void {
    this.local.deliver(roomKey, JSON.stringify(doc), from);
  }

  /** Drops silent nodes; sums up dropped and malformed messages now and then. */
  private check(): void {
    const now = Date.now();
    for (const [id, node] of this.nodes) {
      if (now - node.lastSeen > this.options.deadAfterMs) this.dropNode(id, "no heartbeat");
    }
    if (now - this.lastSummary >= SUMMARY_MS && (this.dropped > 0 || this.malformed > 0)) {
      this.log.warn({ dropped: this.dropped, malformed: this.malformed }, "spreed bus messages dropped");
      this.dropped = 0;
      this.malformed = 0;
      this.lastSummary = now;
    }
  }

  private drop(): void {
    this.dropped++;
    this.totals.dropped++;
  }

  private bad(e: unknown): void {
    this.totals.malformed++;
    // The first of a burst is logged in full; the rest are counted into the summary.
    if (this.malformed++ === 0) {
      if (e instanceof BadBusMessage) this.log.warn({ err: e }, "malformed spreed bus message; dropped");
      else this.log.error({ err: e }, "spreed bus message failed");
    }
  }
}

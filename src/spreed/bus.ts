/**
 * The bus between the nodes of a cluster for Spreed channeling: core NATS (no persistence),
 * JSON messages on three kinds of subject under a prefix (`rtcplane.spreed` by default):
 *
 * - `<prefix>.all`: what every node needs (presence, heartbeats, room PINs, start-up hellos);
 * - `<prefix>.node.<node id>`: what one node needs (relays to its sessions, snapshot and
 *   nonce requests);
 * - inboxes (`_INBOX.…`): replies, several per request where a snapshot comes in parts.
 *
 * Messages larger than MAX_BUS_MESSAGE are not sent (logged) and not read (logged); text
 * that is not bounded JSON is logged and dropped. The connection publishes with `noEcho`,
 * so a node never hears its own broadcasts, and reconnects on its own after an outage
 * (cluster-rooms.ts heals the state that an outage lost).
 */
import { randomBytes } from "node:crypto";
import { connect, createInbox, Events, type Msg, type NatsConnection, type Subscription } from "nats";
import type { Logger } from "../observability/log.js";
import { parseBoundedJson } from "../sockets/bounded-json.js";

/** Under NATS's default max_payload (1 MiB), with room for headers. */
export const MAX_BUS_MESSAGE = 1024 * 1024 - 8 * 1024;
/** The deepest a bus message nests (a relayed Chat.Status is the deepest, 5 below its envelope). */
const MAX_DEPTH = 24;
const DEFAULT_PREFIX = "rtcplane.spreed";
/** Unreadable messages are logged once per this interval (the rest are counted). */
const COMPLAIN_MS = 10_000;
/** How long closing waits for buffered messages to go out. */
const CLOSE_WAIT_MS = 2_000;

/** A message as received: its decoded body, the subject to reply to, its size. */
export type BusHandler = (body: unknown, reply: string | undefined, bytes: number) => void;

export interface SpreedBus {
  readonly nodeId: string;
  /** To every other node. False when it was not sent (too large, connection closed). */
  broadcast(body: object, reply?: string): boolean;
  /** To one node. */
  toNode(nodeId: string, body: object, reply?: string): boolean;
  /** To a reply subject (an inbox). */
  reply(subject: string, body: object): boolean;
  /**
   * Sends `body` to one node (or to all when `nodeId` is undefined) with a fresh inbox as the
   * reply subject and hands every reply to `onReply` until it returns true or `timeoutMs` passes.
   */
  ask(nodeId: string | undefined, body: object, timeoutMs: number, onReply: (body: unknown) => boolean): Promise<void>;
  /** The handler of everything arriving on `.all` and this node's subject. */
  onMessage(handler: BusHandler): void;
  close(): Promise<void>;
}

export interface SpreedBusOptions {
  /** Subject prefix, so several clusters (or tests) can share one NATS server. */
  readonly prefix?: string;
  /** This node's id (a subject token of letters, digits and `-`); random by default. */
  readonly nodeId?: string;
}

const decoder = new TextDecoder();

class NatsSpreedBus implements SpreedBus {
  private handler: BusHandler = () => {};
  private readonly subs: Subscription[] = [];
  private closing = false;
  private unread = 0;
  private lastComplaint = 0;

  constructor(
    private readonly nc: NatsConnection,
    readonly nodeId: string,
    private readonly prefix: string,
    private readonly log: Logger,
  ) {
    this.subs.push(nc.subscribe(`${prefix}.all`, { callback: (_e, m) => this.received(m) }));
    this.subs.push(nc.subscribe(`${prefix}.node.${nodeId}`, { callback: (_e, m) => this.received(m) }));
    void this.watch();
  }

  private async watch(): Promise<void> {
    for await (const s of this.nc.status()) {
      if (s.type === Events.Disconnect) this.log.warn({ server: s.data }, "spreed bus disconnected; reconnecting");
      else if (s.type === Events.Reconnect) this.log.info({ server: s.data }, "spreed bus reconnected");
      else if (s.type === Events.Error) this.log.warn({ err: s.data }, "spreed bus error");
    }
  }

  onMessage(handler: BusHandler): void {
    this.handler = handler;
  }

  private received(m: Msg): void {
    const bytes = m.data.length;
    const body = this.decode(m.data, m.subject);
    if (body === undefined) return;
    try {
      this.handler(body, m.reply || undefined, bytes);
    } catch (err) {
      this.log.error({ err, subject: m.subject }, "spreed bus message handler failed");
    }
  }

  /** A message's body, or undefined (logged, at most once per COMPLAIN_MS) when it is too large or not bounded JSON. */
  private decode(data: Uint8Array, subject: string): unknown {
    try {
      if (data.length > MAX_BUS_MESSAGE) throw new Error(`${data.length} bytes, over ${MAX_BUS_MESSAGE}`);
      return parseBoundedJson(decoder.decode(data), MAX_DEPTH);
    } catch (err) {
      this.unread++;
      const now = Date.now();
      if (now - this.lastComplaint >= COMPLAIN_MS) {
        this.log.warn({ err, subject, unread: this.unread }, "unreadable spreed bus message(s) dropped");
        this.lastComplaint = now;
        this.unread = 0;
      }
      return undefined;
    }
  }

  private publish(subject: string, body: object, reply?: string): boolean {
    if (this.closing || this.nc.isClosed()) return false;
    const data = Buffer.from(JSON.stringify(body));
    if (data.length > MAX_BUS_MESSAGE) {
      this.log.warn({ subject, bytes: data.length }, "spreed bus message too large; not sent");
      return false;
    }
    try {
      this.nc.publish(subject, data, reply === undefined ? undefined : { reply });
      return true;
    } catch (err) {
      this.log.warn({ err, subject }, "spreed bus publish failed");
      return false;
    }
  }

  broadcast(body: object, reply?: string): boolean {
    return this.publish(`${this.prefix}.all`, body, reply);
  }

  toNode(nodeId: string, body: object, reply?: string): boolean {
    return this.publish(`${this.prefix}.node.${nodeId}`, body, reply);
  }

  reply(subject: string, body: object): boolean {
    return this.publish(subject, body);
  }

  ask(nodeId: string | undefined, body: object, timeoutMs: number, onReply: (body: unknown) => boolean): Promise<void> {
    if (this.closing || this.nc.isClosed()) return Promise.resolve();
    const inbox = createInbox();
    return new Promise<void>((resolve) => {
      let finished = false;
      const finish = () => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        sub.unsubscribe();
        resolve();
      };
      const sub = this.nc.subscribe(inbox, {
        callback: (_e, m) => {
          if (finished) return;
          const reply = this.decode(m.data, m.subject);
          if (reply === undefined) return;
          try {
            if (onReply(reply)) finish();
          } catch (err) {
            this.log.error({ err }, "spreed bus reply handler failed");
          }
        },
      });
      const timer = setTimeout(finish, timeoutMs);
      timer.unref?.();
      const sent = nodeId === undefined ? this.broadcast(body, inbox) : this.toNode(nodeId, body, inbox);
      if (!sent) finish();
    });
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    // Sends what is buffered (a goodbye) before the connection ends; a bus that is down
    // (or does not answer in time) is simply closed.
    const drained = this.nc.drain().then(
      () => true,
      () => false,
    );
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), CLOSE_WAIT_MS);
    });
    const ok = await Promise.race([drained, late]);
    clearTimeout(timer);
    if (!ok) await this.nc.close().catch(() => {});
  }
}

/**
 * Connects to the NATS server(s) at `url` (comma-separated; `nats://user:pass@host:4222`,
 * `tls://…`) and subscribes this node's subjects. Rejects if no server answers at start;
 * after that, outages are retried for ever.
 */
export async function connectSpreedBus(url: string, log: Logger, options: SpreedBusOptions = {}): Promise<SpreedBus> {
  const nodeId = options.nodeId ?? randomBytes(8).toString("hex");
  // No `_`: buddy picture ids are `<node>_<random>`.
  if (!/^[A-Za-z0-9-]{1,64}$/.test(nodeId)) throw new Error("a spreed bus node id is 1–64 of A–Z a–z 0–9 -");
  const prefix = options.prefix ?? DEFAULT_PREFIX;
  if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(prefix)) throw new Error("invalid spreed bus subject prefix");
  const nc = await connect({
    servers: url.split(",").map((s) => s.trim()),
    name: `rtcplane-spreed-${nodeId}`,
    noEcho: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    pingInterval: 5_000,
    maxPingOut: 2,
  });
  const bus = new NatsSpreedBus(nc, nodeId, prefix, log.child({ component: "spreed-bus", node: nodeId }));
  // The subscriptions are in place on the server before anyone is told this node exists.
  await nc.flush();
  return bus;
}

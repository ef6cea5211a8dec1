/**
 * The nodes of a cluster talk over one PostgreSQL notification channel: a message sent with
 * a transaction reaches every node (the sender too) when, and only if, that transaction
 * commits, and messages of different transactions arrive in commit order — the order the
 * version rule needs. NOTIFY payloads stop at 8,000 bytes: a larger message is written to
 * `cluster_messages` in the same transaction and only its id is notified; receivers fetch it,
 * still in order (later messages wait behind the fetch). Old rows are swept under a lease.
 */
import { randomBytes } from "node:crypto";
import type { Logger } from "../observability/log.js";
import type { Store, Tx } from "../storage/store.js";

const CHANNEL = "rtcplane_cluster";
/** NOTIFY's limit is 8,000 bytes; leave room for the envelope. */
const MAX_INLINE_BYTES = 7_000;
/** How long an oversized message is kept for nodes to fetch. */
const KEEP_MESSAGES_MS = 5 * 60_000;

type Handler = (body: unknown) => void;

interface Envelope {
  /** The sending node (so a sender can wait for its own message to come back). */
  readonly n: string;
  /** The message's number at its sender. */
  readonly i: number;
  readonly topic: string;
  readonly body: unknown;
}

export class ClusterChannel {
  readonly nodeId = randomBytes(6).toString("base64url");
  private sent = 0;
  private readonly handlers = new Map<string, Handler>();
  private readonly echoes = new Map<number, { done: () => void; timer: NodeJS.Timeout }>();
  /** Sends made outside transactions leave this node one after the other, in call order. */
  private sending: Promise<unknown> = Promise.resolve();
  private readonly queue: string[] = [];
  private draining = false;
  private stopListening: (() => void) | undefined;
  /** Called when LISTEN is lost: until onGap, messages are not arriving. */
  onLost: (() => void) | undefined;
  /** Called after LISTEN was lost and is back: messages in between may be missing. */
  onGap: (() => void) | undefined;

  constructor(
    private readonly store: Store,
    private readonly logger: Logger,
  ) {}

  on(topic: string, handler: Handler): void {
    this.handlers.set(topic, handler);
  }

  async start(): Promise<void> {
    this.stopListening = await this.store.listen(CHANNEL, (payload) => this.received(payload));
    const pg = this.store as { onListenGap?: () => void; onListenLost?: () => void };
    pg.onListenLost = () => {
      this.logger.warn("cluster channel lost; caching is off until it is back");
      this.onLost?.();
    };
    pg.onListenGap = () => {
      this.logger.warn("cluster channel was interrupted; node-local state is being refreshed");
      this.onGap?.();
    };
  }

  stop(): void {
    this.stopListening?.();
    for (const { done, timer } of this.echoes.values()) {
      clearTimeout(timer);
      done();
    }
    this.echoes.clear();
  }

  /** Sends with `tx`: delivered everywhere once it commits, in commit order. */
  async sendInTx(tx: Tx, topic: string, body: unknown): Promise<void> {
    tx.notify(CHANNEL, await this.payload(tx, this.envelope(topic, body)));
  }

  /**
   * Sends with `tx` and returns (wrapped) a promise of its coming back to this node after the commit:
   * PostgreSQL has then handed it to every listening node. Credential changes await it, so
   * that the answer to "renew the secret" comes after every node has heard of it; sent with
   * the change, the news cannot be lost once the change is committed.
   */
  async sendInTxWithEcho(
    tx: Tx,
    topic: string,
    body: unknown,
    timeoutMs = 2_000,
  ): Promise<{ readonly delivered: Promise<void> }> {
    const envelope = this.envelope(topic, body);
    const delivered = this.expectEcho(envelope, timeoutMs);
    tx.notify(CHANNEL, await this.payload(tx, envelope));
    // Wrapped: an async function returning a bare promise would wait for it.
    return { delivered };
  }

  /** Sends now, outside any transaction (best-effort events); this node's sends stay in order. */
  send(topic: string, body: unknown): Promise<void> {
    const envelope = this.envelope(topic, body);
    const sent = this.sending.then(() => this.sendEnvelope(envelope));
    this.sending = sent.catch(() => {});
    return sent;
  }

  /** Resolves when `envelope` comes back (or after `timeoutMs`, or when the channel stops). */
  private expectEcho(envelope: Envelope, timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.echoes.delete(envelope.i);
        this.logger.warn({ topic: envelope.topic }, "cluster message not echoed in time");
        resolve();
      }, timeoutMs);
      timer.unref();
      this.echoes.set(envelope.i, { done: resolve, timer });
    });
  }

  /** Deletes oversized messages every node has had time to fetch. */
  async sweep(now = Date.now()): Promise<number> {
    return this.store.run("DELETE FROM cluster_messages WHERE create_time_ms < ?", [now - KEEP_MESSAGES_MS]);
  }

  private envelope(topic: string, body: unknown): Envelope {
    this.sent += 1;
    return { n: this.nodeId, i: this.sent, topic, body };
  }

  private async sendEnvelope(envelope: Envelope): Promise<void> {
    const json = JSON.stringify(envelope);
    // One statement in the common case; an oversized message needs its row and notification
    // committed together.
    if (Buffer.byteLength(json) <= MAX_INLINE_BYTES) {
      await this.store.run("SELECT pg_notify(?, ?)", [CHANNEL, json]);
      return;
    }
    await this.store.transaction(async (tx) => {
      tx.notify(CHANNEL, await this.payload(tx, envelope));
    });
  }

  private async payload(tx: Tx, envelope: Envelope): Promise<string> {
    const json = JSON.stringify(envelope);
    if (Buffer.byteLength(json) <= MAX_INLINE_BYTES) return json;
    const row = await tx.get<{ id: number }>(
      "INSERT INTO cluster_messages (body, create_time_ms) VALUES (?, ?) RETURNING id",
      [json, Date.now()],
    );
    return `@${row?.id}`;
  }

  private received(payload: string): void {
    this.queue.push(payload);
    if (!this.draining) void this.drain();
  }

  /** Handles messages one at a time, in arrival order; synchronous unless one must be fetched. */
  private async drain(): Promise<void> {
    this.draining = true;
    try {
      while (this.queue.length > 0) {
        const payload = this.queue.shift() as string;
        let json = payload;
        if (payload.startsWith("@")) {
          try {
            const row = await this.store.get<{ body: string }>("SELECT body FROM cluster_messages WHERE id = ?", [
              Number(payload.slice(1)),
            ]);
            if (row === undefined) throw new Error("message already swept");
            json = row.body;
          } catch (err) {
            this.logger.error({ err, payload }, "could not fetch an oversized cluster message");
            this.onGap?.();
            continue;
          }
        }
        try {
          this.dispatch(JSON.parse(json) as Envelope);
        } catch (err) {
          this.logger.error({ err }, "unreadable cluster message");
        }
      }
    } finally {
      this.draining = false;
    }
  }

  private dispatch(envelope: Envelope): void {
    const handler = this.handlers.get(envelope.topic);
    if (handler === undefined) {
      this.logger.warn({ topic: envelope.topic }, "cluster message without a handler");
    } else {
      try {
        handler(envelope.body);
      } catch (err) {
        this.logger.error({ err, topic: envelope.topic }, "cluster message handler failed");
      }
    }
    if (envelope.n === this.nodeId) {
      const echo = this.echoes.get(envelope.i);
      if (echo !== undefined) {
        clearTimeout(echo.timer);
        this.echoes.delete(envelope.i);
        echo.done();
      }
    }
  }
}

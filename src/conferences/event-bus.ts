/**
 * Fan-out of conference events after their transaction commits: long-poll waiters and
 * event streams subscribe per conference, and push channels (MQTT) get every event with its
 * app and the topics of its recipients; call events, which belong to no conference, go to
 * push channels and to per-user listeners. Nothing here polls the database. Alone, a node
 * delivers after its own commits; in a cluster a relay carries each message to every node
 * (this one too) in commit order, and each delivers it to its own listeners.
 * Conference ids are unique per app only, so everything is keyed by both.
 */
import type { CallEvent, ConferenceEvent } from "../../gen/rtcplane/conference/v1/events_pb.js";
import type { Tx } from "../storage/store.js";

/** A user endpoint that receives an event on its push topic. */
export interface Recipient {
  readonly userId: string;
  readonly endpointId: string;
}

/** A conference, named the only way that is unique across apps. */
export interface ConferenceRef {
  readonly appId: string;
  readonly conferenceId: string;
}

export type ConferenceListener = (event: ConferenceEvent, logged: boolean) => void;
/** Gets the events pushed to any endpoint of one user (one-to-one call events). */
export type UserListener = (event: CallEvent) => void;
export type PushSink = (appId: string, recipients: readonly Recipient[], event: ConferenceEvent | CallEvent) => void;

/** What one node tells every node's bus. */
export type BusMessage =
  | {
      readonly kind: "conference";
      readonly ref: ConferenceRef;
      readonly event: ConferenceEvent;
      readonly recipients: readonly Recipient[];
      readonly logged: boolean;
      readonly live: ConferenceEvent;
    }
  | {
      readonly kind: "call";
      readonly appId: string;
      readonly recipients: readonly Recipient[];
      readonly event: CallEvent;
    };

/** Carries messages to every node of a cluster, which hand them to `EventBus.deliver`. */
export interface BusRelay {
  /** Sent with `tx`: delivered everywhere once it commits, in commit order. */
  sendInTx(tx: Tx, message: BusMessage): Promise<void>;
  /** Sent now; failures are the relay's to log. */
  send(message: BusMessage): void;
}

function keyOf(ref: ConferenceRef): string {
  return `${ref.appId}/${ref.conferenceId}`;
}

export class EventBus {
  /** Set in a cluster: messages go through it, and come back to deliver(). */
  relay: BusRelay | undefined;
  private readonly listeners = new Map<string, Set<ConferenceListener>>();
  /** Listeners by whose quota they count against (a tenant). */
  private readonly perOwner = new Map<string, number>();
  private total = 0;
  private readonly sinks = new Set<PushSink>();
  private readonly userListeners = new Map<string, Set<UserListener>>();
  private readonly resyncListeners = new Set<() => void>();

  /**
   * Listens to one conference's events, counted against `owner`'s quota; returns the
   * function that stops listening.
   */
  subscribe(ref: ConferenceRef, listener: ConferenceListener, owner = ref.appId): () => void {
    return this.listen(this.listeners, keyOf(ref), listener, owner);
  }

  /** Listens to what is pushed to one user's endpoints, counted against `owner`'s quota. */
  subscribeUser(appId: string, userId: string, listener: UserListener, owner: string): () => void {
    return this.listen(this.userListeners, `${appId}/${userId}`, listener, owner);
  }

  private listen<L>(map: Map<string, Set<L>>, key: string, listener: L, owner: string): () => void {
    let set = map.get(key);
    if (set === undefined) {
      set = new Set();
      map.set(key, set);
    }
    set.add(listener);
    this.count(owner, 1);
    let subscribed = true;
    return () => {
      if (!subscribed) return;
      subscribed = false;
      set.delete(listener);
      if (set.size === 0 && map.get(key) === set) map.delete(key);
      this.count(owner, -1);
    };
  }

  private count(owner: string, delta: number): void {
    this.total += delta;
    const n = (this.perOwner.get(owner) ?? 0) + delta;
    if (n <= 0) this.perOwner.delete(owner);
    else this.perOwner.set(owner, n);
  }

  /** Listeners of one conference. */
  conferenceListeners(ref: ConferenceRef): number {
    return this.listeners.get(keyOf(ref))?.size ?? 0;
  }

  /** Listeners counted against one owner's quota. */
  ownerListeners(owner: string): number {
    return this.perOwner.get(owner) ?? 0;
  }

  /** Listeners of every conference. */
  allListeners(): number {
    return this.total;
  }

  /**
   * Listens for "messages may have been missed" (the cluster channel was interrupted):
   * readers then read the log again from where they are.
   */
  onResync(listener: () => void): () => void {
    this.resyncListeners.add(listener);
    return () => this.resyncListeners.delete(listener);
  }

  resync(): void {
    for (const listener of [...this.resyncListeners]) {
      try {
        listener();
      } catch {
        // One reader's failure must not stop the others.
      }
    }
  }

  addPushSink(sink: PushSink): () => void {
    this.sinks.add(sink);
    return () => this.sinks.delete(sink);
  }

  /**
   * Publishes a logged event with the transaction that logs it: delivered once it commits
   * (everywhere, in commit order, in a cluster).
   */
  async stage(
    tx: Tx,
    ref: ConferenceRef,
    event: ConferenceEvent,
    recipients: readonly Recipient[],
    live: ConferenceEvent = event,
  ): Promise<void> {
    const message: BusMessage = { kind: "conference", ref, event, recipients, logged: true, live };
    if (this.relay !== undefined) await this.relay.sendInTx(tx, message);
    else tx.afterCommit(() => this.deliver(message));
  }

  /**
   * Publishes an event outside any transaction (best effort: not logged, or observed).
   * Listeners (long-poll, streams) get `event` as it was logged; push receivers get `live`,
   * which differs only when masks hid parts of the logged copy.
   */
  publish(
    ref: ConferenceRef,
    event: ConferenceEvent,
    recipients: readonly Recipient[],
    logged: boolean,
    live: ConferenceEvent = event,
  ): void {
    const message: BusMessage = { kind: "conference", ref, event, recipients, logged, live };
    if (this.relay !== undefined) this.relay.send(message);
    else this.deliver(message);
  }

  /** Hands a message to this node's listeners and push sinks; their failures stay theirs. */
  deliver(message: BusMessage): void {
    if (message.kind === "call") {
      this.deliverCall(message.appId, message.recipients, message.event);
      return;
    }
    const { ref, event, recipients, logged, live } = message;
    for (const listener of [...(this.listeners.get(keyOf(ref)) ?? [])]) {
      try {
        listener(event, logged);
      } catch {
        // A broken listener must not stop the others.
      }
    }
    for (const sink of this.sinks) {
      try {
        sink(ref.appId, recipients, live);
      } catch {
        // Push is best effort per sink; the event log is the source of truth.
      }
    }
  }

  /**
   * Publishes an event that belongs to no conference (a call's) with the transaction that
   * changes the call: once it commits (everywhere, in commit order, in a cluster) it goes to
   * its recipients' endpoints and to the listeners of their users, so a call's events arrive
   * in version order; listener failures never reach the caller.
   */
  async stageCall(tx: Tx, appId: string, recipients: readonly Recipient[], event: CallEvent): Promise<void> {
    if (recipients.length === 0) return;
    if (this.relay !== undefined) await this.relay.sendInTx(tx, { kind: "call", appId, recipients, event });
    else tx.afterCommit(() => this.deliverCall(appId, recipients, event));
  }

  private deliverCall(appId: string, recipients: readonly Recipient[], event: CallEvent): void {
    for (const sink of this.sinks) {
      try {
        sink(appId, recipients, event);
      } catch {
        // Push is best effort per sink.
      }
    }
    for (const userId of new Set(recipients.map((r) => r.userId))) {
      for (const listener of [...(this.userListeners.get(`${appId}/${userId}`) ?? [])]) {
        try {
          listener(event);
        } catch {
          // A broken listener must not stop the others.
        }
      }
    }
  }
}

/**
 * In-process fan-out of conference events after their transaction commits: long-poll
 * waiters and event streams subscribe per conference, and push channels (MQTT) get every
 * event with the topics of its recipients. Nothing here polls SQLite.
 */
import type { Json } from "./conference-repository.js";

/** A user endpoint that receives an event on its push topic. */
export interface Recipient {
  readonly userId: string;
  readonly endpointId: string;
}

export type ConferenceListener = (event: Json, logged: boolean) => void;
export type PushSink = (recipients: readonly Recipient[], event: Json) => void;

export class EventBus {
  private readonly listeners = new Map<string, Set<ConferenceListener>>();
  private readonly sinks = new Set<PushSink>();

  /** Listens to one conference's events; returns the function that stops listening. */
  subscribe(conferenceId: string, listener: ConferenceListener): () => void {
    let set = this.listeners.get(conferenceId);
    if (set === undefined) {
      set = new Set();
      this.listeners.set(conferenceId, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.listeners.get(conferenceId) === set) this.listeners.delete(conferenceId);
    };
  }

  listenerCount(conferenceId?: string): number {
    if (conferenceId !== undefined) return this.listeners.get(conferenceId)?.size ?? 0;
    let n = 0;
    for (const set of this.listeners.values()) n += set.size;
    return n;
  }

  addPushSink(sink: PushSink): () => void {
    this.sinks.add(sink);
    return () => this.sinks.delete(sink);
  }

  /**
   * Delivers a committed (or best-effort) event; listener failures never reach the caller.
   * Listeners (long-poll, streams) get `event` as it was logged; push receivers get `live`,
   * which differs only when masks hid parts of the logged copy.
   */
  publish(
    conferenceId: string,
    event: Json,
    recipients: readonly Recipient[],
    logged: boolean,
    live: Json = event,
  ): void {
    for (const listener of [...(this.listeners.get(conferenceId) ?? [])]) {
      try {
        listener(event, logged);
      } catch {
        // A broken listener must not stop the others.
      }
    }
    for (const sink of this.sinks) {
      try {
        sink(recipients, live);
      } catch {
        // Push is best effort per sink; the event log is the source of truth.
      }
    }
  }
}

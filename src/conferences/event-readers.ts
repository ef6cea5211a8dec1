/**
 * Readers of a conference's event log: one-off reads, long-poll waiters and event streams.
 * Waiters and streams subscribe to the event bus before they read the log, so an event
 * committed between the read and the subscription cannot be missed.
 */
import type { ConferenceEvent } from "../../gen/rtcplane/conference/v1/events_pb.js";
import { resourceExhausted } from "../errors.js";
import type { ConferenceRepository, ConferenceRow } from "./conference-repository.js";
import type { ConferenceRef, EventBus } from "./event-bus.js";

export interface ConferenceSettings {
  readonly longPollTimeoutMs: number;
  readonly maxWaitersPerConference: number;
  /** Waiters of one tenant's apps together: one tenant cannot take the whole global cap. */
  readonly maxWaitersPerTenant: number;
  readonly maxWaiters: number;
}

const MAX_EVENTS_PER_ANSWER = 1000;
/** Live events held for one slow event-stream reader before its stream is ended. */
const MAX_QUEUED_PER_STREAM = 10_000;

function refOf(c: ConferenceRow): ConferenceRef {
  return { appId: c.appId, conferenceId: c.conferenceId };
}

export class ConferenceEventReaders {
  constructor(
    /** Bound to the store (never to a transaction): readers wait outside any. */
    private readonly repo: ConferenceRepository,
    private readonly bus: EventBus,
    private readonly settings: ConferenceSettings,
  ) {}

  /** Logged events with conferenceVersion >= fromVersion, at most 1000 per answer. */
  events(c: ConferenceRow, fromVersion: number): Promise<ConferenceEvent[]> {
    return this.repo.eventsSince(c.seq, fromVersion, MAX_EVENTS_PER_ANSWER);
  }

  /**
   * Long-poll: the logged events from `fromVersion` at once if there are any; otherwise
   * waits (up to the configured timeout or until `signal` aborts) for the next event and
   * answers with what the log then holds, or the best-effort event itself; `[]` on timeout.
   */
  async waitForEvents(
    c: ConferenceRow,
    fromVersion: number,
    signal: AbortSignal,
    tenantId: string,
  ): Promise<ConferenceEvent[]> {
    const ref = refOf(c);
    this.checkWaiterCaps(ref, tenantId);
    return new Promise<ConferenceEvent[]>((resolve, reject) => {
      let done = false;
      const stop = (): boolean => {
        if (done) return false;
        done = true;
        unsubscribe();
        stopResync();
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        return true;
      };
      // A shared read (eventsForWaiters) is adopted as it is: its failure rejects the answer.
      const finish = (events: ConferenceEvent[] | Promise<ConferenceEvent[]>) => {
        if (stop()) resolve(events);
      };
      const fail = (err: unknown) => {
        if (stop()) reject(err);
      };
      // Subscribe before reading the log so a commit in between is not missed.
      const unsubscribe = this.bus.subscribe(
        ref,
        (event, logged) => {
          if (done) return;
          if (!logged) finish([event]);
          else if (event.conferenceVersion === undefined || Number(event.conferenceVersion) >= fromVersion) {
            finish(this.eventsForWaiters(c.seq, fromVersion, event.id));
          }
        },
        tenantId,
      );
      const readLog = () =>
        this.repo.eventsSince(c.seq, fromVersion, MAX_EVENTS_PER_ANSWER).then((now) => {
          if (now.length > 0) finish(now);
        }, fail);
      // Events may have been missed (cluster channel interrupted): the log says.
      const stopResync = this.bus.onResync(() => void readLog());
      const timer = setTimeout(() => finish([]), this.settings.longPollTimeoutMs);
      const onAbort = () => finish([]);
      signal.addEventListener("abort", onAbort);
      if (signal.aborted) {
        // A listener added to an already-aborted signal never fires (e.g. during shutdown).
        finish([]);
        return;
      }
      void readLog();
    });
  }

  /**
   * Log reads made while one commit wakes its waiters, shared by waiters with the same
   * cursor. The read's Promise is kept (not its rows), so waiters woken together share one
   * read even while it is in flight, and all get the same array.
   */
  private readonly wakeReads = new Map<string, Promise<ConferenceEvent[]>>();

  /**
   * The log from `fromVersion` for a waiter being woken. Hundreds of waiters usually hold the
   * same cursor, so the read is made once per waking event and cursor, and forgotten after
   * (the bus calls a commit's waiters one after the other in one turn).
   */
  private eventsForWaiters(seq: number, fromVersion: number, wakingEventId: string): Promise<ConferenceEvent[]> {
    const key = `${seq}:${fromVersion}:${wakingEventId}`;
    let events = this.wakeReads.get(key);
    if (events === undefined) {
      if (this.wakeReads.size === 0) queueMicrotask(() => this.wakeReads.clear());
      events = this.repo.eventsSince(seq, fromVersion, MAX_EVENTS_PER_ANSWER);
      this.wakeReads.set(key, events);
    }
    return events;
  }

  /** Long-poll waiters and event streams share these caps (429 beyond them). */
  private checkWaiterCaps(ref: ConferenceRef, tenantId: string): void {
    if (this.bus.conferenceListeners(ref) >= this.settings.maxWaitersPerConference) {
      throw resourceExhausted("too many waiters on this conference");
    }
    if (this.bus.ownerListeners(tenantId) >= this.settings.maxWaitersPerTenant) {
      throw resourceExhausted("too many event waiters for this tenant");
    }
    if (this.bus.allListeners() >= this.settings.maxWaiters) {
      throw resourceExhausted("too many event waiters");
    }
  }

  /**
   * Events from `fromVersion` on (the log replayed a page at a time), then live ones, until
   * `signal` aborts. Live events that arrive during the replay are not sent twice.
   */
  async *watch(
    c: ConferenceRow,
    fromVersion: number,
    signal: AbortSignal,
    tenantId: string,
  ): AsyncGenerator<ConferenceEvent> {
    const ref = refOf(c);
    this.checkWaiterCaps(ref, tenantId);
    const queue: ConferenceEvent[] = [];
    let overflowed = false;
    let wake: (() => void) | undefined;
    // Subscribed before the replay reads the log: what commits meanwhile is queued.
    const unsubscribe = this.bus.subscribe(
      ref,
      (event) => {
        // A reader that cannot keep up loses its stream rather than our memory.
        if (queue.length >= MAX_QUEUED_PER_STREAM) overflowed = true;
        else queue.push(event);
        wake?.();
      },
      tenantId,
    );
    const onAbort = () => wake?.();
    signal.addEventListener("abort", onAbort);
    // Events may have been missed (cluster channel interrupted): the log is read again.
    let reread = false;
    const stopResync = this.bus.onResync(() => {
      reread = true;
      wake?.();
    });
    let next = fromVersion;
    const seen = new Set<unknown>();
    const repo = this.repo;
    async function* replay(): AsyncGenerator<ConferenceEvent> {
      for (;;) {
        const page = await repo.eventsSince(c.seq, next, MAX_EVENTS_PER_ANSWER);
        for (const e of page) {
          if (seen.has(e.id)) continue;
          seen.add(e.id);
          if (e.conferenceVersion !== undefined) next = Math.max(next, Number(e.conferenceVersion) + 1);
          yield e;
        }
        if (page.length < MAX_EVENTS_PER_ANSWER || signal.aborted) break;
      }
    }
    try {
      yield* replay();
      while (!signal.aborted) {
        if (overflowed) throw resourceExhausted("the event stream's reader is too slow");
        if (reread) {
          reread = false;
          yield* replay();
        }
        while (queue.length > 0) {
          const e = queue.shift() as ConferenceEvent;
          if (seen.has(e.id)) continue;
          if (e.conferenceVersion !== undefined && Number(e.conferenceVersion) < next) continue;
          if (e.conferenceVersion !== undefined) next = Number(e.conferenceVersion) + 1;
          yield e;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
          if (queue.length > 0 || signal.aborted || reread) resolve();
        });
        wake = undefined;
      }
    } finally {
      unsubscribe();
      stopResync();
      signal.removeEventListener("abort", onAbort);
    }
  }
}

/**
 * A Store that times what its callers wait for, into a histogram by store kind and statement
 * kind (select, insert, update, delete, with, other; "transaction" for a whole transaction,
 * retries included). The contract is the wrapped store's: every call is passed through, and
 * the caller gets the wrapped store's own promise (timing hangs off it, adding no turn).
 */
import type { Queryable, Store, Tx } from "./store.js";

const KINDS = ["select", "insert", "update", "delete", "with", "other", "transaction"] as const;
type Kind = (typeof KINDS)[number];
/** The first word after leading comments and spaces (statements may start with PLAN_EACH_TIME). */
const FIRST_WORD = /^\s*(?:\/\*[\s\S]*?\*\/\s*)*([A-Za-z]+)/;

export function statementKind(sql: string): Kind {
  const word = FIRST_WORD.exec(sql)?.[1]?.toLowerCase();
  return word === "select" || word === "insert" || word === "update" || word === "delete" || word === "with"
    ? word
    : "other";
}

type Observer = (seconds: number) => void;

/** Times `p` into `observe` without changing what its caller sees. */
function timed<T>(p: Promise<T>, observe: Observer): Promise<T> {
  const started = performance.now();
  const done = () => observe((performance.now() - started) / 1000);
  p.then(done, done);
  return p;
}

class TimedQueries implements Queryable {
  constructor(
    private readonly inner: Queryable,
    protected readonly observers: Record<Kind, Observer>,
  ) {}

  all<T>(sql: string, params?: readonly unknown[]): Promise<T[]> {
    return timed(this.inner.all<T>(sql, params), this.observers[statementKind(sql)]);
  }

  get<T>(sql: string, params?: readonly unknown[]): Promise<T | undefined> {
    return timed(this.inner.get<T>(sql, params), this.observers[statementKind(sql)]);
  }

  run(sql: string, params?: readonly unknown[]): Promise<number> {
    return timed(this.inner.run(sql, params), this.observers[statementKind(sql)]);
  }
}

class TimedTx extends TimedQueries implements Tx {
  constructor(
    private readonly tx: Tx,
    observers: Record<Kind, Observer>,
  ) {
    super(tx, observers);
  }

  afterCommit(fn: () => void): void {
    this.tx.afterCommit(fn);
  }

  notify(channel: string, payload: string): void {
    this.tx.notify(channel, payload);
  }
}

class TimedStore extends TimedQueries implements Store {
  readonly kind: Store["kind"];
  readonly forUpdate: string;

  constructor(
    private readonly store: Store,
    observers: Record<Kind, Observer>,
  ) {
    super(store, observers);
    this.kind = store.kind;
    this.forUpdate = store.forUpdate;
  }

  transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    return timed(
      this.store.transaction((tx) => fn(new TimedTx(tx, this.observers))),
      this.observers.transaction,
    );
  }

  listen(channel: string, onMessage: (payload: string) => void): Promise<() => void> {
    return this.store.listen(channel, onMessage);
  }

  withLease(name: string, work: () => Promise<void>): Promise<boolean> {
    return this.store.withLease(name, work);
  }

  close(): Promise<void> {
    return this.store.close();
  }
}

/** Where timings go: an observer per store kind and statement kind. */
export interface QueryTimes {
  observer(store: string, statement: string): Observer;
}

/** `store`, its statements and transactions timed into `times`. */
export function timedStore(store: Store, times: QueryTimes): Store {
  // One observer per kind, bound once: nothing is looked up per statement.
  const observers = {} as Record<Kind, Observer>;
  for (const kind of KINDS) observers[kind] = times.observer(store.kind, kind);
  return new TimedStore(store, observers);
}

/**
 * The repository contract both stores implement: SQL with `?` placeholders (rewritten to
 * `$n` for PostgreSQL), rows as plain objects with snake_case keys, integers as numbers, and
 * transactions whose work is bound to a `Tx` handle. Repositories are built over a
 * `Queryable` and rebound to a transaction with `repo.in(tx)`, so nothing needs an ambient
 * "current transaction" (AsyncLocalStorage would cost every promise in the process on Node 20).
 */
import { DomainError } from "../errors.js";

export interface Queryable {
  /** Every row the statement returns. */
  all<T>(sql: string, params?: readonly unknown[]): Promise<T[]>;
  /** The first row, or undefined. */
  get<T>(sql: string, params?: readonly unknown[]): Promise<T | undefined>;
  /** Runs a statement; resolves to the number of rows it changed. */
  run(sql: string, params?: readonly unknown[]): Promise<number>;
}

export interface Tx extends Queryable {
  /** Runs `fn` once the transaction has committed (never after a rollback), in order. */
  afterCommit(fn: () => void): void;
  /**
   * Sends `payload` on `channel` to every node when (and only if) the transaction commits;
   * listeners get messages of different transactions in commit order. Without a cluster
   * (SQLite), it is delivered to this process's listeners after the commit.
   */
  notify(channel: string, payload: string): void;
}

export type StoreKind = "sqlite" | "postgres";

export interface Store extends Queryable {
  readonly kind: StoreKind;
  /**
   * Appended to a SELECT that reads a row the transaction will change: a row lock on
   * PostgreSQL, nothing on SQLite (whose transactions already run one at a time).
   */
  readonly forUpdate: string;
  /**
   * Runs `fn` in one transaction; rolls back if it throws. PostgreSQL transactions that
   * lose a serialization race or a deadlock are run again (up to a few times), so `fn`
   * must have no effects outside `tx` other than through `afterCommit`/`notify`.
   * Never start a transaction from inside another: use the `tx` you were given.
   */
  transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T>;
  /**
   * Listens on a notification channel; `onMessage` gets each payload in commit order.
   * Resolves once listening; the returned function stops.
   */
  listen(channel: string, onMessage: (payload: string) => void): Promise<() => void>;
  /**
   * Runs `work` while this node holds the named lease (one node at a time in a cluster;
   * always on SQLite). Resolves false without running it when another node holds it.
   */
  withLease(name: string, work: () => Promise<void>): Promise<boolean>;
  close(): Promise<void>;
}

/** Raised when the database file or server cannot be used as it is. */
export class SchemaError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SchemaError";
  }
}

/** A write lost a race on a unique key (409 / ALREADY_EXISTS, not a 500). */
export function uniqueViolation(detail: string): DomainError {
  return new DomainError("already_exists", `already exists (${detail})`);
}

/** The database could not be reached or went away mid-request (503 / UNAVAILABLE). */
export function storeUnavailable(detail: string): DomainError {
  return new DomainError("unavailable", `storage unavailable: ${detail}`);
}

/**
 * Prefix for a statement whose best plan depends on its values: PostgreSQL then plans it on
 * every run instead of preparing it, since after five runs of a prepared statement it may
 * settle on a generic plan. (For "a conference's events after V, by seq" that plan walked the
 * whole event table in seq order: 9.8 ms against 0.05 ms at 30k events, found by bench:cluster.)
 * A comment, so SQLite reads it as nothing.
 */
export const PLAN_EACH_TIME = "/* plan each time */ ";

/** Builds `(?, ?, ?)` for an IN list of `n` values (n ≥ 1). */
export function placeholders(n: number): string {
  return `(${Array<string>(n).fill("?").join(", ")})`;
}

/**
 * The embedded store: one better-sqlite3 connection. Statements run synchronously (the
 * promises are already settled), are prepared once per SQL text, and transactions run one
 * at a time: while one is open (its function may await between statements), queries made
 * outside it wait, so they never join — or get rolled back with — someone else's work.
 */
import type Database from "better-sqlite3";
import { type Db, openDatabase } from "./database.js";
import { type Queryable, type Store, storeUnavailable, type Tx, uniqueViolation } from "./store.js";

type Statement = Database.Statement<unknown[], unknown>;
type Listener = (payload: string) => void;

function translateError(e: unknown): unknown {
  const code = (e as { code?: unknown })?.code;
  if (code === "SQLITE_CONSTRAINT_UNIQUE" || code === "SQLITE_CONSTRAINT_PRIMARYKEY") {
    return uniqueViolation((e as Error).message.replace(/^UNIQUE constraint failed: /, ""));
  }
  if (code === "SQLITE_BUSY" || code === "SQLITE_FULL" || code === "SQLITE_IOERR") {
    return storeUnavailable((e as Error).message);
  }
  return e;
}

export class SqliteStore implements Store {
  readonly kind = "sqlite" as const;
  readonly forUpdate = "";
  private readonly statements = new Map<string, Statement>();
  private readonly listeners = new Map<string, Set<Listener>>();
  /** Settles when the open transaction ends; undefined when none is open. */
  private openTx: Promise<void> | undefined;
  private readonly begin: Statement;
  private readonly commit: Statement;
  private readonly rollback: Statement;

  constructor(readonly db: Db) {
    this.begin = db.prepare("BEGIN IMMEDIATE");
    this.commit = db.prepare("COMMIT");
    this.rollback = db.prepare("ROLLBACK");
  }

  static open(file: string): SqliteStore {
    return new SqliteStore(openDatabase(file));
  }

  statement(sql: string): Statement {
    let stmt = this.statements.get(sql);
    if (stmt === undefined) {
      stmt = this.db.prepare(sql);
      this.statements.set(sql, stmt);
    }
    return stmt;
  }

  async all<T>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
    while (this.openTx !== undefined) await this.openTx;
    return this.allNow<T>(sql, params);
  }

  async get<T>(sql: string, params: readonly unknown[] = []): Promise<T | undefined> {
    while (this.openTx !== undefined) await this.openTx;
    return this.getNow<T>(sql, params);
  }

  async run(sql: string, params: readonly unknown[] = []): Promise<number> {
    while (this.openTx !== undefined) await this.openTx;
    return this.runNow(sql, params);
  }

  allNow<T>(sql: string, params: readonly unknown[]): T[] {
    try {
      return this.statement(sql).all(...params) as T[];
    } catch (e) {
      throw translateError(e);
    }
  }

  getNow<T>(sql: string, params: readonly unknown[]): T | undefined {
    try {
      return this.statement(sql).get(...params) as T | undefined;
    } catch (e) {
      throw translateError(e);
    }
  }

  runNow(sql: string, params: readonly unknown[]): number {
    try {
      return this.statement(sql).run(...params).changes;
    } catch (e) {
      throw translateError(e);
    }
  }

  async transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    while (this.openTx !== undefined) await this.openTx;
    let end = () => {};
    this.openTx = new Promise<void>((resolve) => {
      end = resolve;
    });
    const tx = new SqliteTx(this);
    try {
      try {
        this.begin.run();
      } catch (e) {
        throw translateError(e);
      }
      let result: T;
      try {
        result = await fn(tx);
        this.commit.run();
      } catch (e) {
        if (this.db.inTransaction) this.rollback.run();
        throw translateError(e);
      }
      tx.committed();
      return result;
    } finally {
      tx.closed = true;
      this.openTx = undefined;
      end();
    }
  }

  /** Delivers a committed transaction's notification to this process's listeners. */
  deliver(channel: string, payload: string): void {
    for (const listener of [...(this.listeners.get(channel) ?? [])]) {
      try {
        listener(payload);
      } catch {
        // One listener's failure must not stop the others.
      }
    }
  }

  async listen(channel: string, onMessage: Listener): Promise<() => void> {
    let set = this.listeners.get(channel);
    if (set === undefined) {
      set = new Set();
      this.listeners.set(channel, set);
    }
    set.add(onMessage);
    return () => set.delete(onMessage);
  }

  async withLease(_name: string, work: () => Promise<void>): Promise<boolean> {
    await work();
    return true;
  }

  async close(): Promise<void> {
    while (this.openTx !== undefined) await this.openTx;
    this.db.close();
  }
}

class SqliteTx implements Tx, Queryable {
  closed = false;
  private readonly after: (() => void)[] = [];

  constructor(private readonly store: SqliteStore) {}

  private check(): void {
    if (this.closed) throw new Error("transaction used after it ended");
  }

  async all<T>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
    this.check();
    return this.store.allNow<T>(sql, params);
  }

  async get<T>(sql: string, params: readonly unknown[] = []): Promise<T | undefined> {
    this.check();
    return this.store.getNow<T>(sql, params);
  }

  async run(sql: string, params: readonly unknown[] = []): Promise<number> {
    this.check();
    return this.store.runNow(sql, params);
  }

  afterCommit(fn: () => void): void {
    this.check();
    this.after.push(fn);
  }

  notify(channel: string, payload: string): void {
    this.afterCommit(() => this.store.deliver(channel, payload));
  }

  committed(): void {
    for (const fn of this.after) {
      try {
        fn();
      } catch {
        // What runs after a commit cannot undo it; its failure is its own.
      }
    }
  }
}

/**
 * The one SQLite file under DATA_DIR: WAL so readers never block the writer,
 * foreign keys on, a busy timeout instead of SQLITE_BUSY errors, and migrations that
 * refuse a database written by newer code rather than guess at its schema.
 */
import fs from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { migrations as defaultMigrations, type Migration } from "./migrations.js";
import { SchemaError } from "./store.js";

export type Db = Database.Database;

export { SchemaError };

/** Opens (creating if needed) the database and brings its schema up to date. */
export function openDatabase(file: string, migrations: readonly Migration[] = defaultMigrations): Db {
  if (file !== ":memory:") {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    // SQLite gives the -wal and -shm files the database file's mode: make that 0600 first.
    fs.closeSync(fs.openSync(file, "a", 0o600));
    fs.chmodSync(file, 0o600);
  }
  const db = new Database(file);
  try {
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = NORMAL");
    db.pragma("foreign_keys = ON");
    db.pragma("busy_timeout = 5000");
    migrate(db, migrations);
    return db;
  } catch (e) {
    db.close();
    throw e;
  }
}

/** Applies the migrations above the file's user_version, each in its own transaction. */
export function migrate(db: Db, migrations: readonly Migration[]): number {
  const current = db.pragma("user_version", { simple: true }) as number;
  const latest = migrations.reduce((max, m) => Math.max(max, m.version), 0);
  if (current > latest) {
    throw new SchemaError(
      `database schema version ${current} is newer than this server understands (${latest}); ` +
        "run a newer rtcplane or restore a backup",
    );
  }
  const pending = migrations.filter((m) => m.version > current).sort((a, b) => a.version - b.version);
  for (const m of pending) {
    const foreignKeys = db.pragma("foreign_keys", { simple: true }) as number;
    if (m.rebuildsTables) db.pragma("foreign_keys = OFF");
    try {
      db.transaction(() => {
        db.exec(m.sqlite);
        if (m.rebuildsTables) {
          const broken = db.pragma("foreign_key_check") as unknown[];
          if (broken.length > 0) throw new SchemaError(`migration ${m.version} breaks ${broken.length} foreign keys`);
        }
        db.pragma(`user_version = ${m.version}`);
      })();
    } finally {
      if (m.rebuildsTables) db.pragma(`foreign_keys = ${foreignKeys}`);
    }
  }
  return pending.length;
}

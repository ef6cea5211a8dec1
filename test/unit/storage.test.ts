import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { migrate, openDatabase, SchemaError } from "../../src/storage/database.js";
import { migrations } from "../../src/storage/migrations.js";

const tempFile = () => path.join(fs.mkdtempSync(path.join(os.tmpdir(), "rtcplane-db-")), "t.db");

describe("SQLite storage", () => {
  it("opens in WAL with foreign keys and migrates to the latest version", () => {
    const db = openDatabase(tempFile());
    assert.equal(db.pragma("journal_mode", { simple: true }), "wal");
    assert.equal(db.pragma("foreign_keys", { simple: true }), 1);
    assert.equal(db.pragma("user_version", { simple: true }), Math.max(...migrations.map((m) => m.version)));
    const strict = db.prepare("SELECT strict FROM pragma_table_list WHERE name = 'tenants'").get() as {
      strict: number;
    };
    assert.equal(strict.strict, 1, "tables are STRICT");
    db.close();
  });

  it("applies only pending migrations, each with its version", () => {
    const file = tempFile();
    const first = [{ version: 1, name: "a", postgres: "", sqlite: "CREATE TABLE a (x INTEGER) STRICT;" }];
    const both = [...first, { version: 2, name: "b", postgres: "", sqlite: "CREATE TABLE b (y TEXT) STRICT;" }];
    openDatabase(file, first).close();
    const db = openDatabase(file, both);
    assert.equal(db.pragma("user_version", { simple: true }), 2);
    assert.equal(migrate(db, both), 0, "nothing left to apply");
    db.close();
  });

  it("rolls a failing migration back whole", () => {
    const file = tempFile();
    const broken = [
      { version: 1, name: "bad", postgres: "", sqlite: "CREATE TABLE ok (x INTEGER) STRICT; CREATE TABLE nope (;" },
    ];
    assert.throws(() => openDatabase(file, broken));
    const db = openDatabase(file, [
      { version: 1, name: "good", postgres: "", sqlite: "CREATE TABLE ok (x INTEGER) STRICT;" },
    ]);
    assert.equal(db.pragma("user_version", { simple: true }), 1, "the broken one left no trace");
    db.close();
  });

  it("refuses a database written by newer code", () => {
    const file = tempFile();
    const db = openDatabase(file);
    db.pragma("user_version = 999");
    db.close();
    assert.throws(
      () => openDatabase(file),
      (e: unknown) => e instanceof SchemaError && /newer than this server/.test(e.message),
    );
  });

  it("rejects rows that break STRICT types", () => {
    const db = openDatabase(tempFile());
    assert.throws(() =>
      db
        .prepare(
          "INSERT INTO tenants (tenant_id, name, status, token_hash, create_time_ms, update_time_ms) VALUES ('t', 'n', 'active', x'00', 'soon', 1)",
        )
        .run(),
    );
    db.close();
  });
});

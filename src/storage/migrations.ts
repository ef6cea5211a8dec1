/**
 * Numbered schema migrations. Each runs in one transaction that ends by setting
 * PRAGMA user_version to its number, so a crash never leaves half a migration.
 * Append only: never edit a migration that has shipped.
 */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: "tenants",
    sql: `
      CREATE TABLE tenants (
        seq INTEGER PRIMARY KEY,
        tenant_id TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'deleted')),
        token_hash BLOB NOT NULL UNIQUE,
        create_time_ms INTEGER NOT NULL,
        update_time_ms INTEGER NOT NULL
      ) STRICT;
    `,
  },
  {
    version: 2,
    name: "apps",
    sql: `
      CREATE TABLE apps (
        seq INTEGER PRIMARY KEY,
        app_id TEXT NOT NULL UNIQUE,
        tenant_id TEXT NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
        apikey TEXT NOT NULL UNIQUE,
        secret_hash BLOB NOT NULL UNIQUE,
        secret_enc BLOB NOT NULL,
        description TEXT NOT NULL,
        domains TEXT NOT NULL,
        permissions TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
        recording_bucket TEXT NOT NULL,
        recording_key_enc BLOB,
        create_time_ms INTEGER NOT NULL,
        update_time_ms INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX apps_by_tenant ON apps (tenant_id, seq);
      CREATE TABLE app_usage (
        app_seq INTEGER NOT NULL REFERENCES apps (seq) ON DELETE CASCADE,
        month TEXT NOT NULL CHECK (month GLOB '[0-9][0-9][0-9][0-9]/[0-9][0-9]'),
        signaling INTEGER NOT NULL DEFAULT 0,
        turn INTEGER NOT NULL DEFAULT 0,
        sfu INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (app_seq, month)
      ) STRICT, WITHOUT ROWID;
    `,
  },
  {
    version: 3,
    name: "rooms",
    sql: `
      CREATE TABLE rooms (
        seq INTEGER PRIMARY KEY,
        room_id TEXT NOT NULL UNIQUE,
        app_id TEXT NOT NULL REFERENCES apps (app_id) ON DELETE CASCADE,
        name TEXT,
        description TEXT,
        conference_type TEXT NOT NULL CHECK (conference_type IN ('MESH', 'SFU')),
        auto_upgrade_participant_count INTEGER,
        max_participants INTEGER NOT NULL,
        room_token_ttl_seconds INTEGER NOT NULL,
        room_ttl_seconds INTEGER NOT NULL,
        endpoint_ttl_seconds INTEGER NOT NULL,
        creation_time_ms INTEGER NOT NULL,
        modification_time_ms INTEGER NOT NULL,
        last_used_ms INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX rooms_by_app ON rooms (app_id, seq);
      CREATE INDEX rooms_by_expiry ON rooms (last_used_ms);
    `,
  },
];

/**
 * Numbered schema migrations. Each runs in one transaction that ends by setting
 * PRAGMA user_version to its number, so a crash never leaves half a migration.
 * Append only: never edit a migration that has shipped.
 */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
  /**
   * Rebuilds tables that others reference (SQLite's 12-step ALTER procedure): foreign keys
   * are switched off around the transaction, so dropping the old table cascades nowhere,
   * and checked in full before it commits.
   */
  readonly rebuildsTables?: boolean;
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
  {
    version: 4,
    name: "conferences and user endpoints",
    sql: `
      CREATE TABLE conferences (
        seq INTEGER PRIMARY KEY,
        conference_id TEXT NOT NULL UNIQUE,
        app_id TEXT NOT NULL REFERENCES apps (app_id) ON DELETE CASCADE,
        room_id TEXT,
        mode TEXT NOT NULL CHECK (mode IN ('P2P', 'ROUTER')),
        creator TEXT NOT NULL,
        creator_endpoint TEXT NOT NULL,
        max_participants INTEGER,
        auto_upgrade_count INTEGER,
        version INTEGER NOT NULL,
        ended INTEGER NOT NULL DEFAULT 0,
        end_reason TEXT,
        create_time_ms INTEGER NOT NULL,
        update_time_ms INTEGER NOT NULL
      ) STRICT;
      CREATE TABLE conference_metadata (
        conference_seq INTEGER NOT NULL REFERENCES conferences (seq) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        last_modified_ms INTEGER NOT NULL,
        user_endpoint_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        PRIMARY KEY (conference_seq, key)
      ) STRICT, WITHOUT ROWID;
      CREATE TABLE participants (
        conference_seq INTEGER NOT NULL REFERENCES conferences (seq) ON DELETE CASCADE,
        endpoint_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        metadata TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('HEALTHY', 'SICK')),
        join_time_ms INTEGER NOT NULL,
        PRIMARY KEY (conference_seq, endpoint_id)
      ) STRICT, WITHOUT ROWID;
      CREATE INDEX participants_by_endpoint ON participants (endpoint_id);
      CREATE TABLE streams (
        conference_seq INTEGER NOT NULL REFERENCES conferences (seq) ON DELETE CASCADE,
        stream_id TEXT NOT NULL,
        endpoint_id TEXT NOT NULL,
        type TEXT NOT NULL CHECK (type IN ('CAM', 'MIC', 'MIC_AND_CAM', 'SCREEN')),
        metadata TEXT NOT NULL,
        video_bitrate INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (conference_seq, stream_id)
      ) STRICT, WITHOUT ROWID;
      CREATE TABLE conference_events (
        seq INTEGER PRIMARY KEY,
        conference_seq INTEGER NOT NULL REFERENCES conferences (seq) ON DELETE CASCADE,
        conference_version INTEGER,
        body TEXT NOT NULL,
        create_time_ms INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX conference_events_by_conference ON conference_events (conference_seq, seq);
      CREATE TABLE user_endpoints (
        endpoint_id TEXT PRIMARY KEY,
        app_id TEXT NOT NULL REFERENCES apps (app_id) ON DELETE CASCADE,
        user_id TEXT NOT NULL,
        keep_alive_seconds INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('HEALTHY', 'SICK')),
        last_seen_ms INTEGER NOT NULL,
        create_time_ms INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX user_endpoints_by_app ON user_endpoints (app_id, user_id);
    `,
  },
  {
    version: 5,
    name: "per-app conference and endpoint ids, credential generations, refresh token families",
    rebuildsTables: true,
    sql: `
      CREATE TABLE conferences_new (
        seq INTEGER PRIMARY KEY,
        conference_id TEXT NOT NULL,
        app_id TEXT NOT NULL REFERENCES apps (app_id) ON DELETE CASCADE,
        room_id TEXT,
        mode TEXT NOT NULL CHECK (mode IN ('P2P', 'ROUTER')),
        creator TEXT NOT NULL,
        creator_endpoint TEXT NOT NULL,
        max_participants INTEGER,
        auto_upgrade_count INTEGER,
        version INTEGER NOT NULL,
        ended INTEGER NOT NULL DEFAULT 0,
        end_reason TEXT,
        create_time_ms INTEGER NOT NULL,
        update_time_ms INTEGER NOT NULL,
        UNIQUE (app_id, conference_id)
      ) STRICT;
      INSERT INTO conferences_new SELECT seq, conference_id, app_id, room_id, mode, creator, creator_endpoint,
        max_participants, auto_upgrade_count, version, ended, end_reason, create_time_ms, update_time_ms
        FROM conferences;
      DROP TABLE conferences;
      ALTER TABLE conferences_new RENAME TO conferences;

      CREATE TABLE user_endpoints_new (
        app_id TEXT NOT NULL REFERENCES apps (app_id) ON DELETE CASCADE,
        endpoint_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        keep_alive_seconds INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('HEALTHY', 'SICK')),
        last_seen_ms INTEGER NOT NULL,
        create_time_ms INTEGER NOT NULL,
        PRIMARY KEY (app_id, endpoint_id)
      ) STRICT, WITHOUT ROWID;
      INSERT INTO user_endpoints_new SELECT app_id, endpoint_id, user_id, keep_alive_seconds, state, last_seen_ms,
        create_time_ms FROM user_endpoints;
      DROP TABLE user_endpoints;
      ALTER TABLE user_endpoints_new RENAME TO user_endpoints;
      CREATE INDEX user_endpoints_by_user ON user_endpoints (app_id, user_id);
      CREATE INDEX user_endpoints_by_last_seen ON user_endpoints (last_seen_ms);

      ALTER TABLE apps ADD COLUMN credential_gen INTEGER NOT NULL DEFAULT 1;

      CREATE TABLE refresh_families (
        family_id TEXT PRIMARY KEY,
        app_id TEXT NOT NULL REFERENCES apps (app_id) ON DELETE CASCADE,
        current_jti TEXT NOT NULL,
        revoked INTEGER NOT NULL DEFAULT 0,
        expires_ms INTEGER NOT NULL,
        create_time_ms INTEGER NOT NULL
      ) STRICT, WITHOUT ROWID;
      CREATE INDEX refresh_families_by_expiry ON refresh_families (expires_ms);
    `,
  },
  {
    version: 6,
    name: "one-to-one calls; running conferences by app",
    sql: `
      CREATE TABLE calls (
        app_id TEXT NOT NULL REFERENCES apps (app_id) ON DELETE CASCADE,
        call_id TEXT NOT NULL,
        caller_user TEXT NOT NULL,
        caller_endpoint TEXT NOT NULL,
        target_user TEXT NOT NULL,
        callee_endpoint TEXT,
        state TEXT NOT NULL CHECK (state IN ('CREATED', 'RINGING', 'ANSWERED', 'ENDED', 'REJECTED', 'CANCELLED')),
        version INTEGER NOT NULL,
        sip_headers TEXT NOT NULL,
        held_candidates TEXT NOT NULL,
        ring_deadline_ms INTEGER NOT NULL,
        create_time_ms INTEGER NOT NULL,
        update_time_ms INTEGER NOT NULL,
        PRIMARY KEY (app_id, call_id)
      ) STRICT, WITHOUT ROWID;
      CREATE INDEX calls_by_caller_endpoint ON calls (app_id, caller_endpoint, state);
      CREATE INDEX calls_by_callee_endpoint ON calls (app_id, callee_endpoint, state);
      CREATE INDEX calls_by_state ON calls (state, ring_deadline_ms);
      CREATE INDEX conferences_running ON conferences (app_id, ended, seq);
    `,
  },
];

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
];

/** The start banner: where to go next, for the person who started the server. */
import path from "node:path";
import type { Config } from "../config.js";

/**
 * Where to go next, for the person who started the server: on stderr, outside the log stream,
 * so a generated admin token is shown once and never ends up in log storage.
 */
export function printBanner(url: string, config: Config, generatedToken: string | undefined): void {
  const lines = [
    "",
    `rtcplane is listening on ${url}`,
    `  console   ${url}/`,
    `  API docs  ${url}/docs`,
    `  store     ${config.databaseUrl === undefined ? path.join(config.dataDir, "rtcplane.db") : "PostgreSQL (DATABASE_URL)"}`,
  ];
  if (generatedToken !== undefined) {
    lines.push(`  Generated ADMIN_TOKEN (shown only now; its hash is in ${config.dataDir}):`, `    ${generatedToken}`);
  }
  process.stderr.write(`${lines.join("\n")}\n\n`);
}

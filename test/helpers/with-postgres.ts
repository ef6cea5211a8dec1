/**
 * Runs a command with a throwaway PostgreSQL for it: `tsx test/helpers/with-postgres.ts <cmd> [args…]`
 * starts one (test/helpers/postgres.ts), exports TEST_PG_URL (its maintenance database) and
 * TEST_STORE=postgres, runs the command and stops the server, whatever the command's outcome.
 */
import { spawn } from "node:child_process";
import { startPostgres } from "./postgres.js";

const [cmd, ...args] = process.argv.slice(2);
if (cmd === undefined) {
  process.stderr.write("usage: with-postgres.ts <command> [args…]\n");
  process.exit(2);
}
const server = await startPostgres({ durable: false });
process.stderr.write(`PostgreSQL on 127.0.0.1:${server.port} (pid ${server.process.pid})\n`);
const child = spawn(cmd, args, {
  stdio: "inherit",
  env: { ...process.env, TEST_PG_URL: server.url(), TEST_STORE: "postgres" },
});
const stop = () => child.kill("SIGTERM");
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
const code = await new Promise<number>((resolve) => child.once("exit", (c, signal) => resolve(c ?? (signal ? 1 : 0))));
await server.stop();
process.exit(code);

/**
 * A real coturn (Debian's `turnserver`) for tests: TURN REST API credentials
 * (`use-auth-secret` with a static secret) on a free loopback port, relaying from loopback
 * to loopback peers (allowed here only: production denies private ranges), its database and
 * pid file in a temp directory, stopped by its PID.
 */
import { randomBytes } from "node:crypto";
import path from "node:path";
import { type Daemon, spawnDaemon } from "./nats.js";

export const COTURN_REALM = "rtcplane.test";

export interface Coturn extends Daemon {
  readonly secret: string;
  /** `turn:127.0.0.1:<port>?transport=udp` and `…?transport=tcp`. */
  readonly uris: readonly string[];
  /** The relay port range (each allocation takes a port from it). */
  readonly minPort: number;
  readonly maxPort: number;
  /** Everything it logged so far (verbose: sessions, allocations, refused requests). */
  log(): string;
}

export async function startCoturn(secret = randomBytes(24).toString("hex")): Promise<Coturn> {
  // A relay range of its own, away from the SFU's default 40000–49999.
  const minPort = 50000 + Math.floor(Math.random() * 90) * 100;
  const maxPort = minPort + 99;
  const daemon = await spawnDaemon(
    "turnserver",
    (port, dir) => [
      "-n", // no configuration file: only these flags
      "--listening-ip=127.0.0.1",
      "--relay-ip=127.0.0.1",
      `--listening-port=${port}`,
      `--min-port=${minPort}`,
      `--max-port=${maxPort}`,
      "--use-auth-secret",
      `--static-auth-secret=${secret}`,
      `--realm=${COTURN_REALM}`,
      "--no-tls",
      "--no-dtls",
      "--no-cli",
      "--allow-loopback-peers",
      "--fingerprint",
      "--no-software-attribute",
      "--log-file=stdout",
      "--simple-log",
      "-v",
      "-m",
      "1",
      `--userdb=${path.join(dir, "turndb")}`,
      `--pidfile=${path.join(dir, "turnserver.pid")}`,
    ],
    "UDP listener opened on",
    "rtcplane-coturn-",
  );
  let output = "";
  daemon.process.stdout?.on("data", (chunk: Buffer) => {
    if (output.length < 4 * 1024 * 1024) output += chunk.toString();
  });
  return {
    ...daemon,
    secret,
    uris: [`turn:127.0.0.1:${daemon.port}?transport=udp`, `turn:127.0.0.1:${daemon.port}?transport=tcp`],
    minPort,
    maxPort,
    log: () => output,
  };
}

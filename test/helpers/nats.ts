/**
 * A real NATS server (Debian's `nats-server`) for tests and benchmarks: on a free loopback
 * port, working in a temp directory, stopped by its PID. `spawnDaemon` is the shared part
 * (the Redis of bench/spreed-bus.bench.ts starts the same way).
 */
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import { tempDir } from "./server.js";

export interface Daemon {
  readonly port: number;
  readonly pid: number;
  readonly process: ChildProcess;
  readonly dir: string;
  /** SIGTERM (SIGKILL after 5 s), then the temp directory is removed. */
  stop(): Promise<void>;
}

/** A loopback TCP port free at the moment of asking (the daemon helpers retry if it is taken). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts `command args(port)` in a fresh temp directory and waits until its output contains
 * `readyText`; retries on another port if the first was taken in between.
 */
export async function spawnDaemon(
  command: string,
  args: (port: number, dir: string) => string[],
  readyText: string,
  prefix: string,
  fixedPort?: number,
): Promise<Daemon> {
  const dir = tempDir(prefix);
  for (let attempt = 1; ; attempt++) {
    const port = fixedPort ?? (await freePort());
    const child = spawn(command, args(port, dir), { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    const ready = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 15_000);
      const read = (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes(readyText)) {
          clearTimeout(timer);
          resolve(true);
        }
      };
      child.stdout?.on("data", read);
      child.stderr?.on("data", read);
      child.once("error", () => resolve(false));
      child.once("exit", () => {
        clearTimeout(timer);
        resolve(false);
      });
    });
    const pid = child.pid;
    if (!ready || pid === undefined) {
      if (pid !== undefined) process.kill(pid, "SIGKILL");
      if (attempt < 3 && fixedPort === undefined) continue;
      fs.rmSync(dir, { recursive: true, force: true });
      throw new Error(`${command} did not start:\n${out.slice(-2000)}`);
    }
    // Keep reading so a chatty daemon never blocks on a full pipe.
    child.stdout?.resume();
    child.stderr?.resume();
    const exited = new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once("exit", () => resolve());
    });
    return {
      port,
      pid,
      process: child,
      dir,
      stop: async () => {
        try {
          process.kill(pid, "SIGTERM");
        } catch {
          // already gone
        }
        const timer = setTimeout(() => {
          try {
            process.kill(pid, "SIGKILL");
          } catch {
            // already gone
          }
        }, 5_000);
        await exited;
        clearTimeout(timer);
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  }
}

export interface NatsServer extends Daemon {
  /** `nats://127.0.0.1:<port>` */
  readonly url: string;
}

/**
 * `nats-server` on 127.0.0.1 (on `port` when given: a restart where clients reconnect), no
 * persistence (core NATS only).
 */
export async function startNats(port?: number): Promise<NatsServer> {
  const daemon = await spawnDaemon(
    "nats-server",
    (p, dir) => ["-a", "127.0.0.1", "-p", String(p), "-P", `${dir}/nats.pid`],
    "Server is ready",
    "rtcplane-nats-",
    port,
  );
  return { ...daemon, url: `nats://127.0.0.1:${daemon.port}` };
}

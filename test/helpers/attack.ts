/**
 * For attack tests: a server in its own process (so a crash is seen and its memory can be
 * read), a health probe in another, and the figures the tests assert on.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { ROOT } from "./protoc.js";
import { type ChildServer, spawnServer, tempDir } from "./server.js";

export interface HealthFigures {
  readonly n: number;
  readonly failures: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

/** Resident memory of a process, in MiB. */
export function rssMiB(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? Number.NaN);
  return Math.round((kb / 1024) * 10) / 10;
}

/** Starts probing `url`'s /healthz; `stop()` answers the latency figures. */
export async function startHealthProbe(url: string, localAddress = "127.0.0.1"): Promise<() => Promise<HealthFigures>> {
  const child = spawn(process.execPath, [path.join(ROOT, "test/helpers/health-probe.mjs"), url, "20", localAddress], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout.on("data", (c: Buffer) => {
    out += c.toString();
  });
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("health probe did not start")), 10_000);
    child.stdout.on("data", () => {
      if (out.includes("ready")) {
        clearTimeout(t);
        resolve();
      }
    });
  });
  return async () => {
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    await exited;
    return JSON.parse(out.split("\n").find((l) => l.startsWith("{")) ?? "{}") as HealthFigures;
  };
}

/** Runs `attack` while probing health; answers the attack's result and the health figures. */
export async function underAttack<T>(
  url: string,
  attack: () => Promise<T>,
): Promise<{ result: T; health: HealthFigures }> {
  const stop = await startHealthProbe(url);
  // Let the probe take a few quiet samples first, so figures are never empty.
  await new Promise((r) => setTimeout(r, 200));
  try {
    const result = await attack();
    return { result, health: await stop() };
  } catch (e) {
    await stop();
    throw e;
  }
}

export interface AttackTarget extends ChildServer {
  readonly pid: number;
  readonly dataDir: string;
}

/** A server in its own process, with a fresh data directory. */
export async function attackTarget(env: Record<string, string> = {}): Promise<AttackTarget> {
  const dataDir = tempDir("rtcplane-attack-");
  const child = await spawnServer(dataDir, env);
  return { ...child, pid: child.process.pid as number, dataDir };
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Benchmark servers as child processes: started, announced, measured from /proc, stopped. */
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

export const ROOT = path.resolve(import.meta.dirname, "../..");

export interface Child {
  readonly proc: ChildProcess;
  readonly pid: number;
  /** What the child announced: ports, or rtcplane's URL. */
  readonly ready: Record<string, unknown>;
  stop(): Promise<void>;
}

/**
 * Spawns `node [args]` and waits for a JSON line on stdout that `isReady` accepts (our
 * baseline servers print `{"ready":true,...}`; rtcplane logs `"msg":"listening"`).
 */
export async function startChild(
  args: readonly string[],
  env: Record<string, string> = {},
  isReady: (line: Record<string, unknown>) => boolean = (l) => l.ready === true,
): Promise<Child> {
  const proc = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let err = "";
  proc.stderr?.on("data", (c: Buffer) => {
    err += c.toString();
  });
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`${args.join(" ")} did not start:\n${out}${err}`)), 30_000);
    proc.stdout?.on("data", (c: Buffer) => {
      out += c.toString();
      for (const line of out.split("\n")) {
        if (!line.startsWith("{")) continue;
        try {
          const parsed = JSON.parse(line) as Record<string, unknown>;
          if (isReady(parsed)) {
            clearTimeout(timer);
            resolve(parsed);
            return;
          }
        } catch {
          // A partial line; more will come.
        }
      }
    });
    proc.once("exit", (code) => reject(new Error(`${args.join(" ")} exited with ${code}:\n${out}${err}`)));
  });
  // Keep draining output so a chatty child never blocks on a full pipe.
  proc.stdout?.resume();
  return {
    proc,
    pid: proc.pid as number,
    ready,
    stop: () =>
      new Promise((resolve) => {
        if (proc.exitCode !== null) return resolve();
        proc.once("exit", () => resolve());
        proc.kill("SIGKILL");
      }),
  };
}

const CLOCK_TICKS_PER_SECOND = 100;

/** CPU time (user + system) a process has used, in milliseconds. */
export function cpuMs(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may hold spaces) start at index 2 of this split.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return ((utime + stime) * 1000) / CLOCK_TICKS_PER_SECOND;
}

/** Resident memory of a process, in MiB. */
export function rssMiB(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? Number.NaN) / 1024;
}

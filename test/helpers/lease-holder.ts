/**
 * A PostgreSQL store in a child process that takes a lease and keeps it (its work never ends),
 * for a test that freezes the holder with SIGSTOP. Prints "held" once it holds the lease.
 *
 *   node --import tsx test/helpers/lease-holder.ts <database url> <lease name> <lease timeout ms>
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { createLogger } from "../../src/observability/log.js";
import { PostgresStore } from "../../src/storage/postgres-store.js";

/** Starts a holder; resolves once it holds `lease`. */
export async function spawnLeaseHolder(
  url: string,
  lease: string,
  leaseTimeoutMs: number,
): Promise<{ pid: number; exited: Promise<void> }> {
  const child = spawn(process.execPath, ["--import", "tsx", import.meta.filename, url, lease, String(leaseTimeoutMs)], {
    cwd: path.resolve(import.meta.dirname, "../.."),
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.once("error", reject); // it could not be started
    let out = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`lease holder did not take the lease: ${out}`));
    }, 20_000);
    child.stdout?.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes("held\n")) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then(() => reject(new Error(`lease holder exited: ${out}`)));
  });
  return { pid: child.pid as number, exited };
}

if (process.argv[1] === import.meta.filename) {
  const [url, lease, timeout] = process.argv.slice(2);
  if (url === undefined || lease === undefined || timeout === undefined) {
    throw new Error("usage: lease-holder.ts <database url> <lease name> <lease timeout ms>");
  }
  const store = await PostgresStore.open({
    url,
    poolSize: 1,
    logger: createLogger("silent"),
    leaseTimeoutMs: Number.parseInt(timeout, 10),
  });
  const got = await store.withLease(lease, async () => {
    process.stdout.write("held\n");
    await new Promise(() => {}); // holds it until killed
  });
  if (!got) throw new Error(`lease ${lease} was taken`);
}

/**
 * Conference API figures, measured in one run on loopback: command throughput (each a
 * SQLite transaction that changes state, logs an event and bumps the version), and how
 * fast N long-poll waiters are woken by one commit. Prints figures; asserts nothing.
 *
 *   npx tsx bench/conference.bench.ts          # BENCH_COMMANDS=1000 BENCH_WAITERS=200
 */
import { performance } from "node:perf_hooks";
import { createApp, serviceToken, startServer } from "../test/helpers/server.js";

const COMMANDS = Number(process.env.BENCH_COMMANDS ?? 1000);
const WAITERS = Number(process.env.BENCH_WAITERS ?? 200);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

const server = await startServer({ LOG_LEVEL: "silent", LONG_POLL_TIMEOUT_MS: "30000" });
try {
  const access_token = await serviceToken(server.url, await createApp(server.url));
  const headers = { authorization: `Bearer ${access_token}`, "content-type": "application/json" };
  const post = (path: string, body: unknown) =>
    fetch(server.url + path, { method: "POST", headers, body: JSON.stringify(body) }).then((r) => r.arrayBuffer());
  await post("/rtc-api/conferences/create", { conferenceId: "bench" });
  await post("/rtc-api/conferences/join", { conferenceId: "bench", userEndpointId: "e1", userId: "u" });

  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < COMMANDS) {
        const i = next++;
        await post("/rtc-api/conferences/updateMetadata", {
          conferenceId: "bench",
          userEndpointId: "e1",
          key: `k${i % 50}`,
          operation: "SET",
          value: String(i),
        });
      }
    }),
  );
  const ms = performance.now() - started;
  console.log(`updateMetadata (8 clients)            ${((COMMANDS / ms) * 1000).toFixed(0).padStart(7)} /s`);

  const view = (await (await fetch(`${server.url}/rtc-api/conferences/bench/simpleView`, { headers })).json()) as {
    version: number;
  };
  const wokenAt: number[] = [];
  const waiting = Array.from({ length: WAITERS }, () =>
    fetch(`${server.url}/rtc-api/conferences/bench/events?v=${view.version}`, { headers })
      .then((r) => r.arrayBuffer())
      .then(() => wokenAt.push(performance.now())),
  );
  await new Promise((r) => setTimeout(r, 1000));
  const commit = performance.now();
  await post("/rtc-api/conferences/updateMetadata", {
    conferenceId: "bench",
    userEndpointId: "e1",
    key: "x",
    operation: "SET",
    value: "y",
  });
  await Promise.all(waiting);
  const latencies = wokenAt.map((t) => t - commit).sort((a, b) => a - b);
  console.log(
    `wake ${WAITERS} long-poll waiters          p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms, last ${latencies.at(-1)?.toFixed(1)} ms`,
  );
  console.log(
    `resident memory                        ${(process.memoryUsage().rss / 1024 / 1024).toFixed(0).padStart(7)} MiB`,
  );
} finally {
  await server.close();
}

/**
 * Which engine carries Spreed channeling between nodes, by measurement: NATS (Debian's
 * `nats-server`, npm `nats`) and Redis pub/sub (Debian's `redis-server`, npm `ioredis`),
 * both on loopback in temp directories, stopped by PID at the end.
 *
 * - latency: one publisher connection, one subscriber connection, one message in flight at
 *   a time; publish → receive, p50 / p99 over LAT_MSGS messages of ~1 KB and ~16 KB (a
 *   Spreed Candidate is ~0.5 KB, an Offer with its SDP 4–16 KB);
 * - fan-out: one publisher, three subscriber connections on one subject/channel, at most
 *   WINDOW messages in flight (published, not yet received by all three); messages per
 *   second delivered to all three.
 *
 * Everything runs in this one process (clients share the event loop), the same for both.
 * `npx tsx bench/spreed-bus.bench.ts` (BENCH_LAT_MSGS, BENCH_FANOUT_MSGS, BENCH_ROUNDS to change
 * counts; rounds alternate which engine goes first and the table shows medians).
 */
import { performance } from "node:perf_hooks";
import { Redis } from "ioredis";
import { connect, type NatsConnection } from "nats";
import { type Daemon, spawnDaemon, startNats } from "../test/helpers/nats.js";

const LAT_MSGS = Number(process.env.BENCH_LAT_MSGS ?? 3000);
const FANOUT_MSGS = Number(process.env.BENCH_FANOUT_MSGS ?? 40000);
const WINDOW = 1000;
const WARMUP = 200;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

/** A subscriber: handler gets each payload. */
interface Bus {
  readonly name: string;
  subscribe(subject: string, handler: (payload: Buffer) => void): Promise<void>;
  publish(subject: string, payload: Buffer): void;
  /** Makes sure what was published has left this process. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

async function natsBus(url: string): Promise<Bus> {
  const nc: NatsConnection = await connect({ servers: url, noEcho: true });
  return {
    name: "NATS",
    subscribe: async (subject, handler) => {
      nc.subscribe(subject, {
        callback: (_err, msg) => handler(Buffer.from(msg.data.buffer, msg.data.byteOffset, msg.data.byteLength)),
      });
      await nc.flush();
    },
    publish: (subject, payload) => nc.publish(subject, payload),
    flush: () => nc.flush(),
    close: () => nc.close(),
  };
}

async function redisBus(port: number): Promise<Bus> {
  const r = new Redis({ host: "127.0.0.1", port, lazyConnect: true, enableAutoPipelining: true });
  await r.connect();
  return {
    name: "Redis",
    subscribe: async (channel, handler) => {
      r.on("messageBuffer", (_c: Buffer, message: Buffer) => handler(message));
      await r.subscribe(channel);
    },
    publish: (channel, payload) => {
      r.publish(channel, payload).catch(() => {});
    },
    flush: async () => {
      await r.ping();
    },
    close: async () => {
      r.disconnect();
    },
  };
}

function payload(size: number, seq: number): Buffer {
  const b = Buffer.alloc(size, 0x61);
  b.writeUInt32BE(seq, 0);
  return b;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? Number.NaN;
}

async function latency(make: () => Promise<Bus>, size: number): Promise<{ p50: number; p99: number }> {
  const pub = await make();
  const sub = await make();
  let waiting: ((seq: number) => void) | undefined;
  await sub.subscribe("spreed.lat", (m) => waiting?.(m.readUInt32BE(0)));
  const samples: number[] = [];
  for (let i = 0; i < WARMUP + LAT_MSGS; i++) {
    const got = new Promise<number>((resolve) => {
      waiting = resolve;
    });
    const t0 = performance.now();
    pub.publish("spreed.lat", payload(size, i));
    const seq = await got;
    const dt = performance.now() - t0;
    if (seq !== i) throw new Error(`out of order: ${seq} for ${i}`);
    if (i >= WARMUP) samples.push(dt * 1000);
  }
  await pub.close();
  await sub.close();
  samples.sort((a, b) => a - b);
  return { p50: percentile(samples, 50), p99: percentile(samples, 99) };
}

async function fanout(make: () => Promise<Bus>, size: number, count: number): Promise<number> {
  const pub = await make();
  const subs = await Promise.all([make(), make(), make()]);
  const received = [0, 0, 0];
  let wake: (() => void) | undefined;
  const least = () => Math.min(...received);
  await Promise.all(
    subs.map((s, k) =>
      s.subscribe("spreed.fan", () => {
        received[k] = (received[k] ?? 0) + 1;
        if (wake !== undefined && (count - least() === 0 || least() % 100 === 0)) {
          const w = wake;
          wake = undefined;
          w();
        }
      }),
    ),
  );
  const body = payload(size, 0);
  const t0 = performance.now();
  let sent = 0;
  while (least() < count) {
    while (sent < count && sent - least() < WINDOW) {
      pub.publish("spreed.fan", body);
      sent++;
    }
    await new Promise<void>((resolve) => {
      wake = resolve;
      setTimeout(resolve, 50); // in case the last wake-up was missed
    });
  }
  const seconds = (performance.now() - t0) / 1000;
  await pub.close();
  for (const s of subs) await s.close();
  return count / seconds;
}

async function startRedis(): Promise<Daemon> {
  return spawnDaemon(
    "redis-server",
    (port, dir) => [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--dir",
      dir,
      "--save",
      "",
      "--appendonly",
      "no",
      "--daemonize",
      "no",
    ],
    "Ready to accept connections",
    "rtcplane-redis-",
  );
}

const nats = await startNats();
const redis = await startRedis();
try {
  const engines: [string, () => Promise<Bus>][] = [
    ["NATS (nats-server 2.9, npm nats 2.29)", () => natsBus(nats.url)],
    ["Redis pub/sub (redis-server 7.0, npm ioredis 6)", () => redisBus(redis.port)],
  ];
  // Rounds alternate which engine goes first; each figure is the median over the rounds.
  const results = engines.map(() => [] as number[][]);
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? [0, 1] : [1, 0];
    for (const e of order) {
      const make = (engines[e] as [string, () => Promise<Bus>])[1];
      const small = await latency(make, 1024);
      const large = await latency(make, 16 * 1024);
      const fanSmall = await fanout(make, 1024, FANOUT_MSGS);
      const fanLarge = await fanout(make, 16 * 1024, Math.floor(FANOUT_MSGS / 4));
      results[e]?.push([small.p50, small.p99, large.p50, large.p99, fanSmall, fanLarge]);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
  const rows = engines.map(([name], e) => {
    const m = [0, 1, 2, 3, 4, 5].map((k) => median((results[e] ?? []).map((r) => r[k] ?? Number.NaN)).toFixed(0));
    return `| ${name} | ${m[0]} / ${m[1]} | ${m[2]} / ${m[3]} | ${m[4]} | ${m[5]} |`;
  });
  console.log(
    `\nSpreed bus, median of ${ROUNDS} rounds: ${LAT_MSGS} latency samples per size (one in flight), fan-out of ${FANOUT_MSGS} × 1 KB and ${Math.floor(FANOUT_MSGS / 4)} × 16 KB to 3 subscribers (window ${WINDOW})\n`,
  );
  console.log(
    "| engine | 1 KB p50 / p99 (µs) | 16 KB p50 / p99 (µs) | fan-out 1→3, 1 KB (msgs/s) | fan-out 1→3, 16 KB (msgs/s) |",
  );
  console.log("|---|---|---|---|---|");
  for (const r of rows) console.log(r);
} finally {
  await nats.stop();
  await redis.stop();
}

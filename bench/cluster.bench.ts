/**
 * `npm run bench:cluster` — what running as a cluster costs, in one run (these 2-core
 * machines are noisy; only figures from one run compare):
 *
 *   (a) one node on SQLite (its DATA_DIR), the baseline;
 *   (b) one node on PostgreSQL;
 *   (c) three nodes on the same PostgreSQL (a database of their own), commands spread
 *       round-robin over the nodes.
 *
 * PostgreSQL is a durable one of our own (fsync on; not the test run's TEST_PG_URL). Every
 * node is a child process (as `npm start` runs it, through tsx), and so is the load
 * generator (this file again, with `--load`): N clients (BENCH_CLIENTS, 16), each on one
 * keep-alive HTTP/1.1 connection to its node, each sending updateMetadata (SET of one key:
 * every one commits a new version and an event) to a conference of its own, back to back,
 * for BENCH_SECONDS (8) after 2 s of warm-up. Server CPU comes from /proc: the nodes', and
 * PostgreSQL's own (the postmaster, its children and its reaped children), per 1,000
 * commands. Where it goes, in the same windows: the nodes' system calls per command
 * (/proc/<pid>/io: the HTTP answer and each PostgreSQL round trip), PostgreSQL's WAL flushes
 * (pg_stat_wal), what the nodes' backends wait on (pg_stat_activity, sampled every 20 ms),
 * and the CPU of processes that are not this run's (the machine is shared: a noise gauge).
 * After each load cell, on the idle setup: long-poll wake latency, BENCH_WAKES (100)
 * samples — a waiter on node X, a command on node Y (X ≠ Y in the three-node setup), time
 * from the command's answer (and from its sending) to the poll's answer. Every setup gets an
 * untimed 5 s load first and its database an ANALYZE (plans as in production, not as of
 * whenever autovacuum's first pass lands); then the setups are interleaved over
 * BENCH_ROUNDS (2) rounds, the order reversed every other round. Prints tables; checks only that the commands answered
 * 2xx raised their conferences' versions by exactly as many.
 *
 *   BENCH_CLIENTS=16 BENCH_SECONDS=8 BENCH_ROUNDS=2 BENCH_WAKES=100 npm run bench:cluster
 */
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import { fileURLToPath } from "node:url";
import type { ChildServer } from "../test/helpers/server.js";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const WARMUP_SECONDS = 2;
/** An untimed load on every setup before the first round. */
const FIRST_WARMUP_SECONDS = 5;
const WAIT_SAMPLE_MS = 20;
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 16);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const WAKES = Number(process.env.BENCH_WAKES ?? 100);
/** How long a waiter is given to be parked on its node before the command is sent. */
const PARK_MS = 30;

interface Answer {
  readonly status: number;
  readonly text: string;
}

/** One HTTP/1.1 request on `agent` (keep-alive); the whole answer as text. */
function request(
  agent: http.Agent,
  base: string,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string | Buffer,
): Promise<Answer> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        agent,
        host: url.hostname,
        port: url.port,
        method,
        path,
        headers: body === undefined ? headers : { ...headers, "content-length": String(Buffer.byteLength(body)) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

function percentile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

// ---------------------------------------------------------------------------------------
// The load generator (a process of its own): `tsx bench/cluster.bench.ts --load <json>`.
// Prints {"phase":"measure"} when the measured window opens, {"phase":"done",…} when it
// closes (the parent reads /proc at both), then {"phase":"exit",ok} once every client's
// last request is answered.

interface LoadTarget {
  readonly url: string;
  readonly conferenceId: string;
  readonly endpointId: string;
}

interface LoadSpec {
  readonly targets: readonly LoadTarget[];
  readonly token: string;
  readonly warmupMs: number;
  readonly measureMs: number;
}

interface LoadDone {
  readonly phase: "done";
  readonly commands: number;
  readonly ms: number;
  readonly p50: number;
  readonly p99: number;
  readonly errors: number;
  readonly firstError?: string;
}

async function loadGenerator(spec: LoadSpec): Promise<void> {
  const print = (line: unknown) => process.stdout.write(`${JSON.stringify(line)}\n`);
  let phase: "warmup" | "measure" | "stop" = "warmup";
  let ok = 0;
  let errors = 0;
  let firstError: string | undefined;
  const latencies: number[] = [];
  let windowOpen = 0;
  const clients = spec.targets.map(async (t, i) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const headers = { authorization: `Bearer ${spec.token}`, "content-type": "application/json" };
    const body = Buffer.from(
      JSON.stringify({
        conferenceId: t.conferenceId,
        userEndpointId: t.endpointId,
        key: "k",
        operation: "SET",
        value: `client ${i}`,
      }),
    );
    while (phase !== "stop") {
      const sent = performance.now();
      let failed: string | undefined;
      try {
        const a = await request(agent, t.url, "POST", "/rtc-api/conferences/updateMetadata", headers, body);
        if (a.status >= 300) failed = `${a.status} ${a.text.slice(0, 300)}`;
      } catch (e) {
        failed = String(e);
      }
      if (failed === undefined) ok += 1;
      // Only answers that arrive inside the window count (a stop mid-flight is not counted).
      if (phase === "measure") {
        if (failed === undefined) latencies.push(performance.now() - sent);
        else {
          errors += 1;
          firstError ??= failed;
        }
      }
      if (failed !== undefined) await new Promise((r) => setTimeout(r, 10));
    }
    agent.destroy();
  });
  await new Promise((r) => setTimeout(r, spec.warmupMs));
  phase = "measure";
  windowOpen = performance.now();
  print({ phase: "measure" });
  await new Promise((r) => setTimeout(r, spec.measureMs));
  const ms = performance.now() - windowOpen;
  const measured = [...latencies].sort((a, b) => a - b);
  phase = "stop";
  const done: LoadDone = {
    phase: "done",
    commands: measured.length,
    ms,
    p50: percentile(measured, 0.5),
    p99: percentile(measured, 0.99),
    errors,
    ...(firstError === undefined ? {} : { firstError }),
  };
  print(done);
  await Promise.all(clients);
  print({ phase: "exit", ok });
}

// ---------------------------------------------------------------------------------------
// CPU from /proc (clock ticks of 10 ms, as bench/lib/processes.ts reads them).

function statFields(pid: number): string[] | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined; // gone in between
  }
}

const TICK_MS = 10;

/** user + system CPU of `pid`, in ms (+ its reaped children's when `reaped`). */
function cpuOf(pid: number, reaped = false): number {
  const f = statFields(pid);
  if (f === undefined) return 0;
  const own = Number(f[11]) + Number(f[12]);
  return (own + (reaped ? Number(f[13]) + Number(f[14]) : 0)) * TICK_MS;
}

/**
 * PostgreSQL's own CPU, in ms: the postmaster (with the children it has reaped, so that a
 * backend that ends inside a window still counts) and every process it is the parent of,
 * but `except` (the bench's own statistics connection).
 */
function postgresCpu(postmaster: number, except: number): number {
  let total = cpuOf(postmaster, true);
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === postmaster || Number(name) === except) continue;
    const f = statFields(Number(name));
    if (f !== undefined && Number(f[1]) === postmaster) total += (Number(f[11]) + Number(f[12])) * TICK_MS;
  }
  return total;
}

/** Busy CPU of the whole machine (every core, /proc/stat), in ms. */
function machineBusy(): number {
  const f = (fs.readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "").trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return (total - (f[3] ?? 0) - (f[4] ?? 0)) * TICK_MS; // all but idle and iowait
}

/** read and write system calls a process has made (/proc/<pid>/io). */
function syscalls(pid: number): number {
  try {
    const io = fs.readFileSync(`/proc/${pid}/io`, "utf8");
    return Number(/syscr: (\d+)/.exec(io)?.[1] ?? 0) + Number(/syscw: (\d+)/.exec(io)?.[1] ?? 0);
  } catch {
    return 0;
  }
}

// ---------------------------------------------------------------------------------------
// The run.

type Api = (url: string, method: string, path: string, body?: unknown) => Promise<Record<string, unknown>>;

interface Setup {
  readonly name: string;
  readonly nodes: readonly ChildServer[];
  /** Its database on PostgreSQL, if any. */
  readonly database?: string;
  token: string;
  /** JSON requests with the setup's SERVICE token; throws on anything but 2xx. */
  api: Api;
  /** One conference (and joined endpoint) per client, each on its node (round-robin). */
  targets: LoadTarget[];
  wakeConference: string;
}

interface Cell {
  readonly round: number;
  readonly setup: string;
  readonly load: LoadDone;
  readonly nodeCpuPerK: number;
  readonly pgCpuPerK: number;
  readonly walSyncsPerK: number;
  readonly loadCpuPerK: number;
  /** The nodes' read + write system calls per command (HTTP, PostgreSQL, logs). */
  readonly nodeSyscallsPerCmd: number;
  /** CPU used on the machine by processes that are not this run's, in cores (noise). */
  readonly otherCores: number;
  /** Backends of the setup's nodes by state and wait event, summed over the window's samples. */
  readonly waits: Map<string, number>;
  readonly waitSamples: number;
  readonly wakeFromAnswer: number[];
  readonly wakeFromSend: number[];
  readonly wakeErrors: number;
  /** Like otherCores, during the wake samples. */
  readonly wakeOtherCores: number;
  /** Rows in the setup's conference_events table when its wake samples were taken. */
  readonly eventRows: number;
}

interface LogProblem {
  readonly setup: string;
  readonly node: number;
  readonly line: string;
}

async function main(): Promise<void> {
  const { startPostgres, ensureDatabase } = await import("../test/helpers/postgres.js");
  const { clusterEnv } = await import("../test/helpers/cluster.js");
  const { spawnServer, createApp, serviceToken, tempDir } = await import("../test/helpers/server.js");
  const pg = (await import("pg")).default;

  // The nodes inherit this environment: no store but the one each setup names.
  for (const k of ["DATABASE_URL", "CLUSTER_SECRET", "TEST_STORE", "TEST_PG_URL"]) delete process.env[k];

  const nodeEnv = { MEDIASOUP_WORKER_BIN: "/nonexistent", LONG_POLL_TIMEOUT_MS: "10000" };
  const everyNode: ChildServer[] = [];
  const dirs: string[] = [];
  let postgres: Awaited<ReturnType<typeof startPostgres>> | undefined;
  let stats: InstanceType<typeof pg.Client> | undefined;
  /** A connection to each setup's database, used between cells only. */
  const dbClients = new Map<string, InstanceType<typeof pg.Client>>();
  let loadChild: ChildProcess | undefined;
  const problems: LogProblem[] = [];
  const versionMismatches: string[] = [];
  let problemCount = 0;

  /** Replaces spawnServer's output collection (kept for its start) by a watch for warnings and errors. */
  function watchLogs(node: ChildServer, setup: string, index: number): void {
    for (const stream of [node.process.stdout, node.process.stderr]) {
      if (stream === null) continue;
      stream.removeAllListeners("data");
      let buffered = "";
      stream.on("data", (chunk: Buffer) => {
        buffered += chunk.toString();
        for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          let level = 50;
          try {
            level = (JSON.parse(line) as { level?: number }).level ?? 50;
          } catch {
            // Not pino's: a stack trace or a runtime warning, worth seeing.
          }
          if (level >= 40 && line.trim() !== "") {
            problemCount += 1;
            if (problems.length < 10) problems.push({ setup, node: index, line: line.slice(0, 500) });
          }
        }
      });
    }
  }

  async function spawnNode(setup: string, index: number, env: Record<string, string>): Promise<ChildServer> {
    const dir = tempDir("rtcplane-bench-cluster-");
    dirs.push(dir);
    const node = await spawnServer(dir, env);
    everyNode.push(node);
    watchLogs(node, setup, index);
    return node;
  }

  async function cleanUp(): Promise<void> {
    if (loadChild !== undefined && loadChild.exitCode === null && loadChild.signalCode === null)
      loadChild.kill("SIGKILL");
    await Promise.all(
      everyNode.map(async (n) => {
        if (n.process.exitCode !== null || n.process.signalCode !== null) return;
        n.process.kill("SIGTERM");
        const timer = setTimeout(() => n.process.kill("SIGKILL"), 5000);
        await n.exited;
        clearTimeout(timer);
      }),
    );
    await stats?.end().catch(() => {});
    for (const c of dbClients.values()) await c.end().catch(() => {});
    if (postgres !== undefined) {
      const pm = postgres.process;
      const timer = setTimeout(() => pm.kill("SIGKILL"), 10_000);
      await postgres.stop().catch(() => {});
      clearTimeout(timer);
    }
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  }
  const onSignal = () => {
    void cleanUp().finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  const cells: Cell[] = [];
  try {
    console.error("starting PostgreSQL (durable: fsync on) and 5 nodes…");
    postgres = await startPostgres();
    const postmaster = postgres.process.pid as number;
    stats = new pg.Client({ connectionString: postgres.url() });
    await stats.connect();
    const statsPid = Number((await stats.query("SELECT pg_backend_pid() AS pid")).rows[0].pid);
    const walSyncs = async () =>
      Number(
        (await (stats as InstanceType<typeof pg.Client>).query("SELECT wal_sync FROM pg_stat_wal")).rows[0].wal_sync,
      );
    const settings = (
      await stats.query(
        "SELECT string_agg(name || '=' || setting, ', ' ORDER BY name) AS s FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'wal_sync_method', 'max_connections')",
      )
    ).rows[0].s as string;

    /**
     * What the nodes' pooled backends are doing, sampled every WAIT_SAMPLE_MS until `stop()`:
     * running (on a CPU or in its run queue), waiting for the node (idle / idle in
     * transaction), or waiting inside PostgreSQL (a lock, WAL, …).
     */
    function sampleWaits(database: string | undefined) {
      const waits = new Map<string, number>();
      let samples = 0;
      let stopped = false;
      const loop = (async () => {
        if (database === undefined) return;
        while (!stopped) {
          const rows = (
            await (stats as InstanceType<typeof pg.Client>).query(
              `SELECT CASE WHEN state = 'active' AND wait_event IS NULL THEN 'active, running'
                           ELSE state || coalesce(', ' || wait_event_type || ':' || wait_event, '') END AS w,
                      count(*)::int AS n
                 FROM pg_stat_activity
                WHERE datname = $1 AND application_name = 'rtcplane' AND pid <> pg_backend_pid()
                GROUP BY 1`,
              [database],
            )
          ).rows as { w: string; n: number }[];
          samples += 1;
          for (const r of rows) waits.set(r.w, (waits.get(r.w) ?? 0) + r.n);
          await new Promise((r) => setTimeout(r, WAIT_SAMPLE_MS));
        }
      })();
      return {
        stop: async () => {
          stopped = true;
          await loop;
          return { waits, samples };
        },
      };
    }

    const single = await ensureDatabase(postgres.url(), "bench_single");
    const three = await ensureDatabase(postgres.url(), "bench_three");
    for (const [name, url] of [
      ["bench_single", single],
      ["bench_three", three],
    ] as const) {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      dbClients.set(name, c);
    }
    const eventRows = async (s: Setup) =>
      s.database === undefined
        ? Number.NaN
        : Number(
            (
              await (dbClients.get(s.database) as InstanceType<typeof pg.Client>).query(
                "SELECT count(*) AS n FROM conference_events",
              )
            ).rows[0].n,
          );
    const setups: Setup[] = [];
    const make = async (name: string, database: string | undefined, envs: Record<string, string>[]) => {
      const nodes: ChildServer[] = [];
      // One after the other: the first migrates.
      for (const [i, env] of envs.entries()) nodes.push(await spawnNode(name, i + 1, { ...nodeEnv, ...env }));
      const setup: Setup = {
        name,
        nodes,
        ...(database === undefined ? {} : { database }),
        token: "",
        api: async () => ({}),
        targets: [],
        wakeConference: "wake",
      };
      setups.push(setup);
      return setup;
    };
    await make("(a) 1 node, SQLite", undefined, [{}]);
    await make("(b) 1 node, PostgreSQL", "bench_single", [clusterEnv(single)]);
    await make("(c) 3 nodes, PostgreSQL", "bench_three", [clusterEnv(three), clusterEnv(three), clusterEnv(three)]);

    // Per setup: an app, a SERVICE token (valid on every node: keys come from CLUSTER_SECRET),
    // a conference with a joined endpoint per client, created through the client's node.
    const setupAgent = new http.Agent({ keepAlive: true });
    for (const s of setups) {
      const first = (s.nodes[0] as ChildServer).url;
      s.token = await serviceToken(first, await createApp(first, { description: "bench" }));
      const api: Api = async (url, method, path, body) => {
        const headers: Record<string, string> = { authorization: `Bearer ${s.token}` };
        if (body !== undefined) headers["content-type"] = "application/json";
        const a = await request(
          setupAgent,
          url,
          method,
          path,
          headers,
          body === undefined ? undefined : JSON.stringify(body),
        );
        if (a.status >= 300) throw new Error(`${s.name}: ${method} ${path}: ${a.status} ${a.text}`);
        return a.text === "" ? {} : (JSON.parse(a.text) as Record<string, unknown>);
      };
      for (let i = 0; i < CLIENTS; i++) {
        const url = (s.nodes[i % s.nodes.length] as ChildServer).url;
        const t = { url, conferenceId: `load-${i}`, endpointId: `e${i}` };
        await api(url, "POST", "/rtc-api/conferences/create", { conferenceId: t.conferenceId });
        await api(url, "POST", "/rtc-api/conferences/join", {
          conferenceId: t.conferenceId,
          userEndpointId: t.endpointId,
          userId: `u${i}`,
        });
        s.targets.push(t);
      }
      await api(first, "POST", "/rtc-api/conferences/create", { conferenceId: s.wakeConference });
      await api(first, "POST", "/rtc-api/conferences/join", {
        conferenceId: s.wakeConference,
        userEndpointId: "w",
        userId: "w",
      });
      s.api = api;
    }
    const versionOf = async (s: Setup, url: string, conferenceId: string) =>
      (await s.api(url, "GET", `/rtc-api/conferences/${conferenceId}/simpleView`)).version as number;

    /** One load cell: the load generator in its own process, /proc read at the window's edges. */
    async function loadCell(
      s: Setup,
      warmupMs = WARMUP_SECONDS * 1000,
      measureMs = SECONDS * 1000,
    ): Promise<
      Omit<Cell, "round" | "setup" | "wakeFromAnswer" | "wakeFromSend" | "wakeErrors" | "wakeOtherCores" | "eventRows">
    > {
      const before = await Promise.all(s.targets.map((t) => versionOf(s, t.url, t.conferenceId)));
      const spec: LoadSpec = { targets: s.targets, token: s.token, warmupMs, measureMs };
      const child = spawn(
        process.execPath,
        ["--import", "tsx", fileURLToPath(import.meta.url), "--load", JSON.stringify(spec)],
        {
          cwd: process.cwd(),
          stdio: ["ignore", "pipe", "inherit"],
        },
      );
      loadChild = child;
      const pids = s.nodes.map((n) => n.process.pid as number);
      const nodeCpu = () => pids.reduce((sum, pid) => sum + cpuOf(pid), 0);
      interface Snapshot {
        readonly node: number;
        readonly pg: number;
        readonly load: number;
        readonly syscalls: number;
        readonly machine: number;
        /** CPU of every process of this run: all nodes, PostgreSQL, the load generator, this one. */
        readonly ours: number;
        readonly at: number;
        /** pg_stat_wal's wal_sync, asked for at the same moment. */
        readonly wal: Promise<number>;
      }
      let start: Snapshot | undefined;
      let end: Snapshot | undefined;
      let done: LoadDone | undefined;
      let ok = -1;
      let sampler: ReturnType<typeof sampleWaits> | undefined;
      const snapshot = (): Snapshot => ({
        node: nodeCpu(),
        pg: postgresCpu(postmaster, statsPid),
        load: cpuOf(child.pid as number),
        syscalls: pids.reduce((sum, pid) => sum + syscalls(pid), 0),
        machine: machineBusy(),
        ours:
          everyNode.reduce((sum, n) => sum + cpuOf(n.process.pid as number), 0) +
          postgresCpu(postmaster, -1) +
          cpuOf(child.pid as number) +
          cpuOf(process.pid),
        at: performance.now(),
        wal: walSyncs(),
      });
      const exited = new Promise<void>((resolve, reject) => {
        let out = "";
        child.stdout?.on("data", (c: Buffer) => {
          out += c.toString();
          for (let nl = out.indexOf("\n"); nl >= 0; nl = out.indexOf("\n")) {
            const line = JSON.parse(out.slice(0, nl)) as { phase: string; ok?: number };
            out = out.slice(nl + 1);
            if (line.phase === "measure") {
              start = snapshot();
              sampler = sampleWaits(s.database);
            } else if (line.phase === "done") {
              end = snapshot();
              done = line as unknown as LoadDone;
            } else if (line.phase === "exit") ok = line.ok ?? -1;
          }
        });
        child.once("exit", (code) =>
          code === 0 ? resolve() : reject(new Error(`load generator exited with ${code}`)),
        );
      });
      await exited;
      loadChild = undefined;
      if (start === undefined || end === undefined || done === undefined || sampler === undefined)
        throw new Error("load generator said nothing");
      // Stopped after the window: a few samples more, of the load's last requests.
      const { waits, samples } = await sampler.stop();
      const after = await Promise.all(s.targets.map((t) => versionOf(s, t.url, t.conferenceId)));
      const raised = after.reduce((sum, v, i) => sum + v - (before[i] as number), 0);
      if (raised !== ok) {
        versionMismatches.push(`${s.name}: ${ok} commands answered 2xx, versions rose by ${raised}`);
        console.error(`  !! ${versionMismatches.at(-1)}`);
      }
      const perK = (ms: number) => (ms * 1000) / Math.max(1, done?.commands ?? 1);
      return {
        load: done,
        nodeCpuPerK: perK(end.node - start.node),
        pgCpuPerK: perK(end.pg - start.pg),
        walSyncsPerK: perK((await end.wal) - (await start.wal)),
        loadCpuPerK: perK(end.load - start.load),
        nodeSyscallsPerCmd: (end.syscalls - start.syscalls) / Math.max(1, done.commands),
        otherCores: Math.max(0, end.machine - start.machine - (end.ours - start.ours)) / (end.at - start.at),
        waits,
        waitSamples: samples,
      };
    }

    /** Wake latency on the idle setup: waiter on node X, command on node Y (Y = X + 1 with three nodes). */
    async function wakeCell(
      s: Setup,
    ): Promise<{ fromAnswer: number[]; fromSend: number[]; errors: number; otherCores: number }> {
      const ours = () =>
        everyNode.reduce((sum, n) => sum + cpuOf(n.process.pid as number), 0) +
        postgresCpu(postmaster, -1) +
        cpuOf(process.pid);
      const [machine0, ours0, at0] = [machineBusy(), ours(), performance.now()];
      const waitAgent = new http.Agent({ keepAlive: true });
      const commandAgent = new http.Agent({ keepAlive: true });
      const auth = { authorization: `Bearer ${s.token}` };
      const first = (s.nodes[0] as ChildServer).url;
      let v = await versionOf(s, first, s.wakeConference);
      const fromAnswer: number[] = [];
      const fromSend: number[] = [];
      let errors = 0;
      for (let i = 0; i < WAKES; i++) {
        const waiter = (s.nodes[i % s.nodes.length] as ChildServer).url;
        const commander = (s.nodes[(i + 1) % s.nodes.length] as ChildServer).url;
        let polledAt = 0;
        const poll = request(
          waitAgent,
          waiter,
          "GET",
          `/rtc-api/conferences/${s.wakeConference}/events?v=${v}`,
          auth,
        ).then((a) => {
          polledAt = performance.now();
          return a;
        });
        await new Promise((r) => setTimeout(r, PARK_MS));
        const sent = performance.now();
        const a = await request(
          commandAgent,
          commander,
          "POST",
          "/rtc-api/conferences/updateMetadata",
          { ...auth, "content-type": "application/json" },
          JSON.stringify({
            conferenceId: s.wakeConference,
            userEndpointId: "w",
            key: "k",
            operation: "SET",
            value: String(i),
          }),
        );
        const answered = performance.now();
        const polled = await poll;
        const events = polled.status === 200 ? (JSON.parse(polled.text) as { conferenceVersion?: number }[]) : [];
        if (a.status >= 300 || polledAt < sent || events[0]?.conferenceVersion !== v) {
          errors += 1;
          if (errors === 1)
            console.error(
              `  !! ${s.name} wake ${i}: command ${a.status}, poll ${polled.status} ${polled.text.slice(0, 200)}`,
            );
          v = await versionOf(s, first, s.wakeConference);
          continue;
        }
        fromAnswer.push(Math.max(0, polledAt - answered));
        fromSend.push(polledAt - sent);
        v += 1;
      }
      waitAgent.destroy();
      commandAgent.destroy();
      const otherCores = Math.max(0, machineBusy() - machine0 - (ours() - ours0)) / (performance.now() - at0);
      return {
        fromAnswer: fromAnswer.sort((x, y) => x - y),
        fromSend: fromSend.sort((x, y) => x - y),
        errors,
        otherCores,
      };
    }

    // Untimed: JIT, every pooled connection's prepared statements, caches.
    for (const s of setups) {
      console.error(`  warming up ${s.name}…`);
      await loadCell(s, FIRST_WARMUP_SECONDS * 1000, 1000);
    }
    // A production database has statistics: every round plans with them, instead of from
    // whenever autovacuum's first ANALYZE happens to land (a minute or so into the run).
    for (const c of dbClients.values()) await c.query("ANALYZE");
    for (let round = 1; round <= ROUNDS; round++) {
      const order = round % 2 === 1 ? setups : [...setups].reverse();
      for (const s of order) {
        const load = await loadCell(s);
        const wake = await wakeCell(s);
        cells.push({
          round,
          setup: s.name,
          ...load,
          wakeFromAnswer: wake.fromAnswer,
          wakeFromSend: wake.fromSend,
          wakeErrors: wake.errors,
          wakeOtherCores: wake.otherCores,
          eventRows: await eventRows(s),
        });
        console.error(
          `  round ${round} ${s.name}: ${((load.load.commands / load.load.ms) * 1000).toFixed(0)} commands/s, ` +
            `node ${load.nodeCpuPerK.toFixed(0)} + PG ${load.pgCpuPerK.toFixed(0)} CPU ms/1k, ` +
            `wake p50 ${percentile(wake.fromAnswer, 0.5).toFixed(1)} ms` +
            (load.load.errors > 0 ? ` — ${load.load.errors} errors, first: ${load.load.firstError}` : ""),
        );
      }
    }

    // -------------------------------------------------------------------------------------
    const n0 = (x: number) => Math.round(x).toLocaleString("en-US");
    const n1 = (x: number) => x.toFixed(1);
    const byRound = (name: string, f: (c: Cell) => string) =>
      cells
        .filter((c) => c.setup === name)
        .sort((a, b) => a.round - b.round)
        .map(f)
        .join(" / ");
    console.log(
      `\n## Conference commands on one and three nodes (${CLIENTS} clients, updateMetadata on a conference each, ` +
        `${SECONDS} s per cell after ${WARMUP_SECONDS} s warm-up, ${ROUNDS} interleaved round(s) shown as r1 / r2 …)\n`,
    );
    console.log(
      `One ${os.cpus().length}-core machine runs the load generator, every node and PostgreSQL (${settings}): three nodes ` +
        "cannot scale here, they share the same two cores. The figures to read are the CPU each command costs (nodes " +
        "and PostgreSQL, from /proc) and the wake latency across nodes, not commands/s against node count.\n",
    );
    console.log("| setup | clients | commands/s | p50 ms | p99 ms | node CPU ms per 1k cmds | PG CPU ms per 1k cmds |");
    console.log("|---|---|---|---|---|---|---|");
    for (const s of setups) {
      const errors = cells.filter((c) => c.setup === s.name).reduce((sum, c) => sum + c.load.errors, 0);
      console.log(
        `| ${s.name} | ${CLIENTS} | ${byRound(s.name, (c) => n0((c.load.commands / c.load.ms) * 1000))}${errors > 0 ? ` (${errors} errors)` : ""} | ${byRound(
          s.name,
          (c) => n1(c.load.p50),
        )} | ${byRound(s.name, (c) => n1(c.load.p99))} | ${byRound(s.name, (c) => n0(c.nodeCpuPerK))} | ${
          s.database !== undefined ? byRound(s.name, (c) => n0(c.pgCpuPerK)) : "—"
        } |`,
      );
    }
    console.log(
      "\n## Where it goes (same windows): the nodes' read + write system calls per command (the HTTP answer, each " +
        "PostgreSQL round trip), PostgreSQL's WAL flushes (pg_stat_wal wal_sync), the load generator's CPU, and the CPU " +
        "of processes on the machine that are not this run's (other work sharing the cores: read the row's noise from it)\n",
    );
    console.log(
      "| setup | node syscalls per cmd | WAL flushes per 1k cmds | load generator CPU ms per 1k cmds | other processes (cores) |",
    );
    console.log("|---|---|---|---|---|");
    for (const s of setups) {
      const pgOnly = (f: (c: Cell) => string) => (s.database === undefined ? "—" : byRound(s.name, f));
      console.log(
        `| ${s.name} | ${byRound(s.name, (c) => n1(c.nodeSyscallsPerCmd))} | ${pgOnly((c) => n0(c.walSyncsPerK))} | ${byRound(
          s.name,
          (c) => n0(c.loadCpuPerK),
        )} | ${byRound(s.name, (c) => c.otherCores.toFixed(2))} |`,
      );
    }

    console.log(
      `\n## Long-poll wake (idle setup, ${WAKES} samples per round; waiter parked ${PARK_MS} ms on node X, command on node Y)\n`,
    );
    console.log(
      "From the command's answer to the poll's answer (0 when the poll was answered first), and from the command's " +
        "sending; r1 / r2 … A woken waiter re-reads the conference's log; the PostgreSQL databases were ANALYZEd after " +
        "the warm-up, as a production database has statistics, so the row count beside is what that read may scale with.\n",
    );
    console.log(
      "| setup | waiter → command | wake p50 ms | wake p99 ms | from send p50 ms | from send p99 ms | event rows in the store | other processes (cores) |",
    );
    console.log("|---|---|---|---|---|---|---|---|");
    for (const s of setups) {
      const where = s.nodes.length === 1 ? "same node" : "X → X+1 (every pair)";
      const errors = cells.filter((c) => c.setup === s.name).reduce((sum, c) => sum + c.wakeErrors, 0);
      console.log(
        `| ${s.name}${errors > 0 ? ` (${errors} failed samples)` : ""} | ${where} | ${byRound(s.name, (c) => n1(percentile(c.wakeFromAnswer, 0.5)))} | ${byRound(
          s.name,
          (c) => n1(percentile(c.wakeFromAnswer, 0.99)),
        )} | ${byRound(s.name, (c) => n1(percentile(c.wakeFromSend, 0.5)))} | ${byRound(s.name, (c) =>
          n1(percentile(c.wakeFromSend, 0.99)),
        )} | ${s.database === undefined ? "—" : byRound(s.name, (c) => n0(c.eventRows))} | ${byRound(s.name, (c) =>
          c.wakeOtherCores.toFixed(2),
        )} |`,
      );
    }
    const pgSetups = setups.filter((s) => s.database !== undefined);
    const states = new Map<string, number>();
    for (const c of cells) for (const [w, n] of c.waits) states.set(w, (states.get(w) ?? 0) + n / c.waitSamples);
    console.log(
      `\n## What the nodes' PostgreSQL backends do under load (mean backends per state, sampled from pg_stat_activity every ${WAIT_SAMPLE_MS} ms; a pool of 10 per node)\n`,
    );
    console.log(`| backend state, wait event | ${pgSetups.map((s) => s.name).join(" | ")} |`);
    console.log(`|---|${pgSetups.map(() => "---").join("|")}|`);
    for (const [w] of [...states].sort((a, b) => b[1] - a[1])) {
      const cellsOf = pgSetups.map((s) =>
        byRound(s.name, (c) => ((c.waits.get(w) ?? 0) / Math.max(1, c.waitSamples)).toFixed(2)),
      );
      console.log(`| ${w} | ${cellsOf.join(" | ")} |`);
    }
    console.log(
      versionMismatches.length === 0
        ? "\nEvery command answered 2xx raised its conference's version by one (versions read before and after each cell)."
        : `\nVersion check FAILED:\n${versionMismatches.map((m) => `- ${m}`).join("\n")}`,
    );
    console.log(
      problemCount === 0
        ? "\nNo warning or error in any node's log."
        : `\n${problemCount} warning/error lines in the nodes' logs; the first:\n${problems.map((p) => `- ${p.setup} node ${p.node}: ${p.line}`).join("\n")}`,
    );
    setupAgent.destroy();
  } finally {
    await cleanUp();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

if (process.argv[2] === "--load") {
  await loadGenerator(JSON.parse(process.argv[3] ?? "{}") as LoadSpec);
  process.exit(0);
} else {
  await main();
  process.exit(0);
}

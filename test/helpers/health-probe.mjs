// Probes GET /healthz every INTERVAL ms from its own process (so an attack driven by the
// test process cannot slow the measurement down) until SIGTERM, then prints
// {"n","failures","p50","p99","max"} (milliseconds) on stdout and exits.
import http from "node:http";

const [url, intervalMs = "20", localAddress = "127.0.0.1"] = process.argv.slice(2);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const latencies = [];
let failures = 0;
let running = true;

function probe() {
  return new Promise((resolve) => {
    const started = process.hrtime.bigint();
    const req = http.get(`${url}/healthz`, { agent, localAddress, timeout: 5000 }, (res) => {
      res.resume();
      res.on("end", () => {
        if (res.statusCode === 200) latencies.push(Number(process.hrtime.bigint() - started) / 1e6);
        else failures++;
        resolve();
      });
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", () => {
      failures++;
      resolve();
    });
  });
}

async function loop() {
  while (running) {
    await probe();
    await new Promise((r) => setTimeout(r, Number(intervalMs)));
  }
}

process.on("SIGTERM", () => {
  running = false;
  const sorted = [...latencies].sort((a, b) => a - b);
  const at = (q) => (sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]);
  const round = (x) => Math.round(x * 10) / 10;
  process.stdout.write(
    `${JSON.stringify({ n: sorted.length, failures, p50: round(at(0.5)), p99: round(at(0.99)), max: round(sorted.at(-1) ?? 0) })}\n`,
    () => process.exit(0),
  );
});
process.stdout.write("ready\n");
void loop();

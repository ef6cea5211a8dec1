/**
 * Gateway overhead, measured as ratios in one run (the machines are small and noisy):
 * route matching per lookup, and GetTenant served over REST vs Connect JSON vs gRPC on
 * the same in-process server, all on loopback. Prints figures; asserts nothing.
 *
 *   npm run bench            # defaults
 *   BENCH_REQUESTS=5000 npm run bench
 */
import http2 from "node:http2";
import { performance } from "node:perf_hooks";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { GetTenantRequestSchema, GetTenantResponseSchema } from "../gen/rtcplane/admin/v1/admin_pb.js";
import { RouteTable } from "../src/gateway/route-table.js";
import { restRoutes } from "../src/routes.js";
import { ADMIN_TOKEN, startServer } from "../test/helpers/server.js";

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 2000);
const CONCURRENCY = 16;

function report(name: string, count: number, ms: number, baseline?: number): number {
  const perSecond = (count / ms) * 1000;
  const ratio = baseline === undefined ? "" : `  (${(perSecond / baseline).toFixed(2)}x of baseline)`;
  console.log(
    `${name.padEnd(40)} ${perSecond.toFixed(0).padStart(9)} /s   ${((ms * 1000) / count).toFixed(1)} µs each${ratio}`,
  );
  return perSecond;
}

async function pool(count: number, task: (i: number) => Promise<void>): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < count) await task(next++);
    }),
  );
  return performance.now() - started;
}

const table = new RouteTable(restRoutes, "v1");
const lookups = 200_000;
let t = performance.now();
for (let i = 0; i < lookups; i++) table.match("GET", `/admin/v1/tenants/${i % 97}`);
report("route match (in-process)", lookups, performance.now() - t);

const server = await startServer({ LOG_LEVEL: "silent" });
try {
  const auth = { authorization: `Bearer ${ADMIN_TOKEN}` };
  const created = await fetch(`${server.url}/admin/v1/tenants`, {
    method: "POST",
    headers: { ...auth, "content-type": "application/json" },
    body: JSON.stringify({ name: "bench" }),
  });
  const { tenantId } = (await created.json()) as { tenantId: string };

  // Warm up JIT and connection pools.
  await pool(
    200,
    async () => void (await (await fetch(`${server.url}/admin/v1/tenants/${tenantId}`, { headers: auth })).text()),
  );

  const rest = report(
    "REST GET /admin/v1/tenants/{id} (h1)",
    REQUESTS,
    await pool(REQUESTS, async () => {
      const res = await fetch(`${server.url}/admin/v1/tenants/${tenantId}`, { headers: auth });
      if (res.status !== 200) throw new Error(`status ${res.status}`);
      await res.text();
    }),
  );
  report(
    "Connect JSON GetTenant (h1)",
    REQUESTS,
    await pool(REQUESTS, async () => {
      const res = await fetch(`${server.url}/rtcplane.admin.v1.AdminService/GetTenant`, {
        method: "POST",
        headers: { ...auth, "content-type": "application/json" },
        body: JSON.stringify({ tenantId }),
      });
      if (res.status !== 200) throw new Error(`status ${res.status}`);
      await res.text();
    }),
    rest,
  );

  const session = http2.connect(server.url);
  const request = toBinary(GetTenantRequestSchema, create(GetTenantRequestSchema, { tenantId }));
  const frame = Buffer.alloc(5 + request.length);
  frame.writeUInt32BE(request.length, 1);
  frame.set(request, 5);
  const grpcCall = () =>
    new Promise<void>((resolve, reject) => {
      const stream = session.request({
        ":method": "POST",
        ":path": "/rtcplane.admin.v1.AdminService/GetTenant",
        "content-type": "application/grpc",
        te: "trailers",
        ...auth,
      });
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("trailers", (trailers) => {
        if (trailers["grpc-status"] !== "0") reject(new Error(`grpc-status ${trailers["grpc-status"]}`));
      });
      stream.on("end", () => {
        fromBinary(GetTenantResponseSchema, Buffer.concat(chunks).subarray(5));
        resolve();
      });
      stream.on("error", reject);
      stream.end(frame);
    });
  report("gRPC GetTenant (h2c, one connection)", REQUESTS, await pool(REQUESTS, grpcCall), rest);
  session.close();

  t = performance.now();
  const rss = process.memoryUsage().rss / 1024 / 1024;
  console.log(`${"resident memory after the run".padEnd(40)} ${rss.toFixed(0).padStart(9)} MiB`);
} finally {
  await server.close();
}

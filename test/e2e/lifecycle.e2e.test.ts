/**
 * Durability and process lifecycle: data survives a clean restart and a kill -9,
 * SIGTERM drains and exits 0, bad configuration stops the start with a clear message,
 * and TLS with ALPN serves gRPC and REST on the same port.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import https from "node:https";
import path from "node:path";
import { describe, it } from "node:test";
import { ROOT } from "../helpers/protoc.js";
import { ADMIN_TOKEN, bufCurl, selfSignedCert, spawnServer, startServer, tempDir } from "../helpers/server.js";

const AUTH = { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" };

async function createTenant(url: string, name: string): Promise<string> {
  const res = await fetch(`${url}/admin/v1/tenants`, { method: "POST", headers: AUTH, body: JSON.stringify({ name }) });
  assert.equal(res.status, 200);
  return ((await res.json()) as { tenantId: string }).tenantId;
}

async function tenantName(url: string, id: string): Promise<string> {
  const res = await fetch(`${url}/admin/v1/tenants/${id}`, { headers: AUTH });
  assert.equal(res.status, 200);
  return ((await res.json()) as { tenant: { name: string } }).tenant.name;
}

describe("durability", () => {
  it("keeps data across a clean restart", async () => {
    const first = await startServer();
    const id = await createTenant(first.url, "survives restart");
    await first.close();
    const second = await startServer({}, first.dataDir);
    try {
      assert.equal(await tenantName(second.url, id), "survives restart");
    } finally {
      await second.close();
    }
  });

  it("keeps committed data across kill -9", async () => {
    const dataDir = tempDir();
    const first = await spawnServer(dataDir);
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push(await createTenant(first.url, `killed-${i}`));
    first.process.kill("SIGKILL");
    assert.equal(await first.exited, null);
    const second = await spawnServer(dataDir);
    try {
      for (let i = 0; i < ids.length; i++) assert.equal(await tenantName(second.url, ids[i] as string), `killed-${i}`);
    } finally {
      second.process.kill("SIGTERM");
      await second.exited;
    }
  });

  it("generates an admin token once, prints it, and keeps only its hash", async () => {
    const dataDir = tempDir();
    const child = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "src/server.ts")], {
      cwd: ROOT,
      env: { ...process.env, DATA_DIR: dataDir, PORT: "0", HOST: "127.0.0.1", ADMIN_TOKEN: "", LOG_LEVEL: "info" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    let stdout = "";
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    const url = await new Promise<string>((resolve) => {
      child.stdout.on("data", (c: Buffer) => {
        stdout += c.toString();
        const m = /"url":"([^"]+)"/.exec(stdout);
        if (m?.[1]) resolve(m[1]);
      });
    });
    // The start banner (stderr) and the JSON log (stdout) are two pipes: wait for both.
    for (let i = 0; i < 100 && !/Generated ADMIN_TOKEN[^\n]*\n\s+\S+/.test(stderr); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const token = /Generated ADMIN_TOKEN[^\n]*\n\s+(\S+)/.exec(stderr)?.[1];
    assert.ok(token, stderr);
    assert.match(stderr, /API docs +http:\/\/127\.0\.0\.1:\d+\/docs/, "the banner says where to go next");
    const hash = fs.readFileSync(path.join(dataDir, "admin-token.sha256"), "utf8");
    assert.ok(!hash.includes(token), "only the hash is stored");
    assert.ok(!stdout.includes(token), "the token is not in the JSON log");
    const res = await fetch(`${url}/admin/v1/tenants`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200);
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
  });
});

describe("process lifecycle", () => {
  it("runs as `npm start` does: the compiled build, no TypeScript loader", async () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")) as { scripts: { start: string } };
    assert.equal(pkg.scripts.start, "node dist/server.js");
    const server = await spawnServer(tempDir(), {}, "dist");
    try {
      assert.ok(!server.process.spawnargs.some((a) => a.includes("tsx")));
      assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
      assert.match(await tenantName(server.url, await createTenant(server.url, "built")), /built/);
    } finally {
      server.process.kill("SIGTERM");
      assert.equal(await server.exited, 0);
    }
  });

  it("drains on SIGTERM: health turns NOT_SERVING, watchers end, exit code 0", async () => {
    const server = await spawnServer(tempDir());
    const watch = bufCurl([
      "--protocol",
      "grpc",
      "--http2-prior-knowledge",
      `${server.url}/grpc.health.v1.Health/Watch`,
    ]);
    await new Promise((r) => setTimeout(r, 1500));
    server.process.kill("SIGTERM");
    assert.equal(await server.exited, 0);
    const watched = await watch;
    assert.match(watched.stdout, /"SERVING"/);
    assert.match(watched.stdout, /"NOT_SERVING"/);
  });

  it("refuses to start on bad configuration with a message naming the variable", async () => {
    const bad = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "src/server.ts")], {
      cwd: ROOT,
      env: { ...process.env, PORT: "eighty", DATA_DIR: tempDir() },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    bad.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    const code = await new Promise((r) => bad.once("exit", r));
    assert.equal(code, 2);
    assert.match(stderr, /configuration error: PORT="eighty" is not a whole number/);
  });
});

describe("TLS with ALPN on the same port", () => {
  it("serves gRPC over h2 and REST over HTTP/1.1 with one certificate", async () => {
    const { cert, key } = await selfSignedCert();
    const server = await startServer({ TLS_CERT: cert, TLS_KEY: key });
    try {
      assert.ok(server.url.startsWith("https://"));
      const grpc = await bufCurl([
        "--protocol",
        "grpc",
        "--cacert",
        cert,
        "-H",
        `authorization: Bearer ${ADMIN_TOKEN}`,
        "-d",
        '{"name":"over tls"}',
        `${server.url}/rtcplane.admin.v1.AdminService/CreateTenant`,
      ]);
      assert.equal(grpc.code, 0, grpc.stderr);
      const { tenantId } = JSON.parse(grpc.stdout) as { tenantId: string };
      const body = await new Promise<{ alpn: string | false | null; text: string }>((resolve, reject) => {
        const req = https.get(
          `${server.url}/admin/v1/tenants/${tenantId}`,
          {
            ca: fs.readFileSync(cert),
            headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
            ALPNProtocols: ["http/1.1"],
            agent: false,
          } as https.RequestOptions & { ALPNProtocols: string[] },
          (res) => {
            const alpn = (res.socket as import("node:tls").TLSSocket).alpnProtocol;
            let text = "";
            res.on("data", (c: Buffer) => {
              text += c.toString();
            });
            res.on("end", () => resolve({ alpn, text }));
          },
        );
        req.on("error", reject);
      });
      assert.equal(body.alpn, "http/1.1");
      assert.equal((JSON.parse(body.text) as { tenant: { name: string } }).tenant.name, "over tls");
    } finally {
      await server.close();
    }
  });
});

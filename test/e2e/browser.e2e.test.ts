/**
 * A browser client: Debian's headless Chromium (driven by playwright-core) loads a page
 * from another origin that calls the admin API with @connectrpc/connect-web over
 * gRPC-web and Connect, exercising CORS on the one port.
 */
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { build } from "esbuild";
import { launchChromium } from "../helpers/chromium.js";
import { ROOT } from "../helpers/protoc.js";
import { ADMIN_TOKEN, startServer, type TestServer } from "../helpers/server.js";

let server: TestServer;
let pageServer: http.Server;
let pageUrl: string;

before(async () => {
  server = await startServer();
  const bundle = await build({
    entryPoints: [path.join(ROOT, "test/web/client.ts")],
    bundle: true,
    format: "iife",
    platform: "browser",
    target: "es2022",
    write: false,
  });
  const js = bundle.outputFiles[0]?.text ?? "";
  const html =
    '<!doctype html><html><head><title>loading</title></head><body><script src="/client.js"></script></body></html>';
  pageServer = http.createServer((req, res) => {
    if (req.url === "/client.js") res.writeHead(200, { "content-type": "text/javascript" }).end(js);
    else res.writeHead(200, { "content-type": "text/html" }).end(html);
  });
  await new Promise<void>((r) => pageServer.listen(0, "127.0.0.1", r));
  // "localhost" vs the API's "127.0.0.1", and another port: a different origin.
  pageUrl = `http://localhost:${(pageServer.address() as AddressInfo).port}/`;
});

after(async () => {
  await new Promise<void>((r) => pageServer.close(() => r()));
  await server.close();
});

describe("browser client (headless Chromium)", () => {
  it("calls the admin API over gRPC-web and Connect from another origin", async () => {
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(e.message));
      await page.goto(pageUrl);
      await page.waitForFunction(() => document.title === "ready");
      const result = await page.evaluate(
        ([base, token]) =>
          (globalThis as unknown as { runAdmin: (b: string, t: string) => Promise<unknown> }).runAdmin(
            base as string,
            token as string,
          ),
        [server.url, ADMIN_TOKEN],
      );
      assert.deepEqual(errors, []);
      const r = result as {
        created: { tenantId: string; tenant: unknown };
        viaConnect: { tenant: unknown };
        viaBinary: { tenant: unknown };
        viaGrpcWeb: { tenant: unknown };
        denied: string;
      };
      const rest = await fetch(`${server.url}/admin/v1/tenants/${r.created.tenantId}`, {
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      const restJson = (await rest.json()) as { tenant: { name: string } };
      assert.equal(restJson.tenant.name, "from the browser");
      assert.deepEqual(r.viaConnect, restJson);
      assert.deepEqual(r.viaBinary, restJson);
      assert.deepEqual(r.viaGrpcWeb, restJson);
      assert.deepEqual(r.created.tenant, restJson.tenant);
      assert.equal(r.denied, "16", "Code.Unauthenticated without a token");
    } finally {
      await browser.close();
    }
  });
});

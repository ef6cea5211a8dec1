/**
 * The API reference at /docs/: swagger-ui served from the installed swagger-ui-dist (no CDN)
 * with our page listing every document of /openapi/index.json. Headless Chromium opens it,
 * selects each API and finds each documented path on the page, with no request leaving the
 * server's origin and no script or CSP error; a screenshot of each API is saved to
 * docs/screenshots/docs-<api>.png (linked from the README).
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { launchChromium } from "../helpers/chromium.js";
import { apiDocs, type Json } from "../helpers/openapi.js";
import { ROOT } from "../helpers/protoc.js";
import { startServer, type TestServer } from "../helpers/server.js";

const SCREENSHOTS = path.join(ROOT, "docs/screenshots");

let server: TestServer;
before(async () => {
  server = await startServer();
});
after(() => server.close());

/** A raw GET (fetch would normalize the path and undo gzip). */
function get(target: string, headers: Record<string, string> = {}, method = "GET") {
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
    const req = http.request(`${server.url}${target}`, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("/docs: the API reference", () => {
  it("serves our page and swagger-ui's files with their content types, and nothing else", async () => {
    const moved = await get("/docs");
    assert.deepEqual([moved.status, moved.headers.location], [301, "/docs/"]);
    const page = await get("/docs/");
    assert.equal(page.status, 200);
    assert.equal(page.headers["content-type"], "text/html; charset=utf-8");
    assert.match(String(page.headers["content-security-policy"]), /script-src 'self'/);
    assert.match(page.body.toString(), /swagger-ui-bundle\.js/);
    const types: [string, string][] = [
      ["init.js", "text/javascript; charset=utf-8"],
      ["swagger-ui-bundle.js", "text/javascript; charset=utf-8"],
      ["swagger-ui-standalone-preset.js", "text/javascript; charset=utf-8"],
      ["swagger-ui.css", "text/css; charset=utf-8"],
      ["index.css", "text/css; charset=utf-8"],
      ["favicon-32x32.png", "image/png"],
    ];
    for (const [name, type] of types) {
      const r = await get(`/docs/${name}`);
      assert.deepEqual([r.status, r.headers["content-type"]], [200, type], name);
      assert.equal(Number(r.headers["content-length"]), r.body.length, name);
    }
    const bundle = fs.readFileSync(path.join(ROOT, "node_modules/swagger-ui-dist/swagger-ui-bundle.js"));
    assert.deepEqual((await get("/docs/swagger-ui-bundle.js")).body, bundle);
    const zipped = await get("/docs/swagger-ui-bundle.js", { "accept-encoding": "gzip" });
    assert.equal(zipped.headers["content-encoding"], "gzip");
    assert.ok(zipped.body.length < bundle.length / 2);
    const etag = String(zipped.headers.etag);
    assert.equal((await get("/docs/swagger-ui-bundle.js", { "if-none-match": etag })).status, 304);
    const head = await get("/docs/swagger-ui.css", {}, "HEAD");
    assert.deepEqual([head.status, head.body.length], [200, 0]);
    for (const name of [
      "swagger-initializer.js",
      "package.json",
      "..%2Fpackage.json",
      "%2e%2e/x",
      "swagger-ui.js.map",
    ]) {
      assert.equal((await get(`/docs/${name}`)).status, 404, name);
    }
  });

  it("lists every API in headless Chromium and shows each one's paths (screenshots in docs/screenshots)", async () => {
    fs.mkdirSync(SCREENSHOTS, { recursive: true });
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
      const problems: string[] = [];
      const origin = new URL(server.url).origin;
      page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
      page.on("console", (m) => {
        if (m.type() === "error") problems.push(`console: ${m.text()}`);
      });
      page.on("request", (r) => {
        if (!r.url().startsWith(origin) && !r.url().startsWith("data:")) problems.push(`off-origin: ${r.url()}`);
      });
      await page.goto(`${server.url}/docs/`);
      await page.waitForFunction((n) => document.querySelectorAll("#select option").length === n, apiDocs.length, {
        timeout: 20_000,
      });
      const options = await page.$$eval("#select option", (os) => os.map((o) => o.textContent));
      assert.deepEqual(
        options,
        apiDocs.map((d) => d.title),
      );
      for (const { name, title, document: doc } of apiDocs) {
        await page.selectOption("#select", { label: title });
        const paths = Object.keys(doc.paths as Json).sort();
        await page.waitForFunction(
          ([t, n]) =>
            document.querySelector(".information-container .title")?.textContent?.startsWith(t as string) === true &&
            new Set(Array.from(document.querySelectorAll(".opblock-summary-path"), (e) => e.getAttribute("data-path")))
              .size === n,
          [title, paths.length] as const,
          { timeout: 20_000 },
        );
        const shown = await page.$$eval(".opblock-summary-path", (es) => es.map((e) => e.getAttribute("data-path")));
        assert.deepEqual([...new Set(shown)].sort(), paths, name);
        await page.screenshot({ path: path.join(SCREENSHOTS, `docs-${name}.png`) });
      }
      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
    }
  });
});

/**
 * The web console in Debian's headless Chromium (fake camera) against a media-enabled server:
 * the operator signs in and creates a tenant, the tenant creates an app and an SFU room, a
 * test call publishes the camera and views it back through the SFU (frames decoded), and the
 * live conference list shows a participant that joins over REST from another client. Saves a
 * screenshot of each page to docs/screenshots/console-<page>.png.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import { launchChromium } from "../helpers/chromium.js";
import { ROOT } from "../helpers/protoc.js";
import { ADMIN_TOKEN, serviceToken, startServer, type TestServer } from "../helpers/server.js";

const SHOTS = path.join(ROOT, "docs/screenshots");

let server: TestServer;
let browser: Browser;

/** The build step's own script, so the test serves exactly what `npm run build` makes. */
function buildConsole(): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile("npm", ["run", "--silent", "build:console"], { cwd: ROOT, timeout: 60_000 }, (err, _out, stderr) =>
      err === null ? resolve() : reject(new Error(`build:console failed: ${stderr}`)),
    ),
  );
}

/** A raw request (fetch would normalize the `..` away). */
function rawGet(url: string, target: string): Promise<{ status: number; body: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path: target, method: "GET" }, (res) => {
      let body = "";
      res.on("data", (c: Buffer) => {
        body += c.toString();
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

async function shot(page: Page, name: string): Promise<void> {
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `console-${name}.png`), fullPage: true });
}

before(async () => {
  await buildConsole();
  server = await startServer({}, undefined, undefined, true);
  browser = await launchChromium(["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]);
});

after(async () => {
  await browser?.close();
  await server?.close();
});

describe("web console", () => {
  it("serves the built files with types, caching and security headers, and nothing else", async () => {
    const index = await fetch(`${server.url}/`);
    assert.equal(index.status, 200);
    assert.equal(index.headers.get("content-type"), "text/html; charset=utf-8");
    assert.equal(index.headers.get("cache-control"), "no-cache");
    assert.match(index.headers.get("content-security-policy") ?? "", /script-src 'self'/);
    assert.match(await index.text(), /\/console\/main\.js/);
    const etag = index.headers.get("etag") ?? "";
    const again = await fetch(`${server.url}/console/`, { headers: { "if-none-match": etag } });
    assert.equal(again.status, 304);
    const js = await fetch(`${server.url}/console/main.js`);
    assert.equal(js.headers.get("content-type"), "text/javascript; charset=utf-8");
    assert.equal(
      (await fetch(`${server.url}/console/main.css`)).headers.get("content-type"),
      "text/css; charset=utf-8",
    );
    const bare = await fetch(`${server.url}/console`, { redirect: "manual" });
    assert.equal(bare.status, 301);
    assert.equal(bare.headers.get("location"), "/console/");
    const head = await fetch(`${server.url}/console/main.js`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), "");
    for (const target of [
      "/console/../package.json",
      "/console/%2e%2e/package.json",
      "/console/..%2fpackage.json",
      "/console/.hidden.js",
      "/console/missing.js",
      "/console/main.ts",
      "/console/%zz.js",
    ]) {
      const r = await rawGet(server.url, target);
      assert.equal(r.status, 404, `${target} → ${r.status}`);
    }
  });

  it("operator → tenant → app → room → test call through the SFU → live conference list", async (t) => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("dialog", (d) => void d.accept());
    try {
      await page.goto(`${server.url}/`);
      await page.locator("#signin").waitFor();
      await page.fill("input[name=token]", "not-the-admin-token-xxxx");
      await page.click("#signin button[type=submit]");
      await page.locator("#signin-error", { hasText: "Not signed in" }).waitFor();
      await page.fill("input[name=token]", ADMIN_TOKEN);
      await shot(page, "signin");
      await page.click("#signin button[type=submit]");

      // The operator creates a tenant and continues as it.
      await page.locator("#create-tenant").waitFor();
      await page.fill("#create-tenant input[name=name]", "acme");
      await page.click("#create-tenant button[type=submit]");
      const tenantId = (await page.locator("#tenant-created .tenant-id").textContent()) ?? "";
      const tenantToken = (await page.locator("#tenant-created .tenant-token").textContent()) ?? "";
      await page.locator("#tenant-list td", { hasText: "acme" }).waitFor();
      await shot(page, "tenants");
      const stored = await page.evaluate(() => sessionStorage.getItem("rtcplane.console.session") ?? "");
      assert.equal(JSON.parse(stored).kind, "operator");
      assert.equal(await page.evaluate(() => localStorage.length), 0, "nothing kept beyond the tab");
      await page.click("text=Sign in as this tenant");

      // The tenant creates an app and reads its keys.
      await page.locator("#create-app").waitFor();
      await page.fill("#create-app input[name=description]", "demo app");
      await page.click("#create-app button[type=submit]");
      await page.locator("#app-list td", { hasText: "demo app" }).waitFor();
      await page.click("#app-list button:has-text('Show secret')");
      const secret = (await page.locator("#app-list .app-secret code").textContent()) ?? "";
      const apikey = (await page.locator("#app-list .app-apikey").textContent()) ?? "";
      assert.match(secret, /\S{20,}/);
      await shot(page, "apps");

      // A room of type SFU.
      await page.goto(`${server.url}/#/rooms`);
      await page.locator("#create-room").waitFor();
      await page.fill("#create-room input[name=name]", "standup");
      await page.selectOption("#create-room select[name=conferenceType]", "SFU");
      await page.click("#create-room button[type=submit]");
      const roomId = (await page.locator("#room-list .room-id").first().textContent()) ?? "";
      assert.match(roomId, /^RO-/);
      await shot(page, "rooms");

      // The test call: ticket login, publish the fake camera, view it back through the SFU.
      await page.click("#room-list button:has-text('Test call')");
      await page.locator("#start-call").waitFor();
      assert.equal(await page.inputValue("#start-call select[name=room]"), roomId);
      const started = Date.now();
      await page.click("#start-call button[type=submit]");
      await page.locator("#call-frames").waitFor({ timeout: 20_000 });
      const frames = () => page.evaluate(() => Number(document.getElementById("call-frames")?.textContent ?? 0));
      await page.waitForFunction(() => Number(document.getElementById("call-frames")?.textContent) >= 10, null, {
        timeout: 20_000,
      });
      const firstMs = Date.now() - started;
      const first = await frames();
      await page.waitForTimeout(1500);
      const later = await frames();
      assert.ok(later > first, `framesDecoded grows: ${first} → ${later}`);
      // A string: tsx would wrap a named function in a helper the page does not have.
      const painted = (await page.evaluate(`new Promise((resolve) => {
        const v = document.getElementById("remote-video");
        let n = 0;
        const tick = () => (++n < 10 ? v.requestVideoFrameCallback(tick) : resolve(n));
        v.requestVideoFrameCallback(tick);
        setTimeout(() => resolve(n), 5000);
      })`)) as number;
      assert.equal(painted, 10, "the viewed-back video paints frames");
      assert.equal(await page.locator("#call-conference").textContent(), roomId);
      await shot(page, "call");
      t.diagnostic(`test call: ≥10 frames decoded ${firstMs} ms after Start; ${first} → ${later} in 1.5 s`);

      // The live list shows the call; a participant joining over REST appears without a reload.
      await page.goto(`${server.url}/#/conferences`);
      const card = page.locator(`section.conference[data-conference="${roomId}"]`);
      await card.locator(".badge.live").waitFor();
      assert.equal(await card.locator(".participant").count(), 1);
      assert.equal(await card.locator(".stream").count(), 1);
      const headers = { "x-auth-token": tenantToken };
      const apps = (await (await fetch(`${server.url}/tenants/${tenantId}/apps`, { headers })).json()) as {
        id: string;
        apikey: string;
      }[];
      assert.equal(apps[0]?.apikey, apikey);
      const token = await serviceToken(server.url, {
        tenantId,
        authToken: tenantToken,
        appId: apps[0]?.id ?? "",
        apikey,
        secret,
      });
      const joinedAt = Date.now();
      const joined = await fetch(`${server.url}/rtc-api/conferences/join`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ conferenceId: roomId, userEndpointId: "rest-guest", userId: "guest" }),
      });
      assert.equal(joined.status, 200, await joined.text());
      // Well under the page's 5 s poll: the event stream brought it.
      await card.locator(".participant", { hasText: "rest-guest" }).waitFor({ timeout: 3000 });
      const shownMs = Date.now() - joinedAt;
      t.diagnostic(`live list: REST join shown after ${shownMs} ms`);
      await shot(page, "conferences");

      // Hanging up leaves the conference: the list follows.
      await page.goto(`${server.url}/#/call`);
      await page.click("text=Hang up");
      await page.locator("#start-call").waitFor();
      await page.goto(`${server.url}/#/conferences`);
      await card.locator(".participant", { hasText: "rest-guest" }).waitFor();
      assert.equal(await card.locator(".participant").count(), 1);

      // Deleting the room ends its conference: it leaves the live list.
      await page.goto(`${server.url}/#/rooms`);
      await page.click("#room-list button:has-text('Delete')");
      await page.locator("#room-list", { hasText: "No rooms yet." }).waitFor();
      await page.goto(`${server.url}/#/conferences`);
      await page.locator("#conference-list", { hasText: "No running conferences." }).waitFor();

      // The other way in: a new conference with the app's client credentials.
      await page.goto(`${server.url}/#/call`);
      await page.selectOption("#start-call select[name=room]", "");
      await page.click("#start-call button[type=submit]");
      await page.waitForFunction(() => Number(document.getElementById("call-frames")?.textContent) >= 10, null, {
        timeout: 20_000,
      });
      assert.match((await page.locator("#call-conference").textContent()) ?? "", /^console-test-/);
      await page.click("text=Hang up");
      await page.locator("#start-call").waitFor();
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });
});

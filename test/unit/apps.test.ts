/** The apps domain on a real SQLite file: secrets, usage and validation rules. */
import assert from "node:assert/strict";
import path from "node:path";
import { describe, it } from "node:test";
import { Apps, usageMonth, validateBucketName, validateDomain } from "../../src/apps/apps.js";
import { ServerKey } from "../../src/auth/server-key.js";
import { openDatabase } from "../../src/storage/database.js";
import { SqliteStore } from "../../src/storage/sqlite-store.js";
import { Tenants } from "../../src/tenants/tenants.js";
import { tempDir } from "../helpers/server.js";

async function setup() {
  const dir = tempDir("rtcplane-apps-");
  const store = new SqliteStore(openDatabase(path.join(dir, "t.db")));
  const key = ServerKey.loadOrCreate(dir);
  const tenants = new Tenants(store, key);
  const apps = new Apps(store, key, () => Date.UTC(2018, 5, 15));
  const { tenant } = await tenants.create("t");
  return { dir, store, key, tenants, apps, tenantId: tenant.tenantId };
}

describe("Apps", () => {
  it("finds an app by its secret key until the key is renewed", async () => {
    const { apps, tenantId } = await setup();
    const app = (await apps.create(tenantId, {})).record;
    const old = await apps.secretKey(tenantId, app.appId);
    assert.equal((await apps.findBySecretKey(old))?.appId, app.appId);
    const renewed = await apps.renewSecretKey(tenantId, app.appId);
    assert.equal(await apps.findBySecretKey(old), undefined, "the old secret stops working at once");
    assert.equal((await apps.findBySecretKey(renewed))?.appId, app.appId);
    assert.equal((await apps.findByApikey(app.apikey))?.appId, app.appId);
  });

  it("raises the credential generation by one per renewal, also when renewals overlap", async () => {
    const { apps, tenantId } = await setup();
    const app = (await apps.create(tenantId, {})).record;
    const secrets = await Promise.all([
      apps.renewSecretKey(tenantId, app.appId),
      apps.renewSecretKey(tenantId, app.appId),
    ]);
    assert.equal((await apps.findById(app.appId))?.credentialGen, app.credentialGen + 2);
    assert.equal(await apps.findBySecretKey(secrets[0] ?? ""), undefined, "the first renewal's secret was replaced");
    assert.equal((await apps.findBySecretKey(secrets[1] ?? ""))?.appId, app.appId);
  });

  it("shows recorded usage by month, as numbers, and nothing before any is recorded", async () => {
    const { apps, tenantId } = await setup();
    const app = (await apps.create(tenantId, {})).record;
    assert.deepEqual([...(await apps.get(tenantId, app.appId)).usage], []);
    await apps.recordUsage(app.appId, { signaling: 2 }, Date.UTC(2018, 5, 1));
    await apps.recordUsage(app.appId, { signaling: 1, sfu: 30 }, Date.UTC(2018, 5, 30, 23, 59));
    await apps.recordUsage(app.appId, { turn: 4096 }, Date.UTC(2018, 6, 1));
    assert.deepEqual(Object.fromEntries((await apps.get(tenantId, app.appId)).usage), {
      "2018/06": { signaling: 3, turn: 0, sfu: 30 },
      "2018/07": { signaling: 0, turn: 4096, sfu: 0 },
    });
    const listed = (await apps.list(tenantId, true))[0];
    assert.deepEqual(
      Object.fromEntries(listed?.usage ?? []),
      Object.fromEntries((await apps.get(tenantId, app.appId)).usage),
    );
  });

  it("deletes an app with its usage", async () => {
    const { apps, tenantId, store } = await setup();
    const app = (await apps.create(tenantId, {})).record;
    await apps.recordUsage(app.appId, { signaling: 1 });
    await apps.delete(tenantId, app.appId);
    assert.equal((await store.get<{ n: number }>("SELECT count(*) AS n FROM app_usage"))?.n, 0);
  });

  it("cannot decrypt a secret moved to another row or under another server key", async () => {
    const { apps, tenantId, store, tenants } = await setup();
    const a = (await apps.create(tenantId, {})).record;
    const b = (await apps.create(tenantId, {})).record;
    await store.run("UPDATE apps SET secret_enc = (SELECT secret_enc FROM apps WHERE app_id = ?) WHERE app_id = ?", [
      a.appId,
      b.appId,
    ]);
    await assert.rejects(apps.secretKey(tenantId, b.appId));
    const otherKey = ServerKey.loadOrCreate(tempDir("rtcplane-key-"));
    await assert.rejects(new Apps(store, otherKey).secretKey(tenantId, a.appId));
    assert.ok(tenants);
  });

  it("months are UTC YYYY/MM", () => {
    assert.equal(usageMonth(Date.UTC(2018, 0, 31, 23, 59)), "2018/01");
    assert.equal(usageMonth(Date.UTC(2018, 11, 1)), "2018/12");
  });
});

describe("domain and bucket rules", () => {
  const goodDomains = ["example.com", "EXAMPLE.com", "*.example.com", "localhost", "a-b.c1.io", "127.0.0.1"];
  for (const d of goodDomains) it(`accepts domain ${d}`, () => assert.equal(validateDomain(d), d.toLowerCase()));
  const badDomains = [
    "",
    "*.",
    "*",
    "a..b",
    "-a.com",
    "a-.com",
    "a_b.com",
    "http://a.com",
    "a.com/x",
    "a.com:80",
    "é.com",
  ];
  for (const d of badDomains) it(`rejects domain ${JSON.stringify(d)}`, () => assert.throws(() => validateDomain(d)));
  for (const b of ["abc", "my-bucket_1", "a.b.c"])
    it(`accepts bucket ${b}`, () => assert.equal(validateBucketName(b), b));
  for (const b of ["ab", "Upper", "-x-", "192.168.1.1", "goog-bucket", "a".repeat(64)]) {
    it(`rejects bucket ${b}`, () => assert.throws(() => validateBucketName(b)));
  }
});

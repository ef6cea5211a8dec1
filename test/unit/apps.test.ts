/** The apps domain on a real SQLite file: secrets, usage and validation rules. */
import assert from "node:assert/strict";
import path from "node:path";
import { describe, it } from "node:test";
import { Apps, usageMonth, validateBucketName, validateDomain } from "../../src/apps/apps.js";
import { ServerKey } from "../../src/auth/server-key.js";
import { openDatabase } from "../../src/storage/database.js";
import { Tenants } from "../../src/tenants/tenants.js";
import { tempDir } from "../helpers/server.js";

function setup() {
  const dir = tempDir("rtcplane-apps-");
  const db = openDatabase(path.join(dir, "t.db"));
  const key = ServerKey.loadOrCreate(dir);
  const tenants = new Tenants(db, key);
  const apps = new Apps(db, key, () => Date.UTC(2018, 5, 15));
  const { tenant } = tenants.create("t");
  return { dir, db, key, tenants, apps, tenantId: tenant.tenantId };
}

describe("Apps", () => {
  it("finds an app by its secret key until the key is renewed", () => {
    const { apps, tenantId } = setup();
    const app = apps.create(tenantId, {}).record;
    const old = apps.secretKey(tenantId, app.appId);
    assert.equal(apps.findBySecretKey(old)?.appId, app.appId);
    const renewed = apps.renewSecretKey(tenantId, app.appId);
    assert.equal(apps.findBySecretKey(old), undefined, "the old secret stops working at once");
    assert.equal(apps.findBySecretKey(renewed)?.appId, app.appId);
    assert.equal(apps.findByApikey(app.apikey)?.appId, app.appId);
  });

  it("shows recorded usage by month, as numbers, and nothing before any is recorded", () => {
    const { apps, tenantId } = setup();
    const app = apps.create(tenantId, {}).record;
    assert.deepEqual([...apps.get(tenantId, app.appId).usage], []);
    apps.recordUsage(app.appId, { signaling: 2 }, Date.UTC(2018, 5, 1));
    apps.recordUsage(app.appId, { signaling: 1, sfu: 30 }, Date.UTC(2018, 5, 30, 23, 59));
    apps.recordUsage(app.appId, { turn: 4096 }, Date.UTC(2018, 6, 1));
    assert.deepEqual(Object.fromEntries(apps.get(tenantId, app.appId).usage), {
      "2018/06": { signaling: 3, turn: 0, sfu: 30 },
      "2018/07": { signaling: 0, turn: 4096, sfu: 0 },
    });
    const listed = apps.list(tenantId, true)[0];
    assert.deepEqual(Object.fromEntries(listed?.usage ?? []), Object.fromEntries(apps.get(tenantId, app.appId).usage));
  });

  it("deletes an app with its usage", () => {
    const { apps, tenantId, db } = setup();
    const app = apps.create(tenantId, {}).record;
    apps.recordUsage(app.appId, { signaling: 1 });
    apps.delete(tenantId, app.appId);
    assert.equal((db.prepare("SELECT count(*) AS n FROM app_usage").get() as { n: number }).n, 0);
  });

  it("cannot decrypt a secret moved to another row or under another server key", () => {
    const { apps, tenantId, db, tenants } = setup();
    const a = apps.create(tenantId, {}).record;
    const b = apps.create(tenantId, {}).record;
    db.prepare("UPDATE apps SET secret_enc = (SELECT secret_enc FROM apps WHERE app_id = ?) WHERE app_id = ?").run(
      a.appId,
      b.appId,
    );
    assert.throws(() => apps.secretKey(tenantId, b.appId));
    const otherKey = ServerKey.loadOrCreate(tempDir("rtcplane-key-"));
    assert.throws(() => new Apps(db, otherKey).secretKey(tenantId, a.appId));
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

/**
 * The REST APIs' OpenAPI 3.1 documents (generated from the protos into gen/openapi by
 * `buf generate`, bundled into the build) at `/openapi/<name>.json`, their list at
 * `/openapi/index.json`, and the API reference at `/docs/`: swagger-ui from the installed
 * swagger-ui-dist package (no CDN), with a page of ours that lists every document. Only the
 * named files are served; each answer is made once and kept (gzip too, for the big script).
 */
import { createHash } from "node:crypto";
import fs from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { openApiDocuments } from "../../gen/openapi/index.js";
import type { OperatorPages } from "./operator-pages.js";
import type { NodeRequest, NodeResponse } from "./types.js";

interface Asset {
  readonly type: string;
  readonly body: Buffer;
  readonly gzip?: Buffer;
  readonly etag: string;
}

/** swagger-ui-dist files the page loads, with their content types. */
const VENDOR_FILES: Record<string, string> = {
  "swagger-ui.css": "text/css; charset=utf-8",
  "index.css": "text/css; charset=utf-8",
  "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
  "swagger-ui-standalone-preset.js": "text/javascript; charset=utf-8",
  "favicon-16x16.png": "image/png",
  "favicon-32x32.png": "image/png",
};

const INDEX_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>rtcplane API reference</title>
<link rel="stylesheet" href="swagger-ui.css">
<link rel="stylesheet" href="index.css">
<link rel="icon" type="image/png" href="favicon-32x32.png" sizes="32x32">
<link rel="icon" type="image/png" href="favicon-16x16.png" sizes="16x16">
</head>
<body>
<div id="swagger-ui"></div>
<script src="swagger-ui-bundle.js"></script>
<script src="swagger-ui-standalone-preset.js"></script>
<script src="init.js"></script>
</body>
</html>
`;

// Lists every document from /openapi/index.json; `?api=<name>` opens that one first.
const INIT_JS = `"use strict";
fetch(new URL("../openapi/index.json", location.href))
  .then((r) => r.json())
  .then((apis) => {
    const wanted = new URLSearchParams(location.search).get("api");
    const first = apis.find((a) => a.name === wanted) || apis[0];
    window.ui = SwaggerUIBundle({
      urls: apis.map((a) => ({ url: a.url, name: a.title })),
      "urls.primaryName": first ? first.title : undefined,
      dom_id: "#swagger-ui",
      deepLinking: true,
      validatorUrl: null,
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
      layout: "StandaloneLayout",
    });
  });
`;

const DOCS_HEADERS = {
  // swagger-ui sets style attributes and shows data: images; everything else from this origin.
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; " +
    "img-src 'self' data:; font-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "referrer-policy": "no-referrer",
};

function asset(type: string, body: Buffer, compress = false): Asset {
  const etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`;
  return { type, body, etag, ...(compress ? { gzip: gzipSync(body) } : {}) };
}

/** Where swagger-ui-dist is installed (found as node finds packages, from src/ or dist/). */
function swaggerUiDir(): string {
  return path.dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));
}

export interface ApiListing {
  readonly name: string;
  readonly title: string;
  readonly url: string;
}

export class OpenApiPages {
  private readonly documents = new Map<string, Asset>();
  private readonly index: Asset;
  private readonly vendor = new Map<string, Promise<Asset>>();
  private readonly own = new Map<string, Asset>([
    ["index.html", asset("text/html; charset=utf-8", Buffer.from(INDEX_HTML))],
    ["init.js", asset("text/javascript; charset=utf-8", Buffer.from(INIT_JS))],
  ]);

  constructor(
    documents: readonly { name: string; title: string; document: unknown }[] = openApiDocuments,
    private readonly vendorDir: string = swaggerUiDir(),
  ) {
    const listing: ApiListing[] = [];
    for (const { name, title, document } of documents) {
      this.documents.set(`${name}.json`, asset("application/json", Buffer.from(JSON.stringify(document)), true));
      listing.push({ name, title, url: `/openapi/${name}.json` });
    }
    this.index = asset("application/json", Buffer.from(JSON.stringify(listing)));
  }

  /** Registers `/openapi/index.json`, `/openapi/<name>.json`, `/docs` and `/docs/…`. */
  register(pages: OperatorPages): void {
    pages.add("/openapi/index.json", (req, res) => send(req, res, this.index));
    pages.addPrefix("/openapi/", (req, res) => {
      const found = this.documents.get(fileName(req, "/openapi/"));
      send(req, res, found);
    });
    pages.add("/docs", (_req, res) => {
      res.writeHead(301, { location: "/docs/", "content-length": "0" });
      res.end();
    });
    pages.addPrefix("/docs/", async (req, res) => {
      const name = fileName(req, "/docs/") || "index.html";
      const found = this.own.get(name) ?? (await this.vendorFile(name));
      send(req, res, found, DOCS_HEADERS);
    });
  }

  /** A swagger-ui-dist file, read once; undefined for any name not in the list. */
  private vendorFile(name: string): Promise<Asset | undefined> {
    const type = Object.hasOwn(VENDOR_FILES, name) ? VENDOR_FILES[name] : undefined;
    if (type === undefined) return Promise.resolve(undefined);
    let pending = this.vendor.get(name);
    if (pending === undefined) {
      pending = fs
        .readFile(path.join(this.vendorDir, name))
        .then((body) => asset(type, body, !type.startsWith("image/")));
      // A failed read is not kept, so a later request tries again.
      pending.catch(() => this.vendor.delete(name));
      this.vendor.set(name, pending);
    }
    return pending;
  }
}

function fileName(req: NodeRequest, prefix: string): string {
  return (req.url ?? "").split("?")[0]?.slice(prefix.length) ?? "";
}

function send(req: NodeRequest, res: NodeResponse, found: Asset | undefined, extra: Record<string, string> = {}): void {
  if (found === undefined) {
    const body = "404 page not found\n";
    res.writeHead(404, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(body) });
    res.end(req.method === "HEAD" ? undefined : body);
    return;
  }
  const headers: Record<string, string | number> = {
    ...extra,
    "content-type": found.type,
    "cache-control": "no-cache",
    etag: found.etag,
    vary: "accept-encoding",
  };
  if (req.headers["if-none-match"] === found.etag) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  const gzip = found.gzip !== undefined && /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""));
  const body = gzip ? (found.gzip as Buffer) : found.body;
  if (gzip) headers["content-encoding"] = "gzip";
  headers["content-length"] = body.length;
  res.writeHead(200, headers);
  res.end(req.method === "HEAD" ? undefined : body);
}

/**
 * The web console: the static files the build puts in `dist/console/` (web/console bundled by
 * esbuild), served at `/` (the page) and under `/console/` (the page and its assets; `/console`
 * redirects there). Only
 * plain file names from that one directory are served — no `..`, no hidden files, no
 * directories — with their content type, an ETag and `no-cache` (so a rebuilt console is
 * picked up at once, and an unchanged one costs a 304). The page calls the APIs on this same
 * origin with the token its user typed; a strict CSP keeps everything else out.
 */
import { createHash } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { OperatorPages } from "./operator-pages.js";
import type { NodeRequest, NodeResponse } from "./types.js";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
};

/** Files are small; anything larger in the directory is not ours to serve. */
const MAX_FILE_BYTES = 8 * 1024 * 1024;
const SAFE_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;

const HEADERS = {
  "cache-control": "no-cache",
  // Scripts, styles and API calls from this origin only; media from the camera and the SFU.
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
    "media-src 'self' blob: mediastream:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
};

/** `dist/console` of the checkout this module runs from (as `src/http/…` or as `dist/server.js`). */
export function defaultConsoleDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    if (path.basename(dir) === "dist") return path.join(dir, "console");
    if (path.basename(dir) === "src") return path.join(path.dirname(dir), "dist", "console");
    dir = path.dirname(dir);
  }
  return path.resolve("dist", "console");
}

interface Cached {
  readonly mtimeMs: number;
  readonly size: number;
  readonly body: Buffer;
  readonly etag: string;
}

export class ConsolePages {
  private readonly cache = new Map<string, Cached>();

  constructor(private readonly dir: string = defaultConsoleDir()) {}

  /** Registers the page at `/` and `/console/…`. */
  register(pages: OperatorPages): void {
    pages.add("/", (req, res) => this.serve(req, res, "index.html"));
    pages.add("/console", (_req, res) => {
      res.writeHead(301, { location: "/console/", "content-length": "0" });
      res.end();
    });
    pages.addPrefix("/console/", (req, res) => {
      const rest = (req.url ?? "").split("?")[0]?.slice("/console/".length) ?? "";
      return this.serve(req, res, rest === "" ? "index.html" : rest);
    });
  }

  private async serve(req: NodeRequest, res: NodeResponse, name: string): Promise<void> {
    let decoded: string;
    try {
      decoded = decodeURIComponent(name);
    } catch {
      decoded = "";
    }
    const type = TYPES[path.extname(decoded).toLowerCase()];
    if (!SAFE_NAME.test(decoded) || type === undefined) return notFound(res);
    const file = await this.read(decoded);
    if (file === "missing") {
      if (decoded !== "index.html") return notFound(res);
      res.writeHead(503, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
      res.end(`the console is not built: run "npm run build" (looked in ${this.dir})\n`);
      return;
    }
    if (req.headers["if-none-match"] === file.etag) {
      res.writeHead(304, { etag: file.etag, ...HEADERS });
      res.end();
      return;
    }
    res.writeHead(200, { "content-type": type, "content-length": file.body.length, etag: file.etag, ...HEADERS });
    res.end(req.method === "HEAD" ? undefined : file.body);
  }

  /** The file's bytes, re-read when it changed on disk (a rebuild while running). */
  private async read(name: string): Promise<Cached | "missing"> {
    const full = path.join(this.dir, name);
    const stat = await fs.stat(full).catch(() => undefined);
    if (stat === undefined || !stat.isFile() || stat.size > MAX_FILE_BYTES) return "missing";
    const known = this.cache.get(name);
    if (known !== undefined && known.mtimeMs === stat.mtimeMs && known.size === stat.size) return known;
    const body = await fs.readFile(full);
    const etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"`;
    const cached = { mtimeMs: stat.mtimeMs, size: stat.size, body, etag };
    // Only the few built files are ever asked for by name; still, never grow without bound.
    if (this.cache.size >= 64) this.cache.clear();
    this.cache.set(name, cached);
    return cached;
  }
}

function notFound(res: NodeResponse): void {
  res.writeHead(404, { "content-type": "text/plain; charset=utf-8" });
  res.end("not found\n");
}

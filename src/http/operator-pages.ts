/**
 * What the one port serves besides the APIs, for operators and their tools: fixed GET/HEAD
 * paths (and path prefixes) answered before the API router — `/healthz`, and whatever other
 * modules register (metrics, API documents, the docs page, the console). Each handler answers
 * the whole request itself; a failure is logged and answered 500 once, never thrown.
 */
import type { Logger } from "../observability/log.js";
import type { NodeRequest, NodeResponse } from "./types.js";

export type PageHandler = (req: NodeRequest, res: NodeResponse) => void | Promise<void>;

export class OperatorPages {
  private readonly exact = new Map<string, PageHandler>();
  private readonly prefixes: [string, PageHandler][] = [];

  constructor(private readonly logger: Logger) {}

  /** Serves GET/HEAD on exactly `path`. */
  add(path: string, handler: PageHandler): void {
    if (this.exact.has(path)) throw new Error(`${path} is served already`);
    this.exact.set(path, handler);
  }

  /** Serves GET/HEAD on every path under `prefix` (which ends with "/"). */
  addPrefix(prefix: string, handler: PageHandler): void {
    if (!prefix.endsWith("/")) throw new Error(`prefix ${prefix} must end with "/"`);
    this.prefixes.push([prefix, handler]);
  }

  /** Answers the request if one of the pages is its path; false to let the APIs have it. */
  handle(req: NodeRequest, res: NodeResponse, path: string): boolean {
    if (req.method !== "GET" && req.method !== "HEAD") return false;
    const handler = this.exact.get(path) ?? this.prefixes.find(([p]) => path.startsWith(p))?.[1];
    if (handler === undefined) return false;
    const failed = (err: unknown) => {
      this.logger.error({ err, path }, "operator page failed");
      if (!res.headersSent) {
        res.writeHead(500, { "content-type": "text/plain" });
        res.end("internal error");
      } else res.end();
    };
    try {
      const done = handler(req, res);
      if (done instanceof Promise) done.catch(failed);
    } catch (err) {
      failed(err);
    }
    return true;
  }
}

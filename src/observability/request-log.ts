/**
 * One log line per request, when it finishes. Successful requests are logged at debug;
 * failed ones (4xx, 5xx) at info or warn, with the RPC's error code when there was one —
 * but at most a configured number per second, so that a flood of bad requests cannot
 * flood the log. Lines over the budget are counted and reported as one summary line.
 */
import type { NodeRequest, NodeResponse } from "../http/types.js";
import { TokenBucket } from "../sockets/token-bucket.js";
import type { Logger, RequestInfo } from "./log.js";

const SUMMARY_INTERVAL_MS = 10_000;

export class RequestLog {
  private readonly budget: TokenBucket;
  private suppressed = 0;
  private readonly timer: NodeJS.Timeout;
  /** Told every request's HTTP status as it finishes (metrics). */
  onAnswer: ((status: number) => void) | undefined;

  constructor(
    private readonly root: Logger,
    perSecond: number,
  ) {
    this.budget = new TokenBucket(perSecond, perSecond);
    this.timer = setInterval(() => this.flush(), SUMMARY_INTERVAL_MS);
    this.timer.unref();
  }

  /** Logs `req`'s outcome when `res` finishes. */
  watch(req: NodeRequest, res: NodeResponse, info: RequestInfo): void {
    const started = process.hrtime.bigint();
    res.on("finish", () => {
      const status = res.statusCode;
      this.onAnswer?.(status);
      // gRPC answers errors with HTTP 200 and the code in trailers: the RPC's outcome counts too.
      const refused = status >= 400 || info.outcome !== undefined;
      if (!refused && !this.root.isLevelEnabled("debug")) return;
      const ms = Math.round(Number(process.hrtime.bigint() - started) / 1e5) / 10;
      const line = { method: req.method, path: req.url?.split("?")[0], status, ms, ...info.outcome };
      if (!refused) info.log.debug(line, "request");
      else if (!this.budget.take()) this.suppressed++;
      else if (status >= 500 || info.outcome?.code === "Internal") info.log.warn(line, "request failed");
      else info.log.info(line, "request refused");
    });
  }

  private flush(): void {
    if (this.suppressed === 0) return;
    this.root.info({ suppressed: this.suppressed }, "request log lines over REQUEST_LOG_PER_SECOND were dropped");
    this.suppressed = 0;
  }

  close(): void {
    clearInterval(this.timer);
    this.flush();
  }
}

/**
 * Structured JSON logs (pino). Every request gets an id (the caller's `x-request-id`
 * when it is sane, else a new one) that is echoed back and stamped on its log lines.
 * A request's outcome is logged once, when it finishes (request-log.ts); RPC failures are
 * recorded on the request for that line rather than logged on their own.
 */
import { randomUUID } from "node:crypto";
import { type ContextValues, createContextKey, createContextValues } from "@connectrpc/connect";
import { type Logger, pino } from "pino";
import pretty from "pino-pretty";
import type { NodeRequest } from "../http/types.js";

export type { Logger };

export type LogFormat = "auto" | "json" | "pretty";

/**
 * JSON lines for log storage; coloured, readable lines when a person watches (`pretty`, or
 * `auto` with stdout a terminal). Pretty lines are formatted on the main thread: fine for a
 * terminal, not meant for a busy production node.
 */
export function createLogger(level: string, format: LogFormat = "json"): Logger {
  const options = {
    level,
    base: { service: "rtcplane" },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: ["*.authorization", "*.authToken", "*.secretkey", "*.password"], censor: "[redacted]" },
  };
  const readable = format === "pretty" || (format === "auto" && process.stdout.isTTY === true);
  if (!readable) return pino(options);
  return pino(
    options,
    pretty({
      colorize: process.stdout.isTTY === true,
      translateTime: "SYS:HH:MM:ss.l",
      ignore: "pid,hostname,service",
    }),
  );
}

/** How an RPC failed, for the request's log line. */
export interface RpcOutcome {
  readonly rpc: string;
  readonly code: string;
  readonly msg: string;
}

export interface RequestInfo {
  readonly id: string;
  readonly log: Logger;
  /** Set when the request's RPC failed with a client-visible error. */
  outcome?: RpcOutcome;
}

const requests = new WeakMap<NodeRequest, RequestInfo>();

/** The context key under which RPC handlers find their request (its logger and outcome). */
export const kRequestInfo = createContextKey<RequestInfo | undefined>(undefined, { description: "request info" });

const SANE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** A request's id and its logger (made when first used: most requests log nothing). */
class RequestLogInfo implements RequestInfo {
  private child: Logger | undefined;
  outcome?: RpcOutcome;

  constructor(
    readonly id: string,
    private readonly root: Logger,
  ) {}

  get log(): Logger {
    this.child ??= this.root.child({ reqId: this.id });
    return this.child;
  }
}

/** Assigns the request its id and logger; call once, when the request arrives. */
export function beginRequest(req: NodeRequest, root: Logger): RequestInfo {
  const given = req.headers["x-request-id"];
  const id = typeof given === "string" && SANE_ID.test(given) ? given : randomUUID();
  const info = new RequestLogInfo(id, root);
  requests.set(req, info);
  return info;
}

export function requestInfo(req: NodeRequest, root: Logger): RequestInfo {
  return requests.get(req) ?? beginRequest(req, root);
}

/** Context values for a handler serving `req`. */
export function contextValuesFor(req: NodeRequest, root: Logger): ContextValues {
  return createContextValues().set(kRequestInfo, requestInfo(req, root));
}

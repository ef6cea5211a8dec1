/**
 * The REST gateway: serves the generated routes by calling the same service
 * implementations the Connect router serves, in-process (no loopback HTTP hop), through
 * the same interceptors (request log, authentication, ...), and renders results and
 * errors in each route's dialect.
 */
import { create, type DescMessage, type DescService, type Message, toJson } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type HandlerContext,
  type Interceptor,
  type StreamRequest,
  type UnaryRequest,
} from "@connectrpc/connect";
import { invalidArgument, resourceExhausted } from "../errors.js";
import { toConnectError } from "../http/rpc-errors.js";
import type { NodeRequest, NodeResponse } from "../http/types.js";
import { contextValuesFor, type Logger } from "../observability/log.js";
import { bindRequest } from "./binder.js";
import type { Dialect, GatewayRefusal, RenderedResponse } from "./dialects/dialect.js";
import { hasLegacyJson, shapeMessage } from "./json-shape.js";
import { RestContext, WaitingCalls } from "./rest-context.js";
import { type RouteSpec, RouteTable } from "./route-table.js";

type UnaryFn = Parameters<Interceptor>[0];

/** Any service implementation: method local name → function. */
export type AnyServiceImpl = Record<string, (request: never, context: HandlerContext) => unknown>;

export interface GatewayOptions {
  readonly routes: Iterable<RouteSpec>;
  readonly implementations: ReadonlyMap<DescService, AnyServiceImpl>;
  readonly dialects: ReadonlyMap<string, Dialect>;
  readonly defaultDialect: string;
  readonly maxBodyBytes: number;
  readonly logger: Logger;
  /** The interceptors every protocol's calls pass (request log, authentication, ...). */
  readonly interceptors: readonly Interceptor[];
  /** Aborted when the server shuts down, so long waits end early. */
  readonly shutdownSignal?: AbortSignal;
}

const NO_QUERY = new URLSearchParams();

/** Runs `base` inside the interceptors, outermost first (as connect's own handlers do). */
function compose<Req, Res>(interceptors: readonly Interceptor[], base: (req: Req) => Promise<Res>) {
  let next = base as unknown as UnaryFn;
  for (let i = interceptors.length - 1; i >= 0; i--) next = (interceptors[i] as Interceptor)(next);
  return next as unknown as (req: Req) => Promise<Res>;
}

async function* oneMessage<T>(message: T): AsyncIterable<T> {
  yield message;
}

/** Thrown while reading a request: the gateway refused it before any RPC ran. */
class Refusal extends Error {
  constructor(
    readonly refusal: GatewayRefusal,
    readonly error: ConnectError,
  ) {
    super(error.message);
  }
}

const HTTP_BODY_TYPE = "google.api.HttpBody";

function isJsonContentType(value: string | undefined): boolean {
  if (value === undefined) return false;
  const mediaType = value.split(";")[0]?.trim().toLowerCase() ?? "";
  return mediaType === "application/json" || /^application\/[a-z0-9.+-]*\+json$/.test(mediaType);
}

function isFormContentType(value: string | undefined): boolean {
  return value?.split(";")[0]?.trim().toLowerCase() === "application/x-www-form-urlencoded";
}

export class RestGateway {
  readonly table: RouteTable;
  private readonly options: GatewayOptions;
  /**
   * A result object a service hands out more than once (one event batch answering a
   * thousand long-polls) becomes one message and is rendered once for its route.
   */
  private readonly messages = new WeakMap<object, Message>();
  private readonly renders = new WeakMap<Message, { route: RouteSpec; rendered: RenderedResponse }>();
  private readonly waiting: WaitingCalls;

  constructor(options: GatewayOptions) {
    this.options = options;
    this.waiting = new WaitingCalls(options.shutdownSignal);
    this.table = new RouteTable(options.routes, options.defaultDialect);
    for (const route of this.table.all) {
      if (!options.dialects.has(route.dialect)) {
        throw new Error(
          `route ${route.verb} ${route.pattern} uses dialect "${route.dialect}", which is not registered`,
        );
      }
      if (!options.implementations.has(route.service)) {
        throw new Error(
          `route ${route.verb} ${route.pattern} needs ${route.service.typeName}, which is not registered`,
        );
      }
    }
  }

  private dialect(name: string): Dialect {
    return this.options.dialects.get(name) ?? (this.options.dialects.get(this.options.defaultDialect) as Dialect);
  }

  /** Serves one request; never throws (every failure becomes the dialect's error). */
  async handle(req: NodeRequest, res: NodeResponse): Promise<void> {
    // The request target as a path and a query (a "//x" target is a path here, never a host).
    const target = req.url ?? "/";
    const q = target.indexOf("?");
    const pathname = q < 0 ? target : target.slice(0, q);
    const verb = (req.method ?? "GET").toUpperCase();
    if (!pathname.startsWith("/")) {
      drain(req);
      const dialect = this.dialect(this.options.defaultDialect);
      return write(
        res,
        dialect.renderError(toConnectError(invalidArgument("the request target cannot be parsed")), "malformed-json"),
      );
    }
    const match = this.table.match(verb, pathname);
    if (match.kind === "not-found") {
      drain(req);
      return write(res, this.dialect(match.dialect).renderError(refusalError("not-found", pathname), "not-found"));
    }
    if (match.kind === "method-not-allowed") {
      drain(req);
      const rendered = this.dialect(match.dialect).renderError(
        refusalError("method-not-allowed", `${verb} ${pathname}`),
        "method-not-allowed",
      );
      return write(res, { ...rendered, headers: { ...rendered.headers, allow: match.allow.join(", ") } });
    }
    const { route, bindings } = match;
    const dialect = this.dialect(route.dialect);
    try {
      const body = await this.readBody(req, route, dialect);
      const message = bindRequest({
        schema: route.method.input,
        bodyField: route.body,
        pathBindings: bindings,
        body: body instanceof URLSearchParams ? undefined : body,
        query: body instanceof URLSearchParams ? body : q < 0 ? NO_QUERY : new URLSearchParams(target.slice(q + 1)),
        jsonRead: dialect.jsonRead,
        ...(body instanceof URLSearchParams ? { formBody: true } : {}),
      });
      const ctx = new RestContext(
        route.service,
        route.method,
        verb,
        target,
        headersOf(req),
        contextValuesFor(req, this.options.logger),
        res,
        this.waiting,
      );
      const impl = this.options.implementations.get(route.service) as AnyServiceImpl;
      const fn = impl[route.method.localName] as (m: unknown, c: HandlerContext) => unknown;
      if (route.method.methodKind === "server_streaming") {
        const call = compose(this.options.interceptors, (r: StreamRequest) =>
          Promise.resolve({
            stream: true as const,
            service: r.service,
            method: r.method,
            header: ctx.responseHeader,
            trailer: ctx.responseTrailer,
            message: fn.call(impl, message, ctx) as AsyncIterable<Message>,
          }),
        );
        const out = await call(this.request(ctx, oneMessage(message), true));
        await this.streamResponse(res, route, dialect, out.message as AsyncIterable<unknown>, ctx);
        return;
      }
      const answer = (result: unknown) => ({
        stream: false as const,
        service: route.service,
        method: route.method as UnaryRequest["method"],
        // Made only if someone looks: a call that sets no headers can share its rendering.
        get header() {
          return ctx.responseHeader;
        },
        get trailer() {
          return ctx.responseTrailer;
        },
        message: this.messageOf(route, result),
      });
      const call = compose(this.options.interceptors, (_r: UnaryRequest) => {
        const result = fn.call(impl, message, ctx);
        return result instanceof Promise ? result.then(answer) : Promise.resolve(answer(result));
      });
      const out = await call(this.request(ctx, message, false));
      write(res, this.rendered(route, dialect, out.message as Message, ctx));
    } catch (e) {
      if (e instanceof Refusal) {
        drain(req);
        return write(res, dialect.renderError(e.error, e.refusal, route.method), e.refusal === "body-too-large");
      }
      // The error interceptor has logged it and recorded it for the request's log line.
      write(res, dialect.renderError(toConnectError(e), undefined, route.method));
    }
  }

  private messageOf(route: RouteSpec, result: unknown): Message {
    if (result === null || typeof result !== "object") return create(route.method.output, result as never) as Message;
    let message = this.messages.get(result);
    if (message === undefined) {
      message = create(route.method.output, result as never) as Message;
      this.messages.set(result, message);
    }
    return message;
  }

  /** The success response, rendered once per message and route unless the call set headers. */
  private rendered(route: RouteSpec, dialect: Dialect, output: Message, ctx: RestContext): RenderedResponse {
    if (ctx.headersSet() !== undefined) return this.renderSuccess(route, dialect, output, ctx);
    const known = this.renders.get(output);
    if (known?.route === route) return known.rendered;
    const rendered = this.renderSuccess(route, dialect, output, ctx);
    this.renders.set(output, { route, rendered });
    return rendered;
  }

  /** The interceptors' view of a REST call: the same request they see for gRPC and Connect. */
  private request(ctx: RestContext, message: unknown, stream: boolean): UnaryRequest & StreamRequest {
    return {
      stream,
      service: ctx.service,
      method: ctx.method,
      requestMethod: ctx.requestMethod,
      url: ctx.url,
      header: ctx.requestHeader,
      contextValues: ctx.values,
      message,
      get signal() {
        return ctx.signal;
      },
    } as unknown as UnaryRequest & StreamRequest;
  }

  /**
   * Reads the body within the size limit: parsed JSON, a form (dialects that accept
   * forms), or undefined when the request has none.
   */
  private async readBody(req: NodeRequest, route: RouteSpec, dialect: Dialect): Promise<unknown> {
    const limit = this.options.maxBodyBytes;
    const length = req.headers["content-length"];
    // No length and no chunked encoding: HTTP/1.1 says there is no body (HTTP/2 GETs end with their headers).
    if (
      (length === undefined && req.headers["transfer-encoding"] === undefined && !("stream" in req)) ||
      length === "0" ||
      ("stream" in req && (req.stream as { endAfterHeaders?: boolean }).endAfterHeaders === true)
    ) {
      return undefined;
    }
    const declared = Number(length ?? Number.NaN);
    if (declared > limit) throw tooLarge(limit);
    const { chunks, size } = await readAll(req, limit);
    if (size === 0 || route.body === "") return undefined;
    // A body without any content type is read as JSON (curl-style legacy clients); a body
    // that says it is something else is refused.
    const contentType = req.headers["content-type"];
    if (dialect.acceptsForm && route.body === "*" && isFormContentType(contentType)) {
      return new URLSearchParams(Buffer.concat(chunks, size).toString("utf8"));
    }
    if (contentType !== undefined && !isJsonContentType(contentType)) {
      throw new Refusal(
        "unsupported-media-type",
        toConnectError(
          invalidArgument(`content type ${JSON.stringify(req.headers["content-type"] ?? "")} is not application/json`),
        ),
      );
    }
    try {
      return JSON.parse(Buffer.concat(chunks, size).toString("utf8"));
    } catch (e) {
      throw new Refusal(
        "malformed-json",
        toConnectError(invalidArgument(`request body is not valid JSON: ${(e as Error).message}`)),
      );
    }
  }

  private renderSuccess(route: RouteSpec, dialect: Dialect, output: Message, ctx: RestContext): RenderedResponse {
    const status = route.successStatus || 200;
    const headers: Record<string, string> = {};
    ctx.headersSet()?.forEach((value, key) => {
      headers[key] = value;
    });
    if (status === 204) return { status, headers, body: "" };
    let schema: DescMessage = route.method.output;
    let value: unknown = output;
    if (route.responseBody !== "") {
      const field = schema.fields.find((f) => f.name === route.responseBody);
      if (field?.fieldKind === "message") schema = field.message;
      value = (output as unknown as Record<string, unknown>)[field?.localName ?? ""];
      if (field?.fieldKind === "list" && field.listKind === "message" && dialect.legacyJson !== undefined) {
        const legacy = (value as Message[]).map((m) => dialect.legacyJson?.(m));
        if (legacy.every((j) => j !== undefined)) return jsonResponse(status, headers, legacy);
      }
      if (field?.fieldKind !== "message") {
        const json = toJson(route.method.output, output, { ...dialect.jsonWrite, alwaysEmitImplicit: true }) as Record<
          string,
          unknown
        >;
        const shaped = shapeOutput(route.method.output, json, dialect) as Record<string, unknown>;
        return jsonResponse(status, headers, shaped[field?.jsonName ?? ""] ?? shaped[field?.name ?? ""] ?? null);
      }
    }
    if (schema.typeName === HTTP_BODY_TYPE) {
      const body = value as { contentType: string; data: Uint8Array } | undefined;
      return {
        status,
        headers: { ...headers, "content-type": body?.contentType || "application/octet-stream" },
        body: body?.data ?? new Uint8Array(),
      };
    }
    const legacy = value === undefined ? undefined : dialect.legacyJson?.(value as Message);
    if (legacy !== undefined) return jsonResponse(status, headers, legacy);
    const json = value === undefined ? null : toJson(schema, value as Message, dialect.jsonWrite);
    return jsonResponse(status, headers, shapeOutput(schema, json, dialect));
  }

  /** Server-streaming RPCs over REST: one JSON document per line (application/x-ndjson). */
  private async streamResponse(
    res: NodeResponse,
    route: RouteSpec,
    dialect: Dialect,
    messages: AsyncIterable<unknown>,
    ctx: HandlerContext,
  ): Promise<void> {
    const iterator = messages[Symbol.asyncIterator]();
    // The first message (or error) decides the status, so errors before it keep the envelope.
    const first = await iterator.next();
    res.writeHead(route.successStatus || 200, { "content-type": "application/x-ndjson" });
    const line = (m: unknown) =>
      `${JSON.stringify(shapeOutput(route.method.output, toJson(route.method.output, create(route.method.output, m as never) as Message, dialect.jsonWrite), dialect))}\n`;
    if (!first.done) res.write(line(first.value));
    try {
      for (let next = await iterator.next(); !next.done && !ctx.signal.aborted; next = await iterator.next()) {
        res.write(line(next.value));
      }
    } catch (e) {
      const error = toConnectError(e);
      res.write(`${JSON.stringify({ error: { code: error.code, message: error.rawMessage } })}\n`);
    }
    res.end();
  }
}

/** Applies the proto's inline wrappers and the dialect's number printing, when any apply. */
function shapeOutput(schema: DescMessage, json: unknown, dialect: Dialect): unknown {
  if (!dialect.int64AsNumber && !hasLegacyJson(schema)) return json;
  return shapeMessage(schema, json, { int64AsNumber: dialect.int64AsNumber });
}

function tooLarge(limit: number): Refusal {
  return new Refusal("body-too-large", toConnectError(resourceExhausted(`request body exceeds ${limit} bytes`)));
}

function refusalError(refusal: "not-found" | "method-not-allowed", what: string): ConnectError {
  return refusal === "not-found"
    ? new ConnectError(`no route for ${what}`, Code.NotFound)
    : new ConnectError(`method not allowed: ${what}`, Code.Unimplemented);
}

function jsonResponse(status: number, headers: Record<string, string>, json: unknown): RenderedResponse {
  return { status, headers: { ...headers, "content-type": "application/json" }, body: JSON.stringify(json) };
}

function headersOf(req: NodeRequest): Headers {
  const headers = new Headers();
  for (const [key, value] of Object.entries(req.headers)) {
    if (key.startsWith(":") || value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) headers.append(key, v);
    else headers.set(key, value);
  }
  return headers;
}

/** The body's chunks, read by events (an async iterator per request costs more than the read). */
function readAll(req: NodeRequest, limit: number): Promise<{ chunks: Buffer[]; size: number }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve({ chunks, size });
    };
    const onError = (err?: Error) => {
      cleanup();
      reject(err ?? new Error("the client went away before its request ended"));
    };
    const onClose = () => onError();
    const cleanup = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onClose);
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("close", onClose);
  });
}

/** Discards an unread request body so a keep-alive connection stays usable. */
function drain(req: NodeRequest): void {
  if (!req.readableEnded) req.resume();
}

function write(res: NodeResponse, rendered: RenderedResponse, closeConnection = false): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const headers: Record<string, string | number> = { ...rendered.headers };
  const body = rendered.body;
  if (rendered.status !== 204 && rendered.status !== 304) {
    headers["content-length"] = typeof body === "string" ? Buffer.byteLength(body, "utf8") : body.length;
  }
  // HTTP/1.1 only: after refusing an oversized body, do not keep reading it.
  if (closeConnection && "shouldKeepAlive" in res) headers.connection = "close";
  res.writeHead(rendered.status, headers);
  // A string body goes out with the headers in one write (one TCP segment), a Buffer in two.
  res.end(rendered.status === 204 ? undefined : body);
}

/**
 * One TCP port for everything: the first bytes of a connection tell HTTP/2 with prior
 * knowledge (h2c, the "PRI * HTTP/2.0" preface), TLS (a handshake record, 0x16, then
 * ALPN picks h2 or http/1.1) and plain HTTP/1.1 apart, and the socket is handed to the
 * matching Node server. Shutdown is graceful: stop accepting, let requests finish
 * (HTTP/2 GOAWAY, HTTP/1.1 idle keep-alives closed), destroy stragglers after a grace.
 */
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import type { Logger } from "../observability/log.js";
import type { RequestListener } from "./types.js";

/**
 * Offered every HTTP/1.1 request that carries `Upgrade`; returns true when it took the socket
 * (a WebSocket it serves), false to have the request served as if Upgrade were absent.
 */
export type UpgradeListener = (
  req: http.IncomingMessage,
  socket: import("node:stream").Duplex,
  head: Buffer,
) => boolean;

export interface ConnectionLimits {
  /** Open connections from one client address; more are closed at once. */
  readonly maxPerIp: number;
  /** Time to receive a request's headers (HTTP/1.1), or an HTTP/2 session's first request. */
  readonly headersTimeoutMs: number;
  /** Time to receive a whole request, body included. */
  readonly requestTimeoutMs: number;
  /** HTTP/2 streams one connection may have open at once (advertised in SETTINGS). */
  readonly h2MaxConcurrentStreams: number;
}

export interface OnePortOptions {
  readonly listener: RequestListener;
  readonly onUpgrade?: UpgradeListener;
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer };
  readonly limits: ConnectionLimits;
  readonly logger: Logger;
}

const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
/**
 * Closing an HTTP/1.1 connection whose request body is still arriving: the answer is sent,
 * then our side is shut (FIN) and what still arrives is read and dropped for at most this
 * long and this much, so the client reads the answer instead of a reset (nginx's lingering
 * close), and an unread upload is never read to its end.
 */
const LINGER_MS = 2_000;
const LINGER_BYTES = 4 * 1024 * 1024;
const TLS_HANDSHAKE = 0x16;
/** An HTTP/2 connection with no frames for this long is closed gracefully (GOAWAY). */
const H2_IDLE_MS = 120_000;
/** How long a new connection may stay silent before we give up sniffing it. */
const SNIFF_TIMEOUT_MS = 10_000;

export class OnePortServer {
  private readonly net: net.Server;
  private readonly http1: http.Server;
  private readonly h2c: http2.Http2Server;
  private readonly tls: http2.Http2SecureServer | undefined;
  private readonly sockets = new Set<net.Socket>();
  private readonly sessions = new Set<http2.Http2Session>();
  private readonly perIp = new Map<string, number>();

  constructor(private readonly options: OnePortOptions) {
    const { limits } = options;
    const timeouts = {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs),
    };
    const listener = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse) => {
      // An answer sent before the request's body arrived (a refusal): stop receiving the body.
      // (HTTP/2's compat response emits "finish" only once the stream closes; its stream's
      // own "finish" is the end of our side.)
      const sent = "stream" in res ? (res.stream as http2.ServerHttp2Stream) : res;
      sent.once("finish", () => {
        if (!req.complete) OnePortServer.abandonBody(req);
      });
      options.listener(req, res as unknown as Parameters<RequestListener>[1]);
    };
    this.http1 = http.createServer(timeouts, listener as unknown as http.RequestListener);
    // Node checks headersTimeout/requestTimeout only for servers that emitted "listening";
    // ours never listens itself (sockets arrive through emit("connection")), so it is told.
    this.http1.emit("listening");
    const h2Options = { settings: { maxConcurrentStreams: limits.h2MaxConcurrentStreams } };
    this.h2c = http2.createServer(
      h2Options,
      listener as unknown as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
    );
    this.tls = options.tls
      ? http2.createSecureServer(
          { ...h2Options, ...timeouts, cert: options.tls.cert, key: options.tls.key, allowHTTP1: true },
          listener as unknown as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
        )
      : undefined;
    if (this.tls !== undefined) {
      // HTTP/1.1 over TLS: Node gives the secure server fixed timeouts of its own; ours apply.
      Object.assign(this.tls, {
        headersTimeout: timeouts.headersTimeout,
        requestTimeout: timeouts.requestTimeout,
        connectionsCheckingInterval: timeouts.connectionsCheckingInterval,
      });
      this.tls.emit("listening");
      this.tls.on("secureConnection", (tlsSocket: import("node:tls").TLSSocket) => {
        if (tlsSocket.alpnProtocol !== "h2") tlsSocket.destroySoon = () => OnePortServer.linger(tlsSocket);
      });
    }
    for (const server of [this.h2c, this.tls]) {
      server?.on("session", (session: http2.Http2Session) => this.watchSession(session));
      server?.on("stream", (stream: http2.ServerHttp2Stream) => this.watchStream(stream));
    }
    this.tls?.on("tlsClientError", (err) => options.logger.debug({ err }, "TLS handshake failed"));
    // With an upgrade listener, Node hands it every request with `Connection: Upgrade`
    // (e.g. curl's `Upgrade: h2c`); the ones we do not upgrade are served normally.
    const onUpgrade = (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
      if (options.onUpgrade?.(req, socket, head)) return;
      this.serveWithoutUpgrade(req, socket, head);
    };
    this.http1.on("upgrade", onUpgrade);
    this.tls?.on("upgrade", onUpgrade);
    this.net = net.createServer((socket) => this.accept(socket));
  }

  /** HTTP/2 sessions: closed when idle, and when no request arrives in time after connecting. */
  private watchSession(session: http2.Http2Session): void {
    this.sessions.add(session);
    const firstRequest = setTimeout(() => session.destroy(), this.options.limits.headersTimeoutMs);
    firstRequest.unref();
    session.once("stream", () => clearTimeout(firstRequest));
    session.on("close", () => {
      clearTimeout(firstRequest);
      this.sessions.delete(session);
    });
    session.setTimeout(H2_IDLE_MS, () => session.close());
  }

  /** An HTTP/2 request whose body has not arrived within the request timeout is cancelled. */
  private watchStream(stream: http2.ServerHttp2Stream): void {
    if (stream.endAfterHeaders) return;
    const timer = setTimeout(() => {
      if (!stream.closed && stream.state.remoteClose === 0) stream.close(http2.constants.NGHTTP2_CANCEL);
    }, this.options.limits.requestTimeoutMs);
    timer.unref();
    stream.once("close", () => clearTimeout(timer));
  }

  private accept(socket: net.Socket): void {
    const ip = OnePortServer.clientKey(socket.remoteAddress ?? "");
    const open = this.perIp.get(ip) ?? 0;
    if (open >= this.options.limits.maxPerIp) {
      this.options.logger.debug({ ip, open }, "connection refused: too many from this address");
      socket.destroy();
      return;
    }
    this.perIp.set(ip, open + 1);
    this.sockets.add(socket);
    socket.on("close", () => {
      this.sockets.delete(socket);
      const left = (this.perIp.get(ip) ?? 1) - 1;
      if (left <= 0) this.perIp.delete(ip);
      else this.perIp.set(ip, left);
    });
    socket.on("error", (err) => this.options.logger.debug({ err }, "socket error"));
    socket.setTimeout(SNIFF_TIMEOUT_MS, () => socket.destroy());
    let seen = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      seen = Buffer.concat([seen, chunk]);
      const first = seen[0];
      const decided =
        first !== TLS_HANDSHAKE && first !== 0x50 /* "P" */
          ? "http1"
          : first === TLS_HANDSHAKE
            ? "tls"
            : seen.length < 3
              ? undefined
              : seen.subarray(0, 3).equals(H2_PREFACE.subarray(0, 3))
                ? "h2c"
                : "http1";
      if (decided === undefined) return;
      socket.off("data", onData);
      socket.pause();
      socket.setTimeout(0);
      socket.unshift(seen);
      if (decided === "tls") {
        if (this.tls === undefined) {
          socket.destroy();
          return;
        }
        this.tls.emit("connection", socket);
      } else if (decided === "h2c") {
        // The HTTP/2 session reads the buffered bytes itself; resuming would drop them.
        this.h2c.emit("connection", socket);
      } else {
        // Node closes a "Connection: close" socket as soon as the answer is written; unread
        // request bytes then make the kernel send a reset that can beat the answer.
        socket.destroySoon = () => OnePortServer.linger(socket);
        this.http1.emit("connection", socket);
        socket.resume();
      }
    };
    socket.on("data", onData);
  }

  /**
   * Whom a connection counts against for the per-address cap: the IPv4 address (mapped
   * `::ffff:` addresses included), or an IPv6 address's /64 — one host holds a whole /64.
   */
  static clientKey(address: string): string {
    if (address.startsWith("::ffff:") && address.includes(".")) return address.slice(7);
    if (!address.includes(":")) return address;
    const [head = "", tail = ""] = address.split("::");
    const left = head === "" ? [] : head.split(":");
    const right = tail === "" ? [] : tail.split(":");
    const groups = address.includes("::")
      ? [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill("0"), ...right]
      : left;
    return `${groups
      .slice(0, 4)
      .map((g) => Number.parseInt(g || "0", 16).toString(16))
      .join(":")}::/64`;
  }

  /** Stops receiving a request body nobody will read: HTTP/2 resets the stream, HTTP/1.1 lingers. */
  private static abandonBody(req: http.IncomingMessage | http2.Http2ServerRequest): void {
    if ("stream" in req) {
      OnePortServer.resetWhenSent(req.stream, Date.now() + LINGER_MS);
      return;
    }
    OnePortServer.linger(req.socket as net.Socket);
  }

  /**
   * RFC 9113 §8.1: after a complete answer, RST_STREAM(NO_ERROR) asks the client to stop
   * sending. A reset overtakes DATA still queued, so it waits until our END_STREAM has gone out.
   */
  private static resetWhenSent(stream: http2.ServerHttp2Stream, deadline: number): void {
    if (stream.closed || stream.destroyed) return;
    if (stream.state.localClose === 1 || Date.now() > deadline) {
      stream.close(http2.constants.NGHTTP2_NO_ERROR);
      return;
    }
    setTimeout(() => OnePortServer.resetWhenSent(stream, deadline), 2).unref();
  }

  /** Ends our side after what is written, drops what still arrives, and closes within bounds. */
  private static linger(socket: net.Socket): void {
    if (socket.destroyed || socket.writableEnded) return;
    let dropped = 0;
    const timer = setTimeout(() => socket.destroy(), LINGER_MS);
    timer.unref();
    socket.on("close", () => clearTimeout(timer));
    socket.on("end", () => socket.destroy());
    socket.on("data", (chunk: Buffer) => {
      dropped += chunk.length;
      if (dropped > LINGER_BYTES) socket.destroy();
    });
    socket.end();
    socket.resume();
  }

  private serveWithoutUpgrade(req: http.IncomingMessage, socket: net.Socket, head: Buffer): void {
    const hasBody = Number(req.headers["content-length"] ?? 0) > 0 || req.headers["transfer-encoding"] !== undefined;
    if (hasBody) {
      // The parser has let go of the socket, so the body cannot be read as a request body.
      socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    if (head.length > 0) socket.unshift(head);
    const res = new http.ServerResponse(req);
    res.shouldKeepAlive = false;
    res.assignSocket(socket);
    res.on("finish", () => {
      res.detachSocket(socket);
      socket.end();
    });
    this.options.listener(req, res as unknown as Parameters<RequestListener>[1]);
  }

  listen(port: number, host: string): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      this.net.once("error", reject);
      this.net.listen(port, host, () => {
        this.net.off("error", reject);
        resolve(this.net.address() as net.AddressInfo);
      });
    });
  }

  /** Stops accepting, lets in-flight requests finish for up to `graceMs`, then closes all. */
  async close(graceMs: number): Promise<void> {
    const closed = new Promise<void>((resolve) => this.net.close(() => resolve()));
    for (const session of this.sessions) session.close();
    const deadline = Date.now() + graceMs;
    while (this.sockets.size > 0 && Date.now() < deadline) {
      this.http1.closeIdleConnections();
      await new Promise((r) => setTimeout(r, 25));
    }
    for (const socket of this.sockets) socket.destroy();
    for (const session of this.sessions) session.destroy();
    await closed;
  }
}

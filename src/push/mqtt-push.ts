/**
 * Conference event push over MQTT 3.1.1 on WebSocket (`/ws`, subprotocol `mqtt`), as the
 * vendor SDKs expect: an embedded aedes broker, login with the access token (as password
 * with the user id as username, or — older builds — as username), subscriptions only to
 * the caller's own `user/<userId>/<endpointId>` topics, no client publishing, and every
 * conference event published at QoS 1 to each recipient endpoint's topic.
 *
 * Isolation and bounds:
 * - a client id is scoped by the principal that connects with it, so two users sending the
 *   same id (the iOS SDK's `CocoaMQTT-<pid>` collides across devices) are two sessions and
 *   neither takes the other over;
 * - every session is clean: nothing is stored for a disconnected client (a client catches
 *   up from the event log, `GET …/events?v=`, as the version rule has it), so no stored
 *   session can be handed to anyone and no offline queue can grow;
 * - an event reaches only clients of the app it belongs to, whatever the topic says;
 * - a client whose socket holds more than a bound of undelivered bytes is disconnected;
 * - each tenant, and the broker as a whole, has a cap on concurrent connections;
 * - a connection ends when its token expires or its credentials are revoked;
 * - a refused login is answered after a delay, so a client that retries at once cannot spin.
 *
 * The iOS SDK reconnects with its first access token even after refreshing it, so CONNECT
 * alone (see Principals.forConnect) takes an expired access token while its login lives.
 */
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { Aedes, type AuthenticateError, type Client } from "aedes";
import { createWebSocketStream, type WebSocket, WebSocketServer } from "ws";
import type { CallEvent, ConferenceEvent } from "../../gen/rtcplane/conference/v1/events_pb.js";
import type { EventBus, Recipient } from "../conferences/event-bus.js";
import { legacyJson } from "../events/legacy-json.js";
import type { CheckedPrincipal, Principals } from "../oauth/principals.js";
import type { Logger } from "../observability/log.js";

const MQTT_PROTOCOLS = ["mqtt", "mqttv3.1"];
const MAX_CLIENT_ID = 256;
const MAX_FRAME = 256 * 1024;
/**
 * A refused login is answered this late: the iOS SDK reconnects at once on every drop, so a
 * refusal answered at once would make a tight loop of logins against the server.
 */
const REFUSAL_DELAY_MS = 1000;

export interface MqttSettings {
  /** A client whose socket holds more undelivered bytes than this is disconnected. */
  readonly maxBufferedBytes: number;
  /** Concurrent connections of one tenant's apps together. */
  readonly maxConnectionsPerTenant: number;
  /** Concurrent connections in all. */
  readonly maxConnections: number;
}

export function topicOf(r: Recipient): string {
  return `user/${r.userId}/${r.endpointId}`;
}

/** Whether a WebSocket upgrade asks for MQTT (the Spreed socket on /ws asks for nothing). */
export function wantsMqtt(req: IncomingMessage): boolean {
  const header = req.headers["sec-websocket-protocol"];
  if (typeof header !== "string") return false;
  return header.split(",").some((p) => MQTT_PROTOCOLS.includes(p.trim().toLowerCase()));
}

/** A CONNACK refusal with an MQTT 3.1.1 return code (2 id rejected, 3 unavailable, 4 bad credentials). */
function refusal(message: string, returnCode: 2 | 3 | 4 | 5): AuthenticateError {
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError;
}

interface Connection {
  readonly ws: WebSocket;
  /** The MQTT byte stream over `ws`; what aedes writes waits in it while the socket is busy. */
  readonly stream: Duplex;
  /** Set once the socket closed: a login that completes after that must not count. */
  closed: boolean;
  principal?: CheckedPrincipal;
  /** Stops watching the principal's expiry and revocation. */
  unwatch?: () => void;
}

export class MqttPush {
  private readonly wss: WebSocketServer;
  private readonly connections = new WeakMap<Client, Connection>();
  /** The app of each event payload in flight (a payload is shared by all its deliveries). */
  private readonly payloadApps = new WeakMap<Buffer, string>();
  private readonly perTenant = new Map<string, number>();
  private total = 0;
  private stopPush: (() => void) | undefined;
  private broker!: Aedes;

  private constructor(
    private readonly principals: Principals,
    private readonly settings: MqttSettings,
    private readonly log: Logger,
  ) {
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: MAX_FRAME,
      handleProtocols: (protocols) => [...protocols].find((p) => MQTT_PROTOCOLS.includes(p.toLowerCase())) ?? false,
    });
  }

  static async start(principals: Principals, bus: EventBus, settings: MqttSettings, log: Logger): Promise<MqttPush> {
    const push = new MqttPush(principals, settings, log);
    push.broker = await Aedes.createBroker({
      // Slow or frozen readers: aedes gives up on a socket that does not drain in this time.
      drainTimeout: 10_000,
      preConnect: (_client, packet, done) => {
        // Every session is clean, and wills are not kept (clients may not publish anyway).
        packet.clean = true;
        packet.will = undefined;
        done(null, true);
      },
      authenticate: (client, username, password, done) => push.authenticate(client, username, password, done),
      authorizeSubscribe: (client, sub, done) => {
        const p = push.connections.get(client)?.principal;
        const parts = typeof sub.topic === "string" ? sub.topic.split("/") : [];
        const own =
          p !== undefined &&
          parts.length === 3 &&
          parts[0] === "user" &&
          parts[1] === p.userId &&
          /^[^+#]+$/.test(parts[2] ?? "");
        if (!own) {
          log.info({ topic: String(sub.topic).slice(0, 256), userId: p?.userId }, "mqtt subscription refused");
          // A null subscription is a SUBACK failure (0x80): the client stays connected.
          done(null, null);
          return;
        }
        done(null, sub);
      },
      authorizePublish: (client, _packet, done) => {
        done(client === null ? null : new Error("clients may not publish"));
      },
      authorizeForward: (client, packet) => (push.forward(client, packet.payload as Buffer) ? packet : null),
    });
    push.stopPush = bus.addPushSink((appId, recipients, event) => push.publish(appId, recipients, event));
    push.broker.on("clientError", (client, err) => log.debug({ err, client: client.id }, "mqtt client error"));
    return push;
  }

  private authenticate(
    client: Client,
    username: string | undefined,
    password: Buffer | undefined,
    done: (err: AuthenticateError | null, ok: boolean) => void,
  ): void {
    const connection = this.connections.get(client);
    if (connection === undefined || client.id.length > MAX_CLIENT_ID) {
      done(refusal(connection === undefined ? "no connection" : "client id too long", 2), false);
      return;
    }
    const candidates = [password?.toString("utf8"), username].filter(
      (t): t is string => typeof t === "string" && t.includes(".") && t.length < 8192,
    );
    const tryNext = (i: number): void => {
      const token = candidates[i];
      if (token === undefined) {
        this.log.info({ client: client.id.slice(0, 64) }, "mqtt connection refused: bad credentials");
        setTimeout(() => done(refusal("bad user name or password", 4), false), REFUSAL_DELAY_MS).unref();
        return;
      }
      Promise.resolve()
        .then(() => this.principals.forConnect(token))
        .then(
          (p) => {
            if (connection.closed) {
              done(refusal("the connection closed during login", 3), false);
              return;
            }
            const count = this.perTenant.get(p.tenantId) ?? 0;
            if (count >= this.settings.maxConnectionsPerTenant || this.total >= this.settings.maxConnections) {
              this.log.warn({ tenantId: p.tenantId, count, total: this.total }, "mqtt connection refused: at a cap");
              done(refusal("too many connections", 3), false);
              return;
            }
            this.perTenant.set(p.tenantId, count + 1);
            this.total++;
            connection.principal = p;
            // Scoped by principal: the same id from another user is another session.
            client.id = `${p.appId}/${p.userId}/${client.id}`;
            // The connection lives no longer than its token, nor past a revocation.
            connection.unwatch = this.principals.watch(p, (reason) => {
              this.log.info({ client: client.id, reason }, "mqtt connection closed: its credentials ended");
              connection.ws.terminate();
            });
            done(null, true);
          },
          () => tryNext(i + 1),
        );
    };
    tryNext(0);
  }

  /** Whether `client` gets this delivery: only its own app's events, only while it keeps up. */
  private forward(client: Client, payload: Buffer): boolean {
    const connection = this.connections.get(client);
    const app = this.payloadApps.get(payload);
    if (connection?.principal === undefined || app === undefined || app !== connection.principal.appId) return false;
    const buffered = connection.stream.writableLength + connection.ws.bufferedAmount;
    if (buffered > this.settings.maxBufferedBytes) {
      this.log.warn({ client: client.id, buffered }, "mqtt reader too slow; disconnected");
      connection.ws.terminate();
      return false;
    }
    return true;
  }

  private publish(appId: string, recipients: readonly Recipient[], event: ConferenceEvent | CallEvent): void {
    // The SDKs read the legacy JSON of each event.
    const payload = Buffer.from(JSON.stringify(legacyJson(event)));
    this.payloadApps.set(payload, appId);
    for (const r of recipients) {
      this.broker.publish(
        { cmd: "publish", topic: topicOf(r), payload, qos: 1, retain: false, dup: false },
        (err) => err && this.log.warn({ err, topic: topicOf(r) }, "mqtt publish failed"),
      );
    }
  }

  /** Takes over an HTTP upgrade that asked for MQTT. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const stream = createWebSocketStream(ws);
      stream.on("error", (err) => this.log.debug({ err }, "mqtt websocket error"));
      const client = this.broker.handle(stream, req);
      const connection: Connection = { ws, stream, closed: false };
      this.connections.set(client, connection);
      ws.on("close", () => this.release(connection));
    });
  }

  private release(connection: Connection): void {
    connection.closed = true;
    connection.unwatch?.();
    const tenantId = connection.principal?.tenantId;
    if (tenantId === undefined) return;
    connection.principal = undefined;
    this.total--;
    const left = (this.perTenant.get(tenantId) ?? 1) - 1;
    if (left <= 0) this.perTenant.delete(tenantId);
    else this.perTenant.set(tenantId, left);
  }

  /** Open WebSockets, and the clients among them that logged in (for metrics). */
  stats(): { sockets: number; clients: number } {
    return { sockets: this.wss.clients.size, clients: this.total };
  }

  close(): Promise<void> {
    this.stopPush?.();
    for (const client of this.wss.clients) client.terminate();
    return new Promise((resolve) => this.broker.close(() => this.wss.close(() => resolve())));
  }
}

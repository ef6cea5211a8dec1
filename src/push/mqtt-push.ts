/**
 * Conference event push over MQTT 3.1.1 on WebSocket (`/ws`, subprotocol `mqtt`), as the
 * vendor SDKs expect: an embedded aedes broker, login with the access token (as password
 * with the user id as username, or — older builds — as username), subscriptions only to
 * the caller's own `user/<userId>/<endpointId>` topics, no client publishing, and every
 * conference event published at QoS 1 to each recipient endpoint's topic.
 */
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { Aedes } from "aedes";
import { createWebSocketStream, WebSocketServer } from "ws";
import type { AppAuth } from "../auth/app-auth.js";
import type { Json } from "../conferences/conference-repository.js";
import type { EventBus, Recipient } from "../conferences/event-bus.js";
import type { AccessTokens, Principal } from "../oauth/access-tokens.js";
import type { Logger } from "../observability/log.js";

const MQTT_PROTOCOLS = ["mqtt", "mqttv3.1"];
const principals = new WeakMap<object, Principal>();

export function topicOf(r: Recipient): string {
  return `user/${r.userId}/${r.endpointId}`;
}

/** Whether a WebSocket upgrade asks for MQTT (the Spreed socket on /ws asks for nothing). */
export function wantsMqtt(req: IncomingMessage): boolean {
  const header = req.headers["sec-websocket-protocol"];
  if (typeof header !== "string") return false;
  return header.split(",").some((p) => MQTT_PROTOCOLS.includes(p.trim().toLowerCase()));
}

export class MqttPush {
  private readonly wss: WebSocketServer;
  private stopPush: (() => void) | undefined;

  private constructor(
    private readonly broker: Aedes,
    private readonly log: Logger,
  ) {
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: 256 * 1024,
      handleProtocols: (protocols) => [...protocols].find((p) => MQTT_PROTOCOLS.includes(p.toLowerCase())) ?? false,
    });
  }

  static async start(tokens: AccessTokens, appAuth: AppAuth, bus: EventBus, log: Logger): Promise<MqttPush> {
    const broker = await Aedes.createBroker({
      authenticate: (client, username, password, done) => {
        const candidates = [password?.toString("utf8"), username].filter((t): t is string => !!t && t.includes("."));
        const tryNext = (i: number): void => {
          const token = candidates[i];
          if (token === undefined) {
            const err = Object.assign(new Error("bad user name or password"), { returnCode: 4 as const });
            done(err, false);
            return;
          }
          tokens
            .authenticate(new Headers({ authorization: `Bearer ${token}` }))
            .then((p) => {
              appAuth.requireActive(p.appId);
              principals.set(client, p);
              // The connection lives no longer than the token that opened it.
              if (p.expiresAtMs !== undefined) {
                setTimeout(() => client.close(), Math.max(0, p.expiresAtMs - Date.now())).unref();
              }
              done(null, true);
            })
            .catch(() => tryNext(i + 1));
        };
        tryNext(0);
      },
      authorizeSubscribe: (client, sub, done) => {
        const p = principals.get(client);
        const parts = sub.topic.split("/");
        const own =
          p !== undefined &&
          parts.length === 3 &&
          parts[0] === "user" &&
          parts[1] === p.userId &&
          /^[^+#]+$/.test(parts[2] ?? "");
        if (!own) {
          log.info({ topic: sub.topic, userId: p?.userId }, "mqtt subscription refused");
          // A null subscription is a SUBACK failure (0x80): the client stays connected.
          done(null, null);
          return;
        }
        done(null, sub);
      },
      authorizePublish: (client, _packet, done) => {
        done(client === null ? null : new Error("clients may not publish"));
      },
    });
    const push = new MqttPush(broker, log);
    push.stopPush = bus.addPushSink((recipients, event) => push.publish(recipients, event));
    broker.on("clientError", (client, err) => log.debug({ err, client: client.id }, "mqtt client error"));
    return push;
  }

  private publish(recipients: readonly Recipient[], event: Json): void {
    const payload = Buffer.from(JSON.stringify(event));
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
      this.broker.handle(stream, req);
    });
  }

  close(): Promise<void> {
    this.stopPush?.();
    for (const client of this.wss.clients) client.terminate();
    return new Promise((resolve) => this.broker.close(() => this.wss.close(() => resolve())));
  }
}

/**
 * Composition root: `build(config)` wires storage, domain, services, the Connect
 * router and the REST gateway onto one port. It listens only when run as the entry
 * point (`npm start`), so tests build servers on port 0 in-process.
 */
import { setMaxListeners } from "node:events";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { AdminCredentials } from "./auth/admin-credentials.js";
import { Authenticator } from "./auth/authenticator.js";
import { ServerKey } from "./auth/server-key.js";
import { TurnCredentials } from "./auth/turn-credentials.js";
import { Background } from "./background.js";
import { ClusterMedia } from "./cluster/cluster-media.js";
import { type Config, ConfigError, loadConfig } from "./config.js";
import { openDomain } from "./domain.js";
import { RestGateway } from "./gateway/gateway.js";
import { authInterceptor } from "./http/auth-interceptor.js";
import { ConsolePages } from "./http/console-pages.js";
import { applyCors } from "./http/cors.js";
import { errorInterceptor } from "./http/interceptors.js";
import { OnePortServer, type UpgradeListener } from "./http/one-port.js";
import { OpenApiPages } from "./http/openapi-pages.js";
import { OperatorPages } from "./http/operator-pages.js";
import type { NodeResponse, RequestListener } from "./http/types.js";
import { defaultWorkerBin, Media } from "./media/media.js";
import { OAuth } from "./oauth/oauth.js";
import { printBanner } from "./observability/banner.js";
import { beginRequest, contextValuesFor, createLogger, type Logger } from "./observability/log.js";
import { Metrics } from "./observability/metrics.js";
import { RequestLog } from "./observability/request-log.js";
import { MqttPush, wantsMqtt } from "./push/mqtt-push.js";
import {
  apiServices,
  dialectOfService,
  dialects,
  implementationsByService,
  registerRpcServices,
  restRoutes,
  rpcPaths,
} from "./routes.js";
import { AdminServiceImpl } from "./services/admin-service.js";
import { AppServiceImpl } from "./services/app-service.js";
import { CallServiceImpl } from "./services/call-service.js";
import { Callers } from "./services/caller.js";
import { ConferenceServiceImpl } from "./services/conference-service.js";
import { HealthServiceImpl, HealthState } from "./services/health-service.js";
import { MediaNodeServiceImpl } from "./services/media-node-service.js";
import { RoomServiceImpl } from "./services/room-service.js";
import { SpreedServiceImpl } from "./services/spreed-service.js";
import { TokenServiceImpl } from "./services/token-service.js";
import { UserEndpointServiceImpl } from "./services/user-endpoint-service.js";
import { connectSpreedBus } from "./spreed/bus.js";
import { SpreedHub } from "./spreed/hub.js";
import { SpreedUsers } from "./spreed/users.js";

export interface RunningServer {
  /** Base URL on loopback-reachable address, e.g. http://127.0.0.1:8080 */
  readonly url: string;
  readonly port: number;
  /** Drains and stops: health turns NOT_SERVING, requests finish, the database closes. */
  close(): Promise<void>;
}

export interface Server {
  readonly logger: Logger;
  listen(): Promise<RunningServer>;
  /** Closes what build() opened (the store) when listen() is never called. */
  discard(): Promise<void>;
}

export interface BuildOptions {
  readonly logger?: Logger;
  /** The SFU (see startMedia); without it publish/view answer 412. */
  readonly media?: Media;
}

/** Starts the mediasoup worker pool if a worker binary is installed. */
export function startMedia(config: Config, logger: Logger): Promise<Media | undefined> {
  return Media.start(
    {
      workerBin: config.media.workerBin ?? defaultWorkerBin(),
      workers: config.media.workers,
      rtcPort: config.media.rtcPort,
      rtcMinPort: config.rtcMinPort,
      rtcMaxPort: config.rtcMaxPort,
      listenIp: config.media.listenIp,
      announcedIp: config.announcedIp,
      statsIntervalMs: config.media.statsIntervalMs,
      viewerFeedbackMs: config.media.viewerFeedbackMs,
      viewerBwe: config.media.viewerBwe,
      viewerReadBatchMs: config.media.viewerReadBatchMs,
    },
    logger,
  );
}

/** Wires the whole server from its configuration; nothing listens until listen(). */
export async function build(config: Config, options: BuildOptions = {}): Promise<Server> {
  const logger = options.logger ?? createLogger(config.logLevel);
  // Keys, the admin token's hash and the database: readable by the server's user only.
  fs.mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  fs.chmodSync(config.dataDir, 0o700);
  const serverKey =
    config.clusterSecret === undefined
      ? ServerKey.loadOrCreate(config.dataDir)
      : ServerKey.fromClusterSecret(config.clusterSecret);
  let generatedAdminToken: string | undefined;
  const admin = AdminCredentials.load(config.dataDir, config.adminToken, (token) => {
    generatedAdminToken = token; // shown once in the start banner, never logged
  });
  const domain = await openDomain(config, serverKey, logger);
  const { tenants, apps, rooms, roomTokens, roomLookup, appAuth, bus, conferences, endpoints, calls } = domain;
  const { accessTokens, families, principals } = domain;
  const callers = new Callers(principals);
  const media = options.media;
  // In a cluster, each media command runs on the node its conference's media was placed on.
  const clusterMedia = ClusterMedia.forCluster(domain.store, conferences, config, serverKey, media, logger);
  if (media !== undefined) {
    // Media follows the committed events, not the calls: in a cluster a leave or an end may
    // commit on another node, and every node's bus delivers it.
    bus.addPushSink((appId, _recipients, event) => {
      if (event.$typeName !== "rtcplane.conference.v1.ConferenceEvent") return;
      const ref = { appId, conferenceId: event.conferenceId };
      if (event.payload.case === "left") media.closeEndpoint(ref, event.userEndpointId);
      else if (event.payload.case === "ended") {
        media.closeConference(ref);
        clusterMedia?.ended(ref).catch((err: unknown) => logger.warn({ err, ...ref }, "could not release a placement"));
      }
    });
    media.onNetworkIndicators = (ref, indicators) =>
      conferences.observe(ref, { case: "networkIndicatorUpdated", value: indicators });
    media.onStreamLost = (lost, publisherSick) =>
      conferences.streamLost(lost, lost.endpointId, lost.streamId, publisherSick);
  }
  const spreedHub = new SpreedHub(serverKey, config.spreed, logger);
  const spreedAppId = config.spreed.appId;
  if (spreedAppId !== undefined) {
    // The realm's sessions count into its app's usage_summary.signaling.
    spreedHub.onSession = () => {
      apps.recordUsage(spreedAppId, { signaling: 1 }).catch((err: unknown) => {
        logger.warn({ err }, "could not count a Spreed session");
      });
    };
  }
  const spreedUsers = new SpreedUsers(
    spreedHub,
    config.spreed.usersSecret === undefined ? serverKey.derive("spreed.users") : Buffer.from(config.spreed.usersSecret),
    config.spreed.realm,
  );
  const health = new HealthState(apiServices.map((s) => s.typeName));
  const shutdown = new AbortController();
  // Every in-flight request listens for shutdown; hundreds at once are normal, not a leak.
  setMaxListeners(0, shutdown.signal);
  const impls = {
    admin: new AdminServiceImpl(tenants),
    apps: new AppServiceImpl(tenants, apps),
    rooms: new RoomServiceImpl(rooms, roomTokens),
    conferences: new ConferenceServiceImpl(
      callers,
      conferences,
      endpoints,
      config.rooms.endpointTtlSeconds,
      clusterMedia ?? media,
    ),
    calls: new CallServiceImpl(callers, calls, endpoints),
    endpoints: new UserEndpointServiceImpl(endpoints, config.conference.iceServers, new TurnCredentials(config.turn)),
    tokens: new TokenServiceImpl(
      new OAuth(
        appAuth,
        apps,
        roomTokens,
        roomLookup,
        accessTokens,
        families,
        principals,
        config.conference.refreshChainLifetimeSeconds,
        logger,
      ),
    ),
    spreed: new SpreedServiceImpl(config.spreed, spreedHub, spreedUsers, () => publicUrl),
    health: new HealthServiceImpl(health),
    mediaNode: new MediaNodeServiceImpl(media, () => clusterMedia?.nodeId),
  };

  // The one pipeline: every protocol's calls, REST included, pass these interceptors.
  // Read at scrape time; `mqtt` is set once listening.
  const metrics = new Metrics(
    (m) => rpcPaths.has(`/${m.parent.typeName}/${m.name}`),
    { bus, spreed: spreedHub, mqtt: () => mqtt, media },
    config.metricsToken,
  );
  const interceptors = [
    metrics.rpc.interceptor(),
    errorInterceptor(logger),
    authInterceptor(
      new Authenticator(admin, tenants, appAuth, principals, ClusterMedia.credential(config, serverKey)),
      dialectOfService,
    ),
  ];
  const gateway = new RestGateway({
    routes: restRoutes,
    implementations: implementationsByService(impls),
    dialects,
    defaultDialect: "v1",
    maxBodyBytes: config.maxBodyBytes,
    logger,
    interceptors,
    shutdownSignal: shutdown.signal,
  });
  const rpc = connectNodeAdapter({
    routes: (router) => registerRpcServices(router, impls),
    readMaxBytes: config.maxBodyBytes,
    interceptors,
    shutdownSignal: shutdown.signal,
    contextValues: (req) => contextValuesFor(req, logger),
    fallback: (req, res) => {
      const response = res as unknown as NodeResponse;
      gateway.handle(req, response).catch((err: unknown) => {
        logger.error({ err }, "gateway failed");
        if (!response.headersSent) {
          response.writeHead(500);
          response.end();
        }
      });
    },
  });

  const requestLog = new RequestLog(logger, config.requestLogPerSecond);
  requestLog.onAnswer = (status) => metrics.http.count(status);
  const pages = new OperatorPages(logger);
  pages.add("/healthz", (req, res) => {
    const body = JSON.stringify({ status: health.serving ? "SERVING" : "NOT_SERVING" });
    res.writeHead(health.serving ? 200 : 503, { "content-type": "application/json" });
    res.end(req.method === "HEAD" ? undefined : body);
  });
  new ConsolePages().register(pages);
  new OpenApiPages().register(pages);
  pages.add("/metrics", metrics.page());
  const listener: RequestListener = (req, res) => {
    const info = beginRequest(req, logger);
    res.setHeader("x-request-id", info.id);
    // Nothing we serve is meant to be sniffed into another type (buddy pictures included).
    res.setHeader("x-content-type-options", "nosniff");
    requestLog.watch(req, res, info);
    if (applyCors(req, res, config.corsOrigins)) return;
    const path = pathOf(req.url);
    if (pages.handle(req, res, path)) return;
    // RPC paths (/package.Service/Method) go to connect-node; everything else is REST.
    if (!rpcPaths.has(path)) {
      gateway.handle(req, res).catch((err: unknown) => {
        info.log.error({ err }, "gateway failed");
        if (!res.headersSent) {
          res.writeHead(500);
          res.end();
        }
      });
      return;
    }
    try {
      rpc(req, res as never);
    } catch (err) {
      // connect-node parses the URL from Host synchronously; a malformed one must not kill us.
      info.log.info({ err }, "unreadable request");
      if (!res.headersSent) {
        res.writeHead(400, { "content-type": "application/json" });
        res.end(JSON.stringify({ code: 3, message: "the request line or Host header cannot be parsed", details: [] }));
      }
    }
  };

  const tls =
    config.tlsCertFile && config.tlsKeyFile
      ? { cert: fs.readFileSync(config.tlsCertFile), key: fs.readFileSync(config.tlsKeyFile) }
      : undefined;
  let mqtt: MqttPush | undefined;
  const onUpgrade: UpgradeListener = (req, socket, head) => {
    const path = (req.url ?? "").split("?")[0];
    // One path, two protocols: MQTT clients ask for the `mqtt` subprotocol, Spreed's for none.
    if (path !== "/ws" || req.headers.upgrade?.toLowerCase() !== "websocket") return false;
    if (mqtt !== undefined && wantsMqtt(req)) mqtt.handleUpgrade(req, socket, head);
    else if (req.headers["sec-websocket-protocol"] === undefined) spreedHub.handleUpgrade(req, socket, head);
    else socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    return true;
  };
  const server = new OnePortServer({
    listener,
    logger,
    onUpgrade,
    limits: config.connections,
    ...(tls ? { tls } : {}),
  });
  /** Where clients reach us: PUBLIC_URL, else the listening address once it is known. */
  let publicUrl = config.publicUrl;

  const background = new Background(logger);
  return {
    logger,
    discard: () => domain.close(),
    async listen() {
      await domain.start();
      // Spreed sessions on other nodes: their rooms, presence and relays, over NATS.
      if (config.clusterBusUrl !== undefined) {
        await spreedHub.attachBus(await connectSpreedBus(config.clusterBusUrl, logger));
      }
      mqtt = await MqttPush.start(principals, bus, config.mqtt, logger);
      const address = await server.listen(config.port, config.host);
      const host = config.host === "0.0.0.0" || config.host === "::" ? "127.0.0.1" : config.host;
      const url = `${tls ? "https" : "http"}://${host.includes(":") ? `[${host}]` : host}:${address.port}`;
      if (publicUrl === "") publicUrl = url;
      if (config.logLevel !== "silent") printBanner(url, config, generatedAdminToken);
      logger.info({ url, dataDir: config.dataDir, tls: tls !== undefined }, "listening");
      await clusterMedia?.start(address.port, tls !== undefined);
      background.start([...domain.jobs(), ...(clusterMedia?.jobs() ?? [])]);
      let closing: Promise<void> | undefined;
      return {
        url,
        port: address.port,
        close() {
          closing ??= (async () => {
            await background.stop();
            // The others unpublish this node's streams at once (its media closes below).
            await clusterMedia
              ?.leave()
              .catch((err: unknown) => logger.warn({ err }, "could not leave the media nodes"));
            await mqtt?.close();
            await spreedHub.close();
            media?.close();
            health.drain();
            shutdown.abort();
            await server.close(config.shutdownGraceMs);
            requestLog.close();
            await domain.close();
            logger.info("stopped");
          })();
          return closing;
        },
      };
    },
  };
}

async function startMediaOrNone(config: Config, logger: Logger): Promise<{ media?: Media }> {
  const media = await startMedia(config, logger);
  return media === undefined ? {} : { media };
}

/** The path of a request target, without its query. */
function pathOf(target: string | undefined): string {
  const t = target ?? "/";
  const q = t.indexOf("?");
  return q < 0 ? t : t.slice(0, q);
}

/**
 * The last line of defence: a failure nothing caught is logged and the server keeps
 * serving its other clients (Node allows it for exceptions and rejections; every socket
 * handler already catches its own, so reaching this is a bug worth a loud log line).
 */
function guardProcess(logger: Logger): void {
  process.on("uncaughtException", (err, origin) => {
    logger.error({ err, origin }, "uncaught exception; still serving");
  });
  process.on("unhandledRejection", (reason) => {
    logger.error({ err: reason }, "unhandled promise rejection; still serving");
  });
}

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`rtcplane: configuration error: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  const logger = createLogger(config.logLevel, config.logFormat);
  guardProcess(logger);
  const server = await build(config, { logger, ...(await startMediaOrNone(config, logger)) });
  const running = await server.listen();
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.once(signal, () => {
      server.logger.info({ signal }, "shutting down");
      running.close().then(
        () => process.exit(0),
        (err) => {
          server.logger.error({ err }, "shutdown failed");
          process.exit(1);
        },
      );
    });
  }
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err) => {
    process.stderr.write(`rtcplane: failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}

/**
 * Runtime configuration from the environment (names fixed in DESIGN.md), validated at
 * start so that a typo stops the server with a message instead of a surprise later.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export interface Config {
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
  /** Operator token from ADMIN_TOKEN; when absent one is generated into dataDir. */
  readonly adminToken: string | undefined;
  /** METRICS_TOKEN: when set, GET /metrics wants `Authorization: Bearer <it>`; unset, it is open. */
  readonly metricsToken: string | undefined;
  /**
   * The cluster's shared store (DATABASE_URL, a libpq URL: postgres://user:pass@host:port/db);
   * undefined = the embedded SQLite file in dataDir.
   */
  readonly databaseUrl: string | undefined;
  /** PostgreSQL connections this node keeps (DATABASE_POOL_SIZE). */
  readonly databasePoolSize: number;
  /**
   * CLUSTER_SECRET: every node of a cluster derives the same signing, page-token and
   * encryption keys from it (required with DATABASE_URL; DATA_DIR/server.key otherwise).
   */
  readonly clusterSecret: string | undefined;
  /** CLUSTER_BUS_URL: NATS server URL(s) of the Spreed bus between nodes; undefined = one node. */
  readonly clusterBusUrl: string | undefined;
  /** How the nodes of a cluster find each other's media (unused on one node). */
  readonly nodes: {
    /**
     * NODE_URL: where other nodes reach this one's internal media service; unset =
     * http(s)://<ANNOUNCED_IP or 127.0.0.1>:<the bound port>.
     */
    readonly url: string | undefined;
    /** NODE_HEARTBEAT_MS: how often this node says it is alive (and how loaded it is). */
    readonly heartbeatMs: number;
    /** NODE_DEAD_AFTER_MS: a node silent this long is dead: its streams are unpublished. */
    readonly deadAfterMs: number;
    /** MEDIA_FORWARD_TIMEOUT_MS: how long a forwarded media command may take on its owner. */
    readonly forwardTimeoutMs: number;
  };
  readonly tlsCertFile: string | undefined;
  readonly tlsKeyFile: string | undefined;
  readonly announcedIp: string | undefined;
  readonly rtcMinPort: number;
  readonly rtcMaxPort: number;
  readonly longPollTimeoutMs: number;
  readonly logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
  /** LOG_FORMAT: `json` lines, `pretty` coloured lines, or `auto` (pretty when stdout is a terminal). */
  readonly logFormat: "auto" | "json" | "pretty";
  /** Largest request body accepted by REST and RPC handlers, in bytes. */
  readonly maxBodyBytes: number;
  /** Origins allowed by CORS; ["*"] allows any origin (no cookies are used). */
  readonly corsOrigins: readonly string[];
  /** How long SIGTERM waits for in-flight requests before closing connections. */
  readonly shutdownGraceMs: number;
  /** The server's public base URL (links it hands out); "" = from the listening address. */
  readonly publicUrl: string;
  /** Limits on the one port, per connection and per client address. */
  readonly connections: {
    readonly maxPerIp: number;
    readonly headersTimeoutMs: number;
    readonly requestTimeoutMs: number;
    readonly h2MaxConcurrentStreams: number;
  };
  /** Request log lines (4xx/5xx and slow requests) written per second at most; the rest are counted. */
  readonly requestLogPerSecond: number;
  /** Realtime rooms: operator settings shown on every room. */
  readonly rooms: {
    readonly maxParticipants: number;
    readonly tokenTtlSeconds: number;
    readonly ttlSeconds: number;
    readonly endpointTtlSeconds: number;
    /** How often expired rooms are swept. */
    readonly sweepIntervalMs: number;
    /**
     * How often room reads' "last used" times are written (reads remember them in memory);
     * in a cluster also the grace before a room expires, as other nodes may not have written yet.
     */
    readonly useFlushIntervalMs: number;
  };
  /** The SFU. */
  readonly media: {
    /** The mediasoup worker binary (scripts/build-mediasoup-worker.sh); absent = no media. */
    readonly workerBin: string | undefined;
    readonly workers: number;
    /** First of the single UDP+TCP ports, one per worker (mediasoup WebRtcServer); unset = a port per transport. */
    readonly rtcPort: number | undefined;
    /** Where RTP sockets listen; with ANNOUNCED_IP unset, loopback (local use only). */
    readonly listenIp: string;
    /** How often ConferenceNetworkIndicatorUpdatedEvent is computed (0 = never). */
    readonly statsIntervalMs: number;
    /**
     * MEDIA_VIEWER_FEEDBACK_MS: the transport-cc feedback interval asked of libwebrtc viewers
     * (50–250 ms; 0, the default = the viewer's own choice). See viewerSendCapKbps in sdp-bridge.ts.
     */
    readonly viewerFeedbackMs: number;
    /** MEDIA_VIEWER_BWE: how viewers report their bandwidth (see ViewerBwe in sdp-bridge.ts). */
    readonly viewerBwe: "transport-cc" | "remb";
    /**
     * MEDIA_VIEWER_READ_BATCH_MS: how long a connected viewer's datagrams (RTCP, consent
     * checks) may wait to be read with others' in one wake-up of its worker (0 = each at once).
     */
    readonly viewerReadBatchMs: number;
  };
  /**
   * The TURN server (coturn `use-auth-secret`) whose time-limited credentials the conference
   * API's iceServers and Spreed's `Self` carry (src/auth/turn-credentials.ts).
   */
  readonly turn: {
    /** TURN_URIS: turn:/turns: URIs; empty = no TURN server. */
    readonly uris: readonly string[];
    /** TURN_SECRET: coturn's static-auth-secret; set together with uris. */
    readonly secret: string | undefined;
    readonly ttlSeconds: number;
  };
  /** Conference API settings. */
  readonly conference: {
    readonly maxWaitersPerConference: number;
    /** Waiters of one tenant's apps together: one tenant cannot take the whole global cap. */
    readonly maxWaitersPerTenant: number;
    readonly maxWaiters: number;
    readonly accessTokenTtlSeconds: number;
    readonly refreshTokenTtlSeconds: number;
    /** How long a login's refresh chain lasts at most, however often it is refreshed. */
    readonly refreshChainLifetimeSeconds: number;
    readonly endpointSweepIntervalMs: number;
    /** How long an unanswered one-to-one call rings before it is cancelled (swept with endpoints). */
    readonly callRingTimeoutSeconds: number;
    readonly iceServers: readonly { urls: string[]; username?: string; credential?: string }[];
  };
  /** MQTT push. */
  readonly mqtt: {
    readonly maxBufferedBytes: number;
    readonly maxConnectionsPerTenant: number;
    readonly maxConnections: number;
  };
  /** Spreed WebRTC realm (one per server). */
  readonly spreed: {
    readonly title: string;
    /** The public token the web client shows in its config ("Token"). */
    readonly publicToken: string;
    /** Public base URL for /.well-known and room URLs; "" = from the request's Host. */
    readonly publicUrl: string;
    readonly realm: string;
    readonly usersEnabled: boolean;
    readonly usersAllowRegistration: boolean;
    /** Whether the web client may renegotiate peer connections (sent in its config). */
    readonly renegotiation: boolean;
    /** Whether the room "" may be used. */
    readonly defaultRoomEnabled: boolean;
    /** Whether opening a room needs an authenticated session (with users enabled). */
    readonly authorizeRoomCreation: boolean;
    /** Whether joining a room needs an authenticated session (with users enabled). */
    readonly authorizeRoomJoin: boolean;
    /** The web client's modules to enable (its config's `Modules`). */
    readonly modules: readonly string[];
    /** HMAC key for user secrets; undefined = derived from DATA_DIR/server.key. */
    readonly usersSecret: string | undefined;
    /** Valid access tokens (lower case); empty = tokens disabled. */
    readonly tokens: readonly string[];
    readonly statsEnabled: boolean;
    readonly stunUris: readonly string[];
    readonly turnUris: readonly string[];
    readonly turnSecret: string | undefined;
    readonly turnTtlSeconds: number;
    /** A channeling socket holding more unsent bytes than this is disconnected (slow reader). */
    readonly maxBufferedBytes: number;
    /** Documents one session may send per second (bursts of twice that). */
    readonly docsPerSecond: number;
    /** Bytes of fan-out (document size × recipients) one session may cause per second. */
    readonly fanoutBytesPerSecond: number;
    /** Sessions one room may hold. */
    readonly maxRoomSessions: number;
    /** Bytes of documents one session may send per second (bursts of twice that). */
    readonly inboundBytesPerSecond: number;
    /** An app whose usage_summary.signaling counts Spreed sessions. */
    readonly appId: string | undefined;
  };
}

function bool(env: Env, name: string, fallback: boolean): boolean {
  const raw = optional(env, name);
  if (raw === undefined) return fallback;
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new ConfigError(`${name}=${JSON.stringify(raw)} is not a boolean (true/false)`);
}

function list(env: Env, name: string): string[] {
  return (optional(env, name) ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

const SPREED_MODULES = ["screensharing", "youtube", "presentation", "contacts"];

/** The upstream client's modules, all on unless SPREED_MODULES lists fewer ("" for none). */
function spreedModules(env: Env): string[] {
  const raw = env.SPREED_MODULES;
  if (raw === undefined) return [...SPREED_MODULES];
  const modules = raw
    .split(",")
    .map((m) => m.trim())
    .filter((m) => m !== "");
  const unknown = modules.filter((m) => !SPREED_MODULES.includes(m));
  if (unknown.length > 0) {
    throw new ConfigError(
      `SPREED_MODULES: unknown module ${JSON.stringify(unknown[0])}; known: ${SPREED_MODULES.join(", ")}`,
    );
  }
  return [...new Set(modules)];
}

function spreedTokens(env: Env): string[] {
  const file = optional(env, "SPREED_TOKENS_FILE");
  const fromFile = file === undefined ? [] : readTokenFile(file);
  return [...new Set([...list(env, "SPREED_TOKENS"), ...fromFile].map((t) => t.toLowerCase()))];
}

function readTokenFile(file: string): string[] {
  try {
    return fs
      .readFileSync(file, "utf8")
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l !== "" && !l.startsWith("#"));
  } catch (e) {
    throw new ConfigError(`SPREED_TOKENS_FILE=${JSON.stringify(file)} cannot be read: ${(e as Error).message}`);
  }
}

function iceServers(env: Env): Config["conference"]["iceServers"] {
  const raw = optional(env, "ICE_SERVERS");
  if (raw === undefined) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new ConfigError('ICE_SERVERS must be a JSON array like [{"urls":["stun:stun.example.org:3478"]}]');
  }
  if (!Array.isArray(parsed)) throw new ConfigError("ICE_SERVERS must be a JSON array");
  return parsed.map((s, i) => {
    const entry = s as { urls?: unknown; username?: unknown; credential?: unknown };
    const urls = typeof entry.urls === "string" ? [entry.urls] : entry.urls;
    if (
      !Array.isArray(urls) ||
      urls.length === 0 ||
      !urls.every((u) => typeof u === "string" && /^(stun|stuns|turn|turns):/.test(u))
    ) {
      throw new ConfigError(`ICE_SERVERS[${i}].urls must be stun:/turn: URLs`);
    }
    for (const k of ["username", "credential"] as const) {
      if (entry[k] !== undefined && typeof entry[k] !== "string")
        throw new ConfigError(`ICE_SERVERS[${i}].${k} must be a string`);
    }
    return {
      urls: urls as string[],
      ...(typeof entry.username === "string" ? { username: entry.username } : {}),
      ...(typeof entry.credential === "string" ? { credential: entry.credential } : {}),
    };
  });
}

/** RFC 7065: turn(s):host[:port][?transport=udp|tcp], host a name, an IPv4 or a [IPv6] address. */
const TURN_URI =
  /^turns?:(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)(:(\d{1,5}))?(\?transport=(udp|tcp))?$/;
const MAX_TURN_URIS = 16;

/** `name`'s comma-separated TURN URIs, each checked; `fallback` when unset. */
function turnUris(env: Env, name: string, fallback: readonly string[] = []): string[] {
  if (optional(env, name) === undefined) return [...fallback];
  const uris = list(env, name);
  if (uris.length > MAX_TURN_URIS) throw new ConfigError(`${name} lists more than ${MAX_TURN_URIS} URIs`);
  for (const uri of uris) {
    const m = TURN_URI.exec(uri);
    const port = m?.[4] === undefined ? 3478 : Number(m[4]);
    if (m === null || port < 1 || port > 65535) {
      throw new ConfigError(
        `${name}: ${JSON.stringify(uri)} is not a TURN URI like turn:turn.example.com:3478?transport=udp or turns:turn.example.com:5349?transport=tcp`,
      );
    }
  }
  return uris;
}

/** A TURN shared secret from `name` (≥ 16 characters); `fallback` when unset. */
function turnSecret(env: Env, name: string, fallback?: string): string | undefined {
  const secret = optional(env, name);
  if (secret === undefined) return fallback;
  if (secret.length < 16) throw new ConfigError(`${name} must be at least 16 characters (e.g. openssl rand -hex 32)`);
  return secret;
}

/** TURN URIs and secret come together: either alone would hand out nothing usable. */
function turnPair(uris: readonly string[], secret: string | undefined, names: string): void {
  if (uris.length > 0 !== (secret !== undefined)) throw new ConfigError(`${names} must be set together`);
}

/** A configuration value that cannot be used; the message names the variable. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

type Env = Record<string, string | undefined>;

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (!/^\d+$/.test(raw.trim())) throw new ConfigError(`${name}=${JSON.stringify(raw)} is not a whole number`);
  const value = Number(raw.trim());
  if (value < min || value > max) throw new ConfigError(`${name}=${value} is outside ${min}..${max}`);
  return value;
}

function optional(env: Env, name: string): string | undefined {
  const raw = env[name];
  return raw === undefined || raw.trim() === "" ? undefined : raw.trim();
}

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

/** Reads and validates the configuration; throws ConfigError naming the bad variable. */
export function loadConfig(env: Env = process.env): Config {
  const logLevel = (optional(env, "LOG_LEVEL") ?? "info").toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new ConfigError(`LOG_LEVEL=${JSON.stringify(logLevel)} is not one of ${LOG_LEVELS.join(", ")}`);
  }
  const logFormat = (optional(env, "LOG_FORMAT") ?? "auto").toLowerCase();
  if (logFormat !== "auto" && logFormat !== "json" && logFormat !== "pretty") {
    throw new ConfigError(`LOG_FORMAT=${JSON.stringify(logFormat)} is not one of auto, json, pretty`);
  }
  const adminToken = optional(env, "ADMIN_TOKEN");
  if (adminToken !== undefined && adminToken.length < 16) {
    throw new ConfigError("ADMIN_TOKEN must be at least 16 characters (or unset to generate one)");
  }
  const metricsToken = optional(env, "METRICS_TOKEN");
  if (metricsToken !== undefined && !/^[\x21-\x7e]{16,1024}$/.test(metricsToken)) {
    throw new ConfigError("METRICS_TOKEN must be 16 to 1024 visible ASCII characters (or unset: /metrics is open)");
  }
  const databaseUrl = optional(env, "DATABASE_URL");
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\/[^\s]+$/.test(databaseUrl)) {
    throw new ConfigError("DATABASE_URL must be a PostgreSQL URL like postgres://user:password@host:5432/rtcplane");
  }
  const clusterSecret = optional(env, "CLUSTER_SECRET");
  if (clusterSecret !== undefined && clusterSecret.length < 32) {
    throw new ConfigError("CLUSTER_SECRET must be at least 32 characters (e.g. openssl rand -hex 32)");
  }
  if (databaseUrl !== undefined && clusterSecret === undefined) {
    throw new ConfigError("DATABASE_URL needs CLUSTER_SECRET: every node derives its keys from it");
  }
  if (databaseUrl !== undefined && adminToken === undefined) {
    throw new ConfigError("DATABASE_URL needs ADMIN_TOKEN: every node of a cluster must accept the same one");
  }
  const clusterBusUrl = optional(env, "CLUSTER_BUS_URL");
  if (clusterBusUrl !== undefined && !clusterBusUrl.split(",").every((u) => /^(nats|tls):\/\/\S+$/.test(u.trim()))) {
    throw new ConfigError(
      "CLUSTER_BUS_URL must be nats:// or tls:// URLs, comma-separated (e.g. nats://10.0.0.5:4222)",
    );
  }
  if (clusterBusUrl !== undefined && clusterSecret === undefined) {
    throw new ConfigError("CLUSTER_BUS_URL needs CLUSTER_SECRET: Spreed session tokens must open on every node");
  }
  const tlsCertFile = optional(env, "TLS_CERT");
  const tlsKeyFile = optional(env, "TLS_KEY");
  if ((tlsCertFile === undefined) !== (tlsKeyFile === undefined)) {
    throw new ConfigError("TLS_CERT and TLS_KEY must be set together");
  }
  // RTC_PORT: one UDP+TCP port per worker (RTC_PORT, RTC_PORT+1, …) instead of a port per transport.
  const rtcPort = optional(env, "RTC_PORT") === undefined ? undefined : integer(env, "RTC_PORT", 0, 1024, 65535);
  const rtcMinPort = integer(env, "RTC_MIN_PORT", 40000, 1024, 65535);
  const mediaWorkers = integer(env, "MEDIA_WORKERS", Math.min(os.availableParallelism(), 4), 1, 64);
  if (rtcPort !== undefined && rtcPort + mediaWorkers - 1 > 65535)
    throw new ConfigError(`RTC_PORT=${rtcPort} leaves no port for each of the ${mediaWorkers} MEDIA_WORKERS`);
  const rtcMaxPort = integer(env, "RTC_MAX_PORT", 49999, 1024, 65535);
  const nodeUrl = optional(env, "NODE_URL")?.replace(/\/+$/, "");
  if (nodeUrl !== undefined && !/^https?:\/\/[^/\s]+$/.test(nodeUrl)) {
    throw new ConfigError(`NODE_URL=${JSON.stringify(nodeUrl)} must be http(s)://host:port, with no path`);
  }
  // Off by default: current Chrome ignores it, and batched reads (MEDIA_VIEWER_READ_BATCH_MS)
  // took most of what it saved.
  const viewerFeedbackMs = integer(env, "MEDIA_VIEWER_FEEDBACK_MS", 0, 0, 250);
  if (viewerFeedbackMs > 0 && viewerFeedbackMs < 50) {
    throw new ConfigError(
      `MEDIA_VIEWER_FEEDBACK_MS=${viewerFeedbackMs}: libwebrtc sends feedback every 50 to 250 ms (0 leaves it to the viewer)`,
    );
  }
  const viewerBwe = (optional(env, "MEDIA_VIEWER_BWE") ?? "transport-cc").toLowerCase();
  if (viewerBwe !== "transport-cc" && viewerBwe !== "remb") {
    throw new ConfigError(`MEDIA_VIEWER_BWE=${JSON.stringify(viewerBwe)} is not one of transport-cc, remb`);
  }
  const viewerReadBatchMs = integer(env, "MEDIA_VIEWER_READ_BATCH_MS", 20, 0, 100);
  const heartbeatMs = integer(env, "NODE_HEARTBEAT_MS", 1000, 50, 60000);
  const deadAfterMs = integer(env, "NODE_DEAD_AFTER_MS", 3 * heartbeatMs, 100, 600000);
  if (deadAfterMs < 2 * heartbeatMs) {
    throw new ConfigError(`NODE_DEAD_AFTER_MS=${deadAfterMs} must be at least twice NODE_HEARTBEAT_MS=${heartbeatMs}`);
  }
  if (rtcMinPort > rtcMaxPort) throw new ConfigError(`RTC_MIN_PORT=${rtcMinPort} is above RTC_MAX_PORT=${rtcMaxPort}`);
  const announcedIp = optional(env, "ANNOUNCED_IP");
  if (announcedIp !== undefined && !/^[0-9a-fA-F.:]+$/.test(announcedIp)) {
    throw new ConfigError(`ANNOUNCED_IP=${JSON.stringify(announcedIp)} is not an IP address`);
  }
  const corsOrigins = (optional(env, "CORS_ORIGINS") ?? "*")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  for (const origin of corsOrigins) {
    if (origin !== "*" && !/^https?:\/\/[^/\s]+$/.test(origin)) {
      throw new ConfigError(
        `CORS_ORIGINS entry ${JSON.stringify(origin)} is not "*" or an origin like https://host:port`,
      );
    }
  }
  const publicUrl = (optional(env, "PUBLIC_URL") ?? "").replace(/\/+$/, "");
  if (publicUrl !== "" && !/^https?:\/\/[^/\s?#]+(\/[^\s?#]*)?$/.test(publicUrl)) {
    throw new ConfigError(`PUBLIC_URL=${JSON.stringify(publicUrl)} is not an http(s) URL like https://rtc.example.com`);
  }
  const accessTokenTtlSeconds = integer(env, "ACCESS_TOKEN_TTL_SECONDS", 3600, 2, 31536000);
  const refreshTokenTtlSeconds = integer(env, "REFRESH_TOKEN_TTL_SECONDS", 86400, 1, 31536000);
  const refreshChainLifetimeSeconds = integer(env, "REFRESH_CHAIN_LIFETIME_SECONDS", 604800, 1, 31536000);
  if (refreshChainLifetimeSeconds < refreshTokenTtlSeconds) {
    throw new ConfigError(
      `REFRESH_CHAIN_LIFETIME_SECONDS=${refreshChainLifetimeSeconds} is below REFRESH_TOKEN_TTL_SECONDS=${refreshTokenTtlSeconds}`,
    );
  }
  const turn = {
    uris: turnUris(env, "TURN_URIS"),
    secret: turnSecret(env, "TURN_SECRET"),
    ttlSeconds: integer(env, "TURN_TTL_SECONDS", 86400, 60, 31536000),
  };
  turnPair(turn.uris, turn.secret, "TURN_URIS and TURN_SECRET");
  // Spreed's TURN settings default to the server's.
  const spreedTurn = {
    uris: turnUris(env, "SPREED_TURN_URIS", turn.uris),
    secret: turnSecret(env, "SPREED_TURN_SECRET", turn.secret),
    ttlSeconds: integer(env, "SPREED_TURN_TTL_SECONDS", turn.ttlSeconds, 60, 31536000),
  };
  turnPair(
    spreedTurn.uris,
    spreedTurn.secret,
    "SPREED_TURN_URIS and SPREED_TURN_SECRET (or TURN_URIS and TURN_SECRET)",
  );
  const maxWaiters = integer(env, "LONG_POLL_MAX_WAITERS", 10000, 1, 1000000);
  const headersTimeoutMs = integer(env, "HEADERS_TIMEOUT_MS", 10000, 100, 600000);
  const requestTimeoutMs = integer(env, "REQUEST_TIMEOUT_MS", 60000, 100, 3600000);
  if (headersTimeoutMs > requestTimeoutMs) {
    throw new ConfigError(`HEADERS_TIMEOUT_MS=${headersTimeoutMs} is above REQUEST_TIMEOUT_MS=${requestTimeoutMs}`);
  }
  return {
    host: optional(env, "HOST") ?? "0.0.0.0",
    port: integer(env, "PORT", 8080, 0, 65535),
    dataDir: path.resolve(optional(env, "DATA_DIR") ?? "./data"),
    adminToken,
    metricsToken,
    databaseUrl,
    databasePoolSize: integer(env, "DATABASE_POOL_SIZE", 10, 1, 1000),
    clusterSecret,
    clusterBusUrl,
    nodes: {
      url: nodeUrl,
      heartbeatMs,
      deadAfterMs,
      forwardTimeoutMs: integer(env, "MEDIA_FORWARD_TIMEOUT_MS", 10000, 100, 120000),
    },
    tlsCertFile,
    tlsKeyFile,
    announcedIp,
    rtcMinPort,
    rtcMaxPort,
    longPollTimeoutMs: integer(env, "LONG_POLL_TIMEOUT_MS", 5000, 10, 300000),
    logLevel: logLevel as Config["logLevel"],
    logFormat,
    maxBodyBytes: integer(env, "MAX_BODY_BYTES", 1024 * 1024, 1024, 64 * 1024 * 1024),
    corsOrigins,
    shutdownGraceMs: integer(env, "SHUTDOWN_GRACE_MS", 10000, 0, 600000),
    publicUrl,
    connections: {
      maxPerIp: integer(env, "MAX_CONNECTIONS_PER_IP", 256, 1, 1000000),
      headersTimeoutMs,
      requestTimeoutMs,
      h2MaxConcurrentStreams: integer(env, "H2_MAX_CONCURRENT_STREAMS", 100, 1, 10000),
    },
    requestLogPerSecond: integer(env, "REQUEST_LOG_PER_SECOND", 50, 0, 1000000),
    rooms: {
      maxParticipants: integer(env, "ROOM_MAX_PARTICIPANTS", 25, 2, 10000),
      tokenTtlSeconds: integer(env, "ROOM_TOKEN_TTL_SECONDS", 86400, 1, 31536000),
      ttlSeconds: integer(env, "ROOM_TTL_SECONDS", 86400, 1, 31536000),
      endpointTtlSeconds: integer(env, "ENDPOINT_TTL_SECONDS", 86400, 1, 31536000),
      sweepIntervalMs: integer(env, "ROOM_SWEEP_INTERVAL_MS", 60000, 100, 86400000),
      useFlushIntervalMs: integer(env, "ROOM_USE_FLUSH_INTERVAL_MS", 60000, 100, 3600000),
    },
    media: {
      workerBin: optional(env, "MEDIASOUP_WORKER_BIN"),
      workers: mediaWorkers,
      rtcPort,
      listenIp: optional(env, "RTC_LISTEN_IP") ?? (announcedIp === undefined ? "127.0.0.1" : "0.0.0.0"),
      statsIntervalMs: integer(env, "MEDIA_STATS_INTERVAL_MS", 5000, 0, 3600000),
      viewerFeedbackMs,
      viewerBwe,
      viewerReadBatchMs,
    },
    turn,
    conference: {
      maxWaitersPerConference: integer(env, "LONG_POLL_MAX_WAITERS_PER_CONFERENCE", 1000, 1, 100000),
      maxWaitersPerTenant: integer(
        env,
        "LONG_POLL_MAX_WAITERS_PER_TENANT",
        Math.max(1, Math.floor(maxWaiters / 4)),
        1,
        1000000,
      ),
      maxWaiters,
      accessTokenTtlSeconds,
      refreshTokenTtlSeconds,
      refreshChainLifetimeSeconds,
      endpointSweepIntervalMs: integer(env, "ENDPOINT_SWEEP_INTERVAL_MS", 5000, 50, 3600000),
      callRingTimeoutSeconds: integer(env, "CALL_RING_TIMEOUT_SECONDS", 60, 1, 3600),
      iceServers: iceServers(env),
    },
    mqtt: {
      maxBufferedBytes: integer(env, "MQTT_MAX_BUFFERED_BYTES", 1024 * 1024, 64 * 1024, 1024 * 1024 * 1024),
      maxConnectionsPerTenant: integer(env, "MQTT_MAX_CONNECTIONS_PER_TENANT", 10000, 1, 1000000),
      maxConnections: integer(env, "MQTT_MAX_CONNECTIONS", 50000, 1, 10000000),
    },
    spreed: {
      title: optional(env, "SPREED_TITLE") ?? "Spreed WebRTC",
      publicToken: optional(env, "SPREED_PUBLIC_TOKEN") ?? "",
      publicUrl: (optional(env, "SPREED_PUBLIC_URL") ?? "").replace(/\/+$/, ""),
      realm: optional(env, "SPREED_REALM") ?? "local",
      usersEnabled: bool(env, "SPREED_USERS_ENABLED", true),
      usersAllowRegistration: bool(env, "SPREED_USERS_ALLOW_REGISTRATION", true),
      renegotiation: bool(env, "SPREED_RENEGOTIATION", false),
      defaultRoomEnabled: bool(env, "SPREED_DEFAULT_ROOM_ENABLED", true),
      authorizeRoomCreation: bool(env, "SPREED_AUTHORIZE_ROOM_CREATION", false),
      authorizeRoomJoin: bool(env, "SPREED_AUTHORIZE_ROOM_JOIN", false),
      modules: spreedModules(env),
      usersSecret: optional(env, "SPREED_USERS_SECRET"),
      tokens: spreedTokens(env),
      statsEnabled: bool(env, "SPREED_STATS_ENABLED", false),
      stunUris: list(env, "SPREED_STUN_URIS"),
      turnUris: spreedTurn.uris,
      turnSecret: spreedTurn.secret,
      turnTtlSeconds: spreedTurn.ttlSeconds,
      maxBufferedBytes: integer(env, "SPREED_MAX_BUFFERED_BYTES", 1024 * 1024, 64 * 1024, 1024 * 1024 * 1024),
      docsPerSecond: integer(env, "SPREED_DOCS_PER_SECOND", 50, 1, 100000),
      fanoutBytesPerSecond: integer(env, "SPREED_FANOUT_BYTES_PER_SECOND", 1024 * 1024, 1024, 1024 * 1024 * 1024),
      maxRoomSessions: integer(env, "SPREED_MAX_ROOM_SESSIONS", 200, 2, 100000),
      inboundBytesPerSecond: integer(env, "SPREED_INBOUND_BYTES_PER_SECOND", 512 * 1024, 1024, 1024 * 1024 * 1024),
      appId: optional(env, "SPREED_APP_ID"),
    },
  };
}

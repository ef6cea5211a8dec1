/**
 * The storage and domain half of the composition root: the store (SQLite alone, PostgreSQL in
 * a cluster), the domain modules over it, the hooks between them, the cluster channel that
 * carries events and cache invalidations to the other nodes, and the periodic jobs. Nothing
 * here knows HTTP; src/server.ts puts the protocols on top.
 */
import { Apps } from "./apps/apps.js";
import { AppAuth } from "./auth/app-auth.js";
import { CredentialChanges } from "./auth/credential-changes.js";
import type { ServerKey } from "./auth/server-key.js";
import { TurnCredentials } from "./auth/turn-credentials.js";
import type { PeriodicJob } from "./background.js";
import { Calls } from "./calls/calls.js";
import { ClusterBus } from "./cluster/cluster-bus.js";
import { ClusterCaches } from "./cluster/cluster-caches.js";
import { ClusterChannel } from "./cluster/cluster-channel.js";
import { Conferences } from "./conferences/conferences.js";
import { EventBus } from "./conferences/event-bus.js";
import type { Config } from "./config.js";
import { Endpoints } from "./endpoints/endpoints.js";
import { AccessTokens } from "./oauth/access-tokens.js";
import { Principals } from "./oauth/principals.js";
import { RefreshFamilies } from "./oauth/refresh-families.js";
import type { Logger } from "./observability/log.js";
import { RoomTokens } from "./rooms/room-tokens.js";
import { Rooms } from "./rooms/rooms.js";
import { openStore } from "./storage/open-store.js";
import type { Store } from "./storage/store.js";
import { Tenants } from "./tenants/tenants.js";

/** How long a finished one-to-one call is remembered (a late command on it answers 412, not 404). */
const CALL_RETENTION_MS = 3_600_000;

export type Domain = Awaited<ReturnType<typeof openDomain>>;

/** Opens the store (migrating it) and wires the domain over it. */
export async function openDomain(config: Config, serverKey: ServerKey, logger: Logger) {
  const db = await openStore(config, logger);
  const tenants = new Tenants(db, serverKey);
  const apps = new Apps(db, serverKey);
  const rooms = new Rooms(db, serverKey, config.rooms, logger);
  if (db.kind === "postgres") rooms.expiryGraceMs = config.rooms.useFlushIntervalMs;
  const roomTokens = new RoomTokens(serverKey, Date.now, new TurnCredentials(config.turn));
  const appAuth = new AppAuth(apps, tenants);
  // In a cluster, nodes hear of each other's commits on the store's notification channel.
  const channel = db.kind === "postgres" ? new ClusterChannel(db, logger) : undefined;
  const bus = new EventBus();
  if (channel !== undefined) bus.relay = new ClusterBus(channel, bus, logger);
  const roomLookup = {
    find: (appId: string, roomId: string) => rooms.find(appId, roomId),
    use: (appId: string, roomId: string) => rooms.use(appId, roomId),
  };
  const conferences = new Conferences(
    db,
    bus,
    roomLookup,
    { longPollTimeoutMs: config.longPollTimeoutMs, ...config.conference },
    logger,
  );
  // Single node: streams are the media this process held; they went with its last run.
  if (db.kind === "sqlite") await conferences.forgetStreams();
  // Connections opened with credentials that stop working are closed (see Principals.watch),
  // and cached apps and tenants are forgotten, on every node before the change is answered.
  const credentialChanges = new CredentialChanges();
  const caches = new ClusterCaches(db, channel, apps, tenants, credentialChanges);
  apps.onChanged = (tx, appId, credentials) => caches.appChanged(tx, appId, credentials);
  tenants.onChanged = (tx, tenantId, credentials) => caches.tenantChanged(tx, tenantId, credentials);
  // A deleted or expired room ends its conference and its tokens stop working.
  rooms.onDeleted = async ({ appId, roomId }, why) => {
    await conferences.endIfOpen(appId, roomId, `room ${why}`);
    await caches.credentialsChanged({ appId });
  };
  const endpoints = new Endpoints(db, conferences, logger);
  const calls = new Calls(
    db,
    {
      ofUser: async (appId, userId) =>
        (await endpoints.list(appId, userId)).map((e) => ({ userId, endpointId: e.endpointId })),
    },
    bus,
    {
      ringTimeoutMs: config.conference.callRingTimeoutSeconds * 1000,
      retentionMs: CALL_RETENTION_MS,
      maxWaitersPerTenant: config.conference.maxWaitersPerTenant,
      maxWaiters: config.conference.maxWaiters,
    },
    logger,
  );
  endpoints.onRemoved = (appId, endpointId, userId) => calls.endpointGone(appId, endpointId, userId);
  const accessTokens = new AccessTokens(
    serverKey,
    roomTokens,
    config.conference.accessTokenTtlSeconds,
    config.conference.refreshTokenTtlSeconds,
  );
  const families = new RefreshFamilies(db);
  families.onRevoked = (appId) => caches.credentialsChanged({ appId });
  const principals = new Principals(accessTokens, appAuth, families, rooms, credentialChanges, (appId, userId) =>
    endpoints.hasAny(appId, userId),
  );

  return {
    store: db as Store,
    tenants,
    apps,
    rooms,
    roomTokens,
    roomLookup,
    appAuth,
    bus,
    conferences,
    endpoints,
    calls,
    accessTokens,
    families,
    principals,
    credentialChanges,

    /** Joins the cluster channel (a cluster's nodes then hear each other's commits). */
    async start(): Promise<void> {
      if (channel === undefined) return;
      // While the channel is down, news of other nodes' changes cannot arrive: nothing is
      // cached; once it is back, waiters and streams re-read the log for what they missed.
      channel.onLost = () => caches.suspend();
      channel.onGap = () => {
        caches.resume();
        bus.resync();
      };
      await channel.start();
    },

    /** The periodic work (see Background). */
    jobs(): PeriodicJob[] {
      return [
        {
          // Rooms unused for their roomTTLSeconds are deleted.
          name: "room expiry",
          everyMs: config.rooms.sweepIntervalMs,
          run: async () => {
            const expired = await rooms.sweepExpired();
            if (expired.length > 0) logger.info({ rooms: expired.map((r) => r.roomId) }, "expired rooms deleted");
          },
        },
        {
          name: "refresh families",
          everyMs: config.rooms.sweepIntervalMs,
          run: async () => void (await families.sweep()),
        },
        // Room reads remember their use; it is written once a minute (and at shutdown).
        {
          name: "room uses",
          everyMs: config.rooms.useFlushIntervalMs,
          run: async () => void (await rooms.flushUses()),
        },
        // Endpoints that miss their keep-alive turn SICK, then leave their conferences; calls
        // that ring unanswered for CALL_RING_TIMEOUT_SECONDS are cancelled.
        {
          name: "endpoint keep-alives",
          everyMs: config.conference.endpointSweepIntervalMs,
          run: async () => void (await endpoints.sweep()),
        },
        {
          name: "call timeouts",
          everyMs: config.conference.endpointSweepIntervalMs,
          run: async () => void (await calls.sweep()),
        },
        ...(channel === undefined
          ? []
          : [{ name: "cluster messages", everyMs: 60_000, run: async () => void (await channel.sweep()) }]),
      ];
    },

    /** Leaves the channel, writes what is remembered, closes the store. */
    async close(): Promise<void> {
      channel?.stop();
      try {
        await rooms.flushUses();
      } catch (err) {
        logger.error({ err }, "writing room uses failed");
      }
      await db.close();
    },
  };
}

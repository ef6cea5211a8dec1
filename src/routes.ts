/**
 * The one place that registers services: every RPC service, its REST routes and the
 * dialects they speak. Adding an API means adding it here and nowhere else.
 */
import { type DescService, getOption, hasOption } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import { ServerReflection as ServerReflectionV1 } from "../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1Alpha } from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { Health } from "../gen/health/v1/health_pb.js";
import { AdminService } from "../gen/rtcplane/admin/v1/admin_pb.js";
import { adminServiceRoutes } from "../gen/rtcplane/admin/v1/admin_routes.js";
import { AppService } from "../gen/rtcplane/apps/v1/apps_pb.js";
import { appServiceRoutes } from "../gen/rtcplane/apps/v1/apps_routes.js";
import { MediaNodeService } from "../gen/rtcplane/cluster/v1/media_node_pb.js";
import { CallService } from "../gen/rtcplane/conference/v1/calls_pb.js";
import { callServiceRoutes } from "../gen/rtcplane/conference/v1/calls_routes.js";
import { ConferenceService, TokenService, UserEndpointService } from "../gen/rtcplane/conference/v1/conference_pb.js";
import {
  conferenceServiceRoutes,
  tokenServiceRoutes,
  userEndpointServiceRoutes,
} from "../gen/rtcplane/conference/v1/conference_routes.js";
import { Dialect as DialectOption, dialect as dialectOption } from "../gen/rtcplane/options/v1/options_pb.js";
import { RoomService } from "../gen/rtcplane/rooms/v1/rooms_pb.js";
import { roomServiceRoutes } from "../gen/rtcplane/rooms/v1/rooms_routes.js";
import { SpreedService } from "../gen/rtcplane/spreed/v1/spreed_pb.js";
import { spreedServiceRoutes } from "../gen/rtcplane/spreed/v1/spreed_routes.js";
import { conferenceDialect } from "./gateway/dialects/conference.js";
import type { Dialect } from "./gateway/dialects/dialect.js";
import { oauthDialect } from "./gateway/dialects/oauth.js";
import { realtimeDialect } from "./gateway/dialects/realtime.js";
import { skywayDialect } from "./gateway/dialects/skyway.js";
import { spreedDialect } from "./gateway/dialects/spreed.js";
import { v1Dialect } from "./gateway/dialects/v1.js";
import type { AnyServiceImpl } from "./gateway/gateway.js";
import type { RouteSpec } from "./gateway/route-table.js";
import type { AdminServiceImpl } from "./services/admin-service.js";
import type { AppServiceImpl } from "./services/app-service.js";
import type { CallServiceImpl } from "./services/call-service.js";
import type { ConferenceServiceImpl } from "./services/conference-service.js";
import type { HealthServiceImpl } from "./services/health-service.js";
import type { MediaNodeServiceImpl } from "./services/media-node-service.js";
import { createReflectionImpl, DescriptorIndex } from "./services/reflection-service.js";
import type { RoomServiceImpl } from "./services/room-service.js";
import type { SpreedServiceImpl } from "./services/spreed-service.js";
import type { TokenServiceImpl } from "./services/token-service.js";
import type { UserEndpointServiceImpl } from "./services/user-endpoint-service.js";

export interface ServiceImpls {
  readonly admin: AdminServiceImpl;
  readonly apps: AppServiceImpl;
  readonly rooms: RoomServiceImpl;
  readonly conferences: ConferenceServiceImpl;
  readonly calls: CallServiceImpl;
  readonly endpoints: UserEndpointServiceImpl;
  readonly tokens: TokenServiceImpl;
  readonly spreed: SpreedServiceImpl;
  readonly health: HealthServiceImpl;
  /** The cluster's internal media service (other nodes only; never REST). */
  readonly mediaNode: MediaNodeServiceImpl;
}

/** Our API services: served over every protocol, listed by reflection and health. */
export const apiServices: readonly DescService[] = [
  AdminService,
  AppService,
  RoomService,
  ConferenceService,
  CallService,
  UserEndpointService,
  TokenService,
  SpreedService,
];

export const restRoutes: readonly RouteSpec[] = [
  ...adminServiceRoutes,
  ...appServiceRoutes,
  ...roomServiceRoutes,
  ...conferenceServiceRoutes,
  ...callServiceRoutes,
  ...userEndpointServiceRoutes,
  ...tokenServiceRoutes,
  ...spreedServiceRoutes,
];

export const dialects: ReadonlyMap<string, Dialect> = new Map<string, Dialect>([
  [v1Dialect.name, v1Dialect],
  [skywayDialect.name, skywayDialect],
  [realtimeDialect.name, realtimeDialect],
  [conferenceDialect.name, conferenceDialect],
  [oauthDialect.name, oauthDialect],
  [spreedDialect.name, spreedDialect],
]);

const DIALECT_NAMES: Record<DialectOption, string | undefined> = {
  [DialectOption.UNSPECIFIED]: undefined,
  [DialectOption.V1]: v1Dialect.name,
  [DialectOption.SKYWAY]: skywayDialect.name,
  [DialectOption.SPREED]: spreedDialect.name,
  [DialectOption.REALTIME]: realtimeDialect.name,
  [DialectOption.CONFERENCE]: conferenceDialect.name,
  [DialectOption.OAUTH]: oauthDialect.name,
};

/** A service's dialect, as its proto names it: where its credentials travel on every protocol. */
export function dialectOfService(service: DescService): Dialect | undefined {
  const name = hasOption(service, dialectOption) ? DIALECT_NAMES[getOption(service, dialectOption)] : undefined;
  return name === undefined ? undefined : dialects.get(name);
}

/** Every RPC path (`/package.Service/Method`) served by connect-node; other paths are REST. */
export const rpcPaths: ReadonlySet<string> = new Set(
  [...apiServices, Health, ServerReflectionV1, ServerReflectionV1Alpha, MediaNodeService].flatMap((s) =>
    s.methods.map((m) => `/${s.typeName}/${m.name}`),
  ),
);

/** Implementations by service, for the REST gateway's in-process calls. */
export function implementationsByService(impls: ServiceImpls): Map<DescService, AnyServiceImpl> {
  return new Map<DescService, AnyServiceImpl>([
    [AdminService, impls.admin as unknown as AnyServiceImpl],
    [AppService, impls.apps as unknown as AnyServiceImpl],
    [RoomService, impls.rooms as unknown as AnyServiceImpl],
    [ConferenceService, impls.conferences as unknown as AnyServiceImpl],
    [CallService, impls.calls as unknown as AnyServiceImpl],
    [UserEndpointService, impls.endpoints as unknown as AnyServiceImpl],
    [TokenService, impls.tokens as unknown as AnyServiceImpl],
    [SpreedService, impls.spreed as unknown as AnyServiceImpl],
  ]);
}

export function registerRpcServices(router: ConnectRouter, impls: ServiceImpls): void {
  router.service(AdminService, impls.admin);
  router.service(AppService, impls.apps);
  router.service(RoomService, impls.rooms);
  router.service(ConferenceService, impls.conferences);
  router.service(CallService, impls.calls);
  router.service(UserEndpointService, impls.endpoints);
  router.service(TokenService, impls.tokens);
  router.service(SpreedService, impls.spreed);
  router.service(Health, impls.health);
  router.service(MediaNodeService, impls.mediaNode);
  const reflection = createReflectionImpl(
    new DescriptorIndex([...apiServices, Health, ServerReflectionV1, ServerReflectionV1Alpha]),
  );
  router.service(ServerReflectionV1, reflection);
  router.service(ServerReflectionV1Alpha, reflection);
}

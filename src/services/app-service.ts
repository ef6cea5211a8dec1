/** rtcplane.apps.v1.AppService: the SkyWay app management API on every protocol. */
import { create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  type App,
  AppSchema,
  type AppService,
  type CreateAppRequest,
  type ListAppsRequest,
  type StringList,
  type UpdateAppRequest,
} from "../../gen/rtcplane/apps/v1/apps_pb.js";
import type { AppChange, Apps, AppView } from "../apps/apps.js";
import { tenantCaller } from "../auth/caller.js";
import type { Tenants } from "../tenants/tenants.js";

/** Whole seconds, as the documented timestamps (`2016-12-09T21:50:21Z`) have. */
function seconds(ms: number) {
  return { seconds: BigInt(Math.floor(ms / 1000)), nanos: 0 };
}

/** id, apikey and description: what ListApps shows without expandApps. */
function toSummary(view: AppView): App {
  const r = view.record;
  return create(AppSchema, { id: r.appId, apikey: r.apikey, description: r.description });
}

/** The whole app, without its secret key or the recording service account key. */
function toApp(view: AppView): App {
  const r = view.record;
  const months: Record<string, { signaling: bigint; turn: bigint; sfu: bigint }> = {};
  for (const [month, u] of view.usage) {
    months[month] = { signaling: BigInt(u.signaling), turn: BigInt(u.turn), sfu: BigInt(u.sfu) };
  }
  return create(AppSchema, {
    id: r.appId,
    apikey: r.apikey,
    description: r.description,
    domains: { values: r.domains },
    permissions: { values: r.permissions },
    usageSummary: { months },
    status: r.status,
    recording: { status: view.recordingStatus, bucketName: r.recordingBucket },
    createdAt: seconds(r.createTimeMs),
    updatedAt: seconds(r.updateTimeMs),
  });
}

function change(req: CreateAppRequest | UpdateAppRequest): AppChange {
  const list = (l: StringList | undefined) => l?.values;
  return {
    description: req.description,
    domains: list(req.domains),
    permissions: list(req.permissions),
    status: req.status,
    recordingBucketName: req.recordingBucketName,
    recordingServiceAccountKey: req.recordingServiceAccountKey,
  };
}

export class AppServiceImpl implements ServiceImpl<typeof AppService> {
  constructor(
    private readonly tenants: Tenants,
    private readonly apps: Apps,
  ) {}

  /** The calling tenant (its auth token, resolved by the interceptor), if it may act on `tenantId`. */
  private tenant(ctx: HandlerContext, tenantId: string) {
    return this.tenants.permit(tenantCaller(ctx), tenantId);
  }

  async listApps(req: ListAppsRequest, ctx: HandlerContext) {
    const tenant = this.tenant(ctx, req.tenantId);
    const views = await this.apps.list(tenant.tenantId, req.expandApps);
    return { apps: views.map(req.expandApps ? toApp : toSummary) };
  }

  async createApp(req: CreateAppRequest, ctx: HandlerContext) {
    const tenant = this.tenant(ctx, req.tenantId);
    return { app: toApp(await this.apps.create(tenant.tenantId, change(req))) };
  }

  async getApp(req: { tenantId: string; appId: string }, ctx: HandlerContext) {
    const tenant = this.tenant(ctx, req.tenantId);
    return { app: toApp(await this.apps.get(tenant.tenantId, req.appId)) };
  }

  async updateApp(req: UpdateAppRequest, ctx: HandlerContext) {
    const tenant = this.tenant(ctx, req.tenantId);
    return { app: toApp(await this.apps.update(tenant.tenantId, req.appId, change(req))) };
  }

  async deleteApp(req: { tenantId: string; appId: string }, ctx: HandlerContext) {
    const tenant = this.tenant(ctx, req.tenantId);
    await this.apps.delete(tenant.tenantId, req.appId);
    return {};
  }

  async getAppSecretKey(req: { tenantId: string; appId: string }, ctx: HandlerContext) {
    const tenant = this.tenant(ctx, req.tenantId);
    return { secretkey: await this.apps.secretKey(tenant.tenantId, req.appId) };
  }

  async renewAppSecretKey(req: { tenantId: string; appId: string }, ctx: HandlerContext) {
    const tenant = this.tenant(ctx, req.tenantId);
    return { secretkey: await this.apps.renewSecretKey(tenant.tenantId, req.appId) };
  }
}

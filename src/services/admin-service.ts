/** rtcplane.admin.v1.AdminService: validate → authorize → call domain → map. */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { type AdminService, type Tenant, TenantSchema } from "../../gen/rtcplane/admin/v1/admin_pb.js";
import { requireAdmin } from "../auth/caller.js";
import type { TenantRow, Tenants } from "../tenants/tenants.js";

function toTenant(row: TenantRow): Tenant {
  return create(TenantSchema, {
    tenantId: row.tenantId,
    name: row.name,
    status: row.status,
    createTime: timestampFromMs(row.createTimeMs),
    updateTime: timestampFromMs(row.updateTimeMs),
  });
}

export class AdminServiceImpl implements ServiceImpl<typeof AdminService> {
  constructor(private readonly tenants: Tenants) {}

  async createTenant(req: { name: string }, ctx: HandlerContext) {
    requireAdmin(ctx);
    const { tenant, authToken } = await this.tenants.create(req.name);
    return { tenantId: tenant.tenantId, authToken, tenant: toTenant(tenant) };
  }

  async getTenant(req: { tenantId: string }, ctx: HandlerContext) {
    requireAdmin(ctx);
    return { tenant: toTenant(await this.tenants.get(req.tenantId)) };
  }

  async listTenants(req: { pageSize: number; pageToken: string; showDeleted: boolean }, ctx: HandlerContext) {
    requireAdmin(ctx);
    const page = await this.tenants.list(req.pageSize, req.pageToken, req.showDeleted);
    return { tenants: page.tenants.map(toTenant), nextPageToken: page.nextPageToken };
  }

  async updateTenant(req: { tenantId: string; name?: string; status?: string }, ctx: HandlerContext) {
    requireAdmin(ctx);
    return { tenant: toTenant(await this.tenants.update(req.tenantId, { name: req.name, status: req.status })) };
  }

  async rotateTenantToken(req: { tenantId: string }, ctx: HandlerContext) {
    requireAdmin(ctx);
    const { tenant, authToken } = await this.tenants.rotateToken(req.tenantId);
    return { tenantId: tenant.tenantId, authToken };
  }
}

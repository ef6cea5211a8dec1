/**
 * Browser fixture: calls the admin API from a page with @connectrpc/connect-web over
 * gRPC-web and Connect (JSON and binary). Bundled by esbuild in the browser test.
 */
import { toJson } from "@bufbuild/protobuf";
import { ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import {
  AdminService,
  CreateTenantResponseSchema,
  GetTenantResponseSchema,
} from "../../gen/rtcplane/admin/v1/admin_pb.js";

async function runAdmin(baseUrl: string, token: string) {
  const headers = { authorization: `Bearer ${token}` };
  const grpcWeb = createClient(AdminService, createGrpcWebTransport({ baseUrl }));
  const connectJson = createClient(AdminService, createConnectTransport({ baseUrl }));
  const connectBinary = createClient(AdminService, createConnectTransport({ baseUrl, useBinaryFormat: true }));
  const created = await grpcWeb.createTenant({ name: "from the browser" }, { headers });
  const viaConnect = await connectJson.getTenant({ tenantId: created.tenantId }, { headers });
  const viaBinary = await connectBinary.getTenant({ tenantId: created.tenantId }, { headers });
  const viaGrpcWeb = await grpcWeb.getTenant({ tenantId: created.tenantId }, { headers });
  let denied = "none";
  try {
    await connectJson.getTenant({ tenantId: created.tenantId });
  } catch (e) {
    denied = String(ConnectError.from(e).code);
  }
  return {
    created: toJson(CreateTenantResponseSchema, created),
    viaConnect: toJson(GetTenantResponseSchema, viaConnect),
    viaBinary: toJson(GetTenantResponseSchema, viaBinary),
    viaGrpcWeb: toJson(GetTenantResponseSchema, viaGrpcWeb),
    denied,
  };
}

(globalThis as unknown as { runAdmin: typeof runAdmin }).runAdmin = runAdmin;
document.title = "ready";

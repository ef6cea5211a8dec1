"""A second-language client: Python grpcio (Debian) calling AdminService over h2c.

Messages come from `protoc --python_out` on proto/; the calls use grpcio's generic
unary API, so no Python gRPC codegen plugin is needed. Prints one JSON document.
"""
import json
import sys

import grpc
from google.protobuf import json_format
from unary import unary

from rtcplane.admin.v1 import admin_pb2

target, token = sys.argv[1], sys.argv[2]
SERVICE = "rtcplane.admin.v1.AdminService"


def call(channel, method, request, response_type, metadata):
    return unary(channel, SERVICE, method, request, response_type, metadata)


out = {}
with grpc.insecure_channel(target) as channel:
    auth = [("authorization", "Bearer " + token)]
    created = call(channel, "CreateTenant", admin_pb2.CreateTenantRequest(name="from python"),
                   admin_pb2.CreateTenantResponse, auth)
    got = call(channel, "GetTenant", admin_pb2.GetTenantRequest(tenant_id=created.tenant_id),
               admin_pb2.GetTenantResponse, auth)
    listed = call(channel, "ListTenants", admin_pb2.ListTenantsRequest(page_size=1000),
                  admin_pb2.ListTenantsResponse, auth)
    out["created"] = json_format.MessageToDict(created)
    out["got"] = json_format.MessageToDict(got)
    out["listedIds"] = [t.tenant_id for t in listed.tenants]
    for label, metadata in (("missing", []), ("wrong", [("authorization", "Bearer wrong-token")])):
        try:
            call(channel, "GetTenant", admin_pb2.GetTenantRequest(tenant_id=created.tenant_id),
                 admin_pb2.GetTenantResponse, metadata)
            out[label] = "OK"
        except grpc.RpcError as e:
            out[label] = e.code().name
print(json.dumps(out))

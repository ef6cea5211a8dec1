"""Python grpcio (Debian) calling AppService over h2c with x-auth-token metadata.

Prints one JSON document with what it saw, for the Node test to compare with REST.
"""
import json
import sys

import grpc
from google.protobuf import json_format
from unary import unary

from rtcplane.apps.v1 import apps_pb2

target, tenant_id, token = sys.argv[1], sys.argv[2], sys.argv[3]
SERVICE = "rtcplane.apps.v1.AppService"


def call(channel, method, request, response_type, metadata):
    return unary(channel, SERVICE, method, request, response_type, metadata)


out = {}
with grpc.insecure_channel(target) as channel:
    auth = [("x-auth-token", token)]
    created = call(channel, "CreateApp", apps_pb2.CreateAppRequest(
        tenant_id=tenant_id, description="from python",
        domains=apps_pb2.StringList(values=["py.example.com"]),
        permissions=apps_pb2.StringList(values=["TURN"])), apps_pb2.CreateAppResponse, auth)
    listed = call(channel, "ListApps", apps_pb2.ListAppsRequest(tenant_id=tenant_id, expand_apps=True),
                  apps_pb2.ListAppsResponse, auth)
    secret = call(channel, "GetAppSecretKey", apps_pb2.GetAppSecretKeyRequest(
        tenant_id=tenant_id, app_id=created.app.id), apps_pb2.GetAppSecretKeyResponse, auth)
    out["created"] = json_format.MessageToDict(created.app, preserving_proto_field_name=True)
    out["listed"] = [json_format.MessageToDict(a, preserving_proto_field_name=True) for a in listed.apps]
    out["secretkey"] = secret.secretkey
    try:
        call(channel, "GetApp", apps_pb2.GetAppRequest(tenant_id=tenant_id, app_id=created.app.id),
             apps_pb2.GetAppResponse, [("x-auth-token", "wrong")])
        out["wrong"] = "OK"
    except grpc.RpcError as e:
        out["wrong"] = e.code().name
print(json.dumps(out))

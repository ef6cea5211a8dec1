"""One generic unary gRPC call with grpcio, for clients that have messages but no stubs."""


def unary(channel, service, method, request, response_type, metadata):
    """Calls /<service>/<method> with protoc-generated messages; raises grpc.RpcError."""
    stub = channel.unary_unary(
        "/" + service + "/" + method,
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=response_type.FromString,
    )
    return stub(request, metadata=metadata, timeout=10)

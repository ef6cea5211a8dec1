"""Python grpcio (Debian) watching a conference over h2c: typed events, fields read by name.

Prints "ready" once the replayed creation event has arrived, then one JSON document with
what the typed events held once `count` events were seen.
"""
import json
import sys

import grpc

from rtcplane.conference.v1 import conference_pb2

target, token, conference_id, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

out = []
with grpc.insecure_channel(target) as channel:
    watch = channel.unary_stream(
        "/rtcplane.conference.v1.ConferenceService/WatchConferenceEvents",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=conference_pb2.WatchConferenceEventsResponse.FromString,
    )
    stream = watch(conference_pb2.WatchConferenceEventsRequest(conference_id=conference_id, since_version=0),
                   metadata=[("authorization", "Bearer " + token)], timeout=30)
    for response in stream:
        event = response.event
        case = event.WhichOneof("payload")
        seen = {"case": case, "id": event.id, "userId": event.user_id}
        if event.HasField("conference_version"):
            seen["version"] = event.conference_version
        if case == "created":
            print("ready", flush=True)
        if case == "stream_published":
            # Typed: the payload's fields by name, not a Struct.
            seen["streamId"] = event.stream_published.stream_id
            seen["streamType"] = event.stream_published.stream_type
        if case == "metadata_updated":
            seen["key"] = event.metadata_updated.key
            seen["value"] = event.metadata_updated.value
        if case == "joined":
            seen["name"] = event.joined.metadata.fields["name"].string_value
        out.append(seen)
        if len(out) >= count:
            stream.cancel()
            break
print(json.dumps(out), flush=True)

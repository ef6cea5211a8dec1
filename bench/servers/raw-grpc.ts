/** The gRPC ceiling: an @grpc/grpc-js server doing the same room read (messages by protobuf-es). */
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  type GetRoomRequest,
  GetRoomRequestSchema,
  type GetRoomResponse,
  GetRoomResponseSchema,
} from "../../gen/rtcplane/rooms/v1/rooms_pb.js";
import { announce, roomMessage, roomReader } from "./room-read.js";

const read = roomReader(process.argv[2] as string);
const definition: grpc.ServiceDefinition = {
  getRoom: {
    path: "/rtcplane.rooms.v1.RoomService/GetRoom",
    requestStream: false,
    responseStream: false,
    requestSerialize: (m: GetRoomRequest) => Buffer.from(toBinary(GetRoomRequestSchema, m)),
    requestDeserialize: (b: Buffer) => fromBinary(GetRoomRequestSchema, b),
    responseSerialize: (m: GetRoomResponse) => Buffer.from(toBinary(GetRoomResponseSchema, m)),
    responseDeserialize: (b: Buffer) => fromBinary(GetRoomResponseSchema, b),
  },
};
const server = new grpc.Server();
server.addService(definition, {
  getRoom(call: grpc.ServerUnaryCall<GetRoomRequest, GetRoomResponse>, done: grpc.sendUnaryData<unknown>) {
    const row = read(call.request.id);
    if (row === undefined) done({ code: grpc.status.NOT_FOUND, details: "no such room" });
    else done(null, { $typeName: "rtcplane.rooms.v1.GetRoomResponse", room: roomMessage(row) });
  },
});
server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  announce({ h2: port });
});

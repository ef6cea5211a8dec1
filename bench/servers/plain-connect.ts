/**
 * The library's ceiling: a plain connect-node server (our generated RoomService, nothing
 * else: no auth, no gateway, no interceptors) doing the same room read, on HTTP/1.1 and h2c.
 */
import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { RoomService } from "../../gen/rtcplane/rooms/v1/rooms_pb.js";
import { announce, roomMessage, roomReader } from "./room-read.js";

const read = roomReader(process.argv[2] as string);
const handler = connectNodeAdapter({
  routes(router) {
    router.service(RoomService, {
      getRoom(req) {
        const row = read(req.id);
        if (row === undefined) throw new ConnectError("no such room", Code.NotFound);
        return { room: roomMessage(row) };
      },
    });
  },
});
process.on("SIGINT", () => process.exit(0));
const h1 = http.createServer(handler);
h1.keepAliveTimeout = 60_000;
const h2 = http2.createServer(handler);
h1.listen(0, "127.0.0.1", () =>
  h2.listen(0, "127.0.0.1", () =>
    announce({ http: (h1.address() as AddressInfo).port, h2: (h2.address() as AddressInfo).port }),
  ),
);

/** The HTTP/1.1 ceiling: a bare node:http handler doing the same room read as JSON. */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { announce, roomJson, roomReader } from "./room-read.js";

const read = roomReader(process.argv[2] as string);
const server = http.createServer((req, res) => {
  const id = req.url?.startsWith("/room/") ? decodeURIComponent(req.url.slice(6)) : "";
  const row = read(id);
  const body = row === undefined ? '{"error":"not found"}' : JSON.stringify(roomJson(row));
  res.writeHead(row === undefined ? 404 : 200, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
  });
  res.end(body);
});
server.keepAliveTimeout = 60_000;
process.on("SIGINT", () => process.exit(0));
server.listen(0, "127.0.0.1", () => announce({ http: (server.address() as AddressInfo).port }));

/**
 * The long-poll ceiling: a bare node:http server holding every GET open until a POST
 * /wake answers them all with the same small JSON array, in one loop.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { announce } from "./room-read.js";

const pending: http.ServerResponse[] = [];
const body = '[{"type":"ConferenceMetadataUpdatedEvent","id":"x","conferenceId":"c","conferenceVersion":1}]';
const server = http.createServer((req, res) => {
  if (req.method === "POST" && req.url === "/wake") {
    for (const r of pending.splice(0)) {
      r.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
      r.end(body);
    }
    res.end("{}");
    return;
  }
  pending.push(res);
});
server.keepAliveTimeout = 60_000;
process.on("SIGINT", () => process.exit(0));
server.listen(0, "127.0.0.1", () => announce({ http: (server.address() as AddressInfo).port }));

/**
 * One Spreed node of a cluster for tests: a SpreedHub on a real HTTP server (`/ws` only)
 * joined to a real NATS bus, with the cluster's shared key so `?t=` tokens work on every
 * node. Run as a script (`node --import tsx test/helpers/spreed-node.ts <bus url> <prefix>`)
 * it prints `{"url": …, "node": …}` and runs until killed — a node a test can kill -9.
 */
import { spawn } from "node:child_process";
import http from "node:http";
import type net from "node:net";
import path from "node:path";
import { ServerKey } from "../../src/auth/server-key.js";
import { createLogger } from "../../src/observability/log.js";
import { connectSpreedBus } from "../../src/spreed/bus.js";
import type { ClusterOptions } from "../../src/spreed/cluster-rooms.js";
import { type HubSettings, SpreedHub } from "../../src/spreed/hub.js";
import { SpreedUsers } from "../../src/spreed/users.js";
import { CLUSTER_SECRET } from "./postgres.js";

export const NODE_SETTINGS: HubSettings = {
  defaultRoomEnabled: true,
  authorizeRoomCreation: false,
  authorizeRoomJoin: false,
  usersEnabled: true,
  maxRoomSessions: 200,
  stunUris: [],
  turnUris: [],
  turnSecret: undefined,
  turnTtlSeconds: 86400,
  maxBufferedBytes: 1024 * 1024,
  docsPerSecond: 50,
  fanoutBytesPerSecond: 1024 * 1024,
  inboundBytesPerSecond: 512 * 1024,
};

export interface SpreedNode {
  readonly url: string;
  readonly hub: SpreedHub;
  readonly users: SpreedUsers;
  readonly nodeId: string;
  close(): Promise<void>;
}

export async function startSpreedNode(
  busUrl: string,
  prefix: string,
  settings: Partial<HubSettings> = {},
  cluster: Partial<ClusterOptions> = {},
): Promise<SpreedNode> {
  const log = createLogger(process.env.TEST_LOG_LEVEL ?? "silent");
  const key = ServerKey.fromClusterSecret(CLUSTER_SECRET);
  const hub = new SpreedHub(key, { ...NODE_SETTINGS, ...settings }, log);
  const bus = await connectSpreedBus(busUrl, log, { prefix });
  await hub.attachBus(bus, cluster);
  const server = http.createServer((_req, res) => res.writeHead(404).end());
  server.on("upgrade", (req, socket, head) => {
    if (req.url?.startsWith("/ws")) hub.handleUpgrade(req, socket, head);
    else socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    hub,
    users: new SpreedUsers(hub, key.derive("spreed.users"), "test"),
    nodeId: bus.nodeId,
    close: async () => {
      await hub.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A node in a child process, for a test that kills it with SIGKILL. */
export async function spawnSpreedNode(
  busUrl: string,
  prefix: string,
): Promise<{ url: string; nodeId: string; pid: number; exited: Promise<void> }> {
  const child = spawn(process.execPath, ["--import", "tsx", import.meta.filename, busUrl, prefix], {
    cwd: path.resolve(import.meta.dirname, "../.."),
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const line = await new Promise<string>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`spreed node did not start: ${out}`)), 20_000);
    child.stdout?.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const nl = out.indexOf("\n");
      if (nl >= 0) {
        clearTimeout(timer);
        resolve(out.slice(0, nl));
      }
    });
    void exited.then(() => reject(new Error(`spreed node exited: ${out}`)));
  });
  const ready = JSON.parse(line) as { url: string; node: string };
  return { url: ready.url, nodeId: ready.node, pid: child.pid as number, exited };
}

if (process.argv[1] === import.meta.filename) {
  const [busUrl, prefix] = process.argv.slice(2);
  if (busUrl === undefined || prefix === undefined) throw new Error("usage: spreed-node.ts <bus url> <prefix>");
  const node = await startSpreedNode(busUrl, prefix);
  process.stdout.write(`${JSON.stringify({ url: node.url, node: node.nodeId })}\n`);
}

/**
 * Janus 1.1.2 (Debian `janus`) as the media bench's baseline: a server with only the videoroom
 * plugin and the HTTP transport, on loopback, and a small client of its HTTP API driving
 * libwebrtc peers the way janus.js does (one session and handle per peer, trickled candidates).
 */
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { tempDir } from "../test/helpers/server.js";
import { decodedFrames, RTCPeerConnection } from "../test/helpers/wrtc.js";

const LIB = "/usr/lib/x86_64-linux-gnu/janus";
const VIDEOROOM = "janus.plugin.videoroom";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every shared object in a Janus module folder but `keep`, for the config's `disable` list. */
function allBut(folder: string, keep?: string): string {
  return fs
    .readdirSync(path.join(LIB, folder))
    .filter((f) => f.endsWith(".so") && f !== keep)
    .join(",");
}

/**
 * Janus skips IFF_LOOPBACK interfaces when it lists local addresses for ICE, whatever
 * ice_enforce_list says, and with none left libnice falls back to every other interface
 * (IPv6 too). Preloaded into Janus only, this getifaddrs() clears the flag so that
 * `ice_enforce_list = "127.0.0.1"` keeps its candidates on loopback. Needs gcc.
 */
const LOOPBACK_SHIM = `#define _GNU_SOURCE
#include <dlfcn.h>
#include <ifaddrs.h>
#include <net/if.h>
int getifaddrs(struct ifaddrs **list) {
  int (*real)(struct ifaddrs **) = (int (*)(struct ifaddrs **))dlsym(RTLD_NEXT, "getifaddrs");
  int rc = real(list);
  for (struct ifaddrs *i = rc == 0 ? *list : 0; i; i = i->ifa_next) i->ifa_flags &= ~IFF_LOOPBACK;
  return rc;
}
`;

async function freeLoopbackPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

/** Starts Janus with a config of its own in a temp dir; stop() ends it and removes the dir. */
export async function startJanus(): Promise<{ url: string; pid: number; stop(): Promise<void> }> {
  const dir = tempDir("janus-");
  const port = await freeLoopbackPort();
  const log = path.join(dir, "janus.log");
  fs.writeFileSync(
    path.join(dir, "janus.jcfg"),
    `general: {
  configs_folder = "${dir}"
  plugins_folder = "${LIB}/plugins"
  transports_folder = "${LIB}/transports"
  events_folder = "${LIB}/events"
  loggers_folder = "${LIB}/loggers"
  interface = "127.0.0.1"
  debug_level = 2
  log_to_stdout = false
  log_to_file = "${log}"
}
media: { rtp_port_range = "20000-40000" }
# Host candidates on 127.0.0.1 only (with LOOPBACK_SHIM; IPv6 is off by default), and no STUN.
nat: { ice_enforce_list = "127.0.0.1" }
plugins: { disable = "${allBut("plugins", "libjanus_videoroom.so")}" }
transports: { disable = "${allBut("transports", "libjanus_http.so")}" }
loggers: { disable = "${allBut("loggers")}" }
events: { broadcast = false }
`,
  );
  fs.writeFileSync(
    path.join(dir, "janus.transport.http.jcfg"),
    `general: { json = "plain", base_path = "/janus", http = true, ip = "127.0.0.1", port = ${port}, https = false }
admin: { admin_http = false, admin_https = false }
`,
  );
  fs.writeFileSync(path.join(dir, "janus.plugin.videoroom.jcfg"), "general: { }\n");

  fs.writeFileSync(path.join(dir, "loopback.c"), LOOPBACK_SHIM);
  const shim = path.join(dir, "loopback.so");
  try {
    execFileSync("gcc", ["-shared", "-fPIC", "-O2", "-o", shim, path.join(dir, "loopback.c"), "-ldl"]);
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(`cannot build Janus's loopback shim (gcc): ${(e as Error).message}`);
  }

  const child = spawn("janus", ["-F", dir, "-C", path.join(dir, "janus.jcfg")], {
    stdio: "ignore",
    env: { ...process.env, LD_PRELOAD: shim },
  });
  const pid = child.pid as number;
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  // A bench that dies must not leave Janus holding its ports.
  const killOnExit = () => child.kill("SIGKILL");
  process.once("exit", killOnExit);
  const stop = async () => {
    process.off("exit", killOnExit);
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(pid, "SIGTERM");
      const timer = setTimeout(() => process.kill(pid, "SIGKILL"), 3000);
      await exited;
      clearTimeout(timer);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };

  const url = `http://127.0.0.1:${port}/janus`;
  for (const deadline = Date.now() + 10_000; ; await sleep(50)) {
    if ((await fetch(`${url}/info`).catch(() => undefined))?.ok) return { url, pid, stop };
    if (child.exitCode !== null || Date.now() > deadline) {
      const output = fs.existsSync(log) ? fs.readFileSync(log, "utf8") : "";
      await stop();
      throw new Error(`Janus did not start:\n${output}`);
    }
  }
}

interface Jsep {
  type: "offer" | "answer";
  sdp: string;
}

/** A Janus API message, as far as this client reads it. */
interface JanusMessage {
  janus: string;
  transaction?: string;
  data?: { id: number };
  error?: { code: number; reason: string };
  plugindata?: { data: Record<string, unknown> };
  jsep?: Jsep;
}

/**
 * One Janus session with one videoroom handle, as each janus.js peer has: requests are POSTs,
 * events come from a long poll (GET ?maxev=10), and a keepalive every 25 s keeps a long call's
 * session past Janus's 60 s idle timeout.
 */
class VideoRoomSession {
  private readonly waiters = new Map<string, (event: JanusMessage) => void>();
  private readonly polling = new AbortController();
  private readonly keepalive = setInterval(
    () => post(this.sessionUrl, { janus: "keepalive" }).catch(() => undefined), // a lost one is retried in 25 s
    25_000,
  );

  private constructor(
    private readonly sessionUrl: string,
    private readonly handleUrl: string,
  ) {
    this.keepalive.unref();
    void this.poll();
  }

  static async open(url: string): Promise<VideoRoomSession> {
    const session = await post(url, { janus: "create" });
    const sessionUrl = `${url}/${session.data?.id}`;
    const handle = await post(sessionUrl, { janus: "attach", plugin: VIDEOROOM });
    return new VideoRoomSession(sessionUrl, `${sessionUrl}/${handle.data?.id}`);
  }

  /** A videoroom request: the plugin's reply, given at once or (async requests) as an event. */
  async request(
    body: Record<string, unknown>,
    jsep?: Jsep,
    limitMs = 10_000,
  ): Promise<{ data: Record<string, unknown>; jsep?: Jsep }> {
    const transaction = crypto.randomUUID();
    let timer: NodeJS.Timeout | undefined;
    // Listening before the POST: the event may come back on the long poll before the ack does.
    const event = new Promise<JanusMessage | undefined>((resolve) => {
      this.waiters.set(transaction, resolve);
      timer = setTimeout(() => resolve(undefined), limitMs);
    });
    try {
      const reply = await post(this.handleUrl, { janus: "message", transaction, body, jsep });
      const message = reply.janus === "ack" ? await event : reply;
      if (message === undefined) throw new Error(`videoroom ${body.request}: no reply in ${limitMs} ms`);
      const data = message.plugindata?.data ?? {};
      if (typeof data.error === "string") throw new Error(`videoroom ${body.request}: ${data.error}`);
      return { data, jsep: message.jsep };
    } finally {
      clearTimeout(timer);
      this.waiters.delete(transaction);
    }
  }

  /** Sends `pc`'s UDP candidates on 127.0.0.1 (the only ones Janus may use) as they come, then "completed". */
  trickleLoopback(pc: RTCPeerConnection): void {
    pc.onicecandidate = ({ candidate }) => {
      if (candidate !== null && !/ udp .* 127\.0\.0\.1 \d+ typ host/i.test(candidate.candidate)) return;
      const body = candidate === null ? { completed: true } : candidate.toJSON();
      // One lost after close() is moot; one lost before shows as ICE not connecting.
      post(this.handleUrl, { janus: "trickle", candidate: body }).catch(() => undefined);
    };
  }

  async close(): Promise<void> {
    clearInterval(this.keepalive);
    this.polling.abort();
    await post(this.sessionUrl, { janus: "destroy" }).catch(() => undefined); // Janus may be gone already
  }

  private async poll(): Promise<void> {
    try {
      while (!this.polling.signal.aborted) {
        const response = await fetch(`${this.sessionUrl}?maxev=10`, { signal: this.polling.signal });
        const events = (await response.json()) as JanusMessage[] | JanusMessage; // a keepalive after 30 s idle
        for (const event of Array.isArray(events) ? events : [events]) {
          if (event.transaction !== undefined) this.waiters.get(event.transaction)?.(event);
        }
      }
    } catch {
      // Aborted by close(), or Janus stopped: a pending request times out.
    }
  }
}

async function post(target: string, body: Record<string, unknown>): Promise<JanusMessage> {
  const response = await fetch(target, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ transaction: crypto.randomUUID(), ...body }),
  });
  const message = (await response.json()) as JanusMessage;
  if (message.janus === "error") throw new Error(`Janus ${body.janus}: ${message.error?.reason}`);
  return message;
}

/**
 * A one-publisher VP8 room. fir_freq 0: no periodic key frames, as rtcplane sends none either;
 * a viewer gets its first key frame the same way on both, from the PLI the server sends the
 * publisher when the viewer's PeerConnection comes up (Janus: "New subscriber available") or
 * relays from the viewer. bitrate 0: no REMB cap, the publisher's own estimate rules.
 */
export async function janusCreateRoom(url: string, room: number): Promise<void> {
  const session = await VideoRoomSession.open(url);
  try {
    await session.request({
      request: "create",
      room,
      publishers: 1,
      videocodec: "vp8",
      bitrate: 0,
      fir_freq: 0,
      notify_joining: false,
    });
  } finally {
    await session.close();
  }
}

function iceConnected(pc: RTCPeerConnection, limitMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`ICE still ${pc.iceConnectionState}`)), limitMs);
    const check = () => {
      if (pc.iceConnectionState !== "connected" && pc.iceConnectionState !== "completed") return;
      clearTimeout(timer);
      resolve();
    };
    pc.oniceconnectionstatechange = check;
    check();
  });
}

/** Publishes `track` (sendonly video) into `room`; answers once ICE is connected. */
export async function janusPublish(
  url: string,
  room: number,
  track: MediaStreamTrack,
): Promise<{ pc: RTCPeerConnection; feedId: number; close(): Promise<void> }> {
  const session = await VideoRoomSession.open(url);
  const pc = new RTCPeerConnection();
  pc.addTransceiver(track, { direction: "sendonly" });
  session.trickleLoopback(pc);
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  const joined = await session.request(
    { request: "joinandconfigure", room, ptype: "publisher" },
    { type: "offer", sdp: offer.sdp ?? "" },
  );
  if (joined.jsep?.type !== "answer") throw new Error("Janus did not answer the publisher");
  await pc.setRemoteDescription(joined.jsep);
  await iceConnected(pc);
  return {
    pc,
    feedId: joined.data.id as number,
    async close() {
      pc.close();
      await session.close();
    },
  };
}

/**
 * Subscribes to `feedId` with its own session and handle, timed as viewUntilFirstFrame
 * (test/helpers/media-peers.ts) times rtcplane: from the subscribe request to the SDP exchange
 * being the server's to finish (Janus offers here, so: its offer arriving) and to the first
 * decoded frame (Infinity past limitMs). `frames` keeps growing with the luma of each frame decoded.
 */
export async function janusViewUntilFirstFrame(
  url: string,
  room: number,
  feedId: number,
  limitMs = 10_000,
): Promise<{
  pc: RTCPeerConnection;
  answerMs: number;
  firstFrameMs: number;
  frames: number[];
  close(): Promise<void>;
}> {
  const session = await VideoRoomSession.open(url);
  const pc = new RTCPeerConnection();
  const frames = decodedFrames(pc);
  session.trickleLoopback(pc);
  const started = Date.now();
  const attached = await session.request({ request: "join", ptype: "subscriber", room, streams: [{ feed: feedId }] });
  const answerMs = Date.now() - started;
  if (attached.jsep?.type !== "offer") throw new Error("Janus did not offer to the viewer");
  await pc.setRemoteDescription(attached.jsep);
  const answer = await pc.createAnswer();
  await pc.setLocalDescription(answer);
  await session.request({ request: "start" }, { type: "answer", sdp: answer.sdp ?? "" });
  while (frames.length === 0 && Date.now() - started < limitMs) await sleep(5);
  return {
    pc,
    answerMs,
    firstFrameMs: frames.length > 0 ? Date.now() - started : Number.POSITIVE_INFINITY,
    frames,
    async close() {
      pc.close();
      await session.close();
    },
  };
}

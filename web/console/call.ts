/**
 * The test call: the browser's camera published into a conference and viewed back through
 * the SFU, over the conference REST API exactly as a customer's page would do it — a room
 * ticket login (OAuth2 `password` grant with the room's token) or the app's client
 * credentials, register an endpoint, join, publishStream, viewStream, keep-alives. The call
 * lives on while the user visits other pages (the live conference list shows it) until Hang up.
 */
import type { Room } from "../../gen/rtcplane/rooms/v1/rooms_pb.js";
import { appPicker, listApps, tenantOnly } from "./apps.js";
import { fields, fill, h, onSubmit, showError } from "./dom.js";
import { type PageContext, route } from "./main.js";
import { RtcApi } from "./rtc-api.js";
import { appKeys, currentAppId, oauthToken, roomHeaders, rooms, type Session } from "./session.js";

interface ActiveCall {
  readonly appId: string;
  readonly conferenceId: string;
  readonly endpointId: string;
  readonly api: RtcApi;
  readonly local: MediaStream;
  readonly remote: MediaStream;
  readonly publisher: RTCPeerConnection;
  readonly viewer: RTCPeerConnection;
  readonly streamId: string;
  readonly viewerId: string;
  readonly keepAlive: ReturnType<typeof setInterval>;
}

let active: ActiveCall | undefined;
const log: string[] = [];

function note(line: string): void {
  log.push(`${new Date().toISOString().slice(11, 23)} ${line}`);
  if (log.length > 200) log.shift();
  const el = document.getElementById("call-log");
  if (el !== null) fill(el, ...log.map((l) => h("li", {}, l)));
}

async function start(session: Session & { kind: "tenant" }, appId: string, roomId: string): Promise<void> {
  log.length = 0;
  const keys = await appKeys(session, appId);
  let token: string;
  let conferenceId: string;
  let service = false;
  if (roomId !== "") {
    // A customer's backend fetches the room (a fresh token, the "ticket") and hands it to its page.
    const room = (await rooms.getRoom({ id: roomId }, { headers: roomHeaders(keys) })).room;
    if (room?.conferenceType !== "SFU") throw new Error("a MESH room is peer to peer: choose an SFU room");
    const t = await oauthToken({
      grant_type: "password",
      username: room.token,
      client_id: keys.apikey,
      client_secret: "",
    });
    token = t.access_token;
    conferenceId = t.conference_id ?? roomId;
    note(`logged in with the room ticket: USER ${t.userId ?? ""} in conference ${conferenceId}`);
  } else {
    const t = await oauthToken({
      grant_type: "client_credentials",
      client_id: keys.apikey,
      client_secret: keys.secret,
    });
    token = t.access_token;
    service = true;
    conferenceId = `console-test-${crypto.randomUUID().slice(0, 8)}`;
    note("client credentials: SERVICE token");
  }
  const api = new RtcApi(token);
  if (service) {
    await api.post("conferences/create", { conferenceId });
    note(`created conference ${conferenceId}`);
  }
  const iceServers = ((await api.get("iceServers")).iceServers ?? []) as RTCIceServer[];
  const endpointId = String(
    (await api.post("users/endpoints/register", { keepAliveSeconds: 30, ...(service ? { userId: "console" } : {}) }))
      .id,
  );
  note(`registered endpoint ${endpointId}`);
  await api.post("conferences/join", {
    conferenceId,
    userEndpointId: endpointId,
    metadata: { name: "console test call" },
  });
  note("joined");
  const local = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 360 }, audio: true });
  const publisher = new RTCPeerConnection({ iceServers });
  publisher.onconnectionstatechange = () => note(`publisher: ${publisher.connectionState}`);
  for (const track of local.getTracks()) publisher.addTransceiver(track, { direction: "sendonly", streams: [local] });
  await publisher.setLocalDescription(await publisher.createOffer());
  const published = await api.post("conferences/publishStream", {
    conferenceId,
    userEndpointId: endpointId,
    conferenceStreamType: "MIC_AND_CAM",
    sdpOffer: publisher.localDescription?.sdp ?? "",
  });
  await publisher.setRemoteDescription({ type: "answer", sdp: String(published.sdpAnswer) });
  const streamId = String((published.streamId as { id: string }).id);
  note(`published stream ${streamId}`);
  const viewer = new RTCPeerConnection({ iceServers });
  viewer.onconnectionstatechange = () => note(`viewer: ${viewer.connectionState}`);
  const remote = new MediaStream();
  viewer.ontrack = (e) => remote.addTrack(e.track);
  viewer.addTransceiver("video", { direction: "recvonly" });
  viewer.addTransceiver("audio", { direction: "recvonly" });
  await viewer.setLocalDescription(await viewer.createOffer());
  const viewed = await api.post("conferences/viewStream", {
    conferenceId,
    userEndpointId: endpointId,
    streamId: { id: streamId },
    sdpOffer: viewer.localDescription?.sdp ?? "",
  });
  await viewer.setRemoteDescription({ type: "answer", sdp: String(viewed.sdpAnswer) });
  note(`viewing it back as ${String(viewed.viewerId)}`);
  const keepAlive = setInterval(() => {
    api.post("users/endpoints/keepalive", { userEndpointId: endpointId }).catch((e: unknown) => note(String(e)));
  }, 10_000);
  active = {
    appId,
    conferenceId,
    endpointId,
    api,
    local,
    remote,
    publisher,
    viewer,
    streamId,
    viewerId: String(viewed.viewerId),
    keepAlive,
  };
}

/** Ends the call as a page should: stop viewing, unpublish, unregister (which leaves), then close. */
async function hangUp(): Promise<void> {
  const c = active;
  if (c === undefined) return;
  active = undefined;
  clearInterval(c.keepAlive);
  const ref = { conferenceId: c.conferenceId, userEndpointId: c.endpointId };
  await c.api
    .post("conferences/stopViewStream", { ...ref, streamId: { id: c.streamId }, viewerId: c.viewerId })
    .then(() => c.api.post("conferences/unpublishStream", { ...ref, streamId: { id: c.streamId } }))
    .then(() => c.api.post("users/endpoints/unregister", { userEndpointId: c.endpointId, reason: "hung up" }))
    .catch((e: unknown) => note(String(e)));
  for (const t of c.local.getTracks()) t.stop();
  c.publisher.close();
  c.viewer.close();
  note("hung up");
}

/** Frames the viewer decoded (what came back through the SFU). */
async function framesDecoded(pc: RTCPeerConnection): Promise<number> {
  let n = 0;
  (await pc.getStats()).forEach((s: { type: string; kind?: string; framesDecoded?: number }) => {
    if (s.type === "inbound-rtp" && s.kind === "video") n = s.framesDecoded ?? 0;
  });
  return n;
}

function video(stream: MediaStream, id: string): HTMLVideoElement {
  const v = h("video", { id, autoplay: true, playsinline: true });
  v.muted = true;
  v.srcObject = stream;
  return v;
}

export async function renderCall({ root, session: s, signal }: PageContext): Promise<void> {
  const session = tenantOnly(s);
  const all = await listApps(session);
  const picker = appPicker(all, route);
  const appId = currentAppId();
  if (picker === undefined || appId === undefined) {
    fill(root, h("h1", {}, "Test call"), h("p", {}, "Create an app first (", h("a", { href: "#/apps" }, "Apps"), ")."));
    return;
  }
  const wantedRoom = new URLSearchParams(location.hash.split("?")[1] ?? "").get("room") ?? "";
  const keys = await appKeys(session, appId);
  const sfuRooms: Room[] = (
    await rooms.listRooms({ numberOfRecords: 100 }, { headers: roomHeaders(keys) })
  ).data.filter((r) => r.conferenceType === "SFU");
  const body = h("div");
  let timer: ReturnType<typeof setInterval> | undefined;
  signal.addEventListener("abort", () => clearInterval(timer));
  const draw = () => {
    clearInterval(timer);
    const c = active;
    if (c === undefined) {
      fill(
        body,
        h(
          "form",
          {
            class: "inline",
            id: "start-call",
            onsubmit: onSubmit(async (form) => {
              try {
                await start(session, appId, fields(form).room ?? "");
              } catch (e) {
                note(`failed: ${e instanceof Error ? e.message : String(e)}`);
                showError(e);
              }
              draw();
            }),
          },
          picker,
          h(
            "label",
            {},
            "Where",
            h(
              "select",
              { name: "room" },
              h("option", { value: "" }, "a new conference (the app's client credentials)"),
              ...sfuRooms.map((r) =>
                h(
                  "option",
                  { value: r.id, selected: r.id === wantedRoom },
                  `room ${r.name ?? ""} ${r.id} (ticket login)`,
                ),
              ),
            ),
          ),
          h("button", { class: "primary", type: "submit" }, "Start test call"),
        ),
        h("ol", { class: "log", id: "call-log" }, ...log.map((l) => h("li", {}, l))),
      );
      return;
    }
    const frames = h("span", { id: "call-frames" }, "0");
    fill(
      body,
      h(
        "p",
        {},
        "Conference ",
        h("code", { id: "call-conference" }, c.conferenceId),
        " · endpoint ",
        h("code", {}, c.endpointId),
      ),
      h(
        "div",
        { class: "videos" },
        h("figure", {}, video(c.local, "local-video"), h("figcaption", {}, "your camera")),
        h(
          "figure",
          {},
          video(c.remote, "remote-video"),
          h("figcaption", {}, "viewed back through the SFU · frames decoded: ", frames),
        ),
      ),
      h("p", {}, h("button", { type: "button", class: "danger", onclick: () => hangUp().then(draw) }, "Hang up")),
      h("ol", { class: "log", id: "call-log" }, ...log.map((l) => h("li", {}, l))),
    );
    timer = setInterval(() => {
      framesDecoded(c.viewer)
        .then((n) => {
          frames.textContent = String(n);
        })
        .catch(() => undefined);
    }, 500);
  };
  fill(root, h("h1", {}, "Test call"), h("section", { class: "card" }, body));
  draw();
}

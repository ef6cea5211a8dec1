/** The current app's realtime rooms: list (paged), create, delete, and start a test call in one. */
import type { Room } from "../../gen/rtcplane/rooms/v1/rooms_pb.js";
import { appPicker, listApps, tenantOnly } from "./apps.js";
import { fields, fill, h, onSubmit, table, when } from "./dom.js";
import type { PageContext } from "./main.js";
import { route } from "./main.js";
import { appKeys, currentAppId, roomHeaders, rooms } from "./session.js";

const PAGE_SIZE = 50;

export async function renderRooms({ root, session: s }: PageContext): Promise<void> {
  const session = tenantOnly(s);
  const all = await listApps(session);
  const picker = appPicker(all, route);
  const appId = currentAppId();
  if (picker === undefined || appId === undefined) {
    fill(root, h("h1", {}, "Rooms"), h("p", {}, "Create an app first (", h("a", { href: "#/apps" }, "Apps"), ")."));
    return;
  }
  const headers = roomHeaders(await appKeys(session, appId));
  const list = h("div", { id: "room-list" });
  const more = h("div");

  const row = (r: Room) => [
    h("code", { class: "room-id" }, r.id),
    r.name ?? "",
    r.conferenceType,
    r.maxParticipants,
    when(r.creationTime),
    when(r.modificationTime),
    h(
      "div",
      { class: "actions" },
      h(
        "button",
        {
          type: "button",
          onclick: () => {
            location.hash = `#/call?room=${encodeURIComponent(r.id)}`;
          },
        },
        "Test call",
      ),
      h(
        "button",
        {
          type: "button",
          class: "danger",
          onclick: async () => {
            if (!confirm(`Delete room ${r.id}? Its conference ends and its tokens stop working.`)) return;
            await rooms.deleteRoom({ id: r.id }, { headers });
            await load();
          },
        },
        "Delete",
      ),
    ),
  ];

  const load = async () => {
    const shown: Room[] = [];
    const page = async (token: string | undefined) => {
      const r = await rooms.listRooms({ numberOfRecords: PAGE_SIZE, ...(token ? { token } : {}) }, { headers });
      shown.push(...r.data);
      fill(
        list,
        table(["id", "name", "type", "max participants", "created", "last used", ""], shown.map(row), "No rooms yet."),
      );
      fill(more, r.token ? h("button", { type: "button", onclick: () => page(r.token) }, "More") : null);
    };
    await page(undefined);
  };

  fill(
    root,
    h("h1", {}, "Rooms"),
    h(
      "section",
      { class: "card" },
      h("div", { class: "inline" }, picker),
      h("h2", {}, "New room"),
      h(
        "form",
        {
          class: "inline",
          id: "create-room",
          onsubmit: onSubmit(async (form) => {
            const f = fields(form);
            await rooms.createRoom(
              { ...(f.name ? { name: f.name } : {}), conferenceType: f.conferenceType ?? "SFU" },
              { headers },
            );
            form.reset();
            await load();
          }),
        },
        h("label", {}, "Name", h("input", { name: "name", maxlength: 512 })),
        h(
          "label",
          {},
          "Type",
          h(
            "select",
            { name: "conferenceType" },
            h("option", { value: "SFU" }, "SFU (media through the server)"),
            h("option", { value: "MESH" }, "MESH (peer to peer)"),
          ),
        ),
        h("button", { class: "primary", type: "submit" }, "Create room"),
      ),
    ),
    h("section", { class: "card" }, list, more),
  );
  await load();
}

/** A tenant's apps: list, create, show the apikey and secret key, renew the secret, choose the current app. */
import type { App } from "../../gen/rtcplane/apps/v1/apps_pb.js";
import { badge, fields, fill, h, onSubmit, table, when } from "./dom.js";
import type { PageContext } from "./main.js";
import { appKeys, apps, currentAppId, forgetAppKeys, type Session, setCurrentApp, tenantHeaders } from "./session.js";

const PERMISSIONS = ["TURN", "SFU", "USER_LIST", "PEER_AUTHENTICATION", "RECORDING"];

export function tenantOnly(session: Session): Session & { kind: "tenant" } {
  if (session.kind !== "tenant") throw new Error("sign in as a tenant for this page");
  return session;
}

/** The tenant's apps (whole), oldest first. */
export async function listApps(session: Session & { kind: "tenant" }): Promise<App[]> {
  const r = await apps.listApps({ tenantId: session.tenantId, expandApps: true }, { headers: tenantHeaders(session) });
  return r.apps;
}

/** A select of the tenant's apps bound to the current app; undefined when there are none. */
export function appPicker(list: App[], onChange: () => void): HTMLElement | undefined {
  if (list.length === 0) return undefined;
  let current = currentAppId();
  if (current === undefined || !list.some((a) => a.id === current)) {
    current = (list[list.length - 1] as App).id;
    setCurrentApp(current);
  }
  return h(
    "label",
    {},
    "App",
    h(
      "select",
      {
        name: "app",
        onchange: (e: Event) => {
          setCurrentApp((e.target as HTMLSelectElement).value);
          onChange();
        },
      },
      ...list.map((a) =>
        h("option", { value: a.id, selected: a.id === current }, `${a.description || "(no description)"} — ${a.id}`),
      ),
    ),
  );
}

export async function renderApps({ root, session: s }: PageContext): Promise<void> {
  const session = tenantOnly(s);
  const headers = tenantHeaders(session);
  const list = h("div", { id: "app-list" });

  const secretCell = (a: App) => {
    const cell = h("span", { class: "app-secret" });
    const show = async (fresh: boolean) => {
      const keys = await appKeys(session, a.id, fresh);
      fill(
        cell,
        h("code", {}, keys.secret),
        " ",
        h("button", { type: "button", onclick: () => fill(cell, hidden()) }, "Hide"),
      );
    };
    const hidden = () => h("button", { type: "button", onclick: () => show(false) }, "Show secret");
    fill(cell, hidden());
    return { cell, show };
  };

  const row = (a: App) => {
    const secret = secretCell(a);
    return [
      a.description || h("span", { class: "muted" }, "(no description)"),
      h("code", {}, a.id),
      h("code", { class: "app-apikey" }, a.apikey),
      secret.cell,
      a.permissions?.values.join(", ") ?? "",
      badge(a.status ?? ""),
      when(a.createdAt === undefined ? undefined : Number(a.createdAt.seconds) * 1000),
      h(
        "div",
        { class: "actions" },
        h(
          "button",
          {
            type: "button",
            class: "danger",
            onclick: async () => {
              if (!confirm("Renew the secret key? The old one, and every token issued with it, stops working at once."))
                return;
              await apps.renewAppSecretKey({ tenantId: session.tenantId, appId: a.id }, { headers });
              forgetAppKeys(a.id);
              await secret.show(true);
            },
          },
          "Renew secret",
        ),
        a.status === "active"
          ? h("button", { type: "button", onclick: () => setStatus(a, "suspended") }, "Suspend")
          : h("button", { type: "button", onclick: () => setStatus(a, "active") }, "Activate"),
      ),
    ];
  };

  const setStatus = async (a: App, status: string) => {
    await apps.updateApp({ tenantId: session.tenantId, appId: a.id, status }, { headers });
    await load();
  };

  const load = async () => {
    const all = await listApps(session);
    fill(
      list,
      appPicker(all, () => undefined) ?? null,
      table(
        ["description", "id", "apikey", "secret key", "permissions", "status", "created", ""],
        all.map(row),
        "No apps yet.",
      ),
    );
  };

  fill(
    root,
    h("h1", {}, "Apps"),
    h(
      "section",
      { class: "card" },
      h("h2", {}, "New app"),
      h(
        "form",
        {
          class: "inline",
          id: "create-app",
          onsubmit: onSubmit(async (form) => {
            const f = fields(form);
            const permissions = PERMISSIONS.filter((p) => f[`perm-${p}`] === "on");
            const r = await apps.createApp(
              { tenantId: session.tenantId, description: f.description ?? "", permissions: { values: permissions } },
              { headers },
            );
            if (r.app !== undefined) setCurrentApp(r.app.id);
            form.reset();
            await load();
          }),
        },
        h("label", {}, "Description", h("input", { name: "description", maxlength: 128 })),
        ...PERMISSIONS.map((p) =>
          h(
            "label",
            { class: "check" },
            h("input", { type: "checkbox", name: `perm-${p}`, checked: p !== "RECORDING" }),
            p,
          ),
        ),
        h("button", { class: "primary", type: "submit" }, "Create app"),
      ),
    ),
    h("section", { class: "card" }, list),
  );
  await load();
}

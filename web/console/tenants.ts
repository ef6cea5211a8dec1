/** The operator's tenants: list (paged), create (the auth token is shown once), suspend/activate, rotate. */
import type { Tenant } from "../../gen/rtcplane/admin/v1/admin_pb.js";
import { badge, fields, fill, h, onSubmit, table, when } from "./dom.js";
import { type PageContext, signIn } from "./main.js";
import { admin, adminHeaders } from "./session.js";

const PAGE_SIZE = 50;

export async function renderTenants({ root, session }: PageContext): Promise<void> {
  const headers = adminHeaders(session);
  const created = h("div", { id: "tenant-created" });
  const list = h("div", { id: "tenant-list" });
  const more = h("div");
  let showDeleted = false;

  /** Shows a tenant's new auth token once, with a way to continue as that tenant. */
  const showToken = (tenantId: string, authToken: string, what: string) =>
    fill(
      created,
      h(
        "div",
        { class: "secret" },
        h("p", {}, `${what} Its auth token is shown only now; give it to the tenant.`),
        h("p", {}, "Tenant ID ", h("code", { class: "tenant-id" }, tenantId)),
        h("p", {}, "Auth token ", h("code", { class: "tenant-token" }, authToken)),
        h(
          "button",
          { type: "button", onclick: () => signIn({ kind: "tenant", token: authToken, tenantId }, "apps") },
          "Sign in as this tenant",
        ),
      ),
    );

  const row = (t: Tenant) => [
    t.name,
    h("code", {}, t.tenantId),
    badge(t.status),
    when(t.createTime === undefined ? undefined : Number(t.createTime.seconds) * 1000),
    h(
      "div",
      { class: "actions" },
      t.status === "active"
        ? h("button", { type: "button", class: "danger", onclick: () => setStatus(t, "suspended") }, "Suspend")
        : t.status === "suspended"
          ? h("button", { type: "button", onclick: () => setStatus(t, "active") }, "Activate")
          : null,
      t.status !== "deleted"
        ? h(
            "button",
            {
              type: "button",
              onclick: async () => {
                if (!confirm(`Rotate the auth token of ${t.name}? The old one stops working at once.`)) return;
                const r = await admin.rotateTenantToken({ tenantId: t.tenantId }, { headers });
                showToken(r.tenantId, r.authToken, `Tenant ${t.name} has a new token.`);
              },
            },
            "Rotate token",
          )
        : null,
    ),
  ];

  const setStatus = async (t: Tenant, status: string) => {
    await admin.updateTenant({ tenantId: t.tenantId, status }, { headers });
    await load();
  };

  const load = async () => {
    const rows: Tenant[] = [];
    const page = async (pageToken: string) => {
      const r = await admin.listTenants({ pageSize: PAGE_SIZE, pageToken, showDeleted }, { headers });
      rows.push(...r.tenants);
      fill(list, table(["name", "id", "status", "created", ""], rows.map(row), "No tenants yet."));
      fill(
        more,
        r.nextPageToken
          ? h("button", { type: "button", onclick: () => page(r.nextPageToken) }, `More (showing ${rows.length})`)
          : null,
      );
    };
    await page("");
  };

  fill(
    root,
    h("h1", {}, "Tenants"),
    h(
      "section",
      { class: "card" },
      h("h2", {}, "New tenant"),
      h(
        "form",
        {
          class: "inline",
          id: "create-tenant",
          onsubmit: onSubmit(async (form) => {
            const r = await admin.createTenant({ name: fields(form).name ?? "" }, { headers });
            form.reset();
            showToken(r.tenantId, r.authToken, `Tenant ${r.tenant?.name ?? ""} was created.`);
            await load();
          }),
        },
        h("label", {}, "Name", h("input", { name: "name", required: true, maxlength: 128 })),
        h("button", { class: "primary", type: "submit" }, "Create tenant"),
      ),
      created,
    ),
    h(
      "section",
      { class: "card" },
      h(
        "label",
        { class: "check" },
        h("input", {
          type: "checkbox",
          onchange: async (e: Event) => {
            showDeleted = (e.target as HTMLInputElement).checked;
            await load();
          },
        }),
        " show deleted",
      ),
      list,
      more,
    ),
  );
  await load();
}

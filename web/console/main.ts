/**
 * The console's shell: sign-in, the navigation and a hash router (`#/tenants`, `#/apps`, …).
 * Each page renders into <main> and gets an AbortSignal that fires when the user leaves it,
 * which ends its polls and event streams. The test call outlives its page (see call.ts).
 */
import "./console.css";
import { ConnectError } from "@connectrpc/connect";
import { renderApps } from "./apps.js";
import { renderCall } from "./call.js";
import { renderConferences } from "./conferences.js";
import { fields, fill, h, onSubmit, showError } from "./dom.js";
import { renderRooms } from "./rooms.js";
import { admin, apps, loadSession, type Session, saveSession, tenantHeaders } from "./session.js";
import { renderTenants } from "./tenants.js";

export interface PageContext {
  readonly root: HTMLElement;
  readonly session: Session;
  readonly signal: AbortSignal;
}

type Page = (ctx: PageContext) => Promise<void> | void;

const OPERATOR_PAGES: Record<string, [string, Page]> = { tenants: ["Tenants", renderTenants] };
const TENANT_PAGES: Record<string, [string, Page]> = {
  apps: ["Apps", renderApps],
  rooms: ["Rooms", renderRooms],
  conferences: ["Live conferences", renderConferences],
  call: ["Test call", renderCall],
};

let leaving: AbortController | undefined;

function mainEl(): HTMLElement {
  return document.getElementById("main") as HTMLElement;
}

/** Renders the page the hash names (or the signed-in user's first page). */
export function route(): void {
  leaving?.abort();
  leaving = new AbortController();
  const session = loadSession();
  const nav = document.getElementById("nav") as HTMLElement;
  const who = document.getElementById("who") as HTMLElement;
  if (session === undefined) {
    fill(nav);
    fill(who);
    renderSignIn(mainEl());
    return;
  }
  const pages = session.kind === "operator" ? OPERATOR_PAGES : TENANT_PAGES;
  const names = Object.keys(pages);
  const wanted = location.hash.replace(/^#\/?/, "").split("?")[0] ?? "";
  const name = names.includes(wanted) ? wanted : (names[0] as string);
  fill(nav, ...names.map((n) => h("a", { href: `#/${n}`, class: n === name ? "active" : "" }, pages[n]?.[0] ?? n)));
  fill(
    who,
    session.kind === "operator" ? "operator" : h("span", {}, "tenant ", h("code", {}, session.tenantId)),
    h("button", { type: "button", onclick: () => signOut() }, "Sign out"),
  );
  const [title, render] = pages[name] as [string, Page];
  document.title = `${title} · rtcplane console`;
  const root = mainEl();
  fill(root);
  root.dataset.page = name;
  Promise.resolve(render({ root, session, signal: leaving.signal })).catch(showError);
}

export function signIn(session: Session, page: string): void {
  saveSession(session);
  if (location.hash === `#/${page}`) route();
  else location.hash = `#/${page}`;
}

function signOut(): void {
  saveSession(undefined);
  location.hash = "";
  route();
}

function renderSignIn(root: HTMLElement): void {
  document.title = "Sign in · rtcplane console";
  root.dataset.page = "signin";
  const error = h("p", { class: "muted", id: "signin-error" });
  fill(
    root,
    h(
      "section",
      { class: "card signin" },
      h("h1", {}, "Sign in"),
      h(
        "form",
        {
          id: "signin",
          onsubmit: onSubmit(async (form) => {
            const f = fields(form);
            const token = f.token ?? "";
            const tenantId = f.tenantId ?? "";
            try {
              if (tenantId === "") {
                await admin.listTenants({ pageSize: 1 }, { headers: { authorization: `Bearer ${token}` } });
                signIn({ kind: "operator", token }, "tenants");
              } else {
                const session: Session = { kind: "tenant", token, tenantId };
                await apps.listApps({ tenantId }, { headers: tenantHeaders(session) });
                signIn(session, "apps");
              }
            } catch (e) {
              fill(error, `Not signed in: ${ConnectError.from(e).rawMessage}`);
            }
          }),
        },
        h(
          "label",
          {},
          "Token (the operator's ADMIN_TOKEN, or a tenant's auth token)",
          h("input", { name: "token", type: "password", required: true, autocomplete: "off" }),
        ),
        h(
          "label",
          {},
          "Tenant ID (empty for the operator)",
          h("input", { name: "tenantId", autocomplete: "off", pattern: "[A-Za-z0-9-]*" }),
        ),
        h("button", { class: "primary", type: "submit" }, "Sign in"),
        error,
        h("p", { class: "muted" }, "The token stays in this tab's session storage and goes only to this server."),
      ),
    ),
  );
}

window.addEventListener("hashchange", route);
route();

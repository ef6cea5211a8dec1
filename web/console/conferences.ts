/**
 * The current app's running conferences with their participants and streams, kept live: the
 * list is polled (ListConferences, every POLL_MS: there is no app-wide event stream), and the
 * newest MAX_WATCHED conferences are followed with the server stream WatchConferenceEvents
 * (Connect over fetch), each event refetching that conference at once. Streams are few
 * because a browser keeps at most six HTTP/1.1 connections to one origin.
 */
import { ConnectError } from "@connectrpc/connect";
import type { Conference } from "../../gen/rtcplane/conference/v1/conference_pb.js";
import { appPicker, listApps, tenantOnly } from "./apps.js";
import { badge, fill, h, table } from "./dom.js";
import { type PageContext, route } from "./main.js";
import { conferences, currentAppId, serviceToken } from "./session.js";

const POLL_MS = 5000;
const MAX_WATCHED = 3;
const MAX_SHOWN = 50;

interface Followed {
  conference: Conference | undefined;
  version: bigint;
  watch: AbortController | undefined;
  events: number;
  refreshing: boolean;
  again: boolean;
}

export async function renderConferences({ root, session: s, signal }: PageContext): Promise<void> {
  const session = tenantOnly(s);
  const all = await listApps(session);
  const picker = appPicker(all, route);
  const appId = currentAppId();
  if (picker === undefined || appId === undefined) {
    fill(
      root,
      h("h1", {}, "Live conferences"),
      h("p", {}, "Create an app first (", h("a", { href: "#/apps" }, "Apps"), ")."),
    );
    return;
  }
  const headers = async () => ({ authorization: `Bearer ${await serviceToken(session, appId)}` });
  const followed = new Map<string, Followed>();
  let order: string[] = [];
  const list = h("div", { id: "conference-list" });
  const status = h("span", { class: "muted", id: "conference-status" });

  const draw = () => {
    const cards = order.slice(0, MAX_SHOWN).map((id) => {
      const f = followed.get(id);
      const c = f?.conference;
      if (f === undefined || c === undefined) return null;
      const participants = c.participants.map((p) => [
        h("code", { class: "participant" }, p.id),
        p.userId,
        badge(p.state),
        p.streams.map((st) => h("div", {}, h("code", { class: "stream" }, st.id?.id ?? ""), ` ${st.type}`)),
      ]);
      return h(
        "section",
        { class: "card conference", "data-conference": c.id },
        h("h2", {}, h("code", {}, c.id), " ", badge(c.mode), " ", f.watch ? badge("live") : null),
        h(
          "p",
          { class: "muted" },
          `version ${c.version} · ${c.participants.length} participant(s) · created by ${c.creator || "?"}`,
          f.watch ? ` · ${f.events} event(s) received` : "",
        ),
        table(["endpoint", "user", "state", "streams"], participants, "Nobody has joined."),
      );
    });
    fill(list, cards.some((c) => c !== null) ? cards : h("p", { class: "muted" }, "No running conferences."));
  };

  const forget = (id: string) => {
    followed.get(id)?.watch?.abort();
    followed.delete(id);
    order = order.filter((o) => o !== id);
  };

  /** Refetches one conference; events arriving meanwhile cause one more fetch after it. */
  const refresh = async (id: string) => {
    const f = followed.get(id);
    if (f === undefined) return;
    if (f.refreshing) {
      f.again = true;
      return;
    }
    f.refreshing = true;
    try {
      do {
        f.again = false;
        const r = await conferences.getConference({ id }, { headers: await headers(), signal });
        f.conference = r.conference;
        f.version = r.conference?.version ?? f.version;
        draw();
      } while (f.again && !signal.aborted);
    } catch (e) {
      if (!signal.aborted) {
        // Ended (412) or gone (404) since it was listed.
        forget(id);
        draw();
        if (!(e instanceof ConnectError)) throw e;
      }
    } finally {
      f.refreshing = false;
    }
  };

  /** Follows a conference's events from its current version until the page is left. */
  const watch = (id: string) => {
    const f = followed.get(id);
    if (f === undefined || f.watch !== undefined) return;
    const ctrl = new AbortController();
    f.watch = ctrl;
    const run = async () => {
      const stream = conferences.watchConferenceEvents(
        { conferenceId: id, sinceVersion: f.version },
        { headers: await headers(), signal: AbortSignal.any([signal, ctrl.signal]) },
      );
      for await (const r of stream) {
        f.events++;
        const v = r.event?.conferenceVersion;
        if (v !== undefined && v >= f.version) f.version = v + 1n;
        if (r.event?.payload.case === "ended") {
          forget(id);
          draw();
          return;
        }
        void refresh(id);
      }
    };
    run()
      .catch(() => undefined)
      .finally(() => {
        // The stream ended (server restart, network): the next poll starts another.
        if (followed.get(id) === f && f.watch === ctrl) f.watch = undefined;
        draw();
      });
  };

  const poll = async () => {
    const r = await conferences.listConferences({}, { headers: await headers(), signal });
    const ids = r.conferences.map((c) => c.id);
    for (const id of order) if (!ids.includes(id)) forget(id);
    order = ids;
    await Promise.all(
      r.conferences.slice(0, MAX_SHOWN).map(async (c) => {
        let f = followed.get(c.id);
        if (f === undefined) {
          f = {
            conference: undefined,
            version: c.version,
            watch: undefined,
            events: 0,
            refreshing: false,
            again: false,
          };
          followed.set(c.id, f);
        }
        if (f.conference === undefined || f.conference.version !== c.version) await refresh(c.id);
      }),
    );
    for (const id of order.slice(0, MAX_WATCHED)) watch(id);
    draw();
    fill(status, `updated ${new Date().toLocaleTimeString()}`);
  };

  fill(
    root,
    h("h1", {}, "Live conferences"),
    h("section", { class: "card" }, h("div", { class: "inline" }, picker), status),
    list,
  );
  while (!signal.aborted) {
    await poll().catch((e: unknown) => {
      if (!signal.aborted) fill(status, `not updated: ${ConnectError.from(e).rawMessage}`);
    });
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

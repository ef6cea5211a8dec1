/**
 * A tiny DOM helper: elements from tag, attributes and children. Text is always set as text
 * (never parsed as HTML), so nothing a server or a user typed can become markup.
 */
export type Child = Node | string | number | bigint | null | undefined | false | Child[];
type Listener = (event: Event) => unknown;
export type Props = Record<string, string | number | boolean | Listener | undefined>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === false) continue;
    if (typeof value === "function") {
      el.addEventListener(name.slice(2).toLowerCase(), (e) => {
        const r = value(e);
        if (r instanceof Promise) r.catch(showError);
      });
    } else if (name === "value" && "value" in el) (el as HTMLInputElement).value = String(value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces an element's children. */
export function fill(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

/** A form's named field values. */
export function fields(form: HTMLFormElement): Record<string, string> {
  const out: Record<string, string> = {};
  new FormData(form).forEach((v, k) => {
    if (typeof v === "string") out[k] = v.trim();
  });
  return out;
}

/** A submit handler that prevents navigation and reports failures. */
export function onSubmit(work: (form: HTMLFormElement) => Promise<void>): Listener {
  return async (e) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const buttons: HTMLButtonElement[] = [];
    form.querySelectorAll("button").forEach((b) => {
      buttons.push(b);
    });
    for (const b of buttons) b.disabled = true;
    try {
      await work(form);
    } finally {
      for (const b of buttons) b.disabled = false;
    }
  };
}

export function flash(message: string, kind: "error" | "info" = "error"): void {
  const box = document.getElementById("flash");
  if (box === null) return;
  const item = h("div", { class: kind }, message);
  box.appendChild(item);
  setTimeout(() => item.remove(), kind === "error" ? 8000 : 3000);
}

export function showError(err: unknown): void {
  if (err instanceof DOMException && err.name === "AbortError") return;
  const message = err instanceof Error ? err.message : String(err);
  console.error(err);
  flash(message);
}

export function badge(text: string): HTMLElement {
  return h("span", { class: `badge ${text}` }, text);
}

export function when(ms: bigint | number | undefined): string {
  if (ms === undefined || ms === 0 || ms === 0n) return "";
  return new Date(Number(ms)).toISOString().replace("T", " ").slice(0, 19);
}

export function table(headers: string[], rows: Child[][], empty = "none yet"): HTMLElement {
  if (rows.length === 0) return h("p", { class: "muted" }, empty);
  return h(
    "table",
    {},
    h("thead", {}, h("tr", {}, ...headers.map((t) => h("th", {}, t)))),
    h("tbody", {}, ...rows.map((r) => h("tr", {}, ...r.map((c) => h("td", {}, c))))),
  );
}

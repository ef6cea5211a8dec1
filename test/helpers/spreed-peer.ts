/** A Spreed channeling client for tests: connects, collects server documents, sends documents. */
import WebSocket from "ws";

export type Doc = Record<string, unknown>;

/** A channeling client: connects, collects server documents, sends typed documents. */
export class Peer {
  readonly docs: Doc[] = [];
  private constructor(readonly ws: WebSocket) {
    ws.on("message", (raw) => this.docs.push(JSON.parse(raw.toString()) as Doc));
  }

  static async connect(url: string, token?: string): Promise<Peer> {
    const ws = new WebSocket(`${url.replace("http", "ws")}/ws${token ? `?t=${encodeURIComponent(token)}` : ""}`);
    const peer = new Peer(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    });
    await peer.next("Self");
    return peer;
  }

  send(type: string, body: unknown, iid?: string): void {
    this.ws.send(JSON.stringify({ Type: type, [type]: body, ...(iid ? { Iid: iid } : {}) }));
  }

  /** The next document of `type` (or of any of the types) not yet taken (its envelope). */
  async next(type: string | readonly string[], timeout = 3000): Promise<Doc> {
    const deadline = Date.now() + timeout;
    const types: readonly string[] = typeof type === "string" ? [type] : type;
    for (;;) {
      const i = this.docs.findIndex((d) => types.includes((d.Data as Doc)?.Type as string));
      if (i >= 0) return this.docs.splice(i, 1)[0] as Doc;
      if (Date.now() > deadline) throw new Error(`no ${type} within ${timeout} ms; have ${JSON.stringify(this.docs)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  self(): Promise<Doc> {
    return this.next("Self").then((d) => d.Data as Doc);
  }

  close(): void {
    this.ws.close();
  }
}

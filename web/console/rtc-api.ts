/**
 * The conference REST API (`/rtc-api/…`) as a customer's page calls it: JSON bodies, a
 * bearer access token; errors come back as plain text with their status.
 */
export type Json = Record<string, unknown>;

export class RtcApi {
  constructor(private readonly token: string) {}

  async post(path: string, body: Json): Promise<Json> {
    return this.send("POST", path, body);
  }

  async get(path: string): Promise<Json> {
    return this.send("GET", path);
  }

  private async send(method: string, path: string, body?: Json): Promise<Json> {
    const res = await fetch(`/rtc-api/${path}`, {
      method,
      headers: {
        authorization: `Bearer ${this.token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    if (res.status !== 200 && res.status !== 204) throw new Error(`${path}: ${text || res.status}`);
    return text === "" ? {} : (JSON.parse(text) as Json);
  }
}

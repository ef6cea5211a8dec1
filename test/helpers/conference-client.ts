/** Clients of the conference API for tests: OAuth2 tokens, REST calls, rooms, MQTT push. */
import assert from "node:assert/strict";
import mqtt from "mqtt";
import type { TestApp } from "./server.js";

export type Json = Record<string, unknown>;

export async function token(url: string, form: Record<string, string>, basic?: string, query = "") {
  const res = await fetch(`${url}/security/oauth/token${query}`, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      ...(basic === undefined ? {} : { authorization: `Basic ${Buffer.from(basic).toString("base64")}` }),
    },
    body: new URLSearchParams(form).toString(),
  });
  return { status: res.status, headers: res.headers, json: (await res.json()) as Json };
}

export async function serviceToken(url: string, a: TestApp): Promise<string> {
  const r = await token(url, { grant_type: "client_credentials", client_id: a.apikey, client_secret: a.secret });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return r.json.access_token as string;
}

export function rest(url: string, bearer: string | undefined) {
  return async (method: string, path: string, body?: unknown) => {
    const res = await fetch(url + path, {
      method,
      headers: {
        ...(bearer === undefined ? {} : { authorization: `Bearer ${bearer}` }),
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    const isJson = (res.headers.get("content-type") ?? "").startsWith("application/json");
    return {
      status: res.status,
      text,
      type: res.headers.get("content-type") ?? "",
      json: (isJson && text !== "" ? JSON.parse(text) : undefined) as Json & Json[],
    };
  };
}

export async function roomToken(url: string, a: TestApp, body: Json = {}): Promise<{ id: string; token: string }> {
  const res = await fetch(`${url}/api/realtime/room`, {
    method: "POST",
    headers: { "x-vcs-token": a.secret, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const room = ((await res.json()) as { room: { id: string; token: string } }).room;
  return room;
}

/** An MQTT-over-WebSocket client as the SDKs use it; collects messages per topic. */
export async function mqttClient(url: string, username: string, password: string) {
  const client = await mqtt.connectAsync(`${url.replace("http", "ws")}/ws`, {
    protocolVersion: 4,
    username,
    password,
    reconnectPeriod: 0,
    connectTimeout: 5000,
  });
  const messages: Json[] = [];
  client.on("message", (_topic, payload) => messages.push(JSON.parse(payload.toString()) as Json));
  return { client, messages };
}

export async function until<T>(what: string, check: () => T | undefined, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

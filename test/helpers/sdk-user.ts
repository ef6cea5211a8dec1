/**
 * A conference-API user as the vendor's iOS SDK acts (notes/auvious-ios-sdk.md): ticket login
 * with Basic `<apikey>:`, an upper-case UUID endpoint registered with keepAliveSeconds 15,
 * MQTT over WebSocket subscribed to `user/<sub>/<endpointId>` at QoS 1.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { type Json, mqttClient, rest, token, until } from "./conference-client.js";
import type { TestApp } from "./server.js";

export interface SdkUser {
  readonly userId: string;
  readonly endpointId: string;
  readonly access: string;
  readonly refresh: string;
  readonly call: ReturnType<typeof rest>;
  readonly messages: Json[];
  readonly mqtt: Awaited<ReturnType<typeof mqttClient>>["client"];
  /** The first pushed event of `type` (matching `where`) after `from`, waited for. */
  event(type: string, where?: (e: Json) => boolean, ms?: number): Promise<Json>;
  close(): Promise<void>;
}

export function uuid(): string {
  return randomUUID().toUpperCase();
}

/** Logs in with a room ticket, registers an endpoint and subscribes to its topic. */
export async function sdkUser(url: string, app: TestApp, ticket: string): Promise<SdkUser> {
  const login = await token(url, { grant_type: "password", username: ticket, password: "" }, `${app.apikey}:`);
  assert.equal(login.status, 200, JSON.stringify(login.json));
  const access = login.json.access_token as string;
  const userId = login.json.sub as string;
  const call = rest(url, access);
  const endpointId = uuid();
  const reg = await call("POST", "/rtc-api/users/endpoints/register", {
    keepAliveSeconds: 15,
    userEndpointId: endpointId,
    userId,
  });
  assert.deepEqual([reg.status, reg.json], [200, { id: endpointId }]);
  const { client, messages } = await mqttClient(url, userId, access);
  const granted = await client.subscribeAsync(`user/${userId}/${endpointId}`, { qos: 1 });
  assert.equal(granted[0]?.qos, 1);
  return {
    userId,
    endpointId,
    access,
    refresh: login.json.refresh_token as string,
    call,
    messages,
    mqtt: client,
    event: (type, where = () => true, ms = 5000) =>
      until(`${type} for ${endpointId}`, () => messages.find((e) => e.type === type && where(e)), ms),
    close: () => client.endAsync(),
  };
}

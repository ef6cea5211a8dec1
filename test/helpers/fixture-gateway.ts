/**
 * Route specs for the fixture library service, made by the plugin's own rule checker
 * from protoc's descriptors, so gateway tests exercise exactly what generation emits.
 */
import type { DescService, FileRegistry } from "@bufbuild/protobuf";
import { getOption, hasOption } from "@bufbuild/protobuf";
import type { RouteSpec } from "../../src/gateway/route-table.js";
import { routeFromRule } from "../../tools/protoc-gen-rtcplane-gateway/plugin.js";
import { fixtureRegistry } from "./protoc.js";

export function libraryFixture(): { registry: FileRegistry; service: DescService; routes: RouteSpec[] } {
  const registry = fixtureRegistry(["fixture/library/v1/library.proto"]);
  const service = registry.getService("fixture.library.v1.LibraryService");
  const http = registry.getExtension("google.api.http");
  if (service === undefined || http === undefined) throw new Error("fixture did not compile");
  const routes: RouteSpec[] = [];
  for (const method of service.methods) {
    if (!hasOption(method, http)) continue;
    const rule = getOption(method, http) as unknown as Parameters<typeof routeFromRule>[1];
    const successStatus = method.name === "PublishBook" ? 202 : method.name === "PurgeBook" ? 204 : 0;
    for (const r of [rule, ...rule.additionalBindings]) {
      routes.push({ service, method, dialect: "v1", successStatus, ...routeFromRule(method, r) });
    }
  }
  return { registry, service, routes };
}

/**
 * Finds the route for a method and path among the generated routes, telling apart an
 * unknown path (404) from a known path asked with another method (405).
 */
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import {
  compareSpecificity,
  matchPathTemplate,
  type PathBindings,
  type PathTemplate,
  splitPath,
} from "./path-template.js";

/** One REST route, as emitted by protoc-gen-rtcplane-gateway. */
export interface RouteSpec {
  readonly service: DescService;
  readonly method: DescMethod;
  readonly dialect: string;
  readonly verb: string;
  readonly pattern: string;
  readonly template: PathTemplate;
  readonly body: string;
  readonly responseBody: string;
  readonly successStatus: number;
}

export type RouteMatch =
  | { readonly kind: "found"; readonly route: RouteSpec; readonly bindings: PathBindings }
  | { readonly kind: "method-not-allowed"; readonly allow: readonly string[]; readonly dialect: string }
  | { readonly kind: "not-found"; readonly dialect: string };

export class RouteTable {
  private readonly routes: readonly RouteSpec[];
  /** Routes grouped by their first literal segment, so a lookup scans only its family. */
  private readonly byFirstSegment = new Map<string, RouteSpec[]>();
  private readonly wildcardFirst: RouteSpec[] = [];

  constructor(
    routes: Iterable<RouteSpec>,
    private readonly defaultDialect: string,
  ) {
    this.routes = [...routes].sort((a, b) => compareSpecificity(a.template, b.template));
    for (const route of this.routes) {
      const first = route.template.segments[0];
      if (first?.kind === "literal" && !(route.template.segments.length === 1 && route.template.verb)) {
        const list = this.byFirstSegment.get(first.value) ?? [];
        list.push(route);
        this.byFirstSegment.set(first.value, list);
      } else {
        this.wildcardFirst.push(route);
      }
    }
  }

  get all(): readonly RouteSpec[] {
    return this.routes;
  }

  match(verb: string, path: string): RouteMatch {
    const segments = splitPath(path);
    if (segments === undefined) return { kind: "not-found", dialect: this.defaultDialect };
    const family = this.byFirstSegment.get(segments[0] ?? "") ?? [];
    const candidates = this.wildcardFirst.length === 0 ? family : [...family, ...this.wildcardFirst];
    const allow = new Set<string>();
    let pathDialect: string | undefined;
    for (const route of candidates) {
      const bindings = matchPathTemplate(route.template, segments);
      if (bindings === undefined) continue;
      if (route.verb === verb) return { kind: "found", route, bindings };
      allow.add(route.verb);
      pathDialect ??= route.dialect;
    }
    if (pathDialect !== undefined)
      return { kind: "method-not-allowed", allow: [...allow].sort(), dialect: pathDialect };
    // An unknown path is answered in the dialect of the API whose literal prefix it shares most.
    let best: RouteSpec | undefined;
    let bestShared = -1;
    for (const route of family) {
      let shared = 0;
      for (const seg of route.template.segments) {
        if (seg.kind !== "literal" || seg.value !== segments[shared]) break;
        shared++;
      }
      if (shared > bestShared) {
        best = route;
        bestShared = shared;
      }
    }
    return { kind: "not-found", dialect: best?.dialect ?? this.defaultDialect };
  }
}

/**
 * Who is calling, resolved once per request by the authentication interceptor and carried
 * in the request's context values; services ask for the kind they serve in one line
 * (`bearerCaller(ctx)`), as LiveKit's EnsureXPermission(ctx) does.
 */
import { createContextKey, type HandlerContext } from "@connectrpc/connect";
import type { AppRecord } from "../apps/apps.js";
import { DomainError } from "../errors.js";
import type { CheckedPrincipal } from "../oauth/principals.js";
import type { TenantRow } from "../tenants/tenants.js";

export type Caller =
  | { readonly kind: "anonymous" }
  | { readonly kind: "admin" }
  | { readonly kind: "tenant"; readonly tenant: TenantRow }
  | { readonly kind: "app"; readonly app: AppRecord }
  | { readonly kind: "bearer"; readonly principal: CheckedPrincipal }
  /** Another node of the cluster (the cluster credential). */
  | { readonly kind: "cluster" };

export const kCaller = createContextKey<Caller>({ kind: "anonymous" }, { description: "the authenticated caller" });

export function callerOf(ctx: HandlerContext): Caller {
  return ctx.values.get(kCaller);
}

/**
 * The caller of a kind a method serves. A mismatch means the method's proto declares
 * another credential than its implementation expects: a server bug, not a client error.
 */
function expect<K extends Caller["kind"]>(ctx: HandlerContext, kind: K): Extract<Caller, { kind: K }> {
  const caller = callerOf(ctx);
  if (caller.kind !== kind) {
    throw new DomainError("internal", `the method expects a ${kind} caller; its proto declares another credential`);
  }
  return caller as Extract<Caller, { kind: K }>;
}

export const requireAdmin = (ctx: HandlerContext): void => void expect(ctx, "admin");
export const requireCluster = (ctx: HandlerContext): void => void expect(ctx, "cluster");
export const tenantCaller = (ctx: HandlerContext): TenantRow => expect(ctx, "tenant").tenant;
export const appCaller = (ctx: HandlerContext): AppRecord => expect(ctx, "app").app;
export const bearerCaller = (ctx: HandlerContext): CheckedPrincipal => expect(ctx, "bearer").principal;

/**
 * The one authentication step of every protocol: before a method runs, the credential its
 * proto declares (`rtcplane.options.v1.auth` on the service, `method_auth` on a method) is
 * read from where the service's dialect says it travels and resolved into the request's
 * caller (context value kCaller). REST requests pass the same interceptor chain.
 */
import { type DescMethod, type DescService, getOption, hasOption } from "@bufbuild/protobuf";
import type { Interceptor } from "@connectrpc/connect";
import {
  type AuthOptions,
  auth,
  Credential,
  method_auth as methodAuth,
} from "../../gen/rtcplane/options/v1/options_pb.js";
import type { Authenticator, CredentialName } from "../auth/authenticator.js";
import { kCaller } from "../auth/caller.js";
import type { CredentialCarrier, Dialect } from "../gateway/dialects/dialect.js";

interface MethodAuth {
  readonly credential: CredentialName | undefined;
  readonly optional: boolean;
  readonly carrier: CredentialCarrier | undefined;
}

const NAMES: Partial<Record<Credential, CredentialName>> = {
  [Credential.ADMIN]: "admin",
  [Credential.TENANT]: "tenant",
  [Credential.APP_SECRET]: "app",
  [Credential.BEARER]: "bearer",
  [Credential.CLUSTER]: "cluster",
};

const CLUSTER_CARRIER: CredentialCarrier = { header: "authorization", scheme: "Bearer" };

/** The credential of a method as its proto declares it (no option at all: none, e.g. health). */
function declared(method: DescMethod): AuthOptions | undefined {
  if (hasOption(method, methodAuth)) {
    const own = getOption(method, methodAuth);
    if (own.credential !== Credential.UNSPECIFIED) return own;
  }
  return hasOption(method.parent, auth) ? getOption(method.parent, auth) : undefined;
}

/** Reads a credential from where its carrier says; undefined when absent or malformed. */
export function presented(headers: Headers, carrier: CredentialCarrier): string | undefined {
  const value = headers.get(carrier.header);
  if (value === null) return undefined;
  if (carrier.scheme === undefined) return value;
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(value);
  return m?.[1];
}

export function authInterceptor(
  authenticator: Authenticator,
  dialectOf: (service: DescService) => Dialect | undefined,
): Interceptor {
  const specs = new WeakMap<DescMethod, MethodAuth>();
  const specOf = (method: DescMethod): MethodAuth => {
    let spec = specs.get(method);
    if (spec === undefined) {
      const options = declared(method);
      const credential = options === undefined ? undefined : NAMES[options.credential];
      // The cluster credential belongs to no legacy dialect: nodes always send it as a bearer.
      const carrier =
        credential === undefined
          ? undefined
          : credential === "cluster"
            ? CLUSTER_CARRIER
            : dialectOf(method.parent)?.credentials[credential];
      if (credential !== undefined && carrier === undefined) {
        throw new Error(
          `${method.parent.typeName}/${method.name} needs a ${credential} credential its dialect does not carry`,
        );
      }
      spec = { credential, optional: options?.optional ?? false, carrier };
      specs.set(method, spec);
    }
    return spec;
  };
  return (next) => (req) => {
    const spec = specOf(req.method);
    if (spec.credential === undefined || spec.carrier === undefined) return next(req);
    const credential = presented(req.header, spec.carrier);
    if (credential === undefined && spec.optional) return next(req);
    return authenticator.resolve(spec.credential, credential).then((caller) => {
      req.contextValues.set(kCaller, caller);
      return next(req);
    });
  };
}

/**
 * Security of the OpenAPI documents: the credential each method's proto declares
 * (`rtcplane.options.v1.method_auth`, else the service's `auth`) and where its dialect carries
 * it — a header (`x-auth-token`, `x-vcs-token`) or `Authorization: Bearer` — as security
 * schemes described by the Credential enum's comments; the token endpoint's client may use
 * HTTP Basic, and bearer tokens come from that endpoint (an oauth2 scheme with its tokenUrl).
 */
import { type DescMethod, type DescService, getOption, hasOption, type Registry } from "@bufbuild/protobuf";
import type { MappedRoute } from "./openapi.js";
import { type CredentialName, type DialectDoc, type JsonSchema, SCHEME_NAMES } from "./openapi-dialects.js";
import { describe } from "./openapi-schemas.js";

/** Raised for a method whose credential its dialect does not carry. */
export class SecurityError extends Error {}

const CREDENTIAL_NAMES: Record<string, CredentialName | "none"> = {
  CREDENTIAL_NONE: "none",
  CREDENTIAL_ADMIN: "admin",
  CREDENTIAL_TENANT: "tenant",
  CREDENTIAL_APP_SECRET: "app",
  CREDENTIAL_BEARER: "bearer",
};

/** The credential a method declares (its own `method_auth`, else its service's `auth`). */
export function credentialOf(
  registry: Registry,
  method: DescMethod,
): { credential: CredentialName | "none"; optional: boolean } {
  const credentialEnum = registry.getEnum("rtcplane.options.v1.Credential");
  const read = (ext: string, desc: DescMethod | DescService) => {
    const e = registry.getExtension(ext);
    if (e === undefined || !hasOption(desc, e)) return undefined;
    const value = getOption(desc, e) as { credential: number; optional: boolean };
    const name = credentialEnum?.values.find((v) => v.number === value.credential)?.name ?? "";
    const credential = CREDENTIAL_NAMES[name];
    return credential === undefined ? undefined : { credential, optional: value.optional };
  };
  return (
    read("rtcplane.options.v1.method_auth", method) ??
    read("rtcplane.options.v1.auth", method.parent) ?? { credential: "none", optional: false }
  );
}

export function securityOf(
  registry: Registry,
  r: MappedRoute,
  d: DialectDoc,
  schemes: Record<string, JsonSchema>,
  tokenUrl: string | undefined,
): JsonSchema[] {
  const { credential, optional } = credentialOf(registry, r.method);
  const where = `${r.method.parent.typeName}.${r.method.name}`;
  if (credential === "none") {
    if (!d.tokenEndpoint) return [];
    schemes.clientBasic = {
      type: "http",
      scheme: "basic",
      description: "The app's apikey and secretkey as OAuth2 client credentials (or send them in the form).",
    };
    return [{}, { clientBasic: [] }];
  }
  const carrier = d.credentials[credential];
  if (carrier === undefined) {
    throw new SecurityError(`${where} needs a ${credential} credential its dialect (${r.dialect}) does not carry`);
  }
  const name = SCHEME_NAMES[credential];
  const enumName = credential === "app" ? "CREDENTIAL_APP_SECRET" : `CREDENTIAL_${credential.toUpperCase()}`;
  const value = registry.getEnum("rtcplane.options.v1.Credential")?.values.find((v) => v.name === enumName);
  const what = (value === undefined ? undefined : describe(value)) ?? credential;
  schemes[name] =
    carrier.scheme === "Bearer"
      ? {
          type: "http",
          scheme: "bearer",
          ...(credential === "bearer" ? { bearerFormat: "JWT" } : {}),
          description: `${what} Sent as \`Authorization: Bearer <token>\` (gRPC: the same metadata).`,
        }
      : {
          type: "apiKey",
          in: "header",
          name: carrier.header,
          description: `${what} Sent in the \`${carrier.header}\` header (gRPC: the same metadata).`,
        };
  const alternatives: JsonSchema[] = [{ [name]: [] }];
  if (credential === "bearer" && tokenUrl !== undefined) {
    const flow = { tokenUrl: tokenUrl, scopes: {} };
    schemes.oauth2 = {
      type: "oauth2",
      description:
        "Tokens from the token endpoint: client_credentials (apikey + secretkey → SERVICE) or password " +
        "(username = a room token, client = the apikey with an empty secret → USER).",
      flows: { clientCredentials: flow, password: flow },
    };
    alternatives.push({ oauth2: [] });
  }
  return optional ? [{}, ...alternatives] : alternatives;
}

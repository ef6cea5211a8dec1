/**
 * google.api.http path templates: parsed once by the protoc plugin (so a malformed
 * template fails `buf generate`, not a request), matched at run time by the gateway.
 *
 * Grammar (https://github.com/googleapis/googleapis/blob/master/google/api/http.proto):
 *   Template = "/" Segments [ Verb ] ;
 *   Segments = Segment { "/" Segment } ;
 *   Segment  = "*" | "**" | LITERAL | Variable ;
 *   Variable = "{" FieldPath [ "=" Segments ] "}" ;
 *   FieldPath = IDENT { "." IDENT } ;
 *   Verb     = ":" LITERAL ;
 * One extension: a template may end in "/" (an empty last literal), because legacy APIs
 * such as Spreed's `PATCH /api/v1/sessions/{id}/` require the trailing slash.
 */

/** One path segment of a template. */
export type Segment =
  | { readonly kind: "literal"; readonly value: string }
  | { readonly kind: "any" }
  | { readonly kind: "rest" };

/** A field bound to the segments [start, end) of the path; end -1 means "to the end". */
export interface Variable {
  readonly fieldPath: readonly string[];
  readonly start: number;
  readonly end: number;
}

/** A parsed template, plain data so the plugin can print it into generated code. */
export interface PathTemplate {
  readonly segments: readonly Segment[];
  readonly variables: readonly Variable[];
  readonly verb?: string;
}

/** Thrown for a template that does not follow the grammar; the message says where. */
export class PathTemplateError extends Error {
  constructor(template: string, reason: string) {
    super(`invalid path template "${template}": ${reason}`);
    this.name = "PathTemplateError";
  }
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
// RFC 3986 pchar without ":" (it separates the verb), "*", "{", "}" and "=" inside variables.
const LITERAL = /^(?:[A-Za-z0-9\-._~!$&'()+,;@]|%[0-9A-Fa-f]{2})+$/;

/** Parses a template or throws PathTemplateError. */
export function parsePathTemplate(template: string): PathTemplate {
  const fail = (reason: string): never => {
    throw new PathTemplateError(template, reason);
  };
  if (!template.startsWith("/")) fail('it must start with "/"');
  let rest = template.slice(1);
  let verb: string | undefined;
  // The verb is a ":" after the last "/" outside braces.
  const lastSlash = rest.lastIndexOf("/");
  const lastClose = rest.lastIndexOf("}");
  const colon = rest.indexOf(":", Math.max(lastSlash, lastClose) + 1);
  if (colon >= 0) {
    verb = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!LITERAL.test(verb)) fail(`verb "${verb}" is not a literal`);
  }
  const segments: Segment[] = [];
  const variables: Variable[] = [];
  const seenFields = new Set<string>();
  let i = 0;
  const readUntil = (stops: string): string => {
    const from = i;
    while (i < rest.length && !stops.includes(rest.charAt(i))) i++;
    return rest.slice(from, i);
  };
  const parseSegment = (insideVariable: boolean): void => {
    if (rest.charAt(i) === "{") {
      if (insideVariable) fail("variables cannot be nested");
      i++;
      const fieldPath = readUntil("=}/");
      const parts = fieldPath.split(".");
      if (!parts.every((p) => IDENT.test(p))) fail(`"${fieldPath}" is not a field path`);
      if (seenFields.has(fieldPath)) fail(`field "${fieldPath}" is bound twice`);
      seenFields.add(fieldPath);
      const start = segments.length;
      if (rest.charAt(i) === "=") {
        i++;
        parseSegments(true);
      } else {
        segments.push({ kind: "any" });
      }
      if (rest.charAt(i) !== "}") fail(`variable "${fieldPath}" is not closed with "}"`);
      i++;
      const last = segments[segments.length - 1];
      variables.push({ fieldPath: parts, start, end: last?.kind === "rest" ? -1 : segments.length });
      return;
    }
    const text = readUntil(insideVariable ? "/}" : "/");
    if (text === "*") segments.push({ kind: "any" });
    else if (text === "**") segments.push({ kind: "rest" });
    else if (text === "") {
      // Only a trailing "/" may leave an empty segment.
      if (i < rest.length || insideVariable || segments.length === 0) fail("empty path segment");
      segments.push({ kind: "literal", value: "" });
    } else if (LITERAL.test(text)) segments.push({ kind: "literal", value: text });
    else fail(`"${text}" is not a valid literal segment`);
  };
  const parseSegments = (insideVariable: boolean): void => {
    parseSegment(insideVariable);
    while (rest.charAt(i) === "/") {
      i++;
      parseSegment(insideVariable);
    }
  };
  if (rest === "") fail("the path has no segments");
  parseSegments(false);
  if (i !== rest.length) fail(`unexpected "${rest.charAt(i)}" at offset ${i + 1}`);
  const restAt = segments.findIndex((s) => s.kind === "rest");
  if (restAt >= 0 && restAt !== segments.length - 1) fail('"**" must be the last segment');
  return verb === undefined ? { segments, variables } : { segments, variables, verb };
}

/** Values of the template's variables, keyed by dotted field path, percent-decoded. */
export type PathBindings = Map<string, string>;

/**
 * Splits a request path (without query) into raw segments, once per request so that
 * every route's match reuses it.
 */
export function splitPath(path: string): string[] | undefined {
  if (!path.startsWith("/")) return undefined;
  return path.slice(1).split("/");
}

function decodeSegment(raw: string): string | undefined {
  try {
    return decodeURIComponent(raw);
  } catch {
    return undefined;
  }
}

/**
 * Matches raw path segments against a template and returns the variable bindings,
 * or undefined when the path does not fit.
 */
export function matchPathTemplate(template: PathTemplate, rawSegments: readonly string[]): PathBindings | undefined {
  let segs = rawSegments;
  if (template.verb !== undefined) {
    const last = segs[segs.length - 1];
    const suffix = `:${template.verb}`;
    if (last === undefined || !last.endsWith(suffix)) return undefined;
    segs = [...segs.slice(0, -1), last.slice(0, -suffix.length)];
  }
  const { segments } = template;
  const hasRest = segments[segments.length - 1]?.kind === "rest";
  if (hasRest ? segs.length < segments.length - 1 : segs.length !== segments.length) return undefined;
  for (let k = 0; k < segments.length; k++) {
    const s = segments[k] as Segment;
    if (s.kind === "rest") break;
    const raw = segs[k] as string;
    if (s.kind === "literal") {
      if (raw !== s.value && decodeSegment(raw) !== s.value) return undefined;
    } else if (raw === "") {
      return undefined;
    }
  }
  const bindings: PathBindings = new Map();
  for (const v of template.variables) {
    const end = v.end === -1 ? segs.length : v.end;
    const parts: string[] = [];
    for (let k = v.start; k < end; k++) {
      const decoded = decodeSegment(segs[k] as string);
      if (decoded === undefined) return undefined;
      parts.push(decoded);
    }
    bindings.set(v.fieldPath.join("."), parts.join("/"));
  }
  return bindings;
}

/**
 * Orders templates so the most specific wins when several match one path: literals beat
 * single wildcards, which beat "**", segment by segment; then templates with a verb.
 */
export function compareSpecificity(a: PathTemplate, b: PathTemplate): number {
  const rank = (s: Segment | undefined): number =>
    s === undefined ? 3 : s.kind === "literal" ? 0 : s.kind === "any" ? 1 : 2;
  const n = Math.max(a.segments.length, b.segments.length);
  for (let k = 0; k < n; k++) {
    const d = rank(a.segments[k]) - rank(b.segments[k]);
    if (d !== 0) return d;
  }
  return (a.verb === undefined ? 1 : 0) - (b.verb === undefined ? 1 : 0);
}

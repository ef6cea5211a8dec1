/**
 * The HandlerContext of a REST call. connect's createHandlerContext builds three Headers,
 * a deadline and a linked AbortController for every call; a REST read needs none of that
 * unless it is asked for, so each part is made on first use: the abort signal (linked to
 * the client going away and to shutdown) only for calls that wait, response headers only
 * for methods that set them.
 */
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import type { ContextValues, HandlerContext } from "@connectrpc/connect";
import type { NodeResponse } from "../http/types.js";

export class RestContext implements HandlerContext {
  readonly protocolName = "rest";
  private controller: AbortController | undefined;
  private responseHeaders: Headers | undefined;
  private responseTrailers: Headers | undefined;

  constructor(
    readonly service: DescService,
    readonly method: DescMethod,
    readonly requestMethod: string,
    readonly url: string,
    readonly requestHeader: Headers,
    readonly values: ContextValues,
    private readonly res: NodeResponse,
    private readonly shutdownSignal: AbortSignal | undefined,
  ) {}

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      const controller = new AbortController();
      this.controller = controller;
      this.res.on("close", () => controller.abort());
      if (this.shutdownSignal !== undefined) {
        if (this.shutdownSignal.aborted) controller.abort();
        else this.shutdownSignal.addEventListener("abort", () => controller.abort(), { once: true });
      }
    }
    return this.controller.signal;
  }

  timeoutMs(): number | undefined {
    return undefined;
  }

  get responseHeader(): Headers {
    this.responseHeaders ??= new Headers();
    return this.responseHeaders;
  }

  get responseTrailer(): Headers {
    this.responseTrailers ??= new Headers();
    return this.responseTrailers;
  }

  /** The response headers a method set, if it set any. */
  headersSet(): Headers | undefined {
    return this.responseHeaders;
  }
}

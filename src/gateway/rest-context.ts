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

const CLIENT_GONE = Object.freeze(new Error("the client went away"));
const SHUTTING_DOWN = Object.freeze(new Error("the server is shutting down"));

/**
 * The abort controllers of REST calls still waiting, all aborted by one listener on the
 * shutdown signal: a listener per call on that one signal would pile up (and cost a scan
 * to remove) with ten thousand long-polls.
 */
export class WaitingCalls {
  private readonly live = new Set<AbortController>();
  private shuttingDown = false;

  constructor(shutdownSignal: AbortSignal | undefined) {
    shutdownSignal?.addEventListener(
      "abort",
      () => {
        this.shuttingDown = true;
        for (const c of this.live) c.abort(SHUTTING_DOWN);
        this.live.clear();
      },
      { once: true },
    );
  }

  add(controller: AbortController): void {
    if (this.shuttingDown) controller.abort(SHUTTING_DOWN);
    else this.live.add(controller);
  }

  delete(controller: AbortController): void {
    this.live.delete(controller);
  }
}

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
    private readonly waiting: WaitingCalls,
  ) {}

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      const controller = new AbortController();
      this.controller = controller;
      // Aborted when the client goes away before its answer; a finished call is not aborted
      // (an abort without a reason builds a DOMException with a stack trace).
      let answered = false;
      this.res.on("finish", () => {
        answered = true;
      });
      this.res.on("close", () => {
        this.waiting.delete(controller);
        if (!answered) controller.abort(CLIENT_GONE);
      });
      this.waiting.add(controller);
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

/**
 * Cross-cutting RPC behaviour for gRPC, gRPC-web and Connect: unknown failures become
 * INTERNAL with a fixed message (the cause goes to the log, never to the client); known
 * failures are recorded on the request for its one log line.
 */
import { Code, type Interceptor } from "@connectrpc/connect";
import { kRequestInfo, type Logger } from "../observability/log.js";
import { toConnectError } from "./rpc-errors.js";

export function errorInterceptor(root: Logger): Interceptor {
  return (next) => async (req) => {
    const info = req.contextValues.get(kRequestInfo);
    const rpc = `${req.service.typeName}/${req.method.name}`;
    const fail = (e: unknown): never => {
      const error = toConnectError(e);
      if (error.cause !== undefined) (info?.log ?? root).error({ err: error.cause, rpc }, "rpc failed");
      if (info !== undefined) info.outcome = { rpc, code: Code[error.code] ?? "Unknown", msg: error.rawMessage };
      throw error;
    };
    try {
      const res = await next(req);
      if (!res.stream) return res;
      const messages = res.message;
      return {
        ...res,
        message: (async function* () {
          try {
            yield* messages;
          } catch (e) {
            fail(e);
          }
        })(),
      };
    } catch (e) {
      return fail(e);
    }
  };
}

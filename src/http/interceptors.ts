/**
 * Cross-cutting RPC behaviour for gRPC, gRPC-web and Connect: unknown failures become
 * INTERNAL with a fixed message (the cause goes to the log, never to the client).
 */
import { Code, type Interceptor } from "@connectrpc/connect";
import { toConnectError } from "../errors.js";
import { kRequestLog, type Logger } from "../observability/log.js";

export function errorInterceptor(root: Logger): Interceptor {
  const fail = (e: unknown, log: Logger, rpc: string): never => {
    const error = toConnectError(e);
    if (error.cause !== undefined) log.error({ err: error.cause, rpc }, "rpc failed");
    else log.info({ rpc, code: Code[error.code], msg: error.rawMessage }, "rpc error");
    throw error;
  };
  return (next) => async (req) => {
    const log = req.contextValues.get(kRequestLog) ?? root;
    const rpc = `${req.service.typeName}/${req.method.name}`;
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
            fail(e, log, rpc);
          }
        })(),
      };
    } catch (e) {
      return fail(e, log, rpc);
    }
  };
}

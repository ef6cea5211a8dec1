/**
 * RPC metrics from the one interceptor pipeline every protocol's calls pass, REST included:
 * calls by protocol, service, method and code, their latency, and how many are in flight.
 * Counts live in plain arrays per method (no label hashing on the request path) and are
 * written out in the Prometheus text format at scrape time. Labels are bounded: methods come
 * from the registered services (anything else counts as "unknown"), protocols and codes are
 * fixed sets.
 */
import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

export const PROTOCOLS = ["rest", "connect", "grpc", "grpc-web"] as const;
export type Protocol = (typeof PROTOCOLS)[number];

/** Upper bounds in seconds: sub-millisecond reads up to long-polls and minute-long streams. */
const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** "OK" and connect's names of the other gRPC codes (as go-grpc-prometheus labels them). */
const CODE_NAMES = Array.from({ length: 17 }, (_, c) => (c === 0 ? "OK" : (Code[c] ?? "Unknown")));
const GRPC = /^application\/grpc(-web)?/i;

/**
 * The protocol a call came by. The REST gateway hands the interceptors its request target
 * (a path); connect-node an absolute URL, with gRPC and gRPC-web told apart by content type.
 */
export function protocolIndex(url: string, header: Headers): number {
  if (url.charCodeAt(0) === 47 /* "/" */) return 0;
  const m = GRPC.exec(header.get("content-type") ?? "");
  return m === null ? 1 : m[1] === undefined ? 2 : 3;
}

/** One method's figures over one protocol. */
interface Series {
  readonly codes: number[];
  /** Observations per bucket (not cumulative); the last one is +Inf. */
  readonly buckets: number[];
  sum: number;
  count: number;
}

interface MethodSeries {
  readonly service: string;
  readonly method: string;
  readonly byProtocol: (Series | undefined)[];
}

const UNKNOWN: MethodSeries = { service: "unknown", method: "unknown", byProtocol: [] };

export class RpcMetrics {
  private readonly methods = new Map<DescMethod, MethodSeries>();
  private readonly inFlight = PROTOCOLS.map(() => ({ n: 0 }));

  /** `served` tells the methods the server registered (e.g. by path) from any others. */
  constructor(private readonly served: (method: DescMethod) => boolean) {}

  private series(method: DescMethod, protocol: number): Series {
    let of = this.methods.get(method);
    if (of === undefined) {
      of = this.served(method) ? { service: method.parent.typeName, method: method.name, byProtocol: [] } : UNKNOWN;
      if (of !== UNKNOWN) this.methods.set(method, of);
    }
    let s = of.byProtocol[protocol];
    if (s === undefined) {
      s = { codes: CODE_NAMES.map(() => 0), buckets: Array<number>(BUCKETS.length + 1).fill(0), sum: 0, count: 0 };
      of.byProtocol[protocol] = s;
    }
    return s;
  }

  private static record(s: Series, started: number, code: number): void {
    const seconds = (performance.now() - started) / 1000;
    let i = 0;
    while (i < BUCKETS.length && seconds > (BUCKETS[i] as number)) i++;
    (s.buckets[i] as number)++;
    s.sum += seconds;
    s.count++;
    (s.codes[code] as number)++;
  }

  /** Outermost in the chain, so that what authentication refuses is counted and timed too. */
  interceptor(): Interceptor {
    return (next) => (req) => {
      const protocol = protocolIndex(req.url, req.header);
      const s = this.series(req.method, protocol);
      const flight = this.inFlight[protocol] as { n: number };
      const started = performance.now();
      flight.n++;
      const end = (code: number) => {
        flight.n--;
        RpcMetrics.record(s, started, code);
      };
      let answer: ReturnType<typeof next>;
      try {
        answer = next(req);
      } catch (e) {
        answer = Promise.reject(e);
      }
      return answer.then(
        (res) => {
          if (!res.stream) {
            end(0);
            return res;
          }
          const messages = res.message;
          return {
            ...res,
            // A stream is timed until its last message; one the client abandons counts as Canceled.
            message: (async function* () {
              let code: number = Code.Canceled;
              try {
                yield* messages;
                code = 0;
              } catch (e) {
                code = ConnectError.from(e).code;
                throw e;
              } finally {
                end(code);
              }
            })(),
          };
        },
        (e: unknown) => {
          end(ConnectError.from(e).code);
          throw e;
        },
      );
    };
  }

  /** The Prometheus text of these figures. */
  exposition(): string {
    const requests = [
      "# HELP rtcplane_rpc_requests_total RPCs finished, by protocol, method and code (REST calls by the RPC they map to).",
      "# TYPE rtcplane_rpc_requests_total counter",
    ];
    const duration = [
      "# HELP rtcplane_rpc_duration_seconds Time from a call's arrival to its answer (streams: to their end).",
      "# TYPE rtcplane_rpc_duration_seconds histogram",
    ];
    for (const m of [...this.methods.values(), UNKNOWN]) {
      m.byProtocol.forEach((s, p) => {
        if (s === undefined) return;
        const labels = `protocol="${PROTOCOLS[p]}",service="${m.service}",method="${m.method}"`;
        s.codes.forEach((n, c) => {
          if (n > 0) requests.push(`rtcplane_rpc_requests_total{${labels},code="${CODE_NAMES[c]}"} ${n}`);
        });
        let cumulative = 0;
        BUCKETS.forEach((le, i) => {
          cumulative += s.buckets[i] as number;
          duration.push(`rtcplane_rpc_duration_seconds_bucket{${labels},le="${le}"} ${cumulative}`);
        });
        duration.push(`rtcplane_rpc_duration_seconds_bucket{${labels},le="+Inf"} ${s.count}`);
        duration.push(`rtcplane_rpc_duration_seconds_sum{${labels}} ${s.sum}`);
        duration.push(`rtcplane_rpc_duration_seconds_count{${labels}} ${s.count}`);
      });
    }
    const inFlight = [
      "# HELP rtcplane_rpc_in_flight RPCs being served (long-polls and event streams included).",
      "# TYPE rtcplane_rpc_in_flight gauge",
      ...PROTOCOLS.map((p, i) => `rtcplane_rpc_in_flight{protocol="${p}"} ${this.inFlight[i]?.n}`),
    ];
    return `${[...requests, ...duration, ...inFlight].join("\n")}\n`;
  }
}

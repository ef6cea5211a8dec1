/**
 * The metrics of the process rather than of one server: Node's own (prom-client's default
 * process metrics: CPU, memory, event loop lag, GC) and store query time. Made once per
 * process, on first use — tests build many servers in one process, and default metrics
 * registered twice would watch the event loop and GC twice.
 */
import { collectDefaultMetrics, Registry } from "prom-client";

let registry: Registry | undefined;

export function processRegistry(): Registry {
  if (registry === undefined) {
    registry = new Registry();
    collectDefaultMetrics({ register: registry });
    // Gauges named like counters (promtool refuses them); the same counts remain by type in
    // nodejs_active_handles, nodejs_active_requests and nodejs_active_resources.
    for (const name of [
      "nodejs_active_handles_total",
      "nodejs_active_requests_total",
      "nodejs_active_resources_total",
    ]) {
      registry.removeSingleMetric(name);
    }
  }
  return registry;
}

const STORE_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** One histogram series in plain arrays: observing costs a few additions, no label hashing. */
class Series {
  /** Observations per bucket (not cumulative); the last one is +Inf. */
  readonly buckets = Array<number>(STORE_BUCKETS.length + 1).fill(0);
  sum = 0;
  count = 0;

  constructor(readonly labels: string) {}

  readonly observe = (seconds: number): void => {
    let i = 0;
    while (i < STORE_BUCKETS.length && seconds > (STORE_BUCKETS[i] as number)) i++;
    (this.buckets[i] as number)++;
    this.sum += seconds;
    this.count++;
  };
}

/**
 * rtcplane_store_query_duration_seconds, by store and statement kind (a fixed set each, see
 * storage/timed-store.ts). prom-client's own histogram costs about 0.5 µs per observation in
 * label hashing; a store read is about 1 µs.
 */
export class StoreQueryTimes {
  private readonly series = new Map<string, Series>();

  /** The observer of one store and statement kind (bind once, call per statement). */
  observer(store: string, statement: string): (seconds: number) => void {
    const labels = `store="${store}",statement="${statement}"`;
    let s = this.series.get(labels);
    if (s === undefined) {
      s = new Series(labels);
      this.series.set(labels, s);
    }
    return s.observe;
  }

  exposition(): string {
    const name = "rtcplane_store_query_duration_seconds";
    const lines = [
      `# HELP ${name} Store statements and transactions as their callers wait for them (SQLite: a wait for the open transaction included), by store and statement kind.`,
      `# TYPE ${name} histogram`,
    ];
    for (const s of this.series.values()) {
      if (s.count === 0) continue;
      let cumulative = 0;
      STORE_BUCKETS.forEach((le, i) => {
        cumulative += s.buckets[i] as number;
        lines.push(`${name}_bucket{${s.labels},le="${le}"} ${cumulative}`);
      });
      lines.push(`${name}_bucket{${s.labels},le="+Inf"} ${s.count}`);
      lines.push(`${name}_sum{${s.labels}} ${s.sum}`);
      lines.push(`${name}_count{${s.labels}} ${s.count}`);
    }
    return `${lines.join("\n")}\n`;
  }
}

/** The process's store query times (see storage/timed-store.ts). */
export const storeQueryTimes = new StoreQueryTimes();

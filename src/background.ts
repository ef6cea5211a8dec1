/**
 * The server's periodic work. Sweeps that change shared state (room expiry, refresh-family
 * and call clean-up, endpoint keep-alives) take a store lease inside their modules, so in a
 * cluster one node runs each at a time and another takes over when that node dies; the
 * room-use flush writes what this node remembered. Each run catches its own failure: a
 * database that is briefly away costs one round, not the process.
 */
import type { Logger } from "./observability/log.js";

export interface PeriodicJob {
  readonly name: string;
  readonly everyMs: number;
  readonly run: () => Promise<void>;
}

export class Background {
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly running = new Set<Promise<void>>();

  constructor(private readonly logger: Logger) {}

  start(jobs: readonly PeriodicJob[]): void {
    for (const job of jobs) {
      let busy = false;
      const timer = setInterval(() => {
        if (busy) return; // a slow round is not stacked on by the next
        busy = true;
        const round = job
          .run()
          .catch((err: unknown) => this.logger.error({ err, job: job.name }, "background job failed"))
          .finally(() => {
            busy = false;
            this.running.delete(round);
          });
        this.running.add(round);
      }, job.everyMs);
      timer.unref();
      this.timers.push(timer);
    }
  }

  /** Stops the timers and waits for rounds in progress. */
  async stop(): Promise<void> {
    for (const timer of this.timers) clearInterval(timer);
    this.timers.length = 0;
    await Promise.all([...this.running]);
  }
}

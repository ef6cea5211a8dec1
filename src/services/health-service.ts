/** grpc.health.v1.Health: SERVING for every registered service until shutdown starts. */
import { EventEmitter, on } from "node:events";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { type Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/health/v1/health_pb.js";

/** Serving status per service name ("" is the whole server); shared by RPCs and /healthz. */
export class HealthState {
  private readonly statuses = new Map<string, Status>();
  private readonly changes = new EventEmitter();

  constructor(serviceNames: readonly string[]) {
    this.statuses.set("", Status.SERVING);
    for (const name of serviceNames) this.statuses.set(name, Status.SERVING);
    this.changes.setMaxListeners(0);
  }

  get(service: string): Status | undefined {
    return this.statuses.get(service);
  }

  get serving(): boolean {
    return this.statuses.get("") === Status.SERVING;
  }

  entries(): [string, Status][] {
    return [...this.statuses];
  }

  /** Marks every service NOT_SERVING, as the first step of a graceful shutdown. */
  drain(): void {
    for (const name of this.statuses.keys()) this.statuses.set(name, Status.NOT_SERVING);
    this.changes.emit("change");
  }

  /** Resolves on the next status change, or rejects when `signal` aborts. */
  async *watch(signal: AbortSignal): AsyncGenerator<void> {
    for await (const _ of on(this.changes, "change", { signal })) yield;
  }
}

export class HealthServiceImpl implements ServiceImpl<typeof Health> {
  constructor(private readonly state: HealthState) {}

  check(req: { service: string }) {
    const status = this.state.get(req.service);
    if (status === undefined) throw new ConnectError(`unknown service ${JSON.stringify(req.service)}`, Code.NotFound);
    return { status };
  }

  async *watch(req: { service: string }, ctx: HandlerContext) {
    const current = () => this.state.get(req.service) ?? Status.SERVICE_UNKNOWN;
    let last = current();
    yield { status: last };
    try {
      for await (const _ of this.state.watch(ctx.signal)) {
        const now = current();
        if (now !== last) {
          last = now;
          yield { status: now };
        }
      }
    } catch (e) {
      if (!ctx.signal.aborted) throw e;
    }
  }

  list() {
    const statuses: Record<string, { status: Status }> = {};
    for (const [name, status] of this.state.entries()) statuses[name] = { status };
    return { statuses };
  }
}

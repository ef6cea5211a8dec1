/**
 * Every HTTP answer by status code, counted where each request finishes (the request log's
 * listener): requests refused before any RPC is matched — unknown paths, wrong methods, bad
 * media types, bodies too large — reach no interceptor, so the RPC counters never see them.
 * Status codes outside 100–599 (none should happen) count as "other"; the label set is bounded.
 */
export class HttpMetrics {
  private readonly byStatus = new Map<number, number>();
  private other = 0;

  count(status: number): void {
    if (!Number.isInteger(status) || status < 100 || status > 599) {
      this.other += 1;
      return;
    }
    this.byStatus.set(status, (this.byStatus.get(status) ?? 0) + 1);
  }

  /** The Prometheus text of these figures. */
  exposition(): string {
    const lines = [
      "# HELP rtcplane_http_responses_total HTTP answers by status code (every request, refused ones included).",
      "# TYPE rtcplane_http_responses_total counter",
    ];
    for (const [status, n] of [...this.byStatus].sort(([a], [b]) => a - b)) {
      lines.push(`rtcplane_http_responses_total{code="${status}"} ${n}`);
    }
    if (this.other > 0) lines.push(`rtcplane_http_responses_total{code="other"} ${this.other}`);
    return lines.join("\n");
  }
}

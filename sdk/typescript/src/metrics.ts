/** Counters behind getMetrics(). */
import type { MetricsData } from './types.js';

/** Metrics counts calls, their outcome and time, and the sandboxes known to be active. */
export class Metrics {
  private total = 0;
  private succeeded = 0;
  private failed = 0;
  private rateLimited = 0;
  private retryCount = 0;
  private responseTimeSum = 0;
  private executionTimeSum = 0;
  private readonly active = new Set<string>();

  started(): void {
    this.total++;
  }

  finished(ok: boolean, elapsedMs: number, opts: { execution?: boolean; rateLimited?: boolean } = {}): void {
    if (ok) this.succeeded++;
    else this.failed++;
    if (opts.rateLimited) this.rateLimited++;
    this.responseTimeSum += elapsedMs;
    if (opts.execution) this.executionTimeSum += elapsedMs;
  }

  retried(): void {
    this.retryCount++;
  }

  sandboxActive(id: string): void {
    this.active.add(id);
  }

  sandboxGone(id: string): void {
    this.active.delete(id);
  }

  /** sandboxesListed replaces the known set with a full listing. */
  sandboxesListed(ids: Iterable<string>): void {
    this.active.clear();
    for (const id of ids) this.active.add(id);
  }

  snapshot(): MetricsData {
    const done = this.succeeded + this.failed;
    return {
      totalRequests: this.total,
      successfulRequests: this.succeeded,
      failedRequests: this.failed,
      averageResponseTime: done === 0 ? 0 : this.responseTimeSum / done,
      totalExecutionTime: this.executionTimeSum,
      activeSandboxes: this.active.size,
      rateLimitedRequests: this.rateLimited,
      retries: this.retryCount,
      timestamp: Date.now(),
    };
  }
}

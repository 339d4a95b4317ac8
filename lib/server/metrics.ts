/** Prometheus metrics of one server, in its own registry (several servers may share a process). */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { BatchStats } from './batcher.js';

const ROW_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256];
const SECOND_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class ServerMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'route' | 'method' | 'status'>;
  readonly latency: Histogram<'route' | 'method'>;
  readonly batchRows: Histogram<'tower'>;
  readonly batchRequests: Histogram<'tower'>;
  readonly queueWait: Histogram<'tower'>;
  readonly forward: Histogram<'tower' | 'outcome'>;
  readonly classifierCache: Counter<'result'>;

  constructor(sample: { queueDepth: () => Record<string, number>; pending: () => number; inFlight: () => number }) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'clip_' });
    this.requests = new Counter({ name: 'clip_http_requests_total', help: 'HTTP requests answered, by route and status', labelNames: ['route', 'method', 'status'], registers });
    this.latency = new Histogram({ name: 'clip_http_request_duration_seconds', help: 'Time from request to response', labelNames: ['route', 'method'], buckets: SECOND_BUCKETS, registers });
    this.batchRows = new Histogram({ name: 'clip_batch_rows', help: 'Rows (texts or images) per forward pass', labelNames: ['tower'], buckets: ROW_BUCKETS, registers });
    this.batchRequests = new Histogram({ name: 'clip_batch_requests', help: 'Requests joined in one forward pass', labelNames: ['tower'], buckets: ROW_BUCKETS, registers });
    this.queueWait = new Histogram({ name: 'clip_queue_wait_seconds', help: 'Time a request waited in the batch queue', labelNames: ['tower'], buckets: SECOND_BUCKETS, registers });
    this.forward = new Histogram({ name: 'clip_forward_seconds', help: 'Duration of one batched forward pass', labelNames: ['tower', 'outcome'], buckets: SECOND_BUCKETS, registers });
    this.classifierCache = new Counter({ name: 'clip_classifier_cache_total', help: 'Zero-shot classifier cache lookups', labelNames: ['result'], registers });
    new Gauge({
      name: 'clip_queue_depth',
      help: 'Requests waiting in a tower batch queue',
      labelNames: ['tower'],
      registers,
      collect() {
        for (const [tower, n] of Object.entries(sample.queueDepth())) this.set({ tower }, n);
      },
    });
    new Gauge({
      name: 'clip_pending_requests',
      help: 'Admitted requests not yet in a forward pass (the max-queue limit applies to this)',
      registers,
      collect() {
        this.set(sample.pending());
      },
    });
    new Gauge({
      name: 'clip_in_flight_requests',
      help: 'Requests being handled',
      registers,
      collect() {
        this.set(sample.inFlight());
      },
    });
  }

  onBatch(stats: BatchStats): void {
    this.batchRows.observe({ tower: stats.tower }, stats.rows);
    this.batchRequests.observe({ tower: stats.tower }, stats.jobs);
    for (const w of stats.waits) this.queueWait.observe({ tower: stats.tower }, w);
  }
}

/**
 * Dynamic batching. Each tower (text, image) has a queue of jobs (one request's preprocessed rows); one forward
 * pass runs at a time over all towers, since each uses every core. When the engine is free, a tower's queue is
 * dispatched once it holds maxBatch rows or its oldest job has waited maxWaitMs (0: at once, so batches form
 * from the requests that arrived during the previous pass); whole jobs are packed up to maxBatch rows (a larger
 * job goes alone) and the results are split back to their jobs.
 */

export interface TowerSpec<P, R> {
  maxBatch: number;
  /** One forward pass over the payloads of several jobs; one result per payload, in order. */
  run(payloads: P[], rows: number[]): Promise<R[]>;
}

export interface BatchStats {
  tower: string;
  rows: number;
  jobs: number;
  /** Seconds each job waited in the queue. */
  waits: number[];
}

export interface SchedulerHooks {
  onBatch?(stats: BatchStats): void;
  onForward?(tower: string, seconds: number, ok: boolean): void;
}

export interface SubmitOptions {
  /** Aborting removes a queued job (or abandons a running one) and rejects with signal.reason. */
  signal?: AbortSignal;
  /** Called when the job enters a forward pass. */
  onStart?: () => void;
}

interface Job<P, R> {
  payload: P;
  rows: number;
  enqueuedAt: number;
  settled: boolean;
  resolve(r: R): void;
  reject(e: unknown): void;
  onStart?: () => void;
  detach(): void;
}

interface Tower<P, R> extends TowerSpec<P, R> {
  name: string;
  queue: Job<P, R>[];
  rows: number;
}

export class BatchScheduler {
  private readonly towers = new Map<string, Tower<unknown, unknown>>();
  private busy = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly maxWaitMs: number,
    private readonly hooks: SchedulerHooks = {},
  ) {}

  addTower<P, R>(name: string, spec: TowerSpec<P, R>): void {
    this.towers.set(name, { ...spec, name, queue: [], rows: 0 } as unknown as Tower<unknown, unknown>);
  }

  /** Jobs waiting (not yet in a forward pass) in a tower's queue. */
  queued(name: string): number {
    return this.towers.get(name)?.queue.length ?? 0;
  }

  get running(): boolean {
    return this.busy;
  }

  submit<P, R>(name: string, payload: P, rows: number, options: SubmitOptions = {}): Promise<R> {
    const tower = this.towers.get(name) as unknown as Tower<P, R> | undefined;
    if (!tower) return Promise.reject(new Error(`no tower ${name}`));
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<R>((resolve, reject) => {
      const job: Job<P, R> = {
        payload,
        rows,
        enqueuedAt: performance.now(),
        settled: false,
        resolve: (r) => settle(() => resolve(r)),
        reject: (e) => settle(() => reject(e)),
        onStart: options.onStart,
        detach: () => signal?.removeEventListener('abort', onAbort),
      };
      const settle = (fn: () => void) => {
        if (job.settled) return;
        job.settled = true;
        job.detach();
        fn();
      };
      const onAbort = () => {
        const i = tower.queue.indexOf(job);
        if (i >= 0) {
          tower.queue.splice(i, 1);
          tower.rows -= job.rows;
          this.pump(); // re-plans the wait timer, which must not outlive the jobs it waits for
        }
        job.reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      tower.queue.push(job);
      tower.rows += rows;
      this.pump();
    });
  }

  private pump(): void {
    if (this.busy) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    const now = performance.now();
    let best: Tower<unknown, unknown> | undefined;
    let wakeAt = Number.POSITIVE_INFINITY;
    for (const tower of this.towers.values()) {
      const head = tower.queue[0];
      if (!head) continue;
      if (tower.rows >= tower.maxBatch || now - head.enqueuedAt >= this.maxWaitMs) {
        if (!best || head.enqueuedAt < best.queue[0].enqueuedAt) best = tower; // oldest first across towers
      } else {
        wakeAt = Math.min(wakeAt, head.enqueuedAt + this.maxWaitMs);
      }
    }
    if (best) void this.dispatch(best);
    else if (wakeAt < Number.POSITIVE_INFINITY) this.timer = setTimeout(() => this.pump(), Math.max(0, wakeAt - now));
  }

  private async dispatch<P, R>(tower: Tower<P, R>): Promise<void> {
    this.busy = true;
    const jobs: Job<P, R>[] = [];
    let rows = 0;
    while (tower.queue.length > 0 && (jobs.length === 0 || rows + tower.queue[0].rows <= tower.maxBatch)) {
      const job = tower.queue.shift()!;
      jobs.push(job);
      rows += job.rows;
    }
    tower.rows -= rows;
    const start = performance.now();
    for (const job of jobs) job.onStart?.();
    this.hooks.onBatch?.({ tower: tower.name, rows, jobs: jobs.length, waits: jobs.map((j) => (start - j.enqueuedAt) / 1000) });
    let ok = false;
    try {
      const results = await tower.run(
        jobs.map((j) => j.payload),
        jobs.map((j) => j.rows),
      );
      jobs.forEach((job, i) => job.resolve(results[i]));
      ok = true;
    } catch (err) {
      for (const job of jobs) job.reject(err);
    } finally {
      this.hooks.onForward?.(tower.name, (performance.now() - start) / 1000, ok);
      this.busy = false;
      this.pump();
    }
  }
}

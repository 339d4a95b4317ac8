/**
 * One request's life in the server: admission against max-queue (held until its first forward pass starts),
 * and its deadline (an AbortSignal that also pulls its jobs out of the batch queues).
 */
import { HttpError } from './errors.js';

const TIMEOUT = Symbol('timeout');

export class Admission {
  private pendingCount = 0;

  constructor(
    private readonly maxQueue: number,
    private readonly retryAfter: number,
  ) {}

  get pending(): number {
    return this.pendingCount;
  }

  /** A ticket for a new request, or 429 when max-queue requests are already waiting. */
  admit(timeoutMs: number): RequestWork {
    if (this.pendingCount >= this.maxQueue) {
      throw new HttpError(429, 'E_OVERLOADED', `the queue is full (${this.maxQueue} requests waiting); retry later`, this.retryAfter);
    }
    this.pendingCount++;
    return new RequestWork(timeoutMs, this.retryAfter, () => this.pendingCount--);
  }
}

export class RequestWork {
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout;
  private released = false;
  /** The request's work, once race() was given it; the ticket is held until it settles. */
  private tracked: Promise<unknown> | undefined;
  /** Whether any of its jobs entered a forward pass. */
  started = false;

  constructor(
    private readonly timeoutMs: number,
    private readonly retryAfter: number,
    private readonly onRelease: () => void,
  ) {
    this.timer = setTimeout(() => this.controller.abort(TIMEOUT), timeoutMs);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Passed to the scheduler: the request leaves the queue count when its first job starts. */
  readonly markStarted = (): void => {
    this.started = true;
    this.release();
  };

  /** Cancels queued jobs (a client that went away). */
  abort(): void {
    this.controller.abort(TIMEOUT);
  }

  /** Settles with `work`, or rejects at the deadline: 503 if nothing ran yet, 504 otherwise. */
  async race<T>(work: Promise<T>): Promise<T> {
    work.catch(() => {}); // a late failure after the deadline is not unhandled
    this.tracked = work;
    const signal = this.controller.signal;
    let onAbort: (() => void) | undefined;
    const deadline = new Promise<never>((_, reject) => {
      onAbort = () => reject(TIMEOUT);
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      return await Promise.race([work, deadline]);
    } catch (err) {
      if (err !== TIMEOUT) throw err;
      const ms = this.timeoutMs;
      if (!this.started) throw new HttpError(503, 'E_UNAVAILABLE', `timed out after ${ms} ms before the request was processed`, this.retryAfter);
      throw new HttpError(504, 'E_TIMEOUT', `timed out after ${ms} ms`);
    } finally {
      if (onAbort) signal.removeEventListener('abort', onAbort);
    }
  }

  /**
   * The request was answered. Work still running (after a 503/504 or a client that left) is told to stop through
   * the signal, and keeps its admission ticket until it has, so max-queue bounds abandoned work too.
   */
  finish(): void {
    clearTimeout(this.timer);
    const tracked = this.tracked;
    if (!tracked) return this.release();
    let settled = false;
    const done = () => {
      settled = true;
      clearTimeout(cap);
      this.release();
    };
    // Held at most one more timeout, should the work never settle (a body stream that neither ends nor fails).
    const cap = setTimeout(done, this.timeoutMs);
    cap.unref();
    tracked.then(done, done);
    queueMicrotask(() => {
      if (!settled && !this.controller.signal.aborted) this.controller.abort(TIMEOUT);
    });
  }

  private release(): void {
    if (this.released) return;
    this.released = true;
    this.onRelease();
  }
}

/** Download progress: a throttled callback with a smoothed rate, and a terminal progress bar built on it. */
import cliProgress from 'cli-progress';

export interface DownloadProgress {
  repoId: string;
  file: string;
  /** Bytes of the file on disk so far (a resumed download starts above 0). */
  bytes: number;
  total: number;
  /** Bytes per second, smoothed; 0 until measured. */
  rate: number;
  /** Seconds left at the current rate, when known. */
  etaSeconds?: number;
  /** downloading; waiting for another process that holds the lock; verifying a hash; done. */
  state: 'downloading' | 'waiting' | 'verifying' | 'done';
}

export type ProgressCallback = (progress: DownloadProgress) => void;

const EMIT_EVERY_MS = 100;
const RATE_WINDOW_MS = 500;

/** Tracks one file's bytes, measures the rate (exponential moving average) and calls back at most every 100 ms. */
export class ProgressMeter {
  private bytes: number;
  private rate = 0;
  private lastEmit = 0;
  private windowStart: number;
  private windowBytes: number;
  private readonly started = Date.now();
  private readonly initial: number;

  constructor(
    private readonly base: Pick<DownloadProgress, 'repoId' | 'file' | 'total'>,
    private readonly callback: ProgressCallback | undefined,
    initial = 0,
  ) {
    this.bytes = initial;
    this.initial = initial;
    this.windowStart = Date.now();
    this.windowBytes = initial;
  }

  /** Records the current byte count (not a delta) and calls back when due. */
  set(bytes: number, state: DownloadProgress['state'] = 'downloading'): void {
    const now = Date.now();
    if (bytes < this.windowBytes) {
      this.windowBytes = bytes; // restarted from an earlier position
      this.windowStart = now;
    }
    this.bytes = bytes;
    const elapsed = now - this.windowStart;
    if (elapsed >= RATE_WINDOW_MS) {
      const sample = ((bytes - this.windowBytes) * 1000) / elapsed;
      this.rate = this.rate === 0 ? sample : 0.7 * this.rate + 0.3 * sample;
      this.windowStart = now;
      this.windowBytes = bytes;
    }
    if (now - this.lastEmit >= EMIT_EVERY_MS) {
      this.lastEmit = now;
      this.emit(state);
    }
  }

  emit(state: DownloadProgress['state']): void {
    if (!this.callback) return;
    const left = this.base.total - this.bytes;
    const etaSeconds = state === 'done' ? 0 : this.rate > 0 ? left / this.rate : undefined;
    this.callback({ ...this.base, bytes: this.bytes, rate: this.rate, etaSeconds, state });
  }

  done(): void {
    const elapsed = Date.now() - this.started;
    if (this.rate === 0 && elapsed > 0) this.rate = ((this.base.total - this.initial) * 1000) / elapsed; // too quick to sample
    this.bytes = this.base.total;
    this.emit('done');
  }
}

export function formatBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) (n /= 1024), i++;
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

function formatEta(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, '0');
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

export interface ProgressBar {
  onProgress: ProgressCallback;
  stop(): void;
}

/**
 * A progress bar per file on `stream` (stderr by default): bytes, rate and ETA. It draws only when the stream is
 * a terminal unless `force` is set (then it prints a line every few seconds).
 */
export function createProgressBar(options: { stream?: NodeJS.WriteStream; force?: boolean } = {}): ProgressBar {
  const stream = options.stream ?? process.stderr;
  let bar: cliProgress.SingleBar | undefined;
  let current = '';
  const stop = () => {
    bar?.stop();
    bar = undefined;
    current = '';
  };
  const onProgress: ProgressCallback = (p) => {
    const key = `${p.repoId}/${p.file}`;
    if (key !== current) {
      stop();
      current = key;
      bar = new cliProgress.SingleBar(
        {
          stream,
          format: '{file} |{bar}| {percentage}% {got}/{size} {speed} ETA {eta_h}',
          barsize: 24,
          hideCursor: false,
          noTTYOutput: options.force === true,
          notTTYSchedule: 2000,
          etaBuffer: 1,
        },
        cliProgress.Presets.shades_classic,
      );
      bar.start(p.total, p.bytes, payload(p));
    }
    bar?.update(p.bytes, payload(p));
    if (p.state === 'done') stop();
  };
  return { onProgress, stop };
}

function payload(p: DownloadProgress): Record<string, string> {
  const speed = p.state === 'waiting' ? '(another process is downloading)' : p.state === 'verifying' ? '(verifying)' : `${formatBytes(p.rate)}/s`;
  return { file: p.file, got: formatBytes(p.bytes), size: formatBytes(p.total), speed, eta_h: formatEta(p.etaSeconds) };
}

/** The bar the CLI wants: on when stderr is a terminal or `force`, unless HF_HUB_DISABLE_PROGRESS_BARS is set. */
export function cliProgressBar(force = false): ProgressBar | undefined {
  const disabled = ['1', 'ON', 'YES', 'TRUE'].includes((process.env.HF_HUB_DISABLE_PROGRESS_BARS ?? '').toUpperCase());
  if (disabled || (!force && !process.stderr.isTTY)) return undefined;
  return createProgressBar({ force });
}

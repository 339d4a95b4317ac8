/** Event-loop latency probes shared by the server hardening tests. */
import os from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';

/**
 * 100 ms, the bound the hardening issue sets, on a machine with a core per runnable process. On an overloaded
 * machine (load average above the core count) any CPU-bound thread waits for its turn, so the bound grows with
 * the load, and the test says so.
 */
export function latencyBound(t: { comment(msg: string): void }): number {
  const load = os.loadavg()[0];
  const cores = os.availableParallelism();
  const bound = 100 * Math.max(1, load / cores);
  t.comment(`load average ${load.toFixed(1)} on ${cores} cores: latency bound ${bound.toFixed(0)} ms`);
  return bound;
}

/**
 * Probes /healthz back to back until `until` settles: the slowest answer, and the longest the event loop was
 * blocked meanwhile (a block between two probes would delay a real prober just the same).
 */
export async function worstHealthz(base: string, until: Promise<unknown>): Promise<{ worst: number; probes: number; blocked: number }> {
  let done = false;
  void until.finally(() => (done = true));
  const delay = monitorEventLoopDelay({ resolution: 5 });
  delay.enable();
  let worst = 0;
  let probes = 0;
  while (!done) {
    const t0 = performance.now();
    const res = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(60_000) });
    await res.text();
    worst = Math.max(worst, performance.now() - t0);
    probes++;
  }
  delay.disable();
  return { worst, probes, blocked: delay.max / 1e6 };
}

/** Event-loop responsiveness: runs `work` while an interval timer ticks and reports the largest gap between ticks. */
export async function largestTimerGap(work: () => Promise<unknown>, intervalMs = 10): Promise<{ maxGap: number; ticks: number; elapsed: number }> {
  let last = performance.now();
  let maxGap = 0;
  let ticks = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
    ticks++;
  }, intervalMs);
  const started = performance.now();
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  const elapsed = performance.now() - started;
  return { maxGap: Math.max(maxGap, performance.now() - last), ticks, elapsed };
}

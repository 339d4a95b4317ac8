/**
 * Runs a hostile input in a child process so that a hang or a runaway allocation cannot take the test runner
 * with it: the child is killed past `timeoutMs` or `maxRssMB`, and its peak RSS is reported (the child's own
 * high-water mark when it answered, else the highest /proc sample).
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from './fixtures.js';

export interface AttackResult {
  /** The ClipError code the script's promise rejected with; 'ok' when it resolved; undefined when killed. */
  code?: string;
  message?: string;
  killed?: 'timeout' | 'rss';
  ms: number;
  peakRssMB: number;
}

/** RSS sampled from /proc every 20 ms (to kill a runaway child); undefined elsewhere. */
function rssMB(pid: number): number | undefined {
  try {
    const kb = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return kb ? Number(kb[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * `body` is an async function body that may `await lib('image/index.js')` (a module of lib/) and throws or
 * returns; the child prints what it threw.
 */
export function attack(body: string, limits: { timeoutMs: number; maxRssMB?: number }): Promise<AttackResult> {
  const script = `
    const lib = (p) => import(${JSON.stringify(`${path.join(projectRoot, 'lib')}/`)} + p.replace(/\\.js$/, '.ts'));
    // This process's own peak (VmHWM): getrusage's maxRSS also counts the parent's resident size at the fork.
    const peakKB = async () => {
      try {
        return Number(/VmHWM:\\s+(\\d+)/.exec((await import('node:fs')).readFileSync('/proc/self/status', 'utf8'))[1]);
      } catch {
        return process.resourceUsage().maxRSS;
      }
    };
    try {
      await (async () => { ${body} })();
      console.log(JSON.stringify({ code: 'ok', maxRssKB: await peakKB() }));
    } catch (e) {
      console.log(JSON.stringify({ code: e?.code ?? 'E_UNEXPECTED', message: String(e?.message ?? e).slice(0, 400), maxRssKB: await peakKB() }));
    }
    process.exit(0);`;
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let peak = 0;
    let killed: AttackResult['killed'];
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.resume();
    const timer = setTimeout(() => {
      killed = 'timeout';
      child.kill('SIGKILL');
    }, limits.timeoutMs);
    const sampler = setInterval(() => {
      const mb = child.pid === undefined ? undefined : rssMB(child.pid);
      if (mb === undefined) return;
      peak = Math.max(peak, mb);
      if (limits.maxRssMB !== undefined && mb > limits.maxRssMB * 2) {
        killed = 'rss';
        child.kill('SIGKILL');
      }
    }, 20);
    child.once('exit', () => {
      clearTimeout(timer);
      clearInterval(sampler);
      let parsed: { code?: string; message?: string; maxRssKB?: number } = {};
      try {
        parsed = JSON.parse(out.trim().split('\n').at(-1) ?? '');
      } catch {
        /* killed or crashed: no line */
      }
      const { maxRssKB, ...result } = parsed;
      // The child's own peak (VmHWM) when it answered; the samples catch a runaway that was killed.
      peak = Math.max(peak, (maxRssKB ?? 0) / 1024);
      resolve({ ...result, killed, ms: Date.now() - started, peakRssMB: Math.round(peak) });
    });
  });
}

/** A named pipe at `file` (replacing what is there). */
export function mkfifo(file: string): void {
  rmSync(file, { force: true });
  execFileSync('mkfifo', [file]);
}

/**
 * A throwaway redis-server for tests: a free loopback port, no persistence, stopped by its pid (also when the
 * test process exits early).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';

export interface TestRedis {
  url: string;
  port: number;
  pid: number;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.pid !== undefined && process.kill(child.pid, 'SIGKILL'), 3000);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    process.kill(child.pid!, 'SIGTERM');
  });
}

export async function startRedis(binary = process.env.REDIS_SERVER ?? '/usr/bin/redis-server'): Promise<TestRedis> {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const child = spawn(binary, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'yes'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const onExit = () => child.pid !== undefined && child.exitCode === null && process.kill(child.pid, 'SIGKILL');
    process.once('exit', onExit);
    const ready = await new Promise<boolean>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => resolve(false), 10_000);
      child.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('Ready to accept connections')) {
          clearTimeout(timer);
          resolve(true);
        }
      });
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      child.once('exit', () => {
        clearTimeout(timer);
        resolve(false);
      });
    });
    if (ready) {
      child.stdout!.resume();
      child.stderr!.resume();
      return {
        url: `redis://127.0.0.1:${port}`,
        port,
        pid: child.pid!,
        stop: async () => {
          await stopChild(child);
          process.off('exit', onExit);
        },
      };
    }
    await stopChild(child);
    process.off('exit', onExit);
    if (attempt >= 2) throw new Error(`redis-server did not start on a free port (${binary})`);
  }
}

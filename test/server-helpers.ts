/** HTTP helpers for the server tests: an in-process server on a loopback port, requests, metric lookups. */
import type { AddressInfo } from 'node:net';
import type { Clip } from '../lib/clip.js';
import { type ClipServer, type ServerOptions, createServer } from '../lib/server/index.js';

export interface Running {
  app: ClipServer;
  base: string;
}

export async function startServer(clip: Clip, options: ServerOptions = {}): Promise<Running> {
  const app = await createServer(clip, options);
  await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, base: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}` };
}

export interface Answer {
  status: number;
  headers: Headers;
  body: any;
}

export async function request(url: string, init: RequestInit = {}): Promise<Answer> {
  const res = await fetch(url, init);
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, headers: res.headers, body };
}

export function postJson(url: string, value: unknown): Promise<Answer> {
  return request(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof value === 'string' ? value : JSON.stringify(value) });
}

/** The first sample of `name` whose labels include `labels` in Prometheus text; 0 when absent. */
export function metric(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = m[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => have.includes(`${k}="${v}"`))) return Number(m[3]);
  }
  return 0;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Number.POSITIVE_INFINITY;
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

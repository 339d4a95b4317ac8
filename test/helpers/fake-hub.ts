/**
 * A local imitation of the Hugging Face Hub for tests, on 127.0.0.1 (random ports), serving files read from
 * disk (the shared fixtures; never copied). Two servers: the Hub (`/{repo}/resolve/{revision}/{file}`) and a
 * "CDN" on another port that LFS files redirect to, as huggingface.co redirects to its CDN. It logs every request
 * and can cut a body halfway, corrupt one, fail with 503, throttle, and gate a repo behind a token.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fixture } from './fixtures.js';

export interface FakeRepoSpec {
  id: string;
  /** Folder holding the files. */
  dir: string;
  files: string[];
  gated?: boolean;
  /** Another id that answers with a relative redirect to this one (a renamed repo). */
  oldId?: string;
}

export interface LoggedRequest {
  server: 'hub' | 'cdn';
  method: string;
  url: string;
  range?: string;
  authorization?: string;
  status: number;
}

interface FileInfo {
  path: string;
  size: number;
  sha256: string;
  gitSha1: string;
  lfs: boolean;
  /** What the cache names the blob: sha256 for LFS files, the git blob sha1 otherwise. */
  etag: string;
}

export interface FakeHub {
  endpoint: string;
  cdnOrigin: string;
  /** The token that opens gated repos. */
  token: string;
  requests: LoggedRequest[];
  commitOf(repoId: string): string;
  file(repoId: string, name: string): FileInfo;
  /** The next body of `name` (any repo) stops after `bytes` bytes: the connection is destroyed. */
  cutNext(name: string, bytes: number): void;
  /** The next body of `name` goes silent after `bytes` bytes, keeping the connection open. */
  stallNext(name: string, bytes: number): void;
  /** The next body of `name` has one byte flipped. */
  corruptNext(name: string): void;
  /** The next `count` requests to the Hub server answer 503. */
  failNext(count: number): void;
  /**
   * A hostile Hub: every response of the Hub server (not the CDN) has its headers passed through `rewrite`
   * first (undefined turns it off). Used to send `../..` commits, unsafe etags, redirects to file: URLs.
   */
  tamper(rewrite: ((headers: Record<string, string>, req: http.IncomingMessage) => Record<string, string>) | undefined): void;
  /** Bodies are sent in `chunk`-byte pieces `delayMs` apart (0 turns it off). */
  throttle(chunk: number, delayMs: number): void;
  close(): Promise<void>;
}

const LFS = /\.(safetensors|bin|pt|pth)$/;

function sha(kind: 'sha1' | 'sha256', ...parts: Array<string | Buffer>): string {
  const h = createHash(kind);
  for (const p of parts) h.update(p);
  return h.digest('hex');
}

function describe(file: string): FileInfo {
  const bytes = readFileSync(file);
  const sha256 = sha('sha256', bytes);
  const gitSha1 = sha('sha1', `blob ${bytes.length}\0`, bytes);
  const lfs = LFS.test(file);
  return { path: file, size: bytes.length, sha256, gitSha1, lfs, etag: lfs ? sha256 : gitSha1 };
}

function listen(server: http.Server): Promise<string> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)));
}

export async function startFakeHub(specs: FakeRepoSpec[]): Promise<FakeHub> {
  const token = 'hf_fake_test_token';
  const requests: LoggedRequest[] = [];
  const repos = new Map<string, { spec: FakeRepoSpec; commit: string; files: Map<string, FileInfo> }>();
  const byHash = new Map<string, FileInfo>();
  for (const spec of specs) {
    const files = new Map(spec.files.map((f) => [f, describe(path.join(spec.dir, f))] as const));
    for (const info of files.values()) byHash.set(info.sha256, info);
    repos.set(spec.id, { spec, commit: sha('sha1', `commit of ${spec.id}`), files });
  }
  const cuts = new Map<string, number>();
  const corrupt = new Set<string>();
  const stalls = new Map<string, number>();
  let failures = 0;
  let pace = { chunk: 0, delayMs: 0 };
  let rewrite: ((headers: Record<string, string>, req: http.IncomingMessage) => Record<string, string>) | undefined;
  let cdnOrigin = '';

  /** Sends bytes [start, end] of a file with Range support, applying the armed faults. */
  async function sendBody(req: http.IncomingMessage, res: http.ServerResponse, info: FileInfo, headers: Record<string, string>): Promise<number> {
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    let start = 0;
    let end = info.size - 1;
    let status = 200;
    if (range) {
      start = Number(range[1]);
      end = range[2] ? Math.min(Number(range[2]), end) : end;
      if (start >= info.size) {
        res.writeHead(416, { ...headers, 'content-range': `bytes */${info.size}` }).end();
        return 416;
      }
      status = 206;
      headers['content-range'] = `bytes ${start}-${end}/${info.size}`;
    }
    res.writeHead(status, { ...headers, 'content-length': String(end - start + 1), 'accept-ranges': 'bytes' });
    if (req.method === 'HEAD') {
      res.end();
      return status;
    }
    const name = path.basename(info.path);
    let body = readFileSync(info.path).subarray(start, end + 1);
    if (corrupt.delete(name)) {
      body = Buffer.from(body);
      body[body.length >> 1] ^= 0xff;
    }
    const cut = cuts.get(name);
    if (cut !== undefined) cuts.delete(name);
    const stall = stalls.get(name);
    if (stall !== undefined) stalls.delete(name);
    const stop = cut ?? stall;
    const limit = stop === undefined ? body.length : Math.min(stop, body.length);
    const step = pace.chunk > 0 ? pace.chunk : 1 << 16;
    for (let at = 0; at < limit; at += step) {
      const piece = body.subarray(at, Math.min(at + step, limit));
      if (!res.write(piece)) await new Promise((r) => res.once('drain', r));
      if (pace.delayMs > 0) await new Promise((r) => setTimeout(r, pace.delayMs));
      if (res.destroyed) return status;
    }
    if (stall !== undefined) {
      await new Promise((r) => res.once('close', r)); // silent until the client gives up
    } else if (cut !== undefined) {
      res.socket?.end(); // flush what was written, then close: the body stops short of its Content-Length
    } else {
      res.end();
    }
    return status;
  }

  function resolve(req: http.IncomingMessage, res: http.ServerResponse): Promise<number> | number {
    const match = /^\/(.+?)\/resolve\/([^/]+)\/(.+)$/.exec(new URL(req.url ?? '/', 'http://x').pathname);
    if (!match) return error(res, 404, 'RepoNotFound', 'no such route');
    const [, repoId, revision, file] = match.map((m) => decodeURIComponent(m));
    const renamed = [...repos.values()].find((r) => r.spec.oldId === repoId);
    if (renamed) {
      res.writeHead(307, { location: `/${renamed.spec.id}/resolve/${encodeURIComponent(revision)}/${file}` }).end();
      return 307;
    }
    const repo = repos.get(repoId);
    if (!repo) return error(res, req.headers.authorization ? 404 : 401, 'RepoNotFound', 'Repository not found'); // as the Hub: 401 without a token
    if (repo.spec.gated) {
      const auth = req.headers.authorization;
      if (!auth) return error(res, 401, 'GatedRepo', `Access to model ${repoId} is restricted. You must have access to it and be authenticated to access it. Please log in.`);
      if (auth !== `Bearer ${token}`) return error(res, 403, 'GatedRepo', `Access to model ${repoId} is restricted and you are not in the authorized list.`);
    }
    // A tampering (hostile) hub answers at any revision, the commit it made up included.
    if (!rewrite && revision !== 'main' && revision !== 'v1' && revision !== repo.commit) return error(res, 404, 'RevisionNotFound', `Invalid rev id: ${revision}`);
    const info = repo.files.get(file);
    const common = { 'x-repo-commit': repo.commit };
    if (!info) return error(res, 404, 'EntryNotFound', `${file} does not exist on "${revision}"`, common);
    if (info.lfs) {
      res.writeHead(302, {
        ...common,
        location: `${cdnOrigin}/repos/${info.sha256.slice(0, 2)}/${info.sha256}?X-Amz-Signature=fake`,
        'x-linked-etag': `"${info.sha256}"`,
        'x-linked-size': String(info.size),
        etag: `"${sha('sha1', 'pointer', info.sha256)}"`,
        'content-length': '0',
      });
      res.end();
      return 302;
    }
    return sendBody(req, res, info, { ...common, etag: `"${info.gitSha1}"` });
  }

  function error(res: http.ServerResponse, status: number, code: string, message: string, extra: Record<string, string> = {}): number {
    res.writeHead(status, { ...extra, 'x-error-code': code, 'x-error-message': message, 'content-type': 'text/plain' }).end(message);
    return status;
  }

  function handler(server: 'hub' | 'cdn') {
    return (req: http.IncomingMessage, res: http.ServerResponse) => {
      const entry: LoggedRequest = { server, method: req.method ?? '', url: req.url ?? '', range: req.headers.range, authorization: req.headers.authorization, status: 0 };
      requests.push(entry);
      if (server === 'hub' && rewrite) {
        const tampering = rewrite;
        const writeHead = res.writeHead.bind(res) as (status: number, headers?: Record<string, string>) => http.ServerResponse;
        res.writeHead = ((status: number, headers: Record<string, string> = {}) => writeHead(status, tampering({ ...headers }, req))) as typeof res.writeHead;
      }
      const done = (status: number) => {
        entry.status = status;
      };
      if (server === 'hub' && failures > 0) {
        failures--;
        return done(error(res, 503, 'ServiceUnavailable', 'try again'));
      }
      if (server === 'cdn') {
        const hash = /^\/repos\/[0-9a-f]{2}\/([0-9a-f]{64})$/.exec(new URL(req.url ?? '/', 'http://x').pathname)?.[1];
        const info = hash ? byHash.get(hash) : undefined;
        if (!info) return done(error(res, 404, 'NoSuchKey', 'not on the CDN'));
        void sendBody(req, res, info, { etag: `"${info.sha256}"` }).then(done, () => res.destroy());
        return;
      }
      const out = resolve(req, res);
      if (typeof out === 'number') done(out);
      else void out.then(done, () => res.destroy());
    };
  }

  const hubServer = http.createServer(handler('hub'));
  const cdnServer = http.createServer(handler('cdn'));
  const endpoint = await listen(hubServer);
  cdnOrigin = await listen(cdnServer);

  return {
    endpoint,
    cdnOrigin,
    token,
    requests,
    commitOf: (repoId) => repos.get(repoId)?.commit ?? '',
    file: (repoId, name) => {
      const info = repos.get(repoId)?.files.get(name);
      if (!info) throw new Error(`fake hub has no ${repoId}/${name}`);
      return info;
    },
    cutNext: (name, bytes) => void cuts.set(name, bytes),
    corruptNext: (name) => void corrupt.add(name),
    stallNext: (name, bytes) => void stalls.set(name, bytes),
    failNext: (count) => void (failures = count),
    throttle: (chunk, delayMs) => void (pace = { chunk, delayMs }),
    tamper: (fn) => void (rewrite = fn),
    close: async () => {
      for (const s of [hubServer, cdnServer]) {
        s.closeAllConnections();
        await new Promise((r) => s.close(r));
      }
    },
  };
}

/** The files of a laion repo, served from the xxlarge-tiny fixture. */
export const TINY_FILES = ['open_clip_config.json', 'open_clip_model.safetensors', 'open_clip_pytorch_model.bin', 'vocab.json', 'merges.txt'];

export function tinyRepo(id: string, extra: Partial<FakeRepoSpec> = {}): FakeRepoSpec {
  return { id, dir: fixture('models', 'xxlarge-tiny'), files: TINY_FILES, ...extra };
}

/** A fresh temporary directory, removed when the process exits. */
const tempDirs: string[] = [];

export function tempDir(prefix = 'hub-test-'): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  if (tempDirs.length === 0) process.once('exit', () => tempDirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
  tempDirs.push(dir);
  return dir;
}

/** Keeps the developer's own Hub settings (token, cache, offline flag) out of a test process. */
export function isolateHubEnv(): void {
  for (const key of ['HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN', 'HF_HUB_OFFLINE', 'TRANSFORMERS_OFFLINE', 'HF_HUB_CACHE', 'HUGGINGFACE_HUB_CACHE', 'HF_ENDPOINT']) delete process.env[key];
  const home = tempDir('hf-home-');
  process.env.HF_HOME = home;
  process.env.HF_TOKEN_PATH = path.join(home, 'token');
  process.env.HF_HUB_DISABLE_PROGRESS_BARS = '1';
}

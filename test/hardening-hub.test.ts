/**
 * Issue 18, class 2: a hostile Hub endpoint cannot make the client write outside its cache. Commits, etags and
 * redirect targets the server sends are checked before any of them becomes a path or a URL to fetch.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import test from 'tape';
import { isHubError, resolveHubModel } from '../lib/hub/index.js';
import { type FakeHub, isolateHubEnv, startFakeHub, tempDir, tinyRepo } from './helpers/fake-hub.js';
import { projectRoot } from './helpers/fixtures.js';

isolateHubEnv();
const REPO = 'laion/hostile-tiny';
// HF_HOME four levels below a directory we watch, so `../../../..` from a snapshot lands where we look.
const WATCHED = tempDir('hub-hostile-');
const HF_HOME = path.join(WATCHED, 'a', 'b', 'c', 'hf-home');
mkdirSync(HF_HOME, { recursive: true });
process.env.HF_HOME = HF_HOME;

let hub: FakeHub;

/** Every path under `dir`, relative to it. */
function tree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, entry.name);
      out.push(path.relative(dir, p));
      if (entry.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out.sort();
}

const HOME_REL = path.relative(WATCHED, HF_HOME);
/** Paths neither inside HF_HOME nor one of its parent folders. */
const outsideHome = (paths: string[]) => paths.filter((p) => !(p === HOME_REL || p.startsWith(HOME_REL + path.sep) || HOME_REL.startsWith(p + path.sep)));

type Rewrite = (headers: Record<string, string>) => Record<string, string>;
const commit = (value: string): Rewrite => (h) => ('x-repo-commit' in h ? { ...h, 'x-repo-commit': value } : h);
const etag = (value: string): Rewrite => (h) => ('etag' in h && !('x-linked-etag' in h) ? { ...h, etag: value } : h);
const linkedEtag = (value: string): Rewrite => (h) => ('x-linked-etag' in h ? { ...h, 'x-linked-etag': value } : h);
const location = (value: string): Rewrite => (h) => ('x-linked-etag' in h ? { ...h, location: value } : h);

const HOSTILE: [string, Rewrite][] = [
  ['X-Repo-Commit ../../../../x', commit('../../../../x')],
  ['X-Repo-Commit ../../../../../../x (deeper)', commit('../../../../../../x')],
  ['X-Repo-Commit an absolute path', commit(path.join(WATCHED, 'abs-evil'))],
  ['X-Repo-Commit sha/../../..', commit(`${'a'.repeat(40)}/../../../../x`)],
  ['X-Repo-Commit ..', commit('..')],
  ['X-Repo-Commit 39 hex digits', commit('0'.repeat(39))],
  ['X-Repo-Commit 40 upper-case hex digits', commit('A'.repeat(40))],
  ['X-Repo-Commit with a backslash', commit(`..\\..\\..\\${'b'.repeat(30)}`)],
  ['ETag "../../../../evil-blob"', etag('"../../../../evil-blob"')],
  ['ETag ".."', etag('".."')],
  ['ETag with a backslash', etag('"..\\\\..\\\\x"')],
  ['ETag of 300 characters', etag(`"${'c'.repeat(300)}"`)],
  ['X-Linked-Etag "../../x"', linkedEtag('"../../../x"')],
  ['X-Linked-Etag "/tmp/x"', linkedEtag('"/tmp/x"')],
  ['a redirect to file:///etc/passwd', location('file:///etc/passwd')],
  ['a redirect to a data: URL', location('data:text/plain,not-weights')],
];

let othersHfHome: string | undefined;

test('hub: start the fake hub', async (t) => {
  // Other test files loaded into the same process (npm test) set HF_HOME at load time: take it for these tests.
  othersHfHome = process.env.HF_HOME;
  process.env.HF_HOME = HF_HOME;
  hub = await startFakeHub([tinyRepo(REPO)]);
  t.ok(hub.endpoint.startsWith('http://127.0.0.1:'));
});

for (const [what, rewrite] of HOSTILE) {
  test(`hub, hostile endpoint: ${what} is refused with a typed error and nothing lands outside HF_HOME`, async (t) => {
    t.timeoutAfter(30_000);
    rmSync(path.join(HF_HOME, 'hub'), { recursive: true, force: true });
    const before = tree(WATCHED);
    hub.tamper(rewrite);
    try {
      await resolveHubModel(REPO, { endpoint: hub.endpoint, retries: 0, retryBaseMs: 1 }).then(
        (res) => t.fail(`resolved to ${res.dir}`),
        (err) => {
          t.ok(isHubError(err, 'protocol'), `HubError protocol: ${err?.message}`);
          t.equal(err.code, 'E_NETWORK', 'code E_NETWORK');
        },
      );
    } finally {
      hub.tamper(undefined);
    }
    const created = tree(WATCHED).filter((p) => !before.includes(p));
    t.deepEqual(outsideHome(created), [], 'nothing created outside HF_HOME');
  });
}

test('hub: the same endpoint, honest again, still downloads into the cache', async (t) => {
  t.timeoutAfter(60_000);
  rmSync(path.join(HF_HOME, 'hub'), { recursive: true, force: true });
  const res = await resolveHubModel(REPO, { endpoint: hub.endpoint, retryBaseMs: 1 });
  t.equal(res.commit, hub.commitOf(REPO));
  t.ok(res.dir.startsWith(path.join(HF_HOME, 'hub')), 'snapshot inside the cache');
  t.deepEqual(outsideHome(tree(WATCHED)), [], 'nothing outside HF_HOME');
});

test('hub: `download` from a hostile endpoint exits non-zero with E_NETWORK, writing nothing outside HF_HOME', async (t) => {
  t.timeoutAfter(60_000);
  rmSync(path.join(HF_HOME, 'hub'), { recursive: true, force: true });
  hub.tamper(commit('../../../../x'));
  try {
    const before = tree(WATCHED);
    // The CLI runs in a child process, so the fake hub here must keep answering: spawn asynchronously.
    const run = await new Promise<{ status: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', path.join(projectRoot, 'test', 'server-cli-entry.ts'), 'download', REPO], {
        cwd: projectRoot,
        env: { ...process.env, HF_ENDPOINT: hub.endpoint, HF_HOME },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const guard = setTimeout(() => child.kill('SIGKILL'), 45_000);
      child.once('exit', (status) => {
        clearTimeout(guard);
        resolve({ status, stderr });
      });
    });
    t.notEqual(run.status, 0, `exit code ${run.status}`);
    t.match(run.stderr, /E_NETWORK/, run.stderr.trim());
    t.deepEqual(outsideHome(tree(WATCHED).filter((p) => !before.includes(p))), [], 'nothing created outside HF_HOME');
  } finally {
    hub.tamper(undefined);
  }
});

test('hub: stop the fake hub', async (t) => {
  if (othersHfHome === undefined) delete process.env.HF_HOME;
  else process.env.HF_HOME = othersHfHome;
  await hub.close();
  t.pass('closed');
});

/**
 * Finds and loads the native addon, in one order: $CONVNEXT_CLIP_ADDON (a path, or `none` to hide it) -> a local
 * build (build/Release/convnext_clip.node) -> the platform package (@convnext-clip/<os>-<cpu>-<libc>, an optional
 * dependency npm installs for the matching platform only). When none loads, one message lists each attempt and
 * what to do, and the backend registry falls back to wasm.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { findPackageRoot, NATIVE_ADDON_ENV } from './package-root.js';

export const ADDON_FILE = 'convnext_clip.node';

/** The platforms with a prebuilt package (npm/<name>/). */
export const PREBUILT_PLATFORMS: readonly string[] = ['linux-x64-gnu', 'linux-arm64-gnu'];

export type AddonSource = 'env' | 'local-build' | 'platform-package';

export interface AddonAttempt {
  source: AddonSource;
  /** The file or package tried. */
  location: string;
  /** Why it did not load; absent for the one that did. */
  error?: string;
}

export type AddonLoad<T> =
  | { ok: true; addon: T; file: string; source: AddonSource; attempts: AddonAttempt[] }
  | { ok: false; message: string; attempts: AddonAttempt[] };

/** glibc or musl (Node reports the glibc version it runs on; musl builds report none). */
function libc(): 'gnu' | 'musl' | undefined {
  if (process.platform !== 'linux') return undefined;
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  return header?.glibcVersionRuntime ? 'gnu' : 'musl';
}

/** This machine's platform package name part, e.g. linux-x64-gnu or darwin-arm64. */
export function platformId(): string {
  const c = libc();
  return `${process.platform}-${process.arch}${c ? `-${c}` : ''}`;
}

export function platformPackage(): string {
  return `@convnext-clip/${platformId()}`;
}

function describeError(err: unknown): string {
  return (err as Error)?.message?.split('\n')[0] ?? String(err);
}

/** What to do when nothing loaded (after the list of attempts). */
function advice(): string {
  const id = platformId();
  const [os, cpu] = [process.platform, process.arch];
  const libcFlag = libc() ? ` --libc=${libc() === 'gnu' ? 'glibc' : 'musl'}` : '';
  const lines = PREBUILT_PLATFORMS.includes(id)
    ? [
        `install the optional dependencies (npm install --include=optional convnext-clip; pnpm and yarn install them by default)`,
        `installing for another machine (a container, a lambda)? npm install --os=${os} --cpu=${cpu}${libcFlag} convnext-clip`,
      ]
    : [`no prebuilt addon exists for ${id} (prebuilt: ${PREBUILT_PLATFORMS.join(', ')})`];
  lines.push(`build from source: npm run build:native in the convnext-clip folder (needs a C++17 compiler, make, python3)`);
  lines.push(`or use the WebAssembly backend, which runs everywhere: backend: 'wasm' (the default 'auto' falls back to it)`);
  return lines.map((l) => `  - ${l}`).join('\n');
}

function attemptsText(attempts: AddonAttempt[]): string {
  return attempts.map((a) => `  - ${a.source} (${a.location}): ${a.error ?? 'loaded'}`).join('\n');
}

/** Where to look; each part defaults to this process and package (injectable for tests). */
export interface AddonSearch {
  /** $CONVNEXT_CLIP_ADDON. */
  override?: string;
  /** The convnext-clip package folder (its build/Release, and where the platform package is resolved from). */
  root?: string;
  require?: (file: string) => unknown;
}

/** Loads the first addon found; `valid` checks its exports (a wrong or stale file counts as a failed attempt). */
export function loadNativeAddon<T>(valid: (addon: unknown) => string | undefined, search: AddonSearch = {}): AddonLoad<T> {
  const requireFn = search.require ?? createRequire(import.meta.url);
  const attempts: AddonAttempt[] = [];
  const tryFile = (source: AddonSource, file: string): AddonLoad<T> | undefined => {
    if (!existsSync(file)) {
      attempts.push({ source, location: file, error: 'not found' });
      return undefined;
    }
    try {
      const addon = requireFn(file);
      const invalid = valid(addon);
      if (invalid) throw new Error(invalid);
      attempts.push({ source, location: file });
      return { ok: true, addon: addon as T, file, source, attempts };
    } catch (err) {
      attempts.push({ source, location: file, error: describeError(err) });
      return undefined;
    }
  };
  const fail = (): AddonLoad<T> => ({
    ok: false,
    attempts,
    message: `the native addon could not be loaded on ${platformId()}; tried:\n${attemptsText(attempts)}\npossible solutions:\n${advice()}`,
  });

  const override = 'override' in search ? search.override : process.env[NATIVE_ADDON_ENV];
  if (override === 'none') {
    attempts.push({ source: 'env', location: `${NATIVE_ADDON_ENV}=none`, error: 'hidden on purpose' });
    return { ok: false, attempts, message: `the native addon is hidden (${NATIVE_ADDON_ENV}=none)` };
  }
  if (override) return tryFile('env', path.resolve(override)) ?? fail();  // an explicit choice: no fallback

  const root = 'root' in search ? search.root : findPackageRoot();
  if (!root) {
    attempts.push({ source: 'local-build', location: fileURLToPath(import.meta.url), error: 'no convnext-clip package.json above this module' });
    return fail();
  }
  const local = tryFile('local-build', path.join(root, 'build', 'Release', ADDON_FILE));
  if (local) return local;

  const name = platformPackage();
  let file: string | undefined;
  try {
    file = createRequire(path.join(root, 'package.json')).resolve(`${name}/${ADDON_FILE}`);
  } catch {
    attempts.push({ source: 'platform-package', location: name, error: 'not installed' });
  }
  return (file && tryFile('platform-package', file)) || fail();
}

let cached: AddonLoad<Record<string, unknown>> | undefined;

/** The process-wide load of the addon (tried once; the native backend and the image functions share it). */
export function nativeAddonLoad(): AddonLoad<Record<string, unknown>> {
  cached ??= loadNativeAddon<Record<string, unknown>>((addon) =>
    typeof (addon as { loadModel?: unknown } | null)?.loadModel === 'function'
      ? undefined
      : `not a convnext-clip addon (no loadModel export); rebuild it with \`npm run build:native\``,
  );
  return cached;
}

/** Where the Hub is and where its cache lives, read from the same environment variables huggingface_hub reads. */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const DEFAULT_ENDPOINT = 'https://huggingface.co';

type Env = NodeJS.ProcessEnv;

function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? path.join(os.homedir(), p.slice(1)) : p;
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v.trim() === '' ? undefined : v;
}

/** huggingface_hub's truthy values: 1, ON, YES, TRUE (any case). */
export function envFlag(value: string | undefined): boolean {
  return value !== undefined && ['1', 'ON', 'YES', 'TRUE'].includes(value.trim().toUpperCase());
}

/** $HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface. */
export function hfHome(env: Env = process.env): string {
  const home = nonEmpty(env.HF_HOME) ?? path.join(nonEmpty(env.XDG_CACHE_HOME) ?? path.join(os.homedir(), '.cache'), 'huggingface');
  return path.resolve(expandHome(home));
}

/** $HF_HUB_CACHE, else the legacy $HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub. */
export function hubCacheDir(env: Env = process.env): string {
  const dir = nonEmpty(env.HF_HUB_CACHE) ?? nonEmpty(env.HUGGINGFACE_HUB_CACHE);
  return dir ? path.resolve(expandHome(dir)) : path.join(hfHome(env), 'hub');
}

export function hubEndpoint(env: Env = process.env): string {
  return (nonEmpty(env.HF_ENDPOINT) ?? DEFAULT_ENDPOINT).replace(/\/+$/, '');
}

/** HF_HUB_OFFLINE (or the older TRANSFORMERS_OFFLINE). */
export function hubOffline(env: Env = process.env): boolean {
  return envFlag(env.HF_HUB_OFFLINE ?? env.TRANSFORMERS_OFFLINE);
}

/** $HF_TOKEN, else $HUGGING_FACE_HUB_TOKEN, else the file `huggingface-cli login` writes ($HF_TOKEN_PATH or $HF_HOME/token). */
export function hubToken(env: Env = process.env): string | undefined {
  const fromEnv = nonEmpty(env.HF_TOKEN) ?? nonEmpty(env.HUGGING_FACE_HUB_TOKEN);
  if (fromEnv) return fromEnv.trim();
  const file = nonEmpty(env.HF_TOKEN_PATH) ? path.resolve(expandHome(env.HF_TOKEN_PATH as string)) : path.join(hfHome(env), 'token');
  try {
    return nonEmpty(readFileSync(file, 'utf8'))?.trim();
  } catch {
    return undefined;
  }
}

/** Seconds from an environment variable (HF_HUB_ETAG_TIMEOUT, HF_HUB_DOWNLOAD_TIMEOUT), as milliseconds. */
export function envSeconds(value: string | undefined, fallbackSeconds: number): number {
  const n = Number(value);
  return (value !== undefined && Number.isFinite(n) && n > 0 ? n : fallbackSeconds) * 1000;
}

/** Parses Hub model references: `org/name`, `hf-hub:org/name`, either with an optional `@revision`. */
import { HubError } from './errors.js';

export interface HubModelRef {
  repoId: string;
  /** A branch, tag or 40-hex commit; undefined when the reference names none. */
  revision?: string;
}

export const DEFAULT_REVISION = 'main';
const NAME = /^[A-Za-z0-9](?:[\w.-]*[A-Za-z0-9_])?$/;
const REVISION = /^[\w.\-/]+$/;
export const COMMIT_SHA = /^[0-9a-f]{40}$/;
/** What a blob may be named: the Hub's etags are 40 or 64 hex digits; any plain name without a path in it is kept. */
export const SAFE_ETAG = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** One component of a file name inside a repo. */
const SAFE_FILE_PART = /^(?!\.{1,2}$)[^/\\\0]{1,255}$/;

/** Whether a repo file name (`a/b.json`) stays inside the snapshot: relative, no `.`/`..`, no backslash or NUL. */
export function isSafeRepoFile(file: string): boolean {
  return file.length <= 1024 && file.split('/').every((part) => SAFE_FILE_PART.test(part));
}

function validName(part: string): boolean {
  return part.length <= 96 && NAME.test(part) && !part.includes('--') && !part.includes('..');
}

/** Whether a string looks like a filesystem path rather than a repo id. */
function looksLikePath(source: string): boolean {
  return /^(\.{1,2}|~)?[/\\]/.test(source) || source.includes('\\') || /^[A-Za-z]:/.test(source) || source === '.' || source === '..';
}

/**
 * Returns the repo and revision a source names, or undefined when it is not a Hub reference.
 * Bare names (`gpt2`) need the `hf-hub:` prefix, so a missing local folder is not mistaken for a repo.
 */
export function parseHubRef(source: string): HubModelRef | undefined {
  const prefixed = source.startsWith('hf-hub:');
  const body = prefixed ? source.slice('hf-hub:'.length) : source;
  if (!prefixed && looksLikePath(body)) return undefined;
  const at = body.lastIndexOf('@');
  const repoId = at >= 0 ? body.slice(0, at) : body;
  const revision = at >= 0 ? body.slice(at + 1) : undefined;
  const parts = repoId.split('/');
  const shapeOk = parts.length === 2 || (prefixed && parts.length === 1);
  if (!shapeOk || !parts.every(validName)) {
    if (prefixed) throw new HubError('invalid', `${JSON.stringify(source)} is not a valid Hugging Face repo id (expected hf-hub:org/name[@revision])`, { subject: source });
    return undefined;
  }
  if (revision !== undefined) checkRevision(revision, source);
  return { repoId, revision };
}

export function checkRevision(revision: string, source = revision): void {
  if (!REVISION.test(revision) || revision.includes('..') || revision.startsWith('/') || revision.endsWith('/')) {
    throw new HubError('invalid', `invalid revision ${JSON.stringify(revision)} in ${JSON.stringify(source)}`, { subject: source });
  }
}

/** huggingface_hub's folder name for a model repo: `models--org--name`. */
export function repoFolderName(repoId: string): string {
  return ['models', ...repoId.split('/')].join('--');
}

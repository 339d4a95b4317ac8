/**
 * embed-dir's outputs checked before any work: each is a file name in an existing folder (not a directory,
 * FIFO or device), no two are the same file, and none is an input image or would become one. Files are
 * compared by real path (symbolic links and `..` resolved), so respellings of one file are caught.
 */
import { lstatSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { ClipError } from '../errors.js';

/** The files embed-dir writes for `out` (`index` defaults beside it). */
export function outputPaths(out: string, index: string): OutputPaths {
  return { out, index, journal: `${out}.journal`, lock: `${out}.lock` };
}

export interface OutputPaths {
  out: string;
  index: string;
  journal: string;
  lock: string;
}

function kindOf(p: string): string | undefined {
  let st;
  try {
    st = statSync(p, { throwIfNoEntry: false });
  } catch {
    return undefined; // ENOTDIR, ELOOP...: realName says what is wrong with its folder
  }
  if (!st || st.isFile()) return undefined;
  return st.isDirectory() ? 'a directory' : st.isFIFO() ? 'a FIFO' : st.isCharacterDevice() || st.isBlockDevice() ? 'a device' : 'not a regular file';
}

/** The real path `file` names: its folder's real path plus its name, or its target when it is a symbolic link. */
function realName(file: string, flag: string): string {
  const abs = path.resolve(file);
  const parent = path.dirname(abs);
  let realParent: string;
  try {
    realParent = realpathSync(parent);
  } catch (err) {
    throw new ClipError('E_NOT_FOUND', `${flag} ${file}: its folder ${parent} does not exist`, { subject: file, cause: err });
  }
  if (!statSync(realParent).isDirectory()) throw new ClipError('E_INVALID_ARGUMENT', `${flag} ${file}: ${parent} is not a folder`, { subject: file });
  const named = path.join(realParent, path.basename(abs));
  if (lstatSync(named, { throwIfNoEntry: false })?.isSymbolicLink()) {
    try {
      return realpathSync(named);
    } catch {
      return named; // a dangling link: it is replaced, nothing behind it is written
    }
  }
  return named;
}

/**
 * Checks the outputs against each other and, when given, the inputs: `files` relative to `folder`, `symlinks`
 * those of them that are links, `extensions` the listed ones (an output inside the folder with one would be
 * an input of the next run). Throws E_INVALID_ARGUMENT / E_NOT_FOUND naming the problem.
 */
export function checkOutputs(paths: OutputPaths, input?: { folder: string; files: readonly string[]; symlinks: readonly string[]; extensions: ReadonlySet<string> }): void {
  const named: [string, string][] = [
    ['--out', paths.out],
    ['--index', paths.index],
    ['the journal', paths.journal],
    ['the lock', paths.lock],
  ];
  const real = named.map(([flag, file]) => {
    const kind = kindOf(file);
    if (kind !== undefined && flag !== 'the lock') {
      throw new ClipError('E_INVALID_ARGUMENT', `${flag} ${file} is ${kind}; it must name a file (existing ones are replaced)`, { subject: file });
    }
    return realName(file, flag);
  });
  for (let i = 0; i < real.length; i++) {
    for (let j = i + 1; j < real.length; j++) {
      if (real[i] === real[j]) throw new ClipError('E_INVALID_ARGUMENT', `${named[i][0]} and ${named[j][0]} are the same file (${real[i]}); give them different names`, { subject: named[i][1] });
    }
  }
  if (input === undefined) return;
  const folder = realpathSync(input.folder);
  const inputs = new Set(input.files);
  const targets = new Map<string, string>();
  for (const link of input.symlinks) {
    try {
      targets.set(realpathSync(path.join(folder, link)), link);
    } catch {
      // vanished: decoding it will fail and report it
    }
  }
  real.forEach((file, i) => {
    const [flag, given] = named[i];
    const rel = path.relative(folder, file);
    const inside = rel !== '' && rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel);
    const relSlash = rel.split(path.sep).join('/');
    const image = inside && inputs.has(relSlash) ? relSlash : targets.get(file);
    if (image !== undefined) throw new ClipError('E_INVALID_ARGUMENT', `${flag} ${given} is the input image ${image}; writing it would destroy it`, { subject: given });
    if (inside && input.extensions.has(path.extname(file).toLowerCase())) {
      throw new ClipError('E_INVALID_ARGUMENT', `${flag} ${given} is inside the folder and has an image extension: the next run would take it as an input`, { subject: given });
    }
  });
}

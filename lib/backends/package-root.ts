/** Where this package is installed (for its addons and prebuilt files). Node only. */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const PACKAGE_NAME = 'convnext-clip';

/** The directory of the package.json named convnext-clip at or above this module. */
export function findPackageRoot(start: string = path.dirname(fileURLToPath(import.meta.url))): string | undefined {
  for (let dir = start; ; dir = path.dirname(dir)) {
    const manifest = path.join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        if ((JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown }).name === PACKAGE_NAME) return dir;
      } catch {
        // an unreadable package.json is not ours; keep walking up
      }
    }
    if (path.dirname(dir) === dir) return undefined;
  }
}

/** Hides the native addon when set to `none` (as if installed with --ignore-scripts); any other value is its path. */
export const NATIVE_ADDON_ENV = 'CONVNEXT_CLIP_ADDON';

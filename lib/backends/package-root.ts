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

/** The native addon's file (build/Release/convnext_clip.node, or $CONVNEXT_CLIP_ADDON), or why there is none. */
export function nativeAddonFile(): { file: string } | { error: string } {
  const override = process.env[NATIVE_ADDON_ENV];
  if (override === 'none') return { error: `the native addon is hidden (${NATIVE_ADDON_ENV}=none)` };
  if (override) return existsSync(override) ? { file: path.resolve(override) } : { error: `${NATIVE_ADDON_ENV} names ${override}, which does not exist` };
  const root = findPackageRoot();
  if (!root) return { error: `cannot find the ${PACKAGE_NAME} package root above ${fileURLToPath(import.meta.url)}` };
  const file = path.join(root, 'build', 'Release', 'convnext_clip.node');
  return existsSync(file) ? { file } : { error: `the native addon is not built (${file} is missing; run \`npm run build:native\`)` };
}

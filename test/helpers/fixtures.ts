/** Where the golden fixtures live: ../shared/fixtures beside the project, or $CONVNEXT_CLIP_FIXTURES. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export const fixturesDir = process.env.CONVNEXT_CLIP_FIXTURES
  ? path.resolve(process.env.CONVNEXT_CLIP_FIXTURES)
  : path.resolve(projectRoot, '..', 'shared', 'fixtures');

export function fixture(...parts: string[]): string {
  return path.join(fixturesDir, ...parts);
}

export const FIXTURE_MODELS = ['xxlarge-tiny', 'xxlarge-deep256', 'large-d-tiny'] as const;

// Where the repository is, wherever the compiled test runs from (dist/test/... or test/...).
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(start: string): string {
  let dir = start;
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${start}`);
    dir = up;
  }
  return dir;
}

/** The repository root (the folder holding package.json). */
export const repoRoot = findRoot(dirname(fileURLToPath(import.meta.url)));

/** A path inside the repository, e.g. `repoPath('test', 'oracle', 'unicorn.py')`. */
export const repoPath = (...parts: string[]): string => resolve(repoRoot, ...parts);

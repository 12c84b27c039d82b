// After `tsc`: remove what dist/ still holds of sources that no longer exist (a renamed or deleted
// .ts leaves its .js behind, and tap would go on running a deleted test). dist/'s other files (the
// guest images' cache) stay.
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const dist = join(root, 'dist');
const OUTPUT = /\.(js|js\.map|d\.ts)$/;

function prune(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) prune(path);
    else if (OUTPUT.test(entry.name)) {
      const source = join(root, relative(dist, path).replace(OUTPUT, '.ts'));
      if (!existsSync(source)) rmSync(path);
    }
  }
}

if (existsSync(dist)) prune(dist);

// Removes what tsc left in dist/ from a source that is gone. tsc writes
// dist/X.js (.js.map, .d.ts, .d.ts.map) for each X.ts and never deletes one:
// after a test file is renamed or merged into another, its old compiled copy
// would stay in dist/test/ and tap (which runs dist/test/**/*.test.js) would
// still run it. `npm run build` and `npm test` run this after tsc;
// test/cli_smoke.test.ts fails on a compiled test whose source is gone.
//
//   node dist/scripts/prune_dist.js      (prints what it removed)
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

// This file runs built (dist/scripts/) and, under the tests, as source (scripts/).
const ROOT = ['../', '../../'].map((up) => fileURLToPath(new URL(up, import.meta.url))).find((dir) => existsSync(join(dir, 'package.json')))!;
const DIST = join(ROOT, 'dist');
const OUTPUT = /\.(js|js\.map|d\.ts|d\.ts\.map)$/;

/** Each file under dist/ that tsc writes, whose TypeScript source no longer exists, by path. */
export function orphans(dist = DIST, root = ROOT): string[] {
  const found: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (OUTPUT.test(entry.name) && !existsSync(join(root, relative(dist, path)).replace(OUTPUT, '.ts'))) found.push(path);
    }
  };
  if (existsSync(dist)) walk(dist);
  return found;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const file of orphans()) {
    rmSync(file);
    process.stdout.write(`prune_dist: removed ${relative(ROOT, file)} (its source is gone)\n`);
  }
}

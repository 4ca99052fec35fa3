// Where the repository's files are, seen from a test. The suite runs the
// compiled tests in dist/test/; a developer runs one TypeScript file from
// test/. Both find the repository's root the same way (the folder holding
// package.json), so no path is written relative to the test file. What a
// test writes goes to a folder of its own (tempDir), removed when the test
// process exits.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../src/zoo/manifest.js';

export const ROOT = packageRoot();
/** test/fixtures/, with the trailing slash. */
export const FIXTURES = join(ROOT, 'test', 'fixtures') + '/';
/** The built executable (npm test builds first). */
export const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
/** weights/, with the trailing slash: the shipped models, their tokenizer and manifest. */
export const WEIGHTS = join(ROOT, 'weights') + '/';

const made: string[] = [];
process.on('exit', () => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

/** A fresh folder in the system's temporary folder, removed with everything in it when this test process exits. */
export function tempDir(prefix = 'streamllm-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

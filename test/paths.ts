// Where the repository's files are, seen from a test. The suite runs the
// compiled tests in dist/test/; a developer runs one TypeScript file from
// test/. Both find the repository's root the same way (the folder holding
// package.json), so no path is written relative to the test file.
import { join } from 'node:path';
import { packageRoot } from '../src/zoo/manifest.js';

export const ROOT = packageRoot();
/** test/fixtures/, with the trailing slash. */
export const FIXTURES = join(ROOT, 'test', 'fixtures') + '/';
/** The built executable (npm test builds first). */
export const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
/** weights/, with the trailing slash: the shipped models, their tokenizer and manifest. */
export const WEIGHTS = join(ROOT, 'weights') + '/';

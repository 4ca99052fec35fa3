// Shared checks of the bad-input tests (test/bad_input_*.test.ts): a refused
// run exits with code 2 and one line on stderr, no stack trace, and leaves
// nothing behind.
import { readdirSync } from 'node:fs';
import type { Test } from 'tap';
import type { CliResult } from './helpers.js';

/** Exit code 2, one "streamllm: ..." line matching `message`, and no stack trace. */
export function assertRefused(t: Test, r: CliResult, message: RegExp): void {
  t.equal(r.status, 2, 'exit code 2');
  const errors = r.stderr.split('\n').filter((l) => l.startsWith('streamllm: '));
  t.equal(errors.length, 1, 'one error line');
  t.match(errors[0] ?? '', message);
  t.notMatch(r.stderr, /^\s+at /m, 'no stack trace');
}

/** The names in a folder, sorted: compared before and after a refused run. */
export function listing(dir: string): string[] {
  return readdirSync(dir).sort();
}

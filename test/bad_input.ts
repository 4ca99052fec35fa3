// Shared checks of the bad-input tests (test/bad_input_*.test.ts): a refused
// run exits with code 2 and one line on stderr, no stack trace, and leaves
// nothing behind.
import * as tf from '@tensorflow/tfjs';
import { readdirSync } from 'node:fs';
import type { Test } from 'tap';
import { loadPooledHfModel } from '../src/model/load.js';
import { type CliResult, watchPools } from './helpers.js';

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

/**
 * A Hugging Face directory read straight into the worker pool (as
 * `--weights q8` reads it) is refused with one `type` error matching
 * `message`, and leaves no tensor and no pool behind.
 */
export function assertPooledLoadRefused(t: Test, dir: string, type: new (...args: never[]) => Error, message: RegExp): void {
  const before = tf.memory().numTensors;
  const pools = watchPools();
  let error: unknown;
  try {
    loadPooledHfModel(dir, { threads: 2, weights: 'q8' }, 'test', { onNote: () => {} });
  } catch (e) {
    error = e;
  }
  t.equal(pools(), 0, 'pooled load: no worker pool left');
  t.ok(error instanceof type, `pooled load: a ${type.name}`);
  t.match((error as Error | undefined)?.message, message, 'pooled load: the same message');
  t.equal(tf.memory().numTensors, before, 'pooled load: no tensor leak');
}

// Shared set-up for the tests: each tap file is its own process, so each
// starts a backend. STREAMLLM_TEST_BACKEND picks it (default wasm).
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { WorkerPool } from '../kernels/pool.js';
import { type BackendName, initBackend } from '../src/backend.js';
import { DenseCache } from '../src/cache/dense.js';
import { cacheShape } from '../src/model/config.js';
import { forward } from '../src/model/transformer.js';
import type { Model } from '../src/model/weights.js';
import { CLI, FIXTURES } from './paths.js';

export { FIXTURES };

export async function initTestBackend(): Promise<BackendName> {
  const name = (process.env.STREAMLLM_TEST_BACKEND ?? 'wasm') as BackendName;
  await initBackend(name);
  tf.env().set('IS_TEST', true);
  return name;
}

export interface ConformanceCase {
  name: string;
  policy: { kind: 'dense' | 'window' | 'streaming' | 'recompute'; sinks?: number; window?: number };
  tokens: number;
  nll: number[];
}

export interface Conformance {
  config: { dim: number; hid: number; L: number; H: number; KV: number; V: number; S: number; hs: number };
  tokens: number[];
  dense_logits: number[][];
  cases: ConformanceCase[];
  greedy: { prompt: number[]; steps: number; tokens: number[] };
}

export function loadConformance(): Conformance {
  return JSON.parse(readFileSync(`${FIXTURES}tiny-gqa.expected.json`, 'utf8')) as Conformance;
}

/** A float64's bits as 16 hex digits, most significant first (how the pinned values of test/kernels and test/pooled_stream are written). */
export function float64Hex(x: number): string {
  return Buffer.from(new Float64Array([x]).buffer)
    .reverse()
    .toString('hex');
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Run the built CLI (npm test builds first) and collect its output. */
export function runCli(args: string[], options: { input?: string; timeout?: number; env?: NodeJS.ProcessEnv } = {}): CliResult {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    input: options.input,
    timeout: options.timeout ?? 120_000,
    env: options.env,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * Run the CLI inside this process (much faster than spawning: tfjs loads
 * once), capturing what it writes to stdout and stderr.
 */
export async function runCliInProcess(args: string[]): Promise<CliResult> {
  const { main } = await import('../src/cli/main.js');
  let stdout = '';
  let stderr = '';
  const out = process.stdout.write;
  const err = process.stderr.write;
  process.stdout.write = (chunk: string | Uint8Array) => ((stdout += chunk.toString()), true);
  process.stderr.write = (chunk: string | Uint8Array) => ((stderr += chunk.toString()), true);
  try {
    const status = await main(args);
    return { status, stdout, stderr };
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
}

/**
 * The lines of a CLI's stderr without its status lines (`status`: by
 * default the backend and products lines a command prints as it starts): an
 * argument error should leave exactly one.
 */
export function errorLines(stderr: string, status = /^(backend|products):/): string[] {
  return stderr
    .trim()
    .split('\n')
    .filter((l) => !status.test(l));
}

/** The logits of every position of `ids` under full causal attention: [T * vocab]. */
export function denseLogits(model: Model, ids: number[]): Float32Array {
  const cache = new DenseCache(cacheShape(model.config));
  const out = forward(model, ids, cache);
  const data = out.dataSync() as Float32Array;
  out.dispose();
  cache.dispose();
  return data;
}

/**
 * Counts worker pools left undisposed: from this call on, every pool that
 * takes memory (alloc) is live until its dispose(). The returned function
 * stops watching and says how many are still live (a failed load must leave
 * none).
 */
export function watchPools(): () => number {
  const live = new Set<WorkerPool>();
  const proto = WorkerPool.prototype;
  const { alloc, dispose } = proto;
  proto.alloc = function (this: WorkerPool, bytes: number) {
    live.add(this);
    return alloc.call(this, bytes);
  };
  proto.dispose = function (this: WorkerPool) {
    live.delete(this);
    return dispose.call(this);
  };
  return () => {
    proto.alloc = alloc;
    proto.dispose = dispose;
    return live.size;
  };
}

/** The /proc/self/smaps entry of the mapping that holds `address` ('' where none does). */
function smapsAt(address: number): string {
  for (const mapping of readFileSync('/proc/self/smaps', 'utf8').split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/)) {
    const [start, end] = mapping
      .split(' ', 1)[0]!
      .split('-')
      .map((h) => parseInt(h, 16));
    if (start! <= address && address < end!) return mapping;
  }
  return '';
}

/** The VmFlags of the mapping that holds `address`, from /proc/self/smaps ('' when no mapping holds it). */
export function vmFlagsAt(address: number): string {
  return /VmFlags:(.*)/.exec(smapsAt(address))?.[1]?.trim() ?? '';
}

/** KB of the mapping that holds `address` in 2 MB pages (smaps AnonHugePages; 0 where none holds it). */
export function anonHugePagesKbAt(address: number): number {
  return Number(/^AnonHugePages:\s+(\d+) kB/m.exec(smapsAt(address))?.[1] ?? 0);
}

// Shared set-up for the tests: each tap file is its own process, so each
// starts a backend. STREAMLLM_TEST_BACKEND picks it (default wasm).
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type BackendName, initBackend } from '../src/backend.js';

export const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));

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

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

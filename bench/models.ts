// The benchmarks' models: random checkpoints of a named shape, kept between
// runs, and the weight products of a model alone (what a decode step or a
// block cannot beat). Apart from bench/common.ts, which must not load tfjs.
import { existsSync, mkdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { writeLlama2c } from '../src/checkpoint/llama2c.js';
import { NAMED_SHAPES } from '../src/model/named_shapes.js';
import { project } from '../src/model/project.js';
import { randomLlamaTensors } from '../src/model/random_init.js';
import { type Linear, type Model, weightTensor } from '../src/model/weights.js';
import { BENCH_CACHE } from './common.js';

/** A random llama2.c checkpoint of a named shape, written once under bench/.cache. */
export function randomCheckpoint(shape: string, seed = 0): string {
  mkdirSync(BENCH_CACHE, { recursive: true });
  const file = join(BENCH_CACHE, `${shape}-seed${seed}.bin`);
  if (!existsSync(file)) {
    const s = NAMED_SHAPES[shape];
    if (s === undefined) throw new Error(`unknown shape ${shape}`);
    // written under a temporary name: an interrupted run leaves no half file to reuse
    const partial = `${file}.${process.pid}.tmp`;
    writeLlama2c(partial, randomLlamaTensors({ ...s, sharedClassifier: true }, seed));
    renameSync(partial, file);
  }
  return file;
}

/**
 * Wall ms, per repetition, of the model's weight products alone for `rows`
 * tokens: x [rows, in] @ W for every matrix, each read once, as the forward
 * pass runs them. For one row, the memory-bandwidth floor of a decode step;
 * for a block, the arithmetic floor of blocked scoring.
 */
export function weightProductsMs(model: Model, rows: number, reps: number): number[] {
  const w = model.weights;
  const matrices: Linear[] = [...w.layers.flatMap((l) => [l.qkv, l.out, l.up, l.down]), { weight: w.classifier, pooled: w.pooledClassifier }];
  const inDim = (m: Linear) => m.pooled?.cols ?? weightTensor(m).shape[0];
  const inputs = new Map(matrices.map((m) => [inDim(m), tf.ones<tf.Rank.R2>([rows, inDim(m)])]));
  const times: number[] = [];
  for (let r = 0; r < reps; r++) {
    const started = performance.now();
    for (const m of matrices) project(inputs.get(inDim(m))!, m).dispose();
    times.push(performance.now() - started);
  }
  tf.dispose([...inputs.values()]);
  return times;
}

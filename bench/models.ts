// The benchmarks' models: random checkpoints of a named shape, kept between
// runs, and the weight products of a model alone (what a decode step or a
// block cannot beat). Apart from bench/common.ts, which must not load tfjs.
import { existsSync, mkdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { writeLlama2c } from '../src/checkpoint/llama2c.js';
import { loadModelPlaced } from '../src/model/load.js';
import { NAMED_SHAPES } from '../src/model/named_shapes.js';
import { placementOf } from '../src/model/placement.js';
import { project } from '../src/model/project.js';
import { randomLlamaTensors } from '../src/model/random_init.js';
import { type Linear, type Model, weightTensor } from '../src/model/weights.js';
import { BENCH_CACHE } from './common.js';

/** A random llama2.c checkpoint of a named shape, written once in BENCH_CACHE (the system's temporary folder). */
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
 * The checkpoint as the CLI and loadModel(path, { threads, weights }) open it
 * (placementOf, then loadModelPlaced: a llama2.c file's rows go straight into
 * the pool, pooled_llama2c.ts), with the A/B runs' pool settings added; with
 * `tfjs`, the plain tfjs path (loadModel(path)). `bench` starts the line of a
 * model too large for the pool. Until session 26 bench/decode.ts's child
 * loaded the float32 model into tfjs and then placed it (placeWeights): the
 * same bits and, measured, the same decode speed (bench/load_paths.ts,
 * docs/speed.md), but 80 MiB more peak RSS at 15M than users' processes.
 */
export function loadOurs(
  bench: string,
  file: string,
  threads: number,
  weights: 'f32' | 'q8',
  tfjs = false,
  tuning: { hugePages?: boolean; spinMicros?: number } = {},
): Model {
  const placement = tfjs ? undefined : { ...placementOf({ threads, weights }, 'wasm')!, ...tuning };
  return loadModelPlaced(file, placement, `${bench}: ${file} with weights '${weights}'`);
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

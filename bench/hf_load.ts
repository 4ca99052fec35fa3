// Loading time and peak memory of Hugging Face directories against the
// llama2.c file of the same random model: safetensors F32 and BF16 (widened
// on load), one process per load so each peak RSS is its own. With
// --weights, each is loaded for the worker pool both ways: as a float32
// model then placed (placeWeights), and read straight into the pool
// (loadPlacedModel: pooled_llama2c.ts, from_hf.ts).
//
//   node dist/bench/hf_load.js [--shape 110M] [--backend wasm] [--weights f32|q8] [--threads N] [--record]
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BACKENDS, type BackendName, initBackend } from '../src/backend.js';
import { NAMED_SHAPES } from '../src/model/named_shapes.js';
import { WEIGHT_FORMATS, type WeightFormat } from '../kernels/weight_format.js';
import { BENCH_CACHE, benchArgs, markdownTable, peakRssMiB, recordResult, runBench, shapeFlag } from './common.js';

const USAGE = `Load time and peak memory of one random model as a llama2.c file and as Hugging Face safetensors (F32, BF16), one process per load.

  node dist/bench/hf_load.js [--shape 110M] [--backend wasm] [--weights f32|q8] [--threads N] [--record]

  --shape S      a named shape (15M, 42M, 110M, ...); its files are written once under ${BENCH_CACHE}
  --backend B    wasm | cpu | tensorflow
  --weights W    load for the worker pool in format W, each file twice: as float32 then placed, and straight into the pool
  --threads N    the pool's threads with --weights (default 1)
  --record       append the table to bench/RESULTS.md
  --help         this text`;
/** How a child loads: loadModel alone, loadModel then placeWeights, or straight into the pool (loadPlacedModel). */
const VIAS = ['load', 'place', 'stream'] as const;
type Via = (typeof VIAS)[number];

// Every flag read and checked here, before tfjs or a model loads: --help and a bad value answer at once.
const cli = benchArgs(USAGE, ['child FILE', 'via V']);
const backend = cli.choice('backend', 'wasm', BACKENDS);
const weights = cli.has('weights') ? cli.choice('weights', 'q8', WEIGHT_FORMATS) : undefined;
const threads = cli.count('threads', 1);
const childPath = cli.value('child', '');
const childVia = cli.choice('via', 'load', VIAS);
const shape = shapeFlag(cli, 'shape', '110M');
const tf = await import('@tensorflow/tfjs');
const { writeLlama2c } = await import('../src/checkpoint/llama2c.js');
const { modelFromLlama2c } = await import('../src/model/from_llama2c.js');
const { loadModel } = await import('../src/model/load.js');
const { placeWeights } = await import('../src/model/pooled.js');
const { loadPlacedModel } = await import('../src/cli/placement.js');
const { randomLlamaTensors } = await import('../src/model/random_init.js');
const { saveHfModel } = await import('../src/model/to_hf.js');
const { disposeModel } = await import('../src/model/weights.js');

interface LoadResult {
  seconds: number;
  peakRssMiB: number;
  baselineRssMiB: number;
  backendMiB: number;
  poolMiB: number;
}

/** Child mode: start the backend, note RSS, load, report. */
async function child(path: string, backend: BackendName, via: Via, weights: WeightFormat, threads: number): Promise<void> {
  await initBackend(backend);
  const baselineRssMiB = peakRssMiB();
  const started = performance.now();
  const model =
    via === 'load'
      ? loadModel(path)
      : via === 'place'
        ? placeWeights(loadModel(path), { threads, weights })
        : await loadPlacedModel(path, { threads, weights }, 'hf_load');
  const seconds = (performance.now() - started) / 1000;
  const poolMiB = (model.pool?.allocatedBytes ?? 0) / 2 ** 20;
  const result: LoadResult = { seconds, peakRssMiB: peakRssMiB(), baselineRssMiB, backendMiB: tf.memory().numBytes / 2 ** 20, poolMiB };
  await disposeModel(model);
  process.stdout.write(JSON.stringify(result));
}

/** The random model of `shape` as llama2.c .bin and as HF F32 / BF16 directories, written once. */
async function checkpoints(shape: string, backend: BackendName): Promise<{ label: string; path: string }[]> {
  const base = join(BENCH_CACHE, `hf-${shape}`);
  const list = [
    { label: 'llama2.c .bin (F32)', path: `${base}.bin` },
    { label: 'HF safetensors F32', path: `${base}-f32` },
    { label: 'HF safetensors BF16', path: `${base}-bf16` },
  ];
  if (list.every((c) => existsSync(c.path))) return list;
  const s = NAMED_SHAPES[shape]!; // checked by main
  mkdirSync(BENCH_CACHE, { recursive: true });
  await initBackend(backend);
  const tensors = randomLlamaTensors({ ...s, sharedClassifier: false }, 0);
  writeLlama2c(list[0]!.path, tensors);
  const model = modelFromLlama2c(tensors);
  saveHfModel(list[1]!.path, model);
  saveHfModel(list[2]!.path, model, {}, { dtype: 'BF16' });
  await disposeModel(model);
  return list;
}

function bytesOf(path: string): number {
  if (!statSync(path).isDirectory()) return statSync(path).size;
  return readdirSync(path).reduce((n, f) => n + statSync(join(path, f)).size, 0);
}

async function main(): Promise<void> {
  if (childPath !== '') return child(childPath, backend, childVia, weights ?? 'f32', threads);
  const script = fileURLToPath(import.meta.url);
  const run = (path: string, via: Via): LoadResult => {
    const placed = weights === undefined ? [] : ['--weights', weights, '--threads', String(threads)];
    const args = [script, '--child', path, '--backend', backend, '--via', via, ...placed];
    return JSON.parse(execFileSync(process.execPath, args, { encoding: 'utf8' })) as LoadResult;
  };
  const vias: [Via, string][] =
    weights === undefined
      ? [['load', 'loadModel']]
      : [
          ['place', 'loadModel, then placeWeights'],
          ['stream', 'straight into the pool'],
        ];
  const rows: string[][] = [];
  for (const { label, path } of await checkpoints(shape, backend)) {
    for (const [via, how] of vias) {
      const r = run(path, via);
      rows.push([
        label,
        how,
        `${(bytesOf(path) / 2 ** 20).toFixed(0)}`,
        r.seconds.toFixed(2),
        r.backendMiB.toFixed(0),
        r.poolMiB.toFixed(0),
        r.baselineRssMiB.toFixed(0),
        r.peakRssMiB.toFixed(0),
        (r.peakRssMiB - r.baselineRssMiB - r.backendMiB - r.poolMiB).toFixed(0),
      ]);
    }
  }
  const table = markdownTable(
    ['format', 'loaded by', 'file MiB', 'load s', 'weights in backend MiB', 'pool MiB', 'RSS before MiB', 'peak RSS MiB', 'peak - before - weights'],
    rows,
  );
  const placement = weights === undefined ? '' : ` --weights ${weights} --threads ${threads}`;
  const body = [
    `Random ${shape} model (untied classifier) on ${backend}${weights === undefined ? '' : `, for the worker pool as ${weights} on ${threads} thread${threads === 1 ? '' : 's'}`}, one process per row. ` +
      "'weights in backend' is tf.memory().numBytes after loading, 'pool' the worker pool's shared memory; the last column is what loading held beyond the weights themselves.",
    '',
    table,
  ].join('\n');
  process.stdout.write(`${body}\n`);
  recordResult('Checkpoint loading (bench/hf_load.ts)', `node dist/bench/hf_load.js --shape ${shape} --backend ${backend}${placement} --record`, body);
}

await runBench(main);

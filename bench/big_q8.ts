// A random model of about 2.7B parameters loaded as q8 and decoded on the
// wasm backend: load time, memory (peak RSS, the worker pool's shared
// memory, the backend's heap) and greedy decode speed.
//
// The default shape is Sheared-LLaMA-2.7B's (dim 2560, 32 layers of 20
// heads, hidden 6912, vocabulary 32000; 2.6B parameters with the embedding
// tied): a published Llama-2 shape whose q8 matrices (2.8 GiB) fit in the
// pool's 4 GiB, where its 10.5 GB of float32 could not. The weights are
// those `streamllm init --seed S` writes for the shape, drawn straight into
// the pool (randomLlamaReader: no file), or read from such a file (--model),
// or with --fast uniform values of the same spread from xorshift32: init's
// 2.6B normals cost about 45 CPU-seconds of seedrandom (src/model/random_init.ts),
// and neither memory nor speed depends on them.
//
//   node dist/bench/big_q8.js [--model FILE | --fast] [--seed 0] [--tokens 8] [--threads N] [--record]
import { initBackend } from '../src/backend.js';
import { defaultThreads } from '../kernels/threads.js';
import { benchArgs, markdownTable, median, peakRssMiB, recordResult, runBench } from './common.js';
import type { Llama2cReader, LlamaShape } from '../src/checkpoint/llama2c.js';

/** Sheared-LLaMA-2.7B (princeton-nlp): a pruned Llama-2-7B, every head full (no grouped-query attention). */
export const SHAPE_2_7B: LlamaShape = {
  dim: 2560,
  hiddenDim: 6912,
  layers: 32,
  heads: 20,
  kvHeads: 20,
  vocabSize: 32000,
  maxSeqLen: 4096,
  sharedClassifier: true,
};

const HELP = `A random model of about 2.7B parameters (Sheared-LLaMA-2.7B's shape) loaded as q8 and decoded on wasm.

  node dist/bench/big_q8.js [--model FILE | --fast] [--seed 0] [--tokens 8] [--threads N] [--record]

  --model FILE   a llama2.c checkpoint to load (e.g. one written by
                 streamllm init --dim 2560 --hidden 6912 --layers 32 --heads 20 --vocab 32000 --seq-len 4096 --out FILE);
                 default: the same random weights drawn straight into the pool, no file
  --fast         uniform weights from xorshift32 (std 0.02, as init's), not init's normals: about 45 CPU-s less
  --seed S       random seed of the drawn weights (default 0, as init's)
  --tokens N     greedy tokens to decode (default 8)
  --threads N    threads for the products (default: every core, ${defaultThreads()} here)
  --record       append the table to bench/RESULTS.md
  --help         this text`;

// Every flag's value read and checked here, before tfjs or a model loads: --help and a bad value answer at once.
const cli = benchArgs(HELP);
const file = cli.has('model') ? cli.value('model', '') : undefined;
const seed = cli.count('seed', 0, 0, 2 ** 32 - 1);
const tokens = cli.count('tokens', 8, 1, 100_000);
const threads = cli.count('threads', defaultThreads(), 1, 256);
const fast = cli.has('fast');
const tf = await import('@tensorflow/tfjs');
const { openLlama2c } = await import('../src/checkpoint/llama2c.js');
const { generate } = await import('../src/generate.js');
const { pooledBytes } = await import('../src/model/pooled.js');
const { pooledModelFromLlama2c } = await import('../src/model/pooled_llama2c.js');
const { randomLlamaReader } = await import('../src/model/random_init.js');
const { disposeModel, parameterCount } = await import('../src/model/weights.js');
const { createSampler } = await import('../src/sample/sampler.js');
const { wasmBackendMemory } = await import('../kernels/paths.js');

const gib = (bytes: number) => (bytes / 2 ** 30).toFixed(2);

/** Weights uniform in [-a, a] with a = 0.02 * sqrt(3) (std 0.02), norms 1, from xorshift32: any read order. */
function fastRandomReader(shape: LlamaShape, seed: number): Llama2cReader {
  const a = 0.02 * Math.sqrt(3);
  return {
    shape,
    read(name, start, count) {
      const out = new Float32Array(count);
      if (name === 'rmsAtt' || name === 'rmsFfn' || name === 'rmsFinal') return out.fill(1);
      let x = (seed * 2654435761 + start * 40503 + name.length * 97) >>> 0 || 1;
      for (let i = 0; i < count; i++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        out[i] = ((x >>> 0) / 4294967296) * 2 * a - a;
      }
      return out;
    },
    close: () => {},
  };
}

async function main(): Promise<void> {
  await initBackend('wasm');
  const rssBefore = process.memoryUsage().rss;
  const reader: Llama2cReader = file !== undefined ? openLlama2c(file) : fast ? fastRandomReader(SHAPE_2_7B, seed) : randomLlamaReader(SHAPE_2_7B, seed);
  const source = file ?? (fast ? `xorshift32 uniform, seed ${seed} (--fast, no file)` : `randomLlamaReader, seed ${seed} (init's weights, no file)`);
  const shape = reader.shape;
  process.stderr.write(`loading ${source} as q8 ...\n`);
  const started = performance.now();
  const cpuStarted = process.cpuUsage();
  const model = pooledModelFromLlama2c(reader, { threads, weights: 'q8' }, file ?? 'big_q8');
  reader.close();
  const loadSeconds = (performance.now() - started) / 1000;
  const loadCpu = process.cpuUsage(cpuStarted);
  await model.pool!.ready();
  const params = parameterCount(model, shape.sharedClassifier);
  const rssLoaded = process.memoryUsage().rss;
  process.stderr.write(`loaded in ${loadSeconds.toFixed(1)} s; decoding ${tokens} tokens ...\n`);

  const stepMs: number[] = [];
  const stepCpuMs: number[] = [];
  let last = performance.now();
  let lastCpu = process.cpuUsage();
  const ids: number[] = [];
  for await (const step of generate(model, { kind: 'dense' }, [1], createSampler({ temperature: 0 }), { steps: tokens, stopIds: [] })) {
    const now = performance.now();
    stepMs.push(now - last);
    last = now;
    const cpu = process.cpuUsage(lastCpu); // every thread of the process, workers included
    stepCpuMs.push((cpu.user + cpu.system) / 1000);
    lastCpu = process.cpuUsage();
    ids.push(step.id);
  }
  const decodeMs = median(stepMs);
  const rssPeak = peakRssMiB();
  // after the decode: the pool's memory then holds the cache too (a pooled model's caches live there)
  const poolBytes = model.pool!.memory.buffer.byteLength;
  const backendBytes = wasmBackendMemory()?.buffer.byteLength ?? 0;
  await disposeModel(model);

  const rows = [
    ['shape', `dim ${shape.dim}, ${shape.layers} layers, ${shape.heads} heads (${shape.kvHeads} kv), hidden ${shape.hiddenDim}, vocab ${shape.vocabSize}`],
    ['parameters', `${(params / 1e9).toFixed(2)} B (float32: ${gib(4 * params)} GiB)`],
    ['weights from', source],
    ['q8 matrices', `${gib(pooledBytes(model.config, 'q8'))} GiB`],
    ['pool memory (shared WebAssembly.Memory: matrices, KV cache, operands)', `${gib(poolBytes)} GiB of 4`],
    ['wasm backend heap (embedding, norms)', `${gib(backendBytes)} GiB`],
    ['RSS before load / after load / peak', `${gib(rssBefore)} / ${gib(rssLoaded)} / ${gib(rssPeak * 2 ** 20)} GiB`],
    ['load time (wall / CPU)', `${loadSeconds.toFixed(1)} s / ${((loadCpu.user + loadCpu.system) / 1e6).toFixed(1)} s`],
    [
      `decode, ${threads} thread${threads === 1 ? '' : 's'}`,
      `${(1000 / decodeMs).toFixed(2)} tok/s wall (median of ${stepMs.length} steps, ${decodeMs.toFixed(0)} ms each; CPU ${median(stepCpuMs).toFixed(0)} ms a step, all threads)`,
    ],
    ['tokens', ids.join(' ')],
  ];
  const body = markdownTable(['', 'value'], rows);
  process.stdout.write(`${body}\n`);
  recordResult('A 2.7B-parameter model as q8 on wasm (bench/big_q8.ts)', `node dist/bench/big_q8.js ${process.argv.slice(2).join(' ')}`.trim(), body);
  if (tf.memory().numTensors !== 0) process.stderr.write(`warning: ${tf.memory().numTensors} tensors left\n`);
}

await runBench(main);

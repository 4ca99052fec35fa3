// Endless generation at constant memory: sample a million tokens (or
// --tokens N) from a model through the streaming cache, the same generate()
// loop `streamllm generate --steps 0` runs, and record every --every tokens
// the speed over the last interval, resident memory, live tensors and the
// cache's bytes. Flat columns are the claim.
//
//   node dist/bench/endless.js [--model weights/softmax] [--tokens 1000000] [--every 50000] [--backend wasm] [--record]
import { BACKENDS, initBackend } from '../src/backend.js';
import { defaultManifestPath, defaultModel, readManifest } from '../src/zoo/manifest.js';
import { benchArgs, markdownTable, recordResult, runBench } from './common.js';

const USAGE = `Endless generation through the streaming cache: speed, memory, live tensors and cache bytes every --every tokens.

  node dist/bench/endless.js [--model weights/softmax] [--tokens 1000000] [--every 50000] [--backend wasm] [--record]

  --model DIR    a zoo model folder (default: the manifest's default model)
  --tokens N     tokens to sample
  --every N      a table row every N tokens
  --backend B    wasm | cpu | tensorflow
  --record       append the table to bench/RESULTS.md
  --help         this text`;
const args = benchArgs(USAGE);
const arg = args.value;
const total = args.count('tokens', 1_000_000, 1, 1e9);
const every = args.count('every', 50_000, 1, total);
const backendName = args.choice('backend', 'wasm', BACKENDS);
// the rest once the flags are read: --help and a bad flag answer without loading tfjs or a model
const tf = await import('@tensorflow/tfjs');
const { policyLabel } = await import('../src/cache/index.js');
const { generate } = await import('../src/generate.js');
const { loadModel } = await import('../src/model/load.js');
const { createSampler } = await import('../src/sample/sampler.js');

async function main(): Promise<void> {
  const backend = await initBackend(backendName);
  const modelPath = arg('model', defaultModel(readManifest(defaultManifestPath())).path);
  const model = loadModel(modelPath);
  const trained = model.config.maxSeqLen;
  const policy = { kind: 'streaming', sinkCount: 4, windowSize: trained - 4 } as const;
  const sample = createSampler({ temperature: 1, topP: 0.9, seed: 0 });
  const rows: string[][] = [];
  let last = performance.now();
  let lastCount = 0;
  const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
  for await (const step of generate(model, policy, [3], sample, { steps: total })) {
    if (step.generated % every !== 0) continue;
    const now = performance.now();
    const memory = tf.memory();
    rows.push([
      String(step.generated),
      ((step.generated - lastCount) / ((now - last) / 1000)).toFixed(1),
      mib(process.memoryUsage().rss),
      String(memory.numTensors),
      mib(memory.numBytes),
      `${step.stream.cacheSize} / ${mib(step.stream.cacheBytes)}`,
    ]);
    process.stderr.write(rows.at(-1)!.join('  ') + '\n');
    last = now;
    lastCount = step.generated;
  }
  const body =
    `${total.toLocaleString('en-US')} tokens sampled (temperature 1, top-p 0.9, seed 0) from ${modelPath} through ${policyLabel(policy)} ` +
    `with the library's generate() loop (what \`streamllm generate --steps 0\` runs), backend ${backend}. Each row: the state after that many tokens; ` +
    `tok/s over the interval since the previous row; RSS of the process; live tfjs tensors and their bytes (weights included); the cache's entries and bytes.\n\n` +
    markdownTable(['tokens', 'tok/s (interval)', 'RSS MiB', 'tensors', 'tensor MiB', 'cache entries / MiB'], rows);
  process.stdout.write(body + '\n');
  recordResult('Endless generation (bench/endless.ts)', `node dist/bench/endless.js ${process.argv.slice(2).join(' ')}`.trim(), body);
}

await runBench(main);

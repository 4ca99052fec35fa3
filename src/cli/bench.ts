// streamllm bench: run one of the benchmarks in bench/ (each prints a table,
// and appends it to bench/RESULTS.md when given --record).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ReportedError, StreamllmError, UsageError } from '../errors.js';
import { defineCommand } from './args.js';

const BENCHMARKS: Record<string, string> = {
  decode: 'greedy decode tok/s against llama2.c run.c (float32, q8; 1 and all threads; float32 on the tfjs path), blocked evaluation on 1 and all threads',
  profile_decode: 'where the time of a pooled decode step goes, by part (products, attention, tfjs, sampling, ...)',
  cold_start: "why a process's first few hundred decode tokens are slower: CPU by thread (V8's compiler), functions compiled",
  load_paths: 'decode speed by the way the model reached the worker pool (loadModel then placeWeights, loadModel with placement, drawn), by program step',
  step_phases: 'a decode step by phase (each step of the decode program, and the JavaScript between programs) on 1 or N threads: one process, one JSON line',
  streaming: 'latency vs stream length, recompute vs streaming (Fig. 10), blocked vs stepwise evaluation',
  endless: 'a million sampled tokens through the streaming cache: speed and memory every 50K tokens',
  hf_load: 'checkpoint load time and peak memory by format',
  big_q8: 'a 2.7B-parameter random model loaded as q8 and decoded on wasm: load time, memory, tokens/s',
  q8_accuracy: 'perplexity with float32, q8, and q8 weights alone, on the conformance and zoo models',
  f32_product: 'one float32 product on 1 or N threads (products.wat productF32, the pool, a static split) against run.c matmul',
  builds_ab: 'two builds alternating in one run: decode and blocked-evaluation speed (--a OLD/dist --b dist)',
  inproc_ab:
    'two arms decoding in turns in one process, each a build and a way of running it (--a OLD/dist --b NEW/dist, --a :tfjs --b :pool): µs/token and the ratio of paired blocks, resolving 1-2%',
  pool_program: "the pool's fixed cost a job and a program's a step: N small products as run() calls and as one program",
  plot: 'figure rendering times',
  train: 'training step throughput: the training path against the proof-of-concept path it replaced',
  profile_train: 'one training step of a random model: time, tokens/s, GFLOP/s, and per tfjs kernel',
};

export const benchCommand = defineCommand({
  name: 'bench',
  summary: 'run a benchmark from bench/ (--record appends its table to bench/RESULTS.md)',
  usage: `NAME [benchmark flags]     NAME: ${Object.keys(BENCHMARKS).join(', ')}`,
  details: Object.entries(BENCHMARKS)
    .map(([name, what]) => `  ${name.padEnd(Math.max(...Object.keys(BENCHMARKS).map((n) => n.length)))}  ${what}`)
    .join('\n'),
  flags: [],
  passThrough: true,
  async run(_flags, rest = []) {
    const [name, ...args] = rest;
    if (name === undefined || !(name in BENCHMARKS)) {
      throw new UsageError(`bench: expected a benchmark name (${Object.keys(BENCHMARKS).join(', ')}), got ${name === undefined ? 'none' : `'${name}'`}`);
    }
    const script = fileURLToPath(new URL(`../../bench/${name}.js`, import.meta.url));
    if (!existsSync(script)) throw new UsageError(`bench: ${script} is missing; run npm run build first`);
    const r = spawnSync(process.execPath, [script, ...args], { stdio: 'inherit' });
    // status 2: the benchmark has said what was wrong with its flags, in one line
    if (r.status === 2) throw new ReportedError();
    if (r.status !== 0) throw new StreamllmError(`bench ${name}: the benchmark exited with ${r.status === null ? `signal ${r.signal}` : `status ${r.status}`}`);
  },
});

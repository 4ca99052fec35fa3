// Generation: the sampler (as run.c samples), then `streamllm generate` end
// to end. A section each, in a block of its own.
import { spawn } from 'node:child_process';
import type { Worker } from 'node:worker_threads';
import seedrandom from 'seedrandom';
import t from 'tap';
import { WorkerPool } from '../kernels/pool.js';
import { UsageError } from '../src/errors.js';
import { createSampler, sampleTopP, softmax } from '../src/sample/sampler.js';
import { errorLines, FIXTURES, loadConformance, runCliInProcess } from './helpers.js';
import { CLI } from './paths.js';

// The sampler: greedy, temperature, nucleus (top-p) as in run.c, seeded.
{
  const logitsOf = (probs: number[]) => Float32Array.from(probs, Math.log);

  /** Empirical frequency of each id over `draws` samples. */
  function frequencies(sampler: (l: Float32Array) => number, logits: Float32Array, draws: number): number[] {
    const counts = new Array<number>(logits.length).fill(0);
    for (let i = 0; i < draws; i++) counts[sampler(logits)]!++;
    return counts.map((c) => c / draws);
  }

  function maxAbsDiff(a: number[], b: number[]): number {
    return Math.max(...a.map((v, i) => Math.abs(v - b[i]!)));
  }

  t.test('temperature 0 is greedy: the first maximum', async (t) => {
    const greedy = createSampler({ temperature: 0 });
    t.equal(greedy(Float32Array.of(1, 3, 2, 3)), 1);
    t.equal(greedy([-5, -1, -Infinity]), 1);
    const rng = seedrandom('argmax');
    for (let trial = 0; trial < 100; trial++) {
      const logits = Float32Array.from({ length: 50 }, () => rng() * 10 - 5);
      const max = Math.max(...logits);
      t.equal(greedy(logits), logits.indexOf(max));
    }
  });

  t.test('the same seed gives the same tokens', async (t) => {
    const logits = Float32Array.from({ length: 32 }, (_, i) => Math.sin(i));
    const draw = (seed: number | string) => {
      const s = createSampler({ temperature: 1, topP: 0.95, seed });
      return Array.from({ length: 200 }, () => s(logits));
    };
    t.same(draw(42), draw(42));
    t.same(draw('abc'), draw('abc'));
    t.notSame(draw(42), draw(43));
    t.same(draw(0), draw('0'), 'numbers and their strings seed alike');
  });

  t.test('top-p samples the renormalised nucleus', async (t) => {
    // Sorted: 0.5 (id 1), 0.2 (id 3), 0.15 (id 4), 0.1 (id 0), 0.05 (id 2).
    // topP 0.8: 0.5 + 0.2 = 0.7 <= 0.8, + 0.15 = 0.85 > 0.8, so ids {1, 3, 4}.
    const probs = [0.1, 0.5, 0.05, 0.2, 0.15];
    const f = frequencies(createSampler({ temperature: 1, topP: 0.8, seed: 7 }), logitsOf(probs), 20000);
    t.equal(f[0], 0, 'id 0 is outside the nucleus');
    t.equal(f[2], 0, 'id 2 is outside the nucleus');
    const expected = [0, 0.5 / 0.85, 0, 0.2 / 0.85, 0.15 / 0.85];
    t.ok(maxAbsDiff(f, expected) < 0.015, `frequencies ${f.map((x) => x.toFixed(3))} vs ${expected.map((x) => x.toFixed(3))}`);

    // A top token above topP is the whole nucleus.
    const only = frequencies(createSampler({ temperature: 1, topP: 0.4, seed: 7 }), logitsOf(probs), 1000);
    t.same(only, [0, 1, 0, 0, 0]);

    // topP 1: the full distribution.
    const all = frequencies(createSampler({ temperature: 1, topP: 1, seed: 7 }), logitsOf(probs), 20000);
    t.ok(maxAbsDiff(all, probs) < 0.015, `topP 1: ${all.map((x) => x.toFixed(3))}`);
  });

  t.test('temperature sharpens or flattens the distribution', async (t) => {
    const probs = [0.6, 0.3, 0.1];
    const tempered = (T: number) => {
      const w = probs.map((p) => p ** (1 / T));
      const sum = w.reduce((a, b) => a + b, 0);
      return w.map((x) => x / sum);
    };
    for (const T of [0.5, 2]) {
      const f = frequencies(createSampler({ temperature: T, topP: 1, seed: 11 }), logitsOf(probs), 20000);
      t.ok(maxAbsDiff(f, tempered(T)) < 0.015, `T=${T}: ${f.map((x) => x.toFixed(3))} vs ${tempered(T).map((x) => x.toFixed(3))}`);
    }
    t.same(Array.from(softmax([1, 2, 3], 0.5)), Array.from(softmax([2, 4, 6])), 'softmax(l / T) is softmax at logits divided by T');
    const cold = createSampler({ temperature: 1e-6, topP: 1, seed: 1 });
    t.equal(cold(Float32Array.of(0, 5, 4.999)), 1, 'a tiny temperature is greedy, without overflow');
  });

  // sample_topp without the cutoff trick: sort all, cut, draw.
  function topPReference(probs: number[], topP: number, r: number): number {
    const order = probs.map((_, i) => i).sort((a, b) => probs[b]! - probs[a]! || a - b);
    let total = 0;
    let last = order.length - 1;
    for (let i = 0; i < order.length; i++) {
      total += probs[order[i]!]!;
      if (total > topP) {
        last = i;
        break;
      }
    }
    let cdf = 0;
    for (let i = 0; i <= last; i++) {
      cdf += probs[order[i]!]!;
      if (r * total < cdf) return order[i]!;
    }
    return order[last]!;
  }

  t.test('the cutoff trick changes nothing', async (t) => {
    t.equal(sampleTopP([0.1, 0.5, 0.05, 0.2, 0.15], 0.8, 0), 1);
    t.equal(sampleTopP([0.1, 0.5, 0.05, 0.2, 0.15], 0.8, 0.99), 4, 'r * 0.85 = 0.8415 falls in the third nucleus token');
    t.equal(sampleTopP([0.1, 0.5, 0.05, 0.2, 0.15], 0.8, 0.6), 3, 'r * 0.85 = 0.51 falls in the second');
    t.equal(sampleTopP([1], 0.5, 0.3), 0, 'a one-token vocabulary');
    const rng = seedrandom('cutoff');
    for (let trial = 0; trial < 300; trial++) {
      const n = 2 + Math.floor(rng() * 300);
      const probs = Array.from(softmax(Array.from({ length: n }, () => rng() * 8)));
      const topP = 0.05 + 0.94 * rng();
      const r = rng();
      const got = sampleTopP(probs, topP, r);
      const want = topPReference(probs, topP, r);
      if (got !== want) {
        t.equal(got, want, `n ${n}, topP ${topP}, r ${r}`);
        return;
      }
    }
    t.pass('300 random draws agree');
  });

  t.test('bad arguments', async (t) => {
    const cases: [object, RegExp][] = [
      [{ temperature: -0.5 }, /^temperature: expected a finite number >= 0 \(0 = greedy\), got -0\.5$/],
      [{ temperature: NaN }, /^temperature: .* got NaN$/],
      [{ temperature: Infinity }, /^temperature: .* got Infinity$/],
      [{ topP: 0 }, /^topP: expected a number in \(0, 1\] \(1 = off\), got 0$/],
      [{ topP: 1.5 }, /^topP: .* got 1\.5$/],
      [{ topP: -0.1 }, /^topP: .* got -0\.1$/],
      [{ topP: NaN }, /^topP: .* got NaN$/],
      [{ seed: NaN }, /^seed: expected a finite number or a string, got NaN$/],
    ];
    for (const [options, message] of cases) {
      t.throws(() => createSampler(options), message, JSON.stringify(options));
      t.throws(() => createSampler(options), UsageError);
    }
    const s = createSampler({ seed: 1 });
    t.throws(() => s([]), /^logits: expected at least one value$/);
    t.throws(() => s([0, NaN]), /^logits: value 1 is NaN$/);
    t.throws(() => s([-Infinity, -Infinity]), /^logits: the largest value is -Infinity$/);
  });
}

// `streamllm generate` end to end: llama2.c's greedy tokens, text streaming,
// endless generation stopped by Ctrl-C, and bad input as one line + exit 2.
{
  const model = `${FIXTURES}tiny-gqa.bin`;
  const tokenizer = `${FIXTURES}tiny-gqa.tokenizer.bin`;
  const expected = loadConformance();

  t.test('greedy --json gives the conformance tokens, with any cache that holds the whole stream', async (t) => {
    for (const cache of ['dense', 'streaming', 'window', 'recompute']) {
      const r = await runCliInProcess(['generate', '--model', model, '--prompt-ids', '1', '--steps', '40', '--temperature', '0', '--cache', cache, '--json']);
      t.equal(r.status, 0, r.stderr);
      t.same((JSON.parse(r.stdout) as { ids: number[] }).ids, expected.greedy.tokens, cache);
      t.match(r.stderr, /40 tokens in [\d.]+ s, [\d.]+ tok\/s/);
    }
  });

  t.test('text in, text out, seeded sampling repeats itself', async (t) => {
    const args = ['generate', '--model', model, '--tokenizer', tokenizer, '--prompt', 'Thecat', '--steps', '30', '--temperature', '0.9', '--seed', '7'];
    const a = await runCliInProcess(args);
    const b = await runCliInProcess(args);
    t.equal(a.status, 0, a.stderr);
    t.ok(a.stdout.startsWith('Thecat'), 'echoes the prompt first');
    t.equal(a.stdout, b.stdout);
    const c = await runCliInProcess([...args.slice(0, -1), '8']);
    t.not(c.stdout, a.stdout, 'another seed, another text');
  });

  t.test('streaming generation far past the trained length, then Ctrl-C ends it cleanly', async (t) => {
    // Without a tokenizer the ids stream as numbers: wait for 300 of them.
    const child = spawn(process.execPath, [
      CLI,
      'generate',
      '--model',
      model,
      '--prompt-ids',
      '1',
      '--steps',
      '0',
      '--cache',
      'streaming',
      '--window',
      '12',
      '--ignore-eos',
    ]);
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    let stdout = '';
    await new Promise<void>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
        if (stdout.split(' ').length > 300) resolve();
      });
    });
    child.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    t.equal(code, 0, stderr);
    t.match(stderr, /^interrupted: \d+ tokens in [\d.]+ s/m);
    t.match(stderr, /streaming\(4\+12\) cache 16 entries/, 'the cache stays at sinks + window');
    const ids = stdout.trim().split(/\s+/).map(Number);
    t.ok(ids.every((id) => Number.isInteger(id) && id >= 0 && id < 96));
    t.ok(ids.length > 200, `well past the trained length of 64 (${ids.length} tokens)`);
  });

  t.test('bad input: one line on stderr, exit code 2', async (t) => {
    const cases: [string[], RegExp][] = [
      [['generate', '--model', model, '--prompt-ids', '1', '--steps', '-1'], /--steps: must be >= 0, got -1/],
      [['generate', '--model', model, '--prompt-ids', '1,96'], /^streamllm: generate --prompt-ids: element 1 is 96, expected a token id in 0\.\.95$/m],
      [['generate', '--model', model, '--prompt-ids', '1,x'], /--prompt-ids: expected an integer, got 'x'/],
      [['generate', '--model', model, '--prompt', 'hi', '--prompt-ids', '1'], /give exactly one of --prompt TEXT and --prompt-ids IDS/],
      [['generate', '--model', model, '--prompt', 'hi'], /this model has no tokenizer; give --tokenizer FILE/],
      [['generate', '--model', model, '--prompt-ids', '1', '--top-p', '2'], /--top-p: must be <= 1, got 2/],
      [['generate', '--model', model, '--prompt-ids', '1', '--temperature', '-0.5'], /--temperature: must be >= 0, got -0.5/],
      [['generate', '--model', `${FIXTURES}nope.bin`, '--prompt-ids', '1'], /nope\.bin: no such file or directory/],
      [['generate', '--model', model, '--prompt-ids', '1', '--cache', 'sliding'], /--cache: expected one of/],
      [['generate', '--model', model, '--prompt-ids', '1', '--window', '0'], /--window: must be >= 1, got 0/],
    ];
    for (const [args, pattern] of cases) {
      const r = await runCliInProcess(args);
      t.equal(r.status, 2, args.join(' '));
      t.match(r.stderr, pattern, args.join(' '));
      t.equal(errorLines(r.stderr).length, 1, r.stderr);
    }
    const help = await runCliInProcess(['generate', '--help']);
    t.equal(help.status, 0);
    t.match(help.stdout, /--steps N\s+tokens to generate, 0 for no limit/);
  });

  // A worker pool that breaks under the CLI (src/cli/main.ts): the
  // WorkerPoolError is one line on stderr and exit code 2, as a user's error,
  // not a stack trace. The CLI's own pool breaks for real: its keeper thread
  // (the workers go with it) is terminated as the weights are placed (the
  // pool's first alloc once the keeper exists); the pool learns of it from
  // the keeper's exit event (generate yields to the event loop every 16
  // tokens) or from its probe of the keeper in a wait, and the next call
  // throws.
  t.test("the pool's keeper gone while generate runs: the WorkerPoolError's line on stderr, exit code 2", async (t) => {
    const proto = WorkerPool.prototype;
    const { alloc } = proto;
    let terminated = 0;
    proto.alloc = function (this: WorkerPool, bytes: number) {
      const keeper = (this as unknown as { keeper: Worker | undefined }).keeper;
      if (keeper !== undefined && terminated++ === 0) void keeper.terminate();
      return alloc.call(this, bytes);
    };
    let r;
    try {
      // (bounded: a pool that never broke would end with status 0)
      r = await runCliInProcess([
        'generate',
        '--model',
        model,
        '--prompt-ids',
        '1',
        '--steps',
        '5000',
        '--ignore-eos',
        '--cache',
        'streaming',
        '--window',
        '12',
        '--threads',
        '2',
        '--json',
      ]);
    } finally {
      proto.alloc = alloc;
    }
    t.ok(terminated > 0, "the CLI's pool's keeper was terminated");
    t.equal(r.status, 2, r.stderr);
    t.match(
      errorLines(r.stderr),
      [
        /^streamllm: WorkerPool: the keeper thread (exited \(exit code \d\)|ended \(terminated, or out of memory\)) while the pool was in use \(a worker must run until dispose\(\)\): the pool is unusable; dispose it and make a new one$/,
      ],
      'the one line',
    );
    t.equal(errorLines(r.stderr).length, 1, r.stderr);
    t.equal(r.stdout, '', 'no ids (--json prints them at the end)');
  });
}

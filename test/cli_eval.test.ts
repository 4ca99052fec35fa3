// `streamllm eval` and `streamllm init` end to end: numbers, formats, and
// every bad input as one line on stderr with exit code 2.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { errorLines, FIXTURES, loadConformance, maxAbsDiff, runCli, runCliInProcess } from './helpers.js';
import { tempDir } from './paths.js';

const dir = tempDir('streamllm-cli-');
const model = `${FIXTURES}tiny-gqa.bin`;
const expected = loadConformance();
const ids = join(dir, 'ids.json');
writeFileSync(ids, JSON.stringify(expected.tokens));

t.test('eval --json on one policy reproduces the conformance NLLs', async (t) => {
  const r = await runCliInProcess(['eval', '--model', model, '--tokens', ids, '--cache', 'streaming', '--sinks', '4', '--window', '12', '--json']);
  t.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { policy: object; nll: number[]; ppl: number; tokens: number };
  t.same(out.policy, { kind: 'streaming', sinkCount: 4, windowSize: 12 });
  t.equal(out.tokens, 160);
  const want = expected.cases.find((c) => c.name === 'streaming-4+12')!.nll;
  t.ok(maxAbsDiff(out.nll, want) < 1e-4);
  t.ok(Math.abs(out.ppl - Math.exp(want.reduce((a, b) => a + b, 0) / want.length)) < 1e-2);
  t.match(r.stderr, /^backend: wasm$/m, 'says which backend runs');
});

t.test('eval on several policies prints a table, a JSON array, and a CSV', async (t) => {
  const csv = join(dir, 'nll.csv');
  const r = await runCliInProcess(['eval', '--model', model, '--tokens', ids, '--cache', 'dense,window,streaming,recompute', '--window', '28', '--csv', csv]);
  t.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  t.match(lines[0], /^policy\s+ppl\s+mean nll\s+tokens\s+tok\/s$/);
  t.equal(lines.length, 5);
  t.match(lines[3], /^streaming\(4\+28\)\s+[\d.]+\s+[\d.]+\s+160\s+[\d.]+$/);
  const rows = readFileSync(csv, 'utf8').trim().split('\n');
  t.equal(rows[0], 'position,dense,window(28),streaming(4+28),recompute(28)');
  t.equal(rows.length, 160);
  t.match(r.stderr, /warning: dense attention over 160 tokens, beyond the trained length 64/);
  const j = await runCliInProcess(['eval', '--model', model, '--tokens', ids, '--cache', 'window,recompute', '--window', '32', '--json', '--stepwise']);
  const arr = JSON.parse(j.stdout) as { nll: number[] }[];
  t.equal(arr.length, 2);
  t.ok(maxAbsDiff(arr[1]!.nll, expected.cases.find((c) => c.name === 'recompute-32')!.nll) < 1e-4);
});

t.test('eval --cache h2o,tova with their budget flags: blocked equals stepwise', async (t) => {
  const args = ['eval', '--model', model, '--tokens', ids, '--cache', 'h2o,tova', '--budget', '16', '--recent', '6', '--json'];
  const blocked = await runCliInProcess(args);
  t.equal(blocked.status, 0, blocked.stderr);
  const stepwise = await runCliInProcess([...args, '--stepwise']);
  const [b, s] = [blocked, stepwise].map((r) => JSON.parse(r.stdout) as { policy: object; nll: number[] }[]);
  t.same(
    b!.map((r) => r.policy),
    [
      { kind: 'h2o', budget: 16, recent: 6 },
      { kind: 'tova', budget: 16 },
    ],
  );
  for (let i = 0; i < 2; i++) t.ok(maxAbsDiff(b![i]!.nll, s![i]!.nll) < 1e-4, `${JSON.stringify(b![i]!.policy)}: blocked = stepwise`);
  const table = await runCliInProcess(['eval', '--model', model, '--tokens', ids, '--cache', 'h2o,tova', '--budget', '16']);
  t.match(table.stdout, /^h2o\(8\+8\)\s/m);
  t.match(table.stdout, /^tova\(16\)\s/m);
});

t.test('init writes a checkpoint that eval reads', async (t) => {
  const file = join(dir, 'random.bin');
  // the same seed twice: the checkpoints must be byte for byte the same
  const init = (out: string) =>
    runCliInProcess([...'init --dim 16 --hidden 24 --layers 2 --heads 4 --kv-heads 2 --vocab 96 --seq-len 32 --seed 5'.split(' '), '--out', out]);
  const r = await init(file);
  t.equal(r.status, 0, r.stderr);
  const e = await runCliInProcess(['eval', '--model', file, '--tokens', ids, '--limit', '20', '--json']);
  t.equal(e.status, 0, e.stderr);
  t.equal((JSON.parse(e.stdout) as { nll: number[] }).nll.length, 19);
  const again = join(dir, 'random2.bin');
  await init(again);
  t.ok(readFileSync(file).equals(readFileSync(again)), 'same seed, same bytes');
});

t.test('every subcommand has --help', async (t) => {
  for (const cmd of ['eval', 'init', 'generate', 'bench']) {
    const r = await runCliInProcess([cmd, '--help']);
    t.equal(r.status, 0);
    t.match(r.stdout, new RegExp(`^streamllm ${cmd}: `));
    t.match(r.stdout, /usage: streamllm/);
  }
  const top = await runCliInProcess(['--help']);
  t.equal(top.status, 0);
  t.match(top.stdout, /commands:/);
});

t.test('bad input: one line on stderr, exit code 2, no output file', async (t) => {
  const notJson = join(dir, 'bad.json');
  writeFileSync(notJson, '[1, 2,');
  const outOfVocab = join(dir, 'oov.json');
  writeFileSync(outOfVocab, '[1, 2, 96]');
  const csv = join(dir, 'never.csv');
  const cases: [string[], RegExp][] = [
    [['eval', '--model', model, '--tokens', ids, '--bogus'], /unknown flag --bogus/],
    [
      ['eval', '--model', model, '--tokens', ids, '--cache', 'sliding'],
      /--cache: expected one of dense, window, streaming, recompute, h2o, tova, got 'sliding'/,
    ],
    [
      ['eval', '--model', model, '--tokens', ids, '--cache', 'h2o', '--budget', '8', '--recent', '8'],
      /eval --recent: h2o: expected fewer than the budget 8, got 8/,
    ],
    [
      ['eval', '--model', model, '--tokens', ids, '--cache', 'streaming', '--sinks', '64'],
      /eval --sinks: streaming: 64 sinks leave no window in a trained length of 64; give --window$/m, // (was 'give windowSize', the API's name)
    ],
    [['eval', '--model', model, '--tokens', ids, '--cache', 'tova', '--budget', '0'], /eval --budget: must be >= 1, got 0/],
    [['eval', '--model', model, '--tokens', ids, '--sinks', '-1', '--cache', 'streaming'], /--sinks: must be >= 0, got -1/],
    [['eval', '--model', model, '--tokens', ids, '--window', '0', '--cache', 'window'], /--window: must be >= 1, got 0/],
    [['eval', '--model', model, '--tokens', ids, '--window', 'ten'], /--window: expected an integer, got 'ten'/],
    [['eval', '--model', join(dir, 'missing.bin'), '--tokens', ids], /missing\.bin: no such file or directory/],
    [['eval', '--model', model, '--tokens', notJson, '--csv', csv], /bad\.json: expected a JSON array of token ids, but the file is not valid JSON/],
    [['eval', '--model', model, '--tokens', outOfVocab], /oov\.json: element 2 is 96, expected a token id in 0\.\.95/],
    [['eval', '--tokens', ids], /eval: --model is required/],
    [['eval', '--model', model, '--tokens'], /--tokens: missing value/],
    [['eval', '--model', model, '--tokens', ids, '--backend', 'gpu'], /--backend: expected one of tensorflow, wasm, cpu, got 'gpu'/],
    [
      ['eval', '--model', model, '--tokens', ids, '--backend', 'tensorflow'],
      /neither @tensorflow\/tfjs-node-gpu nor @tensorflow\/tfjs-node is installed \(npm install @tensorflow\/tfjs-node/,
    ],
    [['init', '--shape', '15M'], /init: --out is required/],
    [
      ['init', '--dim', '10', '--hidden', '4', '--layers', '1', '--heads', '3', '--vocab', '5', '--seq-len', '4', '--out', join(dir, 'x.bin')],
      /--heads \(3\) must divide --dim \(10\)/,
    ],
    [['frobnicate'], /unknown command 'frobnicate'/],
    // (the list of names: test/cli_smoke.test.ts, word for word)
    [['bench', 'nope'], /bench: expected a benchmark name \(decode, profile_decode, [a-z0-9_, ]+\), got 'nope'/],
  ];
  for (const [args, pattern] of cases) {
    const r = await runCliInProcess(args);
    t.equal(r.status, 2, args.join(' '));
    t.match(r.stderr, pattern, args.join(' '));
    t.equal(errorLines(r.stderr).length, 1, `one line: ${r.stderr}`);
    t.notMatch(r.stderr, /^\s+at /m, 'no stack trace');
  }
  t.notOk(existsSync(csv), 'no CSV written on failure');
});

t.test('the executable itself: exit code 0, the result on stdout (argument errors: test/cli_smoke.test.ts)', async (t) => {
  const good = runCli(['eval', '--model', model, '--tokens', ids, '--limit', '10', '--json']);
  t.equal(good.status, 0, good.stderr);
  t.equal((JSON.parse(good.stdout) as { tokens: number }).tokens, 10);
});

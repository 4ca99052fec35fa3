// `streamllm generate` end to end: llama2.c's greedy tokens, text streaming,
// endless generation stopped by Ctrl-C, and bad input as one line + exit 2.
import { spawn } from 'node:child_process';
import t from 'tap';
import { FIXTURES, loadConformance, runCliInProcess } from './helpers.js';
import { CLI } from './paths.js';

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
    [['generate', '--model', model, '--prompt-ids', '1,96'], /--prompt-ids: id 1 is 96, expected a token id in 0\.\.95/],
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
    t.equal(
      r.stderr
        .trim()
        .split('\n')
        .filter((l) => !/^(backend|products):/.test(l)).length,
      1,
      r.stderr,
    );
  }
  const help = await runCliInProcess(['generate', '--help']);
  t.equal(help.status, 0);
  t.match(help.stdout, /--steps N\s+tokens to generate, 0 for no limit/);
});

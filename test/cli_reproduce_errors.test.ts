// `streamllm reproduce` with bad input: one line on stderr naming the flag
// or file, exit code 2, no stack trace, nothing written. Run in this process
// (test/cli_smoke.test.ts runs the executable).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { initTestBackend, runCliInProcess } from './helpers.js';
import { model, setUp } from './reproduce_helpers.js';

await initTestBackend();
const { dir, text, common } = setUp();

t.test('bad input: one line on stderr, exit code 2, no report', async (t) => {
  const out = join(dir, 'never');
  const cases: [string[], RegExp][] = [
    [['reproduce', 'fig99', ...common], /^streamllm: reproduce: unknown experiment 'fig99' \(expected one of attention, curves, .*all\)$/],
    [['reproduce', ...common], /reproduce: name an EXPERIMENT/],
    [
      ['reproduce', 'curves', '--text', text, '--manifest', join(dir, 'none.json')],
      /reproduce: give --model PATH \(there is no model zoo manifest at .*none.json/,
    ],
    [['reproduce', 'curves', '--model', model], /the held-out Brown text needs the model's tokenizer; give --tokenizer FILE/],
    [['reproduce', 'curves', ...common, '--tokens', text], /give one of --text FILE, --tokens IDS.json, not several/],
    [['reproduce', 'curves', ...common, '--backcopy'], /give one of --text FILE, --backcopy, not several/],
    [['reproduce', 'attention', ...common, '--samples', '0'], /reproduce --samples: must be >= 1, got 0/],
    [['reproduce', 'attention', ...common, '--samples', 'many'], /reproduce --samples: expected an integer, got 'many'/],
    [['reproduce', 'curves', '--model', model, '--text', text], /this model has no tokenizer to encode the text with; give --tokenizer FILE/],
    [['reproduce', 'curves', ...common, '--limit', '1'], /--limit: must be >= 2/],
    [['reproduce', 'pretraining', ...common, '--manifest', join(dir, 'none.json')], /pretraining: no model zoo manifest at/],
    [['reproduce', 'curves', '--model', join(dir, 'missing.bin'), '--text', text], /missing.bin: no such file or directory/],
    [['reproduce', 'curves', 'extra', ...common], /unexpected argument 'extra'/],
  ];
  for (const [args, message] of cases) {
    const r = await runCliInProcess([...args, '--out', out]);
    t.equal(r.status, 2, `${args.join(' ')}: exit 2 (${r.stderr.trim()})`);
    const lines = r.stderr
      .trim()
      .split('\n')
      .filter((l) => !/^(backend|products):/.test(l));
    t.equal(lines.length, 1, `one line: ${r.stderr}`);
    t.match(lines[0], message);
    t.match(lines[0], /^streamllm: /);
    t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
  t.notOk(existsSync(join(out, 'report.md')), 'nothing written');
  const help = await runCliInProcess(['reproduce', '--help']);
  t.equal(help.status, 0);
  t.match(help.stdout, /^streamllm reproduce: /);
  t.match(help.stdout, /newline-sinks\s+The first four tokens replaced by newlines/);
});

// `streamllm train` and `streamllm train-tokenizer` from the command line:
// a short run end to end, and every bad input as one line on stderr with
// exit code 2 and nothing written.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parseFlags } from '../src/cli/args.js';
import { trainCommand } from '../src/cli/train.js';
import { StreamllmError } from '../src/errors.js';
import { runCli } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'streamllm-train-cli-'));
const tokenizer = join(dir, 'tok.json');

t.test('train-tokenizer writes a BPE of the requested size', async (t) => {
  const r = runCli(['train-tokenizer', '--vocab', '300', '--out', tokenizer]);
  t.equal(r.status, 0, r.stderr);
  const json = JSON.parse(readFileSync(tokenizer, 'utf8')) as { model: { vocab: Record<string, number> } };
  t.equal(Object.keys(json.model.vocab).length, 300);
});

t.test('a short run writes a resumable model directory', async (t) => {
  const out = join(dir, 'run');
  const args = ['--variant', 'sink-token', '--tokenizer', tokenizer, '--dim', '16', '--layers', '1', '--heads', '2', '--seq-len', '16', '--batch', '2', '--warmup', '1', '--eval-windows', '2', '--final-eval-windows', '4'];
  const r = runCli(['train', ...args, '--steps', '3', '--out', out, '--checkpoint-every', '2']);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stderr, /train sink-token: done, 3 steps, 90 tokens/);
  t.same(readdirSync(out).sort(), ['config.json', 'model.safetensors', 'optimizer.safetensors', 'tokenizer.json', 'train_log.jsonl', 'train_state.json']);
  const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as { streamllm: object; vocab_size: number };
  t.same(config.streamllm, { softmax: 'softmax', sink_token: true });
  t.equal(config.vocab_size, 300);
  const state = JSON.parse(readFileSync(join(out, 'train_state.json'), 'utf8')) as { step: number; valLoss: number };
  t.equal(state.step, 3);
  t.ok(state.valLoss > 0);
  const again = runCli(['train', '--resume', out]);
  t.equal(again.status, 0, again.stderr);
  t.match(again.stderr, /resuming at step 3/, 'a finished run resumes to nothing more to do');
});

/** Run `streamllm train ARGS` in this process up to its first error: the message, or undefined. */
async function trainError(args: string[]): Promise<string | undefined> {
  try {
    await trainCommand.run(parseFlags(trainCommand, args));
    return undefined;
  } catch (e) {
    if (!(e instanceof StreamllmError)) throw e; // anything else would be a stack trace, not exit 2
    return e.message;
  }
}

t.test('bad inputs: exit 2 with one line, nothing written', async (t) => {
  const out = join(dir, 'never');
  // Through the real CLI once: the exit code and the one line.
  const r = runCli(['train', '--variant', 'softmax2', '--out', out, '--steps', '1']);
  t.equal(r.status, 2);
  t.equal(r.stderr, "streamllm: train --variant: expected one of softmax, softmax1, learned-sink, sink-token, got 'softmax2'\n");
  // The rest in-process (each spawned CLI costs seconds): each must be a StreamllmError, which main prints as one line, exit 2.
  const base = ['--tokenizer', tokenizer, '--out', out, '--steps', '1'];
  const readOnly = join(dir, 'readonly');
  mkdirSync(readOnly);
  chmodSync(readOnly, 0o500);
  const cases: [string[], RegExp][] = [
    [['--out', out, '--steps', '1'], /--variant is required/],
    [['--variant', 'softmax', '--steps', '1'], /--out is required/],
    [[...base, '--variant', 'softmax', '--lr', 'fast'], /--lr: expected a number, got 'fast'/],
    [[...base, '--variant', 'softmax', '--batch', '0'], /--batch: must be >= 1, got 0/],
    [[...base, '--variant', 'softmax', '--dim', '12.5'], /--dim: expected an integer, got '12.5'/],
    [[...base, '--variant', 'softmax', '--dim', '30', '--heads', '4'], /--heads: 4 must divide --dim 30/],
    [[...base, '--variant', 'softmax', '--seed', '-1'], /--seed: must be >= 0, got -1/],
    [[...base, '--variant', 'softmax', '--minutes', '5'], /give --steps or --minutes, not both/],
    [['--variant', 'softmax', '--out', out, '--tokenizer', tokenizer], /give --steps N or --minutes M/],
    [[...base, '--variant', 'softmax', '--min-lr', '1', '--lr', '0.1'], /--min-lr: 1 exceeds the peak --lr 0.1/],
    [['--variant', 'softmax', '--out', out, '--steps', '1', '--tokenizer', join(dir, 'missing.json')], /--tokenizer .*missing.json: no such file/],
    [['--variant', 'softmax', '--steps', '1', '--tokenizer', tokenizer, '--out', join(readOnly, 'run')], /--out .*readonly\/run: cannot write there \(EACCES\)/],
    [['--variant', 'softmax', '--steps', '1', '--tokenizer', tokenizer, '--out', tokenizer], /--out .*tok.json: .* is not a directory/],
    [['--resume', join(dir, 'nothing')], /--resume .*nothing: no such directory/],
    [['--resume', join(dir, 'run'), '--lr', '1'], /--resume: --lr cannot change a run/],
    [['--variant', 'softmax', '--steps', '1', '--stpes', '2'], /unknown flag --stpes/],
  ];
  const root = process.getuid?.() === 0; // root writes anywhere: the read-only case cannot fail there
  for (const [args, message] of cases) {
    if (root && args.some((a) => a.includes('readonly'))) continue;
    const error = await trainError(args);
    t.match(error, message, args.join(' '));
    t.notMatch(error ?? '', /\n/, 'one line');
  }
  t.notOk(existsSync(out), 'no run directory was created');
});

t.test('train --help', async (t) => {
  const r = runCli(['train', '--help']);
  t.equal(r.status, 0);
  t.match(r.stdout, /--variant V\s+attention-sink variant \(one of: softmax, softmax1, learned-sink, sink-token\)/);
});

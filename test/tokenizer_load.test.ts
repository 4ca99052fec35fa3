// loadTokenizer: the format chosen by name or content, directories, the
// model's vocabulary size checked, unsupported tokenizer.json refused.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { FileFormatError, UsageError } from '../src/errors.js';
import { BpeTokenizer, saveBpe } from '../src/tokenizer/bpe.js';
import { trainBpe } from '../src/tokenizer/bpe_train.js';
import { Llama2cTokenizer, writeLlama2cTokenizer } from '../src/tokenizer/llama2c.js';
import { loadTokenizer } from '../src/tokenizer/load.js';
import { FIXTURES } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'streamllm-load-tok-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const llamaFile = `${FIXTURES}tiny-gqa.tokenizer.bin`;
const bpe = trainBpe(['ab ab ab abc'], { vocabSize: 260 });
const bpeFile = join(dir, 'tokenizer.json');
saveBpe(bpe, bpeFile);

t.test('by file name', async (t) => {
  const llama = loadTokenizer(llamaFile, { vocabSize: 96 });
  t.ok(llama instanceof Llama2cTokenizer);
  t.same(llama.encode('Hi!'), [42, 75, 3]);
  const tok = loadTokenizer(bpeFile, { vocabSize: 260 });
  t.ok(tok instanceof BpeTokenizer);
  t.same(tok.encode('ab abc'), [256, 258]);
});

t.test('by content when the name says nothing', async (t) => {
  copyFileSync(llamaFile, join(dir, 'llama-tok'));
  copyFileSync(bpeFile, join(dir, 'bpe-tok'));
  t.same(loadTokenizer(join(dir, 'llama-tok')).encode('Hi!'), [42, 75, 3]);
  t.same(loadTokenizer(join(dir, 'bpe-tok')).encode('ab abc'), [256, 258]);
  // max_token_length 123 makes a llama2.c file start with "{\0\0\0": still not JSON.
  const brace = join(dir, 'brace-tok');
  writeLlama2cTokenizer(brace, ['<unk>', '<s>', '</s>', 'x'.repeat(123)], [0, 0, 0, 0]);
  const tok = loadTokenizer(brace);
  t.ok(tok instanceof Llama2cTokenizer);
  t.equal(tok.vocabSize, 4);
});

t.test('directories', async (t) => {
  const hf = join(dir, 'hf-model');
  mkdirSync(hf);
  copyFileSync(bpeFile, join(hf, 'tokenizer.json'));
  t.ok(loadTokenizer(hf) instanceof BpeTokenizer);
  const llama = join(dir, 'llama-model');
  mkdirSync(llama);
  copyFileSync(llamaFile, join(llama, 'tokenizer.bin'));
  t.ok(loadTokenizer(llama) instanceof Llama2cTokenizer);
  const empty = join(dir, 'empty');
  mkdirSync(empty);
  t.throws(() => loadTokenizer(empty), /empty: directory has neither tokenizer\.json nor tokenizer\.bin/);
});

t.test('errors', async (t) => {
  t.throws(() => loadTokenizer(bpeFile, { vocabSize: 100 }), /tokenizer\.json: has 260 tokens but the model's vocab_size is only 100/);
  t.ok(loadTokenizer(bpeFile, { vocabSize: 4096 }) instanceof BpeTokenizer, 'a model may pad its vocabulary past the tokenizer');
  t.throws(() => loadTokenizer(llamaFile, { vocabSize: 32000 }), /has 96 tokens but the model's vocab_size is 32000/);
  t.throws(() => loadTokenizer(join(dir, 'nope.bin')), /nope\.bin: no such file or directory/);
  t.throws(() => loadTokenizer(bpeFile, { vocabSize: 0 }), UsageError);
  t.throws(() => loadTokenizer(bpeFile, { vocabSize: 0 }), /^vocabSize: expected a positive integer, got 0$/);

  // Not byte-level BPE: handed to the Hugging Face tokenizer, which names what it cannot read.
  const unknown = join(dir, 'unknown.json');
  writeFileSync(unknown, JSON.stringify({ model: { type: 'NoSuchModel', vocab: {} }, normalizer: null }));
  t.throws(() => loadTokenizer(unknown), FileFormatError);
  t.throws(() => loadTokenizer(unknown), /unknown\.json: tokenizer model "NoSuchModel" is not supported/);
  const broken = join(dir, 'broken.json');
  writeFileSync(broken, '{"model": [');
  t.throws(() => loadTokenizer(broken), /broken\.json: not valid JSON/);
});

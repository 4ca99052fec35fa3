// Bad input, class "tokenizer.json families": a tokenizer model that
// @huggingface/tokenizers would run wrongly is refused at load with the
// family named (WordLevel, an unknown type), and so is one whose unknown
// token is missing (WordPiece, Unigram, BPE, BPE byte fallback without its
// byte tokens): such a tokenizer gives text outside its vocabulary no id,
// which used to crash inside the forward pass.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { FileFormatError } from '../src/errors.js';
import { loadTokenizer } from '../src/tokenizer/load.js';
import { assertRefused, listing } from './bad_input.js';
import { FIXTURES, initTestBackend, runCliInProcess } from './helpers.js';

await initTestBackend();
const dir = mkdtempSync(join(tmpdir(), 'streamllm-tok-'));
const tiny = `${FIXTURES}tiny-gqa.bin`; // vocab 96
const text = join(dir, 'text.txt');
writeFileSync(text, 'a b ab zz b a');

function tokenizerFile(name: string, model: Record<string, unknown>): string {
  const file = join(dir, `${name}.json`);
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [],
    normalizer: null, // prettier-ignore
    pre_tokenizer: { type: 'Whitespace' },
    post_processor: null,
    decoder: null,
    model, // prettier-ignore
  };
  writeFileSync(file, JSON.stringify(json));
  return file;
}

const wordPiece = (vocab: Record<string, number>) => ({
  type: 'WordPiece',
  unk_token: '[UNK]',
  continuing_subword_prefix: '##',
  max_input_chars_per_word: 100,
  vocab,
});

t.test('WordPiece without its unknown token: refused at load, not in the forward pass', async (t) => {
  const file = tokenizerFile('wp-no-unk', wordPiece({ a: 0, b: 1, '##b': 2 }));
  const before = listing(dir);
  const r = await runCliInProcess(['eval', '--model', tiny, '--text', text, '--tokenizer', file]);
  assertRefused(t, r, /^streamllm: .*wp-no-unk\.json: WordPiece model\.unk_token "\[UNK\]" is not in the vocabulary: text outside it could not be encoded$/);
  t.equal(r.stdout, '');
  t.same(listing(dir), before, 'nothing written');
  // with the unknown token, the same text scores, "zz" as [UNK]
  const ok = tokenizerFile('wp', wordPiece({ '[UNK]': 0, a: 1, b: 2, '##b': 3 }));
  t.same(loadTokenizer(ok).encode('a b ab zz'), [1, 2, 1, 3, 0]);
  const scored = await runCliInProcess(['eval', '--model', tiny, '--text', text, '--tokenizer', ok, '--json']);
  t.equal(scored.status, 0, scored.stderr);
  t.equal((JSON.parse(scored.stdout) as { tokens: number }).tokens, 7);
});

t.test('unsupported tokenizer models are refused with the family named', async (t) => {
  const wordLevel = tokenizerFile('word-level', { type: 'WordLevel', vocab: { a: 0, '[UNK]': 1 }, unk_token: '[UNK]' });
  const r = await runCliInProcess(['generate', '--model', tiny, '--prompt', 'a b', '--tokenizer', wordLevel]);
  assertRefused(t, r, /^streamllm: .*word-level\.json: tokenizer model "WordLevel" is not supported \(supported: BPE, WordPiece, Unigram\)$/);
  t.throws(() => loadTokenizer(tokenizerFile('untyped', { vocab: { a: 0 } })), /tokenizer model null is not supported \(supported: BPE, WordPiece, Unigram\)/);
  t.throws(() => loadTokenizer(tokenizerFile('nomodel', undefined as unknown as Record<string, unknown>)), /has no "model" object/);
  // a missing type the library infers (a Unigram list vocabulary) is still read
  const inferred = loadTokenizer(
    tokenizerFile('inferred', {
      unk_id: 0,
      vocab: [
        ['<unk>', 0],
        ['a', -1],
        ['b', -2],
      ],
    }),
  );
  t.same(inferred.encode('ab'), [1, 2]);
});

t.test('Unigram and BPE without a usable unknown token are refused', async (t) => {
  const unigram = tokenizerFile('unigram', {
    type: 'Unigram',
    unk_id: null,
    vocab: [
      ['a', -1],
      ['b', -2],
    ],
  });
  t.throws(() => loadTokenizer(unigram), FileFormatError);
  t.throws(() => loadTokenizer(unigram), /Unigram model\.unk_id null is not a token id in 0\.\.1/);
  const bpe = tokenizerFile('bpe', { type: 'BPE', unk_token: '<unk>', vocab: { a: 0, b: 1 }, merges: [] });
  t.throws(() => loadTokenizer(bpe), /BPE model\.unk_token "<unk>" is not in the vocabulary/);
  const bytes = tokenizerFile('bytes', { type: 'BPE', unk_token: null, byte_fallback: true, vocab: { a: 0, b: 1, '<0x00>': 2 }, merges: [] });
  t.throws(() => loadTokenizer(bytes), /BPE model\.byte_fallback is true but the vocabulary lacks the byte token <0x01>/);
  const r = await runCliInProcess(['eval', '--model', tiny, '--text', text, '--tokenizer', unigram]);
  assertRefused(t, r, /^streamllm: .*unigram\.json: Unigram model\.unk_id/);
});

// src/tokenizer/hf.ts on two hand-made tokenizer.json files: a
// SentencePiece-style BPE with byte fallback (Llama, TinyLlama) and a
// GPT-2-style byte-level BPE (GPT-NeoX, Pythia, Qwen2). Expected ids are
// worked out by hand from the merges.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { FileFormatError } from '../src/errors.js';
import { HfTokenizer } from '../src/tokenizer/hf.js';
import { tempDir } from './tiny_checkpoints.js';

type Json = Record<string, unknown>;

const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });

/** Llama-style: "▁" for spaces, BPE merges, <0xNN> tokens for bytes outside the vocabulary. */
function llamaTokenizerJson(): Json {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
  let next = 259; // '▁' 259, ..., '▁hello' 271, '▁world' 276
  for (const tok of ['▁', 'h', 'e', 'l', 'o', 'w', 'r', 'd', 'he', 'll', 'hell', 'hello', '▁hello', 'wo', 'wor', 'worl', 'world', '▁world'])
    vocab[tok] = next++;
  return {
    version: '1.0',
    added_tokens: [special(0, '<unk>'), special(1, '<s>'), special(2, '</s>')],
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: '▁' },
        { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null, // prettier-ignore
      fuse_unk: true,
      byte_fallback: true,
      vocab, // prettier-ignore
      merges: ['h e', 'l l', 'he ll', 'hell o', '▁ hello', 'w o', 'wo r', 'wor l', 'worl d', '▁ world'],
    },
  };
}

/** GPT-2's map from bytes to printable characters (bytes_to_unicode). */
function byteChars(): string[] {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let n = 0;
  return Array.from({ length: 256 }, (_, b) => String.fromCodePoint(printable(b) ? b : 256 + n++));
}

/** GPT-2-style: byte-level pre-tokenizer and decoder; byte b is id b. */
function byteLevelTokenizerJson(): Json {
  const vocab: Record<string, number> = {};
  byteChars().forEach((c, b) => (vocab[c] = b));
  const merges = ['h e', 'l l', 'he ll', 'hell o', 'Ġ w', 'o r', 'Ġw or', 'l d', 'Ġwor ld'];
  // he 256, ll 257, hell 258, hello 259, Ġw 260, or 261, Ġwor 262, ld 263, Ġworld 264
  merges.forEach((m, i) => (vocab[m.replace(' ', '')] = 256 + i));
  vocab['<|endoftext|>'] = 265;
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: '1.0',
    added_tokens: [special(265, '<|endoftext|>')],
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: byteLevel,
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges,
    },
  };
}

function writeTokenizerDir(tokenizer: Json, tokenizerConfig?: Json, config?: Json): string {
  const dir = tempDir();
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tokenizer));
  if (tokenizerConfig) writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(tokenizerConfig));
  if (config) writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  return dir;
}

function streamed(tok: HfTokenizer, ids: number[]): string[] {
  const d = tok.streamDecoder();
  const pieces = ids.map((id) => d.push(id));
  pieces.push(d.flush());
  return pieces;
}

t.test('llama-style tokenizer: merges, byte fallback, BOS', async (t) => {
  const tok = HfTokenizer.fromDir(writeTokenizerDir(llamaTokenizerJson(), { add_bos_token: true, bos_token: '<s>', eos_token: { content: '</s>' } }));
  t.equal(tok.vocabSize, 277);
  t.equal(tok.bosId, 1);
  t.equal(tok.eosId, 2);
  t.equal(tok.addsBosByDefault, true);
  t.same(tok.encode('hello world'), [271, 276], 'no special tokens unless asked');
  t.same(tok.encode('hello world', { bos: true, eos: true }), [1, 271, 276, 2]);
  // 😀 is F0 9F 98 80: not in the vocabulary, so four byte tokens after the lone '▁'.
  const ids = tok.encode('hello 😀 world');
  t.same(ids, [271, 259, 3 + 0xf0, 3 + 0x9f, 3 + 0x98, 3 + 0x80, 276]);
  t.equal(tok.decode([1, ...ids, 2]), 'hello 😀 world', 'BOS/EOS left out, first space stripped');
  const pieces = streamed(tok, [1, ...ids]);
  t.same(pieces, ['', 'hello', ' ', '', '', '', '😀', ' world', ''], 'held back until the emoji is complete');
  t.equal(pieces.join(''), tok.decode(ids));
  // A longer stream, past the decoder's context window, still reassembles exactly.
  const long = tok.encode('hello world hello 😀 hello world 😀😀 world hello');
  t.equal(streamed(tok, long).join(''), 'hello world hello 😀 hello world 😀😀 world hello');
});

t.test('llama-style BOS default inferred from the template; ids from config.json', async (t) => {
  const tok = HfTokenizer.fromDir(writeTokenizerDir(llamaTokenizerJson(), undefined, { bos_token_id: 1, eos_token_id: [2, 0] }));
  t.equal(tok.bosId, 1);
  t.equal(tok.eosId, 2, 'first of a list of eos ids');
  t.equal(tok.addsBosByDefault, true, 'TemplateProcessing puts <s> first');
  const dir = writeTokenizerDir(llamaTokenizerJson(), { bos_token: '<s>' });
  t.same(HfTokenizer.fromFile(join(dir, 'tokenizer.json')).encode('hello', { bos: true }), [1, 271]);
});

t.test('byte-level (GPT-2 / NeoX) tokenizer', async (t) => {
  const tok = HfTokenizer.fromDir(writeTokenizerDir(byteLevelTokenizerJson(), { bos_token: '<|endoftext|>', eos_token: '<|endoftext|>' }));
  t.equal(tok.vocabSize, 266);
  t.equal(tok.bosId, 265);
  t.equal(tok.eosId, 265);
  t.equal(tok.addsBosByDefault, false, 'the ByteLevel post-processor adds nothing');
  t.same(tok.encode('hello world'), [259, 264]);
  // 世 = E4 B8 96, 界 = E7 95 8C; the space before them is 'Ġ' = byte 32.
  const ids = tok.encode('hello, 世界');
  t.same(ids, [259, 44, 32, 0xe4, 0xb8, 0x96, 0xe7, 0x95, 0x8c]);
  t.equal(tok.decode(ids), 'hello, 世界');
  t.same(streamed(tok, ids), ['hello', ',', ' ', '', '', '世', '', '', '界', '']);
  t.same(tok.encode('hello<|endoftext|>'), [259, 265], 'special tokens in the text are matched');
  t.same(tok.encode(''), []);
  t.throws(() => HfTokenizer.fromJson(byteLevelTokenizerJson()).encode('x', { bos: true }), /BOS requested, but the tokenizer defines no bos_token/);
  // Qwen2: tokenizer_config.json says bos_token null; config.json's bos_token_id does not override it.
  const qwen = HfTokenizer.fromJson(byteLevelTokenizerJson(), { bos_token: null, eos_token: '<|endoftext|>' }, { bos_token_id: 265 });
  t.equal(qwen.bosId, undefined);
  t.equal(qwen.eosId, 265);
  t.equal(qwen.addsBosByDefault, false);
});

t.test('bad tokenizer files', async (t) => {
  const dir = tempDir();
  t.throws(() => HfTokenizer.fromDir(dir), FileFormatError);
  t.throws(() => HfTokenizer.fromDir(dir), /tokenizer\.json: no such file/);
  writeFileSync(join(dir, 'tokenizer.json'), '{"model": ');
  t.throws(() => HfTokenizer.fromDir(dir), /tokenizer\.json: not valid JSON/);
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify({ model: { type: 'NoSuchModel', vocab: {} } }));
  t.throws(() => HfTokenizer.fromDir(dir), /tokenizer\.json: tokenizer model "NoSuchModel" is not supported \(supported: BPE, WordPiece, Unigram\)/);
  const sub = join(dir, 'sub');
  mkdirSync(sub);
  writeFileSync(join(sub, 'tokenizer.json'), JSON.stringify(llamaTokenizerJson()));
  writeFileSync(join(sub, 'tokenizer_config.json'), '[]');
  t.throws(() => HfTokenizer.fromDir(sub), /tokenizer_config\.json: not a JSON object/);
});

// Bad input in what is read beside a model: text that is not UTF-8 (and how
// much of a text file a --limit reads), and tokenizer.json families that would
// run wrongly. A class each, in a block of its own.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import seedrandom from 'seedrandom';
import t from 'tap';
import { FileFormatError } from '../src/errors.js';
import { encodeTextFile, readUtf8File, Utf8Validator } from '../src/text_file.js';
import { loadTokenizer } from '../src/tokenizer/load.js';
import { assertRefused, listing } from './bad_input.js';
import { FIXTURES, initTestBackend, runCliInProcess } from './helpers.js';
import { tempDir, WEIGHTS } from './paths.js';

await initTestBackend();

// Issue 9, class 4: text that is not UTF-8 is refused with its byte offset
// (never scored as replacement characters), and a --limit reads only as much
// of a text file as it needs, giving exactly the first tokens of the whole
// file's encoding.
{
  const dir = tempDir('streamllm-bad-text-');
  const model = `${FIXTURES}tiny-gqa.bin`;
  const tokenizerFile = `${FIXTURES}tiny-gqa.tokenizer.bin`;
  const ZOO_TOKENIZER = join(WEIGHTS, 'tokenizer.json');

  /** Lines of seeded words, some with non-ASCII letters (multi-byte UTF-8). */
  function words(lines: number, seed: string): string {
    const vocab = 'the cat sat on a mat and then it ran to the old red barn café naïve über — “quoted” 日本 ok, yes. no!'.split(' ');
    const r = seedrandom(seed);
    return (
      Array.from({ length: lines }, () => Array.from({ length: 3 + Math.floor(r() * 12) }, () => vocab[Math.floor(r() * vocab.length)]).join(' ')).join('\n') +
      '\n'
    );
  }

  /** The offset of the first ill-formed sequence by an independent route: decode with replacement, measure the good prefix. */
  function referenceOffset(bytes: Uint8Array): number {
    try {
      new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
      return -1;
    } catch {
      const text = new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes);
      return Buffer.byteLength(text.slice(0, text.indexOf('\uFFFD')), 'utf8');
    }
  }

  t.test('the validator agrees with the WHATWG decoder on hand-made and random bytes', async (t) => {
    const cases: [number[], number][] = [
      [[0x61, 0xe9, 0x62], 1], // Latin-1 é
      [[0x61, 0x80], 1], // a lone continuation byte
      [[0xc0, 0x80], 0], // overlong NUL
      [[0xe0, 0x80, 0x80], 0], // overlong 3-byte form
      [[0x61, 0x62, 0xed, 0xa0, 0x80], 2], // a UTF-16 surrogate
      [[0xf4, 0x90, 0x80, 0x80], 0], // past U+10FFFF
      [[0xf5, 0x80, 0x80, 0x80], 0],
      [[0x61, 0xe2, 0x82], 1], // cut short at the end
      [[0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80], -1], // € 😀
    ];
    for (const [bytes, offset] of cases) {
      const v = new Utf8Validator();
      let got = v.push(Uint8Array.from(bytes));
      if (got < 0) got = v.end();
      t.equal(got, offset, bytes.map((b) => b.toString(16)).join(' '));
      t.equal(referenceOffset(Uint8Array.from(bytes)), offset, 'the reference agrees');
    }
    // Random bytes biased toward multi-byte lead and continuation bytes, fed in random pieces.
    const r = seedrandom('utf8');
    const pool = [0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc2, 0xdf, 0xe0, 0xe1, 0xed, 0xef, 0xf0, 0xf3, 0xf4, 0xf5, 0xc0, 0xff];
    for (let n = 0; n < 3000; n++) {
      const bytes = Uint8Array.from({ length: 1 + Math.floor(r() * 12) }, () => pool[Math.floor(r() * pool.length)]!);
      if (Buffer.from(bytes).includes(Buffer.from([0xef, 0xbf, 0xbd]))) continue; // a real U+FFFD would fool the reference
      const v = new Utf8Validator();
      let got = -1;
      for (let at = 0; at < bytes.length && got < 0;) {
        const step = 1 + Math.floor(r() * 4);
        got = v.push(bytes.subarray(at, at + step));
        at += step;
      }
      if (got < 0) got = v.end();
      if (got !== referenceOffset(bytes)) {
        t.fail(`bytes ${Array.from(bytes, (b) => b.toString(16)).join(' ')}: ${got}, reference ${referenceOffset(bytes)}`);
        return;
      }
    }
    t.pass('3000 random byte strings agree');
  });

  t.test('non-UTF-8 text: exit 2, one line naming the file and the byte offset, nothing written', async (t) => {
    const good = words(40, 'good');
    const latin1 = join(dir, 'latin1.txt');
    const at = Buffer.byteLength(good, 'utf8') + 6;
    writeFileSync(latin1, Buffer.concat([Buffer.from(good + 'caf', 'utf8'), Buffer.from('caf\xe9 au lait\n', 'latin1')]));
    const truncated = join(dir, 'truncated.txt');
    writeFileSync(truncated, Buffer.concat([Buffer.from('price: ', 'utf8'), Buffer.from([0xe2, 0x82])]));
    const csv = join(dir, 'never.csv');
    const out = join(dir, 'never-report');
    const common = ['--model', model, '--tokenizer', tokenizerFile];
    const cases: [string[], string][] = [
      [
        ['eval', ...common, '--text', latin1, '--csv', csv],
        `streamllm: ${latin1}: not UTF-8 text: invalid byte sequence at byte offset ${at} (0xe9); convert the file to UTF-8 first\n`,
      ],
      [['eval', ...common, '--text', truncated], `streamllm: ${truncated}: not UTF-8 text: the file ends inside a character that starts at byte offset 7\n`],
      [
        ['reproduce', 'curves', ...common, '--text', latin1, '--out', out],
        `streamllm: ${latin1}: not UTF-8 text: invalid byte sequence at byte offset ${at} (0xe9); convert the file to UTF-8 first\n`,
      ],
      [
        ['start', ...common, '--text', truncated, '--out', out],
        `streamllm: ${truncated}: not UTF-8 text: the file ends inside a character that starts at byte offset 7\n`,
      ],
    ];
    const before = readdirSync(dir).sort();
    for (const [args, message] of cases) {
      const r = await runCliInProcess(args);
      t.equal(r.status, 2, args.join(' '));
      t.equal(
        r.stderr
          .split('\n')
          .filter((l) => !l.startsWith('backend:') && !l.startsWith('products:') && !l.startsWith('model:'))
          .join('\n'),
        message,
      );
      t.equal(r.stdout, '');
    }
    t.notOk(existsSync(csv), 'no CSV');
    t.notOk(existsSync(out), 'no report folder');
    t.same(readdirSync(dir).sort(), before, 'no temporary or staging files');
  });

  t.test('a BOM and valid multi-byte text are read as they are', async (t) => {
    const file = join(dir, 'bom.txt');
    const text = '\uFEFFnaïve café 日本 😀\n';
    writeFileSync(file, text, 'utf8');
    t.equal(readUtf8File(file), text);
  });

  t.test('--limit reads only what it needs: the first tokens of the whole file, exactly', async (t) => {
    // About 1.3 MB of text (two read chunks), then a byte that is not UTF-8 near the end: past what any limit below reads.
    const body = words(32_000, 'long');
    const file = join(dir, 'long.txt');
    const badAt = Buffer.byteLength(body, 'utf8') + 5;
    writeFileSync(file, Buffer.concat([Buffer.from(body, 'utf8'), Buffer.from([0x61, 0x62, 0x63, 0x20, 0x64, 0xff, 0x0a])]));
    t.ok(badAt > 2 ** 20, `the bad byte is ${badAt} bytes in, past the first chunks`);
    for (const [name, tok] of [
      ['zoo BPE', loadTokenizer(ZOO_TOKENIZER)],
      ['llama2.c', loadTokenizer(tokenizerFile)],
    ] as const) {
      const whole = tok.encode(body, { bos: tok.addsBosByDefault });
      for (const limit of [2, 100, 4097, 20_000]) {
        const ids = encodeTextFile(file, tok, { bos: tok.addsBosByDefault, limit });
        t.same(ids, whole.slice(0, limit), `${name}: the first ${limit} tokens`);
      }
      t.throws(
        () => encodeTextFile(file, tok, { bos: true }),
        { message: `${file}: not UTF-8 text: invalid byte sequence at byte offset ${badAt} (0xff); convert the file to UTF-8 first` },
        `${name}: read whole, the bad byte is found`,
      );
    }
    // Through the CLI: eval --limit scores the start of the file and never reaches the bad byte.
    const r = await runCliInProcess(['eval', '--model', model, '--tokenizer', tokenizerFile, '--text', file, '--limit', '50', '--json']);
    t.equal(r.status, 0, r.stderr);
    t.equal((JSON.parse(r.stdout) as { tokens: number }).tokens, 50);
    const whole = await runCliInProcess(['eval', '--model', model, '--tokenizer', tokenizerFile, '--text', file, '--json']);
    t.equal(whole.status, 2);
    t.match(whole.stderr, `byte offset ${badAt}`);
    t.ok(readFileSync(file).length > badAt);
  });

  t.test('a file shorter than the limit, and an empty file', async (t) => {
    const tok = loadTokenizer(tokenizerFile);
    const short = join(dir, 'short.txt');
    writeFileSync(short, 'the cat sat'); // no line break at all
    t.same(encodeTextFile(short, tok, { bos: true, limit: 1000 }), tok.encode('the cat sat', { bos: true }));
    const empty = join(dir, 'empty.txt');
    writeFileSync(empty, '');
    t.same(encodeTextFile(empty, tok, { bos: true, limit: 10 }), [1]);
    const r = await runCliInProcess(['eval', '--model', model, '--tokenizer', tokenizerFile, '--text', empty]);
    t.equal(r.status, 2);
    t.match(r.stderr, /eval: need at least 2 tokens to score, got 1/);
  });
}

// Bad input, class "tokenizer.json families": a tokenizer model that
// @huggingface/tokenizers would run wrongly is refused at load with the
// family named (WordLevel, an unknown type), and so is one whose unknown
// token is missing (WordPiece, Unigram, BPE, BPE byte fallback without its
// byte tokens): such a tokenizer gives text outside its vocabulary no id,
// which used to crash inside the forward pass.
{
  const dir = tempDir('streamllm-tok-');
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
    t.throws(
      () => loadTokenizer(tokenizerFile('untyped', { vocab: { a: 0 } })),
      /tokenizer model null is not supported \(supported: BPE, WordPiece, Unigram\)/,
    );
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
}

// Tokenizers: loadTokenizer choosing the format; llama2.c's tokenizer.bin;
// our byte-level BPE, its trainer and tokenizer.json; Hugging Face
// tokenizer.json files. A section each, in a block of its own.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import seedrandom from 'seedrandom';
import t from 'tap';
import { ArgumentError, FileFormatError, UsageError } from '../src/errors.js';
import { bpeToJson, BpeTokenizer, END_OF_TEXT, loadBpe, saveBpe } from '../src/tokenizer/bpe.js';
import { trainBpe } from '../src/tokenizer/bpe_train.js';
import { BYTE_TO_CHAR, pretokenize } from '../src/tokenizer/byte_level.js';
import { HfTokenizer } from '../src/tokenizer/hf.js';
import { Llama2cTokenizer, readLlama2cTokenizer, writeLlama2cTokenizer } from '../src/tokenizer/llama2c.js';
import { loadTokenizer } from '../src/tokenizer/load.js';
import { FIXTURES, loadConformance } from './helpers.js';
import { ROOT, tempDir } from './paths.js';

// loadTokenizer: the format chosen by name or content, directories, the
// model's vocabulary size checked, unsupported tokenizer.json refused.
{
  const dir = tempDir('streamllm-load-tok-');
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
}

// llama2.c's tokenizer.bin: run.c's encode/decode rules, on the conformance
// fixture (one character per token) and on a small vocabulary written here
// with merges and <0xNN> byte tokens.
{
  const dir = tempDir('streamllm-llama2c-tok-');

  // --- the conformance fixture: ids 3..95 are the characters '!'..'}' -------
  const fixture = readLlama2cTokenizer(`${FIXTURES}tiny-gqa.tokenizer.bin`, 96);
  const charOf = (id: number) => String.fromCharCode(id + 30); // '!' is 33, id 3

  t.test('fixture: sizes and special ids', async (t) => {
    t.equal(fixture.vocabSize, 96);
    t.equal(fixture.bosId, 1);
    t.equal(fixture.eosId, 2);
    t.equal(fixture.piece(1), '\n<s>\n');
    t.equal(fixture.piece(35), 'A');
  });

  t.test('fixture: encode known strings', async (t) => {
    // No " " piece, so no dummy prefix; every printable character is a piece
    // and no two of them concatenate to a piece, so nothing merges.
    t.same(fixture.encode('Hi!'), [42, 75, 3]);
    t.same(fixture.encode('Hi!', { bos: true, eos: true }), [1, 42, 75, 3, 2]);
    // Neither ' ' nor '~' nor 'é' is a piece and there are no byte tokens: <unk>.
    // (run.c would emit 0x20 + 3 = 35, the piece 'A', for the space.)
    t.same(fixture.encode('a b~'), [67, 0, 68, 0]);
    t.same(fixture.encode('é'), [0, 0], 'one <unk> per UTF-8 byte');
    t.same(fixture.encode(''), []);
    t.same(fixture.encode('', { bos: true }), [1]);
  });

  t.test('fixture: the conformance tokens and greedy tokens decode and re-encode', async (t) => {
    const expected = loadConformance();
    for (const ids of [expected.tokens, expected.greedy.tokens]) {
      t.equal(ids[0], 1, 'BOS first');
      const text = ids.slice(1).map(charOf).join('');
      t.equal(fixture.decode(ids), text);
      t.same(fixture.encode(text, { bos: true }), ids);
    }
    t.equal(fixture.decode(expected.greedy.tokens.slice(0, 10)), '<<<<<<<<*');
  });

  // --- a vocabulary with merges and byte tokens, Llama 2's layout -------------
  const hex = (b: number) => b.toString(16).toUpperCase().padStart(2, '0');
  const words: [string, number][] = [
    [' ', -100],
    ['a', -101],
    ['b', -102],
    ['c', -103],
    ['d', -104],
    ['é', -105],
    ['ab', -5],
    ['bc', -3],
    ['cd', -3], // ties with 'bc': the leftmost pair merges first
    ['abc', -1],
    [' a', -4],
    [' ab', -2],
    ['dd', -1e10], // at run.c's floor: never merges
  ];
  const pieces = ['<unk>', '\n<s>\n', '\n</s>\n', ...Array.from({ length: 256 }, (_, b) => `<0x${hex(b)}>`), ...words.map((w) => w[0])];
  const scores = [0, 0, 0, ...new Array<number>(256).fill(0), ...words.map((w) => w[1])];
  const smallFile = join(dir, 'small.tokenizer.bin');
  writeLlama2cTokenizer(smallFile, pieces, scores);
  const small = readLlama2cTokenizer(smallFile);
  const id = (piece: string) => {
    const i = pieces.indexOf(piece);
    if (i < 0) throw new Error(`no piece ${piece}`);
    return i;
  };
  const pieceTexts = (ids: number[]) => ids.map((i) => pieces[i]);

  t.test('small vocabulary: file layout', async (t) => {
    const bytes = readFileSync(smallFile);
    t.equal(bytes.readInt32LE(0), 6, "max_token_length is the longest piece ('\\n</s>\\n')");
    t.equal(bytes.readFloatLE(4), 0, 'score of <unk>');
    t.equal(bytes.readInt32LE(8), 5, 'length of <unk>');
    t.equal(small.vocabSize, 3 + 256 + words.length);
  });

  t.test('small vocabulary: merges by score', async (t) => {
    // [' ', a, b]: ' a' (-4) beats 'ab' (-5) although 'ab' is not leftmost... then ' ab' (-2).
    t.same(pieceTexts(small.encode('ab')), [' ab']);
    // [' ', a, b, c]: 'bc' (-3) first, then 'abc' (-1) beats ' a' (-4).
    t.same(pieceTexts(small.encode('abc')), [' ', 'abc']);
    // [' ', b, c, d]: 'bc' and 'cd' tie at -3; the leftmost wins.
    t.same(pieceTexts(small.encode('bcd')), [' ', 'bc', 'd']);
    // 'dd' scores -1e10: run.c's loop never takes it.
    t.same(pieceTexts(small.encode('dd')), [' ', 'd', 'd']);
    t.same(pieceTexts(small.encode('a')), [' a'], 'the dummy prefix merges like any piece');
  });

  t.test('small vocabulary: byte fallback, BOS/EOS', async (t) => {
    // 'é' is a piece; 'ñ' (C3 B1) and '😀' (F0 9F 98 80) are not: byte tokens, id = byte + 3.
    t.same(small.encode('é'), [id(' '), id('é')]);
    t.same(small.encode('ñ', { bos: true, eos: true }), [1, id(' '), 0xc3 + 3, 0xb1 + 3, 2]);
    t.same(small.encode('😀'), [id(' '), 0xf0 + 3, 0x9f + 3, 0x98 + 3, 0x80 + 3]);
    t.same(small.encode('x\n'), [id(' '), 0x78 + 3, 0x0a + 3]);
  });

  t.test('small vocabulary: decode rules', async (t) => {
    t.equal(small.decode([1, id(' ab')]), 'ab', 'a leading space is stripped after BOS');
    t.equal(small.decode([id(' ab')]), ' ab', '... and only after BOS');
    t.equal(small.decode([id('a'), id(' ab')]), 'a ab');
    t.equal(small.decode([1, 0x20 + 3, id('a')]), ' a', 'a byte token <0x20> is a byte, not a piece with a space');
    t.equal(small.decode([1, 0xc3 + 3, 0xa9 + 3, 2]), 'é', 'byte tokens assemble UTF-8; BOS and EOS print nothing');
    t.equal(small.decode([0]), '<unk>');
    t.throws(() => small.decode([small.vocabSize]), ArgumentError);
    // a bad id in the words of every bad token id (src/model/token_ids.ts), for a list and for one id
    t.throws(() => small.decode([1, -1]), new ArgumentError('ids', 'element 1 is -1, expected a token id in 0..271'));
    t.throws(() => small.streamDecoder().push(272), new ArgumentError('id', 'is 272, expected a token id in 0..271'));
  });

  t.test('small vocabulary: round trips', async (t) => {
    const texts = ['abc abd cab', 'ñandú, 😀 and 中文\n\ttabs', 'a  b   c', ' leading space', '\u0000\u0001 control', ''];
    for (const text of texts) {
      t.equal(small.decode(small.encode(text, { bos: true, eos: true })), text, JSON.stringify(text));
    }
  });

  t.test('stream decoder holds back incomplete UTF-8 made of byte tokens', async (t) => {
    const ids = small.encode('a😀b', { bos: true });
    t.same(ids, [1, id(' a'), 0xf0 + 3, 0x9f + 3, 0x98 + 3, 0x80 + 3, id('b')]);
    const stream = small.streamDecoder();
    t.same(
      ids.map((i) => stream.push(i)),
      ['', 'a', '', '', '', '😀', 'b'],
    );
    t.equal(stream.flush(), '');
    const cut = small.streamDecoder();
    t.equal(cut.push(0xe4 + 3) + cut.push(0xb8 + 3), '', 'two of the three bytes of 中');
    t.equal(cut.flush(), '\uFFFD', 'flush gives up on the unfinished character');
    t.equal(cut.push(0x41 + 3), 'A', 'and the decoder carries on');
  });

  // run.c's merge loop, transcribed: rescan all pairs, take the best score
  // (leftmost on ties, strictly above -1e10), merge, repeat.
  function runcMerge(tok: Llama2cTokenizer, ids: number[]): number[] {
    const byPiece = new Map<string, number>();
    tok.pieces.forEach((p, i) => {
      const k = Buffer.from(p).toString('latin1');
      if (!byPiece.has(k)) byPiece.set(k, i);
    });
    const key = (i: number) => Buffer.from(tok.pieces[i]!).toString('latin1');
    const tokens = ids.slice();
    for (;;) {
      let bestScore = -1e10;
      let bestId = -1;
      let bestIdx = -1;
      for (let i = 0; i < tokens.length - 1; i++) {
        const m = byPiece.get(key(tokens[i]!) + key(tokens[i + 1]!));
        if (m !== undefined && tok.scores[m]! > bestScore) {
          bestScore = tok.scores[m]!;
          bestId = m;
          bestIdx = i;
        }
      }
      if (bestIdx === -1) return tokens;
      tokens.splice(bestIdx, 2, bestId);
    }
  }

  t.test('merges agree with run.c’s quadratic loop on random strings', async (t) => {
    const rng = seedrandom('llama2c-merge');
    const alphabet = ['a', 'b', 'c', 'd', ' ', 'é', 'x'];
    for (let trial = 0; trial < 200; trial++) {
      const len = 1 + Math.floor(rng() * 30);
      const text = Array.from({ length: len }, () => alphabet[Math.floor(rng() * alphabet.length)]).join('');
      // Unmerged ids: the dummy prefix, then one piece (or byte tokens) per character.
      const unmerged = [id(' ')];
      for (const ch of text) {
        if (pieces.includes(ch)) unmerged.push(id(ch));
        else for (const b of Buffer.from(ch)) unmerged.push(b + 3);
      }
      const got = small.encode(text);
      const want = runcMerge(small, unmerged);
      if (JSON.stringify(got) !== JSON.stringify(want)) {
        t.same(got, want, JSON.stringify(text));
        return;
      }
    }
    t.pass('200 random strings agree');
  });

  t.test('bad files', async (t) => {
    const write = (name: string, bytes: Buffer) => {
      const f = join(dir, name);
      writeFileSync(f, bytes);
      return f;
    };
    const good = readFileSync(smallFile);
    const cases: [string, Buffer, RegExp][] = [
      ['tiny.bin', Buffer.from([1, 0]), /tiny\.bin: too small for a llama2\.c tokenizer \(2 bytes\)/],
      ['cut.bin', good.subarray(0, good.length - 1), /cut\.bin: truncated: token 271 needs 2 bytes at offset \d+, the file ends at \d+/],
      ['cut-head.bin', good.subarray(0, 4 + 8 + 5 + 3), /cut-head\.bin: truncated: token 1 at offset 17 lacks its score and length/],
      ['zero-max.bin', Buffer.concat([Buffer.from([0, 0, 0, 0]), good.subarray(4)]), /max_token_length must be positive, got 0/],
    ];
    const negative = Buffer.from(good);
    negative.writeInt32LE(-5, 4 + 4); // token 0's length
    cases.push(['negative.bin', negative, /negative\.bin: token 0: negative length -5 at offset 8/]);
    const long = Buffer.from(good);
    long.writeInt32LE(3, 0); // max_token_length 3 < 5 ('<unk>')
    cases.push(['long.bin', long, /long\.bin: token 0: length 5 exceeds max_token_length 3/]);
    const nan = Buffer.from(good);
    nan.writeFloatLE(NaN, 4);
    cases.push(['nan.bin', nan, /nan\.bin: token 0: score is NaN/]);
    cases.push(['two.bin', good.subarray(0, 4 + 8 + 5 + 8 + 5), /two\.bin: has 2 tokens; expected at least <unk>, BOS, EOS/]);
    for (const [name, bytes, message] of cases) {
      const file = write(name, bytes);
      t.throws(() => readLlama2cTokenizer(file), message, name);
      t.throws(() => readLlama2cTokenizer(file), FileFormatError, name);
    }
    t.throws(() => readLlama2cTokenizer(join(dir, 'missing.bin')), /missing\.bin: cannot read: ENOENT/);
  });

  t.test('vocabulary size must match the model', async (t) => {
    t.throws(
      () => readLlama2cTokenizer(`${FIXTURES}tiny-gqa.tokenizer.bin`, 32000),
      /tiny-gqa\.tokenizer\.bin: has 96 tokens but the model's vocab_size is 32000/,
    );
    t.equal(readLlama2cTokenizer(`${FIXTURES}tiny-gqa.tokenizer.bin`).vocabSize, 96, 'no check without a model size');
  });
}

// Byte-level BPE: the GPT-2 byte alphabet and pre-tokenizer, the trainer
// (hand-checked merges, ties, against a from-scratch recount), encode/decode
// round trips on any text, the tokenizer.json file, bad files.
{
  /** The parts of a tokenizer.json the bad-file cases change, to anything JSON can hold. */
  interface EditableTokenizerJson {
    model: { vocab: Record<string, unknown>; merges: unknown[]; [field: string]: unknown };
    [field: string]: unknown;
  }

  const dir = tempDir('streamllm-bpe-');
  const english = readFileSync(join(ROOT, 'docs/streamingllm.md'), 'utf8');

  t.test('GPT-2 byte alphabet', async (t) => {
    t.equal(BYTE_TO_CHAR[0x21], '!', 'printable ASCII is itself');
    t.equal(BYTE_TO_CHAR[0x20], 'Ġ', 'space');
    t.equal(BYTE_TO_CHAR[0x0a], 'Ċ', 'newline');
    t.equal(BYTE_TO_CHAR[0x00], 'Ā');
    t.equal(BYTE_TO_CHAR[0x7f], 'ġ', 'DEL comes after the 33 controls and space');
    t.equal(BYTE_TO_CHAR[0xad], 'Ń', 'soft hyphen, the last remapped byte');
    t.equal(BYTE_TO_CHAR[0xff], 'ÿ');
    t.equal(new Set(BYTE_TO_CHAR).size, 256);
  });

  t.test('GPT-2 pre-tokenizer', async (t) => {
    t.same(pretokenize("Hello world's  3.14\n\n"), ['Hello', ' world', "'s", ' ', ' 3', '.', '14', '\n\n']);
    t.same(pretokenize("they'll  DON'T x"), ['they', "'ll", ' ', ' DON', "'", 'T', ' x'], "GPT-2's contractions are lower-case only");
    t.same(pretokenize('日本語 😀😀!'), ['日本語', ' 😀😀!']);
    // U+0085 is White_Space (as in the Rust and Python regex engines), U+FEFF is not.
    t.same(pretokenize('a\u0085b\ufeffc'), ['a', '\u0085', 'b', '\ufeff', 'c']);
    t.same(pretokenize(''), []);
  });

  t.test('trainer: hand-checked merges on a tiny corpus', async (t) => {
    // Words: "ab" x1, " ab" x2, " abc" x1. Pairs: (a,b) 4, (Ġ,a) 3, (b,c) 1.
    // Merge (a,b) -> 256; then (Ġ,ab) 3 -> 257; then (Ġab,c) 1 -> 258.
    const tok = trainBpe(['ab ab ab abc'], { vocabSize: 260 });
    t.same(tok.merges, [
      ['a', 'b'],
      ['Ġ', 'ab'],
      ['Ġab', 'c'],
    ]);
    t.equal(tok.vocabSize, 260);
    t.equal(tok.eosId, 259, '<|endoftext|> takes the last id');
    t.equal(tok.bosId, 259, '... and serves as BOS too');
    t.equal(tok.piece(259), END_OF_TEXT);
    t.equal(tok.piece(257), 'Ġab');
    t.same(tok.encode('ab abc abd'), [256, 258, 257, 0x64]);
    t.same(tok.encode('ab', { bos: true, eos: true }), [259, 256, 259]);
  });

  t.test('trainer: ties go to the smallest (left id, right id)', async (t) => {
    // (Ġ,z) = (32,122), (x,y) = (120,121), (z,w) = (122,119): all count 1.
    const tok = trainBpe(['xy zw'], { vocabSize: 300 });
    t.same(tok.merges, [
      ['Ġ', 'z'],
      ['x', 'y'],
      ['Ġz', 'w'],
    ]);
    t.equal(tok.vocabSize, 260, 'stops early when every word is one token');
  });

  // The trainer without its bookkeeping: recount every pair after every merge.
  function referenceMerges(texts: string[], vocabSize: number): [string, string][] {
    const counts = new Map<string, number>();
    for (const text of texts) for (const w of pretokenize(text)) counts.set(w, (counts.get(w) ?? 0) + 1);
    const words = [...counts].map(([w, c]) => ({ sym: Array.from(Buffer.from(w)), c }));
    const tokens = BYTE_TO_CHAR.slice();
    const merges: [string, string][] = [];
    while (tokens.length < vocabSize - 1) {
      const pairs = new Map<string, number>();
      for (const { sym, c } of words) {
        for (let i = 0; i + 1 < sym.length; i++) {
          const k = `${sym[i]},${sym[i + 1]}`;
          pairs.set(k, (pairs.get(k) ?? 0) + c);
        }
      }
      let best: [number, number] | undefined;
      let bestCount = 0;
      for (const [k, c] of pairs) {
        const [l, r] = k.split(',').map(Number) as [number, number];
        if (c > bestCount || (c === bestCount && (l < best![0] || (l === best![0] && r < best![1])))) {
          best = [l, r];
          bestCount = c;
        }
      }
      if (best === undefined) break;
      const text = tokens[best[0]]! + tokens[best[1]]!;
      let id = tokens.indexOf(text);
      if (id < 0) id = tokens.push(text) - 1;
      merges.push([tokens[best[0]]!, tokens[best[1]]!]);
      for (const w of words) {
        const out: number[] = [];
        for (let i = 0; i < w.sym.length;) {
          if (w.sym[i] === best[0] && w.sym[i + 1] === best[1]) {
            out.push(id);
            i += 2;
          } else out.push(w.sym[i++]!);
        }
        w.sym = out;
      }
    }
    return merges;
  }

  t.test('trainer: incremental pair counts agree with recounting from scratch', async (t) => {
    const rng = seedrandom('bpe-reference');
    // Few letters and repeats make overlapping pairs ("aaa"), ties and tokens
    // spelled by two different splits likely.
    const word = () => Array.from({ length: 1 + Math.floor(rng() * 7) }, () => 'aab c'[Math.floor(rng() * 5)]).join('');
    const words = Array.from({ length: 300 }, word);
    const texts = [words.slice(0, 150).join(' '), words.slice(150).join('  '), english.slice(0, 1500)];
    const tok = trainBpe(texts, { vocabSize: 420 });
    t.same(tok.merges, referenceMerges(texts, 420));
    t.equal(tok.vocabSize, 420);
  });

  t.test('round trips on any text', async (t) => {
    const tok = trainBpe([english], { vocabSize: 600 });
    const texts = [
      english,
      'Hello, world! It’s 2024 — naïve café',
      '日本語のテキスト、中文文本，한국어 텍스트',
      '😀👍🏽🏳️‍🌈 family: 👨‍👩‍👧‍👦',
      '\u0000\u0001\u0007\u001b[31mred\u001b[0m\u007f\u0085',
      '\ufeffstarts with a BOM',
      '  leading and trailing spaces  \n\n\t\r\n',
      'e\u0301 combining, \u200d joiner, \u202e RTL override',
      '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u{10ffff} \u{e000}',
      'the separator <|endoftext|> inside, and a broken one <|endoftext|',
      '',
    ];
    for (const text of texts) {
      const ids = tok.encode(text);
      t.equal(tok.decode(ids), text, JSON.stringify(text.slice(0, 40)));
      const stream = tok.streamDecoder();
      t.equal(ids.map((id) => stream.push(id)).join('') + stream.flush(), text, 'streamed');
    }
    // Random code points from all planes (no lone surrogates).
    const rng = seedrandom('bpe-unicode');
    for (let trial = 0; trial < 50; trial++) {
      const cps = Array.from({ length: 1 + Math.floor(rng() * 40) }, () => {
        const cp = Math.floor(rng() * 0x110000);
        return cp >= 0xd800 && cp <= 0xdfff ? 0x20 : cp;
      });
      const text = String.fromCodePoint(...cps);
      t.equal(tok.decode(tok.encode(text)), text);
    }
    t.equal(tok.encode('<|endoftext|>').length, 1, 'the literal separator is the special token');
    t.same(tok.encode('a<|endoftext|>b'), [...tok.encode('a'), tok.eosId, ...tok.encode('b')]);
  });

  t.test('stream decoder holds back a character split across tokens', async (t) => {
    const tok = trainBpe(['ab'], { vocabSize: 300 }); // no merges for 😀's bytes
    const ids = tok.encode('a😀');
    t.same(ids, [0x61, 0xf0, 0x9f, 0x98, 0x80]);
    const stream = tok.streamDecoder();
    t.same(
      ids.map((id) => stream.push(id)),
      ['a', '', '', '', '😀'],
    );
    t.equal(stream.push(0xe4), '');
    t.equal(stream.flush(), '\uFFFD', 'an unfinished character at the end');
    t.equal(tok.decode([0xff, 0x41]), '\uFFFDA', 'invalid UTF-8 decodes to U+FFFD, never throws');
    t.throws(() => tok.decode([tok.vocabSize]), new ArgumentError('ids', 'element 0 is 258, expected a token id in 0..257'));
    t.throws(() => tok.streamDecoder().push(1.5), new ArgumentError('id', 'is 1.5, expected a token id in 0..257'));
  });

  t.test('compression on English text', async (t) => {
    const cut = Math.floor(english.length * 0.7);
    const [train, heldOut] = [english.slice(0, cut), english.slice(cut)];
    const ratio = (vocabSize: number) => trainBpe([train], { vocabSize }).encode(heldOut).length / heldOut.length;
    const [r257, r512, r1024] = [ratio(257), ratio(512), ratio(1024)];
    t.equal(r257, Buffer.byteLength(heldOut) / heldOut.length, 'no merges: one token per byte');
    t.ok(r512 < 0.6, `vocab 512: ${r512.toFixed(3)} tokens/char on held-out text`);
    t.ok(r1024 < r512 && r1024 < 0.5, `vocab 1024: ${r1024.toFixed(3)} tokens/char`);
  });

  t.test('determinism and the tokenizer.json file', async (t) => {
    const texts = [english, 'naïve 日本語 😀'];
    const [a, b] = [join(dir, 'a.json'), join(dir, 'b.json')];
    saveBpe(trainBpe(texts, { vocabSize: 700 }), a);
    saveBpe(trainBpe(texts, { vocabSize: 700 }), b);
    t.ok(readFileSync(a).equals(readFileSync(b)), 'training twice writes identical bytes');

    const json = JSON.parse(readFileSync(a, 'utf8'));
    t.equal(json.model.type, 'BPE');
    t.equal(json.pre_tokenizer.type, 'ByteLevel');
    t.equal(json.pre_tokenizer.add_prefix_space, false);
    t.equal(json.decoder.type, 'ByteLevel');
    t.same(json.added_tokens, [{ id: 699, content: END_OF_TEXT, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }]);
    t.equal(Object.keys(json.model.vocab).length, 700);
    t.equal(json.model.vocab['Ġ'], 32);
    t.equal(json.model.merges.length, 700 - 257);
    t.match(json.model.merges[0], /^\S+ \S+$/);
    t.match(readFileSync(a, 'utf8'), /"vocab": \{\n {6}"Ā": 0,\n {6}"ā": 1,\n/, 'vocab written in id order');

    const loaded = loadBpe(a);
    const original = trainBpe(texts, { vocabSize: 700 });
    t.equal(bpeToJson(loaded), readFileSync(a, 'utf8'), 'load then save reproduces the file');
    t.equal(loaded.vocabSize, 700);
    t.equal(loaded.eosId, 699);
    const sample = english.slice(3000, 5000) + ' naïve 😀<|endoftext|>';
    t.same(loaded.encode(sample), original.encode(sample));

    // The merges' list form (["a", "b"], newer tokenizers) reads the same.
    json.model.merges = json.model.merges.map((m: string) => m.split(' '));
    const listForm = join(dir, 'list.json');
    writeFileSync(listForm, JSON.stringify(json));
    t.same(loadBpe(listForm).encode(sample), original.encode(sample));
  });

  t.test('bad files', async (t) => {
    const good = JSON.parse(bpeToJson(trainBpe(['ab ab abc'], { vocabSize: 260 }))) as EditableTokenizerJson;
    const write = (name: string, content: unknown) => {
      const f = join(dir, name);
      writeFileSync(f, typeof content === 'string' ? content : JSON.stringify(content));
      return f;
    };
    const edit = (change: (j: EditableTokenizerJson) => void) => {
      const j = structuredClone(good);
      change(j);
      return j;
    };
    const cases: [string, unknown, RegExp][] = [
      ['not-json.json', '{"model": ', /not-json\.json: not valid JSON/],
      ['array.json', [], /array\.json: not a byte-level BPE tokenizer\.json: the top level is not a JSON object/],
      ['wordpiece.json', edit((j) => (j.model.type = 'WordPiece')), /model\.type is "WordPiece", expected "BPE"/],
      ['metaspace.json', edit((j) => (j.pre_tokenizer = { type: 'Metaspace' })), /pre_tokenizer "Metaspace" is not supported \(expected/],
      ['normalizer.json', edit((j) => (j.normalizer = { type: 'NFC' })), /normalizer "NFC" is not supported/],
      ['template.json', edit((j) => (j.post_processor = { type: 'TemplateProcessing' })), /post_processor "TemplateProcessing" is not/],
      ['fallback.json', edit((j) => (j.model.byte_fallback = true)), /model\.byte_fallback true is not supported/],
      ['no-vocab.json', { ...good, model: { ...good.model, vocab: undefined } }, /model\.vocab: expected an object of token -> id/],
      ['bad-id.json', edit((j) => (j.model.vocab['a'] = 1.5)), /model\.vocab\["a"\]: expected an integer id >= 0, got 1\.5/],
      ['unknown.json', edit((j) => (j.model.merges[1] = 'Ġ zz')), /BPE merge 1 \("Ġ" "zz"\): "zz" is not in the vocab/],
      [
        'hole.json',
        edit((j) => {
          delete j.model.vocab['Ġabc'];
          j.model.merges.pop();
        }),
        /no token has id 258 \(ids must be 0\.\.259\)/,
      ],
      [
        'no-byte.json',
        edit((j) => {
          j.model.vocab['ĀĀ'] = j.model.vocab['Ā'];
          delete j.model.vocab['Ā'];
        }),
        /no token for byte 0x00 \("Ā"\)/,
      ],
      ['bad-merge.json', edit((j) => (j.model.merges[0] = 'a b c')), /model\.merges\[0\]: expected "left right" or \[.*got "a b c"/],
      ['dup-id.json', edit((j) => (j.model.vocab['a'] = 98)), /id 98 is used by "a" and "b"|id 98 is used by "b" and "a"/],
      ['bad-added.json', edit((j) => (j.added_tokens = [{ content: 5 }])), /added_tokens\[0\]: expected \{"id": integer, "content": string/],
    ];
    for (const [name, content, message] of cases) {
      const file = write(name, content);
      t.throws(() => loadBpe(file), message, name);
      t.throws(() => loadBpe(file), FileFormatError, name);
    }
    t.throws(() => loadBpe(join(dir, 'missing.json')), /missing\.json: cannot read: ENOENT/);
  });

  t.test('bad arguments', async (t) => {
    t.throws(() => trainBpe(['x'], { vocabSize: 256 }), UsageError);
    t.throws(() => trainBpe(['x'], { vocabSize: 256 }), /vocabSize: expected an integer in \[257, 2097152\]/);
    t.throws(() => trainBpe(['x'], { vocabSize: 300.5 }), /vocabSize/);
    t.throws(() => trainBpe(['x', 3 as unknown as string], { vocabSize: 300 }), /texts\[1\]: expected a string, got number/);
    const noSpecial = new BpeTokenizer(new Map(BYTE_TO_CHAR.map((c, b) => [c, b])), []);
    t.equal(noSpecial.bosId, undefined);
    t.same(noSpecial.encode('hi'), [0x68, 0x69]);
    t.throws(() => noSpecial.encode('hi', { eos: true }), /eos: this tokenizer has no <\|endoftext\|> token/);
  });
}

// src/tokenizer/hf.ts on two hand-made tokenizer.json files: a
// SentencePiece-style BPE with byte fallback (Llama, TinyLlama) and a
// GPT-2-style byte-level BPE (GPT-NeoX, Pythia, Qwen2). Expected ids are
// worked out by hand from the merges.
{
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
    // a bad id in the words of every bad token id (the library decoded 277 to nothing, and refused 1.5 in its own)
    t.throws(() => tok.decode([271, 277]), new ArgumentError('ids', 'element 1 is 277, expected a token id in 0..276'));
    t.throws(() => tok.decode([1.5]), new ArgumentError('ids', 'element 0 is 1.5, expected a token id in 0..276'));
    t.throws(() => tok.streamDecoder().push(-1), new ArgumentError('id', 'is -1, expected a token id in 0..276'));
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
}

// llama2.c's tokenizer.bin: run.c's encode/decode rules, on the conformance
// fixture (one character per token) and on a small vocabulary written here
// with merges and <0xNN> byte tokens.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import seedrandom from 'seedrandom';
import t from 'tap';
import { FileFormatError, UsageError } from '../src/errors.js';
import { Llama2cTokenizer, readLlama2cTokenizer, writeLlama2cTokenizer } from '../src/tokenizer/llama2c.js';
import { FIXTURES, loadConformance } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'streamllm-llama2c-tok-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

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
  t.throws(() => small.decode([small.vocabSize]), UsageError);
  t.throws(() => small.decode([-1]), /token id -1 is outside the vocabulary \(0\.\.271\)/);
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

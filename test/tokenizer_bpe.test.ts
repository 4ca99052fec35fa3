// Byte-level BPE: the GPT-2 byte alphabet and pre-tokenizer, the trainer
// (hand-checked merges, ties, against a from-scratch recount), encode/decode
// round trips on any text, the tokenizer.json file, bad files.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import seedrandom from 'seedrandom';
import t from 'tap';
import { FileFormatError, UsageError } from '../src/errors.js';
import { BpeTokenizer, bpeToJson, END_OF_TEXT, loadBpe, saveBpe } from '../src/tokenizer/bpe.js';
import { trainBpe } from '../src/tokenizer/bpe_train.js';
import { BYTE_TO_CHAR, pretokenize } from '../src/tokenizer/byte_level.js';
import { ROOT } from './paths.js';

/** The parts of a tokenizer.json the bad-file cases change, to anything JSON can hold. */
interface EditableTokenizerJson {
  model: { vocab: Record<string, unknown>; merges: unknown[]; [field: string]: unknown };
  [field: string]: unknown;
}

const dir = mkdtempSync(join(tmpdir(), 'streamllm-bpe-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
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
  t.throws(() => tok.decode([tok.vocabSize]), /token id 258 is outside the vocabulary \(0\.\.257\)/);
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

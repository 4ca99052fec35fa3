// The Brown corpus: the fixed split, its sizes, the untagging and
// detokenization, and the zoo's tokenizer round trip on corpus text.
import t from 'tap';
import { existsSync } from 'node:fs';
import { BROWN_GENRES, brownPartOf, brownSplit, brownTextIds, loadBrown, readBrownText, untag } from '../src/data/brown.js';
import { detokenize } from '../src/data/detokenize.js';
import { brownTokens } from '../src/data/corpus.js';
import { loadTokenizer } from '../src/tokenizer/load.js';
import { WEIGHTS } from './paths.js';

const ids = brownTextIds();
const train = loadBrown('train');
const heldout = loadBrown('heldout');

t.test('the split: 450 + 50 texts, every tenth held out, every genre in both', async (t) => {
  t.equal(ids.length, 500);
  t.same([ids[0], ids[499]], ['ca01', 'cr09']);
  t.equal(train.length, 450);
  t.equal(heldout.length, 50);
  t.same(
    heldout.slice(0, 8).map((x) => x.id),
    ['ca10', 'ca20', 'ca30', 'ca40', 'cb06', 'cb16', 'cb26', 'cc09'],
  );
  t.same(
    brownSplit('heldout'),
    heldout.map((x) => x.id),
    'the same ids on every call',
  );
  t.equal(brownPartOf(9), 'heldout');
  t.equal(brownPartOf(10), 'train');
  const all = new Set([...train, ...heldout].map((x) => x.id));
  t.equal(all.size, 500, 'disjoint and complete');
  for (const genre of Object.keys(BROWN_GENRES)) {
    t.ok(heldout.some((x) => x.genre === genre) && train.some((x) => x.genre === genre), `genre ${genre} (${BROWN_GENRES[genre]}) in both`);
  }
});

t.test('sizes: tagged tokens and characters of each part', async (t) => {
  const tokens = (texts: typeof train) => texts.reduce((n, x) => n + x.tokens, 0);
  const chars = (texts: typeof train) => texts.reduce((n, x) => n + x.text.length, 0);
  t.equal(tokens(train) + tokens(heldout), 1_161_192, 'all 1,161,192 tokens of the corpus');
  t.equal(tokens(train), 1_045_389);
  t.equal(tokens(heldout), 115_803);
  t.equal(chars(train), 5_359_406);
  t.equal(chars(heldout), 598_694);
});

t.test('untagging and detokenization', async (t) => {
  t.equal(
    readBrownText('ca01').text.split('\n')[0],
    'The Fulton County Grand Jury said Friday an investigation of Atlanta\'s recent primary election produced "no evidence" that any irregularities took place.',
  );
  const tagged = "\n\n\tHe/pps said/vbd ``/`` No/rb ''/'' ./.\nIt/pps rained/vbd ./.\n\n\n\tNext/ap day/nn ./.\n";
  t.same(untag(tagged), { text: 'He said "No". It rained.\nNext day.', tokens: 12 }, 'sentences join; a tab starts a paragraph');
  t.equal(untag('Merger/nn-hl proposed/vbn-hl\nHowever/wrb ,/, it/pps did/dod ./.').text, 'Merger proposed\nHowever, it did.', 'a headline stands alone');
  t.equal(untag('1-1/2/cd inches/nns').text, '1-1/2 inches', 'the tag is after the last slash');
  t.equal(detokenize(['(', 'see', 'above', ')', ';', 'he', "'", 'quoted', "'", 'it', '--', 'twice', '!']), "(see above); he 'quoted' it--twice!");
  t.equal(detokenize(['Ivan', 'Allen', 'Jr.', '.']), 'Ivan Allen Jr.', "an abbreviation's stop ends the sentence");
  t.equal(detokenize(['costs', '$', '5', ',', 'or', '4', '%', '?']), 'costs $5, or 4%?');
});

const TOKENIZER = `${WEIGHTS}tokenizer.json`;
t.test("the zoo's tokenizer: 4096 tokens, exact round trip on corpus text", { skip: !existsSync(TOKENIZER) && 'no weights/tokenizer.json' }, async (t) => {
  const tok = loadTokenizer(TOKENIZER);
  t.equal(tok.vocabSize, 4096);
  t.equal(tok.eosId, 4095);
  for (const text of [heldout[0]!.text, heldout[49]!.text, train[123]!.text]) {
    const ids = tok.encode(text);
    t.equal(tok.decode(ids), text, 'decode(encode(text)) === text');
    t.ok(text.length / ids.length > 3, `${(text.length / ids.length).toFixed(2)} characters per token`);
  }
  const stream = brownTokens(tok, 'heldout');
  t.equal(stream.filter((id) => id === tok.eosId).length, 50, 'one end-of-text after each held-out text');
  t.equal(stream[stream.length - 1], tok.eosId);
});

// The data the models train and are evaluated on (src/data): the Brown
// corpus, and the Bigram-Backcopy stream. A section each, in a block of its own.
import { existsSync } from 'node:fs';
import seedrandom from 'seedrandom';
import t from 'tap';
import { IGNORE_TARGET } from '../kernels/cross_entropy.js';
import { Backcopy, BigramChain } from '../src/data/backcopy.js';
import { BROWN_GENRES, brownPartOf, brownSplit, brownTextIds, loadBrown, readBrownText, untag } from '../src/data/brown.js';
import { brownTokens } from '../src/data/corpus.js';
import { detokenize } from '../src/data/detokenize.js';
import { SINK_TOKEN } from '../src/model/transformer.js';
import { loadTokenizer } from '../src/tokenizer/load.js';
import { BackcopySource, BatchSampler } from '../src/train/batches.js';
import { type TrainData, trainSources, validationSamples } from '../src/train/data.js';
import { TRAIN_DEFAULTS, type TrainOptions } from '../src/train/options.js';
import { WEIGHTS } from './paths.js';

// The Brown corpus: the fixed split, its sizes, the untagging and
// detokenization, and the zoo's tokenizer round trip on corpus text.
{
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
}

// Bigram-Backcopy: the chain's estimates by hand, the copy rule on every
// generated token, the trigger rate and the bigram fit of long samples, the
// training samples built from it, and a tiny training run on it.
{
  // A 6-token vocabulary: 0 is BOS, 1 and 2 occur most (the triggers), 3..5 the rest.
  const STREAM = [0, 3, 1, 4, 2, 5, 3, 1, 3, 4, 1, 5, 2, 3, 0, 4, 1, 3, 2, 4, 5, 1, 4, 3, 2, 5, 0, 3];

  t.test('the chain: conditional frequencies by hand, sampling by them', async (t) => {
    const chain = BigramChain.fromTokens(STREAM, 6);
    // successors of 3 in STREAM: 1, 4, 1, 0, 2, 2  (six pairs starting with 3)
    t.equal(chain.probability(3, 1), 2 / 6);
    t.equal(chain.probability(3, 4), 1 / 6);
    t.equal(chain.probability(3, 0), 1 / 6);
    t.equal(chain.probability(3, 2), 2 / 6);
    t.equal(chain.probability(3, 5), 0);
    t.same(chain.mostFrequent(2, [0]), [3, 1], 'the most frequent ids, BOS left out');
    const rng = seedrandom('chain');
    const counts = new Map<number, number>();
    const draws = 60000;
    for (let i = 0; i < draws; i++) {
      const b = chain.next(3, rng);
      counts.set(b, (counts.get(b) ?? 0) + 1);
    }
    for (const [b, p] of [
      [1, 2 / 6],
      [4, 1 / 6],
      [0, 1 / 6],
      [2, 2 / 6],
    ] as const) {
      t.ok(Math.abs(counts.get(b)! / draws - p) < 0.01, `P(${b} | 3) drawn ${(counts.get(b)! / draws).toFixed(4)}, estimated ${p.toFixed(4)}`);
    }
    t.notOk(counts.has(5), 'never a successor it has not seen');
    t.throws(() => BigramChain.fromTokens([0, 9], 6), /outside 0..5/);
    // with 1 and 2 left out, P(b | 3) renormalises over {4, 0}: 1/2 each
    const excluded = Uint8Array.from([0, 1, 1, 0, 0, 0]);
    const kept = new Map<number, number>();
    for (let i = 0; i < 20000; i++) {
      const b = chain.nextExcept(3, excluded, rng);
      kept.set(b, (kept.get(b) ?? 0) + 1);
    }
    t.same([...kept.keys()].sort(), [0, 4], 'only the successors left in');
    t.ok(Math.abs(kept.get(4)! / 20000 - 0.5) < 0.015, `P(4 | 3, not 1 or 2) drawn ${(kept.get(4)! / 20000).toFixed(4)}, expected 0.5`);
  });

  t.test('samples: BOS first, every token after a trigger copies the one before it, the rest follow the chain', async (t) => {
    const triggerCount = 2;
    const backcopy = Backcopy.fromTokens(STREAM, 6, 0, triggerCount);
    t.same(backcopy.triggers, [3, 1], 'the two most frequent tokens other than BOS');
    const rng = seedrandom('samples');
    const s = backcopy.sample(20000, rng);
    t.equal(s[0], 0);
    let copies = 0;
    let triggers = 0;
    let chainSteps = 0;
    let badChainStep = 0;
    for (let i = 1; i < s.length; i++) {
      if (backcopy.trigger(s[i]!)) triggers++;
      if (i >= 2 && backcopy.trigger(s[i - 1]!)) {
        copies++;
        if (s[i] !== s[i - 2]) t.fail(`token ${i} does not copy token ${i - 2}`);
        if (backcopy.trigger(s[i]!)) t.fail(`token ${i} copies a trigger`);
        if (i + 1 < s.length && backcopy.trigger(s[i + 1]!)) t.fail(`token ${i + 1}, right after a copy, is a trigger`);
      } else {
        chainSteps++;
        if (backcopy.chain.probability(s[i - 1]!, s[i]!) === 0) badChainStep++;
      }
    }
    t.equal(badChainStep, 0, 'every non-copy step is a transition the chain has');
    t.equal(copies, triggers - (backcopy.trigger(s[s.length - 1]!) ? 1 : 0), 'one copy after every trigger');
    t.notOk(backcopy.trigger(s[1]!), 'no trigger right after BOS (nothing to copy)');
    // The trigger rate follows from the chain: every free chain draw lands on a trigger with the chain's
    // own probability from the state before it; copies, the draw after BOS and the draw after a copy never
    // do. So the count of triggers must match the sum of those one-step probabilities over the free draws.
    let expected = 0;
    for (let i = 2; i < s.length; i++) {
      if (backcopy.trigger(s[i - 1]!) || (i >= 3 && backcopy.trigger(s[i - 2]!))) continue;
      expected += backcopy.chain.probability(s[i - 1]!, 3) + backcopy.chain.probability(s[i - 1]!, 1);
    }
    t.ok(
      Math.abs(triggers - expected) < 4 * Math.sqrt(expected),
      `triggers ${triggers}, expected ${expected.toFixed(0)} from the chain (${chainSteps} chain steps)`,
    );
    // bigram fit: the empirical P(b | a) over the free chain draws matches the chain
    const pair = new Map<string, number>();
    const from = new Map<number, number>();
    for (let i = 2; i < s.length; i++) {
      if (backcopy.trigger(s[i - 1]!) || (i >= 3 && backcopy.trigger(s[i - 2]!))) continue;
      const a = s[i - 1]!;
      pair.set(`${a},${s[i]}`, (pair.get(`${a},${s[i]}`) ?? 0) + 1);
      from.set(a, (from.get(a) ?? 0) + 1);
    }
    for (const [a, n] of from) {
      if (n < 1000) continue;
      for (let b = 0; b < 6; b++) {
        const p = backcopy.chain.probability(a, b);
        const q = (pair.get(`${a},${b}`) ?? 0) / n;
        t.ok(Math.abs(p - q) < 4 * Math.sqrt((p * (1 - p)) / n) + 1e-9, `P(${b} | ${a}): sampled ${q.toFixed(4)}, chain ${p.toFixed(4)} (${n} draws)`);
      }
    }
  });

  t.test('training samples: BOS (or the sink, then BOS) first, next-token targets, seeded', async (t) => {
    const backcopy = Backcopy.fromTokens(STREAM, 6, 0, 2);
    const plain = new BackcopySource(backcopy, 8, false).draw(seedrandom('a'));
    t.equal(plain.inputs.length, 8);
    t.equal(plain.inputs[0], 0, 'BOS first');
    t.same(plain.targets.slice(0, 7), plain.inputs.slice(1), 'each position predicts the next input');
    const sink = new BackcopySource(backcopy, 8, true).draw(seedrandom('a'));
    t.same(sink.inputs.slice(0, 2), [SINK_TOKEN, 0], 'the sink token, then BOS');
    t.equal(sink.targets[0], IGNORE_TARGET, "the sink's prediction is not scored");
    t.same(sink.inputs.slice(1), plain.inputs.slice(0, 7), 'the same draw behind the sink');

    const data: TrainData = {
      tokenizer: { vocabSize: 6, bosId: 0, eosId: 0 } as TrainData['tokenizer'],
      train: Int32Array.from(STREAM),
      heldout: Int32Array.from(STREAM),
    };
    const options = { ...TRAIN_DEFAULTS, seqLen: 8, data: 'backcopy', triggers: 2 } as TrainOptions;
    const a = new BatchSampler(trainSources(data, options, false), 4, 3).next();
    const b = new BatchSampler(trainSources(data, options, false), 4, 3).next();
    t.same(a.inputs, b.inputs, 'same seed, same batch');
    t.ok(
      a.inputs.every((s) => s[0] === 0),
      'every sample starts with BOS',
    );
    t.equal(a.scored, 32);
    const val = validationSamples(data, options, false, 5);
    t.same(val, validationSamples(data, options, false, 5), 'held-out samples are fixed');
    t.notSame(val[0]!.inputs, a.inputs[0], 'and drawn apart from training');
    const mix = trainSources(data, { ...options, data: 'mix' }, false);
    t.equal(mix.length, 2, 'mix: Backcopy and Brown windows');
    const windows = new BatchSampler(mix, 64, 1).next();
    t.ok(
      windows.inputs.every((s) => s[0] === 0),
      'mix puts BOS first in the Brown windows too',
    );
  });
}

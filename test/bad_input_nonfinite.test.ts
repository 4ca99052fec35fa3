// Bad input, class "non-finite numbers": NaN or infinite weights are refused
// at load, naming the tensor (F32, F16, BF16, llama2.c); finite weights whose
// outputs overflow are refused when the logits come back, never scored as
// `ppl NaN` or decoded as token 0 forever.
import * as tf from '@tensorflow/tfjs';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { SafetensorsReader } from '../src/checkpoint/safetensors.js';
import { NonFiniteError } from '../src/errors.js';
import { firstNonFinite } from '../src/finite.js';
import { scoreTokens } from '../src/eval/perplexity.js';
import { generate } from '../src/generate.js';
import { loadModel } from '../src/model/load.js';
import { disposeModel } from '../src/model/weights.js';
import { argmax } from '../src/sample/sampler.js';
import { assertRefused, listing } from './bad_input.js';
import { FIXTURES, initTestBackend, loadConformance, runCliInProcess } from './helpers.js';
import { llama2cToHf, llamaConfigJson, randomLlama2c, writeHfDir } from './tiny_checkpoints.js';

await initTestBackend();
const dir = mkdtempSync(join(tmpdir(), 'streamllm-nonfinite-'));
const tiny = `${FIXTURES}tiny-gqa.bin`;
const tokens = loadConformance().tokens.slice(0, 20);
const ids = join(dir, 'ids.json');
writeFileSync(ids, JSON.stringify(tokens));

t.test('firstNonFinite and argmax: the float32 loops (logits) find what the plain loops find', async (t) => {
  for (const n of [1, 3, 4, 7, 32000]) {
    for (const bad of [NaN, Infinity, -Infinity]) {
      for (const at of [0, n - 1, Math.floor(n / 2)]) {
        const values = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 50);
        values[at] = bad;
        t.equal(firstNonFinite(values), firstNonFinite(Array.from(values)), `${n} values, ${bad} at ${at}`);
        t.equal(firstNonFinite(values), at);
        t.equal(argmax(values), argmax(Array.from(values)), `argmax: ${n} values, ${bad} at ${at}`);
      }
    }
    const finite = Float32Array.from({ length: n }, (_, i) => Math.round(Math.sin(i) * 3)); // ties
    t.equal(firstNonFinite(finite), -1);
    t.equal(argmax(finite), argmax(Array.from(finite)), `argmax of ${n} values with ties: the first largest`);
  }
});

/** The fixture with float32 values written at a byte offset. */
function patchedLlama2c(name: string, offset: number, values: number[]): string {
  const bytes = readFileSync(tiny);
  values.forEach((v, i) => bytes.writeFloatLE(v, offset + 4 * i));
  const file = join(dir, name);
  writeFileSync(file, bytes);
  return file;
}

// tiny-gqa: dim 48, hidden 128, 3 layers, 6 heads, 2 kv heads, vocab 96 (shared classifier)
const [dim, hidden, layers, vocab, kvDim] = [48, 128, 3, 96, 16];
const wqOffset = 28 + 4 * (vocab * dim + layers * dim);
const rmsFinalOffset = wqOffset + 4 * layers * (2 * dim * dim + 2 * kvDim * dim + dim + 3 * hidden * dim);

t.test('llama2.c: a NaN weight is refused at load, naming the tensor and layer', async (t) => {
  const file = patchedLlama2c('nan.bin', wqOffset + 4 * (dim * dim + 5), [NaN]);
  const r = await runCliInProcess(['eval', '--model', file, '--tokens', ids]);
  assertRefused(t, r, /^streamllm: .*nan\.bin: tensor wq holds NaN at layer 1, element 5: expected finite weights$/);
  t.equal(r.stdout, '');
  const inf = patchedLlama2c('inf.bin', wqOffset - 4, [-Infinity]);
  const before = tf.memory().numTensors;
  t.throws(() => loadModel(inf), NonFiniteError);
  t.throws(() => loadModel(inf), /tensor rms_att_weight holds -Infinity at layer 2, element 47/);
  t.equal(tf.memory().numTensors, before, 'a refused load leaves no tensors');
});

t.test('safetensors F32, F16 and BF16: a NaN or infinity is refused at load, naming the tensor', async (t) => {
  const shape = { dim: 16, hiddenDim: 24, layers: 2, heads: 4, kvHeads: 2, vocabSize: 40, maxSeqLen: 32, sharedClassifier: false };
  const tensors = llama2cToHf(randomLlama2c(shape, 'nonfinite'));
  const config = llamaConfigJson(shape);
  const name = 'model.layers.1.mlp.up_proj.weight';
  for (const dtype of ['F32', 'F16', 'BF16'] as const) {
    for (const bad of [NaN, Infinity]) {
      const hf = join(dir, `hf-${dtype}-${bad}`);
      mkdirSync(hf);
      const values = Float32Array.from(tensors.get(name)!.values);
      values[17] = bad;
      writeHfDir(hf, config, new Map([...tensors, [name, { shape: tensors.get(name)!.shape, values }]]), dtype);
      t.throws(
        () => loadModel(hf),
        new RegExp(`tensor 'model\\.layers\\.1\\.mlp\\.up_proj\\.weight' holds ${bad} at element 17 \\(of \\[24, 16\\]\\)`),
        `${dtype} ${bad}`,
      );
    }
  }
  const ok = join(dir, 'hf-ok');
  mkdirSync(ok);
  writeHfDir(ok, config, tensors, 'BF16');
  const model = loadModel(ok);
  t.equal(model.config.layers, 2, 'the same file without the bad value loads');
  disposeModel(model);
  t.ok(SafetensorsReader.open(ok).has(name));
});

t.test('finite weights whose logits overflow: eval and generate refuse; no ppl NaN, no token 0 forever', async (t) => {
  // rms_final gains of 3e38: every logit overflows float32
  const file = patchedLlama2c(
    'overflow.bin',
    rmsFinalOffset,
    Array.from({ length: dim }, () => 3e38),
  );
  const csv = join(dir, 'nll.csv');
  const before = listing(dir);
  const e = await runCliInProcess(['eval', '--model', file, '--tokens', ids, '--cache', 'window,dense', '--csv', csv]);
  assertRefused(t, e, /^streamllm: window\(64\): the model's logits predicting token 1 are not finite \(NLL NaN\)/);
  t.notOk(existsSync(csv), 'no CSV written');
  t.same(listing(dir), before, 'no file left behind');
  const g = await runCliInProcess(['generate', '--model', file, '--prompt-ids', '1,2', '--steps', '0', '--temperature', '0', '--ignore-eos']);
  assertRefused(t, g, /^streamllm: streaming\(4\+60\): the model's logits for generated token 1 are not finite \(token 0: NaN\)/);
  t.equal(g.stdout, '', 'not a single token printed');

  const model = loadModel(file);
  const tensors = tf.memory().numTensors;
  await t.rejects(scoreTokens(model, tokens, { kind: 'dense' }), NonFiniteError);
  const steps = generate(model, { kind: 'window', windowSize: 8 }, [1, 2], argmax, { steps: 5 });
  await t.rejects(steps.next(), /window\(8\): the model's logits for generated token 1 are not finite/);
  t.equal(tf.memory().numTensors, tensors, 'no tensor leak from a refused run');
  disposeModel(model);
});

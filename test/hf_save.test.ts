// Our own checkpoint format: saveHfModel -> loadModel round trips, for every
// softmax variant and the sink token, from a llama2.c model (pairs RoPE
// layout, permuted to halves on save) and from a loaded one (halves).
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { SoftmaxVariant } from '../kernels/softmax.js';
import { readSafetensorsHeader } from '../src/checkpoint/safetensors.js';
import { ConfigError } from '../src/errors.js';
import { modelFromLlama2c } from '../src/model/from_llama2c.js';
import { loadModel } from '../src/model/load.js';
import { saveHfModel } from '../src/model/to_hf.js';
import { SINK_TOKEN } from '../src/model/transformer.js';
import { disposeModel, type Model } from '../src/model/weights.js';
import { denseLogits, initTestBackend, maxAbsDiff } from './helpers.js';
import { randomArray, randomLlama2c, rng, tempDir } from './tiny_checkpoints.js';

await initTestBackend();

const shape = { dim: 16, hiddenDim: 40, layers: 2, heads: 4, kvHeads: 2, vocabSize: 37, maxSeqLen: 64, sharedClassifier: false };

function tinyModel(softmax: SoftmaxVariant, sinkToken: boolean, seed: string, tied = false): Model {
  const model = modelFromLlama2c(randomLlama2c({ ...shape, sharedClassifier: tied }, seed));
  model.config = { ...model.config, softmax, sinkToken };
  const r = rng(`${seed}-sinks`);
  if (softmax === 'learned-sink') for (const l of model.weights.layers) l.sinkLogits = tf.tensor1d(randomArray(r, shape.heads, 2));
  if (sinkToken) model.weights.sinkEmbedding = tf.tensor1d(randomArray(r, shape.dim));
  return model;
}

const variants: [SoftmaxVariant, boolean][] = [
  ['softmax', false],
  ['softmax1', false],
  ['learned-sink', false],
  ['softmax', true],
  ['learned-sink', true],
];

for (const [softmax, sinkToken] of variants) {
  t.test(`round trip: ${softmax}${sinkToken ? ' + sink token' : ''}`, async (t) => {
    const before = tf.memory().numTensors;
    const model = tinyModel(softmax, sinkToken, `save-${softmax}-${sinkToken}`);
    const dir = tempDir();
    saveHfModel(dir, model, { bos_token_id: 1 });

    const json = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    t.same(json.architectures, ['LlamaForCausalLM']);
    t.equal(json.model_type, 'llama');
    t.equal(json.hidden_size, 16);
    t.equal(json.intermediate_size, 40);
    t.equal(json.num_key_value_heads, 2);
    t.equal(json.tie_word_embeddings, false);
    t.equal(json.torch_dtype, 'float32');
    t.equal(json.bos_token_id, 1, 'extraConfig merged');
    t.same(json.streamllm, { softmax, sink_token: sinkToken });

    const names = [...readSafetensorsHeader(join(dir, 'model.safetensors')).tensors.keys()];
    t.ok(names.includes('lm_head.weight'));
    t.equal(names.includes('model.layers.1.self_attn.sinks'), softmax === 'learned-sink');
    t.equal(names.includes('model.sink_embedding'), sinkToken);
    t.equal(names.length, 1 + 2 * 9 + 1 + 1 + (softmax === 'learned-sink' ? 2 : 0) + (sinkToken ? 1 : 0));

    const loaded = loadModel(dir);
    t.equal(loaded.config.softmax, softmax);
    t.equal(loaded.config.sinkToken, sinkToken);
    t.equal(loaded.config.rope.layout, 'halves', 'saved in the HF layout');
    const ids = sinkToken ? [SINK_TOKEN, 3, 1, 4, 1, 5, 9, 2, 6] : [3, 1, 4, 1, 5, 9, 2, 6];
    const diff = maxAbsDiff(denseLogits(model, ids), denseLogits(loaded, ids));
    t.ok(diff < 1e-5, `pairs model and its halves reload agree: max |diff| ${diff}`);

    // Saving the reloaded (halves) model gives the same file, byte for byte.
    const again = tempDir();
    saveHfModel(again, loaded, { bos_token_id: 1 });
    t.ok(readFileSync(join(dir, 'model.safetensors')).equals(readFileSync(join(again, 'model.safetensors'))));
    t.equal(readFileSync(join(again, 'config.json'), 'utf8'), readFileSync(join(dir, 'config.json'), 'utf8'));

    disposeModel(model);
    disposeModel(loaded);
    t.equal(tf.memory().numTensors, before, 'no tensor leak');
  });
}

t.test('tied embeddings are detected and saved once', async (t) => {
  const before = tf.memory().numTensors;
  const model = tinyModel('softmax', false, 'tied', true);
  const dir = tempDir();
  saveHfModel(dir, model);
  t.equal(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).tie_word_embeddings, true);
  t.notOk(readSafetensorsHeader(join(dir, 'model.safetensors')).tensors.has('lm_head.weight'));
  const loaded = loadModel(dir);
  t.ok(maxAbsDiff(denseLogits(model, [1, 2, 3]), denseLogits(loaded, [1, 2, 3])) < 1e-5);
  const untied = tinyModel('softmax', false, 'untied');
  t.throws(() => saveHfModel(tempDir(), untied, { tie_word_embeddings: true }), ConfigError);
  disposeModel(untied);
  disposeModel(model);
  disposeModel(loaded);
  t.equal(tf.memory().numTensors, before, 'no tensor leak');
});

t.test('bfloat16 save rounds every weight to bfloat16', async (t) => {
  const model = tinyModel('softmax', false, 'bf16');
  const dir = tempDir();
  saveHfModel(dir, model, {}, { dtype: 'BF16' });
  const loaded = loadModel(dir);
  const a = model.weights.embedding.dataSync();
  const b = loaded.weights.embedding.dataSync();
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / Math.abs(a[i]!));
  t.ok(worst > 0 && worst <= 2 ** -8, `relative error ${worst} within half a bfloat16 ulp`);
  disposeModel(model);
  disposeModel(loaded);
});

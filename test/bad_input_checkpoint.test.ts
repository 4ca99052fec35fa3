// Bad input, class "checkpoint and config disagree": every tensor in the
// file must be used by the config (a stray layer or bias, an lm_head beside
// tied embeddings, a shard tensor the index does not list), else the load is
// refused; buffers real checkpoints carry and the engine recomputes are
// skipped with a warning that names them; notes the config reader makes
// (Mistral's sliding_window) are printed.
import * as tf from '@tensorflow/tfjs';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { writeSafetensors } from '../src/checkpoint/safetensors.js';
import { FileFormatError } from '../src/errors.js';
import { loadModel } from '../src/model/load.js';
import { disposeModel } from '../src/model/weights.js';
import { assertRefused } from './bad_input.js';
import { initTestBackend, runCliInProcess } from './helpers.js';
import { llamaConfigJson, llamaTensorShapes, neoxTensorShapes, randomTensors, type TensorMap, toWrite, writeHfDir } from './tiny_checkpoints.js';

await initTestBackend();
const root = mkdtempSync(join(tmpdir(), 'streamllm-ckpt-'));
const ids = join(root, 'ids.json');
writeFileSync(ids, JSON.stringify([1, 5, 9, 3, 7, 2]));

const llama = llamaConfigJson({ dim: 16, hiddenDim: 24, layers: 2, heads: 4, kvHeads: 2, vocabSize: 32, maxSeqLen: 64, sharedClassifier: false });

let n = 0;
function modelDir(config: Record<string, unknown>, tensors: TensorMap): string {
  const dir = join(root, `m${n++}`);
  mkdirSync(dir);
  writeHfDir(dir, config, tensors);
  return dir;
}

const twoLayers = randomTensors('two', llamaTensorShapes(llama));

t.test('a config with fewer layers than the file is refused before any weight is read', async (t) => {
  const dir = modelDir({ ...llama, num_hidden_layers: 1 }, twoLayers);
  const r = await runCliInProcess(['eval', '--model', dir, '--tokens', ids]);
  assertRefused(t, r, /^streamllm: .*model\.safetensors: holds 2 layers but config\.json num_hidden_layers is 1: every tensor must be used$/);
  t.equal(r.stdout, '');
});

t.test('a stray tensor (a bias the config does not declare, a sink of another variant) is refused, named', async (t) => {
  const before = tf.memory().numTensors;
  const bias = modelDir(llama, new Map([...twoLayers, ...randomTensors('b', [['model.layers.1.self_attn.q_proj.bias', [16]]])]));
  t.throws(() => loadModel(bias), FileFormatError);
  t.throws(() => loadModel(bias), /tensor not used by a llama model with this config\.json: model\.layers\.N\.self_attn\.q_proj\.bias \(a bias, sink or layer/);
  const sinks = modelDir(
    llama,
    new Map([
      ...twoLayers,
      ...randomTensors('s', [
        ['model.layers.0.self_attn.sinks', [4]],
        ['model.layers.1.self_attn.sinks', [4]],
        ['extra', [3]],
      ]),
    ]),
  );
  t.throws(() => loadModel(sinks), /3 tensors not used by a llama model with this config\.json: model\.layers\.N\.self_attn\.sinks \(x2\), extra /);
  t.equal(tf.memory().numTensors, before, 'a refused load leaves no tensors');
  const r = await runCliInProcess(['eval', '--model', bias, '--tokens', ids]);
  assertRefused(t, r, /^streamllm: .*tensor not used by a llama model/);
});

t.test("an lm_head beside tied embeddings is refused (llama's lm_head, NeoX's embed_out)", async (t) => {
  const tied = modelDir({ ...llama, tie_word_embeddings: true }, twoLayers);
  const r = await runCliInProcess(['eval', '--model', tied, '--tokens', ids]);
  assertRefused(t, r, /^streamllm: .*holds 'lm_head\.weight' but config\.json ties the classifier to the embedding \(tie_word_embeddings true\): set it false/);
  const neox = {
    model_type: 'gpt_neox',
    hidden_size: 16,
    intermediate_size: 32,
    num_hidden_layers: 1,
    num_attention_heads: 4, // prettier-ignore
    vocab_size: 32,
    max_position_embeddings: 64,
    rotary_pct: 0.5,
    tie_word_embeddings: false, // prettier-ignore
  };
  const dir = modelDir({ ...neox, tie_word_embeddings: true }, randomTensors('neox', neoxTensorShapes(neox)));
  t.throws(() => loadModel(dir), /holds 'embed_out\.weight' but config\.json ties/);
});

t.test('buffers the engine recomputes (rotary inv_freq, NeoX masks) load with one warning naming them', async (t) => {
  const buffers = randomTensors('buf', [
    ['model.layers.0.self_attn.rotary_emb.inv_freq', [2]],
    ['model.layers.1.self_attn.rotary_emb.inv_freq', [2]],
  ]);
  const dir = modelDir(llama, new Map([...twoLayers, ...buffers]));
  const notes: string[] = [];
  const model = loadModel(dir, { onNote: (line) => notes.push(line) });
  t.same(notes, ['skipped 2 buffers the engine recomputes: model.layers.N.self_attn.rotary_emb.inv_freq (x2)']);
  disposeModel(model);
  const r = await runCliInProcess(['eval', '--model', dir, '--tokens', ids]);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stderr, /^warning: .*m\d+: skipped 2 buffers the engine recomputes: model\.layers\.N\.self_attn\.rotary_emb\.inv_freq \(x2\)$/m);
  const neox = {
    model_type: 'gpt_neox',
    hidden_size: 16,
    intermediate_size: 32,
    num_hidden_layers: 2,
    num_attention_heads: 4, // prettier-ignore
    vocab_size: 32,
    max_position_embeddings: 64,
    rotary_pct: 0.5, // prettier-ignore
  };
  const masks = randomTensors('mask', [
    ['gpt_neox.layers.0.attention.bias', [1, 1, 4, 4]],
    ['gpt_neox.layers.0.attention.masked_bias', []],
    ['gpt_neox.layers.1.attention.rotary_emb.inv_freq', [2]],
  ]);
  const neoxDir = modelDir(neox, new Map([...randomTensors('nx', neoxTensorShapes(neox)), ...masks]));
  const neoxNotes: string[] = [];
  disposeModel(loadModel(neoxDir, { onNote: (line) => neoxNotes.push(line) }));
  t.match(
    neoxNotes[0],
    /^skipped 3 buffers the engine recomputes: gpt_neox\.layers\.N\.attention\.bias, gpt_neox\.layers\.N\.attention\.masked_bias, gpt_neox\.layers\.N\.attention\.rotary_emb\.inv_freq$/,
  );
});

t.test("the config reader's notes are printed: Mistral's sliding_window", async (t) => {
  const dir = modelDir({ ...llama, model_type: 'mistral', sliding_window: 4096 }, twoLayers);
  const r = await runCliInProcess(['eval', '--model', dir, '--tokens', ids]);
  t.equal(r.status, 0, r.stderr);
  const warnings = r.stderr.split('\n').filter((l) => l.startsWith('warning: '));
  t.equal(warnings.length, 1, 'one line');
  t.match(warnings[0], /^warning: .*: sliding_window 4096 is not applied: dense attention beyond it differs from the reference$/);
});

t.test('a shard holding a tensor its index does not list is refused', async (t) => {
  const dir = join(root, 'sharded');
  mkdirSync(dir);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(llama));
  const all = toWrite(twoLayers);
  const half = Math.floor(all.length / 2);
  writeSafetensors(join(dir, 'a.safetensors'), all.slice(0, half));
  writeSafetensors(join(dir, 'b.safetensors'), all.slice(half));
  const weightMap = Object.fromEntries(all.map((x, i) => [x.name, i < half ? 'a.safetensors' : 'b.safetensors']));
  const index = join(dir, 'model.safetensors.index.json');
  writeFileSync(index, JSON.stringify({ metadata: {}, weight_map: weightMap }));
  const model = loadModel(dir);
  t.equal(model.config.layers, 2, 'the complete index loads');
  disposeModel(model);
  delete weightMap['model.norm.weight'];
  weightMap['model.layers.1.mlp.down_proj.weight'] = 'a.safetensors';
  writeFileSync(index, JSON.stringify({ metadata: {}, weight_map: weightMap }));
  t.throws(() => loadModel(dir), /tensor 'model\.layers\.1\.mlp\.down_proj\.weight', listed in model\.safetensors\.index\.json, is missing/);
  weightMap['model.layers.1.mlp.down_proj.weight'] = 'b.safetensors';
  writeFileSync(index, JSON.stringify({ metadata: {}, weight_map: weightMap }));
  t.throws(() => loadModel(dir), /b\.safetensors: holds tensor 'model\.norm\.weight', which model\.safetensors\.index\.json does not map to this shard/);
});

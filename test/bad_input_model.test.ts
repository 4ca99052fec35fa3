// Bad input in a model: a checkpoint its config does not describe, non-finite
// numbers, and sizes too large for memory. A class each, in a block of its own.
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { DenseCache } from '../src/cache/dense.js';
import { RecomputeWindow } from '../src/cache/recompute.js';
import { StreamingCache } from '../src/cache/streaming.js';
import { SafetensorsReader, writeSafetensors } from '../src/checkpoint/safetensors.js';
import { FileFormatError, NonFiniteError, ResourceError } from '../src/errors.js';
import { firstNonFinite } from '../src/finite.js';
import { pooledArgmax } from '../kernels/logits_argmax.js';
import { WorkerPool } from '../kernels/pool.js';
import { poolRegions } from '../kernels/pool_regions.js';
import { scoreTokens } from '../src/eval/perplexity.js';
import { generate } from '../src/generate.js';
import { checkFits, MAX_ARRAY_BYTES } from '../src/memory.js';
import { cacheShape } from '../src/model/config.js';
import { loadModel } from '../src/model/load.js';
import { forward } from '../src/model/transformer.js';
import { placeWeights } from '../src/model/pooled.js';
import { poolEntryMemory } from '../src/model/pooled_layers.js';
import { disposeModel } from '../src/model/weights.js';
import { argmax } from '../src/sample/sampler.js';
import { TokenStream } from '../src/stream.js';
import { checkSamplesFit } from '../src/train/budget.js';
import { TRAIN_DEFAULTS } from '../src/train/options.js';
import { assertPooledLoadRefused, assertRefused, listing } from './bad_input.js';
import { FIXTURES, initTestBackend, loadConformance, runCliInProcess } from './helpers.js';
import { CLI, tempDir, WEIGHTS } from './paths.js';
import {
  llama2cToHf,
  llamaConfigJson,
  llamaTensorShapes,
  neoxTensorShapes,
  randomLlama2c,
  randomTensors,
  type TensorMap,
  toWrite,
  writeHfDir,
} from './tiny_checkpoints.js';

await initTestBackend();

// Bad input, class "checkpoint and config disagree": every tensor in the
// file must be used by the config (a stray layer or bias, an lm_head beside
// tied embeddings, a shard tensor the index does not list), else the load is
// refused; buffers real checkpoints carry and the engine recomputes are
// skipped with a warning that names them; notes the config reader makes
// (Mistral's sliding_window) are printed.
{
  const root = tempDir('streamllm-ckpt-');
  const ids = join(root, 'ids.json');
  writeFileSync(ids, JSON.stringify([1, 5, 9, 3, 7, 2]));

  const llama = llamaConfigJson({ dim: 16, hiddenDim: 24, layers: 2, heads: 4, kvHeads: 2, vocabSize: 32, maxSeqLen: 64, sharedClassifier: false });
  const neox = {
    model_type: 'gpt_neox',
    hidden_size: 16,
    intermediate_size: 32,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    vocab_size: 32,
    max_position_embeddings: 64,
    rotary_pct: 0.5,
  };

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
    t.throws(
      () => loadModel(bias),
      /tensor not used by a llama model with this config\.json: model\.layers\.N\.self_attn\.q_proj\.bias \(a bias, sink or layer/,
    );
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
    assertPooledLoadRefused(t, bias, FileFormatError, /tensor not used by a llama model with this config\.json: model\.layers\.N\.self_attn\.q_proj\.bias/);
    assertPooledLoadRefused(t, sinks, FileFormatError, /3 tensors not used by a llama model/);
    const r = await runCliInProcess(['eval', '--model', bias, '--tokens', ids]);
    assertRefused(t, r, /^streamllm: .*tensor not used by a llama model/);
  });

  t.test("an lm_head beside tied embeddings is refused (llama's lm_head, NeoX's embed_out)", async (t) => {
    const tied = modelDir({ ...llama, tie_word_embeddings: true }, twoLayers);
    const r = await runCliInProcess(['eval', '--model', tied, '--tokens', ids]);
    assertRefused(
      t,
      r,
      /^streamllm: .*holds 'lm_head\.weight' but config\.json ties the classifier to the embedding \(tie_word_embeddings true\): set it false/,
    );
    const oneLayer = { ...neox, num_hidden_layers: 1 };
    const dir = modelDir({ ...oneLayer, tie_word_embeddings: true }, randomTensors('neox', neoxTensorShapes(oneLayer)));
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
}

// Bad input, class "non-finite numbers": NaN or infinite weights are refused
// at load, naming the tensor (F32, F16, BF16, llama2.c); finite weights whose
// outputs overflow are refused when the logits come back, never scored as
// `ppl NaN` or decoded as token 0 forever.
{
  const dir = tempDir('streamllm-nonfinite-');
  const tiny = `${FIXTURES}tiny-gqa.bin`;
  const tokens = loadConformance().tokens.slice(0, 20);
  const ids = join(dir, 'ids.json');
  writeFileSync(ids, JSON.stringify(tokens));

  t.test("firstNonFinite and argmax: the float32 loops (logits) and the pool's SIMD argmax find what the plain loops find", async (t) => {
    // the pool's loop reads the values in its memory, at an offset of 4 bytes (not 16-byte aligned)
    const pool = new WorkerPool(1);
    const base = pool.alloc(4 * 32001) + 4;
    const inPool = (values: Float32Array) => {
      const view = new Float32Array(pool.memory.buffer, base, values.length);
      view.set(values);
      return view;
    };
    for (const n of [1, 3, 4, 7, 32000]) {
      for (const bad of [NaN, Infinity, -Infinity]) {
        for (const at of [0, n - 1, Math.floor(n / 2)]) {
          const values = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 50);
          values[at] = bad;
          t.equal(firstNonFinite(values), firstNonFinite(Array.from(values)), `${n} values, ${bad} at ${at}`);
          t.equal(firstNonFinite(values), at);
          t.equal(argmax(values), argmax(Array.from(values)), `argmax: ${n} values, ${bad} at ${at}`);
          t.equal(pooledArgmax(pool, inPool(values)), -1, `the pool's argmax: ${n} values, ${bad} at ${at}: not finite`);
        }
      }
      const finite = Float32Array.from({ length: n }, (_, i) => Math.round(Math.sin(i) * 3)); // ties
      t.equal(firstNonFinite(finite), -1);
      t.equal(argmax(finite), argmax(Array.from(finite)), `argmax of ${n} values with ties: the first largest`);
      t.equal(pooledArgmax(pool, inPool(finite)), argmax(Array.from(finite)), `the pool's argmax of ${n} values with ties`);
      const zeros = Float32Array.from({ length: n }, (_, i) => (Math.sin(i) > 0 ? 0 : -0)); // -0 and 0 tie
      t.equal(pooledArgmax(pool, inPool(zeros)), 0, `the pool's argmax of ${n} zeros, -0 among them`);
      // a new largest in every group of four, and values in no order
      const rising = Float32Array.from({ length: n }, (_, i) => i - n);
      t.equal(argmax(rising), n - 1, `argmax of ${n} rising values: the last`);
      const noisy = Float32Array.from({ length: n }, (_, i) => Math.sin(i * i * 0.37) * 2);
      t.equal(argmax(noisy), argmax(Array.from(noisy)), `argmax of ${n} values in no order`);
      t.equal(pooledArgmax(pool, inPool(rising)), n - 1, `the pool's argmax of ${n} rising values`);
      t.equal(pooledArgmax(pool, inPool(noisy)), argmax(Array.from(noisy)), `the pool's argmax of ${n} values in no order`);
    }
    await pool.dispose();
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
        const message = new RegExp(`tensor 'model\\.layers\\.1\\.mlp\\.up_proj\\.weight' holds ${bad} at element 17`);
        assertPooledLoadRefused(t, hf, NonFiniteError, message);
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

  t.test("a pooled model's greedy pick (made where the logits lie) refuses non-finite logits as the plain path does", async (t) => {
    // every logit overflowing, or one: embedding row 7 of 3e38 (the classifier's row 7: its logit)
    const rowOffset = 28 + 4 * 7 * dim;
    const files = [
      patchedLlama2c(
        'overflow-all.bin',
        rmsFinalOffset,
        Array.from({ length: dim }, () => 3e38),
      ),
      patchedLlama2c(
        'overflow-one.bin',
        rowOffset,
        Array.from({ length: dim }, () => 3e38),
      ),
    ];
    const message = async (sample: (logits: ArrayLike<number>) => number, model: ReturnType<typeof loadModel>) => {
      try {
        for await (const _ of generate(model, { kind: 'dense' }, [1, 2], sample, { steps: 5 }));
      } catch (e) {
        t.ok(e instanceof NonFiniteError, 'a NonFiniteError');
        return (e as Error).message;
      }
      return 'no error';
    };
    for (const file of files) {
      const plain = loadModel(file);
      const want = await message(argmax, plain);
      t.match(want, /^dense: the model's logits for generated token 1 are not finite \(token \d+: (NaN|-?Infinity)\)/, want);
      disposeModel(plain);
      for (const threads of [1, 2, 3]) {
        const model = placeWeights(loadModel(file), { threads, weights: 'q8', splitMinBytes: 0 });
        await model.pool!.ready();
        const tensors = tf.memory().numTensors;
        const got = await message(argmax, model);
        t.equal(got, await message((logits) => argmax(logits), model), `${threads} threads: the message of the path that reads the logits`);
        t.match(got, /^dense: the model's logits for generated token 1 are not finite \(token \d+: (NaN|-?Infinity)\)/);
        t.equal(tf.memory().numTensors, tensors, 'no tensor leak from a refused run');
        await disposeModel(model);
      }
    }
  });
}

// Bad input, class "sizes": a window, block, sequence length or shape too
// large for memory is refused before anything is allocated, naming the flag
// or field; a huge window that the stream never fills costs only what the
// stream uses.
{
  const dir = tempDir('streamllm-sizes-');
  const tiny = `${FIXTURES}tiny-gqa.bin`;
  const conformance = loadConformance();
  const ids = join(dir, 'ids.json');
  writeFileSync(ids, JSON.stringify(conformance.tokens.slice(0, 20)));

  t.test('a window of two billion over 20 tokens allocates for 20 and scores as a window of 20', async (t) => {
    const model = loadModel(tiny);
    const before = tf.memory().numTensors;
    const tokens = conformance.tokens.slice(0, 20);
    const huge = await scoreTokens(model, tokens, { kind: 'window', windowSize: 2_000_000_000 });
    const exact = await scoreTokens(model, tokens, { kind: 'window', windowSize: 20 });
    t.same(Array.from(huge.nll), Array.from(exact.nll), 'identical NLLs');
    const stream = new TokenStream(model, { kind: 'streaming', sinkCount: 4, windowSize: 2_000_000_000 });
    stream.feed(tokens).dispose();
    const perEntry = 2 * model.config.layers * model.config.kvHeads * model.config.headDim * 4;
    t.ok(stream.cacheBytes <= 256 * perEntry, `cache storage ${stream.cacheBytes} bytes: at most 256 entries`);
    stream.dispose();
    const recompute = new TokenStream(model, { kind: 'recompute', windowSize: 2_000_000_000 });
    recompute.feed(tokens).dispose();
    t.ok(recompute.cacheBytes <= 256 * perEntry, 'recompute scratch cache too');
    recompute.dispose();
    t.equal(tf.memory().numTensors, before, 'no tensor leak');
    disposeModel(model);
  });

  // A block refused for its attention's size after its cache began (transformer.ts checkAttentionFits): the cache as if it
  // had never begun (KVCache.abandon), so a caller may go on with a smaller block (it was 60,000 tokens longer, over nothing)
  t.test('a block too large for its attention scores: ResourceError, the cache as before (the next tokens as a fresh one)', async (t) => {
    const model = loadModel(tiny);
    const before = tf.memory().numTensors;
    const prefix = conformance.tokens.slice(0, 10);
    const next = conformance.tokens.slice(10, 15);
    const nextLogits = (cache: DenseCache) => {
      const logits = forward(model, next, cache);
      const values = Array.from(logits.dataSync());
      logits.dispose();
      return values;
    };
    const fresh = new DenseCache(cacheShape(model.config));
    forward(model, prefix, fresh).dispose();
    const want = nextLogits(fresh);
    fresh.dispose();
    const cache = new DenseCache(cacheShape(model.config));
    forward(model, prefix, cache).dispose();
    const huge = Array.from({ length: 60_000 }, (_, i) => 1 + (i % 90));
    t.throws(() => forward(model, huge, cache), ResourceError);
    t.equal(cache.length, prefix.length, 'length as before');
    t.same(nextLogits(cache), want, 'the next tokens: the logits of a cache that never saw the refused block, value for value');
    cache.dispose();
    t.equal(tf.memory().numTensors, before, 'no tensor leak');
    disposeModel(model);
  });

  // TokenStream with recompute: a feed whose forward pass throws (here the scratch cache's begin, made to throw: in the
  // feed's first block, or in its first or second re-run window after a first block that succeeded) leaves the stream as
  // it was: its window and length (they had taken the feed's ids), and the scratch cache that a window shorter than W
  // continues (a re-run had reset it)
  t.test('recompute: a feed that throws leaves the stream as it was (the next feeds as a stream that never saw it)', async (t) => {
    const model = loadModel(tiny);
    const before = tf.memory().numTensors;
    const policy = { kind: 'recompute', windowSize: 8 } as const;
    const ids = conformance.tokens.slice(0, 30);
    const good = [ids.slice(0, 5), ids.slice(5, 10), ids.slice(10, 11), ids.slice(11, 14)];
    const logitsOf = (stream: TokenStream, block: number[]) => {
      const logits = stream.feed(block);
      const values = Array.from(logits.dataSync());
      logits.dispose();
      return values;
    };
    const fresh = new TokenStream(model, policy);
    const want = good.map((block) => logitsOf(fresh, block));
    fresh.dispose();
    const stream = new TokenStream(model, policy);
    const scratch = (stream as unknown as { cache: DenseCache }).cache;
    const begin = scratch.begin.bind(scratch);
    let calls = 0;
    let failing = -1; // the begin of the feed that throws (0: its first)
    scratch.begin = (T: number) => {
      if (calls++ === failing) throw new Error('injected');
      return begin(T);
    };
    const failAt = (at: number, label: string) => {
      const length = stream.length;
      calls = 0;
      failing = at;
      t.throws(() => stream.feed(ids.slice(20, 26)), /^injected$/, `${label}: thrown`);
      failing = -1;
      t.equal(stream.length, length, `${label}: length as before`);
    };
    t.same(logitsOf(stream, good[0]!), want[0]);
    failAt(0, 'after 5 tokens, in the first block');
    failAt(1, 'after 5 tokens, in the first re-run window');
    failAt(2, 'after 5 tokens, in the second re-run window');
    t.same(logitsOf(stream, good[1]!), want[1], 'the next feed, value for value');
    failAt(0, 'after 10 tokens, in the first re-run window');
    failAt(1, 'after 10 tokens, in the second re-run window');
    t.same(logitsOf(stream, good[2]!), want[2], 'the next feed, value for value');
    t.same(logitsOf(stream, good[3]!), want[3], 'and the next');
    stream.dispose();
    t.equal(tf.memory().numTensors, before, 'no tensor leak');
    disposeModel(model);
  });

  // (a long window: restore puts back 200,000 ids, more than a call's arguments hold; the RangeError masked the feed's)
  t.test('recompute: a failed feed puts back a window of 200,000 ids', async (t) => {
    const window = new RecomputeWindow(300_000);
    for (let i = 0; i < 200_000; i++) window.push(i % 7);
    const saved = window.save();
    [1, 2, 3].forEach((id) => window.push(id));
    window.restore(saved);
    t.equal(window.length, 200_000, 'length as before');
    t.equal(window.window.length, 200_000);
    t.same(window.window.slice(-3), [199_997 % 7, 199_998 % 7, 199_999 % 7], 'the window as before');
  });

  // Node 20 allocates no Buffer past 4 GiB (buffer.constants.MAX_LENGTH, src/memory.ts MAX_ARRAY_BYTES): a tensor past
  // it is refused as such. From Node 22 that bound is 2^53 - 1 bytes, and the same sizes are refused for the memory
  // they need in all.
  const arraysBounded = MAX_ARRAY_BYTES < 2 ** 33;
  /** The refusal's words (regular expression source) for a tensor or array of `one` in `all`. */
  const tooLarge = (one: string, all: string, array = 'a tensor'): string =>
    arraysBounded ? `needs ${array} of ${one}, more than the largest array` : `needs ${all}, more than`;

  t.test('a cache that cannot fit is refused before it is allocated (API: ResourceError)', async (t) => {
    const before = tf.memory().numTensors;
    const wide = { layers: 1, kvHeads: 1, headDim: 2 ** 28 }; // 1 GiB per entry and tensor
    t.throws(() => new DenseCache(wide, 8), ResourceError);
    t.throws(
      () => new StreamingCache(4, 100, wide, 8),
      new RegExp(`window|streaming\\(4\\+100\\) cache of 8 entries: ${tooLarge('8\\.00 GiB', '16\\.00 GiB')}`),
    );
    t.throws(() => checkFits('x', 1, MAX_ARRAY_BYTES + 1), /x: needs a tensor of/);
    t.throws(() => checkFits('y', Number.MAX_SAFE_INTEGER, 4), /y: needs .* GiB, more than/);
    t.equal(tf.memory().numTensors, before, 'nothing allocated');
    // given an entry memory (a pooled model's: the pool's 4 GiB) without room for it: checked as tensors, where it would go
    const pool = new WorkerPool(1);
    const entryMemory = poolEntryMemory(pool);
    t.throws(
      () => new DenseCache({ layers: 2, kvHeads: 1, headDim: 2 ** 21, entryMemory }, 1024),
      new RegExp(`^dense cache of 1024 entries: ${tooLarge('8\\.00 GiB', '32\\.00 GiB')}`),
    );
    t.equal(poolRegions(pool).heldBytes, 0, 'nothing taken from the memory');
    const cache = new StreamingCache(2, 4096, { layers: 1, kvHeads: 1, headDim: 2 ** 19, entryMemory }, 4);
    t.ok(poolRegions(pool).heldBytes > 0, 'a small cache in the memory');
    t.throws(
      () => cache.begin(4096),
      new RegExp(`^streaming\\(2\\+4096\\) cache of 4096 entries: ${tooLarge('8\\.00 GiB', '16\\.00 GiB')}`),
      'refused as it would grow',
    );
    cache.dispose();
    t.equal(poolRegions(pool).heldBytes, 0, 'what it held given back');
    t.equal(tf.memory().numTensors, before, 'no tensor left');
    await pool.dispose();
  });

  t.test('generate --window too large to ever fill: refused naming --window', async (t) => {
    const r = await runCliInProcess(['generate', '--model', tiny, '--prompt-ids', '1,2', '--steps', '0', '--cache', 'window', '--window', '2000000000']);
    assertRefused(
      t,
      r,
      new RegExp(`^streamllm: --window 2000000000: a window\\(2000000000\\) cache of 2000000000 entries: ${tooLarge('[\\d.]+ GiB', '[\\d.]+ GiB')}`),
    );
    t.equal(r.stdout, '', 'nothing generated');
  });

  t.test('a huge max_position_embeddings is the default window: refused naming it; a short run is not', async (t) => {
    const hf = join(dir, 'hf');
    cpSync(join(WEIGHTS, 'softmax'), hf, { recursive: true });
    const config = JSON.parse(readFileSync(join(hf, 'config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(hf, 'config.json'), JSON.stringify({ ...config, max_position_embeddings: 1_000_000_000 }));
    const r = await runCliInProcess(['generate', '--model', hf, '--prompt', 'The jury', '--steps', '0', '--cache', 'streaming']);
    assertRefused(
      t,
      r,
      /^streamllm: the default window \(the model's trained length 1000000000\): a streaming\(4\+999999996\) cache .*give a smaller --window/,
    );
    const short = await runCliInProcess(['generate', '--model', hf, '--prompt-ids', '5,6', '--steps', '3', '--cache', 'streaming', '--ignore-eos', '--json']);
    t.equal(short.status, 0, short.stderr);
    t.equal((JSON.parse(short.stdout) as { ids: number[] }).ids.length, 2 + 3, 'a bounded run needs only its own length');
  });

  const many = join(dir, 'many.json');
  writeFileSync(many, JSON.stringify(Array.from({ length: 60_000 }, (_, i) => 1 + (i % 90))));

  t.test('eval --block too large for the attention scores: refused naming --block', async (t) => {
    const r = await runCliInProcess(['eval', '--model', tiny, '--tokens', many, '--cache', 'dense', '--block', '60000']);
    assertRefused(t, r, /^streamllm: --block 60000: attention of 60000 tokens at a time over a dense cache of 60000 entries: needs/);
    t.equal(r.stdout, '');
  });

  t.test('attn --length too large for the maps: refused naming --length', async (t) => {
    const r = await runCliInProcess([
      'attn',
      '--model',
      tiny,
      '--tokenizer',
      `${FIXTURES}tiny-gqa.tokenizer.bin`,
      '--tokens',
      many,
      '--length',
      '50000',
      '--samples',
      '2',
      '--out',
      join(dir, 'attn'),
    ]);
    assertRefused(
      t,
      r,
      new RegExp(`^streamllm: --length 50000: attention maps of 50000 x 50000 per head and layer: ${tooLarge('[\\d.]+ GiB', '[\\d.]+ GiB', 'an array')}`),
    );
  });

  t.test('init with a shape too large for the disk: refused, nothing written (the weights are drawn as written: memory is no limit)', async (t) => {
    const before = listing(dir);
    const out = join(dir, 'huge.bin');
    const seq = await runCliInProcess(['init', '--shape', '15M', '--seq-len', '2000000000', '--out', out]);
    assertRefused(t, seq, /^streamllm: init --dim 288 .*--seq-len 2000000000: the checkpoint would take [\d.]+ GiB, more than the [\d.]+ GiB free/);
    const wide = await runCliInProcess(['init', '--shape', '15M', '--dim', '600000', '--heads', '6', '--out', out]);
    assertRefused(t, wide, /^streamllm: init --dim 600000 .*: the checkpoint would take [\d.]+ GiB, more than the [\d.]+ GiB free/);
    const deep = await runCliInProcess(['init', '--shape', '110M', '--layers', '200000', '--out', out]); // 5 TB
    assertRefused(t, deep, /^streamllm: init --dim 768 .*--layers 200000 .*: the checkpoint would take [\d.]+ GiB, more than the [\d.]+ GiB free/);
    // into a folder not made yet: its nearest existing folder's filesystem (the check was skipped, and 260,771 GiB began to be written).
    // In a child that may write at most 1 MiB (ulimit -f, 1 KiB blocks): were the check to regress, the child dies at its first MiB
    // (SIGXFSZ, or EFBIG where the signal is ignored) and this fails, instead of filling the disk until tap's timeout
    const args = ['init', '--shape', '110M', '--layers', '200000', '--out', join(dir, 'new', 'deeper', 'huge.bin')];
    const child = spawnSync('/bin/sh', ['-c', 'ulimit -f 1024 && exec "$0" "$@"', process.execPath, CLI, ...args], { encoding: 'utf8', timeout: 120_000 });
    const fresh = { status: child.status, stdout: child.stdout, stderr: child.stderr };
    t.equal(child.signal, null, 'not killed (SIGXFSZ: it began writing the checkpoint)');
    assertRefused(t, fresh, /^streamllm: init --dim 768 .*--layers 200000 .*: the checkpoint would take [\d.]+ GiB, more than the [\d.]+ GiB free/);
    // a size the header's int32 cannot hold, in a file that would fit (was a RangeError's stack trace from Buffer.writeInt32LE)
    const vocab = await runCliInProcess([
      'init',
      '--dim',
      '2',
      '--hidden',
      '1',
      '--layers',
      '1',
      '--heads',
      '1',
      '--vocab',
      '2147483648',
      '--seq-len',
      '2',
      '--out',
      out,
    ]);
    assertRefused(t, vocab, /^streamllm: init --vocab: must be <= 2147483647, got 2147483648$/);
    t.same(listing(dir), before, 'no file left behind');
  });

  t.test('train: a batch beyond memory is refused before the corpus is read or --out written; a sample longer than the corpus too', async (t) => {
    const out = join(dir, 'run');
    const batch = await runCliInProcess(['train', '--variant', 'softmax', '--out', out, '--steps', '1', '--batch', '100000000']);
    assertRefused(t, batch, /^streamllm: train --dim 256 --layers 4 --heads 8 --seq-len 256 --batch 100000000: needs/);
    t.same(existsSync(out) ? listing(out) : [], [], 'nothing written to the run folder');
    const options = { ...TRAIN_DEFAULTS, variant: 'softmax', shape: { dim: 16, layers: 1, heads: 2 }, tokenizer: 'unused', seqLen: 500 } as const;
    t.throws(() => checkSamplesFit(options, 400, 10_000), /^train --seq-len 500: the training text has only 400 tokens$/);
    t.throws(() => checkSamplesFit(options, 10_000, 500), /^train --seq-len 500: the held-out text has only 500 tokens$/);
    t.doesNotThrow(() => checkSamplesFit(options, 501, 501));
  });
}

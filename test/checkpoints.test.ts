// Checkpoint files: safetensors (the dtypes, chunks, shards, malformed files),
// llama2.c .bin files, and our own checkpoint format written by saveHfModel.
// A section each, in a block of its own.
import * as tf from '@tensorflow/tfjs';
import { closeSync, openSync, readdirSync, readFileSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { SoftmaxVariant } from '../kernels/softmax.js';
import { halfValue, toBfloat16Bits, toFloat16Bits } from '../src/checkpoint/float16.js';
import { type LlamaShape, openLlama2c, readLlama2c, writeLlama2c } from '../src/checkpoint/llama2c.js';
import { readSafetensorsHeader, SafetensorsReader, writeSafetensors } from '../src/checkpoint/safetensors.js';
import { ConfigError, FileFormatError } from '../src/errors.js';
import { modelFromLlama2c } from '../src/model/from_llama2c.js';
import { loadModel } from '../src/model/load.js';
import { randomLlamaTensors } from '../src/model/random_init.js';
import { saveHfModel } from '../src/model/to_hf.js';
import { SINK_TOKEN } from '../src/model/transformer.js';
import { disposeModel, type Model } from '../src/model/weights.js';
import { denseLogits, FIXTURES, initTestBackend, maxAbsDiff } from './helpers.js';
import { llama2cToHf, llamaConfigJson, randomArray, randomLlama2c, rng, toWrite, writeHfDir } from './tiny_checkpoints.js';
import { tempDir } from './paths.js';

await initTestBackend();

// src/checkpoint/safetensors.ts: float16/bfloat16 rounding by hand-computed
// values, chunked reads, sharded sets, and every malformed file we refuse.
{
  // Values and their nearest 16-bit neighbours, worked out by hand.
  const cases: { x: number; f16: number; bf16: number }[] = [
    { x: 1, f16: 1, bf16: 1 },
    { x: -2.5, f16: -2.5, bf16: -2.5 },
    { x: 1 / 3, f16: 0.333251953125, bf16: 0.333984375 }, // f16 0x3555, bf16 0x3eab
    { x: 0.1, f16: 0.0999755859375, bf16: 0.10009765625 }, // f16 0x2e66, bf16 0x3dcd
    { x: 2049, f16: 2048, bf16: 2048 }, // f16: a tie, to even; bf16 spacing 16 at 2048
    { x: 2051, f16: 2052, bf16: 2048 }, // f16: a tie, to even (2052 has an even mantissa)
    { x: 1 + 2 ** -8, f16: 1 + 2 ** -8, bf16: 1 }, // bf16: a tie, to even
    { x: 1 + 3 * 2 ** -8, f16: 1 + 3 * 2 ** -8, bf16: 1 + 4 * 2 ** -8 }, // bf16: a tie, to even (up)
    { x: 65504, f16: 65504, bf16: 65536 }, // the largest half
    { x: 65520, f16: Infinity, bf16: 65536 }, // a tie between 65504 and 2^16: to even, which overflows
    { x: 7e-8, f16: 2 ** -24, bf16: 6.984919309616089e-8 }, // f16 subnormal 1; bf16 keeps 8 significant bits
    { x: 1e-8, f16: 0, bf16: 1.0011717677116394e-8 }, // below half the least f16 subnormal
    { x: 3 * 2 ** -25, f16: 2 ** -23, bf16: 3 * 2 ** -25 }, // f16 subnormal tie 1.5 -> 2 (even)
    { x: 1e30, f16: Infinity, bf16: 1.0002555517425873e30 },
    { x: -0, f16: -0, bf16: -0 },
  ];

  t.test('F16 and BF16 files widen to the hand-rounded values', async (t) => {
    const dir = tempDir();
    const values = Float32Array.from(cases, (c) => c.x);
    for (const dtype of ['F16', 'BF16'] as const) {
      const file = join(dir, `${dtype}.safetensors`);
      writeSafetensors(file, [{ name: 'v', shape: [values.length], values }], { dtype });
      const header = readSafetensorsHeader(file);
      t.equal(header.tensors.get('v')!.dtype, dtype);
      t.equal(header.tensors.get('v')!.byteLength, 2 * values.length);
      const got = SafetensorsReader.open(file).read('v');
      cases.forEach((c, i) => t.equal(Object.is(got[i], -0) ? -0 : got[i], dtype === 'F16' ? c.f16 : c.bf16, `${dtype}(${c.x})`));
      t.ok(Object.is(got[cases.length - 1], -0), `${dtype} keeps the sign of zero`);
    }
    t.equal(toFloat16Bits(1 / 3), 0x3555);
    t.equal(toBfloat16Bits(1 / 3), 0x3eab);
    t.ok(Number.isNaN(halfValue('F16', toFloat16Bits(NaN))));
    t.ok(Number.isNaN(halfValue('BF16', toBfloat16Bits(NaN))));
    t.equal(halfValue('F16', 0x7bff), 65504);
    t.equal(halfValue('F16', 0x0001), 2 ** -24);
    t.equal(halfValue('BF16', 0xff80), -Infinity);
  });

  t.test('every F16 bit pattern survives widening and narrowing', async (t) => {
    let bad = 0;
    for (let h = 0; h < 65536; h++) {
      const v = halfValue('F16', h);
      if (Number.isNaN(v)) continue;
      if (toFloat16Bits(v) !== h) bad++;
    }
    t.equal(bad, 0);
  });

  t.test('chunked reads reassemble the tensor, in every dtype', async (t) => {
    const dir = tempDir();
    const values = Float32Array.from({ length: 7 * 5 * 3 }, (_, i) => (i % 17) - 8 + i / 128);
    for (const dtype of ['F32', 'F16', 'BF16'] as const) {
      const file = join(dir, `${dtype}.safetensors`);
      writeSafetensors(
        file,
        [
          { name: 'pad', shape: [3], values: new Float32Array(3) },
          { name: 'x', shape: [7, 5, 3], values },
        ],
        { dtype },
      );
      const reader = SafetensorsReader.open(file);
      const whole = reader.read('x', [7, 5, 3]);
      const rows: number[] = [];
      const pieces = new Float32Array(whole.length);
      reader.readRows(
        'x',
        undefined,
        (row, v) => {
          rows.push(row);
          pieces.set(v, row * 15);
        },
        2 * 15 * 4,
      ); // two rows a chunk
      t.same(rows, [0, 2, 4, 6]);
      t.same(Array.from(pieces), Array.from(whole));
      if (dtype === 'F32') t.same(Array.from(whole), Array.from(values));
    }
  });

  /** A hand-made file: the header JSON as given, then `data` bytes. */
  function rawFile(file: string, header: unknown, dataBytes: number, lengthOverride?: bigint): string {
    const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(lengthOverride ?? BigInt(json.length));
    writeFileSync(file, Buffer.concat([length, json, Buffer.alloc(dataBytes)]));
    return file;
  }

  t.test('malformed files are refused with one line naming the file and the problem', async (t) => {
    const dir = tempDir();
    const f = (name: string) => join(dir, name);
    const entry = (dtype: string, shape: number[], begin: number, end: number) => ({ dtype, shape, data_offsets: [begin, end] });
    const refuse = (file: string, pattern: RegExp, what: string) => {
      let error: unknown;
      try {
        readSafetensorsHeader(file);
      } catch (e) {
        error = e;
      }
      t.ok(error instanceof FileFormatError, `${what}: FileFormatError`);
      t.match((error as Error).message, pattern, what);
      t.ok((error as Error).message.startsWith(file), `${what}: names the file`);
      t.notOk((error as Error).message.includes('\n'), `${what}: one line`);
    };

    // A well-formed file, then broken in every way.
    const good = f('good.safetensors');
    writeSafetensors(good, [
      { name: 'a', shape: [2, 3], values: new Float32Array(6) },
      { name: 'b', shape: [4], values: new Float32Array(4) },
    ]);
    t.equal(readSafetensorsHeader(good).tensors.size, 2);
    const truncated = f('truncated.safetensors');
    writeFileSync(truncated, readFileSync(good));
    truncateSync(truncated, readFileSync(good).length - 1);
    refuse(truncated, /tensor 'b': data_offsets \[24, 40\] run past the data \(39 bytes\): truncated file\?/, 'truncated file');
    writeFileSync(f('tiny'), Buffer.alloc(5));
    refuse(f('tiny'), /too small for a safetensors file \(5 bytes\)/, 'shorter than the length field');
    refuse(rawFile(f('huge-header'), {}, 0, 2n ** 40n), /header length 1099511627776 is impossible/, 'header length past the file');
    refuse(rawFile(f('zero-header'), '', 16, 0n), /header length 0 is impossible/, 'empty header');
    refuse(rawFile(f('not-json'), '{"a": ', 0), /header is not valid UTF-8 JSON/, 'header not JSON');
    refuse(rawFile(f('array'), [1, 2], 0), /header is not a JSON object/, 'header an array');
    refuse(rawFile(f('outside'), { a: entry('F32', [4], 0, 16) }, 8), /data_offsets \[0, 16\] run past the data \(8 bytes\)/, 'offsets outside');
    refuse(rawFile(f('reversed'), { a: entry('F32', [0], 8, 4) }, 8), /data_offsets must be \[begin, end\] with 0 <= begin <= end/, 'end before begin');
    refuse(rawFile(f('negative'), { a: entry('F32', [1], -4, 0) }, 8), /data_offsets must be/, 'negative offset');
    refuse(rawFile(f('overlap'), { a: entry('F32', [3], 0, 12), b: entry('F32', [2], 8, 16) }, 16), /tensors 'a' and 'b' overlap/, 'overlapping tensors');
    refuse(rawFile(f('dtype'), { a: entry('F12', [2], 0, 4) }, 4), /tensor 'a': unknown dtype "F12" \(the format defines BOOL, /, 'unknown dtype');
    refuse(rawFile(f('size'), { a: entry('BF16', [2, 3], 0, 24) }, 24), /shape \[2, 3\] of BF16 needs 12 bytes, data_offsets give 24/, 'shape/size mismatch');
    refuse(rawFile(f('shape'), { a: entry('F32', [2, -1], 0, 8) }, 8), /shape must be a list of non-negative integers/, 'negative dimension');
    refuse(rawFile(f('entry'), { a: 'F32' }, 8), /tensor 'a': entry is not an object/, 'entry not an object');
    refuse(rawFile(f('meta'), { __metadata__: { format: 1 } }, 0), /__metadata__ must map strings to strings/, 'bad metadata');
    refuse(f('absent'), /cannot open: ENOENT/, 'no such file');

    // Tensors of other dtypes may sit in a file (NeoX keeps BOOL masks) but are not read as floats.
    const mixed = rawFile(f('mixed'), { mask: entry('BOOL', [4], 0, 4), w: entry('F32', [1], 4, 8) }, 8);
    const reader = SafetensorsReader.open(mixed);
    t.same(Array.from(reader.read('w')), [0]);
    t.throws(() => reader.read('mask'), /tensor 'mask' is BOOL; supported: F32, F16, BF16/);
    t.throws(() => reader.read('nope'), /missing tensor 'nope'/);
    t.throws(() => reader.read('w', [2]), /tensor 'w' has shape \[1\], expected \[2\]/);
    t.throws(() => SafetensorsReader.open(dir), /no model\.safetensors or model\.safetensors\.index\.json in this directory/);
  });

  t.test('a failed write leaves no file behind', async (t) => {
    const dir = tempDir();
    const file = join(dir, 'x.safetensors');
    t.throws(() => writeSafetensors(file, [{ name: 'a', shape: [3], values: () => new Float32Array(2) }]), /'a' has 2 values, shape \[3\] needs 3/);
    t.same(readdirSync(dir), [], 'neither the file nor its temporary');
  });

  t.test('sharded checkpoints load like a single file', async (t) => {
    const before = tf.memory().numTensors;
    const shape = { dim: 16, hiddenDim: 24, layers: 3, heads: 4, kvHeads: 2, vocabSize: 21, maxSeqLen: 16, sharedClassifier: false };
    const tensors = llama2cToHf(randomLlama2c(shape, 'shards'));
    const single = tempDir();
    writeHfDir(single, llamaConfigJson(shape), tensors);
    const sharded = tempDir();
    writeFileSync(join(sharded, 'config.json'), JSON.stringify(llamaConfigJson(shape)));
    // Three shards, each tensor in shard (index mod 3): the reader must follow the index.
    const all = toWrite(tensors);
    const weightMap: Record<string, string> = {};
    for (let s = 0; s < 3; s++) {
      const name = `model-0000${s + 1}-of-00003.safetensors`;
      const mine = all.filter((_, i) => i % 3 === s);
      writeSafetensors(join(sharded, name), mine, { dtype: 'BF16' });
      for (const tensor of mine) weightMap[tensor.name] = name;
    }
    const index = join(sharded, 'model.safetensors.index.json');
    writeFileSync(index, JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
    const reader = SafetensorsReader.open(sharded);
    t.equal(reader.source, index);
    t.equal(reader.tensors.size, all.length);
    // The same model in BF16 as one file.
    writeHfDir(single, llamaConfigJson(shape), tensors, 'BF16');
    const a = loadModel(single);
    const b = loadModel(sharded);
    t.equal(maxAbsDiff(denseLogits(a, [1, 2, 3, 4, 5]), denseLogits(b, [1, 2, 3, 4, 5])), 0, 'identical logits');
    disposeModel(a);
    disposeModel(b);

    // A shard that lacks a tensor the index lists; an index that is not one.
    const shard1 = join(sharded, 'model-00001-of-00003.safetensors');
    writeSafetensors(shard1, all.filter((_, i) => i % 3 === 0).slice(1), { dtype: 'BF16' });
    t.throws(
      () => SafetensorsReader.open(sharded),
      new RegExp(
        `model-00001-of-00003\\.safetensors: tensor '${all[0]!.name.replace(/\./g, '\\.')}', listed in model\\.safetensors\\.index\\.json, is missing`,
      ),
    );
    writeFileSync(index, JSON.stringify({ weight_map: { x: 1 } }));
    t.throws(() => SafetensorsReader.open(sharded), /weight_map must be an object mapping tensor names to shard file names/);
    writeFileSync(index, JSON.stringify({ weight_map: { x: '../elsewhere.safetensors' } }));
    t.throws(() => SafetensorsReader.open(sharded), /must be a file name in the same directory/);
    writeFileSync(index, '{');
    t.throws(() => SafetensorsReader.open(sharded), /model\.safetensors\.index\.json: not valid JSON/);
    t.equal(tf.memory().numTensors, before, 'no tensor leak');
  });
}

// llama2.c checkpoints: both versions read, the legacy writer round-trips,
// and every malformed file is one clear error naming the file.
{
  const dir = tempDir('streamllm-llama2c-');
  const shape: LlamaShape = { dim: 8, hiddenDim: 12, layers: 2, heads: 4, kvHeads: 2, vocabSize: 11, maxSeqLen: 6, sharedClassifier: true };

  t.test('the conformance checkpoint reads with its header values', async (t) => {
    const c = readLlama2c(`${FIXTURES}tiny-gqa.bin`);
    t.same(c.shape, { dim: 48, hiddenDim: 128, layers: 3, heads: 6, kvHeads: 2, vocabSize: 96, maxSeqLen: 64, sharedClassifier: true });
    t.equal(c.wk.length, 3 * 16 * 48);
    t.equal(c.classifier, undefined);
  });

  t.test('legacy write -> read round trip, shared and separate classifier', async (t) => {
    for (const sharedClassifier of [true, false]) {
      const tensors = randomLlamaTensors({ ...shape, sharedClassifier }, 7);
      const file = join(dir, `rt-${sharedClassifier}.bin`);
      writeLlama2c(file, tensors);
      const back = readLlama2c(file);
      t.same(back.shape, tensors.shape);
      t.same(Array.from(back.w2), Array.from(tensors.w2));
      t.same(back.classifier && Array.from(back.classifier), tensors.classifier && Array.from(tensors.classifier));
    }
  });

  t.test('version 1 (ak42) files read the same tensors', async (t) => {
    const tensors = randomLlamaTensors({ ...shape, sharedClassifier: false }, 3);
    const header = Buffer.alloc(256);
    header.writeUInt32LE(0x616b3432, 0);
    header.writeInt32LE(1, 4);
    [shape.dim, shape.hiddenDim, shape.layers, shape.heads, shape.kvHeads, shape.vocabSize, shape.maxSeqLen].forEach((v, i) =>
      header.writeInt32LE(v, 8 + 4 * i),
    );
    header.writeUInt8(0, 36);
    const file = join(dir, 'v1.bin');
    const fd = openSync(file, 'w');
    writeSync(fd, header);
    for (const a of [
      tensors.rmsAtt,
      tensors.rmsFfn,
      tensors.rmsFinal,
      tensors.tokenEmbedding,
      tensors.wq,
      tensors.wk,
      tensors.wv,
      tensors.wo,
      tensors.w1,
      tensors.w2,
      tensors.w3,
      tensors.classifier!,
    ]) {
      writeSync(fd, new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    }
    closeSync(fd);
    const back = readLlama2c(file);
    t.same(Array.from(back.wo), Array.from(tensors.wo));
    t.same(Array.from(back.classifier!), Array.from(tensors.classifier!));
    t.equal(back.shape.sharedClassifier, false);
  });

  t.test('malformed files are one-line errors naming the file', async (t) => {
    const good = join(dir, 'good.bin');
    writeLlama2c(good, randomLlamaTensors(shape, 1));
    const bytes = readFileSync(good);
    const variant = (name: string, mutate: (b: Buffer) => Buffer) => {
      const file = join(dir, name);
      writeFileSync(file, mutate(Buffer.from(bytes)));
      return file;
    };
    const withHeader = (i: number, v: number) => (b: Buffer) => (b.writeInt32LE(v, 4 * i), b);
    const cases: [string, string, RegExp][] = [
      [variant('truncated.bin', (b) => b.subarray(0, b.length - 4)), 'truncated', /truncated: the header describes \d+ bytes but the file has \d+/],
      [variant('oversized.bin', (b) => Buffer.concat([b, Buffer.alloc(8)])), 'oversized', /oversized/],
      [variant('zero-dim.bin', withHeader(0, 0)), 'zero dim', /dim must be positive, got 0/],
      [variant('negative-layers.bin', withHeader(2, -3)), 'negative layers', /n_layers must be positive, got -3/],
      [variant('heads.bin', withHeader(3, 3)), 'heads not dividing dim', /n_heads \(3\) does not divide dim \(8\)/],
      [variant('kv-heads.bin', withHeader(4, 3)), 'kv heads not dividing heads', /n_kv_heads \(3\) does not divide n_heads \(4\)/],
      [variant('tiny.bin', (b) => b.subarray(0, 10)), 'shorter than a header', /too small/],
      [join(dir, 'missing.bin'), 'missing', /cannot open: ENOENT/],
    ];
    for (const [file, what, pattern] of cases) {
      t.throws(() => readLlama2c(file), FileFormatError, what);
      try {
        readLlama2c(file);
      } catch (e) {
        const message = (e as Error).message;
        t.match(message, pattern, what);
        t.ok(message.startsWith(file), `${what}: names the file`);
        t.notOk(message.includes('\n'), `${what}: one line`);
      }
    }
  });

  t.test('the writer leaves no file behind when a tensor is missing', async (t) => {
    const tensors = randomLlamaTensors(shape, 2);
    const file = join(dir, 'never.bin');
    t.throws(() => writeLlama2c(file, { ...tensors, wq: new Float32Array(3) }), /wq has 3 values/);
    t.throws(() => readFileSync(file), /ENOENT/);
  });

  /** Every weight tensor of a model, flattened in a fixed order. */
  function weightValues(m: Model): number[][] {
    const w = m.weights;
    const tensors = [
      w.embedding,
      w.finalNorm.weight,
      w.classifier,
      ...w.layers.flatMap((l) => [l.attnNorm.weight, l.qkv.weight, l.out.weight, l.mlpNorm.weight, l.up.weight, l.down.weight]),
    ];
    return tensors.map((x) => Array.from(x!.dataSync()));
  }

  t.test('a model read piece by piece from the file equals the one built from the tensors in memory', async (t) => {
    for (const sharedClassifier of [true, false]) {
      const tensors = randomLlamaTensors({ ...shape, vocabSize: 2500, sharedClassifier }, 5); // the classifier spans several reads
      const file = join(dir, `pieces-${sharedClassifier}.bin`);
      writeLlama2c(file, tensors);
      const fromFile = loadModel(file);
      const inMemory = modelFromLlama2c(tensors);
      t.same(weightValues(fromFile), weightValues(inMemory), `shared classifier: ${sharedClassifier}`);
      disposeModel(fromFile);
      disposeModel(inMemory);
    }
  });

  t.test('a file cut short while the model is built: one error naming it, and no tensor left behind', async (t) => {
    const file = join(dir, 'shrinks.bin');
    writeLlama2c(file, randomLlamaTensors(shape, 9));
    const before = tf.memory().numTensors;
    const reader = openLlama2c(file); // validated at full size
    truncateSync(file, 600);
    // Layer 0's first matrix, wq [8, 8], starts at 28 (header) + 4 x 88 (embedding) + 4 x 16 (rms_att) = 444.
    t.throws(() => modelFromLlama2c(reader), new FileFormatError(file, 'truncated: expected 256 bytes at offset 444, got 156'));
    reader.close();
    t.equal(tf.memory().numTensors, before);
  });
}

// Our own checkpoint format: saveHfModel -> loadModel round trips, for every
// softmax variant and the sink token, from a llama2.c model (pairs RoPE
// layout, permuted to halves on save) and from a loaded one (halves).
{
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
}

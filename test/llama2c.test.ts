// llama2.c checkpoints: both versions read, the legacy writer round-trips,
// and every malformed file is one clear error naming the file.
import * as tf from '@tensorflow/tfjs';
import { closeSync, mkdtempSync, openSync, readFileSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { type LlamaShape, openLlama2c, readLlama2c, writeLlama2c } from '../src/checkpoint/llama2c.js';
import { FileFormatError } from '../src/errors.js';
import { modelFromLlama2c } from '../src/model/from_llama2c.js';
import { loadModel } from '../src/model/load.js';
import { randomLlamaTensors } from '../src/model/random_init.js';
import { disposeModel, type Model } from '../src/model/weights.js';
import { FIXTURES, initTestBackend } from './helpers.js';

await initTestBackend();

const dir = mkdtempSync(join(tmpdir(), 'streamllm-llama2c-'));
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
  [shape.dim, shape.hiddenDim, shape.layers, shape.heads, shape.kvHeads, shape.vocabSize, shape.maxSeqLen].forEach((v, i) => header.writeInt32LE(v, 8 + 4 * i));
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

// llama2.c checkpoints: both versions read, the legacy writer round-trips,
// and every malformed file is one clear error naming the file.
import { closeSync, mkdtempSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { type LlamaShape, readLlama2c, writeLlama2c } from '../src/checkpoint/llama2c.js';
import { FileFormatError } from '../src/errors.js';
import { randomLlamaTensors } from '../src/model/random_init.js';
import { FIXTURES } from './helpers.js';

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
  [shape.dim, shape.hiddenDim, shape.layers, shape.heads, shape.kvHeads, shape.vocabSize, shape.maxSeqLen].forEach((v, i) =>
    header.writeInt32LE(v, 8 + 4 * i),
  );
  header.writeUInt8(0, 36);
  const file = join(dir, 'v1.bin');
  const fd = openSync(file, 'w');
  writeSync(fd, header);
  for (const a of [tensors.rmsAtt, tensors.rmsFfn, tensors.rmsFinal, tensors.tokenEmbedding, tensors.wq, tensors.wk, tensors.wv, tensors.wo, tensors.w1, tensors.w2, tensors.w3, tensors.classifier!]) {
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
